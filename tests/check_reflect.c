/* vmm/cpu/reflect.c on a fake struct vm (tests/fake_vm.h), no KVM: the frame
 * the hardware builds for each vector, CPL, gate type and IST (SDM 3A
 * §6.12, §6.14), the TSS.RSP0 stack switch from CPL3, RPL 1 selectors, the
 * faults of delivery itself and how they combine (SDM 3A table 6-5). */
#include <check.h>
#include <stdbool.h>

#include "fake_vm.h"
#include "reflect.h"
#include "status.h"
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

#define KCS (FAKE_SEL_KCODE | 1) /* the guest kernel's CS as the hardware has it */
#define KSS (FAKE_SEL_KDATA | 1)
#define UCS (FAKE_SEL_UCODE | 3)
#define USS (FAKE_SEL_UDATA | 3)

/* IDT error code: index = vector, IDT = 1, EXT (SDM 3A §6.13). */
#define IDT_ERR(v, ext) ((uint32_t)(v)*8 + 2 + (ext))

static struct x86_event hw(unsigned vector, bool has_err, uint32_t err)
{
	return (struct x86_event){ .vector = vector, .has_err = has_err, .err = err };
}

/* The frame at RSP, lowest address first: [error code,] RIP, CS, RFLAGS,
 * RSP, SS. */
static const uint64_t *frame(void)
{
	return fake_vm_ptr(vm, vm->regs.rsp, 6 * 8);
}

/* After a delivery that ended at gate `v`'s handler, the error code it pushed. */
static uint64_t delivered(unsigned v)
{
	ck_assert_uint_eq(vm->regs.rip, FAKE_HANDLER(v));
	return frame()[0];
}

/* ---- the frame, for every vector x CPL x gate type x IST ---- */

static const struct {
	unsigned vector;
	bool has_err;
} vectors[] = {
	{ X86_EXC_DE, false }, { X86_EXC_DB, false }, { X86_EXC_UD, false }, { X86_EXC_NM, false },
	{ X86_EXC_DF, true },  { X86_EXC_TS, true },  { X86_EXC_NP, true },  { X86_EXC_SS, true },
	{ X86_EXC_GP, true },  { X86_EXC_PF, true },  { X86_EXC_AC, true },  { X86_EXC_XM, false },
	{ 0x20, false },       { 0xff, false },
};
#define NVECTORS ((int)(sizeof(vectors) / sizeof(vectors[0])))

START_TEST(test_reflect_frame_for_vector_cpl_gate_and_ist)
{
	unsigned v = vectors[_i / 8].vector;
	bool has_err = vectors[_i / 8].has_err, user = _i & 1, trap = _i & 2, ist = _i & 4;
	const uint64_t flags = X86_RFLAGS_FIXED | X86_RFLAGS_IF | X86_RFLAGS_TF | X86_RFLAGS_NT |
			       X86_RFLAGS_RF | X86_RFLAGS_CF | (1ull << X86_RFLAGS_IOPL_SHIFT);
	uint64_t rip, rsp, top;
	const uint64_t *f;
	unsigned n = has_err;

	fake_vm_set_gate(vm, v, FAKE_HANDLER(v), FAKE_SEL_KCODE,
			 trap ? X86_GATE_TYPE_TRAP : X86_GATE_TYPE_INTR, 0, ist ? 1 : 0, true);
	if (user)
		fake_vm_enter_user(vm);
	vm->regs.rflags = flags;
	rip = vm->regs.rip, rsp = vm->regs.rsp;
	ck_assert_int_eq(reflect_event(vm, hw(v, has_err, 0x1234 & -(uint32_t)has_err)),
			 VM_CONTINUE);

	/* IST, else RSP0 on a change to CPL0, else the current stack; then
	 * aligned down to 16 bytes (SDM 3A §6.14.2, §6.14.4, §6.14.5). */
	top = ist ? FAKE_IST1 : user ? FAKE_RSP0 : FAKE_KRSP & ~0xfull;
	ck_assert_uint_eq(vm->regs.rsp, top - (5 + n) * 8);
	f = frame();
	if (has_err)
		ck_assert_uint_eq(f[0], 0x1234);
	ck_assert_uint_eq(f[n + 0], rip); /* a fault: the faulting instruction */
	ck_assert_uint_eq(f[n + 1], user ? UCS : KCS);
	ck_assert_uint_eq(f[n + 2], flags);
	ck_assert_uint_eq(f[n + 3], rsp);
	ck_assert_uint_eq(f[n + 4], user ? USS : KSS);

	/* The handler runs in the guest kernel: real CPL1, CS RPL 1. */
	ck_assert_uint_eq(vm->regs.rip, FAKE_HANDLER(v));
	ck_assert_uint_eq(vm->sregs.cs.selector, KCS);
	ck_assert_uint_eq(vm->sregs.cs.dpl, 1);
	if (user) {
		/* SDM 3A §6.14.4: a CPL change loads a null SS with RPL = CPL. */
		ck_assert_uint_eq(vm->sregs.ss.selector, 1);
		ck_assert_uint_eq(vm->sregs.ss.unusable, 1);
	} else {
		ck_assert_uint_eq(vm->sregs.ss.selector, KSS);
	}
	/* SDM 3A §6.12.1.3: TF, NT, RF (and VM) cleared; IF only through an
	 * interrupt gate. */
	ck_assert_uint_eq(vm->regs.rflags,
			  (flags & ~(X86_RFLAGS_TF | X86_RFLAGS_NT | X86_RFLAGS_RF)) &
				  ~(trap ? 0 : X86_RFLAGS_IF));
	ck_assert_uint_eq(vm->tstats.reflected, 1);
}
END_TEST

START_TEST(test_reflect_pf_sets_cr2)
{
	struct x86_event ev = hw(X86_EXC_PF, true, X86_PF_W | X86_PF_U);

	ev.cr2 = 0xdead000;
	fake_vm_enter_user(vm);
	ck_assert_int_eq(reflect_event(vm, ev), VM_CONTINUE);
	ck_assert_uint_eq(vm->virt.cr2, 0xdead000);
	ck_assert_uint_eq(delivered(X86_EXC_PF), X86_PF_W | X86_PF_U);
}
END_TEST

/* ---- software interrupts ---- */

START_TEST(test_reflect_int_n_frame_points_past_the_instruction)
{
	struct x86_event ev = { .vector = 0x80, .soft = true, .insn_len = 2 };
	uint64_t rip;

	fake_vm_set_gate(vm, 0x80, FAKE_HANDLER(0x80), FAKE_SEL_KCODE, X86_GATE_TYPE_TRAP, 3, 0,
			 true);
	fake_vm_enter_user(vm);
	rip = vm->regs.rip;
	ck_assert_int_eq(reflect_event(vm, ev), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, FAKE_HANDLER(0x80));
	ck_assert_uint_eq(vm->regs.rsp, FAKE_RSP0 - 5 * 8); /* no error code */
	ck_assert_uint_eq(frame()[0], rip + 2);
	ck_assert_uint_eq(frame()[1], UCS);
}
END_TEST

START_TEST(test_reflect_int_n_through_dpl0_gate_from_cpl3_is_gp)
{
	struct x86_event ev = { .vector = 0x80, .soft = true, .insn_len = 2 };
	uint64_t rip;

	fake_vm_enter_user(vm);
	rip = vm->regs.rip;
	/* SDM 2A INT n: gate DPL < CPL -> #GP(vector * 8 + 2), EXT = 0; a
	 * fault, so the frame's RIP is the int instruction's. */
	ck_assert_int_eq(reflect_event(vm, ev), VM_CONTINUE);
	ck_assert_uint_eq(delivered(X86_EXC_GP), IDT_ERR(0x80, 0));
	ck_assert_uint_eq(frame()[1], rip);
	ck_assert_uint_eq(frame()[2], UCS);
}
END_TEST

START_TEST(test_reflect_hardware_event_ignores_gate_dpl)
{
	/* The gate-DPL check applies to INT n, INT3 and INTO only. */
	fake_vm_enter_user(vm);
	ck_assert_int_eq(reflect_event(vm, hw(X86_EXC_UD, false, 0)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, FAKE_HANDLER(X86_EXC_UD));
}
END_TEST

/* ---- faults of delivery itself ---- */

/* #UD (benign, EXT = 1) through a bad gate: the fault delivery raises,
 * which is then delivered as itself (SDM 2A INT n, 64-bit mode exceptions;
 * SDM 3A table 6-5: benign first, handled serially). */
static const struct bad_gate {
	uint64_t target;
	uint16_t sel;
	unsigned type;
	bool present;
	unsigned vector;
	uint32_t err;
} bad_gates[] = {
	{ FAKE_HANDLER(6), FAKE_SEL_KCODE, X86_GATE_TYPE_INTR, false, X86_EXC_NP, IDT_ERR(6, 1) },
	{ FAKE_HANDLER(6), FAKE_SEL_KCODE, 0xc, true, X86_EXC_GP, IDT_ERR(6, 1) }, /* call gate */
	{ FAKE_HANDLER(6), FAKE_SEL_KCODE, 0x6, true, X86_EXC_GP, IDT_ERR(6, 1) }, /* 16-bit */
	/* Target code DPL > CPL: #GP(selector + EXT). */
	{ FAKE_HANDLER(6), FAKE_SEL_UCODE, X86_GATE_TYPE_INTR, true, X86_EXC_GP,
	  FAKE_SEL_UCODE + 1 },
	{ FAKE_HANDLER(6), 0, X86_GATE_TYPE_INTR, true, X86_EXC_GP, 1 },       /* null selector */
	{ FAKE_HANDLER(6), 0x78, X86_GATE_TYPE_INTR, true, X86_EXC_GP, 0x79 }, /* empty slot */
	{ FAKE_HANDLER(6), 0x48, X86_GATE_TYPE_INTR, true, X86_EXC_GP, 0x49 }, /* 32-bit code */
	{ FAKE_HANDLER(6), 0x50, X86_GATE_TYPE_INTR, true, X86_EXC_NP, 0x51 }, /* not present */
	/* IA-32e mode: a non-canonical gate target is #GP(EXT). */
	{ 0x0000800000000000ull, FAKE_SEL_KCODE, X86_GATE_TYPE_INTR, true, X86_EXC_GP, 1 },
};

START_TEST(test_reflect_bad_gate_faults)
{
	const struct bad_gate *g = &bad_gates[_i];
	uint64_t rip = vm->regs.rip;

	fake_vm_set_desc(vm, 9, 0x00cf9a000000ffffull);
	fake_vm_set_desc(vm, 10, FAKE_DESC_KCODE & ~X86_DESC_P);
	fake_vm_set_gate(vm, X86_EXC_UD, g->target, g->sel, g->type, 0, 0, g->present);
	ck_assert_int_eq(reflect_event(vm, hw(X86_EXC_UD, false, 0)), VM_CONTINUE);
	ck_assert_uint_eq(delivered(g->vector), g->err);
	/* Nothing of the failed delivery stuck: the frame is the #UD site's. */
	ck_assert_uint_eq(vm->regs.rsp, (FAKE_KRSP & ~0xfull) - 6 * 8);
	ck_assert_uint_eq(frame()[1], rip);
	ck_assert_uint_eq(frame()[2], KCS);
}
END_TEST

START_TEST(test_reflect_vector_past_idt_limit_is_gp)
{
	vm->virt.idt_limit = 0x40 * 16 - 1; /* gates 0 .. 0x3f */
	ck_assert_int_eq(reflect_event(vm, hw(0x40, false, 0)), VM_CONTINUE);
	ck_assert_uint_eq(delivered(X86_EXC_GP), IDT_ERR(0x40, 1));
}
END_TEST

START_TEST(test_reflect_pf_on_the_rsp0_stack_is_delivered_serially)
{
	/* #GP from CPL3, RSP0's page missing: the push faults #PF (a
	 * supervisor write), which after a contributory fault is handled
	 * serially (SDM 3A table 6-5) ... and faults again on the same stack:
	 * #PF then #PF is #DF, here through IST1. */
	fake_vm_set_pte(vm, FAKE_RSP0 - 8, 0);
	fake_vm_set_gate(vm, X86_EXC_DF, FAKE_HANDLER(8), FAKE_SEL_KCODE, X86_GATE_TYPE_INTR, 0, 1,
			 true);
	fake_vm_enter_user(vm);
	ck_assert_int_eq(reflect_event(vm, hw(X86_EXC_GP, true, 0)), VM_CONTINUE);
	ck_assert_uint_eq(delivered(X86_EXC_DF), 0);
	ck_assert_uint_eq(vm->regs.rsp, FAKE_IST1 - 6 * 8);
	ck_assert_uint_eq(frame()[2], UCS); /* nothing of the failed deliveries stuck */
	ck_assert_uint_eq(frame()[5], USS);
	ck_assert_uint_eq(vm->virt.cr2 >> X86_PAGE_SHIFT, (FAKE_RSP0 - 8) >> X86_PAGE_SHIFT);
}
END_TEST

START_TEST(test_reflect_contributory_pair_is_df)
{
	/* #GP while delivering #NP (both contributory) is #DF. */
	fake_vm_set_gate(vm, X86_EXC_NP, FAKE_HANDLER(11), 0, X86_GATE_TYPE_INTR, 0, 0, true);
	ck_assert_int_eq(reflect_event(vm, hw(X86_EXC_NP, true, 0x10)), VM_CONTINUE);
	ck_assert_uint_eq(delivered(X86_EXC_DF), 0);
}
END_TEST

START_TEST(test_reflect_fault_delivering_df_is_triple_fault)
{
	fake_vm_set_gate(vm, X86_EXC_DF, FAKE_HANDLER(8), FAKE_SEL_KCODE, X86_GATE_TYPE_INTR, 0, 0,
			 false);
	ck_assert_int_eq(reflect_event(vm, hw(X86_EXC_DF, true, 0)), VMM_E_CRASH);
	ck_assert_uint_eq(vm->tstats.reflected, 0);
}
END_TEST

START_TEST(test_reflect_pf_then_gp_is_df_then_triple)
{
	/* #PF whose gate lies past the IDT limit: #GP, and #PF then a
	 * contributory fault is #DF; #DF's gate is past the limit too. */
	vm->virt.idt_limit = X86_EXC_PF * 16 - 1;
	ck_assert_int_eq(reflect_event(vm, hw(X86_EXC_PF, true, 0)), VM_CONTINUE);
	ck_assert_uint_eq(delivered(X86_EXC_DF), 0);
	vm->virt.idt_limit = X86_EXC_DF * 16 - 1;
	ck_assert_int_eq(reflect_event(vm, hw(X86_EXC_PF, true, 0)), VMM_E_CRASH);
}
END_TEST

/* ---- a legacy-mode guest (EFER.LMA = 0): its 32-bit IDT and TSS ---- */

#define IDT32_GPA 0x3e0000ull
#define TSS32_GPA 0x3e1000ull
#define HANDLER32 0x141000u
#define CODE32_INDEX 9u /* a flat 32-bit code segment, DPL 0 */

/* The guest in protected mode with a 32-bit IDT of 8-byte gates to
 * HANDLER32 + v through a 32-bit code segment, and a 32-bit TSS whose
 * SS0:ESP0 is KDATA:FAKE_RSP0 (SDM 3A figures 6-2 and 8-2). */
static void legacy_guest(unsigned type, unsigned dpl)
{
	uint64_t *idt = fake_vm_ptr(vm, IDT32_GPA, 256 * 8);
	uint32_t *tss = fake_vm_ptr(vm, TSS32_GPA, 104);

	vm->virt.efer &= ~(X86_EFER_LMA | X86_EFER_LME);
	vm->virt.idt_base = IDT32_GPA;
	vm->virt.idt_limit = 256 * 8 - 1;
	vm->virt.tr_base = TSS32_GPA;
	fake_vm_set_desc(vm, CODE32_INDEX, 0x00cf9a000000ffffull);
	for (unsigned v = 0; v < 256; v++) {
		uint32_t off = HANDLER32 + v;

		idt[v] = (off & 0xffff) | ((uint64_t)(CODE32_INDEX << 3) << 16) |
			 ((uint64_t)type << 40) | ((uint64_t)dpl << 45) | (1ull << 47) |
			 ((uint64_t)(off >> 16) << 48);
	}
	tss[1] = (uint32_t)FAKE_RSP0;
	tss[2] = FAKE_SEL_KDATA;
}

static const uint32_t *frame32(void)
{
	return fake_vm_ptr(vm, (uint32_t)vm->regs.rsp, 6 * 4);
}

/* From the kernel: EFLAGS, CS, EIP, error code on the same stack, 4-byte
 * slots, no alignment; an interrupt gate clears IF. */
START_TEST(test_reflect_legacy_idt_from_the_kernel)
{
	uint64_t rsp = vm->regs.rsp, rip = vm->regs.rip, rflags = vm->regs.rflags;

	legacy_guest(X86_GATE_TYPE_INTR, 0);
	ck_assert_int_eq(reflect_event(vm, hw(X86_EXC_GP, true, 0x18)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, HANDLER32 + X86_EXC_GP);
	ck_assert_uint_eq(vm->sregs.cs.selector, (CODE32_INDEX << 3) | 1);
	ck_assert(!vm->sregs.cs.l && vm->sregs.cs.db);
	ck_assert_uint_eq(vm->regs.rsp, (uint32_t)rsp - 16);
	ck_assert_uint_eq(frame32()[0], 0x18);
	ck_assert_uint_eq(frame32()[1], (uint32_t)rip);
	ck_assert_uint_eq(frame32()[2], KCS);
	ck_assert_uint_eq(frame32()[3], (uint32_t)rflags);
	ck_assert(!(vm->regs.rflags & X86_RFLAGS_IF));
}
END_TEST

/* From CPL3 through a DPL-3 trap gate (int $0x80): the stack switch to
 * the 32-bit TSS's SS0:ESP0, SS and ESP pushed too, IF kept. */
START_TEST(test_reflect_legacy_idt_from_user_switches_to_esp0)
{
	struct x86_event ev = { .vector = 0x80, .soft = true, .insn_len = 2 };
	uint64_t rsp, rip;

	fake_vm_enter_user(vm);
	rsp = vm->regs.rsp, rip = vm->regs.rip;
	legacy_guest(X86_GATE_TYPE_TRAP, 3);
	ck_assert_int_eq(reflect_event(vm, ev), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, HANDLER32 + 0x80);
	ck_assert_uint_eq(vm->regs.rsp, FAKE_RSP0 - 20);
	ck_assert_uint_eq(vm->sregs.ss.selector, FAKE_SEL_KDATA | 1);
	ck_assert_uint_eq(frame32()[0], (uint32_t)rip + 2);
	ck_assert_uint_eq(frame32()[1], UCS);
	ck_assert_uint_eq(frame32()[3], (uint32_t)rsp);
	ck_assert_uint_eq(frame32()[4], USS);
	ck_assert(vm->regs.rflags & X86_RFLAGS_IF);
}
END_TEST

/* A 16-bit gate, a task gate: #GP(IDT, EXT), delivered as itself; an
 * 8-byte gate past the IDT limit. */
START_TEST(test_reflect_legacy_idt_refuses_what_it_does_not_deliver)
{
	uint64_t *idt;

	legacy_guest(X86_GATE_TYPE_INTR, 0);
	idt = fake_vm_ptr(vm, IDT32_GPA, 256 * 8);
	idt[X86_EXC_UD] = (idt[X86_EXC_UD] & ~(0xfull << 40)) | (0x6ull << 40); /* 16-bit */
	idt[X86_EXC_BP] = (idt[X86_EXC_BP] & ~(0xfull << 40)) | (0x5ull << 40); /* task */
	ck_assert_int_eq(reflect_event(vm, hw(X86_EXC_UD, false, 0)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, HANDLER32 + X86_EXC_GP);
	ck_assert_uint_eq(frame32()[0], IDT_ERR(X86_EXC_UD, 1));
	ck_assert_int_eq(reflect_event(vm, hw(X86_EXC_BP, false, 0)), VM_CONTINUE);
	ck_assert_uint_eq(frame32()[0], IDT_ERR(X86_EXC_BP, 1));
	/* gate 14 not whole: #GP(IDT) while delivering #PF is #DF (SDM 3A
	 * table 6-5), whose gate is */
	vm->virt.idt_limit = 14 * 8 + 6;
	ck_assert_int_eq(reflect_event(vm, hw(X86_EXC_PF, true, 0)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, HANDLER32 + X86_EXC_DF);
	ck_assert_uint_eq(frame32()[0], 0);
}
END_TEST

Suite *reflect_suite(void)
{
	Suite *s = suite_create("reflect");
	TCase *tc = tcase_create("reflect");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_reflect_frame_for_vector_cpl_gate_and_ist, 0, NVECTORS * 8);
	tcase_add_test(tc, test_reflect_pf_sets_cr2);
	tcase_add_test(tc, test_reflect_int_n_frame_points_past_the_instruction);
	tcase_add_test(tc, test_reflect_int_n_through_dpl0_gate_from_cpl3_is_gp);
	tcase_add_test(tc, test_reflect_hardware_event_ignores_gate_dpl);
	tcase_add_loop_test(tc, test_reflect_bad_gate_faults, 0,
			    (int)(sizeof(bad_gates) / sizeof(bad_gates[0])));
	tcase_add_test(tc, test_reflect_vector_past_idt_limit_is_gp);
	tcase_add_test(tc, test_reflect_pf_on_the_rsp0_stack_is_delivered_serially);
	tcase_add_test(tc, test_reflect_contributory_pair_is_df);
	tcase_add_test(tc, test_reflect_fault_delivering_df_is_triple_fault);
	tcase_add_test(tc, test_reflect_pf_then_gp_is_df_then_triple);
	tcase_add_test(tc, test_reflect_legacy_idt_from_the_kernel);
	tcase_add_test(tc, test_reflect_legacy_idt_from_user_switches_to_esp0);
	tcase_add_test(tc, test_reflect_legacy_idt_refuses_what_it_does_not_deliver);
	suite_add_tcase(s, tc);
	return s;
}
