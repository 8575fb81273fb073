/* ternctl cert issue|show|verify|revoke: host certificates from the
 * cluster CA. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ternctl.h"
#include "daemon/pki.h"
#include "daemon/xmalloc.h"

static int	cmd_cert_exec(const struct ctl_env *, int, char **);

const struct ctl_cmd cmd_cert_entry = {
	.name = "cert",
	.usage = "cert issue HOST --ca-dir DIR [--out DIR] [--days N] "
	    "[--not-before-offset SECONDS] | cert show FILE | "
	    "cert verify FILE --ca FILE [--host NAME] | "
	    "cert revoke (FILE | --serial HEX) (--ca-dir DIR | --list FILE)",
	.summary = "issue, show and verify host certificates",
	.exec = cmd_cert_exec,
};

/* Report a getopt_long error for "cert SUB" and return CTL_EXIT_USAGE. */
static int
cmd_cert_badopt(const char *sub, int ch, char **argv)
{
	const char	*arg = argv[optind - 1];

	if (ch == ':')
		ctl_error("cert %s: %s needs an argument", sub, arg);
	else if (optopt != 0)
		ctl_error("cert %s: unknown option -%c", sub, optopt);
	else
		ctl_error("cert %s: unknown option %s", sub, arg);
	return ctl_usage(&cmd_cert_entry);
}

/* After getopt_long: exactly one operand, named what in messages. */
static int
cmd_cert_operand(const char *sub, const char *what, int argc, char **argv,
    const char **out)
{
	if (optind >= argc) {
		ctl_error("cert %s: missing %s", sub, what);
		return -1;
	}
	if (optind + 1 < argc) {
		ctl_error("cert %s: unexpected argument \"%s\"", sub,
		    argv[optind + 1]);
		return -1;
	}
	*out = argv[optind];
	return 0;
}

static int
cmd_cert_number(const char *opt, const char *s, long min, long max, long *out)
{
	char	*end;
	long	 n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || n < min || n > max) {
		ctl_error("%s: \"%s\" is not a number from %ld to %ld", opt, s,
		    min, max);
		return -1;
	}
	*out = n;
	return 0;
}

static void
cmd_cert_time(time_t t, char *buf, size_t size)
{
	struct tm	 tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%lld", (long long)t);
}

static void
cmd_cert_json_string(const char *s)
{
	if (s == NULL)
		fputs("null", stdout);
	else
		ctl_json_string(stdout, s);
}

/* Where the issued certificate, its key and the CA's went. */
static void
cmd_cert_issued(const char *outdir, const char *host, int json)
{
	char	*file, *cert_path, *key_path, *ca_path;

	xasprintf(&file, "%s.pem", host);
	cert_path = pki_path(outdir, file);
	free(file);
	xasprintf(&file, "%s.key", host);
	key_path = pki_path(outdir, file);
	free(file);
	ca_path = pki_path(outdir, PKI_CA_CERT);
	if (json) {
		fputs("{\"cert\":", stdout);
		ctl_json_string(stdout, cert_path);
		fputs(",\"key\":", stdout);
		ctl_json_string(stdout, key_path);
		fputs(",\"ca\":", stdout);
		ctl_json_string(stdout, ca_path);
		fputs("}\n", stdout);
	} else {
		printf("certificate: %s\n", cert_path);
		printf("key:         %s\n", key_path);
		printf("CA:          %s\n", ca_path);
	}
	free(ca_path);
	free(key_path);
	free(cert_path);
}

static int
cmd_cert_issue(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "ca-dir",		required_argument,	NULL,	'c' },
		{ "out",		required_argument,	NULL,	'o' },
		{ "days",		required_argument,	NULL,	'D' },
		{ "not-before-offset",	required_argument,	NULL,	'b' },
		{ "json",		no_argument,		NULL,	'j' },
		{ NULL,			0,			NULL,	0 }
	};
	const char			*host = NULL, *cadir = NULL;
	const char			*outdir = NULL;
	char				*cause = NULL, *ca_key = NULL;
	long				 days = PKI_CERT_DAYS;
	long				 offset = PKI_NOT_BEFORE_OFFSET;
	int				 json = env->json, ch, rc;

	/* 0, not 1: glibc and musl then start afresh, whatever state the
	 * parse of ternctl's own options left behind; operands may come
	 * before or after options. */
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cadir = optarg;
			break;
		case 'o':
			outdir = optarg;
			break;
		case 'D':
			if (cmd_cert_number("--days", optarg, 1, PKI_DAYS_MAX,
			    &days) != 0)
				return ctl_usage(&cmd_cert_entry);
			break;
		case 'b':
			if (cmd_cert_number("--not-before-offset", optarg,
			    -PKI_OFFSET_MAX, PKI_OFFSET_MAX, &offset) != 0)
				return ctl_usage(&cmd_cert_entry);
			break;
		case 'j':
			json = 1;
			break;
		default:
			return cmd_cert_badopt("issue", ch, argv);
		}
	}
	if (cmd_cert_operand("issue", "HOST", argc, argv, &host) != 0)
		return ctl_usage(&cmd_cert_entry);
	if (pki_host_valid(host, &cause) != 0) {
		ctl_error("cert issue: %s", cause);
		rc = ctl_usage(&cmd_cert_entry);
		goto out;
	}
	if (cadir == NULL || *cadir == '\0') {
		ctl_error("cert issue: --ca-dir is required (the directory "
		    "made by ternctl ca init)");
		return ctl_usage(&cmd_cert_entry);
	}
	if (outdir == NULL || *outdir == '\0')
		outdir = cadir;

	if (pki_cert_issue(cadir, host, outdir, (int)days, offset,
	    &cause) != 0) {
		ca_key = pki_path(cadir, PKI_CA_KEY);
		if (access(ca_key, F_OK) != 0)
			ctl_error("cannot issue a certificate for %s: %s "
			    "(create the CA first: ternctl ca init --dir %s)",
			    host, cause, cadir);
		else
			ctl_error("cannot issue a certificate for %s: %s",
			    host, cause);
		rc = CTL_EXIT_FAILED;
		goto out;
	}

	cmd_cert_issued(outdir, host, json);
	rc = CTL_EXIT_OK;
out:
	free(ca_key);
	free(cause);
	return rc;
}

static int
cmd_cert_show(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "json",	no_argument,	NULL,	'j' },
		{ NULL,		0,		NULL,	0 }
	};
	struct pki_cert_info		 info;
	const char			*path = NULL;
	char				*cause = NULL;
	char				 before[32], after[32];
	size_t				 i;
	int				 json = env->json, expired, ch, rc;

	memset(&info, 0, sizeof info);
	optind = 0;	/* start afresh, as in cmd_cert_issue */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		default:
			return cmd_cert_badopt("show", ch, argv);
		}
	}
	if (cmd_cert_operand("show", "FILE", argc, argv, &path) != 0)
		return ctl_usage(&cmd_cert_entry);

	if (pki_cert_info(path, &info, &cause) != 0) {
		ctl_error("cannot show the certificate: %s", cause);
		rc = CTL_EXIT_FAILED;
		goto out;
	}
	cmd_cert_time(info.not_before, before, sizeof before);
	cmd_cert_time(info.not_after, after, sizeof after);
	expired = time(NULL) > info.not_after;

	if (json) {
		fputs("{\"subject\":", stdout);
		cmd_cert_json_string(info.subject_cn);
		fputs(",\"issuer\":", stdout);
		cmd_cert_json_string(info.issuer_cn);
		fputs(",\"dns\":[", stdout);
		for (i = 0; i < info.ndns; i++) {
			if (i != 0)
				fputc(',', stdout);
			cmd_cert_json_string(info.dns[i]);
		}
		fputs("],\"not_before\":", stdout);
		cmd_cert_json_string(before);
		fputs(",\"not_after\":", stdout);
		cmd_cert_json_string(after);
		fputs(",\"serial\":", stdout);
		cmd_cert_json_string(info.serial);
		printf(",\"expired\":%s}\n", expired ? "true" : "false");
	} else {
		printf("subject:    %s\n", info.subject_cn != NULL ?
		    info.subject_cn : "-");
		printf("issuer:     %s\n", info.issuer_cn != NULL ?
		    info.issuer_cn : "-");
		fputs("dns:        ", stdout);
		for (i = 0; i < info.ndns; i++)
			printf("%s%s", i != 0 ? ", " : "", info.dns[i]);
		fputs(info.ndns == 0 ? "-\n" : "\n", stdout);
		printf("not before: %s\n", before);
		printf("not after:  %s\n", after);
		printf("serial:     %s\n", info.serial);
		printf("expired:    %s\n", expired ? "yes" : "no");
	}
	rc = CTL_EXIT_OK;
out:
	pki_cert_info_free(&info);
	free(cause);
	return rc;
}

static int
cmd_cert_verify(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "ca",		required_argument,	NULL,	'c' },
		{ "host",	required_argument,	NULL,	'H' },
		{ "json",	no_argument,		NULL,	'j' },
		{ NULL,		0,			NULL,	0 }
	};
	const char			*path = NULL, *ca = NULL, *host = NULL;
	char				*cause = NULL;
	int				 json = env->json, ch, rc;

	optind = 0;	/* start afresh, as in cmd_cert_issue */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ca = optarg;
			break;
		case 'H':
			host = optarg;
			break;
		case 'j':
			json = 1;
			break;
		default:
			return cmd_cert_badopt("verify", ch, argv);
		}
	}
	if (cmd_cert_operand("verify", "FILE", argc, argv, &path) != 0)
		return ctl_usage(&cmd_cert_entry);
	if (ca == NULL || *ca == '\0') {
		ctl_error("cert verify: --ca is required (the cluster's "
		    "ca.pem)");
		return ctl_usage(&cmd_cert_entry);
	}

	if (pki_cert_verify(ca, path, host, &cause) != 0) {
		ctl_error("verification failed: %s", cause);
		rc = CTL_EXIT_FAILED;
		goto out;
	}
	if (json)
		puts("{\"ok\":true}");
	else
		puts("OK");
	rc = CTL_EXIT_OK;
out:
	free(cause);
	return rc;
}

/* Add a certificate's serial to the revocation list (DIR/revoked or
 * --list); every ternd that loads the list refuses it after its next
 * SIGHUP, and drops a link made with it. */
static int
cmd_cert_revoke(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "ca-dir",	required_argument,	NULL,	'c' },
		{ "list",	required_argument,	NULL,	'l' },
		{ "serial",	required_argument,	NULL,	's' },
		{ "json",	no_argument,		NULL,	'j' },
		{ NULL,		0,			NULL,	0 }
	};
	const char			*path = NULL, *cadir = NULL;
	const char			*list = NULL, *serial = NULL;
	char				*cause = NULL, *list_path = NULL;
	int				 json = env->json, ch, rc, added;

	optind = 0;	/* start afresh, as in cmd_cert_issue */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cadir = optarg;
			break;
		case 'l':
			list = optarg;
			break;
		case 's':
			serial = optarg;
			break;
		case 'j':
			json = 1;
			break;
		default:
			return cmd_cert_badopt("revoke", ch, argv);
		}
	}
	if (serial == NULL && cmd_cert_operand("revoke", "FILE (or --serial)",
	    argc, argv, &path) != 0)
		return ctl_usage(&cmd_cert_entry);
	if (serial != NULL && optind < argc) {
		ctl_error("cert revoke: give a FILE or --serial, not both");
		return ctl_usage(&cmd_cert_entry);
	}
	if ((cadir == NULL) == (list == NULL)) {
		ctl_error("cert revoke: give --ca-dir DIR (writes DIR/%s) or "
		    "--list FILE", PKI_REVOKED);
		return ctl_usage(&cmd_cert_entry);
	}
	list_path = list != NULL ? xstrdup(list) : pki_path(cadir, PKI_REVOKED);
	if (pki_revoke(list_path, path, serial, &added, &cause) != 0) {
		ctl_error("cannot revoke: %s", cause);
		rc = CTL_EXIT_FAILED;
		goto out;
	}
	if (json) {
		fputs("{\"list\":", stdout);
		ctl_json_string(stdout, list_path);
		printf(",\"added\":%s}\n", added ? "true" : "false");
	} else
		printf("%s %s\ncopy it to every host's revoked_file and send "
		    "each ternd SIGHUP\n", added ? "revoked in" :
		    "already revoked in", list_path);
	rc = CTL_EXIT_OK;
out:
	free(list_path);
	free(cause);
	return rc;
}

static const struct {
	const char	*name;
	int		(*exec)(const struct ctl_env *, int, char **);
} cmd_cert_subs[] = {
	{ "issue",	cmd_cert_issue },
	{ "show",	cmd_cert_show },
	{ "verify",	cmd_cert_verify },
	{ "revoke",	cmd_cert_revoke },
};

static int
cmd_cert_exec(const struct ctl_env *env, int argc, char **argv)
{
	size_t	 i;

	if (argc < 2) {
		ctl_error("cert: missing subcommand (issue, show, verify or "
		    "revoke)");
		return ctl_usage(&cmd_cert_entry);
	}
	for (i = 0; i < sizeof cmd_cert_subs / sizeof cmd_cert_subs[0]; i++) {
		if (strcmp(argv[1], cmd_cert_subs[i].name) == 0)
			return cmd_cert_subs[i].exec(env, argc - 1, argv + 1);
	}
	ctl_error("cert: unknown subcommand \"%s\" (known: issue, show, "
	    "verify, revoke)", argv[1]);
	return ctl_usage(&cmd_cert_entry);
}
