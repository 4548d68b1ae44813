/* The primary ATA channel, PIO only (ide.h).  Commands run to completion
 * inside the port write that issues them: the host file I/O is synchronous,
 * so BSY is never seen outside a software reset, and a data phase is ready
 * (DRQ) by the time the guest next looks. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ide.h"
#include "log.h"

#ifndef SHADOWVM_VERSION
#define SHADOWVM_VERSION "0"
#endif

#define SECTOR IDE_SECTOR_SIZE
#define IDE_MODEL "SHADOWVM HARDDISK"
#define STATUS_IDLE (IDE_STATUS_DRDY | IDE_STATUS_DSC)
/* the geometry IDENTIFY reports for CHS software: 16 heads, 63 sectors a
 * track, and the cylinders that fill (at most 16383, ATA/ATAPI-6 IDENTIFY
 * DEVICE words 1, 3, 6) */
#define CHS_HEADS 16u
#define CHS_SPT 63u
#define CHS_MAX_CYLS 16383u
/* IDENTIFY words 60-61 never exceed 0x0fffffff on a device with the 48-bit
 * feature set (ATA/ATAPI-6 IDENTIFY DEVICE), and a 28-bit command is held
 * to what they say */
#define LBA28_LIMIT 0x0fffffffull

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static bool any_present(const struct ide *ide)
{
	return ide->unit[0].present || ide->unit[1].present;
}

/* INTRQ follows the pending interrupt unless nIEN masks it (ATA/ATAPI-6,
 * Device Control register); the caller hears changes only. */
static void update_irq(struct ide *ide)
{
	bool level = ide->pending && !(ide->ctl & IDE_CTL_NIEN);

	if (level == ide->level)
		return;
	ide->level = level;
	if (ide->irq)
		ide->irq(ide->opaque, level);
}

static void set_pending(struct ide *ide, bool pending)
{
	ide->pending = pending;
	update_irq(ide);
}

/* What a non-PACKET device shows after a reset or EXECUTE DEVICE
 * DIAGNOSTIC (ATA/ATAPI-6, "Signature and persistence"): sector count 1,
 * LBA low 1, LBA mid and high 0, device 0; the diagnostic code "passed". */
static void set_signature(struct ide_unit *u)
{
	u->tf[IDE_REG_COUNT] = 1;
	u->tf[IDE_REG_LBA_LOW] = 1;
	u->tf[IDE_REG_LBA_MID] = 0;
	u->tf[IDE_REG_LBA_HIGH] = 0;
	u->tf[IDE_REG_DEVICE] = 0;
	u->error = IDE_ERROR_DIAG_PASSED;
	u->status = STATUS_IDLE;
}

/* Power-on and software reset.  The READ/WRITE MULTIPLE block size goes
 * back to QEMU's default, 16, on which guests written against it rely
 * (xv6 with a BSIZE of 1024 sends READ MULTIPLE unannounced). */
static void reset(struct ide_unit *u)
{
	u->multiple = IDE_MAX_MULTIPLE;
	set_signature(u);
}

static void complete(struct ide *ide, struct ide_unit *u)
{
	u->status = STATUS_IDLE;
	set_pending(ide, true);
}

/* A command ends in error: ERR with the reason in the error register, and
 * the interrupt that ends every command (QEMU's status for it: DRDY | ERR). */
static void fail(struct ide *ide, struct ide_unit *u, uint8_t error)
{
	u->error = error;
	u->status = IDE_STATUS_DRDY | IDE_STATUS_ERR;
	set_pending(ide, true);
}

static void host_error(struct ide *ide, const struct ide_unit *u, const char *op, ssize_t n)
{
	snprintf(ide->err, sizeof(ide->err), "%s: %s lba=0x%llx: %s", u->path, op,
		 (unsigned long long)u->lba, n < 0 ? strerror(errno) : "short transfer");
	pr_warn("ide: %s", ide->err);
}

static off_t offset(const struct ide_unit *u)
{
	return (off_t)(u->lba * SECTOR);
}

/* Sector u->lba into the buffer; false (ide->err set) if the host failed. */
static bool load(struct ide *ide, struct ide_unit *u)
{
	ssize_t n = pread(u->fd, u->buf, SECTOR, offset(u));

	if (n != SECTOR) {
		host_error(ide, u, "pread", n);
		return false;
	}
	ide->reads++;
	return true;
}

static uint16_t first_block(const struct ide_unit *u)
{
	return (uint16_t)min_u64(u->block, u->left);
}

/* PIO data-in (ATA/ATAPI-6, "PIO data-in protocol"): the buffer holds the
 * first sector; DRQ and an interrupt start each DRQ block. */
static void data_in(struct ide *ide, struct ide_unit *u)
{
	u->writing = false;
	u->pos = 0;
	u->block_left = first_block(u);
	u->status = STATUS_IDLE | IDE_STATUS_DRQ;
	set_pending(ide, true);
}

/* PIO data-out ("PIO data-out protocol"): the first DRQ block is asked
 * for without an interrupt; each later one, and the end, with one. */
static void data_out(struct ide_unit *u)
{
	u->writing = true;
	u->pos = 0;
	u->block_left = first_block(u);
	u->status = STATUS_IDLE | IDE_STATUS_DRQ;
}

/* The guest has read all of the buffer: the next sector, or the end. */
static void sector_read(struct ide *ide, struct ide_unit *u)
{
	u->pos = 0;
	if (--u->left == 0) {
		/* no interrupt after the last block of a data-in command */
		u->status = STATUS_IDLE;
		return;
	}
	u->lba++;
	if (!load(ide, u)) {
		fail(ide, u, IDE_ERROR_UNC);
		return;
	}
	if (--u->block_left == 0) {
		u->block_left = first_block(u);
		set_pending(ide, true);
	}
}

/* The guest has filled the buffer: to the file at once, so that nothing
 * the guest saw complete is lost if the VMM dies; then the next sector, or
 * the end. */
static void sector_written(struct ide *ide, struct ide_unit *u)
{
	ssize_t n = pwrite(u->fd, u->buf, SECTOR, offset(u));

	u->pos = 0;
	if (n != SECTOR) {
		host_error(ide, u, "pwrite", n);
		fail(ide, u, IDE_ERROR_ABRT);
		return;
	}
	ide->writes++;
	u->lba++;
	if (--u->left == 0) {
		complete(ide, u);
		return;
	}
	if (--u->block_left == 0) {
		u->block_left = first_block(u);
		set_pending(ide, true);
	}
}

/* The data register: `size` bytes of the sector in the buffer, while DRQ
 * says a data phase in that direction is on; else reads 0 (as QEMU) and
 * writes go nowhere. */
static void data_port(struct ide *ide, bool in, uint8_t *data, unsigned size)
{
	struct ide_unit *u = &ide->unit[ide->sel];

	for (unsigned i = 0; i < size; i++) {
		if (!u->present || !(u->status & IDE_STATUS_DRQ) || u->writing == in) {
			if (in)
				data[i] = 0;
			continue;
		}
		if (in)
			data[i] = u->buf[u->pos++];
		else
			u->buf[u->pos++] = data[i];
		if (u->pos < SECTOR)
			continue;
		if (in)
			sector_read(ide, u);
		else
			sector_written(ide, u);
	}
}

/* An ATA string: two characters a word, the first in the high byte,
 * padded with spaces (ATA/ATAPI-6, IDENTIFY DEVICE words 10-19, 23-46). */
static void id_string(uint16_t *w, const char *s, unsigned nwords)
{
	size_t len = strlen(s);

	for (unsigned i = 0; i < 2 * nwords; i++) {
		uint16_t c = i < len ? (uint8_t)s[i] : ' ';

		w[i / 2] |= i % 2 ? c : (uint16_t)(c << 8);
	}
}

static void id_dword(uint16_t *w, uint64_t v, unsigned nwords)
{
	for (unsigned i = 0; i < nwords; i++)
		w[i] = (uint16_t)(v >> (16 * i));
}

/* The CHS geometry, default (words 1, 3, 6) and current (54-58): for
 * software that reads it, since commands in CHS mode are refused. */
static void id_chs(uint16_t *w, uint64_t sectors)
{
	uint64_t cyls = min_u64(sectors / (CHS_HEADS * CHS_SPT), CHS_MAX_CYLS);

	w[1] = w[54] = (uint16_t)cyls;
	w[3] = w[55] = CHS_HEADS;
	w[6] = w[56] = CHS_SPT;
	id_dword(&w[57], cyls * CHS_HEADS * CHS_SPT, 2);
}

/* IDENTIFY DEVICE's 256 words (ATA/ATAPI-6) into the buffer, least
 * significant byte first. */
static void identify(struct ide_unit *u, unsigned index)
{
	uint16_t w[256] = { 0 };
	char serial[24];

	w[0] = 0x0040; /* ATA device, fixed */
	id_chs(w, u->sectors);
	snprintf(serial, sizeof(serial), "SVM%05u", index);
	id_string(&w[10], serial, 10);
	id_string(&w[23], SHADOWVM_VERSION, 4);
	id_string(&w[27], IDE_MODEL, 20);
	w[47] = 0x8000 | IDE_MAX_MULTIPLE;
	w[49] = 1u << 9;                          /* LBA supported */
	w[50] = 1u << 14;                         /* shall be one */
	w[53] = 0x0003;                           /* words 54-58 and 64-70 are valid */
	w[59] = (uint16_t)(0x0100 | u->multiple); /* the setting is valid */
	id_dword(&w[60], min_u64(u->sectors, LBA28_LIMIT), 2);
	w[64] = 0x0003;                      /* PIO modes 3 and 4 */
	w[65] = w[66] = w[67] = w[68] = 120; /* cycle times, ns */
	w[80] = 0x0078;                      /* ATA-3 to ATA/ATAPI-6 */
	/* bit 14 says the word is valid; 13, 12: FLUSH CACHE (EXT); 10: LBA48 */
	w[83] = 0x4000 | 1u << 13 | 1u << 12 | 1u << 10;
	w[84] = 0x4000;
	w[86] = 1u << 13 | 1u << 12 | 1u << 10;
	w[87] = 0x4000;
	id_dword(&w[100], u->sectors, 4);
	for (unsigned i = 0; i < 256; i++) {
		u->buf[2 * i] = (uint8_t)w[i];
		u->buf[2 * i + 1] = (uint8_t)(w[i] >> 8);
	}
}

/* The read and write commands, one table: direction, DRQ block size,
 * address width. */
static const struct rw_cmd {
	uint8_t op;
	bool write, multiple, lba48;
} rw_cmds[] = {
	{ IDE_CMD_READ_SECTORS, false, false, false },
	{ IDE_CMD_READ_SECTORS_NR, false, false, false },
	{ IDE_CMD_READ_SECTORS_EXT, false, false, true },
	{ IDE_CMD_READ_MULTIPLE, false, true, false },
	{ IDE_CMD_READ_MULTIPLE_EXT, false, true, true },
	{ IDE_CMD_WRITE_SECTORS, true, false, false },
	{ IDE_CMD_WRITE_SECTORS_NR, true, false, false },
	{ IDE_CMD_WRITE_SECTORS_EXT, true, false, true },
	{ IDE_CMD_WRITE_MULTIPLE, true, true, false },
	{ IDE_CMD_WRITE_MULTIPLE_EXT, true, true, true },
};

static const struct rw_cmd *rw_lookup(uint8_t op)
{
	for (size_t i = 0; i < sizeof(rw_cmds) / sizeof(rw_cmds[0]); i++)
		if (rw_cmds[i].op == op)
			return &rw_cmds[i];
	return NULL;
}

/* The first sector and the count the task file names: 28 bits with LBA
 * 27:24 in the device register and 0 meaning 256 sectors, or 48 bits from
 * the two-deep registers, the previous byte the high one, 0 meaning 65536. */
static void rw_address(const struct ide_unit *u, bool lba48, uint64_t *lba, uint32_t *count)
{
	const uint8_t *t = u->tf, *h = u->hob;

	*lba = (uint64_t)t[IDE_REG_LBA_HIGH] << 16 | (uint64_t)t[IDE_REG_LBA_MID] << 8 |
	       t[IDE_REG_LBA_LOW];
	if (lba48) {
		*lba |= (uint64_t)h[IDE_REG_LBA_HIGH] << 40 | (uint64_t)h[IDE_REG_LBA_MID] << 32 |
			(uint64_t)h[IDE_REG_LBA_LOW] << 24;
		*count = (uint32_t)h[IDE_REG_COUNT] << 8 | t[IDE_REG_COUNT];
		if (*count == 0)
			*count = 65536;
	} else {
		*lba |= (uint64_t)(t[IDE_REG_DEVICE] & IDE_DEVICE_LBA_HEAD) << 24;
		*count = t[IDE_REG_COUNT] ? t[IDE_REG_COUNT] : 256;
	}
}

/* Why a read or write is refused before any data moves, or 0. */
static uint8_t rw_refusal(const struct ide_unit *u, const struct rw_cmd *c, uint64_t lba,
			  uint32_t count)
{
	uint64_t limit = c->lba48 ? u->sectors : min_u64(u->sectors, LBA28_LIMIT);

	/* CHS addressing is not emulated */
	if (!(u->tf[IDE_REG_DEVICE] & IDE_DEVICE_LBA))
		return IDE_ERROR_ABRT;
	if (c->write && u->ro)
		return IDE_ERROR_ABRT;
	if (lba >= limit || count > limit - lba)
		return IDE_ERROR_IDNF;
	return 0;
}

static void rw_start(struct ide *ide, struct ide_unit *u, const struct rw_cmd *c)
{
	uint64_t lba;
	uint32_t count;
	uint8_t error;

	rw_address(u, c->lba48, &lba, &count);
	if ((error = rw_refusal(u, c, lba, count))) {
		fail(ide, u, error);
		return;
	}
	u->lba = lba;
	u->left = count;
	u->block = c->multiple ? u->multiple : 1;
	if (c->write)
		data_out(u);
	else if (load(ide, u))
		data_in(ide, u);
	else
		fail(ide, u, IDE_ERROR_UNC);
}

/* SET MULTIPLE MODE: a DRQ block of 1, 2, 4, 8 or 16 sectors. */
static void set_multiple(struct ide *ide, struct ide_unit *u)
{
	uint8_t n = u->tf[IDE_REG_COUNT];

	if (n == 0 || n > IDE_MAX_MULTIPLE || (n & (n - 1))) {
		fail(ide, u, IDE_ERROR_ABRT);
		return;
	}
	u->multiple = n;
	complete(ide, u);
}

/* FLUSH CACHE: the written sectors to stable storage.  A failed fdatasync
 * is fatal: the kernel may have dropped the dirty pages it could not write,
 * so a retry could succeed with the data gone (PostgreSQL's 2018 "fsync
 * gate"), and the guest was told those writes were done. */
static int flush(struct ide *ide, struct ide_unit *u)
{
	if (u->ro || fdatasync(u->fd) == 0) {
		complete(ide, u);
		return 0;
	}
	snprintf(ide->err, sizeof(ide->err),
		 "%s: fdatasync: %s; writes the guest saw complete may be lost", u->path,
		 strerror(errno));
	fail(ide, u, IDE_ERROR_ABRT);
	return -1;
}

/* EXECUTE DEVICE DIAGNOSTIC runs on both devices whatever DEV selects
 * (ATA/ATAPI-6), and leaves device 0 selected, as the signature says. */
static void diagnose(struct ide *ide)
{
	for (unsigned i = 0; i < 2; i++)
		if (ide->unit[i].present)
			set_signature(&ide->unit[i]);
	ide->sel = 0;
	set_pending(ide, true);
}

static int command(struct ide *ide, uint8_t op)
{
	struct ide_unit *u = &ide->unit[ide->sel];
	const struct rw_cmd *rw = rw_lookup(op);

	/* writing the command register clears a pending interrupt */
	set_pending(ide, false);
	if (op == IDE_CMD_EXECUTE_DIAGNOSTIC) {
		diagnose(ide);
		return 0;
	}
	/* nothing answers for a missing device: the driver times out */
	if (!u->present)
		return 0;
	u->error = 0;
	if (rw) {
		rw_start(ide, u, rw);
		return 0;
	}
	switch (op) {
	case IDE_CMD_IDENTIFY:
		identify(u, ide->sel);
		u->left = u->block = 1;
		data_in(ide, u);
		break;
	case IDE_CMD_SET_MULTIPLE: set_multiple(ide, u); break;
	case IDE_CMD_FLUSH_CACHE:
	case IDE_CMD_FLUSH_CACHE_EXT: return flush(ide, u);
	case IDE_CMD_SET_FEATURES:
	case IDE_CMD_INIT_PARAMETERS: complete(ide, u); break;
	default:
		if ((op & 0xf0) == IDE_CMD_RECALIBRATE)
			complete(ide, u);
		else
			fail(ide, u, IDE_ERROR_ABRT);
	}
	return 0;
}

/* Device control: nIEN masks INTRQ; SRST held resets both devices, which
 * show BSY until it is released and then the signature, with no interrupt
 * (ATA/ATAPI-6, "Software reset protocol"). */
static void device_control(struct ide *ide, uint8_t v)
{
	bool was_reset = ide->ctl & IDE_CTL_SRST;

	ide->ctl = v & (IDE_CTL_NIEN | IDE_CTL_SRST | IDE_CTL_HOB);
	for (unsigned i = 0; i < 2; i++) {
		struct ide_unit *u = &ide->unit[i];

		if (!u->present)
			continue;
		if (v & IDE_CTL_SRST)
			u->status = IDE_STATUS_BSY;
		else if (was_reset)
			reset(u);
	}
	if (v & IDE_CTL_SRST)
		ide->pending = false;
	else if (was_reset)
		ide->sel = 0;
	update_irq(ide);
}

/* A write to a command block register other than data.  Both devices take
 * it; a write to any clears HOB (ATA/ATAPI-6, Device Control register). */
static int reg_write(struct ide *ide, unsigned reg, uint8_t v)
{
	/* in reset both devices are BSY, which takes no writes */
	if (ide->ctl & IDE_CTL_SRST)
		return 0;
	ide->ctl &= (uint8_t)~IDE_CTL_HOB;
	if (reg == IDE_REG_COMMAND)
		return command(ide, v);
	for (unsigned i = 0; i < 2; i++) {
		struct ide_unit *u = &ide->unit[i];

		u->hob[reg] = u->tf[reg];
		u->tf[reg] = v;
	}
	if (reg == IDE_REG_DEVICE)
		ide->sel = v & IDE_DEVICE_DEV ? 1 : 0;
	return 0;
}

/* A read of a command block register other than data.  A missing
 * selected device reads 0 (QEMU; xv6 finds disk 1 by a status that is not
 * 0); HOB reads the previous byte of the two-deep registers. */
static uint8_t reg_read(struct ide *ide, unsigned reg)
{
	struct ide_unit *u = &ide->unit[ide->sel];
	bool hob = ide->ctl & IDE_CTL_HOB;

	/* reading the status register acknowledges the interrupt */
	if (reg == IDE_REG_STATUS)
		set_pending(ide, false);
	if (!u->present)
		return 0;
	switch (reg) {
	case IDE_REG_ERROR: return hob ? u->hob[IDE_REG_FEATURE] : u->error;
	case IDE_REG_STATUS: return u->status;
	case IDE_REG_DEVICE: return u->tf[IDE_REG_DEVICE];
	default: return hob ? u->hob[reg] : u->tf[reg];
	}
}

static int byte_pio(struct ide *ide, unsigned port, bool in, uint8_t *v)
{
	const struct ide_unit *u = &ide->unit[ide->sel];

	if (port > IDE_PORT_BASE && port < IDE_PORT_BASE + IDE_NREGS) {
		if (!in)
			return reg_write(ide, port - IDE_PORT_BASE, *v);
		*v = reg_read(ide, port - IDE_PORT_BASE);
	} else if (port == IDE_PORT_CTL) {
		/* alternate status: the status, the interrupt left pending */
		if (in)
			*v = u->present ? u->status : 0;
		else
			device_control(ide, *v);
	} else if (in) {
		*v = 0xff;
	}
	return 0;
}

int ide_pio(struct ide *ide, uint16_t port, bool in, uint8_t *data, unsigned size)
{
	int rc = 0;

	/* no device at all: nothing drives the bus */
	if (!any_present(ide) || size == 0 || size > 4) {
		if (in)
			memset(data, 0xff, size);
		return 0;
	}
	if (port == IDE_PORT_BASE + IDE_REG_DATA) {
		data_port(ide, in, data, size);
		return 0;
	}
	/* only the data register is 16 bits wide (it alone asserts IOCS16-):
	 * the bus splits a wider access into bytes at successive ports */
	for (unsigned i = 0; i < size; i++)
		if (byte_pio(ide, port + i, in, &data[i]))
			rc = -1;
	return rc;
}

bool ide_claims(uint16_t port)
{
	return (port >= IDE_PORT_BASE && port < IDE_PORT_BASE + IDE_NREGS) || port == IDE_PORT_CTL;
}

void ide_init(struct ide *ide, void (*irq)(void *opaque, int level), void *opaque)
{
	memset(ide, 0, sizeof(*ide));
	ide->unit[0].fd = ide->unit[1].fd = -1;
	ide->irq = irq;
	ide->opaque = opaque;
}

/* The disk's size in sectors, or 0 with err set. */
static uint64_t disk_sectors(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;
	off_t size;

	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
		return 0;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file or block device (mode 0%o)", path,
			 (unsigned)st.st_mode);
		return 0;
	}
	/* lseek rather than st_size: a block device's st_size is 0 */
	if ((size = lseek(fd, 0, SEEK_END)) < 0) {
		snprintf(err, errlen, "%s: cannot seek: %s", path, strerror(errno));
		return 0;
	}
	if (size == 0) {
		snprintf(err, errlen, "%s: size 0 bytes; a disk needs at least one %u-byte sector",
			 path, SECTOR);
		return 0;
	}
	if (size % SECTOR) {
		snprintf(err, errlen, "%s: size %lld bytes is not a multiple of the %u-byte sector",
			 path, (long long)size, SECTOR);
		return 0;
	}
	if ((uint64_t)size / SECTOR > IDE_MAX_SECTORS) {
		snprintf(err, errlen, "%s: %llu sectors exceeds the LBA28 limit of %llu sectors",
			 path, (unsigned long long)size / SECTOR, IDE_MAX_SECTORS);
		return 0;
	}
	return (uint64_t)size / SECTOR;
}

/* The image, opened and locked: shared when read-only, so that readers
 * may share it, but never with a writer.  -1 with err set. */
static int disk_open(const char *path, bool ro, char *err, size_t errlen)
{
	int fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open %s: %s", path,
			 ro ? "read-only" : "read-write", strerror(errno));
		return -1;
	}
	if (flock(fd, (ro ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
		snprintf(err, errlen, "%s: cannot lock: %s%s", path, strerror(errno),
			 errno == EWOULDBLOCK ? " (another user has it open)" : "");
		close(fd);
		return -1;
	}
	return fd;
}

int ide_attach(struct ide *ide, unsigned unit, const char *path, bool ro, char *err, size_t errlen)
{
	struct ide_unit *u;
	uint64_t sectors;
	int fd;

	assert(unit < 2);
	u = &ide->unit[unit];
	if (u->present) {
		snprintf(err, errlen, "%s: the %s already holds %s", path,
			 unit ? "slave" : "master", u->path);
		return -1;
	}
	if (strlen(path) >= sizeof(u->path)) {
		snprintf(err, errlen, "%.64s...: path of %zu bytes exceeds the limit of %zu", path,
			 strlen(path), sizeof(u->path) - 1);
		return -1;
	}
	if ((fd = disk_open(path, ro, err, errlen)) < 0)
		return -1;
	if (!(sectors = disk_sectors(fd, path, err, errlen)))
		goto err;
	u->fd = fd;
	u->ro = ro;
	u->sectors = sectors;
	snprintf(u->path, sizeof(u->path), "%s", path);
	u->present = true;
	reset(u);
	return 0;
err:
	close(fd);
	return -1;
}

void ide_close(struct ide *ide)
{
	for (unsigned i = 0; i < 2; i++) {
		struct ide_unit *u = &ide->unit[i];

		if (u->present)
			close(u->fd);
		u->present = false;
		u->fd = -1;
	}
}
