/* The primary ATA channel: command block at 0x1f0-0x1f7, control block at
 * 0x3f6, INTRQ on ISA IRQ 14, up to two disks (master, slave), PIO only, as
 * ATA/ATAPI-6 (T13/1410D) describes the device and QEMU's hw/ide behaves.
 * A disk is a host file (or block device) of 512-byte sectors.  Every
 * sector the guest writes is pwrite()n to it before the command goes on, so
 * a VMM killed mid-run loses no write the guest saw complete; FLUSH CACHE
 * is an fdatasync.  There is no KVM in here: the caller routes the ports to
 * ide_pio() and the `irq` callback to its interrupt controller.
 *
 * Addressing is LBA only: a command with the device register's LBA bit
 * clear (CHS) is aborted, since every guest of interest sets it.  LBA48 is
 * there (READ/WRITE SECTORS EXT, READ/WRITE MULTIPLE EXT): the address and
 * count registers keep the byte written before the last one, and the HOB
 * bit of device control reads it back. */
#ifndef SHADOWVM_IDE_H
#define SHADOWVM_IDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDE_PORT_BASE 0x1f0 /* command block: 0x1f0..0x1f7 */
#define IDE_PORT_CTL 0x3f6  /* alternate status (read) / device control (write) */
#define IDE_IRQ 14

#define IDE_SECTOR_SIZE 512u
/* the most sectors a disk may have: what LBA28 addresses */
#define IDE_MAX_SECTORS (1ull << 28)
/* READ/WRITE MULTIPLE's largest DRQ block (IDENTIFY word 47) */
#define IDE_MAX_MULTIPLE 16u

/* Command block registers, as offsets from IDE_PORT_BASE. */
enum ide_reg {
	IDE_REG_DATA = 0,
	IDE_REG_ERROR = 1, /* read; features on write */
	IDE_REG_FEATURE = 1,
	IDE_REG_COUNT = 2,
	IDE_REG_LBA_LOW = 3,
	IDE_REG_LBA_MID = 4,
	IDE_REG_LBA_HIGH = 5,
	IDE_REG_DEVICE = 6,
	IDE_REG_STATUS = 7, /* read; command on write */
	IDE_REG_COMMAND = 7,
	IDE_NREGS = 8,
};

/* Status register (ATA/ATAPI-6) */
#define IDE_STATUS_ERR_BIT 0
#define IDE_STATUS_ERR (1u << IDE_STATUS_ERR_BIT)
#define IDE_STATUS_DRQ_BIT 3
#define IDE_STATUS_DRQ (1u << IDE_STATUS_DRQ_BIT)
#define IDE_STATUS_DSC_BIT 4 /* obsolete seek complete; still read as idle */
#define IDE_STATUS_DSC (1u << IDE_STATUS_DSC_BIT)
#define IDE_STATUS_DF_BIT 5
#define IDE_STATUS_DF (1u << IDE_STATUS_DF_BIT)
#define IDE_STATUS_DRDY_BIT 6
#define IDE_STATUS_DRDY (1u << IDE_STATUS_DRDY_BIT)
#define IDE_STATUS_BSY_BIT 7
#define IDE_STATUS_BSY (1u << IDE_STATUS_BSY_BIT)

/* Error register (ATA/ATAPI-6) */
#define IDE_ERROR_ABRT_BIT 2
#define IDE_ERROR_ABRT (1u << IDE_ERROR_ABRT_BIT)
#define IDE_ERROR_IDNF_BIT 4
#define IDE_ERROR_IDNF (1u << IDE_ERROR_IDNF_BIT)
#define IDE_ERROR_UNC_BIT 6
#define IDE_ERROR_UNC (1u << IDE_ERROR_UNC_BIT)
/* after a reset or EXECUTE DEVICE DIAGNOSTIC: the diagnostic code "passed" */
#define IDE_ERROR_DIAG_PASSED 0x01

/* Device register (ATA/ATAPI-6) */
#define IDE_DEVICE_DEV_BIT 4 /* 1: device 1 (slave) */
#define IDE_DEVICE_DEV (1u << IDE_DEVICE_DEV_BIT)
#define IDE_DEVICE_LBA_BIT 6
#define IDE_DEVICE_LBA (1u << IDE_DEVICE_LBA_BIT)
#define IDE_DEVICE_LBA_HEAD 0x0fu /* LBA 27:24 */

/* Device Control register (ATA/ATAPI-6) */
#define IDE_CTL_NIEN_BIT 1
#define IDE_CTL_NIEN (1u << IDE_CTL_NIEN_BIT)
#define IDE_CTL_SRST_BIT 2
#define IDE_CTL_SRST (1u << IDE_CTL_SRST_BIT)
#define IDE_CTL_HOB_BIT 7
#define IDE_CTL_HOB (1u << IDE_CTL_HOB_BIT)

/* The commands it executes; any other is aborted. */
#define IDE_CMD_RECALIBRATE 0x10 /* 0x10..0x1f */
#define IDE_CMD_READ_SECTORS 0x20
#define IDE_CMD_READ_SECTORS_NR 0x21 /* without retries: the same */
#define IDE_CMD_READ_SECTORS_EXT 0x24
#define IDE_CMD_READ_MULTIPLE_EXT 0x29
#define IDE_CMD_WRITE_SECTORS 0x30
#define IDE_CMD_WRITE_SECTORS_NR 0x31
#define IDE_CMD_WRITE_SECTORS_EXT 0x34
#define IDE_CMD_WRITE_MULTIPLE_EXT 0x39
#define IDE_CMD_EXECUTE_DIAGNOSTIC 0x90
#define IDE_CMD_INIT_PARAMETERS 0x91
#define IDE_CMD_READ_MULTIPLE 0xc4
#define IDE_CMD_WRITE_MULTIPLE 0xc5
#define IDE_CMD_SET_MULTIPLE 0xc6
#define IDE_CMD_FLUSH_CACHE 0xe7
#define IDE_CMD_FLUSH_CACHE_EXT 0xea
#define IDE_CMD_IDENTIFY 0xec
#define IDE_CMD_SET_FEATURES 0xef

/* One device on the channel.  Both devices on a cable take every write to
 * the command block, so each keeps its own copy of the task file; only the
 * selected one answers reads and executes commands. */
struct ide_unit {
	int fd;
	bool present, ro;
	uint64_t sectors;
	char path[256];
	uint8_t tf[IDE_NREGS];  /* the registers as last written, by enum ide_reg */
	uint8_t hob[IDE_NREGS]; /* LBA48: the byte written before that one */
	uint8_t status, error;
	uint8_t multiple; /* READ/WRITE MULTIPLE's block size (SET MULTIPLE MODE) */
	/* the data phase of the command in progress (status DRQ) */
	bool writing;        /* PIO data-out: the host fills buf */
	uint64_t lba;        /* the sector in buf */
	uint32_t left;       /* sectors still to move, buf's included */
	uint16_t block;      /* sectors per DRQ block */
	uint16_t block_left; /* of the current DRQ block, buf's included */
	uint16_t pos;        /* next byte of buf */
	uint8_t buf[IDE_SECTOR_SIZE];
};

struct ide {
	struct ide_unit unit[2]; /* 0 master, 1 slave */
	unsigned sel;            /* the selected unit: DEV of the last device register write */
	uint8_t ctl;             /* device control as last written: nIEN, SRST, HOB */
	bool pending;            /* an interrupt awaits a status read */
	bool level;              /* INTRQ as last reported */
	void (*irq)(void *opaque, int level); /* IRQ 14; called on each level change */
	void *opaque;
	uint64_t reads, writes; /* sectors moved to and from the files */
	char err[320];          /* the last host I/O failure, for a message */
};

/* A channel with no disks: every register reads 0xff, as a floating bus.
 * `irq` (may be NULL) hears INTRQ's level changes. */
void ide_init(struct ide *ide, void (*irq)(void *opaque, int level), void *opaque);

/* Open `path` (O_RDWR, or O_RDONLY when `ro`; locked against other
 * writers) as unit 0 (master) or 1 (slave), idle with the reset signature.
 * Its size must be a nonzero multiple of 512 bytes and at most
 * IDE_MAX_SECTORS sectors.  0, or -1 with one line in err naming the file,
 * what is wrong, the value and the limit. */
int ide_attach(struct ide *ide, unsigned unit, const char *path, bool ro, char *err, size_t errlen);

/* One guest access of `size` bytes at `port` (a port ide_claims()): on
 * input the channel fills data.  The data register moves `size` bytes of
 * the sector (a 32-bit access is how rep insl/outsl arrive); a wider access
 * to an 8-bit register is one byte at each successive port, as the ISA bus
 * splits it.  Whatever the guest does is answered, never fatal, and a host
 * read or write failure is the guest's ERR (with a pr_warn and the text in
 * ide->err).  Returns -1 only when FLUSH CACHE's fdatasync failed, since
 * writes the guest was told are done may then be lost: ide->err says why. */
int ide_pio(struct ide *ide, uint16_t port, bool in, uint8_t *data, unsigned size);

/* Whether `port` is one of the channel's: 0x1f0-0x1f7, 0x3f6. */
bool ide_claims(uint16_t port);

/* Close the disks' files: both units are absent after it.  Safe to call
 * more than once, and on a channel only ide_init() has seen. */
void ide_close(struct ide *ide);

#endif
