#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/crc32c.h"
#include "daemon/frame.h"
#include "daemon/xmalloc.h"

#define FRAME_READ_CHUNK	(64u << 10)

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

void
frame_header_encode(uint8_t *out, enum frame_type type, uint16_t channel,
    const void *payload, uint32_t length)
{
	put32(out, length);
	out[4] = (uint8_t)type;
	out[5] = 0;
	out[6] = (uint8_t)(channel >> 8);
	out[7] = (uint8_t)channel;
	put32(out + 8, crc32c(0, payload, length));
	put32(out + 12, crc32c(0, out, 12));
}

void
frame_header_encode_unchecked(uint8_t *out, uint16_t channel, uint32_t length)
{
	put32(out, length);
	out[4] = FRAME_DATA;
	out[5] = FRAME_FLAG_UNCHECKED;
	out[6] = (uint8_t)(channel >> 8);
	out[7] = (uint8_t)channel;
	put32(out + 8, 0);
	put32(out + 12, crc32c(0, out, 12));
}

const char *
frame_status_string(enum frame_status st)
{
	switch (st) {
	case FRAME_OK:
		return "ok";
	case FRAME_NEED_MORE:
		return "incomplete frame";
	case FRAME_BAD_HEADER:
		return "frame header checksum mismatch (garbage or misframed bytes)";
	case FRAME_BAD_TYPE:
		return "unknown frame type or flags";
	case FRAME_TOO_BIG:
		return "frame larger than the maximum frame size";
	case FRAME_BAD_CRC:
		return "frame payload checksum mismatch";
	}
	return "unknown frame status";
}

enum frame_status
frame_header_decode(const uint8_t *in, uint32_t max, struct frame_hdr *hdr)
{
	if (crc32c(0, in, 12) != get32(in + 12))
		return FRAME_BAD_HEADER;
	hdr->length = get32(in);
	hdr->type = in[4];
	hdr->flags = in[5];
	hdr->channel = (uint16_t)(in[6] << 8 | in[7]);
	hdr->crc = get32(in + 8);
	if ((hdr->type != FRAME_MSG && hdr->type != FRAME_DATA) ||
	    (hdr->type == FRAME_MSG && hdr->channel != 0))
		return FRAME_BAD_TYPE;
	/* The one flag: on data frames, with nothing in the CRC field. */
	if (hdr->flags != 0 && (hdr->flags != FRAME_FLAG_UNCHECKED ||
	    hdr->type != FRAME_DATA || hdr->crc != 0))
		return FRAME_BAD_TYPE;
	if (hdr->length > max)
		return FRAME_TOO_BIG;
	return FRAME_OK;
}

void
frame_decoder_init(struct frame_decoder *dec, uint32_t max)
{
	memset(dec, 0, sizeof *dec);
	dec->max = max;
}

void
frame_decoder_allow_unchecked(struct frame_decoder *dec)
{
	dec->allow_unchecked = 1;
}

void
frame_decoder_free(struct frame_decoder *dec)
{
	free(dec->buf);
	memset(dec, 0, sizeof *dec);
}

size_t
frame_decoder_missing(const struct frame_decoder *dec)
{
	size_t		 have = dec->end - dec->start;
	uint32_t	 length;

	if (have < FRAME_HEADER_SIZE)
		return 0;
	length = get32(dec->buf + dec->start);
	if (length > dec->max)	/* next() will refuse it; do not grow for it */
		return 0;
	if (have >= FRAME_HEADER_SIZE + (size_t)length)
		return 0;
	return FRAME_HEADER_SIZE + (size_t)length - have;
}

/* Room the next read wants: the rest of the frame at `start`, if known. */
static size_t
frame_decoder_wanted(const struct frame_decoder *dec)
{
	size_t	missing = frame_decoder_missing(dec);

	return missing != 0 ? missing : FRAME_READ_CHUNK;
}

uint8_t *
frame_decoder_space(struct frame_decoder *dec, size_t *room)
{
	size_t	want, have, need, grown, cap;

	want = frame_decoder_wanted(dec);
	if (want < FRAME_READ_CHUNK)
		want = FRAME_READ_CHUNK;
	if (dec->size - dec->end < want) {
		/* Move the pending bytes to the front, then grow if still short. */
		have = dec->end - dec->start;
		if (dec->start != 0) {
			memmove(dec->buf, dec->buf + dec->start, have);
			dec->start = 0;
			dec->end = have;
		}
		need = have + want;
		if (dec->size < need) {
			/* Double (up to the largest frame plus a read), so a peer
			 * dribbling bytes costs a reallocation now and then, not
			 * one per read. */
			cap = FRAME_HEADER_SIZE + (size_t)dec->max + FRAME_READ_CHUNK;
			grown = dec->size * 2 < cap ? dec->size * 2 : cap;
			dec->size = need > grown ? need : grown;
			dec->buf = xrealloc(dec->buf, dec->size);
		}
	}
	*room = dec->size - dec->end;
	return dec->buf + dec->end;
}

void
frame_decoder_commit(struct frame_decoder *dec, size_t n)
{
	dec->end += n;
}

void
frame_decoder_feed(struct frame_decoder *dec, const void *data, size_t len)
{
	const uint8_t	*p = data;
	uint8_t		*dst;
	size_t		 room, n;

	while (len > 0) {
		dst = frame_decoder_space(dec, &room);
		n = len < room ? len : room;
		memcpy(dst, p, n);
		frame_decoder_commit(dec, n);
		p += n;
		len -= n;
	}
}

enum frame_status
frame_decoder_next(struct frame_decoder *dec, struct frame_hdr *hdr,
    const uint8_t **payload)
{
	const uint8_t		*p;
	size_t			 have = dec->end - dec->start;
	enum frame_status	 st;

	if (have < FRAME_HEADER_SIZE)
		return FRAME_NEED_MORE;
	p = dec->buf + dec->start;
	if ((st = frame_header_decode(p, dec->max, hdr)) != FRAME_OK)
		return st;
	if ((hdr->flags & FRAME_FLAG_UNCHECKED) && !dec->allow_unchecked)
		return FRAME_BAD_TYPE;
	if (have < FRAME_HEADER_SIZE + (size_t)hdr->length)
		return FRAME_NEED_MORE;
	*payload = p + FRAME_HEADER_SIZE;
	if (!(hdr->flags & FRAME_FLAG_UNCHECKED) &&
	    crc32c(0, *payload, hdr->length) != hdr->crc)
		return FRAME_BAD_CRC;
	dec->start += FRAME_HEADER_SIZE + hdr->length;
	if (dec->start == dec->end)
		dec->start = dec->end = 0;
	return FRAME_OK;
}
