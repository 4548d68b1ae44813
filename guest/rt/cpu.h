/* Privileged-register helpers for guest kernels: control registers, TLB,
 * MSRs, CPUID.  Each is one instruction the VMM must emulate when the guest
 * kernel runs deprivileged (DESIGN.md §2). */
#ifndef SHADOWVM_GUEST_CPU_H
#define SHADOWVM_GUEST_CPU_H

#include <stdint.h>

#include "x86.h"

#define CPU_CR_ACCESSORS(n)                                                \
	static inline uint64_t read_cr##n(void)                            \
	{                                                                  \
		uint64_t v;                                                \
		__asm__ volatile("mov %%cr" #n ", %0" : "=r"(v));          \
		return v;                                                  \
	}                                                                  \
	static inline void write_cr##n(uint64_t v)                         \
	{                                                                  \
		__asm__ volatile("mov %0, %%cr" #n : : "r"(v) : "memory"); \
	}

CPU_CR_ACCESSORS(0)
CPU_CR_ACCESSORS(2)
CPU_CR_ACCESSORS(3)
CPU_CR_ACCESSORS(4)

/* Drop the TLB entry (and paging-structure caches) for one linear address. */
static inline void invlpg(uint64_t va)
{
	__asm__ volatile("invlpg (%0)" : : "r"(va) : "memory");
}

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr"
			 :
			 : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
			 : "memory");
}

static inline uint64_t read_efer(void)
{
	return rdmsr(X86_MSR_EFER);
}

static inline void write_efer(uint64_t v)
{
	wrmsr(X86_MSR_EFER, v);
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

/* MAXPHYADDR (CPUID 0x80000008 EAX[7:0]); 36 when the leaf is absent. */
static inline unsigned cpu_maxphyaddr(void)
{
	uint32_t r[4];

	cpuid(0x80000000u, 0, r);
	if (r[0] < 0x80000008u)
		return 36;
	cpuid(0x80000008u, 0, r);
	return r[0] & 0xff;
}

#endif
