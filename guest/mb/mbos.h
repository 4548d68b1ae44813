/* mbos: a tiny Multiboot OS that leans on the PC the way xv6 does (see
 * mbos.c).  Constants shared by mbos_entry.S and the C files, and the
 * interfaces between mbos.c (the tests), mbos_cpu.c (descriptors, paging,
 * processes, traps), mbos_hw.c (MP table, APICs, IDE, COM1) and
 * mbos_shell.c.  32-bit code: no 64-bit division. */
#ifndef SHADOWVM_MBOS_H
#define SHADOWVM_MBOS_H

/* interrupt vectors: xv6's T_IRQ0 = 32 plus the IRQ */
#define MBOS_T_IRQ0 32
#define MBOS_T_TIMER (MBOS_T_IRQ0 + 0)
#define MBOS_T_COM1 (MBOS_T_IRQ0 + 4)
#define MBOS_T_IDE (MBOS_T_IRQ0 + 14)
#define MBOS_T_ERROR (MBOS_T_IRQ0 + 19)
#define MBOS_T_SPURIOUS 63
#define MBOS_T_SYSCALL 64 /* DPL 3 trap gate: IF stays as it was */
#define MBOS_T_TEST 65    /* DPL 0 interrupt gate: IF cleared, #GP from CPL3 */

/* system calls: EAX = number, EBX/ECX = arguments, EAX = result */
#define SYS_TICKS 1    /* timer interrupts so far */
#define SYS_UTICKS 2   /* of those, the ones that interrupted this process at CPL3 */
#define SYS_SWITCHES 3 /* times the timer preempted this process */
#define SYS_RESULT 4   /* EBX = checksum, ECX = nonzero if its data ever changed */
#define SYS_EXIT 5     /* EBX = exit code */

/* every process sees its code, data and stack at the same addresses; the
 * code pages are shared and read-only, the data and stack its own */
#define USER_CODE_VA 0x40000000
#define USER_DATA_VA 0x40010000
#define USER_STACK_VA 0x40020000
#define USER_STACK_TOP 0x40021000
#define USER_DATA_WORDS 1024

/* a process polls until the timer has preempted it this many times */
#define PROC_SWITCHES 3
/* loop passes a user program spins between two system calls: well over
 * one trap's cost, far under one tick (a few ms under TCG, 0.1 ms on
 * hardware) */
#define USER_SPIN 200000
/* process id's data page holds (id * PROC_KEY) ^ i in word i */
#define PROC_KEY 0x9e3779b9

#ifndef __ASSEMBLER__
#include <stdint.h>

#include "mbrt.h"

/* Print "FAIL: ..." and end the run with exit value 2 (status 5). */
#define mbos_fail(...)                           \
	do {                                     \
		mb_printf("FAIL: " __VA_ARGS__); \
		mb_exit(2);                      \
	} while (0)

/* what mbos_alltraps pushes, lowest address first (xv6's trapframe) */
struct mbos_tf {
	uint32_t edi, esi, ebp, oesp, ebx, edx, ecx, eax;
	uint32_t gs, fs, es, ds;
	uint32_t vector, err, eip, cs, eflags;
	uint32_t esp, ss; /* only when the trap came from CPL3 */
};

enum mbos_pstate { P_UNUSED, P_RUNNABLE, P_RUNNING, P_ZOMBIE };

struct mbos_proc {
	enum mbos_pstate state;
	uint32_t id;
	uint32_t context; /* saved ESP for mbos_swtch */
	uint32_t *pgdir;
	uint8_t *kstack;
	uint32_t *data; /* its user data page, as the kernel sees it */
	uint32_t switches, uticks;
	int faulted; /* a trap from CPL3 ended it: fault_vec, fault_err */
	uint32_t fault_vec, fault_err;
	int has_result;
	uint32_t result, result_bad, exit_code;
};

/* mbos_entry.S */
extern char mbos_vectors[]; /* 256 stubs, 16 bytes apart */
extern char mbos_user_start[], mbos_user_end[];
extern char mbos_user_timer[], mbos_user_proc[], mbos_user_int65[], mbos_user_in[];
extern char mbos_user_out[], mbos_user_cli[];
void mbos_trapret(void);
void mbos_swtch(uint32_t *save_esp, uint32_t load_esp);
void mbos_load_gdt(const void *gdtr);

/* mbos_cpu.c */
extern volatile uint32_t mbos_ticks;  /* timer interrupts */
extern volatile uint32_t mbos_uticks; /* of those, the ones from CPL3 */
/* IF inside vector 64's handler (trap gate) and vector 65's (interrupt gate) */
extern volatile uint32_t mbos_gate_if[2];
extern volatile uint32_t mbos_gate_frame_if; /* the IF vector 65's frame saved */
extern uint32_t mbos_sched_turns;            /* times the scheduler changed process */
void mbos_cpu_init(uint32_t idle_stack_top);
void mbos_paging_init(uint32_t ram_end);
void mbos_pushcli(void);
void mbos_popcli(void);
int mbos_ncli(void);
struct mbos_proc *mbos_proc_spawn(unsigned slot, const char *entry, uint32_t arg);
void mbos_sched(void);
void mbos_trap(struct mbos_tf *tf);

static inline uint32_t read_eflags(void)
{
	uint32_t v;
	__asm__ volatile("pushfl; popl %0" : "=r"(v));
	return v;
}

static inline void cli(void)
{
	__asm__ volatile("cli" : : : "memory");
}

static inline void sti(void)
{
	__asm__ volatile("sti" : : : "memory");
}

/* One atomic enable-and-wait: STI's shadow covers the HLT (SDM 2B STI), so
 * an interrupt that came since the caller's check wakes it. */
static inline void sti_hlt_cli(void)
{
	__asm__ volatile("sti; hlt; cli" : : : "memory");
}

/* mbos_hw.c */
struct mbos_mp {
	int found;
	unsigned ncpu, bsp_apicid, nioapic, ioapic_id;
	uint32_t ioapic_addr, lapic_addr;
	int imcrp;
};
void mbos_mp_find(struct mbos_mp *mp, uint32_t ram_end);
void mbos_lapic_init(uint32_t base);
uint32_t mbos_lapic_id(void);
/* the same register through `add` (an instruction a MOV emulator lacks) */
uint32_t mbos_lapic_id_by_add(void);
uint32_t mbos_lapic_version(void);
void mbos_lapic_eoi(void);
unsigned mbos_ioapic_init(uint32_t base, unsigned *id);
/* the ISA IRQs mbos routes through the IOAPIC */
#define IRQ_COM1 4
#define IRQ_IDE 14
void mbos_ioapic_route(unsigned irq, unsigned vector, unsigned apicid);
void mbos_ioapic_mask(unsigned irq, unsigned vector);
void mbos_pic_mask(void);
void mbos_ide_intr(void);
int mbos_ide_present(void);
int mbos_ide_identify(uint16_t id[256], uint32_t *irqs);
int mbos_ide_read(uint32_t lba, void *buf, unsigned count, uint32_t *irqs);
int mbos_ide_write(uint32_t lba, const void *buf, uint32_t *irqs);
void mbos_uart_init(void);
void mbos_uart_intr(void);
int mbos_uart_getc(void);

/* mbos.c */
int mbos_disk_report(void);

/* mbos_shell.c */
__attribute__((noreturn)) void mbos_shell(int have_disk);
#endif

#endif
