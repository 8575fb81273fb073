/* The cluster's public-key infrastructure: one CA per cluster, and one
 * certificate per host signed by it.  Peers and ternctl authenticate each
 * other with these certificates (mutual TLS); a peer without one gets no
 * byte of state.
 *
 * A CA directory holds
 *	ca.pem	the CA certificate (0644)
 *	ca.key	the CA private key (0600)
 * and, once hosts are issued into it, HOST.pem / HOST.key for each host.
 *
 * Keys are EC P-256, signatures ECDSA with SHA-256.  Every file is written
 * atomically (temporary file in the same directory, fsync, rename, fsync of
 * the directory), so a crash leaves either the old file or the new one.
 *
 * Every function returns 0 on success, or -1 and sets *cause (when cause
 * is not NULL) to a message the caller frees: it names the file and, for
 * OpenSSL failures, OpenSSL's reason. */
#ifndef TERN_PKI_H
#define TERN_PKI_H

#include <stddef.h>
#include <time.h>

#define PKI_CA_CERT		"ca.pem"
#define PKI_CA_KEY		"ca.key"
#define PKI_CA_NAME		"tern cluster CA"

#define PKI_CA_DAYS		3650	/* default CA validity */
#define PKI_CERT_DAYS		825	/* default host certificate validity */
#define PKI_DAYS_MAX		36500	/* upper bound for any validity */
#define PKI_NOT_BEFORE_OFFSET	(-3600L) /* default: valid from an hour ago */
#define PKI_OFFSET_MAX		(3650L * 86400) /* bound for the offset, seconds */
#define PKI_HOST_MAX		63
#define PKI_NAME_MAX		64	/* X.509 upper bound for a CN */

/* Create a new cluster CA in dir (created 0700, with missing parents, if
 * it does not exist): a self-signed certificate with CN name (PKI_CA_NAME
 * if name is NULL), valid from an hour ago until days days from now, and
 * its key.
 * Refuses if dir/ca.key already exists, unless force. */
int	 pki_ca_init(const char *dir, const char *name, int days, int force,
	     char **cause);

/* Issue a certificate for host, signed by the CA in cadir: outdir/HOST.pem
 * (the certificate only) and outdir/HOST.key (0600); outdir is created
 * 0700 if missing, and a copy of the CA certificate is written to
 * outdir/ca.pem if there is none.  The certificate is valid from
 * now + not_before_offset_s (normally PKI_NOT_BEFORE_OFFSET) for days days
 * counted from that start, so an offset of -10 days with days 1 gives a
 * certificate that expired 9 days ago (for tests); the offset is bounded
 * by +-PKI_OFFSET_MAX.  Existing HOST.pem and
 * HOST.key are replaced. */
int	 pki_cert_issue(const char *cadir, const char *host, const char *outdir,
	     int days, long not_before_offset_s, char **cause);

/* What `ternctl cert show` prints.  Strings are UTF-8 with control
 * characters replaced by '?'; subject_cn and issuer_cn are NULL if the name
 * has no CN; serial is upper-case hex. */
struct pki_cert_info {
	char		*subject_cn;
	char		*issuer_cn;
	char		**dns;		/* subjectAltName DNS names */
	size_t		 ndns;
	time_t		 not_before;
	time_t		 not_after;
	char		*serial;
};

/* Read the first certificate in the PEM file path.  On success the caller
 * frees info with pki_cert_info_free; on failure info is left empty (and
 * freeing it is harmless). */
int	 pki_cert_info(const char *path, struct pki_cert_info *info,
	     char **cause);
void	 pki_cert_info_free(struct pki_cert_info *info);

/* Verify the certificate in cert_path against the CA certificate in
 * ca_path (X509_verify_cert, at the current time) and, if host is not
 * NULL, that its subjectAltName names host (never the CN alone, as ternd
 * judges a peer).  *cause says why not: expired (and when), not yet valid
 * (until when), not issued by this CA, or names X rather than host. */
int	 pki_cert_verify(const char *ca_path, const char *cert_path,
	     const char *host, char **cause);

/* Revocation: a list of revoked certificate serial numbers, one per line
 * in hexadecimal as `ternctl cert show` prints them, '#' starting a
 * comment.  `ternctl cert revoke` appends to it; every ternd loads it from
 * revoked_file at start and on SIGHUP, refuses those certificates at the
 * handshake and drops links made with one.  A missing file revokes
 * nothing. */
#define PKI_REVOKED		"revoked"
#define PKI_REVOKED_MAX		(1024 * 1024)	/* largest list file */

struct pki_revoked {
	char	**serials;	/* upper case, no leading zeros; sorted */
	size_t	  n;
};

/* Parse len bytes of list text; file names the list in messages
 * ("FILE:LINE: reason"). */
int	 pki_revoked_parse(const char *text, size_t len, const char *file,
	     struct pki_revoked *, char **cause);
/* Load the list at path; a missing file is an empty list. */
int	 pki_revoked_load(const char *path, struct pki_revoked *, char **cause);
void	 pki_revoked_free(struct pki_revoked *);
/* 1 if serial (any case, leading zeros allowed) is in the list. */
int	 pki_revoked_has(const struct pki_revoked *, const char *serial);
/* Add the serial of the certificate in cert_path (or serial itself if
 * cert_path is NULL) to the list at list_path, creating it; the line says
 * what the certificate named.  *added is 0 if it was already there. */
int	 pki_revoke(const char *list_path, const char *cert_path,
	     const char *serial, int *added, char **cause);

/* Is host usable as a host name: 1..PKI_HOST_MAX characters of [a-z0-9-],
 * not starting or ending with '-'.  *cause says why not. */
int	 pki_host_valid(const char *host, char **cause);

/* dir/file, without doubling a trailing '/' of dir; the caller frees. */
char	*pki_path(const char *dir, const char *file);

#endif
