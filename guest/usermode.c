/* usermode: a CPL3 process under the guest kernel.  The kernel loads its own
 * GDT/TSS/IDT, enables SYSCALL, maps user code and stack, and enters CPL3 by
 * iretq.  The user program makes system calls by `syscall` (answered by
 * sysretq) and by `int $0x80` (a DPL 3 gate), writes and reads pages that the
 * kernel's #PF handler maps on demand, and ends with an exit system call. */
#include "cpu.h"
#include "guest.h"
#include "paging.h"
#include "pmem.h"
#include "trap.h"
#include "user.h"

#define STR_(x) #x
#define STR(x) STR_(x)

#define USER_CODE_VA 0x0000400000000000
#define USER_STACK_VA 0x00004000000ff000 /* one page; top = +4096 */
#define USER_DEMAND_VA 0x0000400000200000
#define SYS_ECHO 1  /* (v) prints v, returns 2 * v */
#define SYS_WRITE 2 /* (buf, len) prints the user's bytes, returns len */
#define SYS_EXIT 60 /* (status) ends the process */
#define INT_SYSCALL 0x80

/* The user program: position-independent, in its own page-aligned section
 * that the kernel maps at USER_CODE_VA. */
__asm__(".section .text.user, \"ax\"\n"
	".balign 4096\n"
	"user_text_start:\n"
	"	movq $0x5a5a5a5a, %r12\n" /* callee-saved markers: must survive */
	"	movq $0x1234, %rbx\n"
	"	movl $" STR(
		SYS_ECHO) ", %eax\n"
			  "	movl $21, %edi\n"
			  "	syscall\n"
			  "	movq %rax, %rdi\n"
			  "	movl $" STR(
				  SYS_ECHO) ", %eax\n"
					    "	int $" STR(
						    INT_SYSCALL) "\n"
								 "	movq %rax, %r13\n"
								 "	leaq user_msg(%rip), %rdi\n"
								 "	movl $user_msg_end - user_msg, %esi\n"
								 "	movl $" STR(
									 SYS_WRITE) ", %eax\n"
										    "	syscall\n"
										    "	movabsq $" STR(
											    USER_DEMAND_VA) ", %r14\n"
													    "	movq %r13, 8(%r14)\n" /* write to an unmapped page */
													    "	movq 8(%r14), %rdi\n"
													    "	movl $" STR(
														    SYS_ECHO) ", %eax\n"
															      "	syscall\n"
															      "	movq 0x1010(%r14), %rdi\n" /* read from an unmapped page */
															      "	movl $" STR(
																      SYS_ECHO) ", %eax\n"
																		"	int $" STR(
																			INT_SYSCALL) "\n"
																				     "	movq %r12, %rdi\n"
																				     "	xorq $0x5a5a5a5a, %rdi\n"
																				     "	movq %rbx, %rsi\n"
																				     "	xorq $0x1234, %rsi\n"
																				     "	orq %rsi, %rdi\n"
																				     "	movl $" STR(
																					     SYS_EXIT) ", %eax\n"
																						       "	syscall\n"
																						       "	ud2\n"
																						       "user_msg: .ascii \"hello from ring 3\\n\"\n"
																						       "user_msg_end:\n"
																						       ".balign 4096\n"
																						       "user_text_end:\n"
																						       ".text\n");

extern const char user_text_start[], user_text_end[];

static unsigned nsyscall, nint, npf;

static uint64_t sys(const char *via, int user, uint64_t nr, uint64_t a0, uint64_t a1)
{
	char buf[64];

	switch (nr) {
	case SYS_ECHO:
		printf("sys: via=%s user=%d nr=%lu arg=%lu -> %lu\n", via, user, (unsigned long)nr,
		       (unsigned long)a0, (unsigned long)(2 * a0));
		return 2 * a0;
	case SYS_WRITE:
		if (a1 >= sizeof(buf))
			a1 = sizeof(buf) - 1;
		memcpy(buf, (const void *)(uintptr_t)a0, a1);
		buf[a1] = 0;
		printf("sys: via=%s user=%d nr=%lu len=%lu text: %s", via, user, (unsigned long)nr,
		       (unsigned long)a1, buf);
		return a1;
	case SYS_EXIT:
		printf("sys: via=%s user=%d nr=%lu status=%lu\n", via, user, (unsigned long)nr,
		       (unsigned long)a0);
		user_return(a0);
	default:
		printf("sys: via=%s unknown nr=%lu\n", via, (unsigned long)nr);
		check(0, "known system call");
		return (uint64_t)-1;
	}
}

static uint64_t on_syscall(struct syscall_frame *f)
{
	nsyscall++;
	check(f->rsp > USER_STACK_VA && f->rsp <= USER_STACK_VA + X86_PAGE_SIZE,
	      "syscall saved the user stack pointer");
	return sys("syscall", 1, f->rax, f->rdi, f->rsi);
}

static int on_kernel_stack(void)
{
	uint64_t here = (uint64_t)(uintptr_t)&here;
	uint64_t top = trap_kernel_stack_top();

	return here < top && here > top - 16384;
}

static void on_int80(struct trap_frame *f)
{
	nint++;
	check(on_kernel_stack(), "int $0x80 runs on TSS.RSP0");
	check(f->rsp > USER_STACK_VA && f->rsp <= USER_STACK_VA + X86_PAGE_SIZE,
	      "int frame holds the user stack pointer");
	f->rax = sys("int80", trap_from_user(f), f->rax, f->rdi, f->rsi);
}

static void on_pf(struct trap_frame *f)
{
	uint64_t cr2 = read_cr2();
	int ok = trap_from_user(f) && !(f->error & X86_PF_P) &&
		 cr2 - USER_DEMAND_VA < 16 * X86_PAGE_SIZE;

	printf("pf: err=0x%lx cr2=0x%lx user=%d -> %s\n", (unsigned long)f->error,
	       (unsigned long)cr2, trap_from_user(f), ok ? "map a fresh page, retry" : "kill");
	if (!ok) {
		check(0, "expected user page fault");
		user_return(GUEST_EXIT_RUNTIME);
	}
	npf++;
	pt_map(read_cr3(), cr2 & X86_PAGE_MASK, pmem_alloc(), X86_PTE_U | X86_PTE_W | X86_PTE_NX);
	invlpg(cr2);
}

static uint64_t setup(const struct shadowvm_boot_info *bi)
{
	uint64_t root;

	pmem_init(bi);
	trap_init();
	trap_set_handler(X86_EXC_PF, on_pf);
	trap_set_handler(INT_SYSCALL, on_int80);
	trap_set_dpl(INT_SYSCALL, 3);
	syscall_init(on_syscall);
	check((read_efer() & X86_EFER_SCE) != 0, "EFER.SCE reads back set");
	root = pt_new_identity(bi->ram_size);
	user_map_text(root, USER_CODE_VA, user_text_start, user_text_end);
	pt_map(root, USER_STACK_VA, pmem_alloc(), X86_PTE_U | X86_PTE_W | X86_PTE_NX);
	write_cr3(root);
	printf("usermode: GDT/TSS/IDT loaded, SYSCALL enabled, user code at 0x%lx, stack top 0x%lx\n",
	       (unsigned long)USER_CODE_VA, (unsigned long)(USER_STACK_VA + X86_PAGE_SIZE));
	return root;
}

static void report_demand(uint64_t root)
{
	for (unsigned i = 0; i < 2; i++) {
		uint64_t va = USER_DEMAND_VA + i * X86_PAGE_SIZE;
		uint64_t *pte = pt_pte(root, va);
		uint64_t e = pte ? *pte : 0;

		printf("usermode: demand page 0x%lx present=%d user=%d A=%d D=%d\n",
		       (unsigned long)va, !!(e & X86_PTE_P), !!(e & X86_PTE_U), !!(e & X86_PTE_A),
		       !!(e & X86_PTE_D));
		check((e & (X86_PTE_P | X86_PTE_U | X86_PTE_A)) ==
				      (X86_PTE_P | X86_PTE_U | X86_PTE_A) &&
			      !!(e & X86_PTE_D) == (i == 0),
		      "demand page A/D");
	}
}

int main(const struct shadowvm_boot_info *bi)
{
	uint64_t root = setup(bi);
	uint64_t status;

	printf("usermode: entering CPL3 by iretq\n");
	status = user_run(USER_CODE_VA, USER_STACK_VA + X86_PAGE_SIZE, 0);
	printf("usermode: back in the kernel, process exit status %lu\n", (unsigned long)status);
	check(status == 0, "user registers survived the system calls");
	check(nsyscall == 4 && nint == 2 && npf == 2, "two int $0x80, four syscall, two faults");
	report_demand(root);
	printf("summary: syscall=%u int80=%u page faults=%u failures=%u\n", nsyscall, nint, npf,
	       check_failures());
	return (int)check_failures();
}
