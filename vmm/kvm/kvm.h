/* The KVM system and VM file descriptors: open, check, create, memslots. */
#ifndef SHADOWVM_KVM_H
#define SHADOWVM_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

struct kvm_cpuid2;
struct kvm_cpuid_entry2;

struct kvm {
	int sys_fd; /* /dev/kvm */
	int vm_fd;
	int run_size;             /* KVM_GET_VCPU_MMAP_SIZE */
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, read once */
	bool irqchip;             /* kvm_create_irqchip made one */
};

/* The capabilities shadowvm uses, checked by kvm_create_vm. */
struct kvm_cap_use {
	int cap;
	const char *name;
};
extern const struct kvm_cap_use kvm_caps[];
extern const unsigned kvm_ncaps;

/* Open /dev/kvm and check the API version.  Returns VMM_OK, or VMM_E_NOKVM
 * (absent, not permitted, too old) with one line in err; on failure the
 * descriptors are closed. */
int kvm_open(struct kvm *kvm, char *err, size_t errlen);

/* KVM_GET_SUPPORTED_CPUID of the open /dev/kvm, read on the first call and
 * kept until kvm_close (the backend's facts and the vCPU's CPUID both come
 * from it).  NULL with one line in err if KVM refuses. */
const struct kvm_cpuid2 *kvm_supported_cpuid(struct kvm *kvm, char *err, size_t errlen);

/* The entry of leaf/index in a CPUID table of n entries (the index counts
 * only where KVM flags it significant), or NULL. */
const struct kvm_cpuid_entry2 *kvm_cpuid_find(const struct kvm_cpuid_entry2 *t, unsigned n,
					      uint32_t leaf, uint32_t index);

/* Withdraw from a CPUID table what shadowvm does not implement in both
 * paging modes, so that a guest sees one CPU whichever it runs under
 * (README, "The CPU a guest sees"): MONITOR/MWAIT, VMX and SVM, PCID and
 * INVPCID, x2APIC, PKU (CR4.PKE is not shadowed) and LA57 (5-level guest
 * paging is not offered).  Returns how many bits it cleared. */
unsigned kvm_cpuid_restrict(struct kvm_cpuid_entry2 *t, unsigned n);

/* KVM's in-kernel interrupt controllers (KVM_CREATE_IRQCHIP): a local
 * APIC at 0xfee00000, an IOAPIC at 0xfec00000 and the two 8259s, served
 * without an exit.  Before the first vCPU.  VMM_OK, VMM_E_NOKVM without
 * KVM_CAP_IRQCHIP, VMM_E_INTERNAL, with one line in err. */
int kvm_create_irqchip(struct kvm *kvm, char *err, size_t errlen);

/* Set the level of interrupt line `gsi` (an ISA IRQ: the in-kernel 8259s
 * and the IOAPIC pin of that number see it).  Thread-safe; a failure is a
 * warning. */
void kvm_irq_line(struct kvm *kvm, unsigned gsi, int level);

/* Where KVM's in-kernel IOAPIC and local APIC answer (their reset bases). */
#define VMM_IOAPIC_GPA 0xfec00000ull
#define VMM_LAPIC_GPA 0xfee00000ull

/* Check every capability shadowvm uses and create the VM.  VMM_OK,
 * VMM_E_NOKVM (a capability missing) or VMM_E_INTERNAL, with one line in
 * err; the caller closes with kvm_close either way. */
int kvm_create_vm(struct kvm *kvm, char *err, size_t errlen);

/* Back guest-physical [mpa, mpa + size) with host memory at `host`. */
int kvm_set_memslot(struct kvm *kvm, uint32_t slot, mpa_t mpa, uint64_t size, void *host, char *err,
		    size_t errlen);

void kvm_close(struct kvm *kvm);

#endif
