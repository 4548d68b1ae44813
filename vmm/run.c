#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "boot.h"
#include "console.h"
#include "counters.h"
#include "devices.h"
#include "elf_load.h"
#include "kvm.h"
#include "log.h"
#include "mem.h"
#include "shadow.h"
#include "trap_setup.h"
#include "stats.h"
#include "status.h"
#include "trace.h"
#include "run.h"
#include "vcpu.h"
#include "vm.h"
#include "watchdog.h"
#include "x86.h"

#define RAM_SLOT 0

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void report(const struct vm *vm, int status, double secs)
{
	char line[1024];
	int n = 0;

	for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++)
		if (vm->vcpu.exits_by_reason[r] && n < (int)sizeof(line) - 64)
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%llu",
				      vcpu_exit_name(r),
				      (unsigned long long)vm->vcpu.exits_by_reason[r]);
	pr_info("exit: status=%d (%s) exits=%llu%s wall=%.6fs", status, vmm_status_name(status),
		(unsigned long long)vm->vcpu.exits, line, secs);
	if (vm->shadow) {
		uint64_t v[COUNTER_N];

		counters_read(vm, v);
		counters_line(line, sizeof(line), v);
		pr_info("shadow:%s", line);
	}
}

/* The shadow root's 512 entries, as the shadow MMU made them (the monitor
 * copies them into the real root before the guest runs on it). */
static const uint64_t *root_table(const struct vm *vm)
{
	return monitor_copy(&vm->mon) + (shadow_root(vm->shadow) - HV_MPA(HV_PG_POOL)) / 8;
}

/* --dump-shadow: every present entry of the shadow root. */
static void dump_shadow(const struct vm *vm, const char *when)
{
	mpa_t root = shadow_root(vm->shadow);
	const uint64_t *t = root_table(vm);
	unsigned present = 0;

	for (unsigned i = 0; i < X86_PT_ENTRIES; i++)
		present += t[i] & X86_PTE_P ? 1 : 0;
	fprintf(stderr, "shadowvm: shadow: %s root=0x%llx present=%u\n", when,
		(unsigned long long)root, present);
	for (unsigned i = 0; i < X86_PT_ENTRIES; i++)
		if (t[i] & X86_PTE_P)
			fprintf(stderr, "shadowvm: shadow:   pml4[%u]=0x%016llx%s\n", i,
				(unsigned long long)t[i],
				i == SHADOWVM_ABI_RESERVED_PML4_INDEX ? " (hypervisor)" : "");
}

/* Refuse a paging mode this /dev/kvm cannot run (backend.h), before any VM
 * exists; --ignore-backend turns the refusal into a warning. */
static int admit(struct vm *vm, const struct options *opts, char *err, size_t errlen)
{
	struct backend_facts f;
	char why[400];
	int rc;

	if ((rc = backend_read(&vm->kvm, &f, err, errlen)) != VMM_OK)
		return rc;
	if (backend_refuses(&f, opts->paging, why, sizeof(why)) == VMM_OK)
		return VMM_OK;
	if (opts->ignore_backend) {
		pr_warn("%s (--ignore-backend: running anyway)", why);
		return VMM_OK;
	}
	snprintf(err, errlen, "%s (--ignore-backend to try anyway)", why);
	return VMM_E_NOKVM;
}

static void irq_line(void *opaque, unsigned gsi, int level)
{
	kvm_irq_line(opaque, gsi, level);
}

/* Ctrl-A X on the console's thread: end the run as a watchdog would. */
static void console_quit(void *opaque)
{
	(void)opaque;
	watchdog_kick(VMM_E_QUIT);
}

static int setup(struct vm *vm, const struct options *opts, char *err, size_t errlen)
{
	const struct boot_args args = { .image = opts->image,
					.cmdline = opts->cmdline,
					.mods = opts->modules,
					.nmods = opts->nmodules,
					.mptable = !opts->no_mptable };
	int rc;

	if (mem_alloc(&vm->mem, opts->mem_size) != 0) {
		snprintf(err, errlen, "cannot map 0x%llx bytes of guest RAM",
			 (unsigned long long)opts->mem_size);
		return VMM_E_INTERNAL;
	}
	if ((rc = elf_load(opts->image, opts->mem_size, &vm->mem, &vm->img, err, errlen)) != VMM_OK)
		return rc;
	if ((rc = boot_setup_memory(&vm->mem, &vm->img, &args, err, errlen)) != VMM_OK)
		return rc;
	if ((rc = kvm_open(&vm->kvm, err, errlen)) != VMM_OK ||
	    (rc = admit(vm, opts, err, errlen)) != VMM_OK ||
	    (rc = kvm_create_vm(&vm->kvm, err, errlen)) != VMM_OK)
		return rc;
	/* the PC a Multiboot kernel probes: KVM's local APIC, IOAPIC, 8259s */
	if (vm->img.multiboot && (rc = kvm_create_irqchip(&vm->kvm, err, errlen)) != VMM_OK)
		return rc;
	if ((rc = kvm_set_memslot(&vm->kvm, RAM_SLOT, mem_gpa_to_mpa(0), vm->mem.size, vm->mem.host,
				  err, errlen)) != VMM_OK)
		return rc;
	if ((rc = vcpu_create(&vm->kvm, &vm->vcpu, err, errlen)) != VMM_OK)
		return rc;
	if ((rc = boot_setup_vcpu(vm->vcpu.fd, &vm->img, err, errlen)) != VMM_OK)
		return rc;
	devices_init(&vm->dev, stdout, vm->mem.size, vm->img.multiboot);
	for (unsigned u = 0; u < 2; u++)
		if (opts->disks[u].path && ide_attach(&vm->dev.ide, u, opts->disks[u].path,
						      opts->disks[u].ro, err, errlen) != 0)
			return VMM_E_NOINPUT;
	if (vm->kvm.irqchip) {
		devices_set_irq(&vm->dev, irq_line, &vm->kvm);
		/* COM1 is an interactive console: stdin is its receive side */
		vm->dev.com1.flush = true;
		if (console_start(&vm->console, STDIN_FILENO, &vm->dev.com1, console_quit, vm, err,
				  errlen) != 0)
			return VMM_E_INTERNAL;
	}
	if (opts->paging == PAGING_SHADOW)
		return trap_init(vm, opts->pool_pages, err, errlen);
	return VMM_OK;
}

static int trace_start(struct vm *vm, const struct options *opts, char *err, size_t errlen)
{
	struct trace_config cfg = { .path = opts->trace,
				    .events = opts->trace_events,
				    .format = opts->trace_text ? TRACE_FMT_TEXT : TRACE_FMT_JSON,
				    .stop = watchdog_stop };

	if (!opts->trace)
		return VMM_OK;
	vm->trace = trace_open(&cfg, err, errlen);
	return vm->trace ? VMM_OK : VMM_E_TRACE;
}

/* The last words of a run: the exit record, --stats, and status 73 if
 * either could not be written. */
static int finish(struct vm *vm, int rc, double secs)
{
	const char *last =
		vm->vcpu.exits && vm->vcpu.run ? vcpu_exit_name(vm->vcpu.run->exit_reason) : "none";

	if (trace_failed(vm->trace))
		rc = VMM_E_TRACE;
	trace_exit(vm->trace, rc, vm->vcpu.exits, last);
	if (vm->opts->stats && stats_write(vm, rc, secs) != 0)
		rc = VMM_E_TRACE;
	if (!trace_close(vm->trace))
		rc = VMM_E_TRACE;
	vm->trace = NULL;
	return rc;
}

int run_guest(const struct options *opts)
{
	static struct vm vm;
	char err[512] = "";
	double t0 = now();
	int rc;

	vm = (struct vm){ .opts = opts,
			  .kvm = { .sys_fd = -1, .vm_fd = -1 },
			  .vcpu = { .fd = -1 } };
	if ((rc = trace_start(&vm, opts, err, sizeof(err))) != VMM_OK ||
	    (rc = setup(&vm, opts, err, sizeof(err))) != VMM_OK) {
		pr_err("%s", err);
		goto out;
	}
	if (vm.shadow)
		trace_shadow_init(vm.trace, shadow_root(vm.shadow), shadow_vcr3(vm.shadow),
				  root_table(&vm), SHADOWVM_ABI_RESERVED_PML4_INDEX);
	if (trace_failed(vm.trace))
		goto out;
	pr_info("boot: image=%s protocol=%s entry=0x%llx loads=%u end=0x%llx ram=0x%llx paging=%s",
		opts->image, vm.img.multiboot ? "multiboot" : "abi",
		(unsigned long long)vm.img.entry, vm.img.nloads, (unsigned long long)vm.img.end,
		(unsigned long long)vm.mem.size, vm.shadow ? "shadow" : "hw");
	if (vm.img.multiboot)
		pr_info("boot: multiboot info=0x%x modules=%u end=0x%llx", vm.img.mb_info,
			opts->nmodules, (unsigned long long)vm.img.mb_end);
	if (vm.shadow && opts->dump_shadow)
		dump_shadow(&vm, "boot");
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
	if (vm.shadow && opts->dump_shadow)
		dump_shadow(&vm, "exit");
out:
	console_stop(&vm.console);
	rc = finish(&vm, rc, now() - t0);
	devices_fini(&vm.dev);
	trap_fini(&vm);
	vcpu_destroy(&vm.vcpu);
	kvm_close(&vm.kvm);
	mem_free(&vm.mem);
	return rc;
}

int run_check(const struct options *opts)
{
	struct elf_image img;
	char err[512];
	int rc = elf_load(opts->image, opts->mem_size, NULL, &img, err, sizeof(err));

	if (rc != VMM_OK) {
		pr_err("%s", err);
		return rc;
	}
	pr_info("check: image=%s protocol=%s entry=0x%llx loads=%u end=0x%llx fits ram=0x%llx",
		opts->image, img.multiboot ? "multiboot" : "abi", (unsigned long long)img.entry,
		img.nloads, (unsigned long long)img.end, (unsigned long long)opts->mem_size);
	return VMM_OK;
}
