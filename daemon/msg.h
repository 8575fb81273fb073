/* Messages: one tern.Envelope per FRAME_MSG frame.  Decoding is strict:
 * unknown fields or enum values at any depth, a missing body or another
 * protocol version are refused, so a peer cannot smuggle what we do not
 * understand. */
#ifndef TERN_MSG_H
#define TERN_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "tern.pb-c.h"

#define TERN_PROTOCOL_VERSION	6	/* 3: host drain (Hello.drained),
					   LeaseNudge; 4: ha set, ha status,
					   failovers, replicas (new fields
					   in LeaseRenew and HeldInstance,
					   which a v3 peer would refuse);
					   5: owner moves, standby terms,
					   replica rootfs, the page
					   pipeline's sums; 6: a
					   protected VM's RETURN step */
#define TERN_SOFTWARE		"tern " PACKAGE_VERSION

typedef Tern__Envelope Envelope;

/* Initialise an envelope with our version and the request id. */
void		 msg_init(Envelope *, uint64_t request_id);
/* Decode one envelope.  On error returns NULL, sets *cause and *code
 * (a TERN__ERROR_CODE__* to answer with).  Free-text fields (error texts,
 * notes) of the result are already escaped and bounded (msg_sanitize). */
Envelope	*msg_unpack(const uint8_t *, size_t, int *code, char **cause);
void		 msg_free(Envelope *);
/* The same strictness for any decoded message (records read back from a
 * store): -1 and *cause on an unknown field or enum value. */
int		 msg_check_strict(const ProtobufCMessage *, char **cause);
/* Escape control characters and bound the length (sanitize.h) of the
 * free-text string fields of a decoded envelope, or of every string field
 * when all is set (ternctl, before it shows a reply). */
void		 msg_sanitize(Envelope *, int all);
/* Encode into a new buffer (caller frees); *len gets its size. */
uint8_t		*msg_pack(const Envelope *, size_t *len);
/* "hello", "ping", ... for logs. */
const char	*msg_name(const Envelope *);
/* Name of an error code ("not-found", ...). */
const char	*msg_error_code_name(int code);

/* The words ternctl and the logs use for the wire's enums: "container",
 * "vm" (Tern__InstanceKind); "auto", "precopy", "postcopy", "stopcopy"
 * (Tern__MigrationMode); "sink", "ckpt-file", "tree", "relay"
 * (Tern__StreamKind).  A value outside its enum is "unknown"; a word
 * that names none parses as -1. */
const char	*msg_kind_name(int kind);
int		 msg_kind_parse(const char *);
const char	*msg_mode_name(int mode);
int		 msg_mode_parse(const char *);
const char	*msg_stream_kind_name(int kind);
/* Bounds of checkpoint protection (create --ha checkpoint, ha set): how
 * often the owner checkpoints, and to how many other hosts. */
#define HA_INTERVAL_MIN_MS	1000u
#define HA_INTERVAL_MAX_MS	86400000u
#define HA_INTERVAL_DEF_MS	10000u
#define HA_REPLICAS_MAX		8u
/* Why this version cannot protect instance name of kind (spec: its
 * spec's text) with HA policy ha: 0, or -1 and *why.  The one place that
 * says so (create --ha, ha set --policy). */
int		 msg_ha_refused(int ha, int kind, const char *name,
		    const char *spec, char **why);
/* The check of a VM spec's disks for --ha checkpoint (checkpoint/vm.c
 * vm_disks_protectable), which this library cannot link: set once by the
 * agent, which every ternd runs. */
void		 msg_ha_vm_check(int (*)(const char *name, const char *xml,
		    char **cause));

#endif
