/* rawpeer: a deliberately misbehaving tern peer for the fault tests.
 *
 * It speaks the peer protocol by hand over blocking OpenSSL (or plain TCP)
 * so it can send what a correct ternd never would: oversized, truncated,
 * corrupted or unknown frames, a Hello that lies, data beyond its credit;
 * or read a stream very slowly.  Exit status: 0 the expected outcome
 * happened, 1 it did not, 2 setup failed, 3 the TLS peer rejected us. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "daemon/frame.h"
#include "daemon/msg.h"
#include "daemon/util.h"

static SSL	*ssl;
static int	 sock = -1;
static int	 timeout_ms = 5000;
static const char *as_host;
static char	*caps_extra;	/* --caps: more capabilities to claim */
/* migrate-offer: what to offer */
static const char *offer_name = "cpu";
static const char *offer_spec;		/* file */
static const char *offer_cpuinfo;	/* file; none: no cpuinfo field */
static const char *offer_cpu_set;	/* "WORD:MASK": bits to claim */
static int	 offer_rootfs_copy;	/* --rootfs-copy: T makes the rootfs */
/* vm-flood: how many VM offers, relay streams; the target's socket dir */
static int	 flood_offers = 1;
static int	 flood_streams = 0;
static const char *flood_spec_dir = "/run/tern/vm-migrate";

static void
die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void
die(int code, const char *fmt, ...)
{
	va_list	ap;

	fputs("rawpeer: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static int
raw_write(const void *buf, size_t len)
{
	size_t	 off = 0, n;
	ssize_t	 w;

	while (off < len) {
		if (ssl != NULL) {
			if (SSL_write_ex(ssl, (const char *)buf + off, len - off,
			    &n) != 1)
				return -1;
			off += n;
		} else {
			w = send(sock, (const char *)buf + off, len - off,
			    MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -1;
			off += (size_t)w;
		}
	}
	return 0;
}

/* Read up to len bytes within the timeout: >0 bytes, 0 closed, -1 timeout,
 * -2 error (TLS alert: the reason is printed). */
static ssize_t
raw_read(void *buf, size_t len, int wait_ms)
{
	struct pollfd	pfd = { .fd = sock, .events = POLLIN };
	size_t		n;
	int		err;
	char		why[256];

	if (ssl == NULL || SSL_pending(ssl) == 0) {
		if (poll(&pfd, 1, wait_ms) == 0)
			return -1;
	}
	if (ssl == NULL) {
		ssize_t r = recv(sock, buf, len, 0);
		return r < 0 ? -2 : r;
	}
	if (SSL_read_ex(ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	err = SSL_get_error(ssl, 0);
	if (err == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -1;
	if (err == SSL_ERROR_WANT_READ)
		return -1;
	ERR_error_string_n(ERR_peek_last_error(), why, sizeof why);
	printf("tls-error: %s\n", why);
	return err == SSL_ERROR_SYSCALL ? 0 : -2;
}

/* A write that fails means the peer hung up on us: that is a rejection. */
static void
send_frame(enum frame_type type, uint16_t ch, const void *p, size_t len)
{
	uint8_t	hdr[FRAME_HEADER_SIZE];

	frame_header_encode(hdr, type, ch, p, (uint32_t)len);
	if (raw_write(hdr, sizeof hdr) != 0 || raw_write(p, len) != 0)
		die(3, "rejected: the peer closed the connection");
}

static void
send_env(Envelope *env)
{
	uint8_t	*buf;
	size_t	 len;

	buf = msg_pack(env, &len);
	send_frame(FRAME_MSG, 0, buf, len);
	free(buf);
}

static struct frame_decoder dec;

/* Next message (data frames are counted and skipped into *data_bytes). */
static Envelope *
recv_env(int wait_ms, uint64_t *data_bytes, int *closed)
{
	struct frame_hdr	 hdr;
	const uint8_t		*payload;
	enum frame_status	 st;
	uint8_t			*space;
	size_t			 room;
	ssize_t			 n;
	int			 code;
	char			*cause = NULL;
	Envelope		*env;

	*closed = 0;
	for (;;) {
		while ((st = frame_decoder_next(&dec, &hdr, &payload)) == FRAME_OK) {
			if (hdr.type == FRAME_DATA) {
				if (data_bytes == NULL)
					continue;
				/* Back to the caller: it paces its reading. */
				*data_bytes += hdr.length;
				return NULL;
			}
			env = msg_unpack(payload, hdr.length, &code, &cause);
			if (env == NULL)
				die(1, "bad message from ternd: %s", cause);
			return env;
		}
		if (st != FRAME_NEED_MORE)
			die(1, "bad frame from ternd: %s", frame_status_string(st));
		space = frame_decoder_space(&dec, &room);
		n = raw_read(space, room, wait_ms);
		if (n == -1)
			return NULL;
		if (n <= 0) {
			*closed = 1;
			return NULL;
		}
		frame_decoder_commit(&dec, (size_t)n);
	}
}

static void
send_hello(const char *host)
{
	Envelope	env;
	Tern__Hello	h = TERN__HELLO__INIT;
	char		*caps[8] = { "stream.v1" }, *copy = NULL, *c, *save;
	size_t		 n = 1;

	if (caps_extra != NULL) {
		copy = strdup(caps_extra);
		for (c = strtok_r(copy, ",", &save); c != NULL && n < 8;
		    c = strtok_r(NULL, ",", &save))
			caps[n++] = c;
	}
	msg_init(&env, 0);
	h.host = (char *)host;
	h.software = "rawpeer";
	h.n_capabilities = n;
	h.capabilities = caps;
	h.max_frame = 1u << 20;
	h.boot_id = 42;
	env.body_case = TERN__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(&env);
	free(copy);
}

/* Hello both ways; exits 3 if the peer refuses us. */
static void
do_hello(void)
{
	Envelope	*env;
	int		 closed;

	send_hello(as_host);
	env = recv_env(timeout_ms, NULL, &closed);
	if (env == NULL)
		die(3, "rejected: %s", closed ? "connection closed" :
		    "no hello within the timeout");
	if (env->body_case == TERN__ENVELOPE__BODY_ERROR) {
		printf("error: %s\n", env->error->text);
		die(3, "rejected: %s", env->error->text);
	}
	if (env->body_case != TERN__ENVELOPE__BODY_HELLO)
		die(1, "expected hello, got %s", msg_name(env));
	printf("hello: %s (%s)\n", env->hello->host, env->hello->software);
	msg_free(env);
}

/* After a bad thing was sent: the peer must close, maybe saying why. */
static int
expect_close(void)
{
	Envelope	*env;
	int		 closed;
	uint64_t	 deadline = now_ms() + (uint64_t)timeout_ms;

	while (now_ms() < deadline) {
		env = recv_env((int)(deadline - now_ms()), NULL, &closed);
		if (env == NULL) {
			if (closed) {
				printf("closed\n");
				return 0;
			}
			break;
		}
		if (env->body_case == TERN__ENVELOPE__BODY_ERROR)
			printf("error: %s\n", env->error->text);
		msg_free(env);
	}
	printf("still open after %d ms\n", timeout_ms);
	return 1;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A header with the given fields and a correct header CRC. */
static void
forge_header(uint8_t *h, uint32_t len, uint8_t type, uint8_t flags,
    uint16_t ch, uint32_t crc)
{
	extern uint32_t crc32c(uint32_t, const void *, size_t);

	put32(h, len);
	h[4] = type;
	h[5] = flags;
	h[6] = (uint8_t)(ch >> 8);
	h[7] = (uint8_t)ch;
	put32(h + 8, crc);
	put32(h + 12, crc32c(0, h, 12));
}

/* A peer that stays connected and answers pings, and nothing else: every
 * other message is printed and ignored. */
static int
silent(int seconds)
{
	Envelope	*env, reply;
	Tern__Pong	 pong = TERN__PONG__INIT;
	uint64_t	 start = now_ms();
	int		 closed;

	while (now_ms() - start < (uint64_t)seconds * 1000) {
		env = recv_env(100, NULL, &closed);
		if (closed) {
			printf("closed by ternd\n");
			return 1;
		}
		if (env == NULL)
			continue;
		if (env->body_case == TERN__ENVELOPE__BODY_PING) {
			msg_init(&reply, env->request_id);
			pong.sent_ns = env->ping->sent_ns;
			reply.body_case = TERN__ENVELOPE__BODY_PONG;
			reply.pong = &pong;
			send_env(&reply);
		} else {
			printf("ignored: %s\n", msg_name(env));
			fflush(stdout);
		}
		msg_free(env);
	}
	return 0;
}

/* Pretend to be a ternd that reads very slowly; answer pings. */
static int
slow_sink(uint64_t rate, int seconds)
{
	Envelope		*env, reply;
	Tern__StreamWindow	 win = TERN__STREAM_WINDOW__INIT;
	Tern__Pong		 pong = TERN__PONG__INIT;
	uint64_t		 got = 0, start = now_ms(), allowed;
	int			 closed;

	while (now_ms() - start < (uint64_t)seconds * 1000) {
		/* Read only as much as the rate allows so far. */
		allowed = rate * (now_ms() - start) / 1000;
		if (got >= allowed) {
			usleep(10000);
			continue;
		}
		env = recv_env(50, &got, &closed);
		if (closed) {
			printf("closed by ternd after %llu bytes\n",
			    (unsigned long long)got);
			return 0;
		}
		if (env == NULL)
			continue;
		switch (env->body_case) {
		case TERN__ENVELOPE__BODY_STREAM_OPEN:
			/* Grant far more than we will read: only TCP and the
			 * sender's own queue limit hold it back now. */
			msg_init(&reply, 0);
			win.channel = env->stream_open->channel;
			win.credit = 0xffffffffu;
			reply.body_case = TERN__ENVELOPE__BODY_STREAM_WINDOW;
			reply.stream_window = &win;
			send_env(&reply);
			printf("stream %u opened, granted 4 GiB\n", win.channel);
			break;
		case TERN__ENVELOPE__BODY_PING:
			msg_init(&reply, env->request_id);
			pong.sent_ns = env->ping->sent_ns;
			reply.body_case = TERN__ENVELOPE__BODY_PONG;
			reply.pong = &pong;
			send_env(&reply);
			break;
		default:
			break;
		}
		msg_free(env);
	}
	printf("received %llu bytes in %d s\n", (unsigned long long)got, seconds);
	return 0;
}

static void
put_varint(uint8_t **p, uint64_t v)
{
	do {
		*(*p)++ = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v != 0);
}

static int
get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	unsigned	shift;

	*v = 0;
	for (shift = 0; shift < 64 && *p < end; shift += 7) {
		*v |= (uint64_t)(**p & 0x7f) << shift;
		if ((*(*p)++ & 0x80) == 0)
			return 0;
	}
	return -1;
}

/* Copy one protobuf message (in -> *out), OR-ing mask into the word-th
 * varint of field 6 when in_x86, recursing into field 1 otherwise: that
 * is the x86 entry's capability array in CRIU's CpuinfoEntry. */
static int
pb_rewrite(const uint8_t *in, size_t len, uint8_t **out, int in_x86,
    unsigned word, uint32_t mask)
{
	const uint8_t	*p = in, *end = in + len, *start;
	uint64_t	 key, v;
	unsigned	 n = 0;
	uint8_t		*sub, *q;

	while (p < end) {
		if (get_varint(&p, end, &key) != 0)
			return -1;
		put_varint(out, key);
		switch (key & 7) {
		case 0:
			if (get_varint(&p, end, &v) != 0)
				return -1;
			if (in_x86 && key >> 3 == 6 && n++ == word)
				v |= mask;
			put_varint(out, v);
			break;
		case 1:
		case 5:
			v = (key & 7) == 1 ? 8 : 4;
			if (v > (uint64_t)(end - p))
				return -1;
			memcpy(*out, p, v);
			*out += v;
			p += v;
			break;
		case 2:
			if (get_varint(&p, end, &v) != 0 ||
			    v > (uint64_t)(end - p))
				return -1;
			start = p;
			p += v;
			if (in_x86 || key >> 3 != 1) {
				put_varint(out, v);
				memcpy(*out, start, v);
				*out += v;
				break;
			}
			/* the x86 entry: its varints may grow */
			sub = q = malloc(v * 2 + 64);
			if (pb_rewrite(start, v, &q, 1, word, mask) != 0) {
				free(sub);
				return -1;
			}
			put_varint(out, (uint64_t)(q - sub));
			memcpy(*out, sub, (size_t)(q - sub));
			*out += q - sub;
			free(sub);
			break;
		default:
			return -1;
		}
	}
	return in_x86 && n <= word ? -1 : 0;
}

/* A CRIU cpuinfo.img claiming more CPU features: two magics, a 32-bit LE
 * size, a CpuinfoEntry. */
static uint8_t *
cpuinfo_claim(const uint8_t *img, size_t len, const char *spec, size_t *outlen)
{
	unsigned long	 word;
	uint32_t	 mask, size, orig;
	uint8_t		*out, *p;
	char		*end;

	word = strtoul(spec, &end, 10);
	if (*end != ':')
		die(2, "--cpu-set %s: want WORD:MASK", spec);
	mask = (uint32_t)strtoul(end + 1, NULL, 0);
	if (len < 12)
		die(2, "cpuinfo image too short");
	orig = (uint32_t)img[8] | (uint32_t)img[9] << 8 |
	    (uint32_t)img[10] << 16 | (uint32_t)img[11] << 24;
	if (orig > len - 12)
		die(2, "cpuinfo image truncated");
	out = malloc(len * 2 + 64);
	p = out + 12;
	if (pb_rewrite(img + 12, orig, &p, 0, (unsigned)word, mask) != 0)
		die(2, "cpuinfo image: no capability word %lu", word);
	size = (uint32_t)(p - out - 12);
	memcpy(out, img, 8);
	out[8] = (uint8_t)size;
	out[9] = (uint8_t)(size >> 8);
	out[10] = (uint8_t)(size >> 16);
	out[11] = (uint8_t)(size >> 24);
	/* whatever follows the entry, unchanged */
	memcpy(p, img + 12 + orig, len - 12 - orig);
	*outlen = (size_t)(p - out) + len - 12 - orig;
	return out;
}

/* Offer a container as a source would and print the target's answer:
 * "ready" (then abort it) or "abort: WHY". */
static int
migrate_offer(void)
{
	Envelope		 env, reply, *in;
	Tern__MigrateOffer	 o = TERN__MIGRATE_OFFER__INIT;
	Tern__MigrateStep	 ms = TERN__MIGRATE_STEP__INIT;
	Tern__Pong		 pong = TERN__PONG__INIT;
	uint8_t			*img = NULL, *claimed;
	char			*spec, *dir, *slash, *cause = NULL;
	size_t			 len, ilen = 0;
	uint64_t		 deadline = now_ms() + (uint64_t)timeout_ms;
	int			 closed, rc = 1;

	if (offer_spec == NULL)
		die(2, "migrate-offer needs --spec");
	if ((spec = read_file_bounded(offer_spec, 1u << 20, &len,
	    &cause)) == NULL)
		die(2, "%s", cause);
	dir = strdup(offer_spec);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if (offer_cpuinfo != NULL) {
		if ((img = (uint8_t *)read_file_bounded(offer_cpuinfo, 1u << 20,
		    &ilen, &cause)) == NULL)
			die(2, "%s", cause);
		if (offer_cpu_set != NULL) {
			claimed = cpuinfo_claim(img, ilen, offer_cpu_set, &ilen);
			free(img);
			img = claimed;
		}
	}
	msg_init(&env, 0);
	o.migration = 0x7e570001;
	o.name = (char *)offer_name;
	o.kind = TERN__INSTANCE_KIND__KIND_CONTAINER;
	o.spec = spec;
	o.spec_dir = dir;
	o.generation = 1;
	if (offer_rootfs_copy) {
		o.has_rootfs_copy = 1;
		o.rootfs_copy = 1;
	}
	if (img != NULL) {
		o.has_cpuinfo = 1;
		o.cpuinfo.data = img;
		o.cpuinfo.len = ilen;
	}
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_OFFER;
	env.migrate_offer = &o;
	send_env(&env);
	while (now_ms() < deadline) {
		in = recv_env((int)(deadline - now_ms()), NULL, &closed);
		if (closed) {
			printf("closed by ternd\n");
			break;
		}
		if (in == NULL)
			continue;
		if (in->body_case == TERN__ENVELOPE__BODY_PING) {
			msg_init(&reply, in->request_id);
			pong.sent_ns = in->ping->sent_ns;
			reply.body_case = TERN__ENVELOPE__BODY_PONG;
			reply.pong = &pong;
			send_env(&reply);
		} else if (in->body_case == TERN__ENVELOPE__BODY_MIGRATE_STEP &&
		    in->migrate_step->migration == o.migration) {
			if (in->migrate_step->step ==
			    TERN__MIGRATE_STEP__STEP__READY) {
				printf("ready\n");
				/* We have no container: call it off. */
				msg_init(&reply, 0);
				ms.migration = o.migration;
				ms.step = TERN__MIGRATE_STEP__STEP__ABORT;
				ms.error = "rawpeer has nothing to send";
				reply.body_case =
				    TERN__ENVELOPE__BODY_MIGRATE_STEP;
				reply.migrate_step = &ms;
				send_env(&reply);
			} else
				printf("step %d: %s\n", in->migrate_step->step,
				    in->migrate_step->error != NULL ?
				    in->migrate_step->error : "");
			rc = 0;
			msg_free(in);
			break;
		}
		msg_free(in);
	}
	if (rc != 0)
		printf("no answer within %d ms\n", timeout_ms);
	fflush(stdout);
	/* Let ternd read the ABORT before the connection goes. */
	usleep(200000);
	free(img);
	free(dir);
	free(spec);
	return rc;
}

/* Send an Error whose text carries ANSI sequences, newlines and a forged
 * log line, then a ping: the pong says ternd has read (and logged) it. */
static int
error_text(void)
{
	Envelope	 env, *in;
	Tern__Error	 err = TERN__ERROR__INIT;
	Tern__Ping	 ping = TERN__PING__INIT;
	int		 closed, rc = 1;
	uint64_t	 deadline = now_ms() + (uint64_t)timeout_ms;

	msg_init(&env, 0);
	err.code = TERN__ERROR_CODE__ERROR_INTERNAL;
	err.text = "evil\x1b[2J\x1b]0;pwned\x07\r\n"
	    "2026-01-01T00:00:00.000Z error agent: FORGED line\x9b" "31m";
	env.body_case = TERN__ENVELOPE__BODY_ERROR;
	env.error = &err;
	send_env(&env);
	msg_init(&env, 9);
	ping.sent_ns = 1;
	env.body_case = TERN__ENVELOPE__BODY_PING;
	env.ping = &ping;
	send_env(&env);
	while (rc != 0 && now_ms() < deadline) {
		if ((in = recv_env((int)(deadline - now_ms()), NULL,
		    &closed)) == NULL)
			break;
		if (in->body_case == TERN__ENVELOPE__BODY_PONG)
			rc = 0;
		msg_free(in);
	}
	printf(rc == 0 ? "pong\n" : "no pong\n");
	return rc;
}

static void
pong(const Envelope *in)
{
	Envelope	reply;
	Tern__Pong	p = TERN__PONG__INIT;

	msg_init(&reply, in->request_id);
	p.sent_ns = in->ping->sent_ns;
	reply.body_case = TERN__ENVELOPE__BODY_PONG;
	reply.pong = &p;
	send_env(&reply);
}

#define FLOOD_ID	UINT64_C(0x7e5700000100)

/* Offer --count VM migrations at once, then open --streams vm-libvirt
 * relay streams for the first one the target made ready; print what the
 * target said to each, hold everything open for --seconds ("holding"),
 * then call the migrations off. */
static int
vm_flood(int seconds)
{
	Envelope		 env, *in;
	Tern__MigrateOffer	 o = TERN__MIGRATE_OFFER__INIT;
	Tern__MigrateStep	 ms = TERN__MIGRATE_STEP__INIT;
	Tern__StreamOpen	 so = TERN__STREAM_OPEN__INIT;
	char			 name[64], sname[96], *why = NULL;
	char			*swhy = NULL;
	int			*answer, i, closed, ready = 0, refused = 0;
	int			 accepted = 0, srefused = 0, first = -1;
	uint64_t		 deadline, id;

	answer = calloc((size_t)flood_offers, sizeof *answer);
	for (i = 0; i < flood_offers; i++) {
		snprintf(name, sizeof name, "%s-%d", offer_name, i);
		msg_init(&env, 0);
		o.migration = FLOOD_ID + (uint64_t)i;
		o.name = name;
		o.kind = TERN__INSTANCE_KIND__KIND_VM;
		o.spec = "<domain/>";
		o.spec_dir = (char *)flood_spec_dir;
		o.generation = 0;
		o.has_mode = 1;
		o.mode = TERN__MIGRATION_MODE__MODE_AUTO;
		env.body_case = TERN__ENVELOPE__BODY_MIGRATE_OFFER;
		env.migrate_offer = &o;
		send_env(&env);
	}
	deadline = now_ms() + (uint64_t)timeout_ms;
	while (ready + refused < flood_offers && now_ms() < deadline) {
		in = recv_env((int)(deadline - now_ms()), NULL, &closed);
		if (closed)
			die(1, "closed by ternd");
		if (in == NULL)
			continue;
		if (in->body_case == TERN__ENVELOPE__BODY_PING)
			pong(in);
		else if (in->body_case == TERN__ENVELOPE__BODY_MIGRATE_STEP &&
		    in->migrate_step->migration >= FLOOD_ID &&
		    in->migrate_step->migration < FLOOD_ID +
		    (uint64_t)flood_offers &&
		    answer[in->migrate_step->migration - FLOOD_ID] == 0) {
			i = (int)(in->migrate_step->migration - FLOOD_ID);
			if (in->migrate_step->step ==
			    TERN__MIGRATE_STEP__STEP__READY) {
				answer[i] = 1;
				ready++;
				if (first < 0)
					first = i;
			} else {
				answer[i] = 2;
				refused++;
				if (why == NULL && in->migrate_step->error != NULL)
					why = strdup(in->migrate_step->error);
			}
		}
		msg_free(in);
	}
	printf("offers: %d ready, %d refused%s%s\n", ready, refused,
	    why != NULL ? ": " : "", why != NULL ? why : "");
	fflush(stdout);
	for (i = 0; first >= 0 && i < flood_streams; i++) {
		snprintf(sname, sizeof sname, "%" PRIx64 "/vm-libvirt/%d",
		    FLOOD_ID + (uint64_t)first, i);
		msg_init(&env, 0);
		so.channel = (uint32_t)(2 * i + 1);	/* odd: we dialled */
		so.kind = TERN__STREAM_KIND__STREAM_RELAY;
		so.name = sname;
		env.body_case = TERN__ENVELOPE__BODY_STREAM_OPEN;
		env.stream_open = &so;
		send_env(&env);
	}
	/* Each of ours is granted credit (taken) or ended (refused). */
	deadline = now_ms() + (uint64_t)timeout_ms;
	while (first >= 0 && accepted + srefused < flood_streams &&
	    now_ms() < deadline) {
		in = recv_env((int)(deadline - now_ms()), NULL, &closed);
		if (closed)
			die(1, "closed by ternd");
		if (in == NULL)
			continue;
		if (in->body_case == TERN__ENVELOPE__BODY_PING)
			pong(in);
		else if (in->body_case == TERN__ENVELOPE__BODY_STREAM_WINDOW &&
		    (in->stream_window->channel & 1))
			accepted++;
		else if (in->body_case == TERN__ENVELOPE__BODY_STREAM_END &&
		    (in->stream_end->channel & 1)) {
			srefused++;
			if (swhy == NULL && in->stream_end->error != NULL)
				swhy = strdup(in->stream_end->error->text);
		}
		msg_free(in);
	}
	if (first >= 0)
		printf("streams: %d accepted, %d refused%s%s\n", accepted,
		    srefused, swhy != NULL ? ": " : "", swhy != NULL ? swhy :
		    "");
	printf("holding\n");
	fflush(stdout);
	deadline = now_ms() + (uint64_t)seconds * 1000;
	while (now_ms() < deadline) {
		in = recv_env(100, NULL, &closed);
		if (closed)
			die(1, "closed by ternd while holding");
		if (in != NULL && in->body_case == TERN__ENVELOPE__BODY_PING)
			pong(in);
		if (in != NULL)
			msg_free(in);
	}
	for (i = 0; i < flood_offers; i++) {
		if (answer[i] != 1)
			continue;
		id = FLOOD_ID + (uint64_t)i;
		msg_init(&env, 0);
		ms.migration = id;
		ms.step = TERN__MIGRATE_STEP__STEP__ABORT;
		ms.error = "rawpeer has nothing to send";
		env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
		env.migrate_step = &ms;
		send_env(&env);
	}
	usleep(200000);
	free(answer);
	free(why);
	free(swhy);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: rawpeer --connect ADDR:PORT [--ca F --cert F --key F] "
	    "[--as HOST] [--expect-host H]\n"
	    "               [--plain] [--timeout MS] [--rate B/S] "
	    "[--seconds N] SCENARIO\n"
	    "scenarios: hello oversize truncated badcrc badheader unknown-type\n"
	    "           unknown-field bad-version garbage lying-hello "
	    "before-hello over-credit\n           unopened-channel\n"
	    "           slow-sink silent [--caps a,b] error-text\n"
	    "           migrate-offer --spec F [--name N] [--cpuinfo IMG "
	    "[--cpu-set WORD:MASK]] [--rootfs-copy]\n"
	    "           vm-flood [--name PREFIX] [--count N] [--streams M] "
	    "[--spec-dir DIR] [--seconds S]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "ca", required_argument, NULL, 'A' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ "as", required_argument, NULL, 'a' },
		{ "expect-host", required_argument, NULL, 'e' },
		{ "plain", no_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ "caps", required_argument, NULL, 'P' },
		{ "name", required_argument, NULL, 'N' },
		{ "spec", required_argument, NULL, 'S' },
		{ "cpuinfo", required_argument, NULL, 'I' },
		{ "cpu-set", required_argument, NULL, 'B' },
		{ "rootfs-copy", no_argument, NULL, 'R' },
		{ "count", required_argument, NULL, 'n' },
		{ "streams", required_argument, NULL, 'm' },
		{ "spec-dir", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 }
	};
	const char		*connect_to = NULL, *ca = NULL, *cert = NULL;
	const char		*key = NULL, *expect = NULL, *scenario;
	struct sockaddr_storage	 ss;
	SSL_CTX			*ctx = NULL;
	char			 addr[256], *colon, *cause = NULL;
	uint64_t		 rate = 1u << 20;
	int			 ch, plain = 0, seconds = 5, rc;
	uint8_t			 h[FRAME_HEADER_SIZE], junk[4096];
	Envelope		 env;
	Tern__Ping		 ping = TERN__PING__INIT;
	Tern__StreamOpen	 so = TERN__STREAM_OPEN__INIT;
	uint8_t			*buf;
	size_t			 len, i;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': connect_to = optarg; break;
		case 'A': ca = optarg; break;
		case 'C': cert = optarg; break;
		case 'K': key = optarg; break;
		case 'a': as_host = optarg; break;
		case 'e': expect = optarg; break;
		case 'p': plain = 1; break;
		case 't': timeout_ms = atoi(optarg); break;
		case 'r': rate = strtoull(optarg, NULL, 10); break;
		case 's': seconds = atoi(optarg); break;
		case 'P': caps_extra = optarg; break;
		case 'N': offer_name = optarg; break;
		case 'S': offer_spec = optarg; break;
		case 'I': offer_cpuinfo = optarg; break;
		case 'B': offer_cpu_set = optarg; break;
		case 'R': offer_rootfs_copy = 1; break;
		case 'n': flood_offers = atoi(optarg); break;
		case 'm': flood_streams = atoi(optarg); break;
		case 'D': flood_spec_dir = optarg; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || connect_to == NULL)
		usage();
	scenario = argv[optind];
	if (as_host == NULL)
		as_host = "rawpeer";
	signal(SIGPIPE, SIG_IGN);
	frame_decoder_init(&dec, 16u << 20);

	snprintf(addr, sizeof addr, "%s", connect_to);
	if ((colon = strrchr(addr, ':')) == NULL)
		usage();
	*colon = '\0';
	if (sockaddr_parse(addr, atoi(colon + 1), &ss, &cause) != 0)
		die(2, "%s", cause);
	if ((sock = socket(ss.ss_family, SOCK_STREAM, 0)) == -1 ||
	    connect(sock, (struct sockaddr *)&ss, sizeof ss) != 0)
		die(2, "connect %s: %s", connect_to, strerror(errno));
	/* No read may block past the timeout, even inside a TLS record. */
	{
		struct timeval tv = { .tv_sec = timeout_ms / 1000,
		    .tv_usec = (timeout_ms % 1000) * 1000 };
		setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	}

	if (!plain) {
		ctx = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
		if (ca == NULL || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
			die(2, "--ca: cannot load");
		if (cert != NULL && (SSL_CTX_use_certificate_file(ctx, cert,
		    SSL_FILETYPE_PEM) != 1 || SSL_CTX_use_PrivateKey_file(ctx,
		    key, SSL_FILETYPE_PEM) != 1))
			die(2, "--cert/--key: cannot load");
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		ssl = SSL_new(ctx);
		if (expect != NULL)
			SSL_set1_host(ssl, expect);
		SSL_set_fd(ssl, sock);
		if (SSL_connect(ssl) != 1) {
			ERR_error_string_n(ERR_get_error(), addr, sizeof addr);
			die(3, "rejected during handshake: %s", addr);
		}
	}

	if (strcmp(scenario, "hello") == 0) {
		do_hello();
		rc = 0;
	} else if (strcmp(scenario, "plain-hello") == 0) {
		send_hello(as_host);
		rc = expect_close();
	} else if (strcmp(scenario, "lying-hello") == 0) {
		/* Claim to be another host than the certificate says: being
		 * closed on is being rejected. */
		send_hello("not-my-name");
		rc = expect_close() == 0 ? 3 : 1;
	} else if (strcmp(scenario, "before-hello") == 0) {
		msg_init(&env, 1);
		ping.sent_ns = 1;
		env.body_case = TERN__ENVELOPE__BODY_PING;
		env.ping = &ping;
		send_env(&env);
		rc = expect_close();
	} else if (strcmp(scenario, "silent") == 0) {
		do_hello();
		rc = silent(seconds);
	} else if (strcmp(scenario, "slow-sink") == 0) {
		do_hello();
		rc = slow_sink(rate, seconds);
	} else if (strcmp(scenario, "error-text") == 0) {
		do_hello();
		rc = error_text();
	} else if (strcmp(scenario, "migrate-offer") == 0) {
		do_hello();
		rc = migrate_offer();
	} else if (strcmp(scenario, "vm-flood") == 0) {
		if (flood_offers < 1 || flood_offers > 1000 ||
		    flood_streams < 0 || flood_streams > 1000)
			die(2, "--count 1..1000, --streams 0..1000");
		do_hello();
		rc = vm_flood(seconds);
	} else {
		do_hello();
		if (strcmp(scenario, "oversize") == 0) {
			/* Announce 1 GiB: refused before anything is allocated. */
			forge_header(h, 1u << 30, FRAME_MSG, 0, 0, 0);
			raw_write(h, sizeof h);
		} else if (strcmp(scenario, "truncated") == 0) {
			forge_header(h, 1000, FRAME_MSG, 0, 0, 0);
			raw_write(h, sizeof h);
			raw_write("0123456789", 10);
			if (ssl != NULL)
				SSL_shutdown(ssl);
			shutdown(sock, SHUT_WR);
		} else if (strcmp(scenario, "badcrc") == 0) {
			forge_header(h, 4, FRAME_MSG, 0, 0, 0xdeadbeef);
			raw_write(h, sizeof h);
			raw_write("abcd", 4);
		} else if (strcmp(scenario, "badheader") == 0) {
			memset(h, 0x5a, sizeof h);
			raw_write(h, sizeof h);
		} else if (strcmp(scenario, "unknown-type") == 0) {
			forge_header(h, 0, 7, 0, 0, 0);
			raw_write(h, sizeof h);
		} else if (strcmp(scenario, "unknown-field") == 0) {
			msg_init(&env, 1);
			ping.sent_ns = 1;
			env.body_case = TERN__ENVELOPE__BODY_PING;
			env.ping = &ping;
			buf = msg_pack(&env, &len);
			buf = realloc(buf, len + 3);
			/* field 200, varint: key 200<<3 = 0x640 -> c0 0c; value 1 */
			buf[len] = 0xc0;
			buf[len + 1] = 0x0c;
			buf[len + 2] = 0x01;
			send_frame(FRAME_MSG, 0, buf, len + 3);
			free(buf);
		} else if (strcmp(scenario, "bad-version") == 0) {
			msg_init(&env, 1);
			env.version = 99;
			ping.sent_ns = 1;
			env.body_case = TERN__ENVELOPE__BODY_PING;
			env.ping = &ping;
			send_env(&env);
		} else if (strcmp(scenario, "garbage") == 0) {
			srand((unsigned)time(NULL));
			for (i = 0; i < sizeof junk; i++)
				junk[i] = (uint8_t)rand();
			raw_write(junk, sizeof junk);
		} else if (strcmp(scenario, "unopened-channel") == 0) {
			memset(junk, 'x', 64);
			send_frame(FRAME_DATA, 5, junk, 64);
		} else if (strcmp(scenario, "over-credit") == 0) {
			/* Open a sink stream, then send more than granted. */
			msg_init(&env, 1);
			so.channel = 1;	/* odd: we are the connecting side */
			so.kind = TERN__STREAM_KIND__STREAM_SINK;
			env.body_case = TERN__ENVELOPE__BODY_STREAM_OPEN;
			env.stream_open = &so;
			send_env(&env);
			memset(junk, 'x', sizeof junk);
			frame_header_encode(h, FRAME_DATA, 1, junk, sizeof junk);
			/* 256 MiB, far beyond any window; ternd cuts us off. */
			for (i = 0; i < 64 * 1024; i++)
				if (raw_write(h, sizeof h) != 0 ||
				    raw_write(junk, sizeof junk) != 0)
					break;
		} else
			usage();
		rc = expect_close();
	}
	if (ssl != NULL)
		SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(sock);
	frame_decoder_free(&dec);
	return rc;
}
