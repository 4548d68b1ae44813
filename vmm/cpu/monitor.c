#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "monitor.h"
#include "monitor_asm.h"
#include "x86.h"

static bool has_error_code(unsigned v)
{
	/* SDM 3A §6.15: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP push one. */
	return v == X86_EXC_DF || (v >= X86_EXC_TS && v <= X86_EXC_PF) || v == X86_EXC_AC ||
	       v == X86_EXC_CP;
}

void *monitor_page(const struct monitor *m, unsigned pg)
{
	return m->host + (uint64_t)pg * 4096;
}

/* The reserved slot's tables: PML4E -> PDPT[0] -> PD[0] -> PT, whose entries
 * map monitor pages IDT..STACK at HV_VA(pg).  Supervisor only, A/D preset so
 * the CPU never writes them; only the stack is writable; only stubs run. */
static void build_tables(struct monitor *m)
{
	const uint64_t tab = X86_PTE_P | X86_PTE_W | X86_PTE_A;
	uint64_t *pdpt = monitor_page(m, HV_PG_PDPT), *pd = monitor_page(m, HV_PG_PD);
	uint64_t *pt = monitor_page(m, HV_PG_PT);

	m->pml4e = HV_MPA(HV_PG_PDPT) | tab;
	pdpt[0] = HV_MPA(HV_PG_PD) | tab;
	pd[0] = HV_MPA(HV_PG_PT) | tab;
	for (unsigned pg = HV_PG_IDT; pg < HV_PG_MAPPED_END; pg++) {
		uint64_t e = HV_MPA(pg) | X86_PTE_P | X86_PTE_A | X86_PTE_D;
		if (pg == HV_PG_STACK)
			e |= X86_PTE_W;
		if (pg != HV_PG_STUBS && pg != HV_PG_STUBS + 1)
			e |= X86_PTE_NX;
		pt[pg] = e;
	}
	/* the APIC's alias: uncached, no code; its page lies in no memslot */
	if (m->lapic)
		pt[HV_PT_LAPIC] = m->lapic | X86_PTE_P | X86_PTE_W | X86_PTE_PWT | X86_PTE_PCD |
				  X86_PTE_A | X86_PTE_D | X86_PTE_NX;
}

/* Stub v: [push $0] ; push $v ; out %al, $HV_PORT_TRAP ; ud2.  Guest GPRs
 * are untouched; the VMM reads the frame and never resumes the stub. */
static void build_stubs(struct monitor *m)
{
	uint8_t *p = monitor_page(m, HV_PG_STUBS);

	for (unsigned v = 0; v < 256; v++, p += HV_STUB_SIZE) {
		unsigned n = 0;
		memset(p, 0xcc, HV_STUB_SIZE);
		if (!has_error_code(v)) {
			p[n++] = 0x6a; /* push imm8 */
			p[n++] = 0;
		}
		p[n++] = 0x68; /* push imm32 */
		memcpy(p + n, &v, 4);
		n += 4;
		p[n++] = 0xe6, p[n++] = HV_PORT_TRAP;
		p[n++] = 0x0f, p[n++] = 0x0b;
	}
	/* LSTAR target: syscall leaves RSP on the caller's stack, so the stub
	 * must not push. */
	p[0] = 0xe6, p[1] = HV_PORT_SYSCALL, p[2] = 0x0f, p[3] = 0x0b;
}

static void build_idt(struct monitor *m)
{
	struct x86_gate64 *idt = monitor_page(m, HV_PG_IDT);

	/* SDM 3A §6.14.1: interrupt gate, DPL 0 (so `int n` from the guest
	 * raises #GP and is emulated), IST 1. */
	for (unsigned v = 0; v < 256; v++)
		idt[v] = x86_gate(HV_VA(HV_PG_STUBS) + v * HV_STUB_SIZE, HV_SEL_CS, 1,
				  X86_GATE_TYPE_INTR, 0);
	/* --fill=monitor: hidden faults go to the fill monitor first */
	if (m->fill) {
		idt[X86_EXC_PF] = x86_gate(HV_PF_VA, HV_SEL_CS, 1, X86_GATE_TYPE_INTR, 0);
		idt[X86_EXC_GP] = x86_gate(HV_GP_VA, HV_SEL_CS, 1, X86_GATE_TYPE_INTR, 0);
	}
}

static void build_tss(struct monitor *m)
{
	struct x86_tss64 *tss = monitor_page(m, HV_PG_TSS);

	tss->rsp[0] = HV_STACK_TOP;
	tss->ist[0] = HV_STACK_TOP;
	/* past the limit: no I/O bitmap, so port I/O above IOPL faults */
	tss->iomap_base = X86_TSS64_LIMIT + 1;
}

static void build_gdt_monitor(struct monitor *m)
{
	uint64_t *gdt = monitor_page(m, HV_PG_GDT);

	/* accessed preset (type | 1): the GDT pages are read-only */
	gdt[HV_GDT_CS_INDEX] = x86_desc_flat(X86_SEG_TYPE_CODE_XR | 1, 0, X86_DESC_L);
	gdt[HV_GDT_SS_INDEX] = x86_desc_flat(X86_SEG_TYPE_DATA_RW | 1, 0, X86_DESC_DB);
	x86_desc_tss64(&gdt[HV_GDT_TSS_INDEX], HV_VA(HV_PG_TSS), X86_TSS64_LIMIT,
		       X86_SEG_TYPE_TSS64_BUSY);
}

extern const uint8_t monitor_apply_code[];
extern const uint64_t monitor_apply_size;

_Static_assert(HV_ASM_PG_STUBS == HV_PG_STUBS && HV_ASM_PG_QUEUE == HV_PG_QUEUE &&
		       HV_ASM_PG_STACK == HV_PG_STACK && HV_ASM_PORT_APPLIED == HV_PORT_APPLIED,
	       "monitor_asm.h follows monitor.h");
_Static_assert(HV_ASM_VA_BASE == SHADOWVM_ABI_RESERVED_VA_BASE, "monitor_asm.h: the reserved slot");
_Static_assert(HV_ASM_QUEUE_OPS_OFF == sizeof(struct hv_queue), "queue header");
_Static_assert(HV_ASM_APPLY_VA == HV_APPLY_VA && HV_ASM_PF_VA == HV_PF_VA,
	       "the entries' addresses");
_Static_assert(HV_ASM_LAPIC_VA == HV_VA(HV_PG_STACK) && HV_ASM_PT_LAPIC == HV_PT_LAPIC &&
		       HV_ASM_PG_GDT == HV_PG_GDT &&
		       HV_ASM_LAPIC_ENABLED == offsetof(struct hv_lapic, enabled) &&
		       HV_ASM_LAPIC_STAC == offsetof(struct hv_lapic, stac) &&
		       HV_ASM_LAPIC_ID == offsetof(struct hv_lapic, id) &&
		       HV_ASM_LAPIC_ID_READS == offsetof(struct hv_lapic, id_reads) &&
		       HV_ASM_LAPIC_FORWARDED == offsetof(struct hv_lapic, forwarded) &&
		       HV_ASM_LAPIC_DECLINED == offsetof(struct hv_lapic, declined),
	       "monitor_asm.h: the local-APIC fast path");

extern const uint8_t monitor_pf_code[];
extern const uint64_t monitor_pf_size;
extern const uint64_t monitor_gp_offset;
extern const uint8_t monitor_image[];
extern const uint64_t monitor_image_size;

_Static_assert(HV_ASM_PG_MON == HV_PG_MON && HV_ASM_PG_POOL == HV_PG_POOL &&
		       HV_ASM_PG_MROOT == HV_PG_MROOT && HV_ASM_SLOT_MPA == HV_BASE &&
		       HV_ASM_PORT_TRAP == HV_PORT_TRAP && HV_ASM_MON_IMAGE_VA == HV_MON_IMAGE_VA,
	       "monitor_asm.h follows monitor.h and hv_mon.h");
_Static_assert(HV_ASM_HEAD_ENTRY == offsetof(struct hv_mon_head, entry) &&
		       HV_ASM_HEAD_STACK == offsetof(struct hv_mon_head, stack_top),
	       "the image head");
_Static_assert(sizeof(struct hv_mon) <= 4096, "the control page");

static const struct hv_mon_head *image_head(void)
{
	return (const struct hv_mon_head *)monitor_image;
}

static uint32_t pages_of(uint64_t bytes)
{
	return (uint32_t)((bytes + 4095) / 4096);
}

bool monitor_layout(struct monitor *m, const struct monitor_config *cfg)
{
	const struct hv_mon_head *h = image_head();
	uint64_t ring = (uint64_t)HV_RING_PAGES;

	if (monitor_image_size < sizeof(*h) || h->magic != HV_MON_MAGIC ||
	    h->image_bytes < monitor_image_size || h->text_bytes > h->image_bytes ||
	    (h->image_bytes & 0xfff) || (h->text_bytes & 0xfff) ||
	    h->image_bytes > (uint64_t)X86_PT_ENTRIES * 4096 || cfg->ram_size > HV_MON_RAM_MAX ||
	    monitor_apply_size > (HV_PF_VA - HV_APPLY_VA) ||
	    monitor_pf_size > 4096 - (HV_PF_VA & 0xfff) || monitor_gp_offset != HV_GP_VA - HV_PF_VA)
		return false;
	m->pool_pages = cfg->pool_pages;
	m->fill = cfg->fill;
	m->lapic = cfg->lapic;
	m->state_pages = pages_of(cfg->state_bytes);
	m->image_pages = pages_of(h->image_bytes);
	m->ram_size = cfg->ram_size;
	m->ram_pds = (uint32_t)((cfg->ram_size + (1ull << 30) - 1) >> 30);
	m->pg_copy = HV_PG_POOL + cfg->pool_pages;
	m->pg_ring = m->pg_copy + cfg->pool_pages;
	m->pg_state = m->pg_ring + (uint32_t)ring;
	m->pg_image = m->pg_state + m->state_pages;
	/* PML4 511's PDPT, the image's PD and PT, then the RAM PDs */
	m->pg_tables = m->pg_image + m->image_pages;
	m->pg_mpt = m->pg_tables + 3 + m->ram_pds;
	/* one PT per 512 pages of slot mapped in slot 510, up to pg_mpt */
	m->pg_end = m->pg_mpt + (m->pg_mpt + X86_PT_ENTRIES - 1) / X86_PT_ENTRIES;
	m->size = (uint64_t)m->pg_end * 4096;
	return m->pg_end - m->pg_mpt <= X86_PT_ENTRIES;
}

/* Slot 510 of the monitor's own root maps every page the guest roots map,
 * with the same rights, plus the queue, the control page, the pool and
 * what follows it, writable and NX.  Its tables are written here, before
 * the VM first runs, and never again. */
static void build_slot_tables(struct monitor *m)
{
	const uint64_t tab = X86_PTE_P | X86_PTE_W | X86_PTE_A;
	const uint64_t *guest_pt = monitor_page(m, HV_PG_PT);
	uint64_t *root = monitor_page(m, HV_PG_MROOT), *pdpt = monitor_page(m, HV_PG_MPDPT);
	uint64_t *pd = monitor_page(m, HV_PG_MPD);

	root[SHADOWVM_ABI_RESERVED_PML4_INDEX] = HV_MPA(HV_PG_MPDPT) | tab;
	pdpt[0] = HV_MPA(HV_PG_MPD) | tab;
	for (uint32_t i = 0; m->pg_mpt + i < m->pg_end; i++)
		pd[i] = HV_MPA(m->pg_mpt + i) | tab;
	for (uint32_t pg = HV_PG_IDT; pg < m->pg_mpt; pg++) {
		uint64_t *pt = monitor_page(m, m->pg_mpt + pg / X86_PT_ENTRIES);
		uint64_t e =
			HV_MPA(pg) | X86_PTE_P | X86_PTE_W | X86_PTE_A | X86_PTE_D | X86_PTE_NX;

		if (pg < HV_PG_MAPPED_END)
			e = guest_pt[pg];
		else if (pg < HV_PG_QUEUE)
			continue; /* the guard, and the root's own tables */
		pt[pg % X86_PT_ENTRIES] = e;
	}
}

/* PML4 511 of the monitor's root: the image at HV_MON_IMAGE_VA (code
 * read-only, the rest writable and NX) and guest RAM at HV_MON_RAM_VA in
 * 2 MiB pages, writable and NX (the walk's reads and A/D updates). */
static void build_image_tables(struct monitor *m)
{
	const uint64_t tab = X86_PTE_P | X86_PTE_W | X86_PTE_A;
	const uint64_t text = image_head()->text_bytes / 4096;
	uint64_t *root = monitor_page(m, HV_PG_MROOT), *pdpt = monitor_page(m, m->pg_tables);
	uint64_t *pd = monitor_page(m, m->pg_tables + 1), *pt = monitor_page(m, m->pg_tables + 2);

	root[X86_LEVEL_INDEX(HV_MON_IMAGE_VA, 4)] = HV_MPA(m->pg_tables) | tab;
	pdpt[X86_LEVEL_INDEX(HV_MON_IMAGE_VA, 3)] = HV_MPA(m->pg_tables + 1) | tab;
	pd[X86_LEVEL_INDEX(HV_MON_IMAGE_VA, 2)] = HV_MPA(m->pg_tables + 2) | tab;
	for (uint32_t i = 0; i < m->image_pages; i++)
		pt[i] = HV_MPA(m->pg_image + i) | X86_PTE_P | X86_PTE_A | X86_PTE_D |
			(i < text ? 0 : X86_PTE_W | X86_PTE_NX);
	for (uint32_t g = 0; g < m->ram_pds; g++) {
		uint64_t *ram_pd = monitor_page(m, m->pg_tables + 3 + g);

		pdpt[X86_LEVEL_INDEX(HV_MON_RAM_VA, 3) + g] = HV_MPA(m->pg_tables + 3 + g) | tab;
		/* RAM only: --mem is a multiple of 2 MiB */
		for (unsigned i = 0;
		     i < X86_PT_ENTRIES && ((uint64_t)g << 30) + ((uint64_t)i << 21) < m->ram_size;
		     i++)
			ram_pd[i] = (((uint64_t)g << 30) + ((uint64_t)i << 21)) | X86_PTE_P |
				    X86_PTE_W | X86_PTE_PS | X86_PTE_A | X86_PTE_D | X86_PTE_NX;
	}
}

/* The applier and the fill monitor's #PF entry, after the syscall stub;
 * the image at its pages, and the control page. */
static void build_monitor_code(struct monitor *m, const struct monitor_config *cfg)
{
	uint8_t *p = monitor_page(m, HV_PG_STUBS + 1);
	struct hv_mon *mon = monitor_mon(m);

	memcpy(p + (HV_APPLY_VA & 0xfff), monitor_apply_code, monitor_apply_size);
	memcpy(p + (HV_PF_VA & 0xfff), monitor_pf_code, monitor_pf_size);
	memcpy(monitor_page(m, m->pg_image), monitor_image, monitor_image_size);
	*mon = (struct hv_mon){
		.magic = HV_MON_MAGIC,
		.state_va = HV_VA(m->pg_state),
		.state_bytes = cfg->state_bytes,
		.pool_va = HV_VA(HV_PG_POOL),
		.copy_va = HV_VA(m->pg_copy),
		.ram_size = cfg->ram_size,
		.guest_pml4_slot = SHADOWVM_ABI_RESERVED_PML4_INDEX,
		.ring_va = HV_VA(m->pg_ring),
		.ring_cap = HV_RING_PAGES * 4096 / sizeof(struct hv_mon_event),
		.last_gva = ~0ull,
		.last_rip = ~0ull,
		.last_err = ~0ull,
	};
}

int monitor_create(struct monitor *m, const struct monitor_config *cfg)
{
	memset(m, 0, sizeof(*m));
	if (!monitor_layout(m, cfg)) {
		errno = EINVAL;
		return -1;
	}
	m->host = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->host == MAP_FAILED) {
		m->host = NULL;
		return -1;
	}
	build_tables(m);
	build_stubs(m);
	build_idt(m);
	build_tss(m);
	build_gdt_monitor(m);
	build_slot_tables(m);
	build_image_tables(m);
	build_monitor_code(m, cfg);
	return 0;
}

struct hv_lapic *monitor_lapic(const struct monitor *m)
{
	return monitor_page(m, HV_PG_STACK);
}

struct hv_mon *monitor_mon(const struct monitor *m)
{
	return monitor_page(m, HV_PG_MON);
}

void *monitor_state(const struct monitor *m)
{
	return monitor_page(m, m->pg_state);
}

uint64_t *monitor_pool(const struct monitor *m)
{
	return monitor_page(m, HV_PG_POOL);
}

uint64_t *monitor_copy(const struct monitor *m)
{
	return monitor_page(m, m->pg_copy);
}

void monitor_destroy(struct monitor *m)
{
	if (m->host)
		munmap(m->host, m->size);
	m->host = NULL;
}

void monitor_load_gdt(struct monitor *m, const uint64_t *guest, unsigned count, bool legacy)
{
	uint64_t *gdt = monitor_page(m, HV_PG_GDT);

	if (count > HV_GDT_CS_INDEX)
		count = HV_GDT_CS_INDEX;
	memset(gdt, 0, HV_GDT_CS_INDEX * sizeof(uint64_t));
	for (unsigned i = 1; i < count; i++) {
		uint64_t d = guest[i];
		unsigned dpl = x86_desc_dpl(d);

		if (!(d & X86_DESC_S))
			continue; /* TSS, LDT, gates: emulated or refused */
		if (dpl == 0)
			d = (d & ~X86_DESC_DPL(3)) | X86_DESC_DPL(1);
		/* outside IA-32e mode the L bit means nothing (SDM 3A §3.4.5):
		 * the real CPU, always in IA-32e mode, must not see it */
		if (legacy && (d & X86_BIT(X86_DESC_TYPE_SHIFT + 3)))
			d &= ~X86_BIT(X86_DESC_L_BIT);
		/* Accessed preset: the CPU would otherwise write it into a
		 * read-only page (SDM 3A §3.4.5.1). */
		gdt[i] = d | X86_BIT(X86_DESC_TYPE_SHIFT);
	}
}

const struct hv_trap_frame *monitor_frame(const struct monitor *m)
{
	const uint8_t *stack = monitor_page(m, HV_PG_STACK);
	return (const struct hv_trap_frame *)(stack + 4096 - sizeof(struct hv_trap_frame));
}

uint64_t monitor_descriptor(const struct monitor *m, uint16_t sel)
{
	const uint64_t *gdt = monitor_page(m, HV_PG_GDT);
	unsigned idx = sel >> X86_SEL_INDEX_SHIFT;

	if (idx == 0 || (sel & X86_SEL_TI) || idx >= HV_GDT_ENTRIES)
		return 0;
	return gdt[idx];
}

static struct hv_queue *queue(const struct monitor *m)
{
	return monitor_page(m, HV_PG_QUEUE);
}

static bool queue_op(struct monitor *m, uint64_t where, uint64_t value)
{
	struct hv_queue *q = queue(m);

	if (q->ops >= HV_QUEUE_OPS_MAX)
		return false;
	q->op[q->ops++] = (struct hv_queue_op){ where, value };
	return true;
}

/* A pool MPA as the monitor root maps it. */
static uint64_t monitor_va(mpa_t mpa)
{
	return SHADOWVM_ABI_RESERVED_VA_BASE + (mpa - HV_BASE);
}

bool monitor_queue_store(struct monitor *m, mpa_t mpa, uint64_t value)
{
	assert(mpa >= HV_MPA(HV_PG_POOL) && mpa < HV_MPA(HV_PG_POOL + m->pool_pages) && !(mpa & 7));
	return queue_op(m, monitor_va(mpa), value);
}

bool monitor_queue_zero(struct monitor *m, mpa_t page)
{
	assert(page >= HV_MPA(HV_PG_POOL) && page < HV_MPA(HV_PG_POOL + m->pool_pages) &&
	       !(page & 0xfff));
	return queue_op(m, monitor_va(page) | 1, 0);
}

unsigned monitor_queue_len(const struct monitor *m)
{
	return (unsigned)queue(m)->ops;
}

void monitor_apply_setup(struct monitor *m, const uint64_t frame[5], mpa_t root,
			 enum hv_apply_end end)
{
	uint8_t *stack = monitor_page(m, HV_PG_STACK);
	struct hv_queue *q = queue(m);

	memcpy(stack + (HV_APPLY_FRAME_VA & 0xfff), frame, 5 * sizeof(uint64_t));
	q->root = root;
	q->exit_after = end;
}
