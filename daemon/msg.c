#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/msg.h"
#include "daemon/sanitize.h"
#include "daemon/xmalloc.h"

void
msg_init(Envelope *env, uint64_t request_id)
{
	tern__envelope__init(env);
	env->version = TERN_PROTOCOL_VERSION;
	env->has_request_id = 1;
	env->request_id = request_id;
}

/* Walk a decoded message: refuse unknown fields and unknown enum values
 * here and in every sub-message.  Depth is bounded by the schema. */
static int	msg_check(const ProtobufCMessage *, int, char **);

int
msg_check_strict(const ProtobufCMessage *m, char **cause)
{
	return msg_check(m, 0, cause);
}

static int
msg_check(const ProtobufCMessage *m, int depth, char **cause)
{
	const ProtobufCMessageDescriptor	*d = m->descriptor;
	const ProtobufCFieldDescriptor		*f;
	const char				*base = (const char *)m;
	const void				*member;
	size_t					 count, i, k;
	int					 value;

	if (depth > 16) {
		set_cause(cause, "message nested too deeply");
		return -1;
	}
	if (m->n_unknown_fields != 0) {
		set_cause(cause, "unknown field %u in %s", m->unknown_fields[0].tag,
		    d->name);
		return -1;
	}
	for (i = 0; i < d->n_fields; i++) {
		f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE &&
		    f->type != PROTOBUF_C_TYPE_ENUM)
			continue;
		member = base + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			count = *(const size_t *)(base + f->quantifier_offset);
			member = *(const void *const *)member;
		} else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			count = *(const uint32_t *)(base + f->quantifier_offset) ==
			    f->id;
		} else if (f->type == PROTOBUF_C_TYPE_ENUM &&
		    f->label == PROTOBUF_C_LABEL_OPTIONAL) {
			count = *(const protobuf_c_boolean *)(base +
			    f->quantifier_offset) != 0;
		} else
			count = 1;
		for (k = 0; k < count; k++) {
			if (f->type == PROTOBUF_C_TYPE_ENUM) {
				if (f->label == PROTOBUF_C_LABEL_REPEATED)
					value = ((const int *)member)[k];
				else
					value = *(const int *)member;
				if (protobuf_c_enum_descriptor_get_value(
				    f->descriptor, value) == NULL) {
					set_cause(cause, "unknown value %d of %s.%s",
					    value, d->name, f->name);
					return -1;
				}
				continue;
			}
			const ProtobufCMessage *sub = f->label ==
			    PROTOBUF_C_LABEL_REPEATED ?
			    ((const ProtobufCMessage *const *)member)[k] :
			    *(const ProtobufCMessage *const *)member;
			if (sub != NULL && msg_check(sub, depth + 1, cause) != 0)
				return -1;
		}
	}
	return 0;
}

/* Free text that a sender writes for a human (errors, notes): escaped and
 * bounded on decode, so no peer puts a newline or an ANSI sequence into our
 * logs or an operator's terminal.  Names, paths and specs are left as sent:
 * they are checked by whoever uses them, and escaped when logged. */
static const char *const msg_free_text[] = {
	"text", "error", "last_error", "note", "policy", "software", "phase",
	"state", NULL
};

static int
msg_is_free_text(const char *name)
{
	size_t	i;

	for (i = 0; msg_free_text[i] != NULL; i++)
		if (strcmp(name, msg_free_text[i]) == 0)
			return 1;
	return 0;
}

/* Replace *sp by its escaped form when it needs one.  Decoded strings come
 * from malloc (protobuf-c's default allocator), so free() is right. */
static void
msg_sanitize_string(char **sp, const ProtobufCFieldDescriptor *f)
{
	char	*s = *sp;

	if (s == NULL || s == f->default_value)
		return;
	if (strlen(s) <= SANITIZE_TEXT_MAX && sanitize_clean(s))
		return;
	*sp = sanitize_dup(s, SANITIZE_TEXT_MAX);
	free(s);
}

static void
msg_sanitize_message(ProtobufCMessage *m, int all, int depth)
{
	const ProtobufCMessageDescriptor	*d = m->descriptor;
	const ProtobufCFieldDescriptor		*f;
	char					*base = (char *)m;
	void					*member;
	size_t					 count, i, k;

	if (depth > 16)
		return;
	for (i = 0; i < d->n_fields; i++) {
		f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE &&
		    f->type != PROTOBUF_C_TYPE_STRING)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		member = base + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			count = *(const size_t *)(base + f->quantifier_offset);
			member = *(void **)member;
		} else
			count = 1;
		for (k = 0; k < count; k++) {
			if (f->type == PROTOBUF_C_TYPE_STRING) {
				if (all || msg_is_free_text(f->name))
					msg_sanitize_string(f->label ==
					    PROTOBUF_C_LABEL_REPEATED ?
					    &((char **)member)[k] :
					    (char **)member, f);
				continue;
			}
			ProtobufCMessage *sub = f->label ==
			    PROTOBUF_C_LABEL_REPEATED ?
			    ((ProtobufCMessage **)member)[k] :
			    *(ProtobufCMessage **)member;
			if (sub != NULL)
				msg_sanitize_message(sub, all, depth + 1);
		}
	}
}

void
msg_sanitize(Envelope *env, int all)
{
	msg_sanitize_message(&env->base, all, 0);
}

Envelope *
msg_unpack(const uint8_t *data, size_t len, int *code, char **cause)
{
	Envelope	*env;
	char		*why = NULL;

	env = tern__envelope__unpack(NULL, len, data);
	if (env == NULL) {
		*code = TERN__ERROR_CODE__ERROR_BAD_REQUEST;
		set_cause(cause, "malformed message (not a valid tern.Envelope)");
		return NULL;
	}
	if (env->version != TERN_PROTOCOL_VERSION) {
		*code = TERN__ERROR_CODE__ERROR_VERSION;
		set_cause(cause, "protocol version %u, this ternd speaks %u",
		    env->version, TERN_PROTOCOL_VERSION);
		goto fail;
	}
	if (msg_check(&env->base, 0, &why) != 0) {
		*code = TERN__ERROR_CODE__ERROR_BAD_REQUEST;
		set_cause(cause, "%s", why);
		goto fail;
	}
	if (env->body_case == TERN__ENVELOPE__BODY__NOT_SET) {
		*code = TERN__ERROR_CODE__ERROR_BAD_REQUEST;
		set_cause(cause, "message without a body");
		goto fail;
	}
	msg_sanitize(env, 0);
	return env;
fail:
	free(why);
	tern__envelope__free_unpacked(env, NULL);
	return NULL;
}

void
msg_free(Envelope *env)
{
	if (env != NULL)
		tern__envelope__free_unpacked(env, NULL);
}

uint8_t *
msg_pack(const Envelope *env, size_t *len)
{
	uint8_t	*buf;

	*len = tern__envelope__get_packed_size(env);
	buf = xmalloc(*len);
	tern__envelope__pack(env, buf);
	return buf;
}

const char *
msg_name(const Envelope *env)
{
	const ProtobufCFieldDescriptor	*f;

	f = protobuf_c_message_descriptor_get_field(&tern__envelope__descriptor,
	    (unsigned)env->body_case);
	return f != NULL ? f->name : "none";
}

const char *
msg_error_code_name(int code)
{
	const ProtobufCEnumValue	*v;

	v = protobuf_c_enum_descriptor_get_value(&tern__error_code__descriptor,
	    code);
	return v != NULL ? v->name : "ERROR_UNKNOWN";
}

static const char *const msg_kind_words[] = {
	[TERN__INSTANCE_KIND__KIND_CONTAINER] = "container",
	[TERN__INSTANCE_KIND__KIND_VM] = "vm",
};

static const char *const msg_mode_words[] = {
	[TERN__MIGRATION_MODE__MODE_AUTO] = "auto",
	[TERN__MIGRATION_MODE__MODE_PRECOPY] = "precopy",
	[TERN__MIGRATION_MODE__MODE_POSTCOPY] = "postcopy",
	[TERN__MIGRATION_MODE__MODE_STOPCOPY] = "stopcopy",
};

static const char *const msg_stream_kind_words[] = {
	[TERN__STREAM_KIND__STREAM_SINK] = "sink",
	[TERN__STREAM_KIND__STREAM_FILES] = "ckpt-file",
	[TERN__STREAM_KIND__STREAM_TREE] = "tree",
	[TERN__STREAM_KIND__STREAM_RELAY] = "relay",
	[TERN__STREAM_KIND__STREAM_REPLICA] = "replica",
};

#define MSG_NWORDS(w)	(sizeof (w) / sizeof (w)[0])

static const char *
msg_word(const char *const *words, size_t n, int v)
{
	if (v < 0 || (size_t)v >= n || words[v] == NULL)
		return "unknown";
	return words[v];
}

static int
msg_word_parse(const char *const *words, size_t n, const char *s)
{
	size_t	i;

	for (i = 0; s != NULL && i < n; i++)
		if (words[i] != NULL && strcmp(words[i], s) == 0)
			return (int)i;
	return -1;
}

const char *
msg_kind_name(int kind)
{
	return msg_word(msg_kind_words, MSG_NWORDS(msg_kind_words), kind);
}

int
msg_kind_parse(const char *s)
{
	return msg_word_parse(msg_kind_words, MSG_NWORDS(msg_kind_words), s);
}

const char *
msg_mode_name(int mode)
{
	return msg_word(msg_mode_words, MSG_NWORDS(msg_mode_words), mode);
}

int
msg_mode_parse(const char *s)
{
	return msg_word_parse(msg_mode_words, MSG_NWORDS(msg_mode_words), s);
}

const char *
msg_stream_kind_name(int kind)
{
	return msg_word(msg_stream_kind_words,
	    MSG_NWORDS(msg_stream_kind_words), kind);
}

static int	(*msg_vm_check)(const char *, const char *, char **);

void
msg_ha_vm_check(int (*check)(const char *, const char *, char **))
{
	msg_vm_check = check;
}

int
msg_ha_refused(int ha, int kind, const char *name, const char *spec,
    char **why)
{
	/* A VM's disks are snapshotted with its memory (checkpoint/vm.h
	 * vm_snapshot_disks): only writable file disks can be, and one of
	 * another kind would leave it never protected. */
	if (ha == TERN__HA_POLICY__HA_CHECKPOINT &&
	    kind == TERN__INSTANCE_KIND__KIND_VM && msg_vm_check != NULL &&
	    spec != NULL)
		return msg_vm_check(name, spec, why);
	return 0;
}
