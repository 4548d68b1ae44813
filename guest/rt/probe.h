/* Probing one memory access at CPL0 or CPL3 and recording the exception it
 * raises: the handler notes vector, error code, CR2 and RIP, then resumes
 * after the probing instruction, so a guest can try accesses that may fault
 * and compare the outcome with what the architecture says.  Needs trap_init
 * first; CPL3 probes need the probe's user text and stack mapped in the
 * current address space (probe_map_user). */
#ifndef SHADOWVM_GUEST_PROBE_H
#define SHADOWVM_GUEST_PROBE_H

#include <stdint.h>

enum probe_access { PROBE_READ, PROBE_WRITE, PROBE_FETCH };

/* A write probe stores this byte, and a fetch probe calls its target, which
 * must hold it: `ret`.  So a page filled with it stays callable. */
#define PROBE_BYTE 0xc3u

/* Where probe_map_user puts the user probes' text and their stack: PML4
 * slot 254, kept free by guests that use CPL3 probes. */
#define PROBE_USER_VA 0x00007f0000000000ull
/* The `int` vector a user probe returns to the kernel by (DPL 3). */
#define PROBE_INT_DONE 0x8f

struct probe_result {
	int faulted;     /* the access raised an exception */
	int user;        /* the exception came from CPL3 */
	uint64_t vector; /* the exception's vector, error code, CR2 (#PF) */
	uint64_t error;
	uint64_t cr2;
	uint64_t rip;  /* RIP in the exception frame */
	uint8_t value; /* what a read that did not fault returned */
};

/* Route #DE, #BP, #UD, #GP and #PF to the probe handler.  An exception
 * while no probe is armed prints one line and ends the run. */
void probe_init(void);
/* Map the user probe text (user, read-only, executable) and a user stack
 * page (user, writable) at PROBE_USER_VA in `root`. */
void probe_map_user(uint64_t root);
/* Perform `acc` on `va` at CPL `cpl` (0 or 3); fills `r`, returns
 * r->faulted. */
int probe_access(enum probe_access acc, int cpl, uint64_t va, struct probe_result *r);
/* The error code as the SDM defines it.  The nested runner's "hardware"
 * (QEMU 7.2 TCG) reports a reserved-bit #PF without P (SDM 3A §4.7: RSVD is
 * only reported with P set); normalising keeps transcripts identical. */
uint64_t probe_arch_error(const struct probe_result *r);

#endif
