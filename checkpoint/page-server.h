/* What tern knows of CRIU's page-server protocol (criu/page-xfer.c), for
 * the relays that carry it.
 *
 * In a lazy (post-copy) migration the target's lazy-pages daemon sends
 * the source's page server requests of 24 bytes each: u32 cmd, u32
 * nr_pages, u64 vaddr, u64 dst_id, in host order (both hosts run the
 * same architecture: the CPU check says so).  The low 16 bits of cmd
 * name the request.  PS_IOV_FLUSH and PS_IOV_FLUSH_N_CLOSE end the
 * transfer: the dump then counts as done, and CRIU kills the tree it
 * froze.  So does an end of the channel. */
#ifndef TERN_CHECKPOINT_PAGE_SERVER_H
#define TERN_CHECKPOINT_PAGE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#define PAGE_SERVER_REQUEST_SIZE	24
/* criu/page-xfer.c's command numbers for the end of a transfer (stable
 * since lazy pages exist; the request numbers before them changed once,
 * in CRIU 3.x). */
#define PAGE_SERVER_FLUSH		0x1023
#define PAGE_SERVER_FLUSH_N_CLOSE	0x1024

/* How many bytes at the start of buf (which starts at a request) are
 * whole requests other than the transfer's end.  A relay gate: what it
 * keeps is the end, or a request not yet whole. */
size_t	page_server_before_end(void *unused, const uint8_t *buf, size_t len);

#endif
