#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/crc32c.h"
#include "daemon/frame.h"
#include "daemon/xmalloc.h"

#define CHUNK		(64u << 10)	/* what the decoder always grants */
#define MAX		(256u << 10)	/* receiver maximum for most tests */

static uint32_t
rnd_next(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

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

/* Recompute the header CRC after a test changed bytes 0..11, so only the
 * changed field is wrong. */
static void
reseal(uint8_t *hdr)
{
	put32(hdr + 12, crc32c(0, hdr, 12));
}

/* A byte stream of frames, and what each one should decode to. */
struct want {
	uint8_t		 type;
	uint16_t	 channel;
	uint32_t	 length;
	size_t		 offset;	/* of the payload in the stream */
};

struct stream {
	uint8_t		*bytes;
	size_t		 len;
	struct want	*frames;
	size_t		 n;
};

static void
stream_add(struct stream *s, enum frame_type type, uint16_t channel,
    const void *payload, uint32_t length)
{
	s->bytes = xrealloc(s->bytes, s->len + FRAME_HEADER_SIZE + length);
	frame_header_encode(s->bytes + s->len, type, channel, payload, length);
	if (length != 0)
		memcpy(s->bytes + s->len + FRAME_HEADER_SIZE, payload, length);
	s->frames = xreallocarray(s->frames, s->n + 1, sizeof *s->frames);
	s->frames[s->n].type = (uint8_t)type;
	s->frames[s->n].channel = channel;
	s->frames[s->n].length = length;
	s->frames[s->n].offset = s->len + FRAME_HEADER_SIZE;
	s->n++;
	s->len += FRAME_HEADER_SIZE + length;
}

static void
stream_free(struct stream *s)
{
	free(s->bytes);
	free(s->frames);
	memset(s, 0, sizeof *s);
}

/* Frames of many sizes and both types, payloads pseudo-random.  The
 * short list is for the tests that feed a few bytes at a time (slow under
 * valgrind); it still has a frame larger than a read chunk. */
static void
stream_build(struct stream *s, uint32_t seed, int shortlist)
{
	static const uint32_t	 sizes[] = { 0, 1, 2, 15, 16, 17, 100, 4095,
	    4096, 4097, 65535, 65536, 65537, 70000, 0, 3, 200000, 1 };
	static const uint32_t	 few[] = { 0, 1, 15, 16, 17, 100, 4096, 66000,
	    0, 3, 1 };
	const uint32_t		*list = shortlist ? few : sizes;
	size_t			 n = shortlist ? sizeof few / sizeof few[0] :
				    sizeof sizes / sizeof sizes[0];
	uint8_t			*payload;
	uint32_t		 i, k;

	memset(s, 0, sizeof *s);
	payload = xmalloc(200000);
	for (i = 0; i < n; i++) {
		for (k = 0; k < list[i]; k++)
			payload[k] = (uint8_t)rnd_next(&seed);
		if (i % 3 == 1)
			stream_add(s, FRAME_DATA, (uint16_t)(i * 4099), payload,
			    list[i]);
		else
			stream_add(s, FRAME_MSG, 0, payload, list[i]);
	}
	free(payload);
}

/* Take every whole frame the decoder has; check each against the next
 * expected one.  Returns the status that ended the loop. */
static enum frame_status
drain(struct frame_decoder *dec, const struct stream *s, size_t *next)
{
	struct frame_hdr	 hdr;
	const uint8_t		*payload;
	const struct want	*w;
	enum frame_status	 st;

	while ((st = frame_decoder_next(dec, &hdr, &payload)) == FRAME_OK) {
		if (*next >= s->n)
			fail_msg("decoded more frames than were sent");
		w = &s->frames[*next];
		assert_int_equal(hdr.type, w->type);
		assert_int_equal(hdr.flags, 0);
		assert_int_equal(hdr.channel, w->channel);
		assert_int_equal(hdr.length, w->length);
		assert_int_equal(hdr.crc, crc32c(0, s->bytes + w->offset,
		    w->length));
		if (memcmp(payload, s->bytes + w->offset, w->length) != 0)
			fail_msg("frame %zu: payload differs", *next);
		(*next)++;
	}
	return st;
}

/* A caller that takes every whole frame after each read never makes the
 * decoder hold more than one frame of at most max, or a read chunk, plus
 * the partial frame already pending.  (frame_decoder_feed() of a large
 * buffer may hold more: it copies all of it before anything is taken.) */
static void
check_bounded(const struct frame_decoder *dec)
{
	assert_true(dec->start <= dec->end);
	assert_true(dec->end <= dec->size);
	assert_true(dec->size <= FRAME_HEADER_SIZE + (size_t)dec->max + CHUNK);
}

static void
test_header_round_trip(void **state)
{
	uint8_t			out[FRAME_HEADER_SIZE];
	struct frame_hdr	hdr;
	const char		*p = "hello, frame";

	frame_header_encode(out, FRAME_MSG, 0, p, (uint32_t)strlen(p));
	assert_int_equal(get32(out), strlen(p));
	assert_int_equal(out[4], FRAME_MSG);
	assert_int_equal(out[5], 0);
	assert_int_equal(out[6], 0);
	assert_int_equal(out[7], 0);
	assert_int_equal(get32(out + 8), crc32c(0, p, strlen(p)));
	assert_int_equal(get32(out + 12), crc32c(0, out, 12));

	memset(&hdr, 0xee, sizeof hdr);
	assert_int_equal(frame_header_decode(out, MAX, &hdr), FRAME_OK);
	assert_int_equal(hdr.length, strlen(p));
	assert_int_equal(hdr.type, FRAME_MSG);
	assert_int_equal(hdr.flags, 0);
	assert_int_equal(hdr.channel, 0);
	assert_int_equal(hdr.crc, crc32c(0, p, strlen(p)));

	frame_header_encode(out, FRAME_DATA, 0xbeef, p, 5);
	assert_int_equal(out[6], 0xbe);
	assert_int_equal(out[7], 0xef);
	assert_int_equal(frame_header_decode(out, MAX, &hdr), FRAME_OK);
	assert_int_equal(hdr.type, FRAME_DATA);
	assert_int_equal(hdr.channel, 0xbeef);
	assert_int_equal(hdr.length, 5);
	assert_int_equal(hdr.crc, crc32c(0, p, 5));

	/* Length is checked against max inclusively. */
	assert_int_equal(frame_header_decode(out, 5, &hdr), FRAME_OK);
	assert_int_equal(frame_header_decode(out, 4, &hdr), FRAME_TOO_BIG);
}

static void
test_decode_whole(void **state)
{
	struct frame_decoder	dec;
	struct stream		s;
	size_t			next = 0;

	stream_build(&s, 1, 0);
	frame_decoder_init(&dec, MAX);
	frame_decoder_feed(&dec, s.bytes, s.len);
	assert_int_equal(drain(&dec, &s, &next), FRAME_NEED_MORE);
	assert_int_equal(next, s.n);
	/* Empty again: the next frame starts at the front. */
	assert_int_equal(dec.start, 0);
	assert_int_equal(dec.end, 0);
	frame_decoder_free(&dec);
	assert_null(dec.buf);
	frame_decoder_free(&dec);	/* twice is harmless */
	stream_free(&s);
}

static void
test_decode_byte_by_byte(void **state)
{
	struct frame_decoder	dec;
	struct stream		s;
	size_t			i, next = 0;

	stream_build(&s, 2, 1);
	frame_decoder_init(&dec, MAX);
	for (i = 0; i < s.len; i++) {
		frame_decoder_feed(&dec, s.bytes + i, 1);
		assert_int_equal(drain(&dec, &s, &next), FRAME_NEED_MORE);
	}
	check_bounded(&dec);
	assert_int_equal(next, s.n);
	frame_decoder_free(&dec);
	stream_free(&s);
}

static void
test_decode_random_splits(void **state)
{
	struct frame_decoder	dec;
	struct stream		s;
	size_t			pos, n, next, limit;
	uint32_t		rs = 0xc0ffee;
	int			round;

	stream_build(&s, 3, 0);
	for (round = 0; round < 16; round++) {
		/* Small pieces in some rounds, big ones in others. */
		limit = round % 4 == 0 ? 300 : round % 4 == 1 ? 3000 :
		    round % 4 == 2 ? 40000 : 150000;
		frame_decoder_init(&dec, MAX);
		next = 0;
		for (pos = 0; pos < s.len; pos += n) {
			n = rnd_next(&rs) % (limit + 1);
			if (n > s.len - pos)
				n = s.len - pos;
			frame_decoder_feed(&dec, s.bytes + pos, n);
			if (rnd_next(&rs) % 4 != 0)
				assert_int_equal(drain(&dec, &s, &next),
				    FRAME_NEED_MORE);
		}
		assert_int_equal(drain(&dec, &s, &next), FRAME_NEED_MORE);
		assert_int_equal(next, s.n);
		frame_decoder_free(&dec);
	}
	stream_free(&s);
}

/* Pieces of 0..7 bytes: header fields split across feeds. */
static void
test_decode_tiny_pieces(void **state)
{
	struct frame_decoder	dec;
	struct stream		s;
	size_t			pos, n, next = 0;
	uint32_t		rs = 0xabcdef;

	stream_build(&s, 5, 1);
	frame_decoder_init(&dec, MAX);
	for (pos = 0; pos < s.len; pos += n) {
		n = rnd_next(&rs) % 8;
		if (n > s.len - pos)
			n = s.len - pos;
		frame_decoder_feed(&dec, s.bytes + pos, n);
		assert_int_equal(drain(&dec, &s, &next), FRAME_NEED_MORE);
		check_bounded(&dec);
	}
	assert_int_equal(next, s.n);
	frame_decoder_free(&dec);
	stream_free(&s);
}

/* The zero-copy path a connection uses: read into frame_decoder_space(),
 * then commit, sometimes less than the room offered. */
static void
test_decode_space_commit(void **state)
{
	struct frame_decoder	 dec;
	struct stream		 s;
	size_t			 pos, n, room, next = 0;
	uint8_t			*dst;
	uint32_t		 rs = 77;

	stream_build(&s, 4, 0);
	frame_decoder_init(&dec, MAX);
	for (pos = 0; pos < s.len; pos += n) {
		dst = frame_decoder_space(&dec, &room);
		assert_non_null(dst);
		assert_true(room >= CHUNK);
		n = rnd_next(&rs) % 2 ? room : rnd_next(&rs) % (room + 1);
		if (n > s.len - pos)
			n = s.len - pos;
		memcpy(dst, s.bytes + pos, n);
		frame_decoder_commit(&dec, n);
		assert_int_equal(drain(&dec, &s, &next), FRAME_NEED_MORE);
		check_bounded(&dec);
	}
	assert_int_equal(next, s.n);
	frame_decoder_free(&dec);
	stream_free(&s);
}

/* Once a header announced a large frame, the room offered covers the rest
 * of it, so it can arrive in one read; and the decoder says how much is
 * missing (what a connection waits for before it is woken). */
static void
test_space_grows_for_frame(void **state)
{
	struct frame_decoder	 dec;
	uint8_t			 hdr[FRAME_HEADER_SIZE], *payload, *dst;
	struct frame_hdr	 h;
	const uint8_t		*p;
	size_t			 room;
	uint32_t		 len = 1u << 20;

	payload = xcalloc(1, len);
	payload[len - 1] = 0x5a;
	frame_header_encode(hdr, FRAME_DATA, 9, payload, len);
	frame_decoder_init(&dec, len);
	assert_int_equal(frame_decoder_missing(&dec), 0);
	frame_decoder_feed(&dec, hdr, sizeof hdr - 1);
	assert_int_equal(frame_decoder_missing(&dec), 0);
	frame_decoder_feed(&dec, hdr + sizeof hdr - 1, 1);
	assert_int_equal(frame_decoder_missing(&dec), len);
	frame_decoder_feed(&dec, payload, 10);
	assert_int_equal(frame_decoder_missing(&dec), len - 10);
	dst = frame_decoder_space(&dec, &room);
	assert_true(room >= len - 10);
	assert_true(dec.size <= FRAME_HEADER_SIZE + (size_t)len + CHUNK);
	memcpy(dst, payload + 10, len - 10);
	frame_decoder_commit(&dec, len - 10);
	assert_int_equal(frame_decoder_missing(&dec), 0);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_OK);
	assert_int_equal(h.length, len);
	assert_int_equal(h.channel, 9);
	assert_true(memcmp(p, payload, len) == 0);
	frame_decoder_free(&dec);

	/* A header above the maximum: nothing is awaited for it. */
	frame_decoder_init(&dec, len - 1);
	frame_decoder_feed(&dec, hdr, sizeof hdr);
	assert_int_equal(frame_decoder_missing(&dec), 0);
	frame_decoder_free(&dec);
	free(payload);
}

static void
test_zero_length(void **state)
{
	struct frame_decoder	 dec;
	uint8_t			 buf[2 * FRAME_HEADER_SIZE];
	struct frame_hdr	 h;
	const uint8_t		*p;

	frame_header_encode(buf, FRAME_MSG, 0, NULL, 0);
	frame_header_encode(buf + FRAME_HEADER_SIZE, FRAME_DATA, 3, "", 0);
	assert_int_equal(get32(buf + 8), 0);	/* CRC of nothing */
	assert_int_equal(frame_header_decode(buf, 0, &h), FRAME_OK);
	assert_int_equal(h.length, 0);

	frame_decoder_init(&dec, FRAME_MAX_MIN);
	frame_decoder_feed(&dec, buf, sizeof buf);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_OK);
	assert_int_equal(h.type, FRAME_MSG);
	assert_int_equal(h.length, 0);
	assert_non_null(p);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_OK);
	assert_int_equal(h.type, FRAME_DATA);
	assert_int_equal(h.channel, 3);
	assert_int_equal(h.length, 0);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_NEED_MORE);
	frame_decoder_free(&dec);

	/* A decoder with max 0 accepts only empty frames. */
	frame_decoder_init(&dec, 0);
	frame_decoder_feed(&dec, buf, sizeof buf);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_OK);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_OK);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_NEED_MORE);
	frame_decoder_free(&dec);
}

static void
check_max_length(uint32_t max)
{
	struct frame_decoder	 dec;
	uint8_t			 hdr[FRAME_HEADER_SIZE], *payload;
	struct frame_hdr	 h;
	const uint8_t		*p;
	uint32_t		 i, rs = max;

	/* Cheap to make, but no two 4 KiB pages alike. */
	payload = xmalloc(max);
	memset(payload, 0x3c, max);
	for (i = 0; i < max; i += 4096)
		payload[i] = (uint8_t)rnd_next(&rs);
	payload[max - 1] = 0xc3;
	frame_header_encode(hdr, FRAME_MSG, 0, payload, max);
	assert_int_equal(frame_header_decode(hdr, max, &h), FRAME_OK);

	frame_decoder_init(&dec, max);
	frame_decoder_feed(&dec, hdr, sizeof hdr);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_NEED_MORE);
	frame_decoder_feed(&dec, payload, max - 1);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_NEED_MORE);
	frame_decoder_feed(&dec, payload + max - 1, 1);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_OK);
	assert_int_equal(h.length, max);
	assert_true(p == dec.buf + FRAME_HEADER_SIZE);
	assert_true(memcmp(p, payload, max) == 0);
	assert_true(dec.size <= FRAME_HEADER_SIZE + (size_t)max + CHUNK);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_NEED_MORE);
	frame_decoder_free(&dec);
	free(payload);
}

static void
test_max_length(void **state)
{
	check_max_length(FRAME_MAX_MIN);
	check_max_length(CHUNK);
	check_max_length(CHUNK + 1);
	check_max_length(FRAME_MAX_LIMIT);
}

/* Decode one frame from bytes, fed in one go and then byte by byte; both
 * must give the same status. */
static enum frame_status
decode_one(const uint8_t *buf, size_t len, uint32_t max)
{
	struct frame_decoder	 dec;
	struct frame_hdr	 h;
	const uint8_t		*p;
	enum frame_status	 st, st2 = FRAME_NEED_MORE;
	size_t			 i;

	frame_decoder_init(&dec, max);
	frame_decoder_feed(&dec, buf, len);
	st = frame_decoder_next(&dec, &h, &p);
	/* An error is sticky: asking again gives the same answer. */
	if (st != FRAME_OK)
		assert_int_equal(frame_decoder_next(&dec, &h, &p), st);
	frame_decoder_free(&dec);

	frame_decoder_init(&dec, max);
	for (i = 0; i < len; i++) {
		frame_decoder_feed(&dec, buf + i, 1);
		st2 = frame_decoder_next(&dec, &h, &p);
		if (st2 != FRAME_NEED_MORE)
			break;
	}
	frame_decoder_free(&dec);
	assert_int_equal(st, st2);
	return st;
}

static void
make_frame(uint8_t *buf, enum frame_type type, uint16_t channel, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		buf[FRAME_HEADER_SIZE + i] = (uint8_t)(i * 31 + 7);
	frame_header_encode(buf, type, channel, buf + FRAME_HEADER_SIZE,
	    (uint32_t)len);
}

static void
test_bad_header(void **state)
{
	uint8_t			buf[FRAME_HEADER_SIZE + 40];
	struct frame_hdr	h;
	int			bit;

	make_frame(buf, FRAME_MSG, 0, 40);
	assert_int_equal(decode_one(buf, sizeof buf, MAX), FRAME_OK);
	for (bit = 0; bit < FRAME_HEADER_SIZE * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (frame_header_decode(buf, MAX, &h) != FRAME_BAD_HEADER)
			fail_msg("header bit %d flipped: not FRAME_BAD_HEADER",
			    bit);
		assert_int_equal(decode_one(buf, sizeof buf, MAX),
		    FRAME_BAD_HEADER);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* Only the header is needed to know. */
	buf[0] ^= 0x80;
	assert_int_equal(decode_one(buf, FRAME_HEADER_SIZE, MAX),
	    FRAME_BAD_HEADER);
	/* All zeros is not a valid header either (CRC32C of 12 zeros != 0). */
	memset(buf, 0, sizeof buf);
	assert_int_equal(decode_one(buf, sizeof buf, MAX), FRAME_BAD_HEADER);
}

static void
test_bad_type(void **state)
{
	uint8_t	buf[FRAME_HEADER_SIZE + 8];
	int	type;

	for (type = 0; type < 256; type++) {
		make_frame(buf, FRAME_MSG, 0, 8);
		buf[4] = (uint8_t)type;
		reseal(buf);
		if (type == FRAME_MSG || type == FRAME_DATA)
			assert_int_equal(decode_one(buf, sizeof buf, MAX),
			    FRAME_OK);
		else if (decode_one(buf, sizeof buf, MAX) != FRAME_BAD_TYPE)
			fail_msg("type %d: not FRAME_BAD_TYPE", type);
	}
}

static void
test_bad_flags(void **state)
{
	uint8_t	buf[FRAME_HEADER_SIZE + 8];
	int	flags;

	for (flags = 1; flags < 256; flags++) {
		make_frame(buf, flags % 2 ? FRAME_MSG : FRAME_DATA, 0, 8);
		buf[5] = (uint8_t)flags;
		reseal(buf);
		if (decode_one(buf, sizeof buf, MAX) != FRAME_BAD_TYPE)
			fail_msg("flags %#x: not FRAME_BAD_TYPE", flags);
	}
}

/* FRAME_FLAG_UNCHECKED: a data frame without payload CRC, for channels that
 * authenticate every byte.  A decoder not told so refuses it; one told so
 * takes it (whatever the payload) but still checks every other frame, and
 * the flag on a message frame or with a CRC in its field is refused. */
static void
unchecked_frame(uint8_t *buf, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		buf[FRAME_HEADER_SIZE + i] = (uint8_t)(i * 13 + 1);
	frame_header_encode_unchecked(buf, 7, (uint32_t)len);
}

static enum frame_status
decode_allowed(const uint8_t *buf, size_t len, struct frame_hdr *h,
    const uint8_t **p)
{
	struct frame_decoder	dec;
	enum frame_status	st;

	frame_decoder_init(&dec, MAX);
	frame_decoder_allow_unchecked(&dec);
	frame_decoder_feed(&dec, buf, len);
	st = frame_decoder_next(&dec, h, p);
	if (st == FRAME_OK && *p != NULL)
		assert_memory_equal(*p, buf + FRAME_HEADER_SIZE, h->length);
	frame_decoder_free(&dec);
	return st;
}

static void
test_unchecked(void **state)
{
	uint8_t			 buf[FRAME_HEADER_SIZE + 40];
	struct frame_hdr	 h;
	const uint8_t		*p = NULL;

	unchecked_frame(buf, 40);
	/* The header alone is well-formed; the decoder judges the flag. */
	assert_int_equal(frame_header_decode(buf, MAX, &h), FRAME_OK);
	assert_int_equal(h.flags, FRAME_FLAG_UNCHECKED);
	assert_int_equal(h.crc, 0);
	assert_int_equal(decode_one(buf, sizeof buf, MAX), FRAME_BAD_TYPE);

	assert_int_equal(decode_allowed(buf, sizeof buf, &h, &p), FRAME_OK);
	assert_int_equal(h.type, FRAME_DATA);
	assert_int_equal(h.channel, 7);
	assert_int_equal(h.length, 40);
	/* No CRC: a changed payload goes through (TLS's tag catches it). */
	buf[FRAME_HEADER_SIZE + 3] ^= 1;
	assert_int_equal(decode_allowed(buf, sizeof buf, &h, &p), FRAME_OK);

	/* A CRC in the field of an unchecked frame: refused. */
	unchecked_frame(buf, 40);
	buf[11] = 1;
	reseal(buf);
	assert_int_equal(decode_allowed(buf, sizeof buf, &h, &p),
	    FRAME_BAD_TYPE);
	/* The flag on a message frame: refused. */
	unchecked_frame(buf, 40);
	buf[4] = FRAME_MSG;
	buf[6] = buf[7] = 0;
	reseal(buf);
	assert_int_equal(decode_allowed(buf, sizeof buf, &h, &p),
	    FRAME_BAD_TYPE);
	/* Other flags stay unknown. */
	unchecked_frame(buf, 40);
	buf[5] = FRAME_FLAG_UNCHECKED | 2;
	reseal(buf);
	assert_int_equal(decode_allowed(buf, sizeof buf, &h, &p),
	    FRAME_BAD_TYPE);
	/* Frames without the flag are still checked. */
	make_frame(buf, FRAME_DATA, 7, 40);
	assert_int_equal(decode_allowed(buf, sizeof buf, &h, &p), FRAME_OK);
	buf[FRAME_HEADER_SIZE + 3] ^= 1;
	assert_int_equal(decode_allowed(buf, sizeof buf, &h, &p),
	    FRAME_BAD_CRC);
}

static void
test_msg_channel(void **state)
{
	uint8_t			buf[FRAME_HEADER_SIZE + 8];
	struct frame_hdr	h;
	const uint16_t		channels[] = { 1, 2, 0x100, 0x8000, 0xffff };
	size_t			i;

	for (i = 0; i < sizeof channels / sizeof channels[0]; i++) {
		make_frame(buf, FRAME_MSG, channels[i], 8);
		assert_int_equal(frame_header_decode(buf, MAX, &h),
		    FRAME_BAD_TYPE);
		assert_int_equal(decode_one(buf, sizeof buf, MAX),
		    FRAME_BAD_TYPE);
		/* The same channel is fine on a data frame. */
		make_frame(buf, FRAME_DATA, channels[i], 8);
		assert_int_equal(decode_one(buf, sizeof buf, MAX), FRAME_OK);
	}
	make_frame(buf, FRAME_DATA, 0, 8);
	assert_int_equal(decode_one(buf, sizeof buf, MAX), FRAME_OK);
}

/* A header announcing more than max: refused, and without the decoder
 * allocating for it. */
static void
check_too_big(uint32_t max, uint32_t length)
{
	struct frame_decoder	 dec;
	uint8_t			 buf[FRAME_HEADER_SIZE + 100];
	struct frame_hdr	 h;
	const uint8_t		*p;
	size_t			 room, bound;

	make_frame(buf, FRAME_DATA, 1, 100);
	put32(buf, length);
	reseal(buf);
	assert_int_equal(frame_header_decode(buf, max, &h), FRAME_TOO_BIG);
	assert_int_equal(h.length, length);

	/* The header alone.  The decoder never holds more than its largest
	 * legitimate frame plus a read chunk, whatever the header announced. */
	bound = FRAME_HEADER_SIZE + (size_t)max + CHUNK;
	frame_decoder_init(&dec, max);
	frame_decoder_feed(&dec, buf, FRAME_HEADER_SIZE);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_TOO_BIG);
	if (dec.size > bound)
		fail_msg("max %u length %u: decoder holds %zu bytes", max,
		    length, dec.size);
	/* Asking for room grants a read chunk, not the announced frame. */
	(void)frame_decoder_space(&dec, &room);
	if (dec.size > bound)
		fail_msg("max %u length %u: decoder grew to %zu bytes", max,
		    length, dec.size);
	assert_true(room >= CHUNK);
	/* Some payload after it: at most what it holds beyond the bound. */
	frame_decoder_feed(&dec, buf + FRAME_HEADER_SIZE, 100);
	(void)frame_decoder_space(&dec, &room);
	if (dec.size > bound + 100)
		fail_msg("max %u length %u: decoder grew to %zu bytes", max,
		    length, dec.size);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_TOO_BIG);
	frame_decoder_free(&dec);

	assert_int_equal(decode_one(buf, sizeof buf, max), FRAME_TOO_BIG);
	assert_int_equal(decode_one(buf, FRAME_HEADER_SIZE, max),
	    FRAME_TOO_BIG);
}

/* A peer sending one byte per read: the decoder grows now and then, not
 * once per byte (that would be a cheap way to burn the receiver's CPU). */
static void
test_dribble_few_reallocs(void **state)
{
	struct frame_decoder	 dec;
	struct frame_hdr	 h;
	const uint8_t		*p;
	uint8_t			*payload, hdr[FRAME_HEADER_SIZE], *dst;
	size_t			 room, i, last_size = 0, grows = 0;
	uint32_t		 len = 256u << 10;

	payload = xcalloc(1, len);
	frame_header_encode(hdr, FRAME_DATA, 3, payload, len);
	frame_decoder_init(&dec, len);
	for (i = 0; i < FRAME_HEADER_SIZE + (size_t)len; i++) {
		dst = frame_decoder_space(&dec, &room);
		assert_true(room >= 1);
		*dst = i < FRAME_HEADER_SIZE ? hdr[i] : 0;
		frame_decoder_commit(&dec, 1);
		if (dec.size != last_size) {
			grows++;
			last_size = dec.size;
		}
	}
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_OK);
	assert_int_equal(h.length, len);
	if (grows > 4)
		fail_msg("%zu reallocations for one byte-by-byte frame", grows);
	frame_decoder_free(&dec);
	free(payload);
}

static void
test_too_big(void **state)
{
	check_too_big(FRAME_MAX_MIN, FRAME_MAX_MIN + 1);
	check_too_big(FRAME_MAX_MIN, CHUNK * 2);
	check_too_big(CHUNK, CHUNK + 1);
	check_too_big(MAX, MAX + 1);
	check_too_big(MAX, FRAME_MAX_LIMIT);
	check_too_big(MAX, 0x7fffffff);
	check_too_big(MAX, 0xffffffff);
	check_too_big(FRAME_MAX_LIMIT, FRAME_MAX_LIMIT + 1);
	check_too_big(0, 1);
}

static void
test_bad_crc(void **state)
{
	uint8_t			buf[FRAME_HEADER_SIZE + 64];
	struct frame_hdr	h;
	int			bit;

	make_frame(buf, FRAME_MSG, 0, 64);
	for (bit = 0; bit < 64 * 8; bit++) {
		buf[FRAME_HEADER_SIZE + bit / 8] ^= (uint8_t)(1u << (bit % 8));
		/* The header alone is still fine. */
		assert_int_equal(frame_header_decode(buf, MAX, &h), FRAME_OK);
		if (decode_one(buf, sizeof buf, MAX) != FRAME_BAD_CRC)
			fail_msg("payload bit %d flipped: not FRAME_BAD_CRC",
			    bit);
		buf[FRAME_HEADER_SIZE + bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(decode_one(buf, sizeof buf, MAX), FRAME_OK);

	/* A resealed header with the wrong payload CRC. */
	for (bit = 0; bit < 32; bit++) {
		make_frame(buf, FRAME_DATA, 5, 64);
		buf[8 + bit / 8] ^= (uint8_t)(1u << (bit % 8));
		reseal(buf);
		assert_int_equal(decode_one(buf, sizeof buf, MAX),
		    FRAME_BAD_CRC);
	}

	/* An empty payload with a nonzero CRC. */
	frame_header_encode(buf, FRAME_MSG, 0, NULL, 0);
	put32(buf + 8, 1);
	reseal(buf);
	assert_int_equal(decode_one(buf, FRAME_HEADER_SIZE, MAX),
	    FRAME_BAD_CRC);
}

/* A good frame, then a bad one: the good one is delivered first. */
static void
test_error_after_good(void **state)
{
	struct frame_decoder	 dec;
	uint8_t			 buf[2 * (FRAME_HEADER_SIZE + 10)];
	struct frame_hdr	 h;
	const uint8_t		*p;

	make_frame(buf, FRAME_MSG, 0, 10);
	make_frame(buf + FRAME_HEADER_SIZE + 10, FRAME_DATA, 1, 10);
	buf[sizeof buf - 1] ^= 1;
	frame_decoder_init(&dec, MAX);
	frame_decoder_feed(&dec, buf, sizeof buf);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_OK);
	assert_int_equal(h.type, FRAME_MSG);
	assert_memory_equal(p, buf + FRAME_HEADER_SIZE, 10);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_BAD_CRC);
	frame_decoder_free(&dec);
}

static void
test_truncated(void **state)
{
	struct frame_decoder	 dec;
	uint8_t			 buf[FRAME_HEADER_SIZE + 300];
	struct frame_hdr	 h;
	const uint8_t		*p;
	size_t			 cut;
	int			 i;

	make_frame(buf, FRAME_DATA, 2, 300);
	for (cut = 0; cut < sizeof buf; cut++) {
		frame_decoder_init(&dec, MAX);
		frame_decoder_feed(&dec, buf, cut);
		for (i = 0; i < 5; i++) {
			if (frame_decoder_next(&dec, &h, &p) != FRAME_NEED_MORE)
				fail_msg("%zu of %zu bytes: not FRAME_NEED_MORE",
				    cut, sizeof buf);
		}
		/* Feeding nothing changes nothing. */
		frame_decoder_feed(&dec, buf, 0);
		assert_int_equal(frame_decoder_next(&dec, &h, &p),
		    FRAME_NEED_MORE);
		check_bounded(&dec);
		frame_decoder_free(&dec);
	}
	/* The last byte completes it. */
	frame_decoder_init(&dec, MAX);
	frame_decoder_feed(&dec, buf, sizeof buf - 1);
	for (i = 0; i < 1000; i++)
		assert_int_equal(frame_decoder_next(&dec, &h, &p),
		    FRAME_NEED_MORE);
	frame_decoder_feed(&dec, buf + sizeof buf - 1, 1);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_OK);
	assert_int_equal(h.length, 300);
	frame_decoder_free(&dec);

	/* Nothing fed at all. */
	frame_decoder_init(&dec, MAX);
	assert_int_equal(frame_decoder_next(&dec, &h, &p), FRAME_NEED_MORE);
	frame_decoder_free(&dec);
}

static void
test_status_strings(void **state)
{
	const enum frame_status	all[] = { FRAME_OK, FRAME_NEED_MORE,
	    FRAME_BAD_HEADER, FRAME_BAD_TYPE, FRAME_TOO_BIG, FRAME_BAD_CRC };
	size_t			i, k;

	for (i = 0; i < sizeof all / sizeof all[0]; i++) {
		assert_non_null(frame_status_string(all[i]));
		assert_true(strlen(frame_status_string(all[i])) > 0);
		for (k = 0; k < i; k++)
			assert_string_not_equal(frame_status_string(all[i]),
			    frame_status_string(all[k]));
	}
	assert_non_null(strstr(frame_status_string(FRAME_TOO_BIG), "max"));
	assert_non_null(strstr(frame_status_string(FRAME_BAD_CRC), "checksum"));
	assert_non_null(frame_status_string((enum frame_status)99));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_round_trip),
		cmocka_unit_test(test_decode_whole),
		cmocka_unit_test(test_decode_byte_by_byte),
		cmocka_unit_test(test_decode_random_splits),
		cmocka_unit_test(test_decode_tiny_pieces),
		cmocka_unit_test(test_decode_space_commit),
		cmocka_unit_test(test_space_grows_for_frame),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_max_length),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_bad_type),
		cmocka_unit_test(test_bad_flags),
		cmocka_unit_test(test_unchecked),
		cmocka_unit_test(test_msg_channel),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_dribble_few_reallocs),
		cmocka_unit_test(test_bad_crc),
		cmocka_unit_test(test_error_after_good),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_status_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
