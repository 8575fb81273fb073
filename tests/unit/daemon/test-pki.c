/* Unit tests for daemon/pki.c: the cluster CA and host certificates. */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "daemon/pki.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define DAY	86400L

struct fixture {
	char	*dir;		/* the mkdtemp directory */
	char	*ca;		/* dir/ca/sub: the CA, with a missing parent */
	char	*ca2;		/* dir/ca2: another CA */
	char	*out;		/* dir/out: issued certificates */
};

static char *
join(const char *a, const char *b)
{
	char	*s;

	xasprintf(&s, "%s/%s", a, b);
	return s;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 ? 0 : -1;
}

static int
setup(void **state)
{
	struct fixture	*f;
	const char	*tmpdir;

	f = xcalloc(1, sizeof *f);
	if ((tmpdir = getenv("TMPDIR")) == NULL || *tmpdir == '\0')
		tmpdir = "/tmp";
	xasprintf(&f->dir, "%s/tern-test-pki.XXXXXX", tmpdir);
	if (mkdtemp(f->dir) == NULL) {
		free(f->dir);
		free(f);
		return -1;
	}
	f->ca = join(f->dir, "ca/sub");
	f->ca2 = join(f->dir, "ca2");
	f->out = join(f->dir, "out");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	int		 rc;

	rc = nftw(f->dir, rm_entry, 16, FTW_DEPTH|FTW_PHYS);
	free(f->out);
	free(f->ca2);
	free(f->ca);
	free(f->dir);
	free(f);
	return rc;
}

static void
assert_cause(char **cause, const char *needle)
{
	if (*cause == NULL)
		fail_msg("no cause set, wanted one with \"%s\"", needle);
	if (strstr(*cause, needle) == NULL)
		fail_msg("cause \"%s\" does not mention \"%s\"", *cause, needle);
}

static void
assert_fails(int rc, char **cause, const char *needle, const char *needle2)
{
	assert_int_equal(rc, -1);
	assert_cause(cause, needle);
	if (needle2 != NULL)
		assert_cause(cause, needle2);
	free(*cause);
	*cause = NULL;
}

static void
assert_ok(int rc, char **cause)
{
	if (rc != 0)
		fail_msg("failed: %s", *cause != NULL ? *cause : "(no cause)");
	assert_null(*cause);
}

static mode_t
file_mode(const char *dir, const char *name)
{
	struct stat	 sb;
	char		*path;

	path = name != NULL ? join(dir, name) : xstrdup(dir);
	if (stat(path, &sb) == -1)
		fail_msg("%s: cannot stat", path);
	free(path);
	return sb.st_mode & 07777;
}

static size_t
count_entries(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	size_t		 n = 0;

	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	}
	closedir(d);
	return n;
}

static X509 *
load_cert(const char *dir, const char *name)
{
	FILE	*fp;
	X509	*x;
	char	*path;

	path = join(dir, name);
	if ((fp = fopen(path, "r")) == NULL)
		fail_msg("%s: cannot open", path);
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (x == NULL)
		fail_msg("%s: not a certificate", path);
	free(path);
	return x;
}

static EVP_PKEY *
load_key(const char *dir, const char *name)
{
	FILE		*fp;
	EVP_PKEY	*key;
	char		*path;

	path = join(dir, name);
	if ((fp = fopen(path, "r")) == NULL)
		fail_msg("%s: cannot open", path);
	key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	if (key == NULL)
		fail_msg("%s: not a private key", path);
	free(path);
	return key;
}

static char *
read_all(const char *path)
{
	FILE	*fp;
	char	*buf;
	long	 len;

	if ((fp = fopen(path, "r")) == NULL)
		fail_msg("%s: cannot open", path);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	rewind(fp);
	buf = xmalloc((size_t)len + 1);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	buf[len] = '\0';
	fclose(fp);
	return buf;
}

static int
ext_critical(X509 *x, int nid)
{
	int	 i;

	i = X509_get_ext_by_NID(x, nid, -1);
	assert_true(i >= 0);
	return X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

static char *
serial_of(const char *path)
{
	struct pki_cert_info	 info;
	char			*cause = NULL, *serial;

	assert_ok(pki_cert_info(path, &info, &cause), &cause);
	serial = xstrdup(info.serial);
	pki_cert_info_free(&info);
	return serial;
}

static void
test_ca_init(void **state)
{
	struct fixture		*f = *state;
	struct pki_cert_info	 info;
	X509			*x;
	EVP_PKEY		*key;
	BIGNUM			*serial;
	char			*cause = NULL, *path, group[64];

	assert_ok(pki_ca_init(f->ca, NULL, 30, 0, &cause), &cause);

	assert_int_equal(file_mode(f->ca, NULL), 0700);
	assert_int_equal(file_mode(f->ca, PKI_CA_KEY), 0600);
	assert_int_equal(file_mode(f->ca, PKI_CA_CERT), 0644);
	assert_int_equal(count_entries(f->ca), 2);	/* no temporary left */

	x = load_cert(f->ca, PKI_CA_CERT);
	key = load_key(f->ca, PKI_CA_KEY);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(X509_check_ca(x), 1);
	assert_int_equal(X509_get_pathlen(x), 0);
	assert_int_equal(ext_critical(x, NID_basic_constraints), 1);
	assert_int_equal(ext_critical(x, NID_key_usage), 1);
	assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN|KU_CRL_SIGN);
	assert_non_null(X509_get0_subject_key_id(x));
	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
	assert_int_equal(X509_check_private_key(x, key), 1);
	assert_true(EVP_PKEY_is_a(key, "EC"));
	assert_int_equal(EVP_PKEY_get_group_name(key, group, sizeof group,
	    NULL), 1);
	assert_string_equal(group, "prime256v1");

	assert_non_null(serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x),
	    NULL));
	assert_false(BN_is_negative(serial));
	assert_true(BN_num_bits(serial) > 64 && BN_num_bits(serial) <= 127);
	BN_free(serial);
	EVP_PKEY_free(key);
	X509_free(x);

	path = join(f->ca, PKI_CA_CERT);
	assert_ok(pki_cert_info(path, &info, &cause), &cause);
	assert_string_equal(info.subject_cn, PKI_CA_NAME);
	assert_string_equal(info.issuer_cn, PKI_CA_NAME);
	assert_int_equal(info.ndns, 0);
	assert_int_equal(info.not_after - info.not_before, 30 * DAY + 3600);
	assert_true(labs((long)(info.not_after - (time(NULL) + 30 * DAY))) <
	    60);
	assert_true(labs((long)(info.not_before - (time(NULL) - 3600))) < 60);
	pki_cert_info_free(&info);
	free(path);

	/* A name of our own. */
	assert_ok(pki_ca_init(f->ca2, "acme cluster", 1, 0, &cause), &cause);
	path = join(f->ca2, PKI_CA_CERT);
	assert_ok(pki_cert_info(path, &info, &cause), &cause);
	assert_string_equal(info.subject_cn, "acme cluster");
	pki_cert_info_free(&info);
	free(path);
}

static void
test_ca_init_refuses_second(void **state)
{
	struct fixture	*f = *state;
	char		*cause = NULL, *path, *first, *again, *forced;

	path = join(f->ca, PKI_CA_CERT);
	assert_ok(pki_ca_init(f->ca, NULL, 30, 0, &cause), &cause);
	first = serial_of(path);

	assert_fails(pki_ca_init(f->ca, NULL, 30, 0, &cause), &cause,
	    PKI_CA_KEY, "already exists");
	again = serial_of(path);
	assert_string_equal(first, again);

	assert_ok(pki_ca_init(f->ca, NULL, 30, 1, &cause), &cause);
	forced = serial_of(path);
	assert_string_not_equal(first, forced);
	assert_int_equal(count_entries(f->ca), 2);

	free(forced);
	free(again);
	free(first);
	free(path);
}

static void
test_ca_init_bad_args(void **state)
{
	struct fixture	*f = *state;
	char		*cause = NULL, *file, *under;

	assert_fails(pki_ca_init(f->ca, NULL, 0, 0, &cause), &cause,
	    "out of range", NULL);
	assert_fails(pki_ca_init(f->ca, NULL, PKI_DAYS_MAX + 1, 0, &cause),
	    &cause, "out of range", NULL);
	assert_fails(pki_ca_init(f->ca, "", 30, 0, &cause), &cause,
	    "CA name", NULL);
	assert_fails(pki_ca_init(f->ca, "a\nb", 30, 0, &cause), &cause,
	    "control character", NULL);
	assert_fails(pki_ca_init("", NULL, 30, 0, &cause), &cause,
	    "no CA directory", NULL);

	/* A regular file where the directory, or a parent, should be. */
	assert_ok(pki_ca_init(f->ca2, NULL, 30, 0, &cause), &cause);
	file = join(f->ca2, PKI_CA_CERT);
	under = join(file, "x");
	assert_fails(pki_ca_init(file, NULL, 30, 0, &cause), &cause,
	    "not a directory", NULL);
	assert_fails(pki_ca_init(under, NULL, 30, 0, &cause), &cause,
	    "cannot create directory", NULL);
	free(under);
	free(file);
}

static void
test_cert_issue(void **state)
{
	struct fixture	*f = *state;
	X509		*ca, *x;
	EVP_PKEY	*key;
	char		*cause = NULL, *path, *a, *b;

	assert_ok(pki_ca_init(f->ca, NULL, 30, 0, &cause), &cause);
	assert_ok(pki_cert_issue(f->ca, "alpha", f->out, PKI_CERT_DAYS,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause);

	assert_int_equal(file_mode(f->out, NULL), 0700);
	assert_int_equal(file_mode(f->out, "alpha.pem"), 0644);
	assert_int_equal(file_mode(f->out, "alpha.key"), 0600);
	assert_int_equal(file_mode(f->out, PKI_CA_CERT), 0644);
	assert_int_equal(count_entries(f->out), 3);

	/* The copy of the CA certificate is the CA certificate. */
	path = join(f->ca, PKI_CA_CERT);
	a = read_all(path);
	free(path);
	path = join(f->out, PKI_CA_CERT);
	b = read_all(path);
	free(path);
	assert_string_equal(a, b);
	free(b);
	free(a);

	ca = load_cert(f->ca, PKI_CA_CERT);
	x = load_cert(f->out, "alpha.pem");
	key = load_key(f->out, "alpha.key");
	assert_int_equal(X509_check_private_key(x, key), 1);
	assert_int_equal(X509_check_ca(x), 0);
	assert_int_equal(X509_check_issued(ca, x), X509_V_OK);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(ca)), 1);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(x),
	    XKU_SSL_SERVER|XKU_SSL_CLIENT);
	assert_int_equal(ext_critical(x, NID_basic_constraints), 1);
	assert_non_null(X509_get0_subject_key_id(x));
	assert_non_null(X509_get0_authority_key_id(x));
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
	    X509_get0_subject_key_id(ca)), 0);
	assert_true(EVP_PKEY_is_a(key, "EC"));
	EVP_PKEY_free(key);
	X509_free(x);
	X509_free(ca);

	/* Right host, no host. */
	path = join(f->out, "alpha.pem");
	a = join(f->out, PKI_CA_CERT);
	assert_ok(pki_cert_verify(a, path, "alpha", &cause), &cause);
	assert_ok(pki_cert_verify(a, path, NULL, &cause), &cause);
	free(a);
	free(path);

	/* Into the CA directory; reissuing replaces the files. */
	assert_ok(pki_cert_issue(f->ca, "beta-2", f->ca, 1,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause);
	assert_ok(pki_cert_issue(f->ca, "beta-2", f->ca, 1,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause);
	assert_int_equal(count_entries(f->ca), 4);
	assert_int_equal(file_mode(f->ca, "beta-2.key"), 0600);
}

static void
test_verify_wrong_host(void **state)
{
	struct fixture	*f = *state;
	char		*cause = NULL, *ca, *cert;

	assert_ok(pki_ca_init(f->ca, NULL, 30, 0, &cause), &cause);
	assert_ok(pki_cert_issue(f->ca, "alpha", f->out, 30,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause);
	ca = join(f->ca, PKI_CA_CERT);
	cert = join(f->out, "alpha.pem");
	assert_fails(pki_cert_verify(ca, cert, "beta", &cause), &cause,
	    "names DNS:alpha", "not \"beta\"");
	assert_fails(pki_cert_verify(ca, cert, "alph", &cause), &cause,
	    "alpha.pem", "not \"alph\"");
	assert_fails(pki_cert_verify(ca, cert, "x.alpha", &cause), &cause,
	    "DNS:alpha", "x.alpha");
	free(cert);
	free(ca);
}

static void
test_verify_other_ca(void **state)
{
	struct fixture	*f = *state;
	char		*cause = NULL, *ca, *cert, *ca3;

	/* Same name, different key: the default CN in both clusters. */
	assert_ok(pki_ca_init(f->ca, NULL, 30, 0, &cause), &cause);
	assert_ok(pki_ca_init(f->ca2, NULL, 30, 0, &cause), &cause);
	assert_ok(pki_cert_issue(f->ca2, "alpha", f->out, 30,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause);
	ca = join(f->ca, PKI_CA_CERT);
	cert = join(f->out, "alpha.pem");
	assert_fails(pki_cert_verify(ca, cert, "alpha", &cause), &cause,
	    "not issued by the CA in", "same name");
	free(cert);

	/* A differently named CA. */
	ca3 = join(f->dir, "ca3");
	assert_ok(pki_ca_init(ca3, "other cluster", 30, 0, &cause), &cause);
	assert_ok(pki_cert_issue(ca3, "gamma", ca3, 30,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause);
	cert = join(ca3, "gamma.pem");
	assert_fails(pki_cert_verify(ca, cert, NULL, &cause), &cause,
	    "unknown CA", "\"other cluster\"");

	/* A host certificate is no CA. */
	free(ca);
	ca = join(f->out, "alpha.pem");
	assert_fails(pki_cert_verify(ca, cert, NULL, &cause), &cause,
	    "not issued by", NULL);

	free(cert);
	free(ca3);
	free(ca);
}

static void
test_verify_expired(void **state)
{
	struct fixture		*f = *state;
	struct pki_cert_info	 info;
	char			*cause = NULL, *ca, *cert;
	time_t			 now;

	assert_ok(pki_ca_init(f->ca, NULL, 30, 0, &cause), &cause);
	assert_ok(pki_cert_issue(f->ca, "alpha", f->out, 1, -10 * DAY,
	    &cause), &cause);
	ca = join(f->ca, PKI_CA_CERT);
	cert = join(f->out, "alpha.pem");
	assert_fails(pki_cert_verify(ca, cert, "alpha", &cause), &cause,
	    "alpha.pem: certificate expired on", " UTC");

	now = time(NULL);
	assert_ok(pki_cert_info(cert, &info, &cause), &cause);
	assert_true(labs((long)(info.not_before - (now - 10 * DAY))) < 60);
	assert_true(labs((long)(info.not_after - (now - 9 * DAY))) < 60);
	pki_cert_info_free(&info);

	/* Not valid until tomorrow. */
	assert_ok(pki_cert_issue(f->ca, "alpha", f->out, 2, DAY, &cause),
	    &cause);
	assert_fails(pki_cert_verify(ca, cert, "alpha", &cause), &cause,
	    "not yet valid", "valid from");
	free(cert);
	free(ca);
}

static void
test_bad_host(void **state)
{
	static const char	*bad[] = {
		"", "-alpha", "alpha-", "-", "Alpha", "al.pha", "al_pha",
		"al pha", "alpha\n", "\xc3\xa9t\xc3\xa9",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	static const char	*good[] = {
		"a", "0", "a-b", "node-17", "x1",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	struct fixture		*f = *state;
	char			*cause = NULL;
	size_t			 i;

	assert_ok(pki_ca_init(f->ca, NULL, 30, 0, &cause), &cause);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_fails(pki_host_valid(bad[i], &cause), &cause,
		    "host name", NULL);
		assert_fails(pki_cert_issue(f->ca, bad[i], f->out, 30,
		    PKI_NOT_BEFORE_OFFSET, &cause), &cause, "host name", NULL);
	}
	assert_fails(pki_host_valid(NULL, &cause), &cause, "empty", NULL);
	assert_fails(pki_host_valid("a.b", &cause), &cause, "'.'", NULL);
	assert_fails(pki_host_valid("a\tb", &cause), &cause, "0x09", NULL);
	assert_fails(pki_host_valid(bad[10], &cause), &cause, "at most 63",
	    NULL);
	for (i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_ok(pki_host_valid(good[i], &cause), &cause);
	assert_int_equal(access(f->out, F_OK), -1);	/* nothing written */

	assert_ok(pki_cert_issue(f->ca, good[5], f->out, 30,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause);
}

static void
test_cert_info(void **state)
{
	struct fixture		*f = *state;
	struct pki_cert_info	 info;
	X509			*x;
	BIGNUM			*bn;
	char			*cause = NULL, *cert, *hex, *junk;
	time_t			 now;
	FILE			*fp;

	assert_ok(pki_ca_init(f->ca, "info CA", 30, 0, &cause), &cause);
	now = time(NULL);
	assert_ok(pki_cert_issue(f->ca, "alpha", f->out, 825,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause);
	cert = join(f->out, "alpha.pem");
	assert_ok(pki_cert_info(cert, &info, &cause), &cause);
	assert_string_equal(info.subject_cn, "alpha");
	assert_string_equal(info.issuer_cn, "info CA");
	assert_int_equal(info.ndns, 1);
	assert_string_equal(info.dns[0], "alpha");
	assert_true(labs((long)(info.not_before - (now - 3600))) < 60);
	assert_int_equal(info.not_after - info.not_before, 825 * DAY);

	x = load_cert(f->out, "alpha.pem");
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	hex = BN_bn2hex(bn);
	assert_string_equal(info.serial, hex);
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(x);
	pki_cert_info_free(&info);
	pki_cert_info_free(&info);	/* harmless twice */

	/* Not a certificate; no file at all. */
	junk = join(f->dir, "junk.pem");
	assert_non_null(fp = fopen(junk, "w"));
	fputs("hello\n", fp);
	fclose(fp);
	assert_fails(pki_cert_info(junk, &info, &cause), &cause,
	    "junk.pem: cannot read certificate: error:", NULL);
	assert_null(info.serial);
	assert_fails(pki_cert_verify(junk, cert, NULL, &cause), &cause,
	    "junk.pem: cannot read certificate", NULL);
	free(junk);
	junk = join(f->dir, "nothere.pem");
	assert_fails(pki_cert_info(junk, &info, &cause), &cause,
	    "nothere.pem: No such file", NULL);
	assert_fails(pki_cert_verify(junk, cert, NULL, &cause), &cause,
	    "nothere.pem: No such file", NULL);
	free(junk);
	free(cert);
}

static void
test_missing_ca(void **state)
{
	struct fixture	*f = *state;
	char		*cause = NULL, *nope, *path, *path2;

	nope = join(f->dir, "nope");
	assert_fails(pki_cert_issue(nope, "alpha", f->out, 30,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause, nope,
	    "no such CA directory");

	/* A directory, but no CA in it. */
	assert_fails(pki_cert_issue(f->dir, "alpha", f->out, 30,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause, "/ca.pem: ",
	    "No such file");

	/* A certificate without its key. */
	assert_ok(pki_ca_init(f->ca, NULL, 30, 0, &cause), &cause);
	path = join(f->ca, PKI_CA_KEY);
	assert_int_equal(unlink(path), 0);
	assert_fails(pki_cert_issue(f->ca, "alpha", f->out, 30,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause, path, "No such file");

	/* The key of another CA. */
	assert_ok(pki_ca_init(f->ca2, NULL, 30, 0, &cause), &cause);
	path2 = join(f->ca2, PKI_CA_KEY);
	assert_int_equal(rename(path2, path), 0);
	assert_fails(pki_cert_issue(f->ca, "alpha", f->out, 30,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause, path, "does not match");

	/* A key that is not a key. */
	assert_int_equal(truncate(path, 10), 0);
	assert_fails(pki_cert_issue(f->ca, "alpha", f->out, 30,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause, path,
	    "cannot read private key: error:");

	/* Validity bounds. */
	assert_fails(pki_cert_issue(f->ca2, "alpha", f->out, 0,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause, "out of range", NULL);
	assert_fails(pki_cert_issue(f->ca2, "alpha", f->out, 30,
	    PKI_OFFSET_MAX + 1, &cause), &cause, "out of range",
	    NULL);
	assert_fails(pki_cert_issue(f->ca2, "alpha", "", 30,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause, "output directory", NULL);

	free(path2);
	free(path);
	free(nope);
}

static void
test_path(void **state)
{
	static const char	*cases[][3] = {
		{ "a", "x", "a/x" },
		{ "a/", "x", "a/x" },
		{ "a//", "x", "a/x" },
		{ "/", "x", "/x" },
		{ "/etc/tern/pki", "ca.pem", "/etc/tern/pki/ca.pem" },
		{ "", "x", "x" },
	};
	char			*p;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		p = pki_path(cases[i][0], cases[i][1]);
		assert_string_equal(p, cases[i][2]);
		free(p);
	}
}

/* A certificate from the cluster CA naming its host only in the CN: ternd
 * refuses it, so cert verify --host must too. */
static void
test_verify_cn_only(void **state)
{
	struct fixture	*f = *state;
	X509		*ca, *x;
	X509_NAME	*name;
	EVP_PKEY	*key;
	char		*cause = NULL, *ca_path, *path;
	FILE		*fp;

	assert_ok(pki_ca_init(f->ca, NULL, 30, 0, &cause), &cause);
	ca = load_cert(f->ca, PKI_CA_CERT);
	key = load_key(f->ca, PKI_CA_KEY);
	x = X509_new();
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 77);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	name = X509_NAME_new();
	X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
	    (const unsigned char *)"alpha", -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_NAME_free(name);
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	path = join(f->dir, "cn-only.pem");
	fp = fopen(path, "w");
	assert_non_null(fp);
	PEM_write_X509(fp, x);
	fclose(fp);
	ca_path = join(f->ca, PKI_CA_CERT);
	assert_ok(pki_cert_verify(ca_path, path, NULL, &cause), &cause);
	assert_fails(pki_cert_verify(ca_path, path, "alpha", &cause), &cause,
	    "certificate names CN \"alpha\", not \"alpha\"", NULL);
	free(ca_path);
	free(path);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(key);
}

/* The revocation list: parsed strictly, compared without regard to case or
 * leading zeros, appended to once per serial. */
static void
test_revoked(void **state)
{
	struct fixture		*f = *state;
	struct pki_revoked	 r;
	struct pki_cert_info	 info;
	const char		*text = "# comment\n\n  00AB12  # host x\n"
	    "ff\r\n7\n";
	char			*cause = NULL, *list, *cert, *body;
	int			 added;

	assert_ok(pki_revoked_parse(text, strlen(text), "L", &r, &cause),
	    &cause);
	assert_int_equal(r.n, 3);
	assert_true(pki_revoked_has(&r, "AB12"));
	assert_true(pki_revoked_has(&r, "ab12"));
	assert_true(pki_revoked_has(&r, "000FF"));
	assert_true(pki_revoked_has(&r, "7"));
	assert_false(pki_revoked_has(&r, "AB1"));
	assert_false(pki_revoked_has(&r, "zz"));
	pki_revoked_free(&r);
	assert_fails(pki_revoked_parse("AB\nnot hex\n", 11, "L", &r, &cause),
	    &cause, "L:2: not a serial number", NULL);
	assert_int_equal(r.n, 0);

	/* A missing list revokes nothing. */
	list = join(f->dir, "revoked");
	assert_ok(pki_revoked_load(list, &r, &cause), &cause);
	assert_int_equal(r.n, 0);

	assert_ok(pki_ca_init(f->ca, NULL, 30, 0, &cause), &cause);
	assert_ok(pki_cert_issue(f->ca, "alpha", f->out, 30,
	    PKI_NOT_BEFORE_OFFSET, &cause), &cause);
	cert = join(f->out, "alpha.pem");
	assert_ok(pki_cert_info(cert, &info, &cause), &cause);
	assert_ok(pki_revoke(list, cert, NULL, &added, &cause), &cause);
	assert_int_equal(added, 1);
	assert_ok(pki_revoke(list, NULL, info.serial, &added, &cause), &cause);
	assert_int_equal(added, 0);
	assert_ok(pki_revoke(list, NULL, "0abc", &added, &cause), &cause);
	assert_int_equal(added, 1);
	assert_fails(pki_revoke(list, NULL, "xyz", &added, &cause), &cause,
	    "not a serial number", NULL);
	assert_ok(pki_revoked_load(list, &r, &cause), &cause);
	assert_int_equal(r.n, 2);
	assert_true(pki_revoked_has(&r, info.serial));
	assert_true(pki_revoked_has(&r, "ABC"));
	pki_revoked_free(&r);
	body = read_file_bounded(list, 1 << 20, NULL, NULL);
	assert_non_null(strstr(body, "DNS:alpha revoked"));
	/* Written as given (upper case), leading zeros and all. */
	assert_non_null(strstr(body, "\n0ABC  # serial revoked"));
	free(body);
	pki_cert_info_free(&info);
	free(cert);
	free(list);
}

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		cmocka_unit_test_setup_teardown(test_ca_init, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_init_refuses_second,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_init_bad_args, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cert_issue, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verify_wrong_host, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verify_other_ca, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verify_expired, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cert_info, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_missing_ca, setup,
		    teardown),
		cmocka_unit_test(test_path),
		cmocka_unit_test_setup_teardown(test_revoked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_cn_only, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
