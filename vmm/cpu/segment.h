/* Segment registers of the deprivileged guest (DESIGN.md §2): the real CPL
 * of the guest kernel is 1, its user code's 3; descriptors come from the real
 * GDT, the monitor's translated copy of the guest's. */
#ifndef SHADOWVM_SEGMENT_H
#define SHADOWVM_SEGMENT_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;

/* The guest's virtual CPL: 3 for user code, 0 for its kernel (real CPL 1). */
unsigned seg_vcpl(const struct vm *vm);

/* The real CPL for a virtual one. */
static inline unsigned seg_real_cpl(unsigned vcpl)
{
	return vcpl == 3 ? 3 : 1;
}

/* A kvm_segment from an 8-byte descriptor (SDM 3A §3.4.5). */
void seg_from_desc(struct kvm_segment *s, uint16_t sel, uint64_t desc);

/* Load CS with `sel` for real CPL `cpl` from the real GDT; false if the
 * descriptor is not a present 64-bit code segment that CPL may run (DPL ==
 * CPL, or DPL <= CPL when conforming). */
bool seg_load_cs(struct vm *vm, uint16_t sel, unsigned cpl);

/* Load SS with `sel` at real CPL `cpl`: a writable data segment, or a null
 * selector (allowed below CPL3 in 64-bit mode, SDM 3A §6.14.4). */
bool seg_load_ss(struct vm *vm, uint16_t sel, unsigned cpl);

/* The exception a refused seg_load_cs (ss false) or seg_load_ss of `sel` at
 * `cpl` raises, with the selector as error code: #NP for a code segment or
 * #SS for a stack that is right but not present, else #GP (SDM 2A MOV, 2B
 * RET/IRET). */
unsigned seg_load_fault(const struct vm *vm, uint16_t sel, unsigned cpl, bool ss);

/* Flat 64-bit code and data segments, as SYSCALL and SYSRET load them
 * (SDM 2B SYSCALL/SYSRET operation). */
void seg_flat(struct kvm_segment *s, uint16_t sel, bool code, unsigned dpl);

#endif
