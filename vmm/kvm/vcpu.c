#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "status.h"
#include "vcpu.h"
#include "watchdog.h"
#include "x86.h"

#define CONTINUE (-1)

static const char *const exit_names[] = {
	[KVM_EXIT_UNKNOWN] = "UNKNOWN",
	[KVM_EXIT_EXCEPTION] = "EXCEPTION",
	[KVM_EXIT_IO] = "IO",
	[KVM_EXIT_HYPERCALL] = "HYPERCALL",
	[KVM_EXIT_DEBUG] = "DEBUG",
	[KVM_EXIT_HLT] = "HLT",
	[KVM_EXIT_MMIO] = "MMIO",
	[KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
	[KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
	[KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
	[KVM_EXIT_INTR] = "INTR",
	[KVM_EXIT_SET_TPR] = "SET_TPR",
	[KVM_EXIT_TPR_ACCESS] = "TPR_ACCESS",
	[KVM_EXIT_NMI] = "NMI",
	[KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
	[KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT",
};

const char *vcpu_exit_name(uint32_t reason)
{
	if (reason < sizeof(exit_names) / sizeof(exit_names[0]) && exit_names[reason])
		return exit_names[reason];
	return "?";
}

/* KVM's supported CPUID less what shadowvm does not implement
 * (kvm_cpuid_restrict), the same in both paging modes. */
static int set_cpuid(struct kvm *kvm, struct vcpu *vcpu, char *err, size_t errlen)
{
	const struct kvm_cpuid2 *sup = kvm_supported_cpuid(kvm, err, errlen);
	size_t bytes;

	if (!sup)
		return VMM_E_INTERNAL;
	bytes = sizeof(*sup) + sup->nent * sizeof(sup->entries[0]);
	if (!(vcpu->own_cpuid = malloc(bytes))) {
		snprintf(err, errlen, "no memory for the vCPU's CPUID (%zu bytes)", bytes);
		return VMM_E_INTERNAL;
	}
	memcpy(vcpu->own_cpuid, sup, bytes);
	kvm_cpuid_restrict(vcpu->own_cpuid->entries, vcpu->own_cpuid->nent);
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, vcpu->own_cpuid) < 0) {
		snprintf(err, errlen, "setting the vCPU's CPUID: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	vcpu->cpuid = vcpu->own_cpuid;
	return VMM_OK;
}

int vcpu_create(struct kvm *kvm, struct vcpu *vcpu, char *err, size_t errlen)
{
	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->fd = ioctl(kvm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vcpu->fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VCPU: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	vcpu->run_size = (size_t)kvm->run_size;
	vcpu->run = mmap(NULL, vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		snprintf(err, errlen, "mmap of kvm_run: %s", strerror(errno));
		vcpu_destroy(vcpu);
		return VMM_E_INTERNAL;
	}
	if (set_cpuid(kvm, vcpu, err, errlen) != VMM_OK) {
		vcpu_destroy(vcpu);
		return VMM_E_INTERNAL;
	}
	return VMM_OK;
}

void vcpu_cpuid(const struct vcpu *vcpu, uint32_t leaf, uint32_t index, uint32_t out[4])
{
	const struct kvm_cpuid_entry2 *e =
		vcpu->cpuid ? kvm_cpuid_find(vcpu->cpuid->entries, vcpu->cpuid->nent, leaf, index)
			    : NULL;

	memset(out, 0, 4 * sizeof(uint32_t));
	if (e)
		out[0] = e->eax, out[1] = e->ebx, out[2] = e->ecx, out[3] = e->edx;
}

int vcpu_msr(const struct vcpu *vcpu, uint32_t index, uint64_t *val, bool set)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} m = {
		.h = { .nmsrs = 1 },
		.e = { .index = index, .data = set ? *val : 0 },
	};

	if (ioctl(vcpu->fd, set ? KVM_SET_MSRS : KVM_GET_MSRS, &m) != 1)
		return -1;
	*val = m.e.data;
	return 0;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	vcpu->cpuid = NULL;
	free(vcpu->own_cpuid);
	vcpu->own_cpuid = NULL;
	if (vcpu->run)
		munmap(vcpu->run, vcpu->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

/* Print the diagnosis line, then the register state. */
static void dump(struct vcpu *vcpu, const char *what)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
		pr_err("%s (registers unreadable: %s)", what, strerror(errno));
		return;
	}
	pr_err("%s at rip=0x%llx cr2=0x%llx", what, r.rip, s.cr2);
	/* On AMD, KVM answers a shutdown intercept by resetting the VMCB, so
	 * the state of the faulting instruction is gone. */
	if (s.cs.selector == 0xf000 && r.rip == 0xfff0)
		pr_err("  (the vCPU was reset by the shutdown; registers show the reset state)");
	pr_err("  rax=0x%016llx rbx=0x%016llx rcx=0x%016llx rdx=0x%016llx", r.rax, r.rbx, r.rcx,
	       r.rdx);
	pr_err("  rsi=0x%016llx rdi=0x%016llx rbp=0x%016llx rsp=0x%016llx", r.rsi, r.rdi, r.rbp,
	       r.rsp);
	pr_err("  r8 =0x%016llx r9 =0x%016llx r10=0x%016llx r11=0x%016llx", r.r8, r.r9, r.r10,
	       r.r11);
	pr_err("  r12=0x%016llx r13=0x%016llx r14=0x%016llx r15=0x%016llx", r.r12, r.r13, r.r14,
	       r.r15);
	pr_err("  rflags=0x%llx cs=0x%x ss=0x%x cr0=0x%llx cr3=0x%llx cr4=0x%llx efer=0x%llx",
	       r.rflags, s.cs.selector, s.ss.selector, s.cr0, s.cr3, s.cr4, s.efer);
}

static int exit_io(struct vcpu *vcpu, struct devices *dev)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool in = run->io.direction == KVM_EXIT_IO_IN;
	int rc = CONTINUE;

	if (run->io.size != 1 && run->io.size != 2 && run->io.size != 4)
		return CONTINUE;
	if (run->io.data_offset + (uint64_t)run->io.size * run->io.count > vcpu->run_size) {
		dump(vcpu, "KVM reported port I/O data outside kvm_run");
		return VMM_E_INTERNAL;
	}
	uint8_t *first = data;

	if (in && vcpu->trap.in_replay &&
	    vcpu->trap.in_replay(vcpu->trap.opaque, run->io.port, run->io.size, run->io.count,
				 data))
		return CONTINUE;
	for (uint32_t i = 0; i < run->io.count && rc == CONTINUE; i++, data += run->io.size) {
		uint16_t port = run->io.port;
		if (!in && vcpu->trap.fn && port >= vcpu->trap.lo && port <= vcpu->trap.hi)
			rc = vcpu->trap.fn(vcpu->trap.opaque, port);
		else
			rc = devices_pio(dev, port, in, data, run->io.size);
	}
	/* only a read that changed device state needs keeping for a retry:
	 * this spares the status polls the register reads in_done makes */
	if (in && rc == CONTINUE && vcpu->trap.in_done &&
	    devices_read_consumes(dev, run->io.port, run->io.size))
		vcpu->trap.in_done(vcpu->trap.opaque, run->io.port, run->io.size, run->io.count,
				   first);
	return rc;
}

static int exit_hlt(struct vcpu *vcpu, struct devices *dev)
{
	struct kvm_regs r;

	(void)dev;
	/* No device raises interrupts, so a halted vCPU never wakes. */
	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) == 0 && (r.rflags & X86_RFLAGS_IF))
		dump(vcpu,
		     "guest halted forever: hlt with interrupts on, but no device interrupts");
	else
		dump(vcpu, "guest halted forever: hlt with interrupts off");
	return VMM_E_HALTED;
}

static int exit_shutdown(struct vcpu *vcpu, struct devices *dev)
{
	(void)dev;
	dump(vcpu, "guest crash: triple fault (KVM_EXIT_SHUTDOWN)");
	return VMM_E_CRASH;
}

static int exit_mmio(struct vcpu *vcpu, struct devices *dev)
{
	char what[160];

	(void)dev;
	snprintf(what, sizeof(what), "guest crash: %s of %u bytes at unbacked GPA 0x%llx",
		 vcpu->run->mmio.is_write ? "write" : "read", vcpu->run->mmio.len,
		 vcpu->run->mmio.phys_addr);
	dump(vcpu, what);
	return VMM_E_CRASH;
}

static int exit_fail_entry(struct vcpu *vcpu, struct devices *dev)
{
	char what[160];

	(void)dev;
	snprintf(what, sizeof(what), "guest crash: VM entry failed, hardware reason 0x%llx",
		 vcpu->run->fail_entry.hardware_entry_failure_reason);
	dump(vcpu, what);
	return VMM_E_CRASH;
}

static int exit_internal(struct vcpu *vcpu, struct devices *dev)
{
	char what[160];

	(void)dev;
	snprintf(what, sizeof(what), "guest crash: KVM internal error, suberror %u",
		 vcpu->run->internal.suberror);
	dump(vcpu, what);
	return VMM_E_CRASH;
}

typedef int (*exit_fn)(struct vcpu *vcpu, struct devices *dev);

static const exit_fn exit_handlers[] = {
	[KVM_EXIT_IO] = exit_io,
	[KVM_EXIT_HLT] = exit_hlt,
	[KVM_EXIT_SHUTDOWN] = exit_shutdown,
	[KVM_EXIT_MMIO] = exit_mmio,
	[KVM_EXIT_FAIL_ENTRY] = exit_fail_entry,
	[KVM_EXIT_INTERNAL_ERROR] = exit_internal,
};

static int dispatch(struct vcpu *vcpu, struct devices *dev)
{
	uint32_t reason = vcpu->run->exit_reason;
	char what[96];

	if (reason < sizeof(exit_handlers) / sizeof(exit_handlers[0]) && exit_handlers[reason])
		return exit_handlers[reason](vcpu, dev);
	snprintf(what, sizeof(what), "guest crash: unexpected exit %s (%u)", vcpu_exit_name(reason),
		 reason);
	dump(vcpu, what);
	return VMM_E_CRASH;
}

/* KVM_RUN until it returns with an exit, which is counted: CONTINUE, the
 * watchdog's status once it fired, or VMM_E_INTERNAL. */
static int run_once(struct vcpu *vcpu)
{
	int rc;

	for (;;) {
		if ((rc = watchdog_fired()) != 0)
			return rc;
		if (ioctl(vcpu->fd, KVM_RUN, 0) == 0)
			break;
		if (errno != EINTR && errno != EAGAIN) {
			pr_err("KVM_RUN: %s", strerror(errno));
			return VMM_E_INTERNAL;
		}
	}
	vcpu->exits++;
	vcpu->exits_by_reason[vcpu->run->exit_reason < VCPU_EXIT_REASONS ? vcpu->run->exit_reason
									 : 0]++;
	if (vcpu->trap.exited)
		vcpu->trap.exited(vcpu->trap.opaque);
	return CONTINUE;
}

int vcpu_run(struct vcpu *vcpu, struct devices *dev)
{
	int rc;

	while ((rc = run_once(vcpu)) == CONTINUE && (rc = dispatch(vcpu, dev)) == CONTINUE)
		;
	if (rc == VMM_E_TIMEOUT)
		dump(vcpu, "timeout: guest stopped by --timeout");
	else if (rc >= VMM_E_SIGNAL)
		pr_err("guest stopped by signal %d", rc - VMM_E_SIGNAL);
	return rc;
}

int vcpu_run_to_port(struct vcpu *vcpu, uint16_t port)
{
	struct kvm_run *run = vcpu->run;
	char what[128];

	if (run_once(vcpu) != CONTINUE)
		return -1;
	if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
	    run->io.port == port)
		return 0;
	snprintf(what, sizeof(what), "monitor: expected an exit at port 0x%x, got %s", port,
		 vcpu_exit_name(run->exit_reason));
	dump(vcpu, what);
	return -1;
}
