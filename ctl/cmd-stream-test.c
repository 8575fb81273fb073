/* ternctl stream-test HOST --bytes N: push N bytes of generated data to a
 * peer over a tern stream and report the throughput (self-test, bench). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ternctl.h"

/* "4G", "256M", "1000" -> bytes; -1 if malformed. */
static int
parse_size(const char *s, uint64_t *out)
{
	char			*end;
	unsigned long long	 v;
	unsigned		 shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (shift != 0 && *end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || (shift != 0 && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int
cmd_stream_test_exec(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 }
	};
	Envelope		 req, *reply;
	Tern__StreamTestRequest	 sr = TERN__STREAM_TEST_REQUEST__INIT;
	uint64_t		 bytes = 256u << 20;
	double			 secs, rate;
	int			 ch, rc = CTL_EXIT_OK;

	while ((ch = getopt_long(argc, argv, "b:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b':
			if (parse_size(optarg, &bytes) != 0 || bytes == 0) {
				ctl_error("--bytes: \"%s\" is not a size "
				    "(e.g. 4G, 256M)", optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		default:
			return ctl_usage(&cmd_stream_test_entry);
		}
	}
	if (optind != argc - 1)
		return ctl_usage(&cmd_stream_test_entry);
	msg_init(&req, 0);
	sr.host = argv[optind];
	sr.bytes = bytes;
	req.body_case = TERN__ENVELOPE__BODY_STREAM_TEST_REQUEST;
	req.stream_test_request = &sr;
	/* Generous: even 1 MB/s finishes a 4 GiB test within the deadline. */
	if ((reply = ctl_request(env, &req, 3600 * 1000, &rc)) == NULL)
		return rc;
	if (reply->body_case != TERN__ENVELOPE__BODY_STREAM_TEST_REPLY) {
		ctl_error("unexpected reply %s", msg_name(reply));
		msg_free(reply);
		return CTL_EXIT_FAILED;
	}
	secs = (double)reply->stream_test_reply->elapsed_ns / 1e9;
	rate = secs > 0 ? (double)reply->stream_test_reply->bytes / secs : 0;
	if (env->json)
		printf("{\"host\":\"%s\",\"bytes\":%llu,\"elapsed_ns\":%llu,"
		    "\"bytes_per_s\":%.0f}\n", sr.host,
		    (unsigned long long)reply->stream_test_reply->bytes,
		    (unsigned long long)reply->stream_test_reply->elapsed_ns,
		    rate);
	else
		printf("%s: %llu bytes in %.3f s = %.1f MB/s\n", sr.host,
		    (unsigned long long)reply->stream_test_reply->bytes, secs,
		    rate / 1e6);
	msg_free(reply);
	return rc;
}

const struct ctl_cmd cmd_stream_test_entry = {
	"stream-test", "stream-test HOST [--bytes N]",
	"stream generated data to a peer, report throughput",
	cmd_stream_test_exec
};
