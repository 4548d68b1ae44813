/* vmm/cpu/segment.c and the descriptor translation of vmm/cpu/monitor.c on a fake
 * struct vm (tests/fake_vm.h), no KVM: descriptor decoding (SDM 3A §3.4.5),
 * the guest GDT as the real one holds it (DPL 0 -> 1, DESIGN.md §2), and
 * the CS/SS loads with their privilege rules (SDM 2A MOV, 2B RET/IRET). */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>

#include "fake_vm.h"
#include "monitor.h"
#include "segment.h"
#include "suites.h"
#include "vm.h"
#include "x86.h"

static struct vm *vm;

static void setup(void)
{
	vm = fake_vm_open();
}

static void teardown(void)
{
	fake_vm_close(vm);
}

/* ---- decoding ---- */

struct decode_case {
	uint64_t desc;
	uint64_t base;
	uint32_t limit;
	uint8_t type, s, dpl, present, avl, l, db, g;
};

static const struct decode_case decode_cases[] = {
	/* Flat 64-bit code, DPL 0: limit 0xfffff in 4 KiB units. */
	{ FAKE_DESC_KCODE, 0, 0xffffffff, 0xa, 1, 0, 1, 0, 1, 0, 1 },
	/* Flat data, DPL 0, B = 1. */
	{ FAKE_DESC_KDATA, 0, 0xffffffff, 0x2, 1, 0, 1, 0, 0, 1, 1 },
	/* Base 0x12345678 split over bytes 2-4 and 7, byte-granular limit
	 * 0xabcd, DPL 3, not present, AVL = 1, accessed data. */
	{ 0x125073345678abcdull, 0x12345678, 0xabcd, 0x3, 1, 3, 0, 1, 0, 1, 0 },
	/* G = 1 scales limit 1 to 0x1fff (SDM 3A §3.4.5: limit << 12 | 0xfff). */
	{ 0x0080920000000001ull, 0, 0x1fff, 0x2, 1, 0, 1, 0, 0, 0, 1 },
	/* A system descriptor (S = 0): a 64-bit busy TSS, base 0x7000. */
	{ 0x00008b0070000067ull, 0x7000, 0x67, 0xb, 0, 0, 1, 0, 0, 0, 0 },
	/* Limit bits 19:16 in byte 6: 0xf0000 | 0x1234, byte-granular. */
	{ 0x000f920000001234ull, 0, 0xf1234, 0x2, 1, 0, 1, 0, 0, 0, 0 },
};

START_TEST(test_segment_from_desc_decodes_every_field)
{
	const struct decode_case *c = &decode_cases[_i];
	struct kvm_segment s;

	seg_from_desc(&s, 0x1234, c->desc);
	ck_assert_uint_eq(s.base, c->base);
	ck_assert_uint_eq(s.limit, c->limit);
	ck_assert_uint_eq(s.selector, 0x1234);
	ck_assert_uint_eq(s.type, c->type);
	ck_assert_uint_eq(s.s, c->s);
	ck_assert_uint_eq(s.dpl, c->dpl);
	ck_assert_uint_eq(s.present, c->present);
	ck_assert_uint_eq(s.avl, c->avl);
	ck_assert_uint_eq(s.l, c->l);
	ck_assert_uint_eq(s.db, c->db);
	ck_assert_uint_eq(s.g, c->g);
	ck_assert_uint_eq(s.unusable, !c->present);
}
END_TEST

START_TEST(test_segment_vcpl_is_3_only_for_rpl3_cs)
{
	static const struct {
		uint16_t cs;
		unsigned vcpl;
	} t[] = {
		{ 0x08, 0 },
		{ 0x09, 0 },
		{ 0x0a, 0 },
		{ 0x23, 3 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		vm->sregs.cs.selector = t[i].cs;
		ck_assert_uint_eq(seg_vcpl(vm), t[i].vcpl);
	}
	/* The guest kernel's CPL0 runs at real CPL1, user code at 3. */
	ck_assert_uint_eq(seg_real_cpl(0), 1);
	ck_assert_uint_eq(seg_real_cpl(3), 3);
}
END_TEST

/* ---- the real GDT: a translated copy of the guest's ---- */

struct xlate_case {
	uint64_t guest;
	uint64_t real; /* what the real GDT holds */
};

#define ACCESSED X86_BIT(X86_DESC_TYPE_SHIFT)

static const struct xlate_case xlate_cases[] = {
	/* Code and data with DPL 0 become DPL 1, accessed preset. */
	{ FAKE_DESC_KCODE, (FAKE_DESC_KCODE | X86_DESC_DPL(1) | ACCESSED) },
	{ FAKE_DESC_KDATA, (FAKE_DESC_KDATA | X86_DESC_DPL(1) | ACCESSED) },
	/* DPL 1, 2 and 3 stay as they are. */
	{ FAKE_DESC_KCODE | X86_DESC_DPL(1), FAKE_DESC_KCODE | X86_DESC_DPL(1) | ACCESSED },
	{ FAKE_DESC_KDATA | X86_DESC_DPL(2), FAKE_DESC_KDATA | X86_DESC_DPL(2) | ACCESSED },
	{ FAKE_DESC_UCODE, FAKE_DESC_UCODE | ACCESSED },
	{ FAKE_DESC_UDATA | ACCESSED, FAKE_DESC_UDATA | ACCESSED },
	/* A not-present segment keeps P = 0 (it must still raise #NP/#GP). */
	{ FAKE_DESC_KDATA & ~X86_DESC_P,
	  (FAKE_DESC_KDATA & ~X86_DESC_P) | X86_DESC_DPL(1) | ACCESSED },
	/* System descriptors never reach the real GDT: TSS, LDT, call gate. */
	{ 0x0000890070000067ull, 0 },
	{ 0x0000820070000067ull, 0 },
	{ 0x0000ec0000080000ull, 0 },
	{ 0, 0 },
};

START_TEST(test_segment_guest_gdt_translates_dpl0_to_dpl1)
{
	fake_vm_set_desc(vm, 9, xlate_cases[_i].guest);
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, 9 << 3), xlate_cases[_i].real);
	/* The RPL and the requested selector's low bits do not matter. */
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, (9 << 3) | 3), xlate_cases[_i].real);
}
END_TEST

START_TEST(test_segment_null_ldt_and_outside_selectors_read_zero)
{
	uint64_t guest[3] = { FAKE_DESC_KCODE, FAKE_DESC_KCODE, FAKE_DESC_KDATA };

	monitor_load_gdt(&vm->mon, guest, 3, false);
	/* Entry 0 is the null descriptor, whatever the guest put there. */
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, 0), 0);
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, 3), 0);
	/* TI = 1 names the LDT, which shadowvm does not give the guest. */
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, 0x08 | X86_SEL_TI), 0);
	ck_assert_uint_ne(monitor_descriptor(&vm->mon, 0x08), 0);
	/* A shorter GDT clears what the longer one left behind. */
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, FAKE_SEL_UCODE), 0);
}
END_TEST

START_TEST(test_segment_guest_gdt_never_overwrites_the_monitor)
{
	static uint64_t big[HV_GDT_ENTRIES];
	uint64_t cs = monitor_descriptor(&vm->mon, HV_SEL_CS);

	for (unsigned i = 0; i < HV_GDT_ENTRIES; i++)
		big[i] = FAKE_DESC_UDATA;
	monitor_load_gdt(&vm->mon, big, HV_GDT_ENTRIES, false);
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, HV_SEL_CS), cs);
	/* The monitor's CS: 64-bit code at real DPL 0. */
	ck_assert(cs & X86_DESC_L);
	ck_assert_uint_eq((cs >> X86_DESC_DPL_SHIFT) & 3, 0);
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, (HV_GDT_CS_INDEX - 1) << 3),
			  FAKE_DESC_UDATA | ACCESSED);
}
END_TEST

/* ---- CS and SS loads ---- */

struct load_case {
	bool ss; /* SS, else CS */
	uint64_t desc;
	unsigned cpl; /* real CPL the load is for */
	bool ok;
	unsigned fault; /* when not ok: the exception the load raises */
};

/* CS, SDM 2B RET/IRET: a non-conforming code segment needs DPL == RPL, a
 * conforming one DPL <= RPL, 64-bit (L = 1, D = 0), else #GP(selector);
 * then present, else #NP(selector).  SS, SDM 2A MOV/POP SS: a writable data
 * segment with DPL == CPL, else #GP(selector); then present, else
 * #SS(selector). */
static const struct load_case load_cases[] = {
	{ false, FAKE_DESC_KCODE, 1, true, 0 },
	{ false, FAKE_DESC_KCODE, 3, false, X86_EXC_GP },
	{ false, FAKE_DESC_UCODE, 3, true, 0 },
	{ false, FAKE_DESC_UCODE, 1, false, X86_EXC_GP },
	{ false, FAKE_DESC_KDATA, 1, false, X86_EXC_GP },       /* data */
	{ false, 0x00cf9a000000ffffull, 1, true, 0 },           /* 32-bit: compatibility mode */
	{ false, 0x008f9a000000ffffull, 1, true, 0 },           /* 16-bit: compatibility mode */
	{ false, 0x00ef9a000000ffffull, 1, false, X86_EXC_GP }, /* L = 1 with D = 1 */
	{ false, FAKE_DESC_KCODE & ~X86_DESC_P, 1, false, X86_EXC_NP }, /* not present */
	{ false, 0x00af9e000000ffffull, 1, true, 0 },                   /* conforming, DPL 0 */
	{ false, 0x00af9e000000ffffull, 3, true, 0 },
	{ false, 0x00affe000000ffffull, 3, true, 0 },           /* conforming, DPL 3 */
	{ false, 0x00affe000000ffffull, 1, false, X86_EXC_GP }, /* ... above the RPL */
	{ false, 0, 1, false, X86_EXC_GP },
	{ true, FAKE_DESC_KDATA, 1, true, 0 },
	{ true, FAKE_DESC_UDATA, 3, true, 0 },
	{ true, FAKE_DESC_KDATA, 3, false, X86_EXC_GP },
	{ true, FAKE_DESC_UDATA, 1, false, X86_EXC_GP },
	{ true, 0x00cf90000000ffffull, 1, false, X86_EXC_GP },         /* read-only data */
	{ true, FAKE_DESC_KCODE, 1, false, X86_EXC_GP },               /* code */
	{ true, FAKE_DESC_KDATA & ~X86_DESC_P, 1, false, X86_EXC_SS }, /* not present */
	{ true, 0, 1, false, X86_EXC_GP },
};

START_TEST(test_segment_load_checks_type_and_privilege)
{
	const struct load_case *c = &load_cases[_i];
	struct kvm_segment *seg = c->ss ? &vm->sregs.ss : &vm->sregs.cs, before = *seg;
	bool ok;

	fake_vm_set_desc(vm, 9, c->desc);
	ok = c->ss ? seg_load_ss(vm, 9 << 3, c->cpl) : seg_load_cs(vm, 9 << 3, c->cpl);
	ck_assert_int_eq(ok, c->ok);
	if (!c->ok) {
		ck_assert_mem_eq(seg, &before, sizeof(before));
		ck_assert_uint_eq(seg_load_fault(vm, 9 << 3, c->cpl, c->ss), c->fault);
		return;
	}
	/* The loaded selector carries the CPL as its RPL. */
	ck_assert_uint_eq(seg->selector, (9 << 3) | c->cpl);
	ck_assert_uint_eq(seg->present, 1);
	ck_assert_uint_eq(seg->unusable, 0);
	if (c->ss)
		ck_assert_uint_eq(seg->dpl, c->cpl);
	else
		ck_assert_uint_eq(seg->l, x86_desc_bit(c->desc, X86_DESC_L_BIT));
}
END_TEST

START_TEST(test_segment_null_ss_only_below_cpl3)
{
	/* SDM 3A §6.14.4: in 64-bit mode a null SS is legal at CPL < 3, with
	 * RPL = CPL; at CPL3 it is #GP. */
	ck_assert(seg_load_ss(vm, 0, 1));
	ck_assert_uint_eq(vm->sregs.ss.selector, 1);
	ck_assert_uint_eq(vm->sregs.ss.unusable, 1);
	ck_assert_uint_eq(vm->sregs.ss.dpl, 1);
	fake_vm_enter_user(vm);
	ck_assert(!seg_load_ss(vm, 0, 3));
	ck_assert(!seg_load_ss(vm, 3, 3));
	ck_assert_uint_eq(vm->sregs.ss.selector, FAKE_SEL_UDATA | 3);
}
END_TEST

START_TEST(test_segment_flat_matches_sysret)
{
	struct kvm_segment cs, ss;

	/* SDM 2B SYSRET: CS type 11, S, DPL 3, P, L, G, limit 4 GiB - 1; SS
	 * type 3, S, DPL 3, P, B, G. */
	seg_flat(&cs, 0x23, true, 3);
	seg_flat(&ss, 0x1b, false, 3);
	ck_assert_uint_eq(cs.selector, 0x23);
	ck_assert_uint_eq(cs.base, 0);
	ck_assert_uint_eq(cs.limit, 0xffffffff);
	ck_assert_uint_eq(cs.type, 11);
	ck_assert(cs.s && cs.present && cs.l && cs.g && !cs.db && !cs.unusable);
	ck_assert_uint_eq(cs.dpl, 3);
	ck_assert_uint_eq(ss.selector, 0x1b);
	ck_assert_uint_eq(ss.limit, 0xffffffff);
	ck_assert_uint_eq(ss.type, 3);
	ck_assert(ss.s && ss.present && ss.db && ss.g && !ss.l && !ss.unusable);
	ck_assert_uint_eq(ss.dpl, 3);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *segment_suite(void)
{
	Suite *s = suite_create("segment");
	TCase *tc = tcase_create("segment");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_segment_from_desc_decodes_every_field, 0, N(decode_cases));
	tcase_add_test(tc, test_segment_vcpl_is_3_only_for_rpl3_cs);
	tcase_add_loop_test(tc, test_segment_guest_gdt_translates_dpl0_to_dpl1, 0, N(xlate_cases));
	tcase_add_test(tc, test_segment_null_ldt_and_outside_selectors_read_zero);
	tcase_add_test(tc, test_segment_guest_gdt_never_overwrites_the_monitor);
	tcase_add_loop_test(tc, test_segment_load_checks_type_and_privilege, 0, N(load_cases));
	tcase_add_test(tc, test_segment_null_ss_only_below_cpl3);
	tcase_add_test(tc, test_segment_flat_matches_sysret);
	suite_add_tcase(s, tc);
	return s;
}
