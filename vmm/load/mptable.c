#include <string.h>

#include "mptable.h"

/* Layouts of MP spec 1.4 §4.1 (floating pointer), §4.2 (table header) and
 * §4.3 (entries), in bytes. */
#define MP_FP_SIZE 16u
#define MP_HEADER_SIZE 44u
#define MP_PROC_SIZE 20u
#define MP_ENTRY_SIZE 8u
#define MP_SPEC_REV 4u          /* version 1.4 */
#define MP_PROC_EN 0x01u        /* CPU flags: enabled */
#define MP_PROC_BP 0x02u        /* the bootstrap processor */
#define MP_LAPIC_VERSION 0x14u  /* an integrated APIC, as KVM's reports */
#define MP_IOAPIC_VERSION 0x11u /* KVM's IOAPIC version register */
#define MP_INT_INT 0u           /* interrupt types (§4.3.4) */
#define MP_INT_NMI 1u
#define MP_INT_EXTINT 3u
#define MP_ALL_LAPICS 0xffu

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v), put16(p + 2, (uint16_t)(v >> 16));
}

/* The byte that makes `n` bytes at p sum to 0 (mod 256). */
static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return (uint8_t)-s;
}

static uint8_t *entry8(uint8_t *p, uint8_t type, uint8_t b1, uint8_t b2, uint8_t b3, uint32_t w)
{
	p[0] = type, p[1] = b1, p[2] = b2, p[3] = b3;
	put32(p + 4, w);
	return p + MP_ENTRY_SIZE;
}

/* An interrupt-assignment entry (§4.3.4, §4.3.5): type, interrupt type,
 * flags 0 (polarity and trigger as the bus says), source bus and IRQ,
 * destination APIC and its pin. */
static uint8_t *intr(uint8_t *p, uint8_t type, uint8_t kind, uint8_t irq, uint8_t apic, uint8_t pin)
{
	p[0] = type, p[1] = kind, p[2] = 0, p[3] = 0;
	p[4] = 0 /* bus 0, ISA */, p[5] = irq, p[6] = apic, p[7] = pin;
	return p + MP_ENTRY_SIZE;
}

size_t mptable_write(uint8_t *ebda)
{
	uint8_t *fp = ebda, *hdr = ebda + MP_FP_SIZE, *p = hdr + MP_HEADER_SIZE;
	uint16_t entries = 0, len;

	memset(ebda, 0, MPTABLE_EBDA_SIZE);
	/* the processor: local APIC ID 0 (KVM's vCPU 0), enabled, the BSP */
	p[0] = MP_PROC, p[1] = 0, p[2] = MP_LAPIC_VERSION, p[3] = MP_PROC_EN | MP_PROC_BP;
	put32(p + 4, 0x00000600u); /* signature: family 6 */
	put32(p + 8, 0x00000201u); /* features: FPU, APIC */
	p += MP_PROC_SIZE, entries++;
	p[0] = MP_BUS, p[1] = 0 /* bus ID */;
	memcpy(p + 2, "ISA   ", 6);
	p += MP_ENTRY_SIZE, entries++;
	p = entry8(p, MP_IOAPIC, MPTABLE_IOAPIC_ID, MP_IOAPIC_VERSION, 1 /* usable */,
		   MPTABLE_IOAPIC_GPA);
	entries++;
	/* ISA IRQ n on IOAPIC pin n, as KVM's default routing wires GSI n;
	 * IRQ 0 (no PIT here) and the cascade IRQ 2 are not listed */
	for (uint8_t irq = 1; irq < 16; irq++)
		if (irq != 2)
			p = intr(p, MP_IOINTR, MP_INT_INT, irq, MPTABLE_IOAPIC_ID, irq), entries++;
	p = intr(p, MP_LINTR, MP_INT_EXTINT, 0, MP_ALL_LAPICS, 0), entries++;
	p = intr(p, MP_LINTR, MP_INT_NMI, 0, MP_ALL_LAPICS, 1), entries++;
	len = (uint16_t)(p - hdr);

	memcpy(hdr, "PCMP", 4);
	put16(hdr + 4, len);
	hdr[6] = MP_SPEC_REV;
	memcpy(hdr + 8, "SHADOWVM", 8);
	memcpy(hdr + 16, "PC          ", 12);
	put16(hdr + 34, entries);
	put32(hdr + 36, MPTABLE_LAPIC_GPA);
	hdr[7] = checksum(hdr, len);

	memcpy(fp, "_MP_", 4);
	put32(fp + 4, MPTABLE_EBDA_GPA + MP_FP_SIZE);
	fp[8] = 1; /* length in 16-byte units */
	fp[9] = MP_SPEC_REV;
	/* feature bytes 0: a configuration table is present, IMCRP clear
	 * (virtual-wire mode, no IMCR to program) */
	fp[10] = checksum(fp, MP_FP_SIZE);
	return MP_FP_SIZE + len;
}

void mptable_write_bda(uint8_t *bda)
{
	put16(bda + 0x00, 0x3f8);                               /* COM1's base port */
	put16(bda + 0x0e, (uint16_t)(MPTABLE_EBDA_GPA >> 4));   /* EBDA segment */
	put16(bda + 0x13, (uint16_t)(MPTABLE_EBDA_GPA / 1024)); /* base memory, KiB */
}
