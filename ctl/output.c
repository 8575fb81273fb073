/* Output helpers shared by the subcommands. */
#include "config.h"

#include <stdio.h>

#include "ctl/ternctl.h"

/* A JSON string literal, with control characters escaped. */
void
ctl_json_string(FILE *fp, const char *s)
{
	const unsigned char	*p;

	fputc('"', fp);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", fp);
			break;
		case '\\':
			fputs("\\\\", fp);
			break;
		case '\n':
			fputs("\\n", fp);
			break;
		case '\t':
			fputs("\\t", fp);
			break;
		default:
			if (*p < 0x20)
				fprintf(fp, "\\u%04x", *p);
			else
				fputc(*p, fp);
			break;
		}
	}
	fputc('"', fp);
}

void
ctl_format_age(char *buf, size_t len, uint64_t ms)
{
	if (ms < 1000)
		snprintf(buf, len, "%llums", (unsigned long long)ms);
	else if (ms < 120000)
		snprintf(buf, len, "%.1fs", (double)ms / 1000);
	else if (ms < 7200000)
		snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
	else
		snprintf(buf, len, "%lluh", (unsigned long long)(ms / 3600000));
}

int
ctl_print_done(const struct ctl_env *env, const Envelope *reply)
{
	if (reply->body_case != TERN__ENVELOPE__BODY_DONE) {
		ctl_error("unexpected reply %s", msg_name(reply));
		return CTL_EXIT_FAILED;
	}
	if (env->json) {
		printf("{\"ok\":true,\"text\":");
		ctl_json_string(stdout, reply->done->text);
		printf("}\n");
	} else
		printf("%s\n", reply->done->text);
	return CTL_EXIT_OK;
}
