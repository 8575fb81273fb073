#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "daemon/digest.h"
#define LOG_MODULE "digest"
#include "daemon/log.h"
#include "daemon/xmalloc.h"

#define DIGEST_BUF	(1u << 20)

int
digest_file(const char *path, char *hex, uint64_t *size, char **cause)
{
	EVP_MD_CTX	*ctx = NULL;
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen, i;
	uint8_t		*buf = NULL;
	ssize_t		 n;
	int		 fd, rc = -1;

	*size = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf = xmalloc(DIGEST_BUF);
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		fatalx("cannot start SHA-256");
	for (;;) {
		n = read(fd, buf, DIGEST_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_cause(cause, "%s: read: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		*size += (uint64_t)n;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	for (i = 0; i < mdlen && i < DIGEST_HEX_LEN / 2; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	close(fd);
	return rc;
}

void
digest_buf(const void *buf, size_t len, uint8_t *md)
{
	unsigned int	mdlen = DIGEST_LEN;

	if (EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != DIGEST_LEN)
		fatalx("cannot compute SHA-256");
}

void
digest_hex(const uint8_t *md, char *hex)
{
	int	i;

	for (i = 0; i < DIGEST_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}
