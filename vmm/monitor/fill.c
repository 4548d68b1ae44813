/* The fill monitor (DESIGN.md §3, issue 14): the shadow MMU run inside the
 * VM, at CPL0 on the monitor's own root, on every hidden #PF.  It walks the
 * guest's tables through its mapping of guest RAM, sets A/D with lock
 * cmpxchg, writes the shadow leaf into the real tables and returns to the
 * guest with iretq: no exit.  What it does not resolve it hands to the VMM
 * (enum hv_mon_exit), decided here and nowhere else.
 *
 * It works on the VMM's context (the same state block and pool, seen at
 * other addresses: shadow_attach) while the vCPU runs; the VMM touches that
 * context only while the vCPU is stopped.  Built freestanding with
 * -mcmodel=kernel and linked at HV_MON_IMAGE_VA (image.ld). */
#include "hv_mon.h"
#include "monitor_asm.h"
#include "shadow.h"
#include "x86.h"

#define MON ((struct hv_mon *)HV_ASM_MON_VA)

static uint8_t stack[HV_MON_STACK_BYTES] __attribute__((aligned(16)));
static uint64_t view[SHADOW_VIEW_BYTES / 8];
static struct shadow *sh;

uint64_t hv_mon_fault(struct hv_mon_frame *f);

/* image.ld's: the end of code and read-only data, and of everything */
extern char hv_mon_text_end[], hv_mon_end[];

__attribute__((section(".mon_head"), used)) static const struct hv_mon_head head = {
	.magic = HV_MON_MAGIC,
	.entry = (uint64_t)hv_mon_fault,
	.stack_top = (uint64_t)(stack + sizeof(stack)),
	.text_bytes = (uint64_t)hv_mon_text_end - HV_MON_IMAGE_VA,
	.image_bytes = (uint64_t)hv_mon_end - HV_MON_IMAGE_VA,
};

/* ---- guest memory: RAM at HV_MON_RAM_VA ------------------------------------------- */

static uint64_t *ram(gpa_t gpa)
{
	uint64_t size = MON->ram_size;

	if ((gpa & 7) || size < 8 || gpa > size - 8)
		return 0;
	return (uint64_t *)(HV_MON_RAM_VA + gpa);
}

static int ram_read(void *opaque, gpa_t gpa, uint64_t *val)
{
	(void)opaque;
	return shadow_mem_load(ram(gpa), val);
}

static int ram_write(void *opaque, gpa_t gpa, uint64_t val)
{
	(void)opaque;
	return shadow_mem_store(ram(gpa), val);
}

static int ram_cmpxchg(void *opaque, gpa_t gpa, uint64_t *expected, uint64_t desired)
{
	(void)opaque;
	return shadow_mem_cmpxchg(ram(gpa), expected, desired);
}

/* ---- the real tables: every store the shadow MMU makes to its view ------------- */

static uint64_t *real(mpa_t mpa)
{
	return (uint64_t *)(MON->pool_va + (mpa - HV_ASM_POOL_MPA));
}

static void real_store(void *opaque, mpa_t entry, uint64_t value)
{
	(void)opaque;
	*(volatile uint64_t *)real(entry) = value;
}

static void real_zero(void *opaque, mpa_t page)
{
	uint64_t *p = real(page);

	(void)opaque;
	for (unsigned i = 0; i < X86_PT_ENTRIES; i++)
		((volatile uint64_t *)p)[i] = 0;
}

/* ---- events into the ring ------------------------------------------------------- */

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static uint64_t ring_used(void)
{
	return MON->ring_head - MON->ring_tail;
}

/* hv_mon_fault keeps HV_MON_EVENTS_PER_FAULT free before it starts, so
 * this never finds the ring full; if it ever did, the record would still
 * not be lost: the head would pass the tail and the VMM would refuse the
 * ring (a run error, never a silent gap). */
static struct hv_mon_event *ring_next(enum hv_mon_rec type)
{
	struct hv_mon_event *r =
		(struct hv_mon_event *)MON->ring_va + MON->ring_head % MON->ring_cap;

	r->tsc = rdtsc();
	r->type = type;
	MON->ring_head++;
	return r;
}

static void ring_push(void *opaque, const struct shadow_event *ev)
{
	(void)opaque;
	ring_next(HV_MON_REC_SHADOW)->ev = *ev;
}

static bool ring_room(uint64_t records)
{
	return !(MON->flags & HV_MON_TRACE) || MON->ring_cap - ring_used() >= records;
}

/* ---- the fault --------------------------------------------------------------------- */

static bool attach(void)
{
	struct shadow_view v = {
		.mem = { ram_read, ram_write, ram_cmpxchg, 0, MON->ram_size },
		.pool = { .host = (void *)MON->copy_va, .store = real_store, .zero = real_zero },
	};

	if (sh)
		return true;
	if (MON->magic != HV_MON_MAGIC)
		return false;
	if (MON->flags & HV_MON_TRACE)
		v.hook = ring_push;
	sh = shadow_attach(view, (void *)MON->state_va, MON->state_bytes, &v);
	return sh != 0;
}

static uint64_t read_cr2(void)
{
	uint64_t v;

	__asm__ volatile("mov %%cr2, %0" : "=r"(v));
	return v;
}

/* Leave the event to the VMM.  The fault last resolved is forgotten, but
 * for a repeat: that one keeps exiting while it comes back, so that the
 * VMM sees it trap back to back (trap.c fill_stuck). */
static uint64_t leave(enum hv_mon_exit why)
{
	MON->exit_reason = why;
	MON->exits[why]++;
	if (why != HV_MON_EXIT_REPEAT)
		MON->last_gva = MON->last_rip = MON->last_err = ~0ull;
	return 0;
}

/* Whether the guest maps the reserved slot (DESIGN.md §2): the VMM stops
 * the run then, so the monitor must not hide it behind a fill. */
static bool maps_reserved_slot(uint64_t cr3)
{
	uint64_t e;

	if (ram_read(0, (cr3 & X86_CR3_ADDR_MASK) + MON->guest_pml4_slot * 8, &e) != SHADOW_MEM_OK)
		return true;
	return e & X86_PTE_P;
}

/* SMAP's view of the access: the guest's RFLAGS.AC (control.c) */
static void refresh_ac(const struct hv_mon_frame *f)
{
	struct shadow_cpu cpu = *shadow_cpu_state(sh);

	cpu.rflags_ac = f->rflags & X86_RFLAGS_AC;
	shadow_set_cpu(sh, &cpu);
}

/* A hidden #PF: the CR3 to return to the guest on, or 0. */
static uint64_t page_fault(struct hv_mon_frame *f)
{
	struct shadow_fault_result res;
	uint64_t gva = read_cr2();
	enum shadow_status st;
	bool resolved;

	if (f->error_code & X86_PF_RSVD)
		return leave(HV_MON_EXIT_RSVD);
	if (gva == MON->last_gva && f->rip == MON->last_rip && f->error_code == MON->last_err)
		return leave(HV_MON_EXIT_REPEAT);
	if (shadow_pool_free_pages(sh) < SHADOW_LEVELS - 1)
		return leave(HV_MON_EXIT_POOL);
	if (!ring_room(HV_MON_EVENTS_PER_FAULT))
		return leave(HV_MON_EXIT_RING);
	/* only a 4-level guest has a PML4: a 32-bit or PAE guest's addresses
	 * never reach the slot, which lies above 4 GiB */
	if (shadow_paging_mode(sh) == SHADOW_PAGING_LONG4 && maps_reserved_slot(shadow_vcr3(sh)))
		return leave(HV_MON_EXIT_SLOT);
	refresh_ac(f);
	st = shadow_fault(sh, gva, (uint32_t)f->error_code, &res);
	resolved = st == SHADOW_FILLED || st == SHADOW_RETRY;
	MON->resolved += resolved;
	if (resolved && !(MON->flags & HV_MON_CHECK)) {
		/* entries were only added or raised, or dropped (an unprotect's
		 * zaps): the return's MOV to CR3 flushes either way */
		shadow_take_tlb_flush(sh);
		MON->last_gva = gva;
		MON->last_rip = f->rip;
		MON->last_err = f->error_code;
		return shadow_root(sh);
	}
	/* the VMM reflects, stops, or (CHECK) checks, takes the TLB flush if
	 * one is due and resumes */
	MON->handoff = 1;
	MON->handoff_gva = gva;
	MON->handoff_err = f->error_code;
	MON->handoff_res = res;
	if (resolved)
		return leave(HV_MON_EXIT_CHECK);
	return leave(st == SHADOW_ERROR ? HV_MON_EXIT_ERROR : HV_MON_EXIT_GUEST_FAULT);
}

/* ---- #GP: the guest kernel's mov to CR3 ---------------------------------------- */

#define INSN_MAX 15  /* the VMM's fetch window (emulate.c decode) */
#define GVA_TRIES 16 /* its retries of an unstable translation (gva.c) */

static uint64_t *gpr(struct hv_mon_frame *f, unsigned n)
{
	uint64_t *const r[16] = { &f->rax, &f->rcx, &f->rdx, &f->rbx, &f->rsp, &f->rbp,
				  &f->rsi, &f->rdi, &f->r8,  &f->r9,  &f->r10, &f->r11,
				  &f->r12, &f->r13, &f->r14, &f->r15 };
	return r[n & 15];
}

/* The instructions the monitor emulates, decoded by hand: 64-bit mode, no
 * prefix but REX (REX.R refused: CR8 and up), a register operand for
 * `mov`, a register with no SIB and an optional displacement for invlpg;
 * in 32-bit compatibility-mode code (`code32`), `mov` to CR3 from a 32-bit
 * register alone (0x40-0x4f are inc/dec there, no REX). */
enum insn_kind { INSN_NONE, INSN_MOV_TO_CR3, INSN_MOV_FROM_CR2, INSN_INVLPG };

struct insn {
	enum insn_kind kind;
	unsigned len, reg; /* the GPR written or read, or invlpg's base */
	int64_t disp;
};

static struct insn decode(const uint8_t *b, unsigned avail, bool code32)
{
	struct insn x = { INSN_NONE, 0, 0, 0 };
	unsigned n = 0, rex = 0, modrm, mod, regf, rm;

	if (code32) {
		if (avail >= 3 && b[0] == 0x0f && b[1] == 0x22 && (b[2] >> 6) == 3 &&
		    ((b[2] >> 3) & 7) == 3)
			x = (struct insn){ INSN_MOV_TO_CR3, 3, b[2] & 7u, 0 };
		return x;
	}
	if ((b[0] & 0xf0) == 0x40)
		rex = b[n++];
	if (n + 3 > avail || b[n] != 0x0f || (rex & 0x4))
		return x;
	modrm = b[n + 2], mod = modrm >> 6, regf = (modrm >> 3) & 7, rm = modrm & 7;
	x.reg = rm | (rex & 1 ? 8 : 0);
	x.len = n + 3;
	if ((b[n + 1] == 0x22 || b[n + 1] == 0x20) && mod == 3) {
		if (b[n + 1] == 0x22 && regf == 3)
			x.kind = INSN_MOV_TO_CR3;
		else if (b[n + 1] == 0x20 && regf == 2)
			x.kind = INSN_MOV_FROM_CR2;
		return x;
	}
	/* invlpg m: 0F 01 /7, mod 0..2, no SIB (rm 4), no RIP-relative */
	if (b[n + 1] != 0x01 || regf != 7 || mod == 3 || rm == 4 || (mod == 0 && rm == 5))
		return x;
	if (mod == 1) {
		if (x.len + 1 > avail)
			return x;
		x.disp = (int8_t)b[x.len++];
	} else if (mod == 2) {
		if (x.len + 4 > avail)
			return x;
		x.disp = (int32_t)((uint32_t)b[x.len] | (uint32_t)b[x.len + 1] << 8 |
				   (uint32_t)b[x.len + 2] << 16 | (uint32_t)b[x.len + 3] << 24);
		x.len += 4;
	}
	x.kind = INSN_INVLPG;
	return x;
}

/* gva.c translate's shadow_fault for one page of a fetch: repeated while
 * the guest's tables change under it, GVA_TRIES times at most. */
static enum shadow_status fetch_page(uint64_t gva)
{
	struct shadow_fault_result res;
	enum shadow_status st;
	int tries = 0;

	while ((st = shadow_fault(sh, gva, SHADOW_ACC_FETCH, &res)) == SHADOW_RETRY &&
	       ++tries < GVA_TRIES)
		;
	return st;
}

/* The VMM's fetch of the instruction (emulate.c decode, gva.c translate),
 * made the same way so that the shadow MMU sees the same calls and the
 * trace gets the same records: the page at rip, then the rest of the
 * window on the next page, whose failure does not matter. */
static bool fetch_like_the_vmm(uint64_t rip)
{
	uint64_t first = X86_PAGE_SIZE - (rip & (X86_PAGE_SIZE - 1));

	if (fetch_page(rip) != SHADOW_FILLED)
		return false;
	if (first < INSN_MAX)
		fetch_page(rip + first);
	return true;
}

/* The instruction's bytes at rip, read without a side effect (the guest's
 * own translation), as far as rip's page goes: how many, or 0. */
static unsigned peek(uint64_t rip, uint8_t *b, unsigned max)
{
	unsigned n = X86_PAGE_SIZE - (unsigned)(rip & (X86_PAGE_SIZE - 1));
	gpa_t gpa;
	uint64_t w;

	if (n > max)
		n = max;
	if (!shadow_translate(sh, rip, SHADOW_ACC_FETCH, &gpa))
		return 0;
	for (unsigned i = 0; i < n; i++) {
		if (ram_read(0, (gpa + i) & ~7ull, &w) != SHADOW_MEM_OK)
			return 0;
		b[i] = (uint8_t)(w >> (8 * ((gpa + i) & 7)));
	}
	return n;
}

static const char *const mnemonic[] = {
	[INSN_MOV_TO_CR3] = "mov", [INSN_MOV_FROM_CR2] = "mov", [INSN_INVLPG] = "invlpg"
};

/* The width of code segment `cs`: 64 (LAR's L bit set, D clear), 32
 * (compatibility mode, D set), or 0 for anything else (SDM 2A LAR: it
 * reports bits 23:8 of the descriptor's high word). */
static unsigned code_bits(uint64_t cs)
{
	uint32_t ar = 0;
	uint8_t ok;

	__asm__("lar %2, %0\n\tsetz %1" : "=r"(ar), "=q"(ok) : "r"((uint32_t)cs) : "cc");
	if (!ok)
		return 0;
	if (ar & X86_BIT(21))
		return ar & X86_BIT(22) ? 0 : 64;
	return ar & X86_BIT(22) ? 32 : 0;
}

/* A #GP: the CR3 to return on after emulating one of the guest kernel's
 * privileged instructions as the VMM would (emulate.c: mov to CR3, mov
 * from CR2, invlpg), or 0 for anything else, left to the VMM before any
 * side effect. */
static uint64_t general_protection(struct hv_mon_frame *f)
{
	uint8_t b[INSN_MAX] = { 0 };
	enum shadow_paging mode;
	struct insn x;
	unsigned avail, bits;
	uint64_t v = 0;

	/* the guest kernel (CPL1), #GP(0), no check to make after each trap */
	if ((f->cs & 3) != 1 || f->error_code || (MON->flags & HV_MON_CHECK))
		return leave(HV_MON_EXIT_INSN);
	/* 64-bit code in 4-level paging; 32-bit code in 32-bit paging, whose
	 * CR3 load cannot fail (no reserved bit, no PDPTE; control.c keeps
	 * its low 32 bits); the rest (PAE's PDPTE loads can #GP) to the VMM */
	bits = code_bits(f->cs);
	mode = shadow_paging_mode(sh);
	if (!(bits == 64 && mode == SHADOW_PAGING_LONG4) &&
	    !(bits == 32 && mode == SHADOW_PAGING_32))
		return leave(HV_MON_EXIT_MODE);
	refresh_ac(f);
	if (!(avail = peek(f->rip, b, 8)) || (x = decode(b, avail, bits == 32)).kind == INSN_NONE)
		return leave(HV_MON_EXIT_INSN);
	if (x.kind == INSN_MOV_TO_CR3 && bits == 32) {
		v = (uint32_t)*gpr(f, x.reg);
	} else if (x.kind == INSN_MOV_TO_CR3) {
		v = *gpr(f, x.reg);
		/* what would make the VMM's emulation fail: a reserved bit
		 * (#GP), a root that maps the reserved slot (the run stops) */
		if ((v >> shadow_cpu_state(sh)->maxphyaddr) || maps_reserved_slot(v))
			return leave(HV_MON_EXIT_INSN);
	}
	if (!ring_room(2 * HV_MON_EVENTS_PER_FAULT + 8) ||
	    shadow_pool_free_pages(sh) < 2 * SHADOW_LEVELS || !fetch_like_the_vmm(f->rip))
		return leave(HV_MON_EXIT_INSN);
	/* the VMM's order: the fetch, the instruction's own events, its record */
	switch (x.kind) {
	case INSN_MOV_TO_CR3:
		shadow_set_cr3(sh, v);
		MON->guest_cr3 = v;
		MON->cr3_written = 1;
		break;
	case INSN_MOV_FROM_CR2: *gpr(f, x.reg) = MON->guest_cr2; break;
	case INSN_INVLPG: shadow_invlpg(sh, *gpr(f, x.reg) + (uint64_t)x.disp); break;
	case INSN_NONE: break;
	}
	if (MON->flags & HV_MON_TRACE) {
		struct hv_mon_event *r = ring_next(HV_MON_REC_EMULATE);

		r->vector = X86_EXC_GP;
		r->rip = f->rip;
		r->len = (uint8_t)x.len;
		/* the slot is reused: every byte, the terminator included */
		for (unsigned i = 0, end = 0; i < HV_MON_MNEMONIC_MAX; i++) {
			end |= !mnemonic[x.kind][i];
			r->mnemonic[i] = end ? 0 : mnemonic[x.kind][i];
		}
		for (unsigned i = 0; i < x.len; i++)
			r->bytes[i] = b[i];
	}
	MON->emulated++;
	f->rip += x.len;
	f->rflags &= ~X86_RFLAGS_RF;
	shadow_take_tlb_flush(sh);
	return shadow_root(sh);
}

/* The CR3 to return to the guest on, or 0: leave the event to the VMM
 * (the entry stub then exits through the trap stubs' frame and port). */
uint64_t hv_mon_fault(struct hv_mon_frame *f)
{
	if (!attach())
		return leave(HV_MON_EXIT_NOT_READY);
	/* a hidden #PF is resolved here in every paging mode (the engine and
	 * its walks are the VMM's); the kernel's privileged instructions in
	 * 4-level and 32-bit paging (general_protection) */
	return f->vector == X86_EXC_PF ? page_fault(f) : general_protection(f);
}
