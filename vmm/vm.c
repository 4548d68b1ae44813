#include <stdio.h>
#include <string.h>
#include <time.h>

#include "boot.h"
#include "devices.h"
#include "elf_load.h"
#include "kvm.h"
#include "log.h"
#include "mem.h"
#include "status.h"
#include "vcpu.h"
#include "vm.h"
#include "watchdog.h"

#define RAM_SLOT 0

struct vm {
	struct kvm kvm;
	struct guest_mem mem;
	struct vcpu vcpu;
	struct devices dev;
	struct elf_image img;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void report(const struct vm *vm, int status, double secs)
{
	char line[512];
	int n = 0;

	for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++)
		if (vm->vcpu.exits_by_reason[r] && n < (int)sizeof(line) - 64)
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%llu", vcpu_exit_name(r),
				      (unsigned long long)vm->vcpu.exits_by_reason[r]);
	pr_info("exit: status=%d (%s) exits=%llu%s wall=%.6fs", status, vmm_status_name(status),
		(unsigned long long)vm->vcpu.exits, line, secs);
}

static int setup(struct vm *vm, const struct options *opts, char *err, size_t errlen)
{
	int rc;

	if (mem_alloc(&vm->mem, opts->mem_size) != 0) {
		snprintf(err, errlen, "cannot map 0x%llx bytes of guest RAM",
			 (unsigned long long)opts->mem_size);
		return VMM_E_INTERNAL;
	}
	if ((rc = elf_load(opts->image, opts->mem_size, &vm->mem, &vm->img, err, errlen)) != VMM_OK)
		return rc;
	if ((rc = boot_setup_memory(&vm->mem, &vm->img, opts->cmdline, err, errlen)) != VMM_OK)
		return rc;
	if ((rc = kvm_open(&vm->kvm, err, errlen)) != VMM_OK)
		return rc;
	if ((rc = kvm_set_memslot(&vm->kvm, RAM_SLOT, mem_gpa_to_mpa(0), vm->mem.size, vm->mem.host,
				  err, errlen)) != VMM_OK)
		return rc;
	if ((rc = vcpu_create(&vm->kvm, &vm->vcpu, err, errlen)) != VMM_OK)
		return rc;
	return boot_setup_vcpu(vm->vcpu.fd, &vm->img, err, errlen);
}

int vm_run(const struct options *opts)
{
	struct vm vm = { .kvm = { .sys_fd = -1, .vm_fd = -1 }, .vcpu = { .fd = -1 } };
	char err[512] = "";
	double t0;
	int rc;

	if ((rc = setup(&vm, opts, err, sizeof(err))) != VMM_OK) {
		pr_err("%s", err);
		goto out;
	}
	pr_info("boot: image=%s entry=0x%llx loads=%u end=0x%llx ram=0x%llx paging=hw", opts->image,
		(unsigned long long)vm.img.entry, vm.img.nloads, (unsigned long long)vm.img.end,
		(unsigned long long)vm.mem.size);
	devices_init(&vm.dev, stdout);
	if (watchdog_arm(vm.vcpu.run, opts->timeout) != 0) {
		pr_err("cannot arm the watchdog");
		rc = VMM_E_INTERNAL;
		goto out;
	}
	t0 = now();
	rc = vcpu_run(&vm.vcpu, &vm.dev);
	watchdog_disarm();
	fflush(stdout);
	report(&vm, rc, now() - t0);
out:
	vcpu_destroy(&vm.vcpu);
	kvm_close(&vm.kvm);
	mem_free(&vm.mem);
	return rc;
}

int vm_check(const struct options *opts)
{
	struct elf_image img;
	char err[512];
	int rc = elf_load(opts->image, opts->mem_size, NULL, &img, err, sizeof(err));

	if (rc != VMM_OK) {
		pr_err("%s", err);
		return rc;
	}
	pr_info("check: image=%s entry=0x%llx loads=%u end=0x%llx fits ram=0x%llx", opts->image,
		(unsigned long long)img.entry, img.nloads, (unsigned long long)img.end,
		(unsigned long long)opts->mem_size);
	return VMM_OK;
}
