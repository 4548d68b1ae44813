/* The BIOS data a small operating system reads before it trusts anything
 * else on a PC, built for Multiboot images (unless --no-mptable): the BIOS
 * data area's EBDA segment, base-memory size and COM1 base, and an Intel
 * MultiProcessor Specification 1.4 table (floating pointer and
 * configuration table) in the first KiB of the EBDA, where the spec says to
 * look first (§4).  It describes what KVM's in-kernel irqchip provides: one
 * processor (the BSP, local APIC ID 0), an ISA bus, the IOAPIC at
 * 0xfec00000 with ID MPTABLE_IOAPIC_ID, the ISA IRQs on its pins of the same
 * number, and the virtual-wire LINT0/LINT1 setup (IMCRP clear). */
#ifndef SHADOWVM_MPTABLE_H
#define SHADOWVM_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#define MPTABLE_BDA_GPA 0x400u
#define MPTABLE_BDA_SIZE 0x100u
#define MPTABLE_EBDA_GPA 0x9fc00u /* the last KiB of conventional memory */
#define MPTABLE_EBDA_SIZE 0x400u
/* what KVM's IOAPIC ID register resets to, and QEMU's MP table says (the
 * BSP's APIC ID too: xAPIC IDs need not differ from IOAPIC IDs) */
#define MPTABLE_IOAPIC_ID 0u
#define MPTABLE_LAPIC_GPA 0xfee00000u
#define MPTABLE_IOAPIC_GPA 0xfec00000u

/* MP spec 1.4 entry types (§4.3) */
enum { MP_PROC = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_IOINTR = 3, MP_LINTR = 4 };

/* Write the floating pointer and the configuration table into `ebda` (the
 * host view of MPTABLE_EBDA_SIZE bytes at MPTABLE_EBDA_GPA); returns the
 * bytes used. */
size_t mptable_write(uint8_t *ebda);

/* Write the BIOS data area fields into `bda` (MPTABLE_BDA_SIZE bytes at
 * MPTABLE_BDA_GPA): COM1 at 0x3f8, the EBDA's segment, 639 KiB of base
 * memory. */
void mptable_write_bda(uint8_t *bda);

#endif
