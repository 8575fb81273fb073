#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define LOG_MODULE "net.tls"
#include "daemon/log.h"
#include "daemon/pki.h"
#include "daemon/tls.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* AES-128-GCM first: the fastest suite on CPUs with AES-NI, which the
 * state streams are bound by. */
#define TLS_CIPHERSUITES \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

struct tls_ctx {
	SSL_CTX			*ssl_ctx;
	char			*own_name;
	struct pki_revoked	 revoked;
	/* Its owner's and each session's: a session still in its handshake
	 * after a reload freed the context reads revoked (tls_verify). */
	unsigned		 refs;
};

/* Ciphertext for the peer, in buffers the caller takes whole (no copy on
 * the way to the socket) and gives back for reuse. */
struct tls_obuf {
	struct tls_obuf	*next;
	size_t		 len;
	size_t		 size;
	uint8_t		 data[];
};

/* Spare output buffers, shared by every session: enough for a bulk
 * stream's bursts without a malloc per buffer (which glibc serves from
 * freshly faulted pages once it has trimmed the heap), 2.5 MiB at most. */
#define TLS_OBUF_SIZE	(320u << 10)
#define TLS_OBUF_SPARE	8

/* The most of a record OpenSSL may hold read and not yet decrypted: TLS
 * 1.3's largest ciphertext record (RFC 8446, 5.2) and its header.  It
 * reads exactly up to the end of the record it is in (no read-ahead). */
#define TLS_RECORD_MAX	(5 + (16u << 10) + 256)

static pthread_mutex_t	 tls_spare_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_obuf	*tls_spare;
static unsigned		 tls_nspare;

struct tls {
	struct tls_ctx	*ctx;		/* a reference */
	SSL		*ssl;
	BIO		*bio;		/* ours both ways: see tls_bio_method */
	int		 server;
	char		*peer_name;
	char		*expect_host;	/* client: whom we dialled */
	char		*peer_serial;	/* upper-case hex */

	/* Ciphertext from the peer: the socket reads into [in_end, in_size),
	 * OpenSSL reads from [in_start, in_end). */
	uint8_t		*in;
	size_t		 in_size, in_start, in_end;

	struct tls_obuf	*out_head, *out_tail;	/* filled, oldest first */
	size_t		 out_pending;
};

/* The OpenSSL error queue as one string, emptied. */
static char *
tls_errors(void)
{
	char		 buf[256], *all = NULL, *next;
	unsigned long	 e;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof buf);
		if (all == NULL)
			all = xstrdup(buf);
		else {
			xasprintf(&next, "%s; %s", all, buf);
			free(all);
			all = next;
		}
	}
	return all != NULL ? all : xstrdup("no OpenSSL error recorded");
}

char *
tls_cert_identity(X509 *cert, char **cause)
{
	GENERAL_NAMES		*names;
	const GENERAL_NAME	*g;
	const X509_NAME		*subject;
	const ASN1_STRING	*cn;
	const char		*dns = NULL;
	char			*why = NULL, *id = NULL;
	int			 i, n, len = 0, ndns = 0, idx;

	names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	n = names != NULL ? sk_GENERAL_NAME_num(names) : 0;
	for (i = 0; i < n; i++) {
		g = sk_GENERAL_NAME_value(names, i);
		if (g->type != GEN_DNS)
			continue;
		ndns++;
		dns = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
	}
	if (ndns != 1) {
		set_cause(cause, "certificate names %s host in its "
		    "subjectAltName (a tern certificate names exactly one; "
		    "reissue it with ternctl cert issue)", ndns == 0 ? "no" :
		    "more than one");
		goto out;
	}
	/* The length is the ASN.1 one: a NUL inside fails the check. */
	if (host_name_check(dns, (size_t)len, &why) != 0) {
		set_cause(cause, "certificate's subjectAltName is not a host "
		    "name: %s", why);
		goto out;
	}
	/* A common name, if any, must say the same, byte for byte. */
	subject = X509_get_subject_name(cert);
	for (idx = -1; subject != NULL && (idx = X509_NAME_get_index_by_NID(
	    subject, NID_commonName, idx)) >= 0; ) {
		cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject,
		    idx));
		if (ASN1_STRING_length(cn) != len ||
		    memcmp(ASN1_STRING_get0_data(cn), dns, (size_t)len) != 0) {
			set_cause(cause, "certificate's common name differs "
			    "from its subjectAltName DNS:%.*s", len, dns);
			goto out;
		}
	}
	id = xmalloc((size_t)len + 1);
	memcpy(id, dns, (size_t)len);
	id[len] = '\0';
out:
	free(why);
	GENERAL_NAMES_free(names);
	return id;
}

/* The host key, refused when anyone but its owner may read it: a key others
 * can read is a key others may have copied. */
static EVP_PKEY *
tls_load_key(const char *path, char **cause)
{
	struct stat	 st;
	EVP_PKEY	*key = NULL;
	FILE		*fp = NULL;
	char		*why;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		set_cause(cause, "%s: cannot open the host key: %s", path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		set_cause(cause, "%s: the host key is open to group or others "
		    "(mode %04o); make it readable by its owner only (chmod "
		    "600 %s)", path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return NULL;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if ((key = PEM_read_PrivateKey(fp, NULL, NULL, (void *)"")) == NULL) {
		set_cause(cause, "%s: cannot load the host key: %s", path,
		    why = tls_errors());
		free(why);
	}
	fclose(fp);
	return key;
}

/* A certificate's serial number in upper-case hex (caller frees), or
 * NULL. */
static char *
tls_cert_serial(X509 *cert)
{
	BIGNUM	*bn;
	char	*hex, *s = NULL;

	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert),
	    NULL)) == NULL)
		return NULL;
	if ((hex = BN_bn2hex(bn)) != NULL)
		s = xstrdup(hex);
	OPENSSL_free(hex);
	BN_free(bn);
	return s;
}

/* After OpenSSL's own checks: a peer certificate on the revocation list
 * fails the handshake as revoked. */
static int
tls_verify(int ok, X509_STORE_CTX *x)
{
	SSL		*ssl;
	struct tls_ctx	*ctx;
	char		*serial;
	int		 revoked;

	if (!ok || X509_STORE_CTX_get_error_depth(x) != 0)
		return ok;
	ssl = X509_STORE_CTX_get_ex_data(x,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	if (ctx == NULL || ctx->revoked.n == 0)
		return ok;
	if ((serial = tls_cert_serial(X509_STORE_CTX_get_current_cert(x))) ==
	    NULL)
		return ok;
	revoked = pki_revoked_has(&ctx->revoked, serial);
	free(serial);
	if (!revoked)
		return ok;
	X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REVOKED);
	return 0;
}

struct tls_ctx *
tls_ctx_new(const char *ca_file, const char *cert_file, const char *key_file,
    const char *revoked_file, char **cause)
{
	struct tls_ctx	*ctx;
	X509		*cert;
	EVP_PKEY	*key = NULL;
	char		*why = NULL;

	ctx = xcalloc(1, sizeof *ctx);
	ctx->refs = 1;
	if ((ctx->ssl_ctx = SSL_CTX_new(TLS_method())) == NULL) {
		set_cause(cause, "cannot create TLS context: %s", why = tls_errors());
		goto fail;
	}
	SSL_CTX_set_min_proto_version(ctx->ssl_ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(ctx->ssl_ctx, TLS_CIPHERSUITES);
	SSL_CTX_set_num_tickets(ctx->ssl_ctx, 0);
	SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx->ssl_ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx->ssl_ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_app_data(ctx->ssl_ctx, ctx);
	SSL_CTX_set_verify(ctx->ssl_ctx,
	    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tls_verify);
	if (revoked_file != NULL && *revoked_file != '\0' &&
	    pki_revoked_load(revoked_file, &ctx->revoked, cause) != 0)
		goto fail;
	SSL_CTX_set_verify_depth(ctx->ssl_ctx, 2);

	if (SSL_CTX_load_verify_locations(ctx->ssl_ctx, ca_file, NULL) != 1) {
		set_cause(cause, "%s: cannot load the cluster CA: %s", ca_file,
		    why = tls_errors());
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx->ssl_ctx, cert_file) != 1) {
		set_cause(cause, "%s: cannot load the host certificate: %s",
		    cert_file, why = tls_errors());
		goto fail;
	}
	if ((key = tls_load_key(key_file, cause)) == NULL)
		goto fail;
	if (SSL_CTX_use_PrivateKey(ctx->ssl_ctx, key) != 1) {
		set_cause(cause, "%s: cannot use the host key: %s", key_file,
		    why = tls_errors());
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx->ssl_ctx) != 1) {
		set_cause(cause, "%s does not match %s: %s", key_file, cert_file,
		    why = tls_errors());
		goto fail;
	}
	cert = SSL_CTX_get0_certificate(ctx->ssl_ctx);
	if ((ctx->own_name = tls_cert_identity(cert, &why)) == NULL) {
		set_cause(cause, "%s: %s", cert_file, why);
		goto fail;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
		log_warnx("%s: our own certificate has expired; peers will "
		    "refuse this host until it is reissued (ternctl cert issue)",
		    cert_file);
	EVP_PKEY_free(key);
	return ctx;
fail:
	EVP_PKEY_free(key);
	free(why);
	tls_ctx_free(ctx);
	return NULL;
}

void
tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx == NULL || --ctx->refs > 0)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx->own_name);
	pki_revoked_free(&ctx->revoked);
	free(ctx);
}

const char *
tls_ctx_own_name(const struct tls_ctx *ctx)
{
	return ctx->own_name;
}

/* --- the BIO between OpenSSL and the event loop ------------------------
 *
 * The loop owns the socket: received ciphertext lands in the session's
 * input buffer (tls_in_space) and OpenSSL reads its records from there;
 * the records OpenSSL writes go into output buffers the loop hands to the
 * socket as they are (tls_take_buf).  A memory BIO would copy each byte
 * once more each way and zero what it grows. */

void
tls_give_buf(uint8_t *data)
{
	struct tls_obuf	*b;

	if (data == NULL)
		return;
	b = (struct tls_obuf *)(data - offsetof(struct tls_obuf, data));
	pthread_mutex_lock(&tls_spare_lock);
	if (tls_nspare < TLS_OBUF_SPARE) {
		b->next = tls_spare;
		tls_spare = b;
		tls_nspare++;
		b = NULL;
	}
	pthread_mutex_unlock(&tls_spare_lock);
	free(b);
}

static struct tls_obuf *
tls_obuf_new(void)
{
	struct tls_obuf	*b;

	pthread_mutex_lock(&tls_spare_lock);
	if ((b = tls_spare) != NULL) {
		tls_spare = b->next;
		tls_nspare--;
	}
	pthread_mutex_unlock(&tls_spare_lock);
	if (b == NULL)
		b = xmalloc(sizeof *b + TLS_OBUF_SIZE);
	b->size = TLS_OBUF_SIZE;
	b->next = NULL;
	b->len = 0;
	return b;
}

static int
tls_bio_write(BIO *bio, const char *buf, size_t len, size_t *written)
{
	struct tls	*t = BIO_get_data(bio);
	struct tls_obuf	*b = t->out_tail;
	size_t		 n, done = 0;

	while (done < len) {
		if (b == NULL || b->len == b->size) {
			b = tls_obuf_new();
			if (t->out_tail != NULL)
				t->out_tail->next = b;
			else
				t->out_head = b;
			t->out_tail = b;
		}
		n = b->size - b->len < len - done ? b->size - b->len : len - done;
		memcpy(b->data + b->len, buf + done, n);
		b->len += n;
		done += n;
	}
	t->out_pending += len;
	*written = len;
	return 1;
}

static int
tls_bio_read(BIO *bio, char *buf, size_t len, size_t *readbytes)
{
	struct tls	*t = BIO_get_data(bio);
	size_t		 n = t->in_end - t->in_start;

	BIO_clear_retry_flags(bio);
	if (n == 0) {
		/* Empty means "try again", not end of file. */
		BIO_set_retry_read(bio);
		*readbytes = 0;
		return 0;
	}
	if (n > len)
		n = len;
	memcpy(buf, t->in + t->in_start, n);
	t->in_start += n;
	*readbytes = n;
	return 1;
}

static long
tls_bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	struct tls	*t = BIO_get_data(bio);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return t != NULL ? (long)(t->in_end - t->in_start) : 0;
	case BIO_CTRL_WPENDING:
		return t != NULL ? (long)t->out_pending : 0;
	default:
		return 0;
	}
}

static BIO_METHOD	*tls_bio_meth;

static void
tls_bio_meth_init(void)
{
	BIO_METHOD	*m;

	if ((m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "tern loop")) == NULL ||
	    BIO_meth_set_write_ex(m, tls_bio_write) != 1 ||
	    BIO_meth_set_read_ex(m, tls_bio_read) != 1 ||
	    BIO_meth_set_ctrl(m, tls_bio_ctrl) != 1)
		fatalx("cannot set up the TLS BIO");
	tls_bio_meth = m;
}

static const BIO_METHOD *
tls_bio_method(void)
{
	static pthread_once_t	once = PTHREAD_ONCE_INIT;

	pthread_once(&once, tls_bio_meth_init);
	return tls_bio_meth;
}

struct tls *
tls_new(struct tls_ctx *ctx, int server, const char *expect_host)
{
	struct tls	*t;

	t = xcalloc(1, sizeof *t);
	t->ctx = ctx;
	ctx->refs++;
	t->server = server;
	if ((t->ssl = SSL_new(ctx->ssl_ctx)) == NULL)
		fatalx("SSL_new failed");
	if ((t->bio = BIO_new(tls_bio_method())) == NULL)
		fatalx("BIO_new failed");
	BIO_set_data(t->bio, t);
	BIO_set_init(t->bio, 1);
	SSL_set_bio(t->ssl, t->bio, t->bio);	/* one reference for both */
	if (server)
		SSL_set_accept_state(t->ssl);
	else {
		SSL_set_connect_state(t->ssl);
		if (expect_host != NULL) {
			t->expect_host = xstrdup(expect_host);
			/* The subjectAltName alone, never the CN. */
			SSL_set_hostflags(t->ssl,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
			    X509_CHECK_FLAG_NO_WILDCARDS |
			    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
			if (SSL_set1_host(t->ssl, expect_host) != 1)
				fatalx("SSL_set1_host failed");
		}
	}
	return t;
}

void
tls_free(struct tls *t)
{
	struct tls_obuf	*b;

	if (t == NULL)
		return;
	SSL_free(t->ssl);	/* and the BIO */
	while ((b = t->out_head) != NULL) {
		t->out_head = b->next;
		free(b);
	}
	free(t->in);
	free(t->peer_name);
	free(t->expect_host);
	free(t->peer_serial);
	tls_ctx_free(t->ctx);
	free(t);
}

uint8_t *
tls_in_space(struct tls *t, size_t size, size_t *room)
{
	size_t	have = t->in_end - t->in_start;

	if (have == 0)
		t->in_start = t->in_end = 0;
	if (t->in_size < size || t->in_size - t->in_end < size / 4) {
		/* OpenSSL reads all it is given unless the loop stopped
		 * asking it: what is left, if anything, moves forward. */
		if (t->in_start != 0) {
			memmove(t->in, t->in + t->in_start, have);
			t->in_start = 0;
			t->in_end = have;
		}
		if (t->in_size < size || t->in_size - have < size / 4) {
			t->in_size = have + size;
			t->in = xrealloc(t->in, t->in_size);
		}
	}
	*room = t->in_size - t->in_end;
	return t->in + t->in_end;
}

void
tls_in_commit(struct tls *t, size_t n)
{
	t->in_end += n;
}

size_t
tls_held_bound(const struct tls *t)
{
	return t->in_end - t->in_start + TLS_RECORD_MAX +
	    (size_t)SSL_pending(t->ssl);
}

/* Why the handshake failed, in words an operator can act on. */
static void
tls_handshake_cause(struct tls *t, char **cause)
{
	long	 vr = SSL_get_verify_result(t->ssl);
	char	*why = tls_errors();

	if (vr != X509_V_OK)
		set_cause(cause, "peer certificate rejected: %s (%s)",
		    X509_verify_cert_error_string(vr), why);
	else
		set_cause(cause, "TLS handshake failed: %s", why);
	free(why);
}

enum tls_status
tls_handshake(struct tls *t, char **cause)
{
	X509	*peer;
	char	*why = NULL;
	int	 rc, err;

	ERR_clear_error();
	if ((rc = SSL_do_handshake(t->ssl)) == 1) {
		if ((peer = SSL_get0_peer_certificate(t->ssl)) == NULL) {
			set_cause(cause, "peer presented no certificate");
			return TLS_ERROR;
		}
		/* The same rule both ways: the one subjectAltName names the
		 * peer (a client has also had OpenSSL check it names the
		 * host it dialled). */
		free(t->peer_name);
		if ((t->peer_name = tls_cert_identity(peer, &why)) == NULL) {
			set_cause(cause, "peer certificate rejected: %s", why);
			free(why);
			return TLS_ERROR;
		}
		free(t->peer_serial);
		t->peer_serial = tls_cert_serial(peer);
		if (t->expect_host != NULL &&
		    strcmp(t->peer_name, t->expect_host) != 0) {
			set_cause(cause, "peer certificate rejected: it names "
			    "%s, not %s", t->peer_name, t->expect_host);
			return TLS_ERROR;
		}
		return TLS_DONE;
	}
	err = SSL_get_error(t->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return TLS_AGAIN;
	tls_handshake_cause(t, cause);
	return TLS_ERROR;
}

size_t
tls_read(struct tls *t, void *buf, size_t len, enum tls_status *status,
    char **cause)
{
	size_t	 n = 0;
	int	 err;
	char	*why;

	/* SSL_get_error needs an empty queue; emptying one that is empty
	 * cost more than 1% of a stream's receiving ternd (one call a
	 * record). */
	if (ERR_peek_error() != 0)
		ERR_clear_error();
	if (SSL_read_ex(t->ssl, buf, len, &n) == 1) {
		*status = TLS_DONE;
		return n;
	}
	err = SSL_get_error(t->ssl, 0);
	switch (err) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		*status = TLS_AGAIN;
		break;
	case SSL_ERROR_ZERO_RETURN:
		*status = TLS_CLOSED;
		break;
	default:
		*status = TLS_ERROR;
		set_cause(cause, "TLS read failed: %s", why = tls_errors());
		free(why);
		break;
	}
	return 0;
}

int
tls_write(struct tls *t, const void *buf, size_t len, char **cause)
{
	size_t	 n;
	char	*why;

	if (len == 0)
		return 0;
	if (ERR_peek_error() != 0)
		ERR_clear_error();
	/* Our BIO takes everything, so a write is whole or fails for good. */
	if (SSL_write_ex(t->ssl, buf, len, &n) != 1 || n != len) {
		set_cause(cause, "TLS write failed: %s", why = tls_errors());
		free(why);
		return -1;
	}
	return 0;
}

size_t
tls_pending(struct tls *t)
{
	return t->out_pending;
}

uint8_t *
tls_take_buf(struct tls *t, size_t *len)
{
	struct tls_obuf	*b;

	if ((b = t->out_head) == NULL || b->len == 0) {
		*len = 0;
		return NULL;
	}
	if ((t->out_head = b->next) == NULL)
		t->out_tail = NULL;
	t->out_pending -= b->len;
	*len = b->len;
	return b->data;
}

const char *
tls_peer_name(const struct tls *t)
{
	return t->peer_name;
}

const char *
tls_peer_serial(const struct tls *t)
{
	return t->peer_serial;
}

size_t
tls_ctx_nrevoked(const struct tls_ctx *ctx)
{
	return ctx->revoked.n;
}

int
tls_ctx_revoked(const struct tls_ctx *ctx, const char *serial)
{
	return serial != NULL && pki_revoked_has(&ctx->revoked, serial);
}

const char *
tls_cipher(const struct tls *t)
{
	return SSL_get_cipher_name(t->ssl);
}
