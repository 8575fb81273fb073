#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "daemon/pki.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define PKI_CURVE		"P-256"
#define PKI_SERIAL_BYTES	16
#define PKI_CA_NOT_BEFORE	(-3600L)

struct pki_ext {
	int		 nid;
	const char	*value;
};

static void	pki_ssl_cause(char **, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* Set *cause to "MESSAGE: OPENSSL REASON" from the oldest error in
 * OpenSSL's queue, and empty the queue. */
static void
pki_ssl_cause(char **cause, const char *fmt, ...)
{
	va_list		 ap;
	char		*msg = NULL;
	char		 reason[256];
	unsigned long	 e;

	if ((e = ERR_get_error()) == 0)
		snprintf(reason, sizeof reason, "unknown OpenSSL error");
	else
		ERR_error_string_n(e, reason, sizeof reason);
	ERR_clear_error();
	if (cause == NULL)
		return;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	set_cause(cause, "%s: %s", msg, reason);
	free(msg);
}

char *
pki_path(const char *dir, const char *file)
{
	char	*path;
	size_t	 len;

	len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (len == 0)
		path = xstrdup(file);
	else if (len == 1 && dir[0] == '/')
		xasprintf(&path, "/%s", file);
	else
		xasprintf(&path, "%.*s/%s", (int)len, dir, file);
	return path;
}

/* The directory part of path: "." if none. */
static char *
pki_dirname(const char *path)
{
	const char	*slash;

	if ((slash = strrchr(path, '/')) == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/* Replace control characters so a name from a certificate prints safely. */
static char *
pki_sanitize(const unsigned char *data, size_t len)
{
	char	*s;
	size_t	 i;

	s = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		if (data[i] < 0x20 || data[i] == 0x7f)
			s[i] = '?';
		else
			s[i] = (char)data[i];
	}
	s[len] = '\0';
	return s;
}

int
pki_host_valid(const char *host, char **cause)
{
	if (host == NULL)
		host = "";
	return host_name_check(host, strlen(host), cause);
}

static int
pki_days_valid(int days, char **cause)
{
	if (days < 1 || days > PKI_DAYS_MAX) {
		set_cause(cause, "validity of %d days is out of range (1..%d)",
		    days, PKI_DAYS_MAX);
		return -1;
	}
	return 0;
}

/* Create dir and any missing parents, 0700; it must end up a directory. */
static int
pki_mkdirs(const char *dir, char **cause)
{
	char		*copy = NULL, *p, c;
	struct stat	 sb;
	int		 rc = -1;

	copy = xstrdup(dir);
	for (p = copy + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		if (mkdir(copy, 0700) == -1 && errno != EEXIST) {
			set_cause(cause, "%s: cannot create directory: %s",
			    copy, strerror(errno));
			goto out;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	if (stat(dir, &sb) == -1) {
		set_cause(cause, "%s: %s", dir, strerror(errno));
		goto out;
	}
	if (!S_ISDIR(sb.st_mode)) {
		set_cause(cause, "%s: not a directory", dir);
		goto out;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

/* Write len bytes to path atomically: a temporary file in the same
 * directory, created with mode, synced, renamed over path, then the
 * directory synced. */
static int
pki_write_file(const char *path, mode_t mode, const void *data, size_t len,
    char **cause)
{
	char		*tmp = NULL, *dir = NULL;
	const char	*p = data;
	ssize_t		 n;
	int		 fd = -1, dfd = -1, created = 0, rc = -1;

	xasprintf(&tmp, "%s.tmp.XXXXXX", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		set_cause(cause, "%s: cannot create temporary file: %s", path,
		    strerror(errno));
		goto out;
	}
	created = 1;
	if (fchmod(fd, mode) == -1) {
		set_cause(cause, "%s: chmod: %s", tmp, strerror(errno));
		goto out;
	}
	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			set_cause(cause, "%s: write: %s", tmp, strerror(errno));
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) == -1) {
		set_cause(cause, "%s: fsync: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		set_cause(cause, "%s: close: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		set_cause(cause, "%s: cannot rename %s into place: %s", path,
		    tmp, strerror(errno));
		goto out;
	}
	created = 0;

	dir = pki_dirname(path);
	if ((dfd = open(dir, O_RDONLY|O_DIRECTORY|O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1) {
		set_cause(cause, "%s: cannot sync directory: %s", dir,
		    strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (dfd != -1)
		close(dfd);
	if (fd != -1)
		close(fd);
	if (created)
		unlink(tmp);
	free(dir);
	free(tmp);
	return rc;
}

/* Write a certificate or a private key (PKCS#8, unencrypted) as PEM.  The
 * key goes through secure memory, which is wiped when freed. */
static int
pki_write_pem(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key,
    char **cause)
{
	BIO	*bio = NULL;
	char	*data;
	long	 len;
	int	 rc = -1;

	if ((bio = BIO_new(key != NULL ? BIO_s_secmem() : BIO_s_mem())) ==
	    NULL) {
		pki_ssl_cause(cause, "%s: cannot allocate buffer", path);
		goto out;
	}
	if (cert != NULL && !PEM_write_bio_X509(bio, cert)) {
		pki_ssl_cause(cause, "%s: cannot encode certificate", path);
		goto out;
	}
	if (key != NULL &&
	    !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
		pki_ssl_cause(cause, "%s: cannot encode private key", path);
		goto out;
	}
	if ((len = BIO_get_mem_data(bio, &data)) <= 0) {
		pki_ssl_cause(cause, "%s: cannot encode PEM", path);
		goto out;
	}
	rc = pki_write_file(path, mode, data, (size_t)len, cause);
out:
	BIO_free(bio);
	return rc;
}

/* Never prompt on the terminal for a passphrase: tern's keys have none. */
static int
pki_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

static X509 *
pki_read_cert(const char *path, char **cause)
{
	FILE	*f = NULL;
	X509	*cert = NULL;

	if ((f = fopen(path, "re")) == NULL) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((cert = PEM_read_X509(f, NULL, pki_no_passphrase, NULL)) == NULL)
		pki_ssl_cause(cause, "%s: cannot read certificate", path);
out:
	if (f != NULL)
		fclose(f);
	return cert;
}

static EVP_PKEY *
pki_read_key(const char *path, char **cause)
{
	FILE		*f = NULL;
	EVP_PKEY	*key = NULL;

	if ((f = fopen(path, "re")) == NULL) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((key = PEM_read_PrivateKey(f, NULL, pki_no_passphrase,
	    NULL)) == NULL)
		pki_ssl_cause(cause, "%s: cannot read private key", path);
out:
	if (f != NULL)
		fclose(f);
	return key;
}

static EVP_PKEY *
pki_keygen(const char *path, char **cause)
{
	EVP_PKEY	*key;

	if ((key = EVP_EC_gen(PKI_CURVE)) == NULL)
		pki_ssl_cause(cause, "%s: cannot generate %s key", path,
		    PKI_CURVE);
	return key;
}

/* A random positive serial number of (at most) 128 bits. */
static int
pki_set_serial(X509 *cert, char **cause)
{
	unsigned char	 buf[PKI_SERIAL_BYTES];
	BIGNUM		*bn = NULL;
	ASN1_INTEGER	*serial = NULL;
	int		 rc = -1;

	if (RAND_bytes(buf, sizeof buf) != 1) {
		pki_ssl_cause(cause, "cannot generate a serial number");
		goto out;
	}
	buf[0] &= 0x7f;
	if ((bn = BN_bin2bn(buf, sizeof buf, NULL)) == NULL ||
	    (BN_is_zero(bn) && !BN_one(bn)) ||
	    (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    !X509_set_serialNumber(cert, serial)) {
		pki_ssl_cause(cause, "cannot set serial number");
		goto out;
	}
	rc = 0;
out:
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	return rc;
}

/* Build and sign a certificate for key with CN cn, valid from
 * now + before_s until now + after_days days + after_s.  It is signed by
 * issuer_key and names issuer as its issuer, or is self-signed if issuer
 * is NULL. */
static X509 *
pki_make_cert(const char *path, EVP_PKEY *key, const char *cn, X509 *issuer,
    EVP_PKEY *issuer_key, long before_s, int after_days, long after_s,
    const struct pki_ext *exts, size_t nexts, char **cause)
{
	X509		*cert = NULL;
	X509_NAME	*name = NULL;
	X509_EXTENSION	*ext = NULL;
	X509V3_CTX	 ctx;
	time_t		 now;
	size_t		 i;
	int		 ok = 0;

	now = time(NULL);
	if ((cert = X509_new()) == NULL || (name = X509_NAME_new()) == NULL) {
		pki_ssl_cause(cause, "%s: cannot allocate certificate", path);
		goto out;
	}
	if (!X509_set_version(cert, X509_VERSION_3)) {
		pki_ssl_cause(cause, "%s: cannot set version", path);
		goto out;
	}
	if (pki_set_serial(cert, cause) != 0)
		goto out;
	if (X509_time_adj_ex(X509_getm_notBefore(cert), 0, before_s,
	    &now) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), after_days, after_s,
	    &now) == NULL) {
		pki_ssl_cause(cause, "%s: cannot set validity", path);
		goto out;
	}
	if (!X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_subject_name(cert, name)) {
		pki_ssl_cause(cause, "%s: cannot set subject \"%s\"", path, cn);
		goto out;
	}
	if (!X509_set_issuer_name(cert, issuer != NULL ?
	    X509_get_subject_name(issuer) : name)) {
		pki_ssl_cause(cause, "%s: cannot set issuer", path);
		goto out;
	}
	if (!X509_set_pubkey(cert, key)) {
		pki_ssl_cause(cause, "%s: cannot set public key", path);
		goto out;
	}

	/* The public key must be in place for subjectKeyIdentifier. */
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : cert, cert, NULL, NULL,
	    0);
	for (i = 0; i < nexts; i++) {
		ext = X509V3_EXT_nconf_nid(NULL, &ctx, exts[i].nid,
		    exts[i].value);
		if (ext == NULL || !X509_add_ext(cert, ext, -1)) {
			pki_ssl_cause(cause, "%s: cannot add %s \"%s\"", path,
			    OBJ_nid2ln(exts[i].nid), exts[i].value);
			goto out;
		}
		X509_EXTENSION_free(ext);
		ext = NULL;
	}

	if (X509_sign(cert, issuer_key, EVP_sha256()) <= 0) {
		pki_ssl_cause(cause, "%s: cannot sign certificate", path);
		goto out;
	}
	ok = 1;
out:
	X509_EXTENSION_free(ext);
	X509_NAME_free(name);
	if (!ok) {
		X509_free(cert);
		cert = NULL;
	}
	return cert;
}

int
pki_ca_init(const char *dir, const char *name, int days, int force,
    char **cause)
{
	static const struct pki_ext	 exts[] = {
		{ NID_basic_constraints, "critical,CA:TRUE,pathlen:0" },
		{ NID_key_usage, "critical,keyCertSign,cRLSign" },
		{ NID_subject_key_identifier, "hash" },
	};
	char				*cert_path = NULL, *key_path = NULL;
	EVP_PKEY			*key = NULL;
	X509				*cert = NULL;
	struct stat			 sb;
	size_t				 i;
	int				 rc = -1;

	ERR_clear_error();
	if (name == NULL)
		name = PKI_CA_NAME;
	if (dir == NULL || *dir == '\0') {
		set_cause(cause, "no CA directory given");
		goto out;
	}
	if (*name == '\0' || strlen(name) > PKI_NAME_MAX) {
		set_cause(cause, "CA name must be 1 to %d bytes long",
		    PKI_NAME_MAX);
		goto out;
	}
	for (i = 0; name[i] != '\0'; i++) {
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
			set_cause(cause, "CA name has a control character");
			goto out;
		}
	}
	if (pki_days_valid(days, cause) != 0)
		goto out;

	cert_path = pki_path(dir, PKI_CA_CERT);
	key_path = pki_path(dir, PKI_CA_KEY);
	if (pki_mkdirs(dir, cause) != 0)
		goto out;
	if (lstat(key_path, &sb) == 0) {
		if (!force) {
			set_cause(cause, "%s: a CA key already exists; "
			    "refusing to replace the cluster CA", key_path);
			goto out;
		}
	} else if (errno != ENOENT) {
		set_cause(cause, "%s: %s", key_path, strerror(errno));
		goto out;
	}

	if ((key = pki_keygen(key_path, cause)) == NULL)
		goto out;
	/* Valid from an hour ago (clock skew between hosts) until now + days. */
	cert = pki_make_cert(cert_path, key, name, NULL, key,
	    PKI_CA_NOT_BEFORE, days, 0, exts, sizeof exts / sizeof exts[0],
	    cause);
	if (cert == NULL)
		goto out;
	if (pki_write_pem(key_path, 0600, NULL, key, cause) != 0)
		goto out;
	if (pki_write_pem(cert_path, 0644, cert, NULL, cause) != 0)
		goto out;
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	free(key_path);
	free(cert_path);
	return rc;
}


/* What pki_cert_issue was given, checked: 0, or -1 with *cause. */
static int
pki_issue_args_valid(const char *cadir, const char *host, const char *outdir,
    int days, long not_before_offset_s, char **cause)
{
	if (pki_host_valid(host, cause) != 0 || pki_days_valid(days, cause) != 0)
		return -1;
	if (not_before_offset_s < -PKI_OFFSET_MAX ||
	    not_before_offset_s > PKI_OFFSET_MAX) {
		set_cause(cause, "not-before offset of %ld seconds is out of "
		    "range (-%ld..%ld)", not_before_offset_s, PKI_OFFSET_MAX,
		    PKI_OFFSET_MAX);
		return -1;
	}
	if (cadir == NULL || *cadir == '\0') {
		set_cause(cause, "no CA directory given");
		return -1;
	}
	if (outdir == NULL || *outdir == '\0') {
		set_cause(cause, "no output directory given");
		return -1;
	}
	return 0;
}

/* The CA of cadir, its certificate and its key, which must match: 0, or
 * -1 with *cause and nothing to free. */
static int
pki_load_ca(const char *cadir, X509 **certp, EVP_PKEY **keyp, char **cause)
{
	char		*cert_path, *key_path;
	X509		*cert = NULL;
	EVP_PKEY	*key = NULL;
	struct stat	 sb;
	int		 rc = -1;

	if (stat(cadir, &sb) == -1) {
		if (errno == ENOENT)
			set_cause(cause, "%s: no such CA directory", cadir);
		else
			set_cause(cause, "%s: %s", cadir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		set_cause(cause, "%s: CA directory is not a directory", cadir);
		return -1;
	}
	cert_path = pki_path(cadir, PKI_CA_CERT);
	key_path = pki_path(cadir, PKI_CA_KEY);
	if ((cert = pki_read_cert(cert_path, cause)) == NULL)
		goto out;
	if (X509_check_ca(cert) == 0) {
		set_cause(cause, "%s: not a CA certificate", cert_path);
		goto out;
	}
	if ((key = pki_read_key(key_path, cause)) == NULL)
		goto out;
	if (X509_check_private_key(cert, key) != 1) {
		pki_ssl_cause(cause, "%s: does not match the CA certificate %s",
		    key_path, cert_path);
		goto out;
	}
	*certp = cert;
	*keyp = key;
	cert = NULL;
	key = NULL;
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	free(key_path);
	free(cert_path);
	return rc;
}
int
pki_cert_issue(const char *cadir, const char *host, const char *outdir,
    int days, long not_before_offset_s, char **cause)
{
	struct pki_ext	 exts[] = {
		{ NID_basic_constraints, "critical,CA:FALSE" },
		{ NID_key_usage, "critical,digitalSignature" },
		{ NID_ext_key_usage, "serverAuth,clientAuth" },
		{ NID_subject_alt_name, NULL },		/* DNS:host */
		{ NID_subject_key_identifier, "hash" },
		{ NID_authority_key_identifier, "keyid:always" },
	};
	char		*cert_path = NULL, *key_path = NULL, *ca_copy = NULL;
	char		*file = NULL, *san = NULL;
	X509		*ca_cert = NULL, *cert = NULL;
	EVP_PKEY	*ca_key = NULL, *key = NULL;
	struct stat	 sb;
	int		 rc = -1;

	ERR_clear_error();
	if (pki_issue_args_valid(cadir, host, outdir, days, not_before_offset_s,
	    cause) != 0 || pki_load_ca(cadir, &ca_cert, &ca_key, cause) != 0)
		goto out;
	if (pki_mkdirs(outdir, cause) != 0)
		goto out;
	xasprintf(&file, "%s.pem", host);
	cert_path = pki_path(outdir, file);
	free(file);
	xasprintf(&file, "%s.key", host);
	key_path = pki_path(outdir, file);
	ca_copy = pki_path(outdir, PKI_CA_CERT);

	xasprintf(&san, "DNS:%s", host);
	exts[3].value = san;
	if ((key = pki_keygen(key_path, cause)) == NULL)
		goto out;
	/* days count from the start of validity, not from now. */
	cert = pki_make_cert(cert_path, key, host, ca_cert, ca_key,
	    not_before_offset_s, days, not_before_offset_s, exts,
	    sizeof exts / sizeof exts[0], cause);
	if (cert == NULL)
		goto out;
	if (pki_write_pem(key_path, 0600, NULL, key, cause) != 0)
		goto out;
	if (pki_write_pem(cert_path, 0644, cert, NULL, cause) != 0)
		goto out;
	if (lstat(ca_copy, &sb) == -1) {
		if (errno != ENOENT) {
			set_cause(cause, "%s: %s", ca_copy, strerror(errno));
			goto out;
		}
		if (pki_write_pem(ca_copy, 0644, ca_cert, NULL, cause) != 0)
			goto out;
	}
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	free(san);
	free(file);
	free(ca_copy);
	free(key_path);
	free(cert_path);
	return rc;
}

/* The first CN of name, or NULL. */
static char *
pki_name_cn(const X509_NAME *name)
{
	const X509_NAME_ENTRY	*entry;
	unsigned char		*utf8 = NULL;
	char			*cn = NULL;
	int			 i, len;

	if ((i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0)
		goto out;
	entry = X509_NAME_get_entry(name, i);
	len = ASN1_STRING_to_UTF8(&utf8,
	    X509_NAME_ENTRY_get_data(entry));
	if (len < 0) {
		ERR_clear_error();
		goto out;
	}
	cn = pki_sanitize(utf8, (size_t)len);
out:
	OPENSSL_free(utf8);
	return cn;
}

static int
pki_asn1_time(const ASN1_TIME *t, time_t *out)
{
	struct tm	 tm;

	memset(&tm, 0, sizeof tm);
	if (!ASN1_TIME_to_tm(t, &tm))
		return -1;
	*out = timegm(&tm);
	return 0;
}

static void
pki_format_time(time_t t, char *buf, size_t size)
{
	struct tm	 tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "%lld", (long long)t);
}

/* Fill info from cert; on failure info is left empty. */
static int
pki_x509_info(X509 *cert, const char *path, struct pki_cert_info *info,
    char **cause)
{
	GENERAL_NAMES		*names = NULL;
	const GENERAL_NAME	*gn;
	BIGNUM			*bn = NULL;
	char			*hex = NULL;
	int			 i, crit, rc = -1;

	memset(info, 0, sizeof *info);
	info->subject_cn = pki_name_cn(X509_get_subject_name(cert));
	info->issuer_cn = pki_name_cn(X509_get_issuer_name(cert));

	names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (names == NULL && crit != -1) {
		pki_ssl_cause(cause, "%s: malformed subjectAltName", path);
		goto out;
	}
	for (i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
		gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type != GEN_DNS)
			continue;
		info->dns = xreallocarray(info->dns, info->ndns + 1,
		    sizeof *info->dns);
		info->dns[info->ndns++] = pki_sanitize(
		    ASN1_STRING_get0_data(gn->d.dNSName),
		    (size_t)ASN1_STRING_length(gn->d.dNSName));
	}

	if (pki_asn1_time(X509_get0_notBefore(cert), &info->not_before) != 0 ||
	    pki_asn1_time(X509_get0_notAfter(cert), &info->not_after) != 0) {
		pki_ssl_cause(cause, "%s: malformed validity dates", path);
		goto out;
	}
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert),
	    NULL)) == NULL || (hex = BN_bn2hex(bn)) == NULL) {
		pki_ssl_cause(cause, "%s: malformed serial number", path);
		goto out;
	}
	info->serial = xstrdup(hex);
	rc = 0;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	GENERAL_NAMES_free(names);
	if (rc != 0)
		pki_cert_info_free(info);
	return rc;
}

int
pki_cert_info(const char *path, struct pki_cert_info *info, char **cause)
{
	X509	*cert = NULL;
	int	 rc = -1;

	memset(info, 0, sizeof *info);
	ERR_clear_error();
	if ((cert = pki_read_cert(path, cause)) == NULL)
		goto out;
	rc = pki_x509_info(cert, path, info, cause);
out:
	X509_free(cert);
	return rc;
}

void
pki_cert_info_free(struct pki_cert_info *info)
{
	size_t	 i;

	if (info == NULL)
		return;
	free(info->subject_cn);
	free(info->issuer_cn);
	for (i = 0; i < info->ndns; i++)
		free(info->dns[i]);
	free(info->dns);
	free(info->serial);
	memset(info, 0, sizeof *info);
}

/* Explain why X509_verify_cert refused cert_path. */
static void
pki_verify_cause(X509_STORE_CTX *ctx, const char *ca_path,
    const char *cert_path, X509 *ca, X509 *cert, char **cause)
{
	X509		*bad;
	char		*what = NULL, *issuer = NULL, *ca_cn = NULL;
	char		 when[64];
	time_t		 t;
	int		 err, depth;

	err = X509_STORE_CTX_get_error(ctx);
	depth = X509_STORE_CTX_get_error_depth(ctx);
	if ((bad = X509_STORE_CTX_get_current_cert(ctx)) == NULL)
		bad = cert;
	if (depth == 0)
		xasprintf(&what, "%s: certificate", cert_path);
	else
		xasprintf(&what, "%s: CA certificate %s", cert_path, ca_path);

	switch (err) {
	case X509_V_OK:
		pki_ssl_cause(cause, "%s: cannot verify", cert_path);
		break;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		if (pki_asn1_time(X509_get0_notAfter(bad), &t) != 0)
			set_cause(cause, "%s has expired", what);
		else {
			pki_format_time(t, when, sizeof when);
			set_cause(cause, "%s expired on %s", what, when);
		}
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		if (pki_asn1_time(X509_get0_notBefore(bad), &t) != 0)
			set_cause(cause, "%s is not yet valid", what);
		else {
			pki_format_time(t, when, sizeof when);
			set_cause(cause, "%s is not yet valid (valid from %s)",
			    what, when);
		}
		break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_AKID_SKID_MISMATCH:
		issuer = pki_name_cn(X509_get_issuer_name(cert));
		ca_cn = pki_name_cn(X509_get_subject_name(ca));
		set_cause(cause, "%s: certificate was not issued by the CA in "
		    "%s (unknown CA: it names issuer \"%s\", the CA is "
		    "\"%s\"%s)", cert_path, ca_path,
		    issuer != NULL ? issuer : "",
		    ca_cn != NULL ? ca_cn : "",
		    issuer != NULL && ca_cn != NULL &&
		    strcmp(issuer, ca_cn) == 0 ?
		    ", a different CA with the same name" : "");
		break;
	default:
		set_cause(cause, "%s failed verification: %s", what,
		    X509_verify_cert_error_string(err));
		break;
	}
	free(ca_cn);
	free(issuer);
	free(what);
}

/* "DNS:a, DNS:b" or "CN c": what a certificate names, for messages. */
static char *
pki_names_string(const struct pki_cert_info *info)
{
	char	*s = NULL, *next;
	size_t	 i;

	if (info->ndns == 0) {
		xasprintf(&s, "CN \"%s\"", info->subject_cn != NULL ?
		    info->subject_cn : "");
		return s;
	}
	for (i = 0; i < info->ndns; i++) {
		xasprintf(&next, "%s%sDNS:%s", s != NULL ? s : "",
		    s != NULL ? ", " : "", info->dns[i]);
		free(s);
		s = next;
	}
	return s;
}

int
pki_cert_verify(const char *ca_path, const char *cert_path, const char *host,
    char **cause)
{
	X509			*ca = NULL, *cert = NULL;
	X509_STORE		*store = NULL;
	X509_STORE_CTX		*ctx = NULL;
	struct pki_cert_info	 info;
	char			*names = NULL;
	int			 rc = -1, r;

	memset(&info, 0, sizeof info);
	ERR_clear_error();
	if ((ca = pki_read_cert(ca_path, cause)) == NULL)
		goto out;
	if ((cert = pki_read_cert(cert_path, cause)) == NULL)
		goto out;

	if ((store = X509_STORE_new()) == NULL ||
	    (ctx = X509_STORE_CTX_new()) == NULL) {
		pki_ssl_cause(cause, "%s: cannot allocate verifier", cert_path);
		goto out;
	}
	if (!X509_STORE_add_cert(store, ca)) {
		pki_ssl_cause(cause, "%s: cannot use CA certificate", ca_path);
		goto out;
	}
	if (!X509_STORE_CTX_init(ctx, store, cert, NULL)) {
		pki_ssl_cause(cause, "%s: cannot set up verification",
		    cert_path);
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		pki_verify_cause(ctx, ca_path, cert_path, ca, cert, cause);
		goto out;
	}
	ERR_clear_error();

	if (host != NULL) {
		/* As ternd judges a peer: the subjectAltName, never the CN. */
		r = X509_check_host(cert, host, strlen(host),
		    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
		    X509_CHECK_FLAG_NO_WILDCARDS, NULL);
		if (r < 0) {
			pki_ssl_cause(cause, "%s: cannot check host name",
			    cert_path);
			goto out;
		}
		if (r == 0) {
			if (pki_x509_info(cert, cert_path, &info, cause) != 0)
				goto out;
			names = pki_names_string(&info);
			set_cause(cause, "%s: certificate names %s, not \"%s\"",
			    cert_path, names, host);
			goto out;
		}
	}
	rc = 0;
out:
	free(names);
	pki_cert_info_free(&info);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(cert);
	X509_free(ca);
	return rc;
}

/* --- revocation ---------------------------------------------------------- */

/* Upper case without leading zeros ("0" stays "0"); NULL if s is not
 * 1..64 hex digits. */
static char *
pki_serial_norm(const char *s, size_t len)
{
	char	*out;
	size_t	 i, o = 0;

	if (len == 0 || len > 64)
		return NULL;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
			return NULL;
	}
	while (len > 1 && *s == '0') {
		s++;
		len--;
	}
	out = xmalloc(len + 1);
	for (i = 0; i < len; i++)
		out[o++] = (s[i] >= 'a' && s[i] <= 'f') ? (char)(s[i] - 32) :
		    s[i];
	out[o] = '\0';
	return out;
}

static int
pki_serial_cmp(const void *a, const void *b)
{
	const char	*x = *(char *const *)a, *y = *(char *const *)b;
	size_t		 lx = strlen(x), ly = strlen(y);

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return strcmp(x, y);
}

void
pki_revoked_free(struct pki_revoked *r)
{
	size_t	i;

	for (i = 0; i < r->n; i++)
		free(r->serials[i]);
	free(r->serials);
	r->serials = NULL;
	r->n = 0;
}

int
pki_revoked_parse(const char *text, size_t len, const char *file,
    struct pki_revoked *r, char **cause)
{
	const char	*p = text, *end = text + len, *nl, *e;
	size_t		 line = 0;
	char		*serial, *q;

	memset(r, 0, sizeof *r);
	while (p < end) {
		line++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		e = nl;
		if ((q = memchr(p, '#', (size_t)(e - p))) != NULL)
			e = q;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			e--;
		if (e > p) {
			if ((serial = pki_serial_norm(p, (size_t)(e - p))) ==
			    NULL) {
				set_cause(cause, "%s:%zu: not a serial number "
				    "(hexadecimal, as ternctl cert show prints "
				    "it)", file, line);
				pki_revoked_free(r);
				return -1;
			}
			r->serials = xreallocarray(r->serials, r->n + 1,
			    sizeof *r->serials);
			r->serials[r->n++] = serial;
		}
		p = nl + 1;
	}
	if (r->n > 0)
		qsort(r->serials, r->n, sizeof *r->serials, pki_serial_cmp);
	return 0;
}

int
pki_revoked_load(const char *path, struct pki_revoked *r, char **cause)
{
	char	*text, *why = NULL;
	size_t	 len;
	int	 rc;

	memset(r, 0, sizeof *r);
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return 0;
	if ((text = read_file_bounded(path, PKI_REVOKED_MAX, &len,
	    &why)) == NULL) {
		set_cause(cause, "revocation list: %s", why);
		free(why);
		return -1;
	}
	rc = pki_revoked_parse(text, len, path, r, cause);
	free(text);
	return rc;
}

int
pki_revoked_has(const struct pki_revoked *r, const char *serial)
{
	char	*norm;
	int	 found;

	if (r->n == 0 || (norm = pki_serial_norm(serial, strlen(serial))) ==
	    NULL)
		return 0;
	found = bsearch(&norm, r->serials, r->n, sizeof *r->serials,
	    pki_serial_cmp) != NULL;
	free(norm);
	return found;
}

int
pki_revoke(const char *list_path, const char *cert_path, const char *serial,
    int *added, char **cause)
{
	struct pki_cert_info	 info;
	struct pki_revoked	 r;
	char			*old = NULL, *text = NULL, *norm = NULL, *why;
	char			 stamp[32], upper[65];
	size_t			 len = 0, i;
	time_t			 now = time(NULL);
	struct tm		 tm;
	int			 rc = -1;

	memset(&info, 0, sizeof info);
	memset(&r, 0, sizeof r);
	*added = 0;
	if (cert_path != NULL) {
		if (pki_cert_info(cert_path, &info, cause) != 0)
			goto out;
		serial = info.serial;
	}
	if ((norm = pki_serial_norm(serial, strlen(serial))) == NULL) {
		set_cause(cause, "\"%s\" is not a serial number (hexadecimal, "
		    "as ternctl cert show prints it)", serial);
		goto out;
	}
	if (access(list_path, F_OK) == 0) {
		if ((old = read_file_bounded(list_path, PKI_REVOKED_MAX, &len,
		    cause)) == NULL)
			goto out;
		if (pki_revoked_parse(old, len, list_path, &r, cause) != 0)
			goto out;
		if (pki_revoked_has(&r, norm)) {
			rc = 0;
			goto out;
		}
	} else if (errno != ENOENT) {
		set_cause(cause, "%s: %s", list_path, strerror(errno));
		goto out;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
	why = pki_names_string(&info);
	/* Written as ternctl cert show prints it, so an operator finds it. */
	for (i = 0; serial[i] != '\0'; i++)
		upper[i] = (char)(serial[i] >= 'a' && serial[i] <= 'f' ?
		    serial[i] - 32 : serial[i]);
	upper[i] = '\0';
	xasprintf(&text, "%s%s%s%s  # %s revoked %s\n", old != NULL ? old : "",
	    len > 0 && old[len - 1] != '\n' ? "\n" : "",
	    len == 0 ? "# tern revoked certificates: one serial a line\n" :
	    "", upper, cert_path != NULL ? why : "serial", stamp);
	free(why);
	if (write_file_atomic(list_path, text, cause) != 0)
		goto out;
	*added = 1;
	rc = 0;
out:
	pki_revoked_free(&r);
	pki_cert_info_free(&info);
	free(norm);
	free(old);
	free(text);
	return rc;
}
