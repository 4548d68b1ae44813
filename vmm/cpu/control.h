/* The guest's control registers under --paging=shadow: the virtual CR0,
 * CR3, CR4 and EFER (struct vcpu_virt) the guest believes are loaded, and
 * what they mean for the shadow MMU and for the real vCPU. */
#ifndef SHADOWVM_CONTROL_H
#define SHADOWVM_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

struct vm;

/* MOV to CR0/CR3/CR4 with the SDM's checks: true when taken, false for
 * #GP (the virtual state is then unchanged). */
bool control_write_cr0(struct vm *vm, uint64_t v);
bool control_write_cr3(struct vm *vm, uint64_t v);
bool control_write_cr4(struct vm *vm, uint64_t v);

/* WRMSR to IA32_EFER, as control_write_cr*: LME is fixed while paging is
 * on, LMA follows CR0.PG (SDM 3A §9.8.5). */
bool control_write_efer(struct vm *vm, uint64_t v);

/* Whether the guest is in legacy protected mode (EFER.LMA = 0): 32-bit
 * IDT gates and TSS, no L bit in its code segments. */
bool control_legacy(const struct vm *vm);

/* RFLAGS.AC into the shadow MMU's CPU state: the one control bit a guest
 * changes without trapping (POPF at CPL1, SDM 2B), needed by SMAP checks
 * of the walks a trap makes. */
void control_refresh_ac(struct vm *vm);

/* Everything at once, before the guest resumes: the shadow MMU's CPU state
 * from the virtual registers, then the real CR0/CR4/EFER/CR2 and CR3 (the
 * shadow root that state selects). */
void control_sync(struct vm *vm);

#endif
