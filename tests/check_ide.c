/* The IDE channel, driven as a guest's driver would, on real temporary
 * files: attach's refusals, IDENTIFY, PIO reads and writes at each width
 * with their interrupts, the error outcomes, nIEN, the floating bus, soft
 * reset, READ MULTIPLE and LBA48.  Expected values come from the ATA spec
 * or from the bytes the test itself put in the file. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ide.h"
#include "suites.h"

#define SECTOR IDE_SECTOR_SIZE
#define CMD (IDE_PORT_BASE + IDE_REG_COMMAND)
#define STATUS (IDE_PORT_BASE + IDE_REG_STATUS)
#define IDLE (IDE_STATUS_DRDY | IDE_STATUS_DSC) /* 0x50 */
#define DATA_READY (IDLE | IDE_STATUS_DRQ)      /* 0x58 */
#define FAILED (IDE_STATUS_DRDY | IDE_STATUS_ERR)

static struct ide ide;
static int line, edges; /* INTRQ as last reported, its rising edges */

/* The disks a test made: a path until attach or teardown unlinks it, and
 * the test's own descriptor to check the bytes with. */
static struct disk {
	char path[64];
	int fd;
} disks[2];

static void irq(void *opaque, int level)
{
	ck_assert_ptr_eq(opaque, &ide);
	ck_assert_int_ne(line, level); /* only changes are reported */
	edges += level && !line;
	line = level;
}

static void setup(void)
{
	ide_init(&ide, irq, &ide);
	line = edges = 0;
	for (unsigned i = 0; i < 2; i++)
		disks[i] = (struct disk){ .fd = -1 };
}

static void teardown(void)
{
	ide_close(&ide);
	for (unsigned i = 0; i < 2; i++) {
		if (disks[i].path[0])
			unlink(disks[i].path);
		if (disks[i].fd >= 0)
			close(disks[i].fd);
	}
}

/* Byte i of sector lba as make_disk() writes it. */
static uint8_t pattern(uint64_t lba, unsigned i)
{
	return (uint8_t)(lba * 13 + i * 7 + 1);
}

/* A fresh file of `sectors` sectors, each holding pattern(). */
static struct disk *make_disk(unsigned slot, uint64_t sectors)
{
	struct disk *d = &disks[slot];
	uint8_t buf[SECTOR];

	snprintf(d->path, sizeof(d->path), "/tmp/check_ide.XXXXXX");
	ck_assert_int_ge(d->fd = mkstemp(d->path), 0);
	for (uint64_t lba = 0; lba < sectors; lba++) {
		for (unsigned i = 0; i < SECTOR; i++)
			buf[i] = pattern(lba, i);
		ck_assert_int_eq(pwrite(d->fd, buf, SECTOR, (off_t)(lba * SECTOR)), SECTOR);
	}
	return d;
}

/* Attach slot's disk as `unit`; the path goes at once, the device and the
 * test each keep a descriptor. */
static void attach(unsigned slot, unsigned unit, bool ro)
{
	char err[512] = "";

	ck_assert_msg(ide_attach(&ide, unit, disks[slot].path, ro, err, sizeof(err)) == 0, "%s",
		      err);
	unlink(disks[slot].path);
	disks[slot].path[0] = '\0';
}

static uint32_t pio_in(uint16_t port, unsigned size)
{
	uint8_t data[4] = { 0x5a, 0x5a, 0x5a, 0x5a };
	uint32_t v = 0;

	ck_assert_int_eq(ide_pio(&ide, port, true, data, size), 0);
	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

static int pio_out(uint16_t port, uint32_t v, unsigned size)
{
	uint8_t data[4];

	for (unsigned i = 0; i < 4; i++)
		data[i] = (uint8_t)(v >> (8 * i));
	return ide_pio(&ide, port, false, data, size);
}

static uint8_t inb(uint16_t port)
{
	return (uint8_t)pio_in(port, 1);
}

static void outb(uint16_t port, uint8_t v)
{
	ck_assert_int_eq(pio_out(port, v, 1), 0);
}

/* An LBA28 command to `unit`, its registers written as a driver does. */
static void issue(unsigned unit, uint32_t lba, uint8_t count, uint8_t cmd)
{
	outb(IDE_PORT_BASE + IDE_REG_DEVICE,
	     (uint8_t)(0xe0 | unit << 4 | ((lba >> 24) & IDE_DEVICE_LBA_HEAD)));
	outb(IDE_PORT_BASE + IDE_REG_COUNT, count);
	outb(IDE_PORT_BASE + IDE_REG_LBA_LOW, (uint8_t)lba);
	outb(IDE_PORT_BASE + IDE_REG_LBA_MID, (uint8_t)(lba >> 8));
	outb(IDE_PORT_BASE + IDE_REG_LBA_HIGH, (uint8_t)(lba >> 16));
	outb(CMD, cmd);
}

/* LBA48 task file registers (ATA/ATAPI-6 §6.20): each written twice, the
 * high byte (bits 24-47 of the LBA, 8-15 of the count) first. */
static void set_lba48(uint64_t lba, uint16_t count)
{
	outb(IDE_PORT_BASE + IDE_REG_COUNT, (uint8_t)(count >> 8));
	outb(IDE_PORT_BASE + IDE_REG_COUNT, (uint8_t)count);
	for (unsigned r = 0; r < 3; r++) {
		outb((uint16_t)(IDE_PORT_BASE + IDE_REG_LBA_LOW + r), (uint8_t)(lba >> (24 + 8 * r)));
		outb((uint16_t)(IDE_PORT_BASE + IDE_REG_LBA_LOW + r), (uint8_t)(lba >> (8 * r)));
	}
}

/* One sector from the data register, `width` bytes an access. */
static void read_sector(uint8_t *buf, unsigned width)
{
	for (unsigned i = 0; i < SECTOR; i += width) {
		uint32_t v = pio_in(IDE_PORT_BASE, width);

		for (unsigned b = 0; b < width; b++)
			buf[i + b] = (uint8_t)(v >> (8 * b));
	}
}

static void write_sector(const uint8_t *buf, unsigned width)
{
	for (unsigned i = 0; i < SECTOR; i += width) {
		uint32_t v = 0;

		for (unsigned b = 0; b < width; b++)
			v |= (uint32_t)buf[i + b] << (8 * b);
		ck_assert_int_eq(pio_out(IDE_PORT_BASE, v, width), 0);
	}
}

static void assert_pattern(const uint8_t *buf, uint64_t lba)
{
	for (unsigned i = 0; i < SECTOR; i++)
		ck_assert_msg(buf[i] == pattern(lba, i), "lba %llu byte %u: 0x%02x, not 0x%02x",
			      (unsigned long long)lba, i, buf[i], pattern(lba, i));
}

static void assert_failed(uint8_t error)
{
	ck_assert_uint_eq(inb(IDE_PORT_CTL), FAILED);
	ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_ERROR), error);
}

/* IDENTIFY DEVICE's words, through the data register. */
static void identify(unsigned unit, uint16_t w[256])
{
	issue(unit, 0, 0, IDE_CMD_IDENTIFY);
	ck_assert_uint_eq(inb(STATUS), DATA_READY);
	for (unsigned i = 0; i < 256; i++)
		w[i] = (uint16_t)pio_in(IDE_PORT_BASE, 2);
	ck_assert_uint_eq(inb(STATUS), IDLE);
}

/* ---- attach ---------------------------------------------------------- */

struct refusal {
	long long bytes;   /* -1: no file at all */
	const char *value; /* in the message: what is wrong */
	const char *limit; /* and the limit, where there is one */
};

static const struct refusal refusals[] = {
	{ -1, "No such file", NULL },
	{ 0, "size 0 bytes", "512" },
	{ 1000, "size 1000 bytes", "512" },
	{ 511, "size 511 bytes", "512" },
	/* one sector past LBA28's 2^28 (a sparse file) */
	{ ((1ll << 28) + 1) * 512, "268435457 sectors", "268435456" },
};

START_TEST(test_ide_attach_refuses_bad_files)
{
	const struct refusal *r = &refusals[_i];
	char err[512] = "";
	char path[64];
	int rc;

	make_disk(0, 0);
	snprintf(path, sizeof(path), "%s", disks[0].path);
	if (r->bytes < 0)
		unlink(path);
	else
		ck_assert_int_eq(ftruncate(disks[0].fd, r->bytes), 0);
	rc = ide_attach(&ide, 0, path, false, err, sizeof(err));
	unlink(path); /* now, so that a failed check leaves no file behind */
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(strstr(err, path) && strstr(err, r->value), "%s", err);
	ck_assert_msg(!r->limit || strstr(err, r->limit), "%s", err);
	ck_assert_ptr_null(strchr(err, '\n'));
	ck_assert(!ide.unit[0].present);
	ck_assert_uint_eq(inb(STATUS), 0xff); /* still no disk on the channel */
}
END_TEST

START_TEST(test_ide_attach_refuses_second_writer_and_taken_unit)
{
	char err[512] = "";

	make_disk(0, 4);
	ck_assert_int_eq(ide_attach(&ide, 0, disks[0].path, false, err, sizeof(err)), 0);
	/* the same image as the slave too: two writers would corrupt it */
	ck_assert_int_eq(ide_attach(&ide, 1, disks[0].path, true, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, disks[0].path) && strstr(err, "lock"), "%s", err);
	ck_assert_int_eq(ide_attach(&ide, 0, disks[0].path, false, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "master already holds"), "%s", err);
	ck_assert(!ide.unit[1].present);
}
END_TEST

/* ---- IDENTIFY -------------------------------------------------------- */

START_TEST(test_ide_identify_fields)
{
	/* three whole cylinders of 16 * 63 sectors, and 5 sectors more */
	const uint64_t sectors = 3 * 16 * 63 + 5;
	const char model[] = "SHADOWVM HARDDISK";
	uint16_t w[256];

	make_disk(0, sectors);
	attach(0, 0, false);
	identify(0, w);
	ck_assert_int_eq(edges, 1);
	ck_assert_uint_eq(w[0], 0x0040);
	ck_assert_uint_eq(w[1], 3);
	ck_assert_uint_eq(w[3], 16);
	ck_assert_uint_eq(w[6], 63);
	/* ATA strings: the first character of each pair in the high byte */
	for (unsigned i = 0; i < 40; i++) {
		uint8_t c = i % 2 ? (uint8_t)w[27 + i / 2] : (uint8_t)(w[27 + i / 2] >> 8);

		ck_assert_uint_eq(c, i < strlen(model) ? (uint8_t)model[i] : ' ');
	}
	ck_assert_uint_eq(w[27], ('S' << 8) | 'H');
	ck_assert_uint_eq(w[47], 0x8010);
	ck_assert_uint_eq(w[49] & (1u << 9), 1u << 9);
	ck_assert_uint_eq(w[53] & 0x3, 0x3);
	ck_assert_uint_eq(w[54], 3);
	ck_assert_uint_eq(w[57] | (uint32_t)w[58] << 16, 3 * 16 * 63);
	ck_assert_uint_eq(w[59], 0x0110); /* valid: QEMU's power-on 16 */
	ck_assert_uint_eq(w[60] | (uint32_t)w[61] << 16, sectors);
	ck_assert_uint_eq(w[80] & (1u << 6), 1u << 6); /* ATA/ATAPI-6 */
	ck_assert_uint_eq(w[83] & 0xc400, 0x4400);     /* valid, LBA48 */
	ck_assert_uint_eq(w[86] & (1u << 10), 1u << 10);
	ck_assert_uint_eq(w[100] | (uint64_t)w[101] << 16 | (uint64_t)w[102] << 32 |
				  (uint64_t)w[103] << 48,
			  sectors);
	/* the multiple setting shows in word 59 once made */
	issue(0, 0, 8, IDE_CMD_SET_MULTIPLE);
	ck_assert_uint_eq(inb(STATUS), IDLE);
	identify(0, w);
	ck_assert_uint_eq(w[59], 0x0108);
}
END_TEST

/* A disk of exactly 2^28 sectors: the most LBA28 may address.  Words 60-61
 * stop at 0x0fffffff, so the last sector is for LBA48 commands only. */
START_TEST(test_ide_lba28_ceiling_and_lba48_beyond)
{
	const uint64_t last = (1ull << 28) - 1;
	uint8_t buf[SECTOR];
	uint16_t w[256];

	make_disk(0, 0);
	ck_assert_int_eq(ftruncate(disks[0].fd, (off_t)((last + 1) * SECTOR)), 0);
	for (unsigned i = 0; i < SECTOR; i++)
		buf[i] = pattern(last, i);
	ck_assert_int_eq(pwrite(disks[0].fd, buf, SECTOR, (off_t)(last * SECTOR)), SECTOR);
	attach(0, 0, false);
	identify(0, w);
	ck_assert_uint_eq(w[60] | (uint32_t)w[61] << 16, 0x0fffffff);
	ck_assert_uint_eq(w[100] | (uint64_t)w[101] << 16 | (uint64_t)w[102] << 32, 1ull << 28);
	ck_assert_uint_eq(w[1], 16383);
	issue(0, (uint32_t)last, 1, IDE_CMD_READ_SECTORS);
	assert_failed(IDE_ERROR_IDNF);
	/* READ SECTORS EXT: each register written twice, the high byte first */
	outb(IDE_PORT_BASE + IDE_REG_DEVICE, 0x40);
	set_lba48(last, 1);
	/* HOB reads back the previous bytes, and any register write clears it */
	outb(IDE_PORT_CTL, IDE_CTL_HOB);
	ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_LBA_LOW), 0x0f);
	ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_COUNT), 0);
	outb(IDE_PORT_CTL, 0);
	ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_LBA_LOW), 0xff);
	outb(CMD, IDE_CMD_READ_SECTORS_EXT);
	ck_assert_uint_eq(inb(STATUS), DATA_READY);
	read_sector(buf, 4);
	assert_pattern(buf, last);
	ck_assert_uint_eq(inb(STATUS), IDLE);
}
END_TEST

START_TEST(test_ide_hob_cleared_by_register_write)
{
	make_disk(0, 4);
	attach(0, 0, false);
	outb(IDE_PORT_BASE + IDE_REG_COUNT, 0x12);
	outb(IDE_PORT_BASE + IDE_REG_COUNT, 0x34);
	outb(IDE_PORT_CTL, IDE_CTL_HOB);
	ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_COUNT), 0x12);
	outb(IDE_PORT_BASE + IDE_REG_LBA_LOW, 0x56);
	ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_COUNT), 0x34);
}
END_TEST

/* ---- reads ----------------------------------------------------------- */

static const unsigned widths[] = { 2, 4, 1 }; /* insw, insl, insb */

START_TEST(test_ide_read_sector_at_each_width)
{
	unsigned width = widths[_i];
	uint8_t buf[SECTOR];

	make_disk(0, 16);
	attach(0, 0, false);
	issue(0, 9, 1, IDE_CMD_READ_SECTORS);
	ck_assert_uint_eq(inb(STATUS), DATA_READY);
	read_sector(buf, width);
	assert_pattern(buf, 9);
	ck_assert_uint_eq(inb(STATUS), IDLE);
	ck_assert_uint_eq(pio_in(IDE_PORT_BASE, 2), 0); /* no DRQ: nothing to read */
	ck_assert_uint_eq(ide.reads, 1);
}
END_TEST

START_TEST(test_ide_read_interrupt_per_sector)
{
	uint8_t buf[SECTOR];

	make_disk(0, 16);
	attach(0, 0, false);
	issue(0, 2, 4, IDE_CMD_READ_SECTORS);
	for (unsigned s = 0; s < 4; s++) {
		ck_assert_int_eq(edges, (int)s + 1);
		ck_assert_int_eq(line, 1);
		ck_assert_uint_eq(inb(STATUS), DATA_READY); /* the handler's read */
		ck_assert_int_eq(line, 0);
		read_sector(buf, 2);
		assert_pattern(buf, 2 + s);
	}
	/* data-in: no interrupt after the last sector */
	ck_assert_int_eq(edges, 4);
	ck_assert_uint_eq(inb(STATUS), IDLE);
}
END_TEST

START_TEST(test_ide_read_count_zero_is_256)
{
	uint8_t buf[SECTOR];

	make_disk(0, 300);
	attach(0, 0, false);
	issue(0, 10, 0, IDE_CMD_READ_SECTORS);
	for (unsigned s = 0; s < 256; s++) {
		ck_assert_uint_eq(inb(STATUS), DATA_READY);
		read_sector(buf, 4);
	}
	assert_pattern(buf, 10 + 255);
	ck_assert_uint_eq(inb(STATUS), IDLE);
	ck_assert_int_eq(edges, 256);
}
END_TEST

/* READ MULTIPLE's interrupts, one a DRQ block: `count` sectors from
 * sector 5 in blocks of `block`. */
static void read_multiple(uint8_t count, unsigned block)
{
	uint8_t buf[SECTOR];

	edges = 0;
	issue(0, 5, count, IDE_CMD_READ_MULTIPLE);
	for (unsigned s = 0; s < count; s++) {
		ck_assert_int_eq(edges, (int)(s / block) + 1);
		ck_assert_uint_eq(inb(STATUS), DATA_READY);
		read_sector(buf, 2);
		assert_pattern(buf, 5 + s);
	}
	ck_assert_int_eq(edges, (int)((count + block - 1) / block));
	ck_assert_uint_eq(inb(STATUS), IDLE);
}

START_TEST(test_ide_read_multiple_block_size)
{
	static const uint8_t bad[] = { 0, 3, 6, 32 };

	make_disk(0, 32);
	attach(0, 0, false);
	read_multiple(20, 16); /* power-on: blocks of 16, then 4 */
	for (unsigned i = 0; i < sizeof(bad); i++) {
		issue(0, 0, bad[i], IDE_CMD_SET_MULTIPLE);
		assert_failed(IDE_ERROR_ABRT);
	}
	read_multiple(20, 16); /* refused: the setting stays */
	issue(0, 0, 4, IDE_CMD_SET_MULTIPLE);
	ck_assert_uint_eq(inb(STATUS), IDLE);
	read_multiple(10, 4); /* 4, 4, 2 */
	/* a soft reset brings back the power-on setting */
	outb(IDE_PORT_CTL, IDE_CTL_SRST);
	outb(IDE_PORT_CTL, 0);
	read_multiple(17, 16);
}
END_TEST

START_TEST(test_ide_read_host_failure_is_unc)
{
	uint8_t buf[SECTOR];

	make_disk(0, 8);
	attach(0, 0, false);
	/* the file shrinks under the VMM: sector 5 is gone */
	ck_assert_int_eq(ftruncate(disks[0].fd, 4 * SECTOR), 0);
	issue(0, 3, 2, IDE_CMD_READ_SECTORS);
	ck_assert_uint_eq(inb(STATUS), DATA_READY);
	read_sector(buf, 2);
	assert_pattern(buf, 3);
	ck_assert_int_eq(edges, 2);
	assert_failed(IDE_ERROR_UNC);
	ck_assert_msg(strstr(ide.err, "pread") && strstr(ide.err, "lba=0x4"), "%s", ide.err);
}
END_TEST

/* ---- writes ---------------------------------------------------------- */

START_TEST(test_ide_write_reaches_file_per_sector)
{
	uint8_t out[SECTOR], back[SECTOR];

	make_disk(0, 16);
	attach(0, 0, false);
	issue(0, 7, 3, IDE_CMD_WRITE_SECTORS);
	/* PIO data-out: DRQ for the first sector without an interrupt */
	ck_assert_uint_eq(inb(IDE_PORT_CTL), DATA_READY);
	ck_assert_int_eq(edges, 0);
	for (unsigned s = 0; s < 3; s++) {
		for (unsigned i = 0; i < SECTOR; i++)
			out[i] = (uint8_t)(0xa5 ^ (i + s * 3));
		write_sector(out, s == 1 ? 2 : 4);
		ck_assert_int_eq(pread(disks[0].fd, back, SECTOR, (off_t)((7 + s) * SECTOR)),
				 SECTOR);
		ck_assert_mem_eq(back, out, SECTOR);
		/* the next sector is untouched until its data comes */
		ck_assert_int_eq(pread(disks[0].fd, back, SECTOR, (off_t)((8 + s) * SECTOR)),
				 SECTOR);
		assert_pattern(back, 8 + s);
		ck_assert_int_eq(edges, (int)s + 1);
		ck_assert_uint_eq(inb(STATUS), s < 2 ? DATA_READY : IDLE);
	}
	ck_assert_uint_eq(ide.writes, 3);
}
END_TEST

START_TEST(test_ide_write_multiple_ext)
{
	uint8_t out[SECTOR], back[SECTOR];

	make_disk(0, 16);
	attach(0, 0, false);
	issue(0, 0, 2, IDE_CMD_SET_MULTIPLE);
	ck_assert_uint_eq(inb(STATUS), IDLE);
	edges = 0;
	/* LBA48 registers: high byte first; 3 sectors from sector 4 */
	set_lba48(4, 3);
	outb(IDE_PORT_BASE + IDE_REG_DEVICE, IDE_DEVICE_LBA);
	outb(CMD, IDE_CMD_WRITE_MULTIPLE_EXT);
	memset(out, 0x3c, sizeof(out));
	for (unsigned s = 0; s < 3; s++) {
		/* blocks of 2, 1: an interrupt asks for the second, one ends */
		ck_assert_int_eq(edges, s < 2 ? 0 : 1);
		write_sector(out, 4);
		if (s == 1)
			ck_assert_uint_eq(inb(STATUS), DATA_READY); /* the handler's read */
	}
	ck_assert_int_eq(edges, 2);
	ck_assert_uint_eq(inb(STATUS), IDLE);
	for (unsigned s = 4; s < 7; s++) {
		ck_assert_int_eq(pread(disks[0].fd, back, SECTOR, (off_t)(s * SECTOR)), SECTOR);
		ck_assert_mem_eq(back, out, SECTOR);
	}
}
END_TEST

START_TEST(test_ide_write_read_only_aborts)
{
	uint8_t back[SECTOR];

	make_disk(0, 4);
	attach(0, 0, true);
	issue(0, 1, 1, IDE_CMD_WRITE_SECTORS);
	ck_assert_int_eq(edges, 1);
	assert_failed(IDE_ERROR_ABRT);
	ck_assert_int_eq(pio_out(IDE_PORT_BASE, 0xdeadbeef, 4), 0); /* no DRQ: nowhere */
	ck_assert_int_eq(pread(disks[0].fd, back, SECTOR, SECTOR), SECTOR);
	assert_pattern(back, 1);
	issue(0, 1, 1, IDE_CMD_READ_SECTORS); /* reads still work */
	ck_assert_uint_eq(inb(STATUS), DATA_READY);
}
END_TEST

START_TEST(test_ide_write_host_failure_aborts)
{
	uint8_t out[SECTOR] = { 0 };
	int ro;

	make_disk(0, 4);
	ck_assert_int_ge(ro = open(disks[0].path, O_RDONLY), 0);
	attach(0, 0, false);
	/* the host refuses the write: the device's file turned read-only */
	ck_assert_int_eq(dup2(ro, ide.unit[0].fd), ide.unit[0].fd);
	close(ro);
	issue(0, 2, 1, IDE_CMD_WRITE_SECTORS);
	write_sector(out, 4);
	ck_assert_int_eq(edges, 1);
	assert_failed(IDE_ERROR_ABRT);
	ck_assert_msg(strstr(ide.err, "pwrite") && strstr(ide.err, "lba=0x2"), "%s", ide.err);
	ck_assert_uint_eq(ide.writes, 0);
}
END_TEST

/* ---- range and command errors ------------------------------------------ */

struct range_case {
	uint32_t lba;
	uint8_t count;
	bool ok;
};

static const struct range_case ranges[] = {
	{ 7, 1, true },                           /* the last sector */
	{ 6, 2, true },          { 7, 2, false }, /* one past the end */
	{ 8, 1, false },         { 0, 0, false }, /* 256 sectors */
	{ 0x0ffffff, 1, false },
};

START_TEST(test_ide_range_past_end_is_idnf)
{
	const struct range_case *c = &ranges[_i];

	make_disk(0, 8);
	attach(0, 0, false);
	for (unsigned w = 0; w < 2; w++) {
		issue(0, c->lba, c->count, w ? IDE_CMD_WRITE_SECTORS : IDE_CMD_READ_SECTORS);
		if (c->ok) {
			ck_assert_uint_eq(inb(STATUS), DATA_READY);
		} else {
			assert_failed(IDE_ERROR_IDNF);
			ck_assert_int_eq(edges, (int)w + 1);
		}
		outb(IDE_PORT_CTL, IDE_CTL_SRST); /* end any data phase */
		outb(IDE_PORT_CTL, 0);
	}
}
END_TEST

static const uint8_t unknown[] = { 0x00, 0xa1, 0xa0, 0xc8, 0xe5, 0xff };

START_TEST(test_ide_unknown_command_aborts)
{
	make_disk(0, 4);
	attach(0, 0, false);
	issue(0, 0, 1, unknown[_i]);
	ck_assert_int_eq(edges, 1);
	assert_failed(IDE_ERROR_ABRT);
}
END_TEST

START_TEST(test_ide_chs_mode_refused)
{
	make_disk(0, 4);
	attach(0, 0, false);
	outb(IDE_PORT_BASE + IDE_REG_DEVICE, 0xa0); /* LBA bit clear */
	outb(IDE_PORT_BASE + IDE_REG_COUNT, 1);
	outb(IDE_PORT_BASE + IDE_REG_LBA_LOW, 1); /* sector 1 of cylinder 0, head 0 */
	outb(CMD, IDE_CMD_READ_SECTORS);
	assert_failed(IDE_ERROR_ABRT);
}
END_TEST

START_TEST(test_ide_non_data_commands_complete)
{
	static const uint8_t ops[] = { IDE_CMD_SET_FEATURES, IDE_CMD_INIT_PARAMETERS, 0x10, 0x1f,
				       IDE_CMD_FLUSH_CACHE,  IDE_CMD_FLUSH_CACHE_EXT };

	make_disk(0, 4);
	attach(0, 0, false);
	for (unsigned i = 0; i < sizeof(ops); i++) {
		issue(0, 0, 1, ops[i]);
		ck_assert_int_eq(edges, (int)i + 1);
		ck_assert_uint_eq(inb(STATUS), IDLE);
	}
}
END_TEST

START_TEST(test_ide_flush_failure_is_fatal)
{
	int p[2];

	make_disk(0, 4);
	attach(0, 0, false);
	/* a descriptor fdatasync refuses (EINVAL) in place of the file */
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(dup2(p[0], ide.unit[0].fd), ide.unit[0].fd);
	close(p[0]);
	close(p[1]);
	outb(IDE_PORT_BASE + IDE_REG_DEVICE, 0xe0);
	ck_assert_int_eq(pio_out(CMD, IDE_CMD_FLUSH_CACHE, 1), -1);
	ck_assert_msg(strstr(ide.err, ide.unit[0].path) && strstr(ide.err, "fdatasync"), "%s",
		      ide.err);
	ck_assert_int_eq(edges, 1);
	assert_failed(IDE_ERROR_ABRT);
}
END_TEST

/* ---- interrupts -------------------------------------------------------- */

START_TEST(test_ide_status_clears_irq_altstatus_does_not)
{
	make_disk(0, 4);
	attach(0, 0, false);
	issue(0, 0, 1, IDE_CMD_READ_SECTORS);
	ck_assert_int_eq(line, 1);
	ck_assert_uint_eq(inb(IDE_PORT_CTL), DATA_READY);
	ck_assert_int_eq(line, 1);
	ck_assert_uint_eq(inb(STATUS), DATA_READY);
	ck_assert_int_eq(line, 0);
	ck_assert_int_eq(edges, 1);
}
END_TEST

START_TEST(test_ide_nien_masks_irq)
{
	make_disk(0, 4);
	attach(0, 0, false);
	outb(IDE_PORT_CTL, IDE_CTL_NIEN);
	issue(0, 0, 1, IDE_CMD_IDENTIFY);
	ck_assert_int_eq(edges, 0);
	ck_assert_uint_eq(inb(IDE_PORT_CTL), DATA_READY); /* the device is ready all the same */
	/* unmasked with the interrupt still pending: INTRQ rises */
	outb(IDE_PORT_CTL, 0);
	ck_assert_int_eq(edges, 1);
	ck_assert_int_eq(line, 1);
	outb(IDE_PORT_CTL, IDE_CTL_NIEN);
	ck_assert_int_eq(line, 0);
	inb(STATUS); /* acknowledged while masked: nothing left to raise */
	outb(IDE_PORT_CTL, 0);
	ck_assert_int_eq(line, 0);
	ck_assert_int_eq(edges, 1);
}
END_TEST

START_TEST(test_ide_command_write_clears_pending)
{
	make_disk(0, 4);
	attach(0, 0, false);
	issue(0, 0, 1, IDE_CMD_SET_FEATURES);
	ck_assert_int_eq(line, 1);
	issue(0, 0, 1, IDE_CMD_WRITE_SECTORS); /* no interrupt for its first DRQ */
	ck_assert_int_eq(line, 0);
	ck_assert_int_eq(edges, 1);
}
END_TEST

/* ---- the two units, the empty channel, reset -------------------------------- */

START_TEST(test_ide_absent_slave_reads_zero)
{
	make_disk(0, 4);
	attach(0, 0, false);
	outb(IDE_PORT_BASE + IDE_REG_DEVICE, 0xf0); /* select the slave */
	ck_assert_uint_eq(inb(STATUS), 0);
	ck_assert_uint_eq(inb(IDE_PORT_CTL), 0);
	outb(CMD, IDE_CMD_IDENTIFY); /* nobody executes it */
	ck_assert_int_eq(edges, 0);
	ck_assert_uint_eq(inb(STATUS), 0);
	ck_assert_uint_eq(pio_in(IDE_PORT_BASE, 2), 0);
	outb(IDE_PORT_BASE + IDE_REG_DEVICE, 0xe0);
	ck_assert_uint_eq(inb(STATUS), IDLE);
}
END_TEST

START_TEST(test_ide_slave_has_its_own_disk)
{
	uint8_t buf[SECTOR];

	make_disk(0, 4);
	make_disk(1, 8);
	attach(0, 0, false);
	attach(1, 1, false);
	/* sector 6 exists on the slave only */
	issue(0, 6, 1, IDE_CMD_READ_SECTORS);
	assert_failed(IDE_ERROR_IDNF);
	issue(1, 6, 1, IDE_CMD_READ_SECTORS);
	ck_assert_uint_eq(inb(STATUS), DATA_READY);
	/* the master, selected, is idle: its error is still the old one */
	outb(IDE_PORT_BASE + IDE_REG_DEVICE, 0xe0);
	ck_assert_uint_eq(inb(IDE_PORT_CTL), FAILED);
	outb(IDE_PORT_BASE + IDE_REG_DEVICE, 0xf0);
	read_sector(buf, 4);
	assert_pattern(buf, 6);
}
END_TEST

START_TEST(test_ide_no_disk_floating_bus)
{
	for (uint16_t port = IDE_PORT_BASE; port < IDE_PORT_BASE + IDE_NREGS; port++)
		ck_assert_uint_eq(inb(port), 0xff);
	ck_assert_uint_eq(inb(IDE_PORT_CTL), 0xff);
	ck_assert_uint_eq(pio_in(IDE_PORT_BASE, 2), 0xffff);
	ck_assert_uint_eq(pio_in(IDE_PORT_BASE, 4), 0xffffffff);
	outb(CMD, IDE_CMD_IDENTIFY);
	outb(IDE_PORT_CTL, 0);
	ck_assert_int_eq(edges, 0);
	ck_assert_uint_eq(inb(STATUS), 0xff);
}
END_TEST

START_TEST(test_ide_soft_reset_signature)
{
	make_disk(0, 4);
	make_disk(1, 4);
	attach(0, 0, false);
	attach(1, 1, false);
	issue(1, 0x563412, 0x55, IDE_CMD_READ_SECTORS); /* past the end: an error to clear */
	issue(1, 0, 1, IDE_CMD_READ_SECTORS);           /* and a data phase to abort */
	edges = 0;
	outb(IDE_PORT_CTL, IDE_CTL_SRST);
	ck_assert_uint_eq(inb(STATUS), IDE_STATUS_BSY);
	ck_assert_int_eq(line, 0);
	outb(IDE_PORT_CTL, 0);
	ck_assert_int_eq(edges, 0); /* the host polls BSY: no interrupt */
	for (unsigned u = 0; u < 2; u++) {
		if (u)
			outb(IDE_PORT_BASE + IDE_REG_DEVICE, 0xb0);
		ck_assert_uint_eq(inb(STATUS), IDLE);
		ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_ERROR), 0x01);
		ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_COUNT), 1);
		ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_LBA_LOW), 1);
		ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_LBA_MID), 0);
		ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_LBA_HIGH), 0);
		ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_DEVICE), u ? 0xb0 : 0);
	}
	ck_assert_uint_eq(pio_in(IDE_PORT_BASE, 2), 0); /* the data phase is gone */
}
END_TEST

START_TEST(test_ide_diagnostic_runs_whatever_is_selected)
{
	make_disk(0, 4);
	attach(0, 0, false);
	issue(0, 0x123456, 9, IDE_CMD_READ_SECTORS);
	assert_failed(IDE_ERROR_IDNF);
	outb(IDE_PORT_BASE + IDE_REG_DEVICE, 0xf0); /* the absent slave */
	outb(CMD, IDE_CMD_EXECUTE_DIAGNOSTIC);
	ck_assert_int_eq(edges, 2);
	/* device 0 selected again, with the signature */
	ck_assert_uint_eq(inb(STATUS), IDLE);
	ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_ERROR), 0x01);
	ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_LBA_LOW), 1);
	ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_LBA_MID), 0);
}
END_TEST

/* ---- guest misbehaviour, ports ---------------------------------------- */

START_TEST(test_ide_wide_register_access_is_bytes)
{
	make_disk(0, 4);
	attach(0, 0, false);
	/* outw to 0x1f2: the count at 0x1f2, LBA low at 0x1f3 */
	ck_assert_int_eq(pio_out(IDE_PORT_BASE + IDE_REG_COUNT, 0x0902, 2), 0);
	ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_COUNT), 0x02);
	ck_assert_uint_eq(inb(IDE_PORT_BASE + IDE_REG_LBA_LOW), 0x09);
	/* inl from 0x1f4: LBA mid, LBA high, device, status */
	outb(IDE_PORT_BASE + IDE_REG_DEVICE, 0xe0);
	ck_assert_uint_eq(pio_in(IDE_PORT_BASE + IDE_REG_LBA_MID, 4), IDLE << 24 | 0xe0 << 16);
	/* 0x3f7 is no port of the channel's */
	ck_assert_uint_eq(pio_in(IDE_PORT_CTL, 2), 0xff00 | IDLE);
	ck_assert(ide_claims(0x1f0) && ide_claims(0x1f7) && ide_claims(0x3f6));
	ck_assert(!ide_claims(0x1ef) && !ide_claims(0x1f8) && !ide_claims(0x3f7));
}
END_TEST

START_TEST(test_ide_misbehaviour_is_harmless)
{
	uint8_t big[8] = { 0 }, back[SECTOR];

	make_disk(0, 4);
	attach(0, 0, false);
	ck_assert_uint_eq(pio_in(IDE_PORT_BASE, 4), 0); /* data, no command */
	ck_assert_int_eq(pio_out(IDE_PORT_BASE, 0x11223344, 4), 0);
	ck_assert_int_eq(ide_pio(&ide, IDE_PORT_BASE, true, big, 8), 0);
	ck_assert_uint_eq(big[0], 0xff);
	ck_assert_int_eq(ide_pio(&ide, CMD, false, big, 0), 0);
	/* reading during a write's data phase, writing during a read's */
	issue(0, 1, 1, IDE_CMD_WRITE_SECTORS);
	ck_assert_uint_eq(pio_in(IDE_PORT_BASE, 2), 0);
	issue(0, 1, 1, IDE_CMD_READ_SECTORS);
	for (unsigned i = 0; i < SECTOR; i += 4)
		pio_out(IDE_PORT_BASE, 0, 4);
	ck_assert_uint_eq(inb(STATUS), DATA_READY);
	ck_assert_int_eq(pread(disks[0].fd, back, SECTOR, SECTOR), SECTOR);
	assert_pattern(back, 1);
	ck_assert_uint_eq(ide.writes, 0);
}
END_TEST

Suite *ide_suite(void)
{
	Suite *s = suite_create("ide");
	TCase *tc = tcase_create("pio");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_ide_attach_refuses_bad_files, 0,
			    (int)(sizeof(refusals) / sizeof(refusals[0])));
	tcase_add_test(tc, test_ide_attach_refuses_second_writer_and_taken_unit);
	tcase_add_test(tc, test_ide_identify_fields);
	tcase_add_test(tc, test_ide_lba28_ceiling_and_lba48_beyond);
	tcase_add_test(tc, test_ide_hob_cleared_by_register_write);
	tcase_add_loop_test(tc, test_ide_read_sector_at_each_width, 0,
			    (int)(sizeof(widths) / sizeof(widths[0])));
	tcase_add_test(tc, test_ide_read_interrupt_per_sector);
	tcase_add_test(tc, test_ide_read_count_zero_is_256);
	tcase_add_test(tc, test_ide_read_multiple_block_size);
	tcase_add_test(tc, test_ide_read_host_failure_is_unc);
	tcase_add_test(tc, test_ide_write_reaches_file_per_sector);
	tcase_add_test(tc, test_ide_write_multiple_ext);
	tcase_add_test(tc, test_ide_write_read_only_aborts);
	tcase_add_test(tc, test_ide_write_host_failure_aborts);
	tcase_add_loop_test(tc, test_ide_range_past_end_is_idnf, 0,
			    (int)(sizeof(ranges) / sizeof(ranges[0])));
	tcase_add_loop_test(tc, test_ide_unknown_command_aborts, 0, (int)sizeof(unknown));
	tcase_add_test(tc, test_ide_chs_mode_refused);
	tcase_add_test(tc, test_ide_non_data_commands_complete);
	tcase_add_test(tc, test_ide_flush_failure_is_fatal);
	tcase_add_test(tc, test_ide_status_clears_irq_altstatus_does_not);
	tcase_add_test(tc, test_ide_nien_masks_irq);
	tcase_add_test(tc, test_ide_command_write_clears_pending);
	tcase_add_test(tc, test_ide_absent_slave_reads_zero);
	tcase_add_test(tc, test_ide_slave_has_its_own_disk);
	tcase_add_test(tc, test_ide_no_disk_floating_bus);
	tcase_add_test(tc, test_ide_soft_reset_signature);
	tcase_add_test(tc, test_ide_diagnostic_runs_whatever_is_selected);
	tcase_add_test(tc, test_ide_wide_register_access_is_bytes);
	tcase_add_test(tc, test_ide_misbehaviour_is_harmless);
	suite_add_tcase(s, tc);
	return s;
}
