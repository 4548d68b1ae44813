#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm.h"
#include "log.h"
#include "status.h"
#include "x86.h"

#define KVM_PATH "/dev/kvm"

static int open_dev(struct kvm *kvm, char *err, size_t errlen)
{
	kvm->sys_fd = open(KVM_PATH, O_RDWR | O_CLOEXEC);
	if (kvm->sys_fd >= 0)
		return VMM_OK;
	if (errno == ENOENT || errno == ENXIO || errno == ENODEV)
		snprintf(err, errlen,
			 "%s: not found: this machine offers no KVM (run under scripts/with-kvm)",
			 KVM_PATH);
	else if (errno == EACCES || errno == EPERM)
		snprintf(
			err, errlen,
			"%s: permission denied (join the kvm group, or run under scripts/with-kvm)",
			KVM_PATH);
	else
		snprintf(err, errlen, "%s: cannot open: %s", KVM_PATH, strerror(errno));
	return VMM_E_NOKVM;
}

const struct kvm_cap_use kvm_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
};
const unsigned kvm_ncaps = sizeof(kvm_caps) / sizeof(kvm_caps[0]);

static int check_api(struct kvm *kvm, char *err, size_t errlen)
{
	int v = ioctl(kvm->sys_fd, KVM_GET_API_VERSION, 0);

	if (v != KVM_API_VERSION) {
		snprintf(err, errlen, "%s: KVM API version %d, need %d", KVM_PATH, v,
			 KVM_API_VERSION);
		return VMM_E_NOKVM;
	}
	return VMM_OK;
}

static int check_caps(struct kvm *kvm, char *err, size_t errlen)
{
	for (unsigned i = 0; i < kvm_ncaps; i++) {
		if (ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, kvm_caps[i].cap) <= 0) {
			snprintf(err, errlen, "%s: missing capability %s", KVM_PATH,
				 kvm_caps[i].name);
			return VMM_E_NOKVM;
		}
	}
	return VMM_OK;
}

int kvm_open(struct kvm *kvm, char *err, size_t errlen)
{
	int rc;

	kvm->vm_fd = -1;
	if ((rc = open_dev(kvm, err, errlen)) != VMM_OK)
		return rc;
	if ((rc = check_api(kvm, err, errlen)) != VMM_OK)
		kvm_close(kvm);
	return rc;
}

int kvm_create_vm(struct kvm *kvm, char *err, size_t errlen)
{
	int rc;

	if ((rc = check_caps(kvm, err, errlen)) != VMM_OK)
		return rc;
	kvm->run_size = ioctl(kvm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (kvm->run_size < (int)sizeof(struct kvm_run)) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	kvm->vm_fd = ioctl(kvm->sys_fd, KVM_CREATE_VM, 0);
	if (kvm->vm_fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	/* Intel needs three pages for the real-mode TSS even though shadowvm
	 * never enters real mode; place them at the very top of 4 GiB, far
	 * from guest RAM.  AMD ignores it. */
	if (ioctl(kvm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) {
		snprintf(err, errlen, "KVM_SET_TSS_ADDR: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	return VMM_OK;
}

int kvm_create_irqchip(struct kvm *kvm, char *err, size_t errlen)
{
	if (ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) <= 0) {
		snprintf(err, errlen,
			 "KVM lacks KVM_CAP_IRQCHIP (the in-kernel local APIC, IOAPIC "
			 "and 8259s a Multiboot kernel is given)");
		return VMM_E_NOKVM;
	}
	if (ioctl(kvm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		snprintf(err, errlen, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	kvm->irqchip = true;
	return VMM_OK;
}

void kvm_irq_line(struct kvm *kvm, unsigned gsi, int level)
{
	struct kvm_irq_level l = { .irq = gsi, .level = (uint32_t)level };

	if (ioctl(kvm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		pr_warn("KVM_IRQ_LINE %u level %d: %s", gsi, level, strerror(errno));
}

int kvm_set_memslot(struct kvm *kvm, uint32_t slot, mpa_t mpa, uint64_t size, void *host, char *err,
		    size_t errlen)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = mpa,
		.memory_size = size,
		.userspace_addr = (hva_t)(uintptr_t)host,
	};

	if (ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		snprintf(err, errlen,
			 "KVM_SET_USER_MEMORY_REGION slot %u mpa 0x%llx size 0x%llx: %s", slot,
			 (unsigned long long)mpa, (unsigned long long)size, strerror(errno));
		return VMM_E_INTERNAL;
	}
	return VMM_OK;
}

const struct kvm_cpuid2 *kvm_supported_cpuid(struct kvm *kvm, char *err, size_t errlen)
{
	/* the table's size is not known up front: grow it while KVM says E2BIG */
	for (unsigned n = 64; !kvm->cpuid && n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		if (!c)
			break;
		c->nent = n;
		if (ioctl(kvm->sys_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			kvm->cpuid = c;
			break;
		}
		free(c);
		if (errno != E2BIG) {
			snprintf(err, errlen, "%s: KVM_GET_SUPPORTED_CPUID: %s", KVM_PATH,
				 strerror(errno));
			return NULL;
		}
	}
	if (!kvm->cpuid)
		snprintf(err, errlen,
			 "%s: KVM_GET_SUPPORTED_CPUID: no table of up to 4096 entries fits",
			 KVM_PATH);
	return kvm->cpuid;
}

const struct kvm_cpuid_entry2 *kvm_cpuid_find(const struct kvm_cpuid_entry2 *t, unsigned n,
					      uint32_t leaf, uint32_t index)
{
	for (unsigned i = 0; i < n; i++)
		if (t[i].function == leaf &&
		    (!(t[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || t[i].index == index))
			return &t[i];
	return NULL;
}

static const struct {
	uint32_t leaf;
	unsigned reg; /* 0 EAX .. 3 EDX */
	uint32_t bits;
} withdrawn[] = {
	{ X86_CPUID_FEATURES, 2, X86_BIT(3) | X86_BIT(5) | X86_BIT(17) | X86_BIT(21) },
	{ X86_CPUID_EXT_FEATURES, 1, X86_BIT(10) },                           /* INVPCID */
	{ X86_CPUID_EXT_FEATURES, 2, X86_BIT(3) | X86_BIT(4) | X86_BIT(16) }, /* PKU OSPKE LA57 */
	{ X86_CPUID_EXT_INFO, 2, X86_BIT(2) },                                /* SVM */
};

unsigned kvm_cpuid_restrict(struct kvm_cpuid_entry2 *t, unsigned n)
{
	unsigned cleared = 0;

	for (unsigned i = 0; i < n; i++)
		for (size_t w = 0; w < sizeof(withdrawn) / sizeof(withdrawn[0]); w++) {
			uint32_t *r[4] = { &t[i].eax, &t[i].ebx, &t[i].ecx, &t[i].edx };

			/* leaf 7: subleaf 0 only holds these flags */
			if (t[i].function != withdrawn[w].leaf ||
			    (withdrawn[w].leaf == X86_CPUID_EXT_FEATURES && t[i].index != 0))
				continue;
			cleared += (unsigned)__builtin_popcount(*r[withdrawn[w].reg] &
								withdrawn[w].bits);
			*r[withdrawn[w].reg] &= ~withdrawn[w].bits;
		}
	return cleared;
}

void kvm_close(struct kvm *kvm)
{
	free(kvm->cpuid);
	kvm->cpuid = NULL;
	if (kvm->vm_fd >= 0)
		close(kvm->vm_fd);
	if (kvm->sys_fd >= 0)
		close(kvm->sys_fd);
	kvm->vm_fd = kvm->sys_fd = -1;
}
