#include "probe.h"

#include "cpu.h"
#include "guest.h"
#include "paging.h"
#include "pmem.h"
#include "trap.h"
#include "user.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* The armed probe: where the handler resumes, and what it saw. */
static struct {
	volatile uint64_t fixup;
	volatile int armed;
	struct probe_result *r;
} probe;

static uint64_t ustack_frame;

/* User probes: probe_u_<name> performs the access on RDI and falls through to
 * probe_u_<name>_end, which returns to the kernel by PROBE_INT_DONE. */
#define UPROBE_ASM(n, insn) \
	"probe_u_" #n ":\n\t" insn "\nprobe_u_" #n "_end:\n\tint $" STR(PROBE_INT_DONE) "\n"

__asm__(".section .text.user, \"ax\"\n"
	".balign 4096\n"
	"probe_utext_start:\n" UPROBE_ASM(read, "movb (%rdi), %al")
		UPROBE_ASM(write, "movb $" STR(PROBE_BYTE) ", (%rdi)")
			UPROBE_ASM(fetch, "call *%rdi") ".balign 4096\n"
							"probe_utext_end:\n"
							".text\n");

extern const char probe_utext_start[], probe_utext_end[];
extern const char probe_u_read[], probe_u_read_end[], probe_u_write[], probe_u_write_end[];
extern const char probe_u_fetch[], probe_u_fetch_end[];

static const char *const uprobes[3][2] = {
	{ probe_u_read, probe_u_read_end },
	{ probe_u_write, probe_u_write_end },
	{ probe_u_fetch, probe_u_fetch_end },
};

static uint64_t ualias(const char *p)
{
	return PROBE_USER_VA + (uint64_t)(p - probe_utext_start);
}

static void on_fault(struct trap_frame *f)
{
	struct probe_result *r = probe.r;

	if (!probe.armed || r->faulted) {
		printf("probe: unexpected vector=%lu err=0x%lx user=%d\n", (unsigned long)f->vector,
		       (unsigned long)f->error, trap_from_user(f));
		guest_exit(GUEST_EXIT_RUNTIME);
	}
	r->faulted = 1;
	r->user = trap_from_user(f);
	r->vector = f->vector;
	r->error = f->error;
	r->cr2 = f->vector == X86_EXC_PF ? read_cr2() : 0;
	r->rip = f->rip;
	f->rip = probe.fixup;
}

static void on_user_done(struct trap_frame *f)
{
	if (probe.armed && !probe.r->faulted)
		probe.r->value = (uint8_t)f->rax; /* what the read probe loaded */
	user_return(0);
}

void probe_init(void)
{
	static const unsigned vectors[] = { X86_EXC_DE, X86_EXC_BP, X86_EXC_UD, X86_EXC_GP,
					    X86_EXC_PF };

	for (unsigned i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
		trap_set_handler(vectors[i], on_fault);
	trap_set_handler(PROBE_INT_DONE, on_user_done);
	trap_set_dpl(PROBE_INT_DONE, 3);
}

void probe_map_user(uint64_t root)
{
	uint64_t stack_va = PROBE_USER_VA + (uint64_t)(probe_utext_end - probe_utext_start);

	if (!ustack_frame)
		ustack_frame = pmem_alloc();
	user_map_text(root, PROBE_USER_VA, probe_utext_start, probe_utext_end);
	pt_map(root, stack_va, ustack_frame, X86_PTE_U | X86_PTE_W);
}

/* Label 1 is the access, label 2 where the handler resumes.  A fetch calls
 * its target (a `ret`); RDX keeps RSP across a faulting call. */
static void kprobe(enum probe_access acc, uint64_t va)
{
	uint8_t v = 0;

	switch (acc) {
	case PROBE_READ:
		__asm__ volatile("leaq 2f(%%rip), %%rax\n\tmovq %%rax, %1\n"
				 "1:\tmovb (%%rdi), %0\n2:\n"
				 : "+c"(v), "=m"(probe.fixup)
				 : "D"(va)
				 : "rax", "memory");
		break;
	case PROBE_WRITE:
		__asm__ volatile("leaq 2f(%%rip), %%rax\n\tmovq %%rax, %0\n"
				 "1:\tmovb $" STR(PROBE_BYTE) ", (%%rdi)\n2:\n"
				 : "=m"(probe.fixup)
				 : "D"(va)
				 : "rax", "memory");
		break;
	case PROBE_FETCH:
		__asm__ volatile("leaq 2f(%%rip), %%rax\n\tmovq %%rax, %0\n\tmovq %%rsp, %%rdx\n"
				 "1:\tcall *%%rdi\n2:\tmovq %%rdx, %%rsp\n"
				 : "=m"(probe.fixup)
				 : "D"(va)
				 : "rax", "rdx", "memory");
		break;
	}
	if (acc == PROBE_READ)
		probe.r->value = v;
}

int probe_access(enum probe_access acc, int cpl, uint64_t va, struct probe_result *r)
{
	uint64_t stack_top =
		PROBE_USER_VA + (uint64_t)(probe_utext_end - probe_utext_start) + X86_PAGE_SIZE;

	memset(r, 0, sizeof(*r));
	probe.r = r;
	probe.armed = 1;
	if (cpl == 3) {
		probe.fixup = ualias(uprobes[acc][1]);
		user_run(ualias(uprobes[acc][0]), stack_top, va);
	} else {
		kprobe(acc, va);
	}
	probe.armed = 0;
	return r->faulted;
}

uint64_t probe_arch_error(const struct probe_result *r)
{
	if (r->vector == X86_EXC_PF && (r->error & X86_PF_RSVD))
		return r->error | X86_PF_P;
	return r->error;
}
