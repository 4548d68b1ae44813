/* mbos: a tiny Multiboot OS that checks, one by one, what the xv6 teaching
 * kernel takes from the PC it boots on, so a VMM that runs this runs xv6:
 *
 *  1. the MP table found as xv6's mpsearch does (EBDA, base memory's last
 *     KiB, the BIOS ROM), its processors, IOAPIC and LAPIC address, IMCRP;
 *  2. its own GDT, IDT and 32-bit TSS; 32-bit paging with 4 MiB kernel
 *     pages, CR0.WP, the APIC pages uncached;
 *  3. the local APIC: enabled by the SVR, its ID (the MP table's BSP) stable
 *     over many reads, a periodic timer at vector 32, LINT0/1 masked;
 *  4. the IOAPIC: IRQ 4 and 14 routed to vectors 36 and 46; the 8259s masked;
 *  5. timer interrupts in a kernel spin loop, out of hlt, and at CPL3;
 *  6. IF: pushcli/popcli nesting, an interrupt gate clearing IF and a trap
 *     gate not, a DPL 0 gate's #GP from CPL3;
 *  7. two processes, a page directory and kernel stack each, preempted
 *     round robin by the timer (the TSS reloaded at every switch, as
 *     xv6's switchuvm does), each seeing its own page at the same address;
 *  8. CPL3 in/out and cli are #GP;
 *  9. the primary IDE disk by PIO with IRQ 14: IDENTIFY, a sector written
 *     and read back, sector 0's checksum, an 8-sector read;
 * 10. with "shell" in the command line, a shell on COM1 fed by its receive
 *     interrupt (echo, ticks, disk, help, exit N); else "done", exit 0.
 *
 * The transcript holds facts only, never counts that depend on timing, so
 * it is the same on every run, under QEMU and under shadowvm (which runs
 * this kernel at CPL1, unseen).  Every failed check prints "FAIL: ..." and
 * exits with value 2 (status 5). */
#include "mbos.h"
#include "multiboot.h"
#include "x86.h"

#define RAM_MAX 0xfec00000u    /* shadowvm's and the IOAPIC's limit */
#define SPIN_LIMIT 0x40000000u /* polls before "no timer interrupts" */
#define LAPIC_ID_READS 100000
#define LAPIC_ID_REREADS 1000
/* #GP's error code for a gate: the vector, IDT bit set (SDM 3A §6.13) */
#define GP_ERR_IDT(v) (((v) << 3) | 2)

static uint8_t idle_stack[4096] __attribute__((aligned(16)));
static uint8_t sector0[512], wbuf[512], rbuf[8 * 512];

static int word_in(const char *s, const char *w)
{
	while (*s) {
		const char *a = s, *b = w;

		while (*a && *a != ' ' && *a == *b)
			a++, b++;
		if (*b == 0 && (*a == 0 || *a == ' '))
			return 1;
		while (*s && *s != ' ')
			s++;
		while (*s == ' ')
			s++;
	}
	return 0;
}

static void step_mp(struct mbos_mp *mp, uint32_t ram_end)
{
	mbos_mp_find(mp, ram_end);
	if (!mp->found) {
		mb_printf("mp: no MP table; lapic 0x%x, ioapic 0x%x\n", mp->lapic_addr,
			  mp->ioapic_addr);
		return;
	}
	mb_printf("mp: %u processors, bsp apic id %u\n", mp->ncpu, mp->bsp_apicid);
	if (mp->nioapic)
		mb_printf("mp: ioapic id %u at 0x%x\n", mp->ioapic_id, mp->ioapic_addr);
	else
		mb_printf("mp: no ioapic entry; ioapic at 0x%x\n", mp->ioapic_addr);
	mb_printf("mp: lapic at 0x%x\n", mp->lapic_addr);
	mb_printf("mp: imcrp %s\n", mp->imcrp ? "set" : "clear");
	if (mp->imcrp) {
		/* xv6: the IMCR to APIC mode, the 8259s off the INTR pin */
		outb(0x22, 0x70);
		outb(0x23, inb(0x23) | 1);
	}
}

static uint32_t step_lapic(const struct mbos_mp *mp)
{
	uint32_t id;

	mbos_lapic_init(mp->lapic_addr);
	id = mbos_lapic_id();
	mb_printf("lapic: id %u version 0x%x\n", id, mbos_lapic_version() & 0xff);
	if (mp->found && id != mp->bsp_apicid)
		mbos_fail("lapic: id %u, the mp table's bsp is %u\n", id, mp->bsp_apicid);
	if (mp->found)
		mb_printf("lapic: id matches mp table\n");
	for (unsigned i = 0; i < LAPIC_ID_READS; i++)
		if (mbos_lapic_id() != id)
			mbos_fail("lapic: id changed to %u\n", mbos_lapic_id());
	mb_printf("lapic: id stable over %u reads\n", LAPIC_ID_READS);
	/* an access shadowvm's APIC fast path leaves to KVM, then the page's
	 * translation dropped and the reads again (README: the local APIC
	 * without an exit) */
	if (mbos_lapic_id_by_add() != id)
		mbos_fail("lapic: id read by add is %u\n", mbos_lapic_id_by_add());
	invlpg(mp->lapic_addr);
	for (unsigned i = 0; i < LAPIC_ID_REREADS; i++)
		if (mbos_lapic_id() != id)
			mbos_fail("lapic: id changed to %u\n", mbos_lapic_id());
	mb_printf("lapic: id read by add, then %u more reads, the same\n", LAPIC_ID_REREADS);
	mb_printf("lapic: periodic timer at vector %u, lint0 and lint1 masked\n", MBOS_T_TIMER);
	return id;
}

static void step_ioapic(const struct mbos_mp *mp, uint32_t apicid)
{
	unsigned id, n = mbos_ioapic_init(mp->ioapic_addr, &id);

	mb_printf("ioapic: id %u, %u redirection entries\n", id, n);
	if (mp->nioapic && id != mp->ioapic_id)
		mb_printf("ioapic: id differs from the mp table's %u\n", mp->ioapic_id);
	else if (mp->nioapic)
		mb_printf("ioapic: id matches mp table\n");
	if (n <= IRQ_IDE)
		mbos_fail("ioapic: %u entries, none for irq %u\n", n, IRQ_IDE);
	mbos_ioapic_route(IRQ_COM1, MBOS_T_COM1, apicid);
	mbos_ioapic_route(IRQ_IDE, MBOS_T_IDE, apicid);
	mbos_pic_mask();
	mb_printf("ioapic: irq %u to vector %u, irq %u to vector %u; 8259s masked\n", IRQ_COM1,
		  MBOS_T_COM1, IRQ_IDE, MBOS_T_IDE);
}

/* Run entry as process 1 until it ends. */
static struct mbos_proc *run_user(const char *entry)
{
	struct mbos_proc *p = mbos_proc_spawn(0, entry, 0);

	mbos_sched();
	return p;
}

static void step_timer(void)
{
	struct mbos_proc *p;
	uint32_t t0;

	sti();
	t0 = mbos_ticks;
	for (uint32_t i = 0; mbos_ticks - t0 < 3 && i < SPIN_LIMIT; i++)
		;
	cli();
	if (mbos_ticks - t0 < 3)
		mbos_fail("timer: no interrupts in a kernel spin loop\n");
	mb_printf("timer: kernel ok\n");
	t0 = mbos_ticks;
	for (unsigned i = 0; i < 10 && mbos_ticks == t0; i++)
		sti_hlt_cli();
	if (mbos_ticks == t0)
		mbos_fail("timer: hlt woke without a tick\n");
	mb_printf("timer: hlt ok\n");
	p = run_user(mbos_user_timer);
	if (p->faulted)
		mbos_fail("timer: user program trapped: vector %u error code 0x%x\n", p->fault_vec,
			  p->fault_err);
	if (p->exit_code || p->uticks == 0)
		mbos_fail("timer: no tick interrupted user mode\n");
	mb_printf("timer: user ok\n");
}

static void expect_if(int want, const char *where)
{
	if (((read_eflags() & X86_RFLAGS_IF) != 0) != want)
		mbos_fail("if: IF %s %s\n", want ? "clear" : "set", where);
}

/* A process at entry must end in #GP(err). */
static void expect_gp(const char *entry, uint32_t err, const char *what)
{
	struct mbos_proc *p = run_user(entry);

	if (!p->faulted)
		mbos_fail("%s: no fault (exit %u)\n", what, p->exit_code);
	if (p->fault_vec != 13 || p->fault_err != err)
		mbos_fail("%s: vector %u error code 0x%x, not #GP(0x%x)\n", what, p->fault_vec,
			  p->fault_err, err);
}

static void step_if(void)
{
	uint32_t r;

	sti();
	expect_if(1, "after sti");
	mbos_pushcli();
	expect_if(0, "at pushcli depth 1");
	mbos_pushcli();
	expect_if(0, "at pushcli depth 2");
	mbos_popcli();
	expect_if(0, "back at depth 1");
	mbos_popcli();
	expect_if(1, "at depth 0, set before");
	cli();
	mbos_pushcli();
	mbos_pushcli();
	mbos_popcli();
	mbos_popcli();
	expect_if(0, "at depth 0, clear before");
	if (mbos_ncli() != 0)
		mbos_fail("if: pushcli depth %d at the end\n", mbos_ncli());
	mb_printf("if: pushcli/popcli nesting ok\n");

	sti();
	__asm__ volatile("int %0" : : "i"(MBOS_T_TEST) : "memory");
	expect_if(1, "after the iret from vector 65");
	if (mbos_gate_if[1] || !mbos_gate_frame_if)
		mbos_fail("if: interrupt gate %u: IF %u inside, %u in the frame\n", MBOS_T_TEST,
			  mbos_gate_if[1] != 0, mbos_gate_frame_if != 0);
	mbos_gate_if[0] = 0;
	__asm__ volatile("int %1" : "=a"(r) : "i"(MBOS_T_SYSCALL), "a"(SYS_TICKS) : "memory");
	cli();
	if (!mbos_gate_if[0])
		mbos_fail("if: trap gate %u cleared IF\n", MBOS_T_SYSCALL);
	mb_printf("if: interrupt gate clears IF, trap gate keeps it\n");
	expect_gp(mbos_user_int65, GP_ERR_IDT(MBOS_T_TEST), "user int $65");
	mb_printf("if: int $65 from user mode: #GP(0x%x) ok\n", GP_ERR_IDT(MBOS_T_TEST));
}

/* What mbos_user_proc's checksum is for process id. */
static uint32_t proc_sum(uint32_t id)
{
	uint32_t h = 0;

	for (uint32_t i = 0; i < USER_DATA_WORDS; i++)
		h = h * 31 + ((id * PROC_KEY) ^ i);
	return h;
}

static void check_proc(const struct mbos_proc *p)
{
	if (p->faulted)
		mbos_fail("proc %u: vector %u error code 0x%x\n", p->id, p->fault_vec,
			  p->fault_err);
	if (!p->has_result || p->exit_code)
		mbos_fail("proc %u: no result\n", p->id);
	if (p->result_bad)
		mbos_fail("proc %u: its data or stack changed across a switch\n", p->id);
	if (p->result != proc_sum(p->id))
		mbos_fail("proc %u: checksum 0x%x, want 0x%x\n", p->id, p->result, proc_sum(p->id));
	if (p->switches < PROC_SWITCHES)
		mbos_fail("proc %u: preempted too rarely\n", p->id);
	for (uint32_t i = 0; i < USER_DATA_WORDS; i++)
		if (p->data[i] != ((p->id * PROC_KEY) ^ i))
			mbos_fail("proc %u: its page holds another's data\n", p->id);
}

static void step_procs(void)
{
	struct mbos_proc *p[2];

	mbos_sched_turns = 0;
	for (unsigned i = 0; i < 2; i++)
		p[i] = mbos_proc_spawn(i, mbos_user_proc, i + 1);
	mbos_sched();
	for (unsigned i = 0; i < 2; i++)
		check_proc(p[i]);
	if (mbos_sched_turns < 3)
		mbos_fail("procs: the timer did not alternate them\n");
	mb_printf("procs: 2 processes, each preempted %u+ times, round robin\n", PROC_SWITCHES);
	for (unsigned i = 0; i < 2; i++)
		mb_printf("proc %u: checksum 0x%08x, its own page at 0x%x after every switch\n",
			  p[i]->id, p[i]->result, USER_DATA_VA);
}

static void step_user_io(void)
{
	expect_gp(mbos_user_in, 0, "user inb");
	expect_gp(mbos_user_out, 0, "user outb");
	mb_printf("user in/out: #GP ok\n");
	expect_gp(mbos_user_cli, 0, "user cli");
	mb_printf("user cli: #GP ok\n");
}

/* FNV-1a over a sector */
static uint32_t sector_sum(const uint8_t *p)
{
	uint32_t h = 2166136261u;

	for (unsigned i = 0; i < 512; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* Read sector 0 into sector0 and print its checksum and first bytes;
 * -1 if the read failed. */
int mbos_disk_report(void)
{
	uint32_t irqs;

	if (mbos_ide_read(0, sector0, 1, &irqs) < 0 || irqs == 0)
		return -1;
	mb_printf("disk: sector 0 checksum 0x%08x, first bytes", sector_sum(sector0));
	for (unsigned i = 0; i < 8; i++)
		mb_printf(" %02x", sector0[i]);
	mb_printf("\n");
	return 0;
}

static void ide_model(const uint16_t *id, char out[41])
{
	int n = 40;

	for (int i = 0; i < 20; i++) {
		out[2 * i] = (char)(id[27 + i] >> 8);
		out[2 * i + 1] = (char)id[27 + i];
	}
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == 0))
		n--;
	out[n] = 0;
}

static void ide_rw_checks(int *irq_ok)
{
	uint32_t irqs;

	for (unsigned i = 0; i < 512; i++)
		wbuf[i] = (uint8_t)(i * 13 + 0x5a);
	if (mbos_ide_write(1, wbuf, &irqs) < 0)
		mbos_fail("ide: write sector 1\n");
	*irq_ok &= irqs > 0;
	if (mbos_ide_read(1, rbuf, 1, &irqs) < 0)
		mbos_fail("ide: read sector 1\n");
	*irq_ok &= irqs > 0;
	for (unsigned i = 0; i < 512; i++)
		if (rbuf[i] != wbuf[i])
			mbos_fail("ide: sector 1 byte %u reads 0x%x, written 0x%x\n", i, rbuf[i],
				  wbuf[i]);
	mb_printf("ide: sector 1 written and read back\n");
	if (mbos_disk_report() < 0)
		mbos_fail("ide: read sector 0\n");
	if (mbos_ide_read(0, rbuf, 8, &irqs) < 0)
		mbos_fail("ide: read 8 sectors\n");
	*irq_ok &= irqs > 0;
	for (unsigned i = 0; i < 512; i++)
		if (rbuf[i] != sector0[i] || rbuf[512 + i] != wbuf[i])
			mbos_fail("ide: the 8-sector read differs at byte %u\n", i);
	mb_printf("ide: 8 sectors in one command ok\n");
}

/* Returns whether there is a disk. */
static int step_ide(void)
{
	uint16_t id[256];
	char model[41];
	uint32_t irqs, sectors;
	int irq_ok = 1;

	if (!mbos_ide_present() || mbos_ide_identify(id, &irqs) < 0) {
		mb_printf("ide: no disk\n");
		return 0;
	}
	irq_ok &= irqs > 0;
	sectors = id[60] | (uint32_t)id[61] << 16;
	ide_model(id, model);
	mb_printf("ide: %u sectors (lba28), model \"%s\"\n", sectors, model);
	if (sectors < 8)
		mbos_fail("ide: a disk of %u sectors, want 8 or more\n", sectors);
	ide_rw_checks(&irq_ok);
	if (!irq_ok)
		mbos_fail("ide: a command ended without an interrupt\n");
	mb_printf("ide: irq ok\n");
	return 1;
}

static uint32_t ram_of(const struct multiboot_info *mbi)
{
	uint32_t kib = mbi->mem_upper;

	if (kib > (RAM_MAX - 0x100000u) / 1024)
		kib = (RAM_MAX - 0x100000u) / 1024;
	return 0x100000u + kib * 1024;
}

void mb_main(uint32_t magic, const struct multiboot_info *mbi);
void mb_main(uint32_t magic, const struct multiboot_info *mbi)
{
	struct mbos_mp mp;
	uint32_t ram_end, apicid;
	int shell, disk;

	if (magic != MB_BOOT_MAGIC || !(mbi->flags & MULTIBOOT_INFO_MEMORY))
		mbos_fail("multiboot: magic 0x%x, info flags 0x%x\n", magic, mbi->flags);
	ram_end = ram_of(mbi);
	shell = (mbi->flags & MULTIBOOT_INFO_CMDLINE) &&
		word_in((const char *)mbi->cmdline, "shell");
	/* no RAM size: QEMU's mem_upper stops 128 KiB short of the end */
	mb_printf("mbos: multiboot ok\n");
	step_mp(&mp, ram_end);
	mbos_cpu_init((uint32_t)idle_stack + sizeof(idle_stack));
	mbos_paging_init(ram_end);
	mb_printf("cpu: own gdt, idt and 32-bit tss; 32-bit paging, 4 MiB pages, cr0.wp\n");
	apicid = step_lapic(&mp);
	step_ioapic(&mp, apicid);
	step_timer();
	step_if();
	step_procs();
	step_user_io();
	disk = step_ide();
	if (shell)
		mbos_shell(disk);
	mb_printf("done\n");
	mb_exit(0);
}
