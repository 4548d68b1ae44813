/* A struct vm with no KVM behind it, for the unit suites of the trap path
 * (segment, reflect, emulate, gva): guest RAM whose page tables identity-map
 * it, the monitor's pages, a real shadow MMU over both (its accessor is
 * tests/fake_mem.c), a guest GDT, IDT and TSS, and the register cache
 * (vm->regs, vm->sregs) standing in for the vCPU.  vm->vcpu.fd is -1, so
 * anything that would reach KVM fails; vcpu_msr() is faked here. */
#ifndef SHADOWVM_TESTS_FAKE_VM_H
#define SHADOWVM_TESTS_FAKE_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

struct vm;

/* Guest layout: GVA == GPA everywhere.  The first 2 MiB are 4 KiB pages,
 * all user-accessible and writable except the two supervisor-only stacks. */
#define FAKE_RAM_SIZE (4ull << 20)
#define FAKE_GDT_GPA 0x2000ull
#define FAKE_PML4_GPA 0x3000ull
#define FAKE_PT_GPA 0x6000ull /* maps GVA 0 .. 2 MiB */
#define FAKE_TSS_GPA 0x7000ull
#define FAKE_IDT_GPA 0x8000ull
#define FAKE_KSTACK_LO 0x10000ull /* supervisor-only: the kernel stack ... */
#define FAKE_RSP0 0x20000ull      /* ... whose top is TSS.RSP0 */
#define FAKE_IST1 0x30000ull      /* TSS.IST1, supervisor-only from 0x20000 */
#define FAKE_KRSP 0x1fe08ull      /* the kernel's RSP: not 16-byte aligned */
#define FAKE_URSP 0x50008ull      /* the user's RSP */
#define FAKE_KCODE 0x100000ull    /* RIP of the kernel */
#define FAKE_UCODE 0x180000ull    /* RIP of user code */
#define FAKE_HANDLER(v) (0x140000ull + (uint64_t)(v)*16) /* gate v's target */

/* Guest GDT selectors; the real GDT is monitor_load_gdt's copy of it. */
#define FAKE_SEL_KCODE 0x08u /* 64-bit code, DPL 0 */
#define FAKE_SEL_KDATA 0x10u /* data, DPL 0 */
#define FAKE_SEL_UDATA 0x18u /* data, DPL 3 */
#define FAKE_SEL_UCODE 0x20u /* 64-bit code, DPL 3 */
#define FAKE_SEL_TSS 0x28u   /* 64-bit TSS, busy: 16 bytes */
#define FAKE_GDT_ENTRIES 16u /* entries 7..15 free for tests */

#define FAKE_DESC_KCODE 0x00af9a000000ffffull
#define FAKE_DESC_KDATA 0x00cf92000000ffffull
#define FAKE_DESC_UDATA 0x00cff2000000ffffull
#define FAKE_DESC_UCODE 0x00affa000000ffffull

/* The VM at virtual CPL0 (real CS 0x09, SS 0x11), RIP = FAKE_KCODE,
 * RSP = FAKE_KRSP, IF set; every IDT gate an interrupt gate with DPL 0 to
 * FAKE_HANDLER(v) through FAKE_SEL_KCODE.  Aborts the test on failure. */
struct vm *fake_vm_open(void);
void fake_vm_close(struct vm *vm);

/* Switch to virtual CPL3: CS 0x23, SS 0x1b, RIP = FAKE_UCODE, RSP = FAKE_URSP. */
void fake_vm_enter_user(struct vm *vm);

/* Host pointer to guest-physical [gpa, gpa + len); aborts if outside RAM. */
void *fake_vm_ptr(struct vm *vm, gpa_t gpa, size_t len);
uint64_t fake_vm_read64(struct vm *vm, gpa_t gpa);

/* Put `bytes` at RIP (vm->regs.rip unchanged). */
void fake_vm_code(struct vm *vm, const void *bytes, size_t len);

/* Set guest GDT entry `index` and reload the real GDT from the guest's. */
void fake_vm_set_desc(struct vm *vm, unsigned index, uint64_t desc);

/* Set IDT gate `v`: type X86_GATE_TYPE_*, gate DPL, IST, present bit. */
void fake_vm_set_gate(struct vm *vm, unsigned v, uint64_t target, uint16_t sel, unsigned type,
		      unsigned dpl, unsigned ist, bool present);

/* The vCPU's own MSRs as vcpu_msr() reaches them (the tests link this fake
 * instead of vmm/kvm/vcpu.c): KERNEL_GS_BASE and TSC_AUX, zero at open; NULL,
 * and a failing vcpu_msr(), for any other index. */
uint64_t *fake_vm_vcpu_msr(uint32_t index);

/* Set the 4 KiB PTE flags of the page at gva (below 2 MiB), invlpg'd. */
void fake_vm_set_pte(struct vm *vm, gva_t gva, uint64_t flags);

#endif
