/* The KVM system and VM file descriptors: open, check, create, memslots. */
#ifndef SHADOWVM_KVM_H
#define SHADOWVM_KVM_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

struct kvm {
	int sys_fd;    /* /dev/kvm */
	int vm_fd;
	int run_size;  /* KVM_GET_VCPU_MMAP_SIZE */
};

/* Open /dev/kvm, check the API version and every capability shadowvm uses,
 * and create a VM.  Returns VMM_OK, VMM_E_NOKVM (absent, not permitted, too
 * old) or VMM_E_INTERNAL, with one line in err. */
int kvm_open(struct kvm *kvm, char *err, size_t errlen);

/* Back guest-physical [mpa, mpa + size) with host memory at `host`. */
int kvm_set_memslot(struct kvm *kvm, uint32_t slot, mpa_t mpa, uint64_t size, void *host,
		    char *err, size_t errlen);

void kvm_close(struct kvm *kvm);

#endif
