#include "user.h"

#include "cpu.h"
#include "guest.h"
#include "paging.h"
#include "trap.h"

extern const char syscall_entry[];

uint64_t syscall_kernel_rsp;
static syscall_handler_t handler;

void syscall_init(syscall_handler_t fn)
{
	handler = fn;
	syscall_kernel_rsp = trap_kernel_stack_top();
	wrmsr(X86_MSR_STAR, ((uint64_t)GDT_KDATA << 48) | ((uint64_t)GDT_KCODE << 32));
	wrmsr(X86_MSR_LSTAR, (uint64_t)(uintptr_t)syscall_entry);
	wrmsr(X86_MSR_SFMASK, X86_RFLAGS_IF | X86_RFLAGS_TF | X86_RFLAGS_DF | X86_RFLAGS_AC);
	write_efer(read_efer() | X86_EFER_SCE);
}

uint64_t syscall_dispatch(struct syscall_frame *f)
{
	if (!handler) {
		printf("syscall: no handler, nr=%lu\n", (unsigned long)f->rax);
		guest_exit(GUEST_EXIT_RUNTIME);
	}
	return handler(f);
}

void user_map_text(uint64_t root, uint64_t va, const void *start, const void *end)
{
	uint64_t pa = (uint64_t)(uintptr_t)start;

	for (; pa < (uint64_t)(uintptr_t)end; pa += X86_PAGE_SIZE, va += X86_PAGE_SIZE)
		pt_map(root, va, pa, X86_PTE_U);
}
