#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/msg.h"
#include "daemon/sanitize.h"
#include "daemon/xmalloc.h"

/* Protobuf wire types. */
#define WT_VARINT	0
#define WT_I64		1
#define WT_LEN		2
#define WT_I32		5

/* Envelope body field numbers, as in proto/tern.proto. */
#define F_HELLO		16
#define F_ERROR		19
#define F_STREAM_END	22
#define F_STATUS_REQ	64
#define F_HOSTS_REQ	66
#define F_HOSTS_REPLY	67

static uint32_t
rnd_next(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

/* A growing buffer of hand-written wire bytes. */
struct wire {
	uint8_t	*p;
	size_t	 len;
};

static void
w_raw(struct wire *w, const void *data, size_t len)
{
	w->p = xrealloc(w->p, w->len + len + 1);
	if (len != 0)
		memcpy(w->p + w->len, data, len);
	w->len += len;
}

static void
w_varint(struct wire *w, uint64_t v)
{
	uint8_t	b[10];
	size_t	n = 0;

	do {
		b[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			b[n] |= 0x80;
		n++;
	} while (v != 0);
	w_raw(w, b, n);
}

static void
w_key(struct wire *w, uint32_t field, int type)
{
	w_varint(w, (uint64_t)field << 3 | (uint64_t)type);
}

static void
w_uint(struct wire *w, uint32_t field, uint64_t v)
{
	w_key(w, field, WT_VARINT);
	w_varint(w, v);
}

static void
w_bytes(struct wire *w, uint32_t field, const void *data, size_t len)
{
	w_key(w, field, WT_LEN);
	w_varint(w, len);
	w_raw(w, data, len);
}

static void
w_str(struct wire *w, uint32_t field, const char *s)
{
	w_bytes(w, field, s, strlen(s));
}

/* Nest one buffer as a length-delimited field of another, then free it. */
static void
w_nest(struct wire *w, uint32_t field, struct wire *inner)
{
	w_bytes(w, field, inner->p, inner->len);
	free(inner->p);
	memset(inner, 0, sizeof *inner);
}

static void
w_free(struct wire *w)
{
	free(w->p);
	memset(w, 0, sizeof *w);
}

/* Unpack bytes that must be accepted. */
static Envelope *
unpack_ok(const uint8_t *data, size_t len)
{
	Envelope	*env;
	char		*cause = NULL;
	int		 code = -1;

	env = msg_unpack(data, len, &code, &cause);
	if (env == NULL)
		fail_msg("refused: %s (code %d)", cause, code);
	assert_null(cause);
	assert_int_equal(code, -1);	/* untouched on success */
	return env;
}

/* Unpack bytes that must be refused with this code and a cause containing
 * every one of the given strings (NULL-terminated list). */
static void
expect_refused(const uint8_t *data, size_t len, int want_code, ...)
{
	Envelope	*env;
	char		*cause = NULL;
	const char	*part;
	int		 code = -1;
	va_list		 ap;

	env = msg_unpack(data, len, &code, &cause);
	if (env != NULL) {
		msg_free(env);
		fail_msg("accepted, expected code %d", want_code);
	}
	assert_non_null(cause);
	if (code != want_code)
		fail_msg("code %d (%s), expected %d; cause: %s", code,
		    msg_error_code_name(code), want_code, cause);
	va_start(ap, want_code);
	while ((part = va_arg(ap, const char *)) != NULL) {
		if (strstr(cause, part) == NULL) {
			va_end(ap);
			fail_msg("cause \"%s\" does not mention \"%s\"", cause,
			    part);
		}
	}
	va_end(ap);
	free(cause);
}

static uint8_t *
pack_hello(size_t *len)
{
	Envelope	 env;
	Tern__Hello	 hello = TERN__HELLO__INIT;
	char		*caps[] = { "stream.v1", "criu" };

	msg_init(&env, 7);
	hello.host = "alpha.example";
	hello.software = TERN_SOFTWARE;
	hello.n_capabilities = 2;
	hello.capabilities = caps;
	hello.max_frame = 1u << 20;
	hello.boot_id = 0xfedcba9876543210ull;
	env.body_case = TERN__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	return msg_pack(&env, len);
}

static void
test_hello_round_trip(void **state)
{
	Envelope	*env;
	uint8_t		*buf;
	size_t		 len;

	buf = pack_hello(&len);
	assert_true(len > 0);
	env = unpack_ok(buf, len);
	assert_int_equal(env->version, TERN_PROTOCOL_VERSION);
	assert_true(env->has_request_id);
	assert_int_equal(env->request_id, 7);
	assert_int_equal(env->body_case, TERN__ENVELOPE__BODY_HELLO);
	assert_string_equal(msg_name(env), "hello");
	assert_non_null(env->hello);
	assert_string_equal(env->hello->host, "alpha.example");
	assert_string_equal(env->hello->software, TERN_SOFTWARE);
	assert_int_equal(env->hello->n_capabilities, 2);
	assert_string_equal(env->hello->capabilities[0], "stream.v1");
	assert_string_equal(env->hello->capabilities[1], "criu");
	assert_int_equal(env->hello->max_frame, 1u << 20);
	assert_true(env->hello->boot_id == 0xfedcba9876543210ull);
	msg_free(env);
	free(buf);
}

static void
test_hosts_reply_round_trip(void **state)
{
	Envelope		 env, *got;
	Tern__HostsReply	 reply = TERN__HOSTS_REPLY__INIT;
	Tern__HostInfo		 h[3], *hp[3];
	char			*caps[] = { "stream.v1" };
	uint8_t			*buf;
	size_t			 len, i;

	for (i = 0; i < 3; i++) {
		tern__host_info__init(&h[i]);
		hp[i] = &h[i];
	}
	h[0].name = "alpha";
	h[0].address = "10.0.0.1:7411";
	h[0].state = "self";
	h[0].software = TERN_SOFTWARE;
	h[0].n_capabilities = 1;
	h[0].capabilities = caps;
	h[1].name = "beta";
	h[1].address = "[2001:db8::2]:7411";
	h[1].state = "up";
	h[1].has_rtt_us = 1;
	h[1].rtt_us = 250;
	h[1].has_since_ms = 1;
	h[1].since_ms = 123456789012ull;
	h[2].name = "gamma";
	h[2].address = "10.0.0.3:7411";
	h[2].state = "down";
	h[2].last_error = "connection refused";
	h[2].has_rtt_us = 1;
	h[2].rtt_us = 0;
	reply.n_hosts = 3;
	reply.hosts = hp;

	msg_init(&env, 0xffffffffffffffffull);
	env.body_case = TERN__ENVELOPE__BODY_HOSTS_REPLY;
	env.hosts_reply = &reply;
	buf = msg_pack(&env, &len);

	got = unpack_ok(buf, len);
	assert_string_equal(msg_name(got), "hosts_reply");
	assert_true(got->request_id == 0xffffffffffffffffull);
	assert_int_equal(got->hosts_reply->n_hosts, 3);
	for (i = 0; i < 3; i++) {
		Tern__HostInfo *g = got->hosts_reply->hosts[i];

		assert_string_equal(g->name, h[i].name);
		assert_string_equal(g->address, h[i].address);
		assert_string_equal(g->state, h[i].state);
		assert_int_equal(g->has_rtt_us, h[i].has_rtt_us);
		assert_true(g->rtt_us == h[i].rtt_us);
		assert_int_equal(g->has_since_ms, h[i].has_since_ms);
		assert_true(g->since_ms == h[i].since_ms);
		assert_int_equal(g->n_capabilities, h[i].n_capabilities);
		if (h[i].last_error != NULL)
			assert_string_equal(g->last_error, h[i].last_error);
		else
			assert_null(g->last_error);
		if (h[i].software != NULL)
			assert_string_equal(g->software, h[i].software);
		else
			assert_null(g->software);
	}
	assert_string_equal(got->hosts_reply->hosts[0]->capabilities[0],
	    "stream.v1");
	msg_free(got);
	free(buf);

	/* An empty list is a valid reply. */
	reply.n_hosts = 0;
	reply.hosts = NULL;
	buf = msg_pack(&env, &len);
	got = unpack_ok(buf, len);
	assert_int_equal(got->body_case, TERN__ENVELOPE__BODY_HOSTS_REPLY);
	assert_int_equal(got->hosts_reply->n_hosts, 0);
	msg_free(got);
	free(buf);
}

/* Other bodies, including an Error nested in a StreamEnd and an empty
 * message. */
/* Issue 9 #13: a peer's error text with ANSI sequences and newlines comes
 * out of the decoder escaped and bounded; names stay as sent. */
static void
test_error_text_escaped(void **state)
{
	Envelope		 env, *got;
	Tern__Error		 err = TERN__ERROR__INIT;
	Tern__MigrateStep	 step = TERN__MIGRATE_STEP__INIT;
	char			*big;
	uint8_t			*buf;
	size_t			 len;

	(void)state;
	msg_init(&env, 1);
	err.code = TERN__ERROR_CODE__ERROR_INTERNAL;
	err.text = "bad\n\x1b[2J\x1b]0;owned\x07\nFAKE info migrate: ok\r";
	env.body_case = TERN__ENVELOPE__BODY_ERROR;
	env.error = &err;
	buf = msg_pack(&env, &len);
	got = unpack_ok(buf, len);
	assert_string_equal(got->error->text, "bad\\n\\x1b[2J\\x1b]0;owned"
	    "\\x07\\nFAKE info migrate: ok\\r");
	msg_free(got);
	free(buf);

	/* Over the bound: cut and marked. */
	big = xmalloc(100000);
	memset(big, 'a', 99999);
	big[99999] = '\0';
	err.text = big;
	buf = msg_pack(&env, &len);
	got = unpack_ok(buf, len);
	assert_true(strlen(got->error->text) <= SANITIZE_TEXT_MAX + 3);
	assert_string_equal(got->error->text + strlen(got->error->text) - 3,
	    "...");
	msg_free(got);
	free(buf);
	free(big);

	/* MigrateStep.error too; the name (checked where it is used) is kept. */
	step.migration = 7;
	step.step = TERN__MIGRATE_STEP__STEP__ABORT;
	step.error = "x\x1b[31my";
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
	env.migrate_step = &step;
	buf = msg_pack(&env, &len);
	got = unpack_ok(buf, len);
	assert_string_equal(got->migrate_step->error, "x\\x1b[31my");
	msg_free(got);
	free(buf);
}

static void
test_other_round_trips(void **state)
{
	Envelope		 env, *got;
	Tern__Ping		 ping = TERN__PING__INIT;
	Tern__Error		 err = TERN__ERROR__INIT;
	Tern__StreamEnd		 end = TERN__STREAM_END__INIT;
	Tern__StatusRequest	 sreq = TERN__STATUS_REQUEST__INIT;
	uint8_t			*buf;
	size_t			 len;

	msg_init(&env, 1);
	ping.sent_ns = 123456789;
	env.body_case = TERN__ENVELOPE__BODY_PING;
	env.ping = &ping;
	buf = msg_pack(&env, &len);
	got = unpack_ok(buf, len);
	assert_string_equal(msg_name(got), "ping");
	assert_int_equal(got->ping->sent_ns, 123456789);
	msg_free(got);
	free(buf);

	err.code = TERN__ERROR_CODE__ERROR_RESOURCE;
	err.text = "out of stream credit";
	end.channel = 3;
	end.bytes = 1u << 30;
	end.error = &err;
	env.body_case = TERN__ENVELOPE__BODY_STREAM_END;
	env.stream_end = &end;
	buf = msg_pack(&env, &len);
	got = unpack_ok(buf, len);
	assert_string_equal(msg_name(got), "stream_end");
	assert_int_equal(got->stream_end->channel, 3);
	assert_non_null(got->stream_end->error);
	assert_int_equal(got->stream_end->error->code,
	    TERN__ERROR_CODE__ERROR_RESOURCE);
	assert_string_equal(got->stream_end->error->text,
	    "out of stream credit");
	msg_free(got);
	free(buf);

	env.body_case = TERN__ENVELOPE__BODY_ERROR;
	env.error = &err;
	env.has_request_id = 0;
	buf = msg_pack(&env, &len);
	got = unpack_ok(buf, len);
	assert_string_equal(msg_name(got), "error");
	assert_false(got->has_request_id);
	msg_free(got);
	free(buf);

	env.body_case = TERN__ENVELOPE__BODY_STATUS_REQUEST;
	env.status_request = &sreq;
	buf = msg_pack(&env, &len);
	got = unpack_ok(buf, len);
	assert_string_equal(msg_name(got), "status_request");
	msg_free(got);
	free(buf);

	msg_free(NULL);
}

static void
test_wrong_version(void **state)
{
	/* 1: the strings kinds and modes were before the enums; 2: before
	 * the host drain (Hello.drained); 3: before ha set and replicas;
	 * 4: before owner moves, standby terms and the page pipeline; 5:
	 * before a protected VM's RETURN step. */
	const uint32_t	 versions[] = { 0, 1, 2, 3, 4, 5, 7, 0x7fffffff,
	    0xffffffff };
	Envelope	 env;
	Tern__Ping	 ping = TERN__PING__INIT;
	uint8_t		*buf;
	size_t		 len, i;
	char		 want[32];

	msg_init(&env, 1);
	env.body_case = TERN__ENVELOPE__BODY_PING;
	env.ping = &ping;
	for (i = 0; i < sizeof versions / sizeof versions[0]; i++) {
		env.version = versions[i];
		buf = msg_pack(&env, &len);
		snprintf(want, sizeof want, "version %u", versions[i]);
		expect_refused(buf, len, TERN__ERROR_CODE__ERROR_VERSION,
		    want, NULL);
		free(buf);
	}

	/* The version is judged before anything else: a future peer may
	 * send fields and bodies we do not know. */
	{
		struct wire	w = { NULL, 0 };
		char		future[32];

		snprintf(future, sizeof future, "version %u",
		    TERN_PROTOCOL_VERSION + 1);
		w_uint(&w, 1, TERN_PROTOCOL_VERSION + 1);
		w_uint(&w, 200, 1);
		w_bytes(&w, 99, "future", 6);
		expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_VERSION,
		    future, NULL);
		w_free(&w);
	}
}

static void
test_no_body(void **state)
{
	Envelope	 env;
	uint8_t		*buf;
	size_t		 len;

	msg_init(&env, 5);
	buf = msg_pack(&env, &len);
	expect_refused(buf, len, TERN__ERROR_CODE__ERROR_BAD_REQUEST, "body",
	    NULL);
	free(buf);

	/* Version alone, no request id either. */
	{
		struct wire	w = { NULL, 0 };

		w_uint(&w, 1, TERN_PROTOCOL_VERSION);
		expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "body", NULL);
		w_free(&w);
	}
}

static void
test_unknown_top_level(void **state)
{
	struct wire	 w = { NULL, 0 };
	uint8_t		*buf;
	size_t		 len;
	uint32_t	 v = 0xdeadbeef;

	/* A varint field 200 appended to a good message. */
	buf = pack_hello(&len);
	w_raw(&w, buf, len);
	w_uint(&w, 200, 1);
	assert_int_equal(w.len, len + 3);	/* key 0xc0 0x0c, value 0x01 */
	assert_int_equal(w.p[len], 0xc0);
	assert_int_equal(w.p[len + 1], 0x0c);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", "200", "Envelope", NULL);
	w_free(&w);

	/* The other wire types, and numbers inside the body range. */
	w_raw(&w, buf, len);
	w_bytes(&w, 23, "x", 1);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", "23", NULL);
	w_free(&w);

	w_raw(&w, buf, len);
	w_key(&w, 3, WT_I32);
	w_raw(&w, &v, 4);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", "3", NULL);
	w_free(&w);

	w_raw(&w, buf, len);
	w_key(&w, 536870911, WT_I64);	/* the largest field number */
	w_raw(&w, &v, 4);
	w_raw(&w, &v, 4);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", NULL);
	w_free(&w);

	/* Before the known fields rather than after. */
	w_uint(&w, 1000, 0);
	w_raw(&w, buf, len);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", "1000", NULL);
	w_free(&w);
	free(buf);
}

/* The Hello body by hand: every required field, then `extra` appended. */
static void
hello_fields(struct wire *h, int with_host)
{
	if (with_host)
		w_str(h, 1, "beta");
	w_str(h, 2, "tern 0.1.0");
	w_str(h, 3, "stream.v1");
	w_uint(h, 4, 65536);
	w_uint(h, 5, 0x1122334455667788ull);
}

static void
envelope_with(struct wire *w, uint32_t field, struct wire *body)
{
	w_uint(w, 1, TERN_PROTOCOL_VERSION);
	w_uint(w, 2, 99);
	w_nest(w, field, body);
}

static void
test_hand_built_ok(void **state)
{
	struct wire	 w = { NULL, 0 }, h = { NULL, 0 };
	Envelope	*env;

	hello_fields(&h, 1);
	envelope_with(&w, F_HELLO, &h);
	env = unpack_ok(w.p, w.len);
	assert_string_equal(env->hello->host, "beta");
	assert_int_equal(env->hello->max_frame, 65536);
	assert_true(env->hello->boot_id == 0x1122334455667788ull);
	assert_int_equal(env->request_id, 99);
	msg_free(env);
	w_free(&w);
}

static void
test_unknown_nested(void **state)
{
	struct wire	w = { NULL, 0 }, h = { NULL, 0 }, r = { NULL, 0 };
	struct wire	e = { NULL, 0 };
	int		i;

	/* Inside Hello. */
	hello_fields(&h, 1);
	w_uint(&h, 60, 1);
	envelope_with(&w, F_HELLO, &h);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", "60", "Hello", NULL);
	w_free(&w);

	/* Inside Hello, length-delimited, before the known fields. */
	w_str(&h, 77, "smuggled");
	hello_fields(&h, 1);
	envelope_with(&w, F_HELLO, &h);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", "77", "Hello", NULL);
	w_free(&w);

	/* Inside the second HostInfo of a HostsReply. */
	for (i = 0; i < 3; i++) {
		w_str(&h, 1, i == 0 ? "alpha" : i == 1 ? "beta" : "gamma");
		w_str(&h, 2, "10.0.0.1:7411");
		w_str(&h, 3, "up");
		w_uint(&h, 5, 120);
		if (i == 1)
			w_uint(&h, 200, 5);
		w_str(&h, 8, "stream.v1");
		w_nest(&r, 1, &h);
	}
	envelope_with(&w, F_HOSTS_REPLY, &r);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", "200", "HostInfo", NULL);
	w_free(&w);

	/* Inside HostsReply itself. */
	w_str(&h, 1, "alpha");
	w_str(&h, 2, "10.0.0.1:7411");
	w_str(&h, 3, "self");
	w_nest(&r, 1, &h);
	w_uint(&r, 2, 1);
	envelope_with(&w, F_HOSTS_REPLY, &r);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", "2", "HostsReply", NULL);
	w_free(&w);

	/* Inside a message with no fields at all. */
	w_uint(&r, 1, 1);
	envelope_with(&w, F_HOSTS_REQ, &r);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", "1", "HostsRequest", NULL);
	w_free(&w);

	/* Inside one with a field: a number it does not have. */
	w_uint(&r, 15, 1);
	envelope_with(&w, F_STATUS_REQ, &r);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", "15", "StatusRequest", NULL);
	w_free(&w);

	/* Two levels down: an Error inside a StreamEnd. */
	w_uint(&e, 1, TERN__ERROR_CODE__ERROR_TIMEOUT);
	w_str(&e, 2, "timed out");
	w_uint(&e, 9, 9);
	w_uint(&r, 1, 4);
	w_uint(&r, 2, 4096);
	w_nest(&r, 3, &e);
	envelope_with(&w, F_STREAM_END, &r);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown field", "9", "Error", NULL);
	w_free(&w);
}

static void
test_unknown_enum(void **state)
{
	const int64_t	 codes[] = { 0, 10, 99, 1000, -1, 0x7fffffff };
	struct wire	 w = { NULL, 0 }, e = { NULL, 0 }, r = { NULL, 0 };
	size_t		 i;
	char		 want[32];

	for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		w_uint(&e, 1, (uint64_t)codes[i]);
		w_str(&e, 2, "whatever");
		envelope_with(&w, F_ERROR, &e);
		snprintf(want, sizeof want, "unknown value %d",
		    (int)codes[i]);
		expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    want, "code", NULL);
		w_free(&w);
	}

	/* Nested: Error.code inside StreamEnd. */
	w_uint(&e, 1, 99);
	w_str(&e, 2, "aborted");
	w_uint(&r, 1, 4);
	w_uint(&r, 2, 0);
	w_nest(&r, 3, &e);
	envelope_with(&w, F_STREAM_END, &r);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "unknown value 99", NULL);
	w_free(&w);

	/* Every known code is accepted. */
	for (i = 1; i <= 9; i++) {
		Envelope	*env;

		w_uint(&e, 1, i);
		w_str(&e, 2, "fine");
		envelope_with(&w, F_ERROR, &e);
		env = unpack_ok(w.p, w.len);
		assert_int_equal(env->error->code, (int)i);
		msg_free(env);
		w_free(&w);
	}
}

/* The wire's kinds and modes are enums: each message that carries one,
 * with v in that field (enum_cases below). */
enum enum_case {
	EC_STREAM_OPEN, EC_CREATE, EC_LIST, EC_OFFER_KIND, EC_OFFER_MODE,
	EC_REQUEST_MODE, EC_PROGRESS_MODE, EC_REPLY_MODE, EC_HELD, EC_OWNED,
	EC_COUNT
};

static const struct {
	const char	*field;		/* as the refusal names it */
	int		 max;		/* the enum's largest value */
} enum_cases[EC_COUNT] = {
	[EC_STREAM_OPEN] = { "StreamOpen.kind", 5 },
	[EC_CREATE] = { "InstanceCreateRequest.kind", 2 },
	[EC_LIST] = { "InstanceInfo.kind", 2 },
	[EC_OFFER_KIND] = { "MigrateOffer.kind", 2 },
	[EC_OFFER_MODE] = { "MigrateOffer.mode", 4 },
	[EC_REQUEST_MODE] = { "MigrateRequest.mode", 4 },
	[EC_PROGRESS_MODE] = { "MigrateProgress.mode", 4 },
	[EC_REPLY_MODE] = { "MigrateReply.mode", 4 },
	[EC_HELD] = { "HeldInstance.kind", 2 },
	[EC_OWNED] = { "OwnedInstance.kind", 2 },
};

static void
enum_case_wire(struct wire *w, enum enum_case c, uint64_t v)
{
	struct wire	b = { NULL, 0 }, i = { NULL, 0 };
	uint32_t	field = 0;

	switch (c) {
	case EC_STREAM_OPEN:
		w_uint(&b, 1, 1);
		w_uint(&b, 2, v);
		field = 20;
		break;
	case EC_CREATE:
		w_str(&b, 1, "c1");
		w_uint(&b, 2, v);
		w_str(&b, 3, "{}");
		w_str(&b, 4, "/");
		field = 72;
		break;
	case EC_LIST:
		w_str(&i, 1, "c1");
		w_uint(&i, 2, v);
		w_str(&i, 3, "running");
		w_nest(&b, 1, &i);
		field = 75;
		break;
	case EC_OFFER_KIND:
	case EC_OFFER_MODE:
		w_uint(&b, 1, 1);
		w_str(&b, 2, "c1");
		w_uint(&b, 3, c == EC_OFFER_KIND ? v : 1);
		w_str(&b, 4, "{}");
		w_str(&b, 5, "/");
		w_uint(&b, 6, 1);
		if (c == EC_OFFER_MODE)
			w_uint(&b, 8, v);
		field = 24;
		break;
	case EC_REQUEST_MODE:
		w_str(&b, 1, "c1");
		w_str(&b, 2, "h2");
		w_uint(&b, 3, v);
		field = 81;
		break;
	case EC_PROGRESS_MODE:
		w_str(&b, 1, "c1");
		w_str(&b, 2, "dumping");
		w_uint(&b, 3, 10);
		w_uint(&b, 6, v);
		field = 83;
		break;
	case EC_REPLY_MODE:
		w_str(&b, 1, "c1");
		w_str(&b, 2, "h2");
		w_uint(&b, 3, v);
		w_uint(&b, 4, 1);
		w_uint(&b, 5, 1);
		w_uint(&b, 6, 1);
		field = 82;
		break;
	case EC_HELD:
	case EC_OWNED:
		w_str(&i, 1, "c1");
		w_uint(&i, 2, c == EC_HELD ? 0 : 1);
		w_uint(&i, 3, v);
		w_uint(&b, 1, 1);
		w_nest(&b, 4, &i);
		field = c == EC_HELD ? 26 : 27;
		break;
	case EC_COUNT:
		break;
	}
	envelope_with(w, field, &b);
}

/* The value of the enum field of a decoded enum_case message. */
static int
enum_case_value(const Envelope *env, enum enum_case c)
{
	switch (c) {
	case EC_STREAM_OPEN:
		return env->stream_open->kind;
	case EC_CREATE:
		return env->instance_create_request->kind;
	case EC_LIST:
		return env->instance_list_reply->instances[0]->kind;
	case EC_OFFER_KIND:
		return env->migrate_offer->kind;
	case EC_OFFER_MODE:
		assert_true(env->migrate_offer->has_mode);
		return env->migrate_offer->mode;
	case EC_REQUEST_MODE:
		assert_true(env->migrate_request->has_mode);
		return env->migrate_request->mode;
	case EC_PROGRESS_MODE:
		assert_true(env->migrate_progress->has_mode);
		return env->migrate_progress->mode;
	case EC_REPLY_MODE:
		return env->migrate_reply->mode;
	case EC_HELD:
		assert_true(env->lease_renew->held[0]->has_kind);
		return env->lease_renew->held[0]->kind;
	case EC_OWNED:
		assert_true(env->lease_grant->owned[0]->has_kind);
		return env->lease_grant->owned[0]->kind;
	case EC_COUNT:
		break;
	}
	return -1;
}

/* Every kind and mode out of its enum's range is refused, naming the
 * field, wherever it is (a list's entry, a lease's held instance); every
 * value in range is taken. */
static void
test_kind_mode_enums(void **state)
{
	struct wire	 w = { NULL, 0 }, b = { NULL, 0 };
	Envelope	*env;
	char		 want[64];
	int		 c, k, bad[4];

	for (c = 0; c < EC_COUNT; c++) {
		for (k = 1; k <= enum_cases[c].max; k++) {
			enum_case_wire(&w, (enum enum_case)c, (uint64_t)k);
			env = unpack_ok(w.p, w.len);
			assert_int_equal(enum_case_value(env,
			    (enum enum_case)c), k);
			msg_free(env);
			w_free(&w);
		}
		bad[0] = 0;
		bad[1] = enum_cases[c].max + 1;
		bad[2] = 99;
		bad[3] = -1;
		for (k = 0; k < 4; k++) {
			enum_case_wire(&w, (enum enum_case)c,
			    (uint64_t)(int64_t)bad[k]);
			snprintf(want, sizeof want, "unknown value %d", bad[k]);
			expect_refused(w.p, w.len,
			    TERN__ERROR_CODE__ERROR_BAD_REQUEST, want,
			    enum_cases[c].field, NULL);
			w_free(&w);
		}
	}

	/* The string a kind was before (StreamOpen{kind: "sink"}). */
	w_uint(&b, 1, 1);
	w_str(&b, 2, "sink");
	envelope_with(&w, 20, &b);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "malformed", NULL);
	w_free(&w);
}

/* The words ternctl and the logs use, both ways. */
static void
test_kind_mode_words(void **state)
{
	static const char *const kinds[] = { "container", "vm" };
	static const char *const modes[] = { "auto", "precopy", "postcopy",
	    "stopcopy" };
	static const char *const streams[] = { "sink", "ckpt-file", "tree",
	    "relay", "replica" };
	int	i;

	for (i = 0; i < 2; i++) {
		assert_string_equal(msg_kind_name(i + 1), kinds[i]);
		assert_int_equal(msg_kind_parse(kinds[i]), i + 1);
	}
	assert_int_equal(TERN__INSTANCE_KIND__KIND_CONTAINER, 1);
	assert_int_equal(msg_kind_parse("vm"), TERN__INSTANCE_KIND__KIND_VM);
	for (i = 0; i < 4; i++) {
		assert_string_equal(msg_mode_name(i + 1), modes[i]);
		assert_int_equal(msg_mode_parse(modes[i]), i + 1);
		assert_string_equal(msg_stream_kind_name(i + 1), streams[i]);
	}
	assert_string_equal(msg_stream_kind_name(5), streams[4]);
	assert_int_equal(msg_mode_parse("postcopy"),
	    TERN__MIGRATION_MODE__MODE_POSTCOPY);
	assert_string_equal(msg_stream_kind_name(
	    TERN__STREAM_KIND__STREAM_FILES), "ckpt-file");
	assert_string_equal(msg_kind_name(0), "unknown");
	assert_string_equal(msg_kind_name(3), "unknown");
	assert_string_equal(msg_kind_name(-1), "unknown");
	assert_string_equal(msg_mode_name(5), "unknown");
	assert_string_equal(msg_stream_kind_name(0), "unknown");
	assert_int_equal(msg_kind_parse("teapot"), -1);
	assert_int_equal(msg_kind_parse("unknown"), -1);
	assert_int_equal(msg_kind_parse(""), -1);
	assert_int_equal(msg_mode_parse("teleport"), -1);
	assert_int_equal(msg_mode_parse("AUTO"), -1);
}

static void
test_missing_required(void **state)
{
	struct wire	w = { NULL, 0 }, h = { NULL, 0 };

	/* Hello without its host. */
	hello_fields(&h, 0);
	envelope_with(&w, F_HELLO, &h);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "malformed", NULL);
	w_free(&w);

	/* Envelope without its version. */
	hello_fields(&h, 1);
	w_nest(&w, F_HELLO, &h);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "malformed", NULL);
	w_free(&w);

	/* Error without its text. */
	w_uint(&h, 1, TERN__ERROR_CODE__ERROR_INTERNAL);
	envelope_with(&w, F_ERROR, &h);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "malformed", NULL);
	w_free(&w);

	/* A known field with the wrong wire type. */
	w_key(&w, 1, WT_LEN);
	w_varint(&w, 1);
	w_raw(&w, "\x01", 1);
	hello_fields(&h, 1);
	w_nest(&w, F_HELLO, &h);
	expect_refused(w.p, w.len, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "malformed", NULL);
	w_free(&w);

	/* Nothing at all. */
	expect_refused((const uint8_t *)"", 0,
	    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "malformed", NULL);
}

static void
test_truncated(void **state)
{
	Envelope		 env;
	Tern__HostsReply	 reply = TERN__HOSTS_REPLY__INIT;
	Tern__HostInfo		 h = TERN__HOST_INFO__INIT, *hp = &h;
	uint8_t			*buf, *copy;
	size_t			 len, cut;

	buf = pack_hello(&len);
	for (cut = 0; cut < len; cut++) {
		/* An exact-size copy, so a read past the end is caught. */
		copy = xmalloc(cut + 1);
		memcpy(copy, buf, cut);
		expect_refused(copy, cut, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    NULL);
		free(copy);
	}
	free(buf);

	h.name = "alpha";
	h.address = "10.0.0.1:7411";
	h.state = "up";
	reply.n_hosts = 1;
	reply.hosts = &hp;
	msg_init(&env, 3);
	env.body_case = TERN__ENVELOPE__BODY_HOSTS_REPLY;
	env.hosts_reply = &reply;
	buf = msg_pack(&env, &len);
	for (cut = 0; cut < len; cut++) {
		copy = xmalloc(cut + 1);
		memcpy(copy, buf, cut);
		expect_refused(copy, cut, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    NULL);
		free(copy);
	}
	free(buf);
}

/* Unpack whatever; it must not crash or leak, and a refusal must come with
 * a cause and a known code. */
static int
unpack_any(const uint8_t *data, size_t len)
{
	Envelope	*env;
	char		*cause = NULL;
	int		 code = -1;

	env = msg_unpack(data, len, &code, &cause);
	if (env != NULL) {
		assert_null(cause);
		assert_int_equal(env->version, TERN_PROTOCOL_VERSION);
		assert_int_not_equal(env->body_case,
		    TERN__ENVELOPE__BODY__NOT_SET);
		assert_string_not_equal(msg_name(env), "none");
		msg_free(env);
		return 1;
	}
	assert_non_null(cause);
	assert_true(code == TERN__ERROR_CODE__ERROR_BAD_REQUEST ||
	    code == TERN__ERROR_CODE__ERROR_VERSION);
	free(cause);
	return 0;
}

static void
test_garbage(void **state)
{
	uint8_t		*buf, *good;
	size_t		 len, goodlen, i, k;
	uint32_t	 rs = 0x5eed;
	int		 accepted = 0;

	/* Random bytes of random lengths. */
	for (i = 0; i < 20000; i++) {
		len = rnd_next(&rs) % 200;
		buf = xmalloc(len + 1);
		for (k = 0; k < len; k++)
			buf[k] = (uint8_t)rnd_next(&rs);
		accepted += unpack_any(buf, len);
		free(buf);
	}

	/* Random bytes after a valid version, so the body parsers run. */
	for (i = 0; i < 20000; i++) {
		len = 2 + rnd_next(&rs) % 100;
		buf = xmalloc(len);
		buf[0] = 0x08;
		buf[1] = TERN_PROTOCOL_VERSION;
		for (k = 2; k < len; k++)
			buf[k] = (uint8_t)rnd_next(&rs);
		if (len > 5 && i % 2 == 0) {
			/* A body key (fields 16..22) and the length of
			 * what follows. */
			buf[2] = (uint8_t)(0x82 + 8 * (rnd_next(&rs) % 7));
			buf[3] = 0x01;
			buf[4] = (uint8_t)(len - 5);
		}
		accepted += unpack_any(buf, len);
		free(buf);
	}

	/* Valid messages with a few bytes changed. */
	good = pack_hello(&goodlen);
	buf = xmalloc(goodlen);
	for (i = 0; i < 20000; i++) {
		memcpy(buf, good, goodlen);
		for (k = 0; k < 1 + rnd_next(&rs) % 3; k++)
			buf[rnd_next(&rs) % goodlen] = (uint8_t)rnd_next(&rs);
		accepted += unpack_any(buf, goodlen - rnd_next(&rs) % 2);
	}
	free(buf);
	free(good);
	print_message("garbage: %d of 60000 inputs accepted\n", accepted);
}

static void
test_error_code_names(void **state)
{
	int	code;

	for (code = 1; code <= 9; code++) {
		assert_non_null(msg_error_code_name(code));
		assert_string_not_equal(msg_error_code_name(code),
		    msg_error_code_name(99));
	}
	assert_non_null(msg_error_code_name(0));
	assert_non_null(msg_error_code_name(-1));
	assert_non_null(msg_error_code_name(99));
	assert_string_not_equal(msg_error_code_name(
	    TERN__ERROR_CODE__ERROR_VERSION), msg_error_code_name(
	    TERN__ERROR_CODE__ERROR_NOT_FOUND));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_round_trip),
		cmocka_unit_test(test_hosts_reply_round_trip),
		cmocka_unit_test(test_other_round_trips),
		cmocka_unit_test(test_error_text_escaped),
		cmocka_unit_test(test_wrong_version),
		cmocka_unit_test(test_no_body),
		cmocka_unit_test(test_unknown_top_level),
		cmocka_unit_test(test_hand_built_ok),
		cmocka_unit_test(test_unknown_nested),
		cmocka_unit_test(test_unknown_enum),
		cmocka_unit_test(test_kind_mode_enums),
		cmocka_unit_test(test_kind_mode_words),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_error_code_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
