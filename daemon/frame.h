/* Frames: the unit of everything tern sends on a peer connection or the
 * control socket.
 *
 *   0       4    5     6        8            12           16
 *   +-------+----+-----+--------+------------+------------+--- payload ---+
 *   | length|type|flags|channel | payload crc| header crc |  length bytes |
 *   +-------+----+-----+--------+------------+------------+---------------+
 *
 * All integers big-endian.  The header CRC32C covers bytes 0..11, so
 * garbage and misframed bytes are caught before the length is trusted;
 * the length is checked against the receiver's maximum before any
 * allocation; the payload CRC32C is checked before the payload is used.
 *
 * One flag: FRAME_FLAG_UNCHECKED, a data frame whose payload CRC is 0 and
 * not computed, because the channel authenticates every byte already (TLS
 * with an AEAD cipher, whose tag check fails the connection on any change).
 * Only a decoder told that its channel does so accepts it
 * (frame_decoder_allow_unchecked); everywhere else it is an unknown
 * flag. */
#ifndef TERN_FRAME_H
#define TERN_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_SIZE	16
#define FRAME_FLAG_UNCHECKED	0x01
#define FRAME_MAX_MIN		4096
#define FRAME_MAX_LIMIT		(16u << 20)

enum frame_type {
	FRAME_MSG = 1,		/* payload is one packed tern.Envelope */
	FRAME_DATA = 2,		/* payload is stream bytes for `channel` */
};

struct frame_hdr {
	uint32_t	length;
	uint8_t		type;
	uint8_t		flags;		/* none defined: must be 0 */
	uint16_t	channel;	/* 0 for FRAME_MSG */
	uint32_t	crc;		/* CRC32C of the payload */
};

/* Fill out[FRAME_HEADER_SIZE] for a payload; computes the payload CRC. */
void	frame_header_encode(uint8_t *out, enum frame_type, uint16_t channel,
	    const void *payload, uint32_t length);
/* The same for a FRAME_DATA frame with FRAME_FLAG_UNCHECKED (no payload
 * CRC): only for a peer on an authenticated channel that accepts it. */
void	frame_header_encode_unchecked(uint8_t *out, uint16_t channel,
	    uint32_t length);

enum frame_status {
	FRAME_OK = 0,
	FRAME_NEED_MORE,	/* not a whole frame yet */
	FRAME_BAD_HEADER,	/* header checksum mismatch: garbage or misframed */
	FRAME_BAD_TYPE,		/* unknown type or flags, or a flag not allowed */
	FRAME_TOO_BIG,		/* length above the receiver's maximum */
	FRAME_BAD_CRC,		/* payload checksum mismatch */
};

const char	*frame_status_string(enum frame_status);

/* Check a header; no payload needed.  FRAME_FLAG_UNCHECKED passes here
 * (on a data frame with a zero CRC field): the decoder judges whether it
 * is allowed. */
enum frame_status	frame_header_decode(const uint8_t *in, uint32_t max,
			    struct frame_hdr *);

/* Incremental decoder over a byte stream.  The buffer grows to at most
 * FRAME_HEADER_SIZE + max and only once a header announced that size. */
struct frame_decoder {
	uint8_t		*buf;
	size_t		 size;		/* allocated */
	size_t		 start;		/* first undecoded byte */
	size_t		 end;		/* one past the last byte received */
	uint32_t	 max;		/* largest payload accepted */
	int		 allow_unchecked;	/* channel authenticates payloads */
};

void	frame_decoder_init(struct frame_decoder *, uint32_t max);
void	frame_decoder_free(struct frame_decoder *);
/* The channel authenticates every byte (TLS AEAD): accept data frames
 * flagged FRAME_FLAG_UNCHECKED, whose payload carries no CRC. */
void	frame_decoder_allow_unchecked(struct frame_decoder *);
/* Where to put received bytes: at least `want` bytes of room (want <= 64 KiB
 * is always granted; more only up to what the current frame needs). */
uint8_t	*frame_decoder_space(struct frame_decoder *, size_t *room);
void	 frame_decoder_commit(struct frame_decoder *, size_t n);
/* Bytes the frame being received still lacks: 0 unless its header is
 * whole, announces a size the decoder accepts, and more is to come. */
size_t	 frame_decoder_missing(const struct frame_decoder *);
/* Append bytes (copying); for callers that cannot read in place. */
void	 frame_decoder_feed(struct frame_decoder *, const void *, size_t);
/* Next whole frame: *payload points into the decoder's buffer and stays
 * valid until the next call.  After an error status the stream is unusable. */
enum frame_status	frame_decoder_next(struct frame_decoder *,
			    struct frame_hdr *, const uint8_t **payload);

#endif
