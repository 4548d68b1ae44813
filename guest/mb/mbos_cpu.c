/* mbos's CPU side, after xv6's vm.c, proc.c and trap.c: its own GDT, IDT
 * and 32-bit TSS; 32-bit paging with 4 MiB kernel pages; processes with a
 * page directory and kernel stack each, switched round robin by the timer,
 * the TSS descriptor rewritten as available and reloaded at every switch
 * (xv6's switchuvm); the trap dispatcher and the system calls. */
#include "mbos.h"
#include "x86.h"

#define NPROC 2
#define KSTACK 8192
#define SEG_TYPE_CODE 0xa /* execute/read */
#define SEG_TYPE_DATA 0x2 /* read/write */
#define SEG_TYPE_TSS 0x9  /* available 32-bit TSS; 0xb once loaded (busy) */
#define GATE_INT 0xe      /* 32-bit interrupt gate: clears IF (SDM 3A §6.12.1.3) */
#define GATE_TRAP 0xf     /* 32-bit trap gate: leaves IF */
#define TSS_ESP0 1        /* 32-bit TSS, in words (SDM 3A figure 8-2) */
#define TSS_SS0 2
#define TSS_IOMB 25
#define PDE_SHIFT 22
#define PAGE 4096u
#define IOAPIC_BASE 0xfec00000u
#define LAPIC_BASE 0xfee00000u

struct __attribute__((packed)) dtr {
	uint16_t limit;
	uint32_t base;
};

struct proc_mem {
	uint32_t pgdir[1024];
	uint32_t pt[1024]; /* USER_CODE_VA's 4 MiB */
	uint32_t data[USER_DATA_WORDS];
	uint8_t ustack[PAGE];
	uint8_t kstack[KSTACK];
};

volatile uint32_t mbos_ticks, mbos_uticks;
volatile uint32_t mbos_gate_if[2], mbos_gate_frame_if;
uint32_t mbos_sched_turns;

static uint64_t gdt[6] __attribute__((aligned(16)));
static uint64_t idt[256] __attribute__((aligned(16)));
static uint32_t tss[26] __attribute__((aligned(16)));
static uint32_t kpgdir[1024] __attribute__((aligned(4096)));
static uint32_t devpt[1024] __attribute__((aligned(4096))); /* the IOAPIC and LAPIC pages */
static struct proc_mem pmem[NPROC] __attribute__((aligned(4096)));
static struct mbos_proc procs[NPROC];
static struct mbos_proc *cur;
static uint32_t sched_context, last_id;
static int ncli, intena;

static uint64_t seg(uint32_t type, uint32_t dpl)
{
	/* base 0, limit 0xfffff pages, S, P, D/B = 32-bit, G */
	return 0xffffull | (0xfull << 48) | ((uint64_t)type << 40) | (1ull << 44) |
	       ((uint64_t)dpl << 45) | (1ull << 47) | (1ull << 54) | (1ull << 55);
}

/* The TSS descriptor, marked available: LTR faults on a busy one (SDM 2A). */
static uint64_t tss_desc(void)
{
	uint32_t b = (uint32_t)tss;

	return (sizeof(tss) - 1) | ((uint64_t)(b & 0xffffff) << 16) |
	       ((uint64_t)SEG_TYPE_TSS << 40) | (1ull << 47) | ((uint64_t)(b >> 24) << 56);
}

static uint64_t gate(uint32_t off, uint32_t type, uint32_t dpl)
{
	return (off & 0xffff) | ((uint64_t)SEL_KCODE << 16) | ((uint64_t)type << 40) |
	       ((uint64_t)dpl << 45) | (1ull << 47) | ((uint64_t)(off >> 16) << 48);
}

static void ltr(void)
{
	gdt[SEL_TSS >> 3] = tss_desc();
	__asm__ volatile("ltr %w0" : : "r"(SEL_TSS) : "memory");
}

/* Load the GDT (kernel and user code and data, the TSS), the TSS with
 * SS0:ESP0 = the kernel data segment and idle_stack_top, and the IDT:
 * interrupt gates at DPL 0 except the system call's DPL 3 trap gate. */
void mbos_cpu_init(uint32_t idle_stack_top)
{
	static struct dtr gdtr = { sizeof(gdt) - 1, (uint32_t)gdt };
	struct dtr idtr = { sizeof(idt) - 1, (uint32_t)idt };

	gdt[SEL_KCODE >> 3] = seg(SEG_TYPE_CODE, 0);
	gdt[SEL_KDATA >> 3] = seg(SEG_TYPE_DATA, 0);
	gdt[SEL_UCODE >> 3] = seg(SEG_TYPE_CODE, 3);
	gdt[SEL_UDATA >> 3] = seg(SEG_TYPE_DATA, 3);
	mbos_load_gdt(&gdtr);
	mb_memset(tss, 0, sizeof(tss));
	tss[TSS_ESP0] = idle_stack_top;
	tss[TSS_SS0] = SEL_KDATA;
	/* no I/O bitmap (its base past the limit) and IOPL 0: CPL3 port I/O is #GP */
	tss[TSS_IOMB] = 0xffffu << 16;
	ltr();
	for (unsigned v = 0; v < 256; v++)
		idt[v] = gate((uint32_t)mbos_vectors + 16 * v, GATE_INT, 0);
	idt[MBOS_T_SYSCALL] = gate((uint32_t)mbos_vectors + 16 * MBOS_T_SYSCALL, GATE_TRAP, 3);
	__asm__ volatile("lidt %0" : : "m"(idtr));
}

/* Identity-map RAM below ram_end (at most up to USER_CODE_VA) with 4 MiB
 * pages and the two APIC pages uncached (PCD|PWT), then turn on 32-bit
 * paging with CR4.PSE and CR0.WP. */
void mbos_paging_init(uint32_t ram_end)
{
	uint32_t n = ram_end >> PDE_SHIFT;

	if (n == 0)
		n = 1;
	if (n > (USER_CODE_VA >> PDE_SHIFT))
		n = USER_CODE_VA >> PDE_SHIFT;
	for (uint32_t i = 0; i < n; i++)
		kpgdir[i] = (i << PDE_SHIFT) | X86_PTE_P | X86_PTE_W | X86_PTE_PS;
	kpgdir[IOAPIC_BASE >> PDE_SHIFT] = (uint32_t)devpt | X86_PTE_P | X86_PTE_W;
	devpt[(IOAPIC_BASE >> 12) & 0x3ff] =
		IOAPIC_BASE | X86_PTE_P | X86_PTE_W | X86_PTE_PCD | X86_PTE_PWT;
	devpt[(LAPIC_BASE >> 12) & 0x3ff] =
		LAPIC_BASE | X86_PTE_P | X86_PTE_W | X86_PTE_PCD | X86_PTE_PWT;
	write_cr4(read_cr4() | X86_CR4_PSE);
	write_cr3((uint32_t)kpgdir);
	write_cr0(read_cr0() | X86_CR0_PG | X86_CR0_WP);
}

/* xv6's pushcli/popcli: cli nests; IF comes back only when the outermost
 * popcli finds it was set at the outermost pushcli. */
void mbos_pushcli(void)
{
	uint32_t fl = read_eflags();

	cli();
	if (ncli++ == 0)
		intena = (fl & X86_RFLAGS_IF) != 0;
}

void mbos_popcli(void)
{
	if (read_eflags() & X86_RFLAGS_IF)
		mbos_fail("popcli: interruptible\n");
	if (--ncli < 0)
		mbos_fail("popcli: unbalanced\n");
	if (ncli == 0 && intena)
		sti();
}

int mbos_ncli(void)
{
	return ncli;
}

static void switchuvm(struct mbos_proc *p)
{
	mbos_pushcli();
	tss[TSS_SS0] = SEL_KDATA;
	tss[TSS_ESP0] = (uint32_t)p->kstack + KSTACK;
	ltr();
	write_cr3((uint32_t)p->pgdir);
	mbos_popcli();
}

static void map_user(struct proc_mem *m)
{
	uint32_t code = (uint32_t)mbos_user_start;
	uint32_t len = (uint32_t)(mbos_user_end - mbos_user_start);

	for (unsigned i = 0; i < 1024; i++)
		m->pgdir[i] = kpgdir[i]; /* the kernel's half, supervisor only */
	m->pgdir[USER_CODE_VA >> PDE_SHIFT] = (uint32_t)m->pt | X86_PTE_P | X86_PTE_W | X86_PTE_U;
	for (uint32_t off = 0; off < len; off += PAGE)
		m->pt[off / PAGE] = (code + off) | X86_PTE_P | X86_PTE_U;
	m->pt[(USER_DATA_VA - USER_CODE_VA) / PAGE] =
		(uint32_t)m->data | X86_PTE_P | X86_PTE_W | X86_PTE_U;
	m->pt[(USER_STACK_VA - USER_CODE_VA) / PAGE] =
		(uint32_t)m->ustack | X86_PTE_P | X86_PTE_W | X86_PTE_U;
}

/* Make slot's process runnable at CPL3 at entry (a label in the user
 * section) with EAX = arg; its first run irets from mbos_trapret. */
struct mbos_proc *mbos_proc_spawn(unsigned slot, const char *entry, uint32_t arg)
{
	struct proc_mem *m = &pmem[slot];
	struct mbos_proc *p = &procs[slot];
	struct mbos_tf *tf;
	uint32_t *sp;

	mb_memset(m, 0, sizeof(*m));
	mb_memset(p, 0, sizeof(*p));
	map_user(m);
	p->id = slot + 1;
	p->pgdir = m->pgdir;
	p->kstack = m->kstack;
	p->data = m->data;
	tf = (struct mbos_tf *)(m->kstack + KSTACK) - 1;
	tf->cs = SEL_UCODE;
	tf->ds = tf->es = tf->fs = tf->gs = tf->ss = SEL_UDATA;
	tf->eflags = X86_RFLAGS_IF | 0x2;
	tf->esp = USER_STACK_TOP;
	tf->eip = USER_CODE_VA + (uint32_t)(entry - mbos_user_start);
	tf->eax = arg;
	sp = (uint32_t *)tf;
	*--sp = (uint32_t)mbos_trapret;
	sp -= 4; /* EDI, ESI, EBX, EBP for mbos_swtch to pop */
	p->context = (uint32_t)sp;
	p->state = P_RUNNABLE;
	return p;
}

/* Run the runnable processes round robin until none is left; called and
 * returning with IF clear, on the kernel's page directory. */
void mbos_sched(void)
{
	int ran;

	cli();
	do {
		ran = 0;
		for (unsigned i = 0; i < NPROC; i++) {
			struct mbos_proc *p = &procs[i];

			if (p->state != P_RUNNABLE)
				continue;
			ran = 1;
			if (last_id && last_id != p->id)
				mbos_sched_turns++;
			last_id = p->id;
			cur = p;
			switchuvm(p);
			p->state = P_RUNNING;
			mbos_swtch(&sched_context, p->context);
			write_cr3((uint32_t)kpgdir);
			cur = 0;
		}
	} while (ran);
	last_id = 0;
}

static void yield(void)
{
	cur->state = P_RUNNABLE;
	cur->switches++;
	mbos_swtch(&cur->context, sched_context);
}

static __attribute__((noreturn)) void proc_exit(uint32_t code)
{
	cli();
	cur->exit_code = code;
	cur->state = P_ZOMBIE;
	mbos_swtch(&cur->context, sched_context);
	mbos_fail("a finished process ran again\n");
}

static void syscall(struct mbos_tf *tf)
{
	uint32_t ret = (uint32_t)-1;

	switch (tf->eax) {
	case SYS_TICKS: ret = mbos_ticks; break;
	case SYS_UTICKS: ret = cur ? cur->uticks : 0; break;
	case SYS_SWITCHES: ret = cur ? cur->switches : 0; break;
	case SYS_RESULT:
		if (!cur)
			break;
		cur->result = tf->ebx;
		cur->result_bad = tf->ecx;
		cur->has_result = 1;
		ret = 0;
		break;
	case SYS_EXIT:
		if (cur)
			proc_exit(tf->ebx);
		break;
	}
	tf->eax = ret;
}

/* The timer: count it, and which mode it interrupted; EOI before a
 * switch, so the next process gets its ticks (xv6 trap.c). */
static void timer(int user)
{
	mbos_ticks++;
	if (user) {
		mbos_uticks++;
		if (cur)
			cur->uticks++;
	}
	mbos_lapic_eoi();
	if (user && cur && cur->state == P_RUNNING)
		yield();
}

/* Every trap comes here (mbos_alltraps); one from CPL3 that is no
 * interrupt or system call ends the process, one in the kernel the run. */
void mbos_trap(struct mbos_tf *tf)
{
	uint32_t fl = read_eflags(); /* first: what the gate left in IF */
	int user = (tf->cs & 3) == 3;

	switch (tf->vector) {
	case MBOS_T_TIMER: timer(user); return;
	case MBOS_T_COM1:
		mbos_uart_intr();
		mbos_lapic_eoi();
		return;
	case MBOS_T_IDE:
		mbos_ide_intr();
		mbos_lapic_eoi();
		return;
	case MBOS_T_SPURIOUS: return; /* no EOI (SDM 3A §11.9) */
	case MBOS_T_SYSCALL:
		mbos_gate_if[0] = fl & X86_RFLAGS_IF;
		syscall(tf);
		return;
	case MBOS_T_TEST:
		if (user)
			break;
		mbos_gate_if[1] = fl & X86_RFLAGS_IF;
		mbos_gate_frame_if = tf->eflags & X86_RFLAGS_IF;
		return;
	}
	if (user && cur) {
		cur->faulted = 1;
		cur->fault_vec = tf->vector;
		cur->fault_err = tf->err;
		proc_exit(~0u);
	}
	mbos_fail("trap %u error code 0x%x at eip 0x%x, cr2 0x%x\n", tf->vector, tf->err, tf->eip,
		  read_cr2());
}

/* head.S's stubs, before mbos_cpu_init's IDT replaces them. */
void trap32(struct tf32 *f);
void trap32(struct tf32 *f)
{
	mbos_fail("early trap %u error code 0x%x at eip 0x%x\n", f->vector, f->err, f->eip);
}
