/* Mutual TLS 1.3 between ternd processes, driven through buffers the event
 * loop fills and drains, so it owns every socket operation and nothing
 * blocks.  This is
 * the only transport file that knows OpenSSL.
 *
 * Both sides present a certificate signed by the cluster CA.  A client
 * names the host it expects; the certificate must name it.  A server
 * learns the peer's host name from its verified certificate.  Either way
 * a certificate names its host in exactly one subjectAltName DNS entry,
 * a valid host name (no NUL, compared at its full ASN.1 length); a common
 * name, if present, must be identical (tls_cert_identity).  The host key
 * must be readable by its owner only. */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tls_ctx;
struct tls;
struct x509_st;

enum tls_status {
	TLS_DONE = 0,	/* handshake complete / call succeeded */
	TLS_AGAIN,	/* needs more bytes from the peer */
	TLS_CLOSED,	/* peer closed the TLS session cleanly */
	TLS_ERROR,	/* failed: *cause says why */
};

/* Load the CA, our certificate and key, and the list of revoked serials
 * (daemon/pki.h; NULL or "" for none, a missing file revokes nothing).
 * Errors name the file and why. */
struct tls_ctx	*tls_ctx_new(const char *ca_file, const char *cert_file,
		    const char *key_file, const char *revoked_file,
		    char **cause);
/* Drops the caller's reference: sessions made with it keep theirs. */
void		 tls_ctx_free(struct tls_ctx *);
/* The host a certificate names (see above; the caller frees), or NULL and
 * *cause saying what is wrong with it. */
char		*tls_cert_identity(struct x509_st *, char **cause);
/* Host name our own certificate names. */
const char	*tls_ctx_own_name(const struct tls_ctx *);

/* expect_host: for clients, the host the server's certificate must name. */
struct tls	*tls_new(struct tls_ctx *, int server, const char *expect_host);
void		 tls_free(struct tls *);

/* Where to put ciphertext received from the network, then tls_in_commit
 * what arrived: the buffer is size bytes, plus what OpenSSL has not read
 * yet (nothing, when the caller reads until TLS_AGAIN after each commit),
 * and *room is at least a quarter of size. */
uint8_t		*tls_in_space(struct tls *, size_t size, size_t *room);
void		 tls_in_commit(struct tls *, size_t n);
/* At most how much plaintext the session can still give without one
 * more byte from the network: what waits in its input buffer, the record
 * OpenSSL has partly read, and plaintext it decrypted but was not asked
 * for.  However the peer cut its records, plaintext still missing minus
 * this is ciphertext still to arrive. */
size_t		 tls_held_bound(const struct tls *);
enum tls_status	 tls_handshake(struct tls *, char **cause);
/* Decrypt into buf.  Returns bytes (> 0), or 0 with *status TLS_AGAIN,
 * TLS_CLOSED or TLS_ERROR (then *cause). */
size_t		 tls_read(struct tls *, void *buf, size_t len,
		    enum tls_status *status, char **cause);
/* Encrypt all of buf into the outgoing queue; -1 and *cause on error. */
int		 tls_write(struct tls *, const void *buf, size_t len, char **cause);
/* Ciphertext ready to go out, and taking it a buffer at a time (NULL when
 * none): the caller owns the buffer (*len bytes) until it gives it back
 * with tls_give_buf, which may outlive the session. */
size_t		 tls_pending(struct tls *);
uint8_t		*tls_take_buf(struct tls *, size_t *len);
void		 tls_give_buf(uint8_t *);
/* Peer's host name from its verified certificate, or NULL. */
const char	*tls_peer_name(const struct tls *);
/* Its serial number, upper-case hex, or NULL before the handshake. */
const char	*tls_peer_serial(const struct tls *);
const char	*tls_cipher(const struct tls *);
/* How many serials the context refuses; is serial one of them (for links
 * made before the list changed). */
size_t		 tls_ctx_nrevoked(const struct tls_ctx *);
int		 tls_ctx_revoked(const struct tls_ctx *, const char *serial);

#endif
