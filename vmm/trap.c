#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "emulate.h"
#include "gva.h"
#include "log.h"
#include "reflect.h"
#include "segment.h"
#include "shadow.h"
#include "status.h"
#include "trace.h"
#include "trap.h"
#include "vm.h"
#include "x86.h"

#define REPEAT_LIMIT 16 /* identical hidden faults in a row: the fill is broken */
/* Hidden faults in a row at one RIP that each emptied the pool: the
 * instruction needs more shadow pages than the pool holds, and every fill
 * evicts the translation another of its accesses needs. */
#define EVICT_LOOP_LIMIT 64

/* ---- guest memory accessor for the shadow MMU ----------------------------------- */

static uint64_t *pte_ptr(void *opaque, gpa_t gpa)
{
	struct vm *vm = opaque;
	return (gpa & 7) ? NULL : mem_gpa(&vm->mem, gpa, 8);
}

static int acc_read(void *opaque, gpa_t gpa, uint64_t *val)
{
	uint64_t *p = pte_ptr(opaque, gpa);

	if (!p)
		return SHADOW_MEM_OUTSIDE;
	*val = __atomic_load_n(p, __ATOMIC_SEQ_CST);
	return SHADOW_MEM_OK;
}

static int acc_write(void *opaque, gpa_t gpa, uint64_t val)
{
	uint64_t *p = pte_ptr(opaque, gpa);

	if (!p)
		return SHADOW_MEM_OUTSIDE;
	__atomic_store_n(p, val, __ATOMIC_SEQ_CST);
	return SHADOW_MEM_OK;
}

static int acc_cmpxchg(void *opaque, gpa_t gpa, uint64_t *expected, uint64_t desired)
{
	uint64_t *p = pte_ptr(opaque, gpa);

	if (!p)
		return SHADOW_MEM_OUTSIDE;
	return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST) ? SHADOW_MEM_OK : SHADOW_MEM_CHANGED;
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

static int create_shadow(struct vm *vm, uint32_t pool_pages, char *err, size_t errlen)
{
	struct shadow_config cfg = {
		.mem = { acc_read, acc_write, acc_cmpxchg, vm, vm->mem.size },
		.pool = { HV_MPA(HV_PG_POOL), monitor_page(&vm->mon, HV_PG_POOL), pool_pages },
		.hv_index = SVM_ABI_RESERVED_PML4_INDEX,
		.hv_entry = vm->mon.pml4e,
		.cpu = { .cr0_wp = true, .efer_nxe = true, .gbpages = vm->gbpages,
			 .maxphyaddr = vm->maxphyaddr },
		.vcr3 = SVM_ABI_PML4_GPA,
		.hook = vm->trace ? trace_shadow_event : NULL,
		.hook_opaque = vm->trace,
		.opts = vm->opts->shadow_opts,
	};

	vm->shadow = shadow_create(&cfg);
	if (!vm->shadow) {
		snprintf(err, errlen, "cannot create the shadow MMU (pool of %u pages, maxphyaddr %u)",
			 pool_pages, vm->maxphyaddr);
		return VMM_E_INTERNAL;
	}
	return VMM_OK;
}

static int set_msrs(struct vm *vm, char *err, size_t errlen)
{
	struct { struct kvm_msrs h; struct kvm_msr_entry e[3]; } m = {
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

/* The ABI boot state (include/shadowvm_abi.h), deprivileged. */
static int boot_state(struct vm *vm, char *err, size_t errlen)
{
	struct vcpu_virt *v = &vm->virt;
	struct kvm_segment data;

	*v = (struct vcpu_virt){
		.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_PG,
		.cr3 = SVM_ABI_PML4_GPA,
		.cr4 = X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT,
		.efer = X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE,
		.gdt_base = SVM_ABI_GDT_GPA, .gdt_limit = 3 * 8 - 1,
	};
	if (ioctl(vm->vcpu.fd, KVM_GET_REGS, &vm->regs) < 0 ||
	    ioctl(vm->vcpu.fd, KVM_GET_SREGS, &vm->sregs) < 0)
		goto fail;
	monitor_load_gdt(&vm->mon, mem_gpa(&vm->mem, SVM_ABI_GDT_GPA, 24), 3);
	if (!seg_load_cs(vm, SVM_ABI_SEL_CODE64, 1) || !seg_load_ss(vm, SVM_ABI_SEL_DATA, 1)) {
		snprintf(err, errlen, "boot GDT descriptors rejected");
		return VMM_E_INTERNAL;
	}
	seg_from_desc(&data, SVM_ABI_SEL_DATA, monitor_descriptor(&vm->mon, SVM_ABI_SEL_DATA));
	vm->sregs.ds = vm->sregs.es = vm->sregs.fs = vm->sregs.gs = data;
	vm->sregs.gdt = (struct kvm_dtable){ .base = HV_VA(HV_PG_GDT), .limit = HV_GDT_ENTRIES * 8 - 1 };
	vm->sregs.idt = (struct kvm_dtable){ .base = HV_VA(HV_PG_IDT), .limit = 256 * 16 - 1 };
	seg_from_desc(&vm->sregs.tr, HV_SEL_TSS, monitor_descriptor(&vm->mon, HV_SEL_TSS));
	vm->sregs.tr.base = HV_VA(HV_PG_TSS);
	vm->regs.rflags = X86_RFLAGS_FIXED | (1ull << X86_RFLAGS_IOPL_SHIFT);
	emulate_sync_control(vm);
	if (ioctl(vm->vcpu.fd, KVM_SET_SREGS, &vm->sregs) < 0 ||
	    ioctl(vm->vcpu.fd, KVM_SET_REGS, &vm->regs) < 0)
		goto fail;
	return set_msrs(vm, err, errlen);
fail:
	snprintf(err, errlen, "setting the deprivileged boot state: %s", strerror(errno));
	return VMM_E_INTERNAL;
}

int trap_init(struct vm *vm, uint32_t pool_pages, char *err, size_t errlen)
{
	int rc;

	probe_cpu(vm);
	if (HV_BASE + ((uint64_t)HV_PG_POOL + pool_pages) * 4096 > (1ull << vm->maxphyaddr)) {
		snprintf(err, errlen, "hypervisor slot end exceeds MAXPHYADDR %u", vm->maxphyaddr);
		return VMM_E_NOKVM;
	}
	if (monitor_create(&vm->mon, pool_pages) != 0) {
		snprintf(err, errlen, "cannot map the monitor: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	if ((rc = kvm_set_memslot(&vm->kvm, 1, HV_BASE, vm->mon.size, vm->mon.host, err, errlen)))
		return rc;
	if ((rc = create_shadow(vm, pool_pages, err, errlen)))
		return rc;
	vm->dev.trap = trap_handle;
	vm->dev.trap_opaque = vm;
	return boot_state(vm, err, errlen);
}

void trap_fini(struct vm *vm)
{
	if (vm->shadow)
		shadow_destroy(vm->shadow);
	vm->shadow = NULL;
	monitor_destroy(&vm->mon);
}

/* ---- the trap path ------------------------------------------------------------------ */

static bool has_error_code(unsigned v)
{
	return v == X86_EXC_DF || (v >= X86_EXC_TS && v <= X86_EXC_PF) || v == X86_EXC_AC ||
	       v == X86_EXC_CP;
}

/* Put the interrupted guest context of the frame back into regs/sregs. */
static bool restore_frame(struct vm *vm, const struct hv_trap_frame *f)
{
	unsigned cpl = f->cs & 3;

	vm->regs.rip = f->rip;
	vm->regs.rsp = f->rsp;
	vm->regs.rflags = f->rflags;
	return cpl != 0 && seg_load_cs(vm, (uint16_t)f->cs, cpl) &&
	       seg_load_ss(vm, (uint16_t)f->ss, cpl);
}

/* True (with the diagnosis printed) once EVICT_LOOP_LIMIT hidden faults in a
 * row at the same RIP, on pages it faulted on just before, each evicted: a
 * livelock that a larger pool would end.  (A loop touching new pages from
 * one instruction evicts at every fault too, but on pages never seen.) */
static bool evict_loop(struct vm *vm, gva_t gva)
{
	static struct { uint64_t rip, evictions; gva_t page[4]; unsigned n, next; } ev;
	struct shadow_stats st;
	bool seen = false;

	gva &= X86_PAGE_MASK;
	for (unsigned i = 0; i < 4; i++)
		seen |= ev.page[i] == gva;
	shadow_get_stats(vm->shadow, &st);
	if (st.evictions != ev.evictions && vm->regs.rip == ev.rip && seen)
		ev.n++;
	else
		ev.n = 0;
	ev.rip = vm->regs.rip;
	ev.evictions = st.evictions;
	ev.page[ev.next++ % 4] = gva;
	if (ev.n < EVICT_LOOP_LIMIT)
		return false;
	pr_err("shadow: the instruction at rip=0x%llx needs more shadow pages than the pool's %u: each of its faults evicts what another needs (raise --shadow-pool)",
	       (unsigned long long)vm->regs.rip, vm->opts->pool_pages);
	return true;
}

static int hidden_pf(struct vm *vm, uint64_t err)
{
	static struct { gva_t gva; uint64_t rip, err, trap; unsigned n; } last;
	struct shadow_fault_result res;
	enum shadow_status st;
	gva_t gva = vm->sregs.cr2;

	if (err & X86_PF_RSVD) {
		pr_err("shadow: reserved-bit fault on a shadow entry gva=0x%llx err=0x%llx",
		       (unsigned long long)gva, (unsigned long long)err);
		return VMM_E_INTERNAL;
	}
	/* Only back-to-back traps count: a guest that rewrites its entry and
	 * flushes (trapping) in between may fault at the same place again. */
	if (last.trap + 1 == vm->tstats.traps && last.gva == gva && last.rip == vm->regs.rip &&
	    last.err == err) {
		last.trap = vm->tstats.traps;
		if (++last.n >= REPEAT_LIMIT) {
			pr_err("shadow: fill did not resolve the fault gva=0x%llx err=0x%llx rip=0x%llx",
			       (unsigned long long)gva, (unsigned long long)err,
			       (unsigned long long)vm->regs.rip);
			return VMM_E_INTERNAL;
		}
	} else {
		last.gva = gva, last.rip = vm->regs.rip, last.err = err, last.n = 0;
		last.trap = vm->tstats.traps;
	}
	emulate_sync_control(vm); /* the walker needs the current RFLAGS.AC */
	trace_hidden_fault(vm->trace, err);
	st = shadow_fault(vm->shadow, gva, shadow_access_from_pferr(err), &res);
	if (evict_loop(vm, gva))
		return VMM_E_INTERNAL;
	switch (st) {
	case SHADOW_FILLED:
		vm->tstats.hidden_pf++;
		/* fall through */
	case SHADOW_RETRY:
		return VM_CONTINUE;
	case SHADOW_GUEST_PF:
		return reflect_event(vm, (struct x86_event){ .vector = X86_EXC_PF, .has_err = true,
							     .err = res.pferr, .cr2 = gva });
	case SHADOW_GUEST_GP:
		return reflect_event(vm, (struct x86_event){ .vector = X86_EXC_GP, .has_err = true });
	default:
		return gva_contract(vm, &res, gva);
	}
}

static int dispatch_vector(struct vm *vm, unsigned vector, uint64_t err)
{
	switch (vector) {
	case X86_EXC_PF: return hidden_pf(vm, err);
	case X86_EXC_GP: return emulate_fault(vm, X86_EXC_GP, (uint32_t)err);
	case X86_EXC_UD: return emulate_fault(vm, X86_EXC_UD, 0);
	default:
		return reflect_event(vm, (struct x86_event){ .vector = vector,
							     .has_err = has_error_code(vector),
							     .err = (uint32_t)err });
	}
}

/* SYSCALL (SDM 2B) as the guest's virtual STAR/LSTAR/SFMASK define it. */
static int syscall_entry(struct vm *vm)
{
	uint16_t cs = (uint16_t)(vm->virt.star >> 32) & 0xfffc;
	uint64_t fl = vm->regs.r11 & ~vm->virt.sfmask;

	vm->tstats.syscalls++;
	vm->regs.rip = vm->virt.lstar;
	vm->regs.rflags = (fl & ~(X86_RFLAGS_RF | X86_RFLAGS_VM | X86_RFLAGS_IOPL_MASK)) |
			  X86_RFLAGS_FIXED | (1ull << X86_RFLAGS_IOPL_SHIFT);
	seg_flat(&vm->sregs.cs, (uint16_t)(cs | 1), true, 1);
	seg_flat(&vm->sregs.ss, (uint16_t)((cs + 8) | 1), false, 1);
	return VM_CONTINUE;
}

/* Write the state back; flush the real TLB when shadows were dropped.  A
 * change of CR3 through KVM_SET_SREGS resets KVM's MMU context, whose reload
 * flushes the vCPU's TLB: setting a different CR3 first forces that even when
 * the shadow root stays the same page. */
/* DESIGN.md §2: the guest may never map its own reserved PML4 slot; the
 * shadow would silently show the monitor there instead. */
static int check_reserved_slot(struct vm *vm)
{
	gpa_t at = (shadow_vcr3(vm->shadow) & X86_CR3_ADDR_MASK) + SVM_ABI_RESERVED_PML4_INDEX * 8;
	const uint64_t *e = mem_gpa(&vm->mem, at, 8);

	if (e && (*e & X86_PTE_P)) {
		pr_err("guest broke the ABI: PML4 entry %u (the hypervisor's reserved slot) is present: 0x%llx at GPA 0x%llx",
		       SVM_ABI_RESERVED_PML4_INDEX, (unsigned long long)*e, (unsigned long long)at);
		return VMM_E_CONTRACT;
	}
	return VM_CONTINUE;
}

static int commit(struct vm *vm)
{
	int rc;

	if ((rc = check_reserved_slot(vm)) != VM_CONTINUE)
		return rc;
	if (vm->opts->check_invariants) {
		char why[192];
		if (!shadow_check(vm->shadow, why, sizeof(why))) {
			pr_err("invariant broken after trap at rip=0x%llx: %s",
			       (unsigned long long)vm->regs.rip, why);
			return VMM_E_INTERNAL;
		}
	}
	emulate_sync_control(vm);
	if (shadow_take_tlb_flush(vm->shadow)) {
		struct kvm_sregs tmp = vm->sregs;
		tmp.cr3 = HV_MPA(HV_PG_PDPT);
		if (ioctl(vm->vcpu.fd, KVM_SET_SREGS, &tmp) < 0)
			goto fail;
	}
	if (ioctl(vm->vcpu.fd, KVM_SET_REGS, &vm->regs) < 0 ||
	    ioctl(vm->vcpu.fd, KVM_SET_SREGS, &vm->sregs) < 0)
		goto fail;
	return VM_CONTINUE;
fail:
	pr_err("resuming the guest: %s", strerror(errno));
	return VMM_E_INTERNAL;
}

static int monitor_entry(struct vm *vm, uint16_t port)
{
	const struct hv_trap_frame *f = monitor_frame(&vm->mon);

	if (port == HV_PORT_SYSCALL) {
		/* KVM reports port I/O with RIP still at the `out`. */
		if (vm->regs.rip != HV_SYSCALL_STUB)
			return VM_CONTINUE;
		return syscall_entry(vm);
	}
	if (vm->regs.rsp != HV_TRAP_FRAME_VA || f->vector > 255) {
		pr_err("monitor: bad trap frame rsp=0x%llx rip=0x%llx",
		       (unsigned long long)vm->regs.rsp, (unsigned long long)vm->regs.rip);
		return VMM_E_INTERNAL;
	}
	if ((f->cs & 3) == 0 || !restore_frame(vm, f)) {
		pr_err("monitor: fault in the monitor itself: vector %llu err 0x%llx rip=0x%llx cs=0x%llx",
		       (unsigned long long)f->vector, (unsigned long long)f->error_code,
		       (unsigned long long)f->rip, (unsigned long long)f->cs);
		return VMM_E_INTERNAL;
	}
	return dispatch_vector(vm, (unsigned)f->vector, f->error_code);
}

int trap_handle(void *opaque, uint16_t port)
{
	struct vm *vm = opaque;
	int rc;

	if (ioctl(vm->vcpu.fd, KVM_GET_REGS, &vm->regs) < 0 ||
	    ioctl(vm->vcpu.fd, KVM_GET_SREGS, &vm->sregs) < 0) {
		pr_err("reading the trap state: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	/* Only the monitor runs at CPL0; the guest kernel may write these
	 * ports too (IOPL 1), and then it is just an unclaimed port. */
	if (vm->sregs.cs.selector != HV_SEL_CS)
		return VM_CONTINUE;
	vm->tstats.traps++;
	rc = monitor_entry(vm, port);
	if (rc != VM_CONTINUE)
		return rc;
	return commit(vm);
}
