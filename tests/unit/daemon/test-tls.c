/* daemon/tls: who a peer certificate names (issue 9 #12).  The identity
 * is the one subjectAltName DNS entry, at its full length (a NUL inside is
 * refused, not cut), and a common name must say exactly the same.
 * And a session between two hosts through the loop's buffers (issue 11):
 * handshake, megabytes each way in odd pieces, every byte as sent, and a
 * changed ciphertext byte failing the session. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "daemon/pki.h"
#include "daemon/tls.h"
#include "daemon/xmalloc.h"

/* A certificate with the given CN (cnlen bytes, none if NULL) and DNS
 * names (each dnslen[i] bytes); unsigned: only names matter here. */
static X509 *
make(const char *cn, int cnlen, const char *const *dns, const int *dnslen,
    int ndns)
{
	X509		*x = X509_new();
	X509_NAME	*name = X509_NAME_new();
	GENERAL_NAMES	*gens;
	GENERAL_NAME	*g;
	ASN1_IA5STRING	*ia5;
	int		 i;

	assert_non_null(x);
	if (cn != NULL)
		assert_int_equal(X509_NAME_add_entry_by_NID(name,
		    NID_commonName, MBSTRING_ASC, (const unsigned char *)cn,
		    cnlen, -1, 0), 1);
	X509_set_subject_name(x, name);
	X509_NAME_free(name);
	if (ndns > 0) {
		gens = sk_GENERAL_NAME_new_null();
		for (i = 0; i < ndns; i++) {
			g = GENERAL_NAME_new();
			ia5 = ASN1_IA5STRING_new();
			ASN1_STRING_set(ia5, dns[i], dnslen[i]);
			GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
			sk_GENERAL_NAME_push(gens, g);
		}
		assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name,
		    gens, 0, X509V3_ADD_DEFAULT), 1);
		GENERAL_NAMES_free(gens);
	}
	return x;
}

static void
expect(X509 *x, const char *want, const char *cause_part)
{
	char	*cause = NULL, *id;

	id = tls_cert_identity(x, &cause);
	if (want != NULL) {
		if (id == NULL)
			fail_msg("refused: %s", cause);
		assert_string_equal(id, want);
	} else {
		if (id != NULL)
			fail_msg("accepted as %s", id);
		assert_non_null(cause);
		if (strstr(cause, cause_part) == NULL)
			fail_msg("cause \"%s\" lacks \"%s\"", cause, cause_part);
	}
	free(id);
	free(cause);
	X509_free(x);
}

static void
test_identity(void **state)
{
	const char	*h2[] = { "h2" }, *two[] = { "h2", "h3" };
	const char	*nul[] = { "h2\0evil" }, *bad[] = { "H2" };
	const int	 l2[] = { 2 }, l22[] = { 2, 2 }, lnul[] = { 7 };

	(void)state;
	/* What ternctl cert issue makes: CN and SAN alike. */
	expect(make("h2", -1, h2, l2, 1), "h2", NULL);
	/* SAN alone is enough. */
	expect(make(NULL, 0, h2, l2, 1), "h2", NULL);
	/* CN alone, as accept used to take: refused. */
	expect(make("h2", -1, NULL, NULL, 0), NULL, "names no host");
	expect(make("h2", -1, two, l22, 2), NULL, "more than one");
	/* A CN that says another host than the SAN. */
	expect(make("h3", -1, h2, l2, 1), NULL, "common name differs");
	/* NUL inside the CN: "h2" up to the NUL used to be the identity. */
	expect(make("h2\0evil", 7, h2, l2, 1), NULL, "common name differs");
	/* NUL inside the SAN. */
	expect(make(NULL, 0, nul, lnul, 1), NULL, "byte 0x00");
	expect(make(NULL, 0, bad, l2, 1), NULL, "not a host name");
}

/* --- a session through the loop's buffers ------------------------------- */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

/* Read what `t` has, in reads of varying size, appending to out[have..cap):
 * the new total, and *last the status that stopped it (TLS_DONE: full). */
static size_t
drain(struct tls *t, uint8_t *out, size_t have, size_t cap,
    enum tls_status *last)
{
	static const size_t	 sizes[] = { 1, 100, 16384, 70000, 5 };
	char			*cause = NULL;
	size_t			 n, want, k;

	*last = TLS_DONE;
	for (k = 0; have < cap; k++) {
		want = sizes[k % 5] < cap - have ? sizes[k % 5] : cap - have;
		if ((n = tls_read(t, out + have, want, last, &cause)) == 0)
			break;
		have += n;
	}
	free(cause);
	return have;
}

/* The receiving end of a pump: read after every piece, as the loop does
 * after every socket read, but at most up to `upto` bytes in all, so
 * records wait in the input buffer as they do when a connection stops
 * reading for a while. */
struct rx {
	uint8_t		*buf;
	size_t		 got, cap, upto;
	enum tls_status	 st;
};

/* Move everything `from` produced into `to`, in pieces of odd sizes
 * through tls_in_space/tls_in_commit, reading into rx (if not NULL) after
 * each; flip byte `flip` (counted over the whole transfer) unless it is
 * (size_t)-1. */
static size_t	pump_total;

static void
pump(struct tls *from, struct tls *to, size_t flip, struct rx *rx)
{
	static const size_t	 pieces[] = { 1, 7, 4093, 70000, 16406, 300 };
	uint8_t			*buf, *dst;
	size_t			 len, off, n, room, k = 0;

	while ((buf = tls_take_buf(from, &len)) != NULL) {
		assert_true(len > 0);
		for (off = 0; off < len; off += n) {
			dst = tls_in_space(to, 17u << 10, &room);
			assert_true(room >= (17u << 10) / 4);
			n = pieces[k++ % 6];
			if (n > len - off)
				n = len - off;
			if (n > room)
				n = room;
			memcpy(dst, buf + off, n);
			if (flip >= pump_total && flip < pump_total + n)
				dst[flip - pump_total] ^= 0x20;
			pump_total += n;
			tls_in_commit(to, n);
			if (rx != NULL && rx->got < rx->upto)
				rx->got = drain(to, rx->buf, rx->got,
				    rx->upto < rx->cap ? rx->upto : rx->cap,
				    &rx->st);
		}
		tls_give_buf(buf);
	}
	assert_int_equal(tls_pending(from), 0);
}

struct pair {
	char		 dir[64];
	struct tls_ctx	*ctx1, *ctx2;
	struct tls	*client, *server;	/* h1 dials h2 */
};

static void
pair_up(struct pair *p)
{
	char		*cause = NULL, *ca, *cadir, *h1, *h2, *c[4];
	enum tls_status	 s1 = TLS_AGAIN, s2 = TLS_AGAIN;
	int		 i;

	strcpy(p->dir, "/tmp/tern-test-tls.XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	xasprintf(&cadir, "%s/ca", p->dir);
	xasprintf(&h1, "%s/h1", p->dir);
	xasprintf(&h2, "%s/h2", p->dir);
	assert_int_equal(pki_ca_init(cadir, NULL, 1, 0, &cause), 0);
	assert_int_equal(pki_cert_issue(cadir, "h1", h1, 1,
	    PKI_NOT_BEFORE_OFFSET, &cause), 0);
	assert_int_equal(pki_cert_issue(cadir, "h2", h2, 1,
	    PKI_NOT_BEFORE_OFFSET, &cause), 0);
	xasprintf(&ca, "%s/ca.pem", cadir);
	xasprintf(&c[0], "%s/h1.pem", h1);
	xasprintf(&c[1], "%s/h1.key", h1);
	xasprintf(&c[2], "%s/h2.pem", h2);
	xasprintf(&c[3], "%s/h2.key", h2);
	p->ctx1 = tls_ctx_new(ca, c[0], c[1], NULL, &cause);
	p->ctx2 = tls_ctx_new(ca, c[2], c[3], NULL, &cause);
	assert_non_null(p->ctx1);
	assert_non_null(p->ctx2);
	p->client = tls_new(p->ctx1, 0, "h2");
	p->server = tls_new(p->ctx2, 1, NULL);
	for (i = 0; i < 10 && (s1 != TLS_DONE || s2 != TLS_DONE); i++) {
		if (s1 != TLS_DONE)
			s1 = tls_handshake(p->client, &cause);
		pump(p->client, p->server, (size_t)-1, NULL);
		if (s2 != TLS_DONE)
			s2 = tls_handshake(p->server, &cause);
		pump(p->server, p->client, (size_t)-1, NULL);
		assert_int_not_equal(s1, TLS_ERROR);
		assert_int_not_equal(s2, TLS_ERROR);
	}
	assert_int_equal(s1, TLS_DONE);
	assert_int_equal(s2, TLS_DONE);
	assert_string_equal(tls_peer_name(p->server), "h1");
	assert_string_equal(tls_peer_name(p->client), "h2");
	for (i = 0; i < 4; i++)
		free(c[i]);
	free(ca);
	free(cadir);
	free(h1);
	free(h2);
}

static void
pair_free(struct pair *p)
{
	tls_free(p->client);
	tls_free(p->server);
	tls_ctx_free(p->ctx1);
	tls_ctx_free(p->ctx2);
	assert_int_equal(nftw(p->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS), 0);
}

#define BULK	((3u << 20) + 1234)

static void
test_session(void **state)
{
	struct pair	 p;
	struct rx	 rx;
	uint8_t		*out;
	char		*cause = NULL;
	size_t		 i, off, n;

	(void)state;
	pair_up(&p);
	out = xmalloc(BULK);
	rx.buf = xmalloc(BULK);
	rx.got = 0;
	rx.cap = BULK;
	rx.upto = 0;
	for (i = 0; i < BULK; i++)
		out[i] = (uint8_t)(i * 131 + (i >> 9));
	/* Writes of every size up to more than the output buffers hold. */
	for (off = 0, n = 1; off < BULK; off += n, n = n * 5 + 3) {
		if (n > BULK - off)
			n = BULK - off;
		assert_int_equal(tls_write(p.client, out + off, n, &cause), 0);
		if (n % 2)
			continue;	/* let some pile up */
		/* Read about half of what is new: the rest waits. */
		rx.upto = rx.got + (off + n - rx.got) / 2;
		pump(p.client, p.server, (size_t)-1, &rx);
	}
	rx.upto = BULK;
	pump(p.client, p.server, (size_t)-1, &rx);
	rx.got = drain(p.server, rx.buf, rx.got, BULK, &rx.st);
	assert_int_equal(rx.got, BULK);
	assert_memory_equal(rx.buf, out, BULK);

	/* The other way, a little. */
	assert_int_equal(tls_write(p.server, "pong", 4, &cause), 0);
	rx.got = 0;
	rx.cap = rx.upto = 4;
	pump(p.server, p.client, (size_t)-1, &rx);
	assert_int_equal(rx.got, 4);
	assert_memory_equal(rx.buf, "pong", 4);
	pair_free(&p);
	free(rx.buf);
	free(out);
}

/* One changed ciphertext byte: the record's tag fails, and so does the
 * session, so data frames need no CRC of their own over TLS. */
static void
test_session_tamper(void **state)
{
	struct pair	 p;
	uint8_t		 buf[4096], got[4096];
	enum tls_status	 st;
	char		*cause = NULL;
	size_t		 n;

	(void)state;
	pair_up(&p);
	memset(buf, 'x', sizeof buf);
	assert_int_equal(tls_write(p.client, buf, sizeof buf, &cause), 0);
	pump_total = 0;
	pump(p.client, p.server, 2000, NULL);
	n = tls_read(p.server, got, sizeof got, &st, &cause);
	assert_int_equal(n, 0);
	assert_int_equal(st, TLS_ERROR);
	assert_non_null(cause);
	free(cause);
	pair_free(&p);
}

/* What the session holds bounds what it can still give: however the
 * peer's records are cut on the way and however much of them the reader
 * has taken, the plaintext still missing, less tls_held_bound, is
 * ciphertext still to arrive.  A connection in the middle of a large
 * frame has the kernel wake it only once that much has come
 * (conn_wake_at): a bound too small waits for bytes that never come. */
static void
test_held_bound(void **state)
{
	static const size_t	 writes[] = { 16384, 1, 70000, 300, 5000, 16385 };
	static const size_t	 pieces[] = { 1, 5, 13, 4093, 16400, 9000, 70000 };
	struct pair		 p;
	uint8_t			*out, *wire = NULL, *buf, *dst, *got;
	char			*cause = NULL;
	size_t			 total = (1u << 20) + 777, wired = 0, fed = 0;
	size_t			 have = 0, off, n, len, room, k;
	enum tls_status		 st;

	(void)state;
	pair_up(&p);
	out = xcalloc(1, total);
	got = xmalloc(total);
	for (off = 0, k = 0; off < total; off += n, k++) {
		n = writes[k % 6] < total - off ? writes[k % 6] : total - off;
		assert_int_equal(tls_write(p.client, out + off, n, &cause), 0);
	}
	while ((buf = tls_take_buf(p.client, &len)) != NULL) {
		wire = xrealloc(wire, wired + len);
		memcpy(wire + wired, buf, len);
		wired += len;
		tls_give_buf(buf);
	}
	for (k = 0; fed < wired; k++) {
		dst = tls_in_space(p.server, 17u << 10, &room);
		n = pieces[k % 7];
		if (n > wired - fed)
			n = wired - fed;
		if (n > room)
			n = room;
		memcpy(dst, wire + fed, n);
		tls_in_commit(p.server, n);
		fed += n;
		/* Every third piece, read nothing: records wait unread. */
		if (k % 3 != 2)
			have = drain(p.server, got, have, total, &st);
		if (total - have > wired - fed + tls_held_bound(p.server))
			fail_msg("after %zu of %zu ciphertext bytes, %zu of "
			    "plaintext read: %zu missing, but only %zu to come "
			    "and %zu held", fed, wired, have, total - have,
			    wired - fed, tls_held_bound(p.server));
	}
	have = drain(p.server, got, have, total, &st);
	assert_int_equal(have, total);
	pair_free(&p);
	free(wire);
	free(got);
	free(out);
}

/* A reload frees the TLS context while a connection made with it is
 * still in its handshake (main/ternd.c: live connections keep the one
 * they started with).  The session's verify callback reads the context's
 * revocation list: the context must live until its last session is
 * freed.  (Under ASan this was a heap-use-after-free; without it, a crash
 * when the freed memory had been reused.) */
static void
test_ctx_outlives_reload(void **state)
{
	struct pair	 p;
	char		*cause = NULL, *rev, *ca, *c[4];
	enum tls_status	 s1 = TLS_AGAIN, s2 = TLS_AGAIN;
	struct tls	*client, *server;
	struct tls_ctx	*ctx1, *ctx2;
	FILE		*fp;
	int		 i;

	(void)state;
	pair_up(&p);
	/* A non-empty list, so verification looks at it. */
	xasprintf(&rev, "%s/revoked", p.dir);
	assert_non_null(fp = fopen(rev, "w"));
	fputs("0123456789ABCDEF\n", fp);
	fclose(fp);
	xasprintf(&ca, "%s/ca/ca.pem", p.dir);
	xasprintf(&c[0], "%s/h1/h1.pem", p.dir);
	xasprintf(&c[1], "%s/h1/h1.key", p.dir);
	xasprintf(&c[2], "%s/h2/h2.pem", p.dir);
	xasprintf(&c[3], "%s/h2/h2.key", p.dir);
	ctx1 = tls_ctx_new(ca, c[0], c[1], rev, &cause);
	ctx2 = tls_ctx_new(ca, c[2], c[3], rev, &cause);
	assert_non_null(ctx1);
	assert_non_null(ctx2);
	client = tls_new(ctx1, 0, "h2");
	server = tls_new(ctx2, 1, NULL);
	tls_ctx_free(ctx1);	/* the reloads */
	tls_ctx_free(ctx2);
	for (i = 0; i < 10 && (s1 != TLS_DONE || s2 != TLS_DONE); i++) {
		if (s1 != TLS_DONE)
			s1 = tls_handshake(client, &cause);
		pump(client, server, (size_t)-1, NULL);
		if (s2 != TLS_DONE)
			s2 = tls_handshake(server, &cause);
		pump(server, client, (size_t)-1, NULL);
		assert_int_not_equal(s1, TLS_ERROR);
		assert_int_not_equal(s2, TLS_ERROR);
	}
	assert_int_equal(s1, TLS_DONE);
	assert_int_equal(s2, TLS_DONE);
	assert_string_equal(tls_peer_name(server), "h1");
	tls_free(client);
	tls_free(server);
	for (i = 0; i < 4; i++)
		free(c[i]);
	free(ca);
	free(rev);
	pair_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_session),
		cmocka_unit_test(test_session_tamper),
		cmocka_unit_test(test_held_bound),
		cmocka_unit_test(test_ctx_outlives_reload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
