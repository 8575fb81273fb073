/* libFuzzer target: a byte stream from a peer, through the frame decoder
 * and, for message frames, the strict message decoder.
 *
 * Input: one control byte, then the stream.  The control byte chooses
 * where the stream is split between two reads (so partial headers and
 * payloads are exercised) and whether the second read goes through
 * frame_decoder_space()/commit() or frame_decoder_feed().  The whole
 * stream then goes once more through a decoder as a TLS link has it, one
 * that takes data frames without payload CRC (FRAME_FLAG_UNCHECKED). */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/frame.h"
#include "daemon/msg.h"

#define FUZZ_MAX	(64u << 10)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Take every whole frame; 0 while the stream is still usable. */
static int
fuzz_drain(struct frame_decoder *dec)
{
	struct frame_hdr	 hdr;
	const uint8_t		*payload;
	enum frame_status	 st;
	Envelope		*env;
	char			*cause;
	int			 code;

	while ((st = frame_decoder_next(dec, &hdr, &payload)) == FRAME_OK) {
		if (hdr.length > dec->max)
			abort();
		/* The flag passes only where allowed, and only on data. */
		if (hdr.flags != 0 && (!dec->allow_unchecked ||
		    hdr.flags != FRAME_FLAG_UNCHECKED || hdr.type != FRAME_DATA))
			abort();
		if (hdr.type != FRAME_MSG)
			continue;
		cause = NULL;
		code = 0;
		env = msg_unpack(payload, hdr.length, &code, &cause);
		if (env != NULL) {
			if (cause != NULL || msg_name(env) == NULL)
				abort();
			msg_free(env);
		} else {
			if (cause == NULL || msg_error_code_name(code) == NULL)
				abort();
			free(cause);
		}
	}
	if (frame_status_string(st) == NULL)
		abort();
	return st == FRAME_NEED_MORE ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_decoder	 dec;
	struct frame_hdr	 hdr;
	const uint8_t		*all;
	size_t			 alln;
	uint8_t			*dst;
	size_t			 split, room, n;
	int			 use_space;

	if (size < 1)
		return 0;
	use_space = data[0] & 1;
	data++;
	size--;
	all = data;
	alln = size;
	split = size * (size_t)(data[-1] >> 1) / 127;
	if (split > size)
		split = size;

	if (size >= FRAME_HEADER_SIZE) {
		(void)frame_header_decode(data, FUZZ_MAX, &hdr);
		(void)frame_header_decode(data, 0, &hdr);
		(void)frame_header_decode(data, FRAME_MAX_LIMIT, &hdr);
	}

	frame_decoder_init(&dec, FUZZ_MAX);
	frame_decoder_feed(&dec, data, split);
	if (fuzz_drain(&dec) == 0) {
		data += split;
		size -= split;
		if (use_space) {
			while (size > 0) {
				dst = frame_decoder_space(&dec, &room);
				n = size < room ? size : room;
				memcpy(dst, data, n);
				frame_decoder_commit(&dec, n);
				data += n;
				size -= n;
				if (fuzz_drain(&dec) != 0)
					break;
			}
		} else {
			frame_decoder_feed(&dec, data, size);
			(void)fuzz_drain(&dec);
		}
	}
	frame_decoder_free(&dec);

	frame_decoder_init(&dec, FUZZ_MAX);
	frame_decoder_allow_unchecked(&dec);
	frame_decoder_feed(&dec, all, alln);
	(void)fuzz_drain(&dec);
	frame_decoder_free(&dec);
	return 0;
}
