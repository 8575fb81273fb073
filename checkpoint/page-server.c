#include "config.h"

#include <string.h>

#include "checkpoint/page-server.h"

#define PS_CMD_MASK		0xffffu

size_t
page_server_before_end(void *unused, const uint8_t *buf, size_t len)
{
	size_t		off;
	uint32_t	cmd;

	(void)unused;
	for (off = 0; len - off >= PAGE_SERVER_REQUEST_SIZE;
	    off += PAGE_SERVER_REQUEST_SIZE) {
		memcpy(&cmd, buf + off, sizeof cmd);
		cmd &= PS_CMD_MASK;
		if (cmd == PAGE_SERVER_FLUSH ||
		    cmd == PAGE_SERVER_FLUSH_N_CLOSE)
			break;
	}
	return off;
}
