/* faults: provokes every exception the guest kernel can cause on purpose and
 * prints what its handler saw: #DE, #UD, #GP, #BP, and #PF with each
 * error-code combination reachable at CPL0 and CPL3 (not present, protection,
 * user/supervisor, fetch from NX, reserved bits).  Each case arms a probe with
 * the faulting instruction's address and a recovery address; the handler
 * records vector, error code and CR2, then resumes at the recovery address
 * (or, for one case, fixes the mapping and retries).  Guest argument raw=1
 * prints each error code as delivered, not its architectural value (see
 * arch_error), to compare the "hardware" of two hosts. */
#include "cpu.h"
#include "guest.h"
#include "paging.h"
#include "pmem.h"
#include "trap.h"
#include "user.h"

#define FVA 0x0000200000000000ull
#define NP_VA (FVA + 0x0000)           /* never mapped */
#define RO_S_VA (FVA + 0x1000)         /* supervisor, read-only, NX */
#define RW_S_VA (FVA + 0x2000)         /* supervisor, writable, NX */
#define RO_U_VA (FVA + 0x3000)         /* user, read-only, NX */
#define X_S_VA (FVA + 0x5000)          /* supervisor, read-only, executable */
#define RSVD_VA (FVA + 0x6000)         /* user, writable, a reserved address bit */
#define FIX_VA (FVA + 0x7000)          /* mapped by the handler on first touch */
#define RSVD4_VA 0x0000208000000000ull /* its PML4E has PS (reserved) set */
#define USER_CODE_VA 0x0000400000000000ull
#define USER_STACK_VA 0x00004000000ff000ull
#define NONCANON 0x8000000000000000ull
#define INT_USER_DONE 0x81
#define INT_DPL0 0x30

enum rip_kind { RIP_NONE, RIP_INSN, RIP_NEXT, RIP_TARGET, RIP_OTHER };
static const char *const rip_names[] = { "none", "insn", "next", "target", "other" };

/* What the armed case expects and what the handler saw. */
static struct {
	volatile uint64_t fault_rip, fixup;
	int armed, user;
	unsigned hits;
	uint64_t vector, error, cr2, rip;
	uint64_t intno; /* the `int n` a case executes, else 0 */
	void (*fix)(void);
} probe;

static uint64_t root;

/* Run `insn` at CPL0 after `setup`, with RDI = addr; label 1 is the faulting
 * instruction, label 2 where the handler resumes. */
#define KPROBE(setup, insn, addr)                                                 \
	__asm__ volatile("leaq 1f(%%rip), %%rax\n\tmovq %%rax, %0\n\t"            \
			 "leaq 2f(%%rip), %%rax\n\tmovq %%rax, %1\n\t" setup "\n" \
			 "1:\t" insn "\n2:\n"                                     \
			 : "=m"(probe.fault_rip), "=m"(probe.fixup)               \
			 : "D"(addr)                                              \
			 : "rax", "rcx", "rdx", "memory")

static void k_de(uint64_t a)
{
	KPROBE("xorl %%ecx, %%ecx\n\tmovl $1, %%eax\n\txorl %%edx, %%edx", "divl %%ecx", a);
}
static void k_ud(uint64_t a)
{
	KPROBE("", "ud2", a);
}
static void k_bp(uint64_t a)
{
	KPROBE("", "int3", a);
}
static void k_read(uint64_t a)
{
	KPROBE("", "movb (%%rdi), %%al", a);
}
static void k_write(uint64_t a)
{
	KPROBE("", "movb $1, (%%rdi)", a);
}
static void k_exec(uint64_t a)
{
	KPROBE("", "jmp *%%rdi", a);
}

/* User probes: u_<name> runs setup, u_<name>_insn faults, u_<name>_end
 * returns to the kernel through INT_USER_DONE. */
#define STR_(x) #x
#define STR(x) STR_(x)
#define UPROBE_ASM(n, setup, insn)                                \
	"u_" #n ":\n" setup "\nu_" #n "_insn:\n\t" insn "\nu_" #n \
	"_end:\n\tint $" STR(INT_USER_DONE) "\n"

__asm__(".section .text.user, \"ax\"\n"
	".balign 4096\n"
	"user_text_start:\n" UPROBE_ASM(read, "", "movb (%rdi), %al") UPROBE_ASM(write, "",
										 "movb $1, (%rdi)")
		UPROBE_ASM(exec, "", "jmp *%rdi") UPROBE_ASM(int3, "", "int3")
			UPROBE_ASM(intdpl0, "", "int $" STR(INT_DPL0)) UPROBE_ASM(hlt, "", "hlt")
				UPROBE_ASM(cli, "", "cli") UPROBE_ASM(ud, "", "ud2") UPROBE_ASM(
					de, "xorl %ecx, %ecx\n\tmovl $1, %eax\n\txorl %edx, %edx",
					"divl %ecx") ".balign 4096\n"
						     "user_text_end:\n"
						     ".text\n");

struct uprobe {
	const char *entry, *insn, *end;
};

extern const char user_text_start[], user_text_end[];
#define UPROBE(n)                                                 \
	extern const char u_##n[], u_##n##_insn[], u_##n##_end[]; \
	static const struct uprobe up_##n = { u_##n, u_##n##_insn, u_##n##_end }
UPROBE(read);
UPROBE(write);
UPROBE(exec);
UPROBE(int3);
UPROBE(intdpl0);
UPROBE(hlt);
UPROBE(cli);
UPROBE(ud);
UPROBE(de);

static uint64_t ualias(const char *p)
{
	return USER_CODE_VA + (uint64_t)(p - user_text_start);
}

static void on_fault(struct trap_frame *f)
{
	if (!probe.armed) {
		printf("faults: unexpected vector=%lu err=0x%lx user=%d\n",
		       (unsigned long)f->vector, (unsigned long)f->error, trap_from_user(f));
		guest_exit(GUEST_EXIT_RUNTIME);
	}
	probe.hits++;
	probe.vector = f->vector;
	probe.error = f->error;
	probe.user = trap_from_user(f);
	probe.cr2 = f->vector == X86_EXC_PF ? read_cr2() : 0;
	probe.rip = f->rip;
	if (probe.fix && probe.hits == 1) {
		probe.fix();
		return; /* retry the faulting instruction */
	}
	f->rip = probe.fixup;
}

static void on_user_done(struct trap_frame *f)
{
	(void)f;
	user_return(0);
}

/* The error code as the SDM defines it.  The nested runner's "hardware" is
 * QEMU 7.2 TCG, which deviates in two places: a reserved-bit #PF lacks P
 * (SDM 3A §4.7: RSVD is only reported with P set), and `int n` through a gate
 * of too high DPL gives #GP(n * 16 + 2) in long mode, not #GP(n * 8 + 2)
 * (SDM 3A §6.13: the selector index names the vector).  Printing the
 * architectural value keeps the transcript the same in both paging modes. */
static int raw_errors; /* raw=1: print the error code as delivered */

static uint64_t arch_error(void)
{
	uint64_t e = probe.error;

	if (probe.vector == X86_EXC_PF && (e & X86_PF_RSVD))
		e |= X86_PF_P;
	if (probe.vector == X86_EXC_GP && probe.intno && e == probe.intno * 16 + 2)
		e = probe.intno * 8 + 2;
	return e;
}

static enum rip_kind rip_kind(void)
{
	if (!probe.hits)
		return RIP_NONE;
	if (probe.rip == probe.fault_rip)
		return RIP_INSN;
	if (probe.rip == probe.fixup)
		return RIP_NEXT;
	if (probe.vector == X86_EXC_PF && probe.rip == probe.cr2)
		return RIP_TARGET;
	return RIP_OTHER;
}

static void arm(void (*fix)(void))
{
	probe.hits = 0;
	probe.vector = probe.error = probe.cr2 = probe.rip = 0;
	probe.user = 0;
	probe.intno = 0;
	probe.fix = fix;
	probe.armed = 1;
}

/* Print what the handler saw and check it against the expectation
 * (vector -1: no fault at all). */
static void report(int user, const char *name, int vec, uint64_t err, uint64_t cr2,
		   enum rip_kind rip)
{
	enum rip_kind got = rip_kind();
	uint64_t e = arch_error();

	probe.armed = 0;
	if (!probe.hits) {
		printf("cpl%d %-36s no fault\n", user ? 3 : 0, name);
		check(vec < 0, name);
		return;
	}
	printf("cpl%d %-36s vec=%lu err=0x%lx", user ? 3 : 0, name, (unsigned long)probe.vector,
	       (unsigned long)(raw_errors ? probe.error : e));
	if (probe.vector == X86_EXC_PF)
		printf(" cr2=0x%lx", (unsigned long)probe.cr2);
	printf(" rip=%s user=%d\n", rip_names[got], probe.user);
	check((int)probe.vector == vec && e == err && probe.cr2 == cr2 && got == rip &&
		      probe.user == user,
	      name);
}

static void kcase(const char *name, void (*fn)(uint64_t), uint64_t addr, int vec, uint64_t err,
		  uint64_t cr2, enum rip_kind rip)
{
	arm(NULL);
	fn(addr);
	report(0, name, vec, err, cr2, rip);
}

static void ucase(const char *name, const struct uprobe *u, uint64_t addr, int vec, uint64_t err,
		  uint64_t cr2, enum rip_kind rip)
{
	arm(NULL);
	if (u == &up_intdpl0)
		probe.intno = INT_DPL0;
	probe.fault_rip = ualias(u->insn);
	probe.fixup = ualias(u->end);
	user_run(ualias(u->entry), USER_STACK_VA + X86_PAGE_SIZE, addr);
	report(1, name, vec, err, cr2, rip);
}

static void map_fix_page(void)
{
	pt_map(root, FIX_VA, pmem_alloc(), X86_PTE_W | X86_PTE_NX);
	invlpg(FIX_VA);
}

/* Reserved bits: bit 51 of a leaf when it is above MAXPHYADDR, and PS in a
 * PML4E, reserved at any MAXPHYADDR (SDM 3A §4.5, table 4-15). */
static int setup_reserved(void)
{
	int leaf = cpu_maxphyaddr() < 52;

	pt_map(root, RSVD_VA, pmem_alloc(), X86_PTE_U | X86_PTE_W | X86_PTE_NX);
	if (leaf)
		*pt_pte(root, RSVD_VA) |= X86_BIT(51);
	pt_map(root, RSVD4_VA, pmem_alloc(), X86_PTE_W | X86_PTE_NX);
	*pt_entry(root, RSVD4_VA, 4, 0) |= X86_PTE_PS;
	return leaf;
}

static void setup(const struct shadowvm_boot_info *bi)
{
	static const unsigned vectors[] = { X86_EXC_DE, X86_EXC_BP, X86_EXC_UD, X86_EXC_GP,
					    X86_EXC_PF };

	pmem_init(bi);
	trap_init();
	for (unsigned i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
		trap_set_handler(vectors[i], on_fault);
	trap_set_dpl(X86_EXC_BP, 3);
	trap_set_handler(INT_USER_DONE, on_user_done);
	trap_set_dpl(INT_USER_DONE, 3);
	root = pt_new_identity(bi->ram_size);
	pt_map(root, RO_S_VA, pmem_alloc(), X86_PTE_NX);
	pt_map(root, RW_S_VA, pmem_alloc(), X86_PTE_W | X86_PTE_NX);
	pt_map(root, RO_U_VA, pmem_alloc(), X86_PTE_U | X86_PTE_NX);
	pt_map(root, X_S_VA, (uint64_t)(uintptr_t)user_text_start, 0);
	user_map_text(root, USER_CODE_VA, user_text_start, user_text_end);
	pt_map(root, USER_STACK_VA, pmem_alloc(), X86_PTE_U | X86_PTE_W | X86_PTE_NX);
	write_cr3(root);
	check((read_cr0() & X86_CR0_WP) && (read_efer() & X86_EFER_NXE), "CR0.WP and EFER.NXE on");
	printf("faults: own GDT/TSS/IDT and page tables loaded, CR0.WP=1, EFER.NXE=1\n");
}

static void kernel_wp_off(void)
{
	volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)(RO_S_VA + 0x11);

	write_cr0(read_cr0() & ~X86_CR0_WP);
	kcase("write, read-only page, CR0.WP=0", k_write, RO_S_VA + 0x11, -1, 0, 0, RIP_NONE);
	write_cr0(read_cr0() | X86_CR0_WP);
	invlpg(RO_S_VA);
	printf("cpl0 %-36s reads 0x%x, leaf D=%d\n", "  ... the write landed:", *p,
	       !!(*pt_pte(root, RO_S_VA) & X86_PTE_D));
	check(*p == 1 && (*pt_pte(root, RO_S_VA) & X86_PTE_D), "WP=0 write landed and set D");
}

static void kernel_fix_retry(void)
{
	arm(map_fix_page);
	k_write(FIX_VA + 0x50);
	report(0, "#PF write, not present: fix, retry", X86_EXC_PF, X86_PF_W, FIX_VA + 0x50,
	       RIP_INSN);
	printf("cpl0 %-36s hits=%u, reads 0x%x\n", "  ... retried after mapping:", probe.hits,
	       *(volatile uint8_t *)(uintptr_t)(FIX_VA + 0x50));
	check(probe.hits == 1 && *(volatile uint8_t *)(uintptr_t)(FIX_VA + 0x50) == 1,
	      "retry after fix succeeds");
}

static void kernel_cases(int rsvd_leaf)
{
	const uint64_t P = X86_PF_P, W = X86_PF_W, I = X86_PF_I, R = X86_PF_RSVD;

	kcase("#DE divide by zero", k_de, 0, X86_EXC_DE, 0, 0, RIP_INSN);
	kcase("#UD ud2", k_ud, 0, X86_EXC_UD, 0, 0, RIP_INSN);
	kcase("#GP non-canonical read", k_read, NONCANON, X86_EXC_GP, 0, 0, RIP_INSN);
	kcase("#BP int3", k_bp, 0, X86_EXC_BP, 0, 0, RIP_NEXT);
	kcase("#PF read, not present", k_read, NP_VA + 0x123, X86_EXC_PF, 0, NP_VA + 0x123,
	      RIP_INSN);
	kcase("#PF write, not present", k_write, NP_VA + 0x456, X86_EXC_PF, W, NP_VA + 0x456,
	      RIP_INSN);
	kcase("#PF fetch, not present", k_exec, NP_VA + 0x800, X86_EXC_PF, I, NP_VA + 0x800,
	      RIP_TARGET);
	kcase("#PF write, read-only page, CR0.WP=1", k_write, RO_S_VA + 0x10, X86_EXC_PF, P | W,
	      RO_S_VA + 0x10, RIP_INSN);
	kcase("#PF fetch, NX page", k_exec, RW_S_VA + 0x20, X86_EXC_PF, P | I, RW_S_VA + 0x20,
	      RIP_TARGET);
	if (rsvd_leaf)
		kcase("#PF read, reserved bit in PTE", k_read, RSVD_VA + 0x30, X86_EXC_PF, P | R,
		      RSVD_VA + 0x30, RIP_INSN);
	kcase("#PF write, reserved bit in PML4E", k_write, RSVD4_VA + 0x40, X86_EXC_PF, P | W | R,
	      RSVD4_VA + 0x40, RIP_INSN);
	kcase("read, user page (no SMAP)", k_read, RO_U_VA + 0x48, -1, 0, 0, RIP_NONE);
	kernel_wp_off();
	kernel_fix_retry();
}

static void user_cases(int rsvd_leaf)
{
	const uint64_t P = X86_PF_P, W = X86_PF_W, U = X86_PF_U, I = X86_PF_I, R = X86_PF_RSVD;
	const int PF = X86_EXC_PF, GP = X86_EXC_GP;

	ucase("read, read-only user page", &up_read, RO_U_VA + 0x58, -1, 0, 0, RIP_NONE);
	ucase("#PF read, supervisor page", &up_read, RW_S_VA + 0x60, PF, P | U, RW_S_VA + 0x60,
	      RIP_INSN);
	ucase("#PF write, supervisor page", &up_write, RW_S_VA + 0x68, PF, P | W | U,
	      RW_S_VA + 0x68, RIP_INSN);
	ucase("#PF write, read-only user page", &up_write, RO_U_VA + 0x70, PF, P | W | U,
	      RO_U_VA + 0x70, RIP_INSN);
	ucase("#PF read, not present", &up_read, NP_VA + 0x78, PF, U, NP_VA + 0x78, RIP_INSN);
	ucase("#PF write, not present", &up_write, NP_VA + 0x80, PF, W | U, NP_VA + 0x80, RIP_INSN);
	ucase("#PF fetch, not present", &up_exec, NP_VA + 0x900, PF, U | I, NP_VA + 0x900,
	      RIP_TARGET);
	ucase("#PF fetch, NX user page", &up_exec, RO_U_VA + 0x100, PF, P | U | I, RO_U_VA + 0x100,
	      RIP_TARGET);
	ucase("#PF fetch, supervisor page", &up_exec, X_S_VA, PF, P | U | I, X_S_VA, RIP_TARGET);
	if (rsvd_leaf)
		ucase("#PF read, reserved bit in PTE", &up_read, RSVD_VA + 0x88, PF, P | U | R,
		      RSVD_VA + 0x88, RIP_INSN);
	ucase("#PF read, reserved bit in PML4E", &up_read, RSVD4_VA + 0x90, PF, P | U | R,
	      RSVD4_VA + 0x90, RIP_INSN);
	ucase("#BP int3 (DPL 3 gate)", &up_int3, 0, X86_EXC_BP, 0, 0, RIP_NEXT);
	ucase("#GP int $0x30 (DPL 0 gate)", &up_intdpl0, 0, GP, (INT_DPL0 << 3) | 2, 0, RIP_INSN);
	ucase("#GP hlt", &up_hlt, 0, GP, 0, 0, RIP_INSN);
	ucase("#GP cli", &up_cli, 0, GP, 0, 0, RIP_INSN);
	ucase("#UD ud2", &up_ud, 0, X86_EXC_UD, 0, 0, RIP_INSN);
	ucase("#DE divide by zero", &up_de, 0, X86_EXC_DE, 0, 0, RIP_INSN);
	ucase("#GP non-canonical read", &up_read, NONCANON, GP, 0, 0, RIP_INSN);
}

int main(const struct shadowvm_boot_info *bi)
{
	char arg[8];
	int rsvd_leaf;

	raw_errors = cmdline_get(bi, "raw", arg, sizeof(arg)) && arg[0] == '1';
	setup(bi);
	rsvd_leaf = setup_reserved();
	kernel_cases(rsvd_leaf);
	user_cases(rsvd_leaf);
	printf("summary: failures=%u\n", check_failures());
	return (int)check_failures();
}
