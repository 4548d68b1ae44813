/* Shadow mode's set-up (DESIGN.md §2): the guest-memory accessor the shadow
 * MMU reads through, the CPU features it may use, the monitor's memslot,
 * and the deprivileged boot state. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "control.h"
#include "fillmon.h"
#include "log.h"
#include "multiboot.h"
#include "segment.h"
#include "shadow.h"
#include "status.h"
#include "trace.h"
#include "trap.h"
#include "trap_setup.h"
#include "vm.h"
#include "x86.h"

/* ---- guest memory accessor for the shadow MMU ----------------------------------- */

static uint64_t *pte_ptr(void *opaque, gpa_t gpa)
{
	struct vm *vm = opaque;
	return (gpa & 7) ? NULL : mem_gpa(&vm->mem, gpa, 8);
}

static int acc_read(void *opaque, gpa_t gpa, uint64_t *val)
{
	return shadow_mem_load(pte_ptr(opaque, gpa), val);
}

static int acc_write(void *opaque, gpa_t gpa, uint64_t val)
{
	return shadow_mem_store(pte_ptr(opaque, gpa), val);
}

static int acc_cmpxchg(void *opaque, gpa_t gpa, uint64_t *expected, uint64_t desired)
{
	return shadow_mem_cmpxchg(pte_ptr(opaque, gpa), expected, desired);
}

/* ---- set-up ------------------------------------------------------------------------ */

static bool cpuid_has(const uint32_t regs[4], unsigned reg, unsigned bit)
{
	return regs[reg] >> bit & 1;
}

enum { EAX, EBX, ECX, EDX };

static void probe_cpu(struct vm *vm)
{
	uint32_t l1[4], l7[4], e1[4], e8[4];

	vcpu_cpuid(&vm->vcpu, X86_CPUID_FEATURES, 0, l1);
	vcpu_cpuid(&vm->vcpu, X86_CPUID_EXT_FEATURES, 0, l7);
	vcpu_cpuid(&vm->vcpu, X86_CPUID_EXT_INFO, 0, e1);
	vcpu_cpuid(&vm->vcpu, X86_CPUID_ADDR_SIZES, 0, e8);
	vm->maxphyaddr = (e8[EAX] & 0xff) ? e8[EAX] & 0xff : 36;
	vm->gbpages = cpuid_has(e1, EDX, X86_CPUID_E1_EDX_PAGE1GB_BIT);
	vm->pse36 = cpuid_has(l1, EDX, 17);
	vm->umip = cpuid_has(l7, ECX, X86_CPUID_7_ECX_UMIP_BIT);
	vm->cr4_allowed = X86_CR4_PSE | X86_CR4_PAE | X86_CR4_PGE | X86_CR4_OSFXSR |
			  X86_CR4_OSXMMEXCPT | X86_BIT(1) /* PVI */ | X86_BIT(2) /* TSD */ |
			  X86_BIT(3) /* DE */ | X86_BIT(6) /* MCE */ | X86_BIT(8) /* PCE */;
	if (cpuid_has(l7, EBX, X86_CPUID_7_EBX_SMEP_BIT))
		vm->cr4_allowed |= X86_CR4_SMEP;
	if (cpuid_has(l7, EBX, X86_CPUID_7_EBX_SMAP_BIT))
		vm->cr4_allowed |= X86_CR4_SMAP;
	if (cpuid_has(l7, EBX, X86_CPUID_7_EBX_FSGSBASE_BIT))
		vm->cr4_allowed |= X86_CR4_FSGSBASE;
	if (vm->umip)
		vm->cr4_allowed |= X86_CR4_UMIP;
	if (cpuid_has(l1, ECX, X86_CPUID_1_ECX_XSAVE_BIT))
		vm->cr4_allowed |= X86_CR4_OSXSAVE;
}

/* The shadow MMU's stores, queued for the monitor to make (DESIGN.md §3):
 * the VMM never writes a shadow table itself, so a host that shadows our
 * tables in turn (KVM without TDP) sees every change.  A full queue is
 * applied at once. */
static void enqueue(struct vm *vm, mpa_t at, uint64_t value, bool zero)
{
	vm->tstats.stores++;
	for (bool drained = false;; drained = true) {
		if (zero ? monitor_queue_zero(&vm->mon, at)
			 : monitor_queue_store(&vm->mon, at, value))
			return;
		if (drained || vm->queue_failed) {
			vm->queue_failed = true;
			return;
		}
		trap_drain(vm);
	}
}

static void pool_store(void *opaque, mpa_t entry, uint64_t value)
{
	enqueue(opaque, entry, value, false);
}

static void pool_zero(void *opaque, mpa_t page)
{
	enqueue(opaque, page, 0, true);
}

/* The shadow MMU's context: its state block and its own view of the pool
 * live in the monitor's slot, where the fill monitor attaches to them
 * (shadow_attach); `cfg` sized the slot, and now gets those addresses. */
static int create_shadow(struct vm *vm, struct shadow_config *cfg, char *err, size_t errlen)
{
	cfg->pool.host = monitor_copy(&vm->mon);
	cfg->hv_entry = vm->mon.pml4e;
	cfg->state = monitor_state(&vm->mon);
	vm->shadow = shadow_create(cfg);
	if (!vm->shadow) {
		snprintf(err, errlen,
			 "cannot create the shadow MMU (pool of %u pages, maxphyaddr %u)",
			 cfg->pool.pages, vm->maxphyaddr);
		return VMM_E_INTERNAL;
	}
	return VMM_OK;
}

static int set_msrs(struct vm *vm, char *err, size_t errlen)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[3];
	} m = {
		.h = { .nmsrs = 3 },
		.e = {
			{ .index = X86_MSR_STAR, .data = (uint64_t)HV_SEL_CS << 32 },
			{ .index = X86_MSR_LSTAR, .data = HV_SYSCALL_STUB },
			{ .index = X86_MSR_SFMASK, .data = X86_RFLAGS_IF | X86_RFLAGS_TF | X86_RFLAGS_DF |
							   X86_RFLAGS_AC | X86_RFLAGS_NT },
		},
	};

	if (ioctl(vm->vcpu.fd, KVM_SET_MSRS, &m) != 3) {
		snprintf(err, errlen, "KVM_SET_MSRS for the syscall stub: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	return VMM_OK;
}

/* A Multiboot image's entry state (Multiboot §3.2), deprivileged: 32-bit
 * protected mode with paging off, which the real vCPU runs as
 * compatibility-mode code on an identity shadow.  Flat 32-bit CS and DS
 * at the selectors QEMU uses, in the real GDT only: the guest has none
 * yet and must load its own before it loads a segment. */
static bool multiboot_state(struct vm *vm)
{
	uint64_t gdt[(MULTIBOOT_SEL_DATA32 >> 3) + 1] = { 0 };
	struct kvm_segment data;

	vm->virt = (struct vcpu_virt){ .cr0 = MULTIBOOT_ENTRY_CR0,
				       .idt_limit = MULTIBOOT_ENTRY_IDT_LIMIT };
	if (shadow_set_paging(vm->shadow, SHADOW_PAGING_OFF, 0) != SHADOW_OK)
		return false;
	gdt[MULTIBOOT_SEL_CODE32 >> 3] = x86_desc_flat(X86_SEG_TYPE_CODE_XR | 1, 0, X86_DESC_DB);
	gdt[MULTIBOOT_SEL_DATA32 >> 3] = x86_desc_flat(X86_SEG_TYPE_DATA_RW | 1, 0, X86_DESC_DB);
	monitor_load_gdt(&vm->mon, gdt, sizeof(gdt) / sizeof(gdt[0]), true);
	if (!seg_load_cs(vm, MULTIBOOT_SEL_CODE32, 1) || !seg_load_ss(vm, MULTIBOOT_SEL_DATA32, 1))
		return false;
	seg_from_desc(&data, MULTIBOOT_SEL_DATA32 | 1,
		      monitor_descriptor(&vm->mon, MULTIBOOT_SEL_DATA32));
	vm->sregs.ds = vm->sregs.es = vm->sregs.fs = vm->sregs.gs = data;
	return true;
}

/* The ABI boot state (include/shadowvm_abi.h), deprivileged. */
static bool abi_state(struct vm *vm)
{
	struct vcpu_virt *v = &vm->virt;
	struct kvm_segment data;

	*v = (struct vcpu_virt){
		.cr0 = SHADOWVM_ABI_BOOT_CR0,
		.cr3 = SHADOWVM_ABI_PML4_GPA,
		.cr4 = SHADOWVM_ABI_BOOT_CR4,
		.efer = SHADOWVM_ABI_BOOT_EFER,
		.gdt_base = SHADOWVM_ABI_GDT_GPA,
		.gdt_limit = SHADOWVM_ABI_BOOT_GDT_ENTRIES * 8 - 1,
	};
	monitor_load_gdt(&vm->mon,
			 mem_gpa(&vm->mem, SHADOWVM_ABI_GDT_GPA, SHADOWVM_ABI_BOOT_GDT_ENTRIES * 8),
			 SHADOWVM_ABI_BOOT_GDT_ENTRIES, false);
	if (!seg_load_cs(vm, SHADOWVM_ABI_SEL_CODE64, 1) ||
	    !seg_load_ss(vm, SHADOWVM_ABI_SEL_DATA, 1))
		return false;
	seg_from_desc(&data, SHADOWVM_ABI_SEL_DATA,
		      monitor_descriptor(&vm->mon, SHADOWVM_ABI_SEL_DATA));
	vm->sregs.ds = vm->sregs.es = vm->sregs.fs = vm->sregs.gs = data;
	return true;
}

/* The boot state, deprivileged: the registers boot_setup_vcpu set, with
 * the monitor's tables and the virtual control registers. */
static int boot_state(struct vm *vm, char *err, size_t errlen)
{
	if (ioctl(vm->vcpu.fd, KVM_GET_REGS, &vm->regs) < 0 ||
	    ioctl(vm->vcpu.fd, KVM_GET_SREGS, &vm->sregs) < 0)
		goto fail;
	if (!(vm->img.multiboot ? multiboot_state(vm) : abi_state(vm))) {
		snprintf(err, errlen, "boot GDT descriptors rejected");
		return VMM_E_INTERNAL;
	}
	vm->sregs.gdt =
		(struct kvm_dtable){ .base = HV_VA(HV_PG_GDT), .limit = HV_GDT_ENTRIES * 8 - 1 };
	vm->sregs.idt = (struct kvm_dtable){ .base = HV_VA(HV_PG_IDT), .limit = 256 * 16 - 1 };
	seg_from_desc(&vm->sregs.tr, HV_SEL_TSS, monitor_descriptor(&vm->mon, HV_SEL_TSS));
	vm->sregs.tr.base = HV_VA(HV_PG_TSS);
	vm->regs.rflags = X86_RFLAGS_FIXED | (1ull << X86_RFLAGS_IOPL_SHIFT);
	control_sync(vm);
	/* the first resume: the monitor makes the root's first stores */
	if (trap_resume(vm) != VM_CONTINUE) {
		snprintf(err, errlen, "entering the guest through the monitor failed");
		return VMM_E_INTERNAL;
	}
	return set_msrs(vm, err, errlen);
fail:
	snprintf(err, errlen, "setting the deprivileged boot state: %s", strerror(errno));
	return VMM_E_INTERNAL;
}

/* The local-APIC fast path (monitor.h struct hv_lapic): in force where the
 * shadow MMU marks the APIC's leaves, i.e. where bit 51 is reserved; it
 * starts from the ID register KVM reset the APIC with. */
static int lapic_fast_init(struct vm *vm, char *err, size_t errlen)
{
	struct hv_lapic *l = monitor_lapic(&vm->mon);
	struct kvm_lapic_state st;

	if (!shadow_mmio_mark_possible(vm->maxphyaddr))
		return 0;
	if (ioctl(vm->vcpu.fd, KVM_GET_LAPIC, &st) < 0) {
		snprintf(err, errlen, "KVM_GET_LAPIC: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	memcpy(&l->id, st.regs + 0x20, sizeof(l->id));
	l->enabled = 1;
	return 0;
}

int trap_init(struct vm *vm, uint32_t pool_pages, char *err, size_t errlen)
{
	struct shadow_config cfg = {
		.mem = { acc_read, acc_write, acc_cmpxchg, vm, vm->mem.size },
		.pool = { HV_MPA(HV_PG_POOL), NULL, pool_pages, pool_store, pool_zero, vm },
		.hv_index = SHADOWVM_ABI_RESERVED_PML4_INDEX,
		.vcr3 = SHADOWVM_ABI_PML4_GPA,
		.hook = vm->trace ? trace_shadow_event : NULL,
		.hook_opaque = vm->trace,
		.opts = vm->opts->shadow_opts,
	};
	struct monitor_config mc = { .pool_pages = pool_pages, .ram_size = vm->mem.size };
	struct monitor layout;
	int rc;

	/* KVM's in-kernel local APIC and IOAPIC (kvm_create_irqchip, given to
	 * Multiboot images): guest mappings of them are shadowed to
	 * themselves, where KVM serves them without a memslot */
	bool lapic_fast =
		vm->img.multiboot && vm->opts->fill == FILL_MONITOR && !vm->opts->lapic_kvm;

	if (vm->img.multiboot) {
		cfg.mmio[cfg.nmmio++] = (struct shadow_mmio){ VMM_IOAPIC_GPA, X86_PAGE_SIZE, 0 };
		cfg.mmio[cfg.nmmio++] = (struct shadow_mmio){ VMM_LAPIC_GPA, X86_PAGE_SIZE,
							      lapic_fast ? SHADOW_MMIO_MARK : 0 };
		mc.lapic = VMM_LAPIC_GPA;
	}
	probe_cpu(vm);
	cfg.cpu = (struct shadow_cpu){ .cr0_wp = true,
				       .pse36 = vm->pse36, /* as control_sync will: no flush */
				       .efer_nxe = true,
				       .gbpages = vm->gbpages,
				       .maxphyaddr = vm->maxphyaddr };
	/* the size of the state block, with a stand-in for the pool's view */
	cfg.pool.host = (void *)(uintptr_t)X86_PAGE_SIZE;
	mc.state_bytes = shadow_state_bytes(&cfg);
	mc.fill = vm->opts->fill == FILL_MONITOR;
	if (!mc.state_bytes || !monitor_layout(&layout, &mc)) {
		snprintf(err, errlen,
			 "cannot lay out the monitor (pool of %u pages, %llu bytes of RAM)",
			 pool_pages, (unsigned long long)vm->mem.size);
		return VMM_E_INTERNAL;
	}
	if (HV_BASE + layout.size > (1ull << vm->maxphyaddr)) {
		snprintf(err, errlen, "hypervisor slot end exceeds MAXPHYADDR %u", vm->maxphyaddr);
		return VMM_E_NOKVM;
	}
	if (monitor_create(&vm->mon, &mc) != 0) {
		snprintf(err, errlen, "cannot map the monitor: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	if ((rc = kvm_set_memslot(&vm->kvm, 1, HV_BASE, vm->mon.size, vm->mon.host, err, errlen)))
		return rc;
	if ((rc = create_shadow(vm, &cfg, err, errlen)))
		return rc;
	if (lapic_fast && (rc = lapic_fast_init(vm, err, errlen)))
		return rc;
	fillmon_init(vm);
	vm->vcpu.trap = (struct vcpu_trap){ HV_PORT_TRAP,  HV_PORT_SYSCALL, trap_handle, vm,
					    fillmon_drain, trap_in_replay,  trap_in_done };
	return boot_state(vm, err, errlen);
}

void trap_fini(struct vm *vm)
{
	if (vm->shadow)
		shadow_destroy(vm->shadow);
	vm->shadow = NULL;
	monitor_destroy(&vm->mon);
}
