/* pagepat-guest: the page-pattern test VM, bare metal.  A multiboot
 * kernel (32-bit protected mode, QEMU's -kernel loads it: libvirt's
 * <kernel>), no paging, no interrupts, no timers, no devices but the
 * serial port it prints on: the simplest guest whose memory a migration
 * can be checked against (QEMU's own migration tests use the same idea).
 *
 * It increments a 32-bit counter at the start of every 4 KiB page of a
 * region (pagepat.mib=MIB on the command line, default 32, at 16 MiB),
 * page after page in address order, forever.  After each full pass it
 * stores the number of complete passes in its header page (just below
 * the region).  So, at any instant, with H the header's count:
 *   - pages 0..k-1 hold H+1 and pages k..N-1 hold H, for one k in 0..N
 *     (k is where the loop is; k = N between the last page and the
 *     header's update).
 * A page whose write was lost, or a page from an older pass, breaks
 * that, now or after the guest runs on (it then lags for good):
 * tests/lib/vms.sh's vm_pagepat_check reads it from a memory dump
 * (pmemsave of [header, end of region]).
 *
 * pagepat.pages=N: a region of N pages instead (at most MIB's worth).  A
 * region of a few dozen pages stays in the TLB of QEMU's TCG (256
 * entries), a region of thousands of pages misses it on every page: the
 * two behave differently under a QEMU whose dirty tracking forgets the
 * TLB (docs/vms.md).
 *
 * pagepat.invlpg=1: drop each page's TLB entry (invlpg) before writing
 * it, the header page's too, so that every write goes through a fresh TLB
 * fill: the control for the small region.
 *
 * pagepat.lose=P (tests only): from pass P on, the region's middle page
 * is never written again, as after a migration that lost it and what
 * followed: the check must fail from then on.  (Skipping one write only
 * was invisible to a check that paused the guest just after its next
 * write to that page: the page one behind reads as "not yet written in
 * this pass", once in CI.)
 *
 * Console (ttyS0), one line each:
 *	pagepat start base=0x1000000 pages=N
 *	pagepat pass=P		every 1024 passes
 * Built by scripts/build-test-guest: gcc -m32 -ffreestanding, linked at
 * 1 MiB by tests/guest/pagepat.ld. */
#include <stdint.h>

#define PP_MAGIC	0x54504750u	/* "PGPT" */
#define PP_HEADER	0x00fff000u
#define PP_BASE		0x01000000u
#define PP_PAGE		4096u
#define PP_PRINT_EVERY	1024u

/* The header page: what the checker needs to know. */
struct pp_header {
	uint32_t	magic;
	uint32_t	base;
	uint32_t	pages;
	uint32_t	passes;		/* complete passes */
};

/* Multiboot v1: magic, flags (nothing asked), checksum. */
__attribute__((section(".multiboot"), used, aligned(4)))
static const uint32_t mb_header[3] = {
	0x1badb002u, 0u, (uint32_t)-(0x1badb002u + 0u)
};

/* The stack (_start points at its end). */
uint8_t		pp_stack[8192] __attribute__((aligned(16)));

static inline void
outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t
inb(uint16_t port)
{
	uint8_t	v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void
putc_serial(char c)
{
	while ((inb(0x3fd) & 0x20) == 0)
		;
	outb(0x3f8, (uint8_t)c);
}

static void
puts_serial(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\n')
			putc_serial('\r');
		putc_serial(*s);
	}
}

static void
putu(uint32_t v, int hex)
{
	char	 buf[12], *p = buf + sizeof buf;
	uint32_t base = hex ? 16 : 10;

	*--p = '\0';
	do {
		*--p = "0123456789abcdef"[v % base];
		v /= base;
	} while (v != 0);
	if (hex)
		puts_serial("0x");
	puts_serial(p);
}

/* "KEY=N" in the multiboot command line, else def. */
static uint32_t
cmdline_num(const char *s, const char *key, uint32_t def)
{
	uint32_t		v;
	unsigned		i;

	if (s == 0)
		return def;
	for (; *s != '\0'; s++) {
		for (i = 0; key[i] != '\0' && s[i] == key[i]; i++)
			;
		if (key[i] != '\0')
			continue;
		s += i;
		for (v = 0; *s >= '0' && *s <= '9'; s++)
			v = v * 10 + (uint32_t)(*s - '0');
		return v;
	}
	return def;
}

__attribute__((noreturn, used)) void
pp_main(uint32_t magic, const uint32_t *info)
{
	volatile struct pp_header	*h = (volatile struct pp_header *)PP_HEADER;
	volatile uint32_t		*p, *end;
	volatile uint32_t		*lose_page;
	const char			*cmdline = 0;
	uint32_t			 pages, passes, mib, lose, invlpg;

	/* Multiboot info: flags bit 2, the command line at +16. */
	if (magic == 0x2badb002u && (info[0] & 4) != 0)
		cmdline = (const char *)(uintptr_t)info[4];
	mib = cmdline_num(cmdline, "pagepat.mib=", 32);
	if (mib == 0 || mib > 1024)
		mib = 32;
	lose = cmdline_num(cmdline, "pagepat.lose=", 0);
	invlpg = cmdline_num(cmdline, "pagepat.invlpg=", 0);
	pages = cmdline_num(cmdline, "pagepat.pages=", 0);
	if (pages == 0 || pages > mib * (1024u * 1024u / PP_PAGE))
		pages = mib * (1024u * 1024u / PP_PAGE);
	end = (volatile uint32_t *)(PP_BASE + pages * PP_PAGE);
	lose_page = (volatile uint32_t *)(PP_BASE + pages / 2 * PP_PAGE);
	/* RAM starts zeroed; start from a known state all the same. */
	for (p = (volatile uint32_t *)PP_BASE; p < end; p += PP_PAGE / 4)
		*p = 0;
	h->base = PP_BASE;
	h->pages = pages;
	h->passes = 0;
	h->magic = PP_MAGIC;
	puts_serial("pagepat start base=");
	putu(PP_BASE, 1);
	puts_serial(" pages=");
	putu(pages, 0);
	puts_serial("\n");
	/* The pass count lives in the header page alone, read and written
	 * back each pass like the region's counters, never carried in a
	 * local: gcc spilled that local to the stack around each print, and
	 * the stack, always written through a hot TLB entry, came out of a
	 * move under the defect thousands of passes old (the control failed
	 * in CI, its header 30,000 passes behind its region). */
	for (;;) {
		if (invlpg)
			for (p = (volatile uint32_t *)PP_BASE; p < end;
			    p += PP_PAGE / 4) {
				__asm__ volatile("invlpg (%0)" : : "r"(p) :
				    "memory");
				(*p)++;
			}
		else if (lose != 0 && h->passes + 1 >= lose) {
			if (h->passes + 1 == lose)
				puts_serial("pagepat losing a write "
				    "(deliberate)\n");
			for (p = (volatile uint32_t *)PP_BASE; p < end;
			    p += PP_PAGE / 4)
				if (p != lose_page)
					(*p)++;
		} else
			for (p = (volatile uint32_t *)PP_BASE; p < end;
			    p += PP_PAGE / 4)
				(*p)++;
		/* The header is a page like the others: in the control it
		 * too is written through a fresh TLB fill. */
		if (invlpg)
			__asm__ volatile("invlpg (%0)" : : "r"(h) : "memory");
		passes = h->passes + 1;
		h->passes = passes;
		if (passes % PP_PRINT_EVERY == 0) {
			puts_serial("pagepat pass=");
			putu(passes, 0);
			puts_serial("\n");
		}
	}
}

/* Multiboot enters in 32-bit protected mode, flat segments, interrupts
 * off, no stack. */
__asm__(
	".text\n"
	".globl _start\n"
	"_start:\n"
	"	cli\n"
	"	movl $pp_stack + 8192, %esp\n"
	"	pushl %ebx\n"
	"	pushl %eax\n"
	"	call pp_main\n"
	"1:	hlt\n"
	"	jmp 1b\n");
