/* checkpoint/page-server: which of a lazy-pages daemon's requests may
 * reach the source's CRIU before the commit point. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "checkpoint/page-server.h"

/* A request as CRIU writes it: u32 cmd, u32 nr_pages, u64 vaddr, u64 id. */
static void
put(uint8_t *buf, uint32_t cmd)
{
	uint32_t	nr = 1;
	uint64_t	vaddr = 0x7f0000000000ull, id = 0x101;

	memcpy(buf, &cmd, 4);
	memcpy(buf + 4, &nr, 4);
	memcpy(buf + 8, &vaddr, 8);
	memcpy(buf + 16, &id, 8);
}

static void
test_requests_pass_end_waits(void **state)
{
	uint8_t	buf[5 * PAGE_SERVER_REQUEST_SIZE];

	(void)state;
	put(buf, 8);				/* PS_IOV_GET */
	put(buf + 24, 8 | (1u << 16));		/* GET with a flag */
	put(buf + 48, 0x1024);			/* FLUSH_N_CLOSE */
	put(buf + 72, 8);
	assert_int_equal(page_server_before_end(NULL, buf, 96), 48);
	assert_int_equal(page_server_before_end(NULL, buf + 48, 48), 0);
	put(buf, 0x1023);			/* FLUSH */
	assert_int_equal(page_server_before_end(NULL, buf, 24), 0);
}

static void
test_partial_request_waits(void **state)
{
	uint8_t	buf[2 * PAGE_SERVER_REQUEST_SIZE];

	(void)state;
	put(buf, 8);
	put(buf + 24, 8);
	assert_int_equal(page_server_before_end(NULL, buf, 30), 24);
	assert_int_equal(page_server_before_end(NULL, buf, 23), 0);
	assert_int_equal(page_server_before_end(NULL, buf, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests_pass_end_waits),
		cmocka_unit_test(test_partial_request_waits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
