/* x86-64 architectural bits, each named once as position + mask.
 * References: Intel SDM Vol. 3A (ch. 2 control registers, ch. 3 segments,
 * ch. 4 paging, ch. 6 interrupts), AMD APM Vol. 2. */
#ifndef SHADOWVM_X86_H
#define SHADOWVM_X86_H

#include <stdint.h>

#define X86_BIT(n) (1ULL << (n))

/* CR0 (SDM 3A §2.5) */
#define X86_CR0_PE_BIT 0
#define X86_CR0_MP_BIT 1
#define X86_CR0_EM_BIT 2
#define X86_CR0_TS_BIT 3
#define X86_CR0_ET_BIT 4
#define X86_CR0_NE_BIT 5
#define X86_CR0_WP_BIT 16
#define X86_CR0_AM_BIT 18
#define X86_CR0_NW_BIT 29
#define X86_CR0_CD_BIT 30
#define X86_CR0_PG_BIT 31
#define X86_CR0_PE X86_BIT(X86_CR0_PE_BIT)
#define X86_CR0_MP X86_BIT(X86_CR0_MP_BIT)
#define X86_CR0_EM X86_BIT(X86_CR0_EM_BIT)
#define X86_CR0_TS X86_BIT(X86_CR0_TS_BIT)
#define X86_CR0_ET X86_BIT(X86_CR0_ET_BIT)
#define X86_CR0_NE X86_BIT(X86_CR0_NE_BIT)
#define X86_CR0_WP X86_BIT(X86_CR0_WP_BIT)
#define X86_CR0_AM X86_BIT(X86_CR0_AM_BIT)
#define X86_CR0_NW X86_BIT(X86_CR0_NW_BIT)
#define X86_CR0_CD X86_BIT(X86_CR0_CD_BIT)
#define X86_CR0_PG X86_BIT(X86_CR0_PG_BIT)

/* CR3 (SDM 3A §4.5): bits 11:0 are PWT/PCD/ignored without PCIDE. */
#define X86_CR3_ADDR_MASK 0x000ffffffffff000ULL

/* CR4 (SDM 3A §2.5) */
#define X86_CR4_PSE_BIT 4
#define X86_CR4_PAE_BIT 5
#define X86_CR4_PGE_BIT 7
#define X86_CR4_OSFXSR_BIT 9
#define X86_CR4_OSXMMEXCPT_BIT 10
#define X86_CR4_UMIP_BIT 11
#define X86_CR4_LA57_BIT 12
#define X86_CR4_FSGSBASE_BIT 16
#define X86_CR4_PCIDE_BIT 17
#define X86_CR4_OSXSAVE_BIT 18
#define X86_CR4_SMEP_BIT 20
#define X86_CR4_SMAP_BIT 21
#define X86_CR4_PKE_BIT 22
#define X86_CR4_PSE X86_BIT(X86_CR4_PSE_BIT)
#define X86_CR4_PAE X86_BIT(X86_CR4_PAE_BIT)
#define X86_CR4_PGE X86_BIT(X86_CR4_PGE_BIT)
#define X86_CR4_OSFXSR X86_BIT(X86_CR4_OSFXSR_BIT)
#define X86_CR4_OSXMMEXCPT X86_BIT(X86_CR4_OSXMMEXCPT_BIT)
#define X86_CR4_UMIP X86_BIT(X86_CR4_UMIP_BIT)
#define X86_CR4_LA57 X86_BIT(X86_CR4_LA57_BIT)
#define X86_CR4_FSGSBASE X86_BIT(X86_CR4_FSGSBASE_BIT)
#define X86_CR4_PCIDE X86_BIT(X86_CR4_PCIDE_BIT)
#define X86_CR4_OSXSAVE X86_BIT(X86_CR4_OSXSAVE_BIT)
#define X86_CR4_SMEP X86_BIT(X86_CR4_SMEP_BIT)
#define X86_CR4_SMAP X86_BIT(X86_CR4_SMAP_BIT)
#define X86_CR4_PKE X86_BIT(X86_CR4_PKE_BIT)

/* EFER MSR (SDM 3A §2.2.1, AMD APM 2 §3.1.7) */
#define X86_MSR_APIC_BASE 0x1bu
#define X86_APIC_BASE_BSP X86_BIT(8) /* IA32_APIC_BASE (SDM 3A §11.4.4) */
#define X86_APIC_BASE_EN X86_BIT(11)
#define X86_MSR_EFER 0xc0000080u
#define X86_MSR_TSC 0x10u
#define X86_MSR_STAR 0xc0000081u
#define X86_MSR_LSTAR 0xc0000082u
#define X86_MSR_CSTAR 0xc0000083u
#define X86_MSR_SFMASK 0xc0000084u
#define X86_MSR_FS_BASE 0xc0000100u
#define X86_MSR_GS_BASE 0xc0000101u
#define X86_MSR_KERNEL_GS_BASE 0xc0000102u
#define X86_MSR_TSC_AUX 0xc0000103u
#define X86_EFER_SCE_BIT 0
#define X86_EFER_LME_BIT 8
#define X86_EFER_LMA_BIT 10
#define X86_EFER_NXE_BIT 11
#define X86_EFER_SVME_BIT 12
#define X86_EFER_SCE X86_BIT(X86_EFER_SCE_BIT)
#define X86_EFER_LME X86_BIT(X86_EFER_LME_BIT)
#define X86_EFER_LMA X86_BIT(X86_EFER_LMA_BIT)
#define X86_EFER_NXE X86_BIT(X86_EFER_NXE_BIT)
#define X86_EFER_SVME X86_BIT(X86_EFER_SVME_BIT)

/* RFLAGS (SDM 1 §3.4.3, 3A §2.3) */
#define X86_RFLAGS_CF_BIT 0
#define X86_RFLAGS_FIXED_BIT 1 /* always reads 1 */
#define X86_RFLAGS_TF_BIT 8
#define X86_RFLAGS_IF_BIT 9
#define X86_RFLAGS_DF_BIT 10
#define X86_RFLAGS_IOPL_SHIFT 12
#define X86_RFLAGS_NT_BIT 14
#define X86_RFLAGS_RF_BIT 16
#define X86_RFLAGS_VM_BIT 17
#define X86_RFLAGS_AC_BIT 18
#define X86_RFLAGS_ID_BIT 21
#define X86_RFLAGS_CF X86_BIT(X86_RFLAGS_CF_BIT)
#define X86_RFLAGS_FIXED X86_BIT(X86_RFLAGS_FIXED_BIT)
#define X86_RFLAGS_TF X86_BIT(X86_RFLAGS_TF_BIT)
#define X86_RFLAGS_IF X86_BIT(X86_RFLAGS_IF_BIT)
#define X86_RFLAGS_DF X86_BIT(X86_RFLAGS_DF_BIT)
#define X86_RFLAGS_IOPL_MASK (3ULL << X86_RFLAGS_IOPL_SHIFT)
#define X86_RFLAGS_NT X86_BIT(X86_RFLAGS_NT_BIT)
#define X86_RFLAGS_RF X86_BIT(X86_RFLAGS_RF_BIT)
#define X86_RFLAGS_VM X86_BIT(X86_RFLAGS_VM_BIT)
#define X86_RFLAGS_AC X86_BIT(X86_RFLAGS_AC_BIT)
#define X86_RFLAGS_ID X86_BIT(X86_RFLAGS_ID_BIT)

/* Paging-structure entries, 4-level paging (SDM 3A §4.5, tables 4-14..4-20) */
#define X86_PTE_P_BIT 0
#define X86_PTE_W_BIT 1
#define X86_PTE_U_BIT 2
#define X86_PTE_PWT_BIT 3
#define X86_PTE_PCD_BIT 4
#define X86_PTE_A_BIT 5
#define X86_PTE_D_BIT 6
#define X86_PTE_PS_BIT 7  /* PDPTE/PDE only; in a PTE bit 7 is PAT */
#define X86_PTE_PAT_BIT 7 /* 4 KiB PTE */
#define X86_PTE_G_BIT 8
#define X86_PTE_PAT_LARGE_BIT 12 /* 2 MiB / 1 GiB leaves */
#define X86_PTE_NX_BIT 63
#define X86_PTE_P X86_BIT(X86_PTE_P_BIT)
#define X86_PTE_W X86_BIT(X86_PTE_W_BIT)
#define X86_PTE_U X86_BIT(X86_PTE_U_BIT)
#define X86_PTE_PWT X86_BIT(X86_PTE_PWT_BIT)
#define X86_PTE_PCD X86_BIT(X86_PTE_PCD_BIT)
#define X86_PTE_A X86_BIT(X86_PTE_A_BIT)
#define X86_PTE_D X86_BIT(X86_PTE_D_BIT)
#define X86_PTE_PS X86_BIT(X86_PTE_PS_BIT)
#define X86_PTE_PAT X86_BIT(X86_PTE_PAT_BIT)
#define X86_PTE_G X86_BIT(X86_PTE_G_BIT)
#define X86_PTE_PAT_LARGE X86_BIT(X86_PTE_PAT_LARGE_BIT)
#define X86_PTE_NX X86_BIT(X86_PTE_NX_BIT)
/* Address field of a non-leaf entry or 4 KiB leaf, bits 51:12 (the
 * MAXPHYADDR limit is checked separately as a reserved-bit rule). */
#define X86_PTE_ADDR_MASK 0x000ffffffffff000ULL
#define X86_PTE_ADDR_2M_MASK 0x000fffffffe00000ULL
#define X86_PTE_ADDR_1G_MASK 0x000fffffc0000000ULL

#define X86_PAGE_SHIFT 12
#define X86_PAGE_SIZE (1ULL << X86_PAGE_SHIFT)
#define X86_PAGE_MASK (~(X86_PAGE_SIZE - 1))
#define X86_PT_ENTRIES 512
#define X86_PT_LEVELS 4 /* level 4 = PML4 .. level 1 = PT */
/* Bits of the linear address that index the table at `level` (1..5). */
#define X86_LEVEL_SHIFT(level) (X86_PAGE_SHIFT + 9 * ((level)-1))
#define X86_LEVEL_INDEX(va, level) ((((uint64_t)(va)) >> X86_LEVEL_SHIFT(level)) & 0x1ff)
#define X86_LEVEL_SIZE(level) (1ULL << X86_LEVEL_SHIFT(level))

/* Page-fault error code (SDM 3A §4.7) */
#define X86_PF_P_BIT 0
#define X86_PF_W_BIT 1
#define X86_PF_U_BIT 2
#define X86_PF_RSVD_BIT 3
#define X86_PF_I_BIT 4
#define X86_PF_PK_BIT 5
#define X86_PF_P X86_BIT(X86_PF_P_BIT)
#define X86_PF_W X86_BIT(X86_PF_W_BIT)
#define X86_PF_U X86_BIT(X86_PF_U_BIT)
#define X86_PF_RSVD X86_BIT(X86_PF_RSVD_BIT)
#define X86_PF_I X86_BIT(X86_PF_I_BIT)
#define X86_PF_PK X86_BIT(X86_PF_PK_BIT)

/* Exception vectors (SDM 3A §6.3.1) */
#define X86_EXC_DE 0
#define X86_EXC_DB 1
#define X86_EXC_NMI 2
#define X86_EXC_BP 3
#define X86_EXC_OF 4
#define X86_EXC_BR 5
#define X86_EXC_UD 6
#define X86_EXC_NM 7
#define X86_EXC_DF 8
#define X86_EXC_TS 10
#define X86_EXC_NP 11
#define X86_EXC_SS 12
#define X86_EXC_GP 13
#define X86_EXC_PF 14
#define X86_EXC_MF 16
#define X86_EXC_AC 17
#define X86_EXC_MC 18
#define X86_EXC_XM 19
#define X86_EXC_VE 20
#define X86_EXC_CP 21
#define X86_EXC_COUNT 32 /* vectors 0..31 are the architecture's; 32..255 are interrupts */

/* Segment descriptors (SDM 3A §3.4.5): access byte and flags. */
#define X86_SEG_TYPE_CODE_XR 0xa     /* execute/read, accessed clear */
#define X86_SEG_TYPE_DATA_RW 0x2     /* read/write */
#define X86_SEG_TYPE_TSS64_AVAIL 0x9 /* system: 64-bit TSS available */
#define X86_SEG_TYPE_TSS64_BUSY 0xb
#define X86_DESC_TYPE_SHIFT 40
#define X86_DESC_S_BIT 44 /* 1 = code/data, 0 = system */
#define X86_DESC_DPL_SHIFT 45
#define X86_DESC_P_BIT 47
#define X86_DESC_AVL_BIT 52
#define X86_DESC_L_BIT 53 /* 64-bit code segment */
#define X86_DESC_DB_BIT 54
#define X86_DESC_G_BIT 55
#define X86_DESC_S X86_BIT(X86_DESC_S_BIT)
#define X86_DESC_P X86_BIT(X86_DESC_P_BIT)
#define X86_DESC_L X86_BIT(X86_DESC_L_BIT)
#define X86_DESC_DB X86_BIT(X86_DESC_DB_BIT)
#define X86_DESC_G X86_BIT(X86_DESC_G_BIT)
#define X86_DESC_DPL(d) (((uint64_t)(d)&3) << X86_DESC_DPL_SHIFT)
#define X86_DESC_TYPE(t) (((uint64_t)(t)&0xf) << X86_DESC_TYPE_SHIFT)

/* Selector fields (SDM 3A §3.4.2) */
#define X86_SEL_RPL_MASK 3
#define X86_SEL_TI 4
#define X86_SEL_INDEX_SHIFT 3

/* Code/data and system descriptor fields (SDM 3A §3.4.5, figure 3-8): base
 * 31:0 split over bits 16..39 and 56..63, limit 19:0 over bits 0..15 and
 * 48..51 (in pages when G is set). */
static inline uint32_t x86_desc_base(uint64_t d)
{
	return (uint32_t)(((d >> 16) & 0xffffff) | ((d >> 56 & 0xff) << 24));
}

static inline uint32_t x86_desc_limit(uint64_t d)
{
	uint32_t raw = (uint32_t)((d & 0xffff) | ((d >> 48 & 0xf) << 16));

	return d & X86_DESC_G ? (raw << 12) | 0xfff : raw;
}

static inline unsigned x86_desc_type(uint64_t d)
{
	return (unsigned)(d >> X86_DESC_TYPE_SHIFT) & 0xf;
}
static inline unsigned x86_desc_dpl(uint64_t d)
{
	return (unsigned)(d >> X86_DESC_DPL_SHIFT) & 3;
}
static inline int x86_desc_bit(uint64_t d, unsigned bit)
{
	return (int)(d >> bit & 1);
}

/* A flat (base 0, limit 4 GiB) code or data descriptor. */
static inline uint64_t x86_desc_flat(unsigned type, unsigned dpl, uint64_t flags)
{
	return 0xffffull | (0xfull << 48) | X86_DESC_TYPE(type) | X86_DESC_S | X86_DESC_P |
	       X86_DESC_G | X86_DESC_DPL(dpl) | flags;
}

/* The 16-byte descriptor of a 64-bit TSS at `base`, `limit` bytes - 1
 * (SDM 3A §8.2.3, figure 8-4). */
static inline void x86_desc_tss64(uint64_t out[2], uint64_t base, uint32_t limit, unsigned type)
{
	out[0] = (limit & 0xffff) | ((uint64_t)(limit >> 16 & 0xf) << 48) |
		 ((base & 0xffffff) << 16) | X86_DESC_TYPE(type) | X86_DESC_P |
		 ((base >> 24 & 0xff) << 56);
	out[1] = base >> 32;
}

/* IDT gate (SDM 3A §6.14.1, figure 6-8): 16 bytes in long mode.  The low
 * quadword holds offset 15:0, the selector, IST, type, DPL, P and offset
 * 31:16; the high one offset 63:32. */
#define X86_GATE_TYPE_INTR 0xe
#define X86_GATE_TYPE_TRAP 0xf
#define X86_GATE_SEL_SHIFT 16
#define X86_GATE_IST_SHIFT 32

struct x86_gate64 {
	uint64_t lo, hi;
};
_Static_assert(sizeof(struct x86_gate64) == 16, "long-mode gate");

static inline struct x86_gate64 x86_gate(uint64_t off, uint16_t sel, unsigned ist, unsigned type,
					 unsigned dpl)
{
	return (struct x86_gate64){
		.lo = (off & 0xffff) | ((uint64_t)sel << X86_GATE_SEL_SHIFT) |
		      ((uint64_t)(ist & 7) << X86_GATE_IST_SHIFT) | X86_DESC_TYPE(type) |
		      X86_DESC_DPL(dpl) | X86_DESC_P | ((off >> 16 & 0xffff) << 48),
		.hi = off >> 32,
	};
}

static inline unsigned x86_gate_ist(uint64_t lo)
{
	return (unsigned)(lo >> X86_GATE_IST_SHIFT) & 7;
}
static inline uint16_t x86_gate_sel(uint64_t lo)
{
	return (uint16_t)(lo >> X86_GATE_SEL_SHIFT);
}
static inline uint64_t x86_gate_offset(uint64_t lo, uint64_t hi)
{
	return (lo & 0xffff) | ((lo >> 48 & 0xffff) << 16) | (hi << 32);
}

/* The 64-bit TSS (SDM 3A §8.7, figure 8-11). */
struct x86_tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));
#define X86_TSS64_LIMIT 0x67u

_Static_assert(__builtin_offsetof(struct x86_tss64, rsp[0]) == 0x04, "TSS RSP0");
_Static_assert(__builtin_offsetof(struct x86_tss64, ist[0]) == 0x24, "TSS IST1");
_Static_assert(__builtin_offsetof(struct x86_tss64, iomap_base) == 0x66, "TSS I/O map base");
_Static_assert(sizeof(struct x86_tss64) == X86_TSS64_LIMIT + 1, "TSS size");

/* CPUID feature bits the VMM reads (SDM 2A CPUID, AMD APM 3 appendix E):
 * leaf, register, bit. */
#define X86_CPUID_FEATURES 0x1u
#define X86_CPUID_1_ECX_PCID_BIT 17
#define X86_CPUID_1_ECX_XSAVE_BIT 26
#define X86_CPUID_EXT_FEATURES 0x7u
#define X86_CPUID_7_EBX_FSGSBASE_BIT 0
#define X86_CPUID_7_EBX_SMEP_BIT 7
#define X86_CPUID_7_EBX_SMAP_BIT 20
#define X86_CPUID_7_ECX_UMIP_BIT 2
#define X86_CPUID_7_ECX_PKU_BIT 3
#define X86_CPUID_7_ECX_LA57_BIT 16
#define X86_CPUID_EXT_INFO 0x80000001u
#define X86_CPUID_E1_EDX_NX_BIT 20
#define X86_CPUID_E1_EDX_PAGE1GB_BIT 26
#define X86_CPUID_ADDR_SIZES 0x80000008u /* EAX 7:0: MAXPHYADDR */
#define X86_CPUID_HV_BASE 0x40000000u    /* hypervisor leaves (not architectural) */

/* RFLAGS bits that are reserved (bits 63:22, 15, 5, 3; bit 1 reads 1), and
 * the ones 64-bit SYSRET loads from R11 (SDM 2B SYSRET: R11 & 3C7FD7H | 2). */
#define X86_RFLAGS_RESERVED 0xffffffffffc08028ull
#define X86_RFLAGS_SYSRET_MASK 0x3c7fd7ull

/* Canonical 48-bit linear address (SDM 3A §3.3.7.1) */
static inline int x86_is_canonical48(uint64_t va)
{
	int64_t s = (int64_t)(va << 16) >> 16;
	return (uint64_t)s == va;
}

#endif
