/* The port-I/O devices, driven as a guest would: the exit port's two rules,
 * COM1's line status, the 8259 initialisation sequence and mask readback,
 * the ELCR, and fw_cfg's selector-then-data protocol. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "devices.h"
#include "status.h"
#include "suites.h"

#define RAM (64ull << 20)

static struct devices dev;

static void init(bool multiboot)
{
	devices_init(&dev, stderr, RAM, multiboot);
}

static int out(uint16_t port, uint32_t v, unsigned size)
{
	uint8_t data[4];

	memcpy(data, &v, sizeof(data));
	return devices_pio(&dev, port, false, data, size);
}

static uint8_t inb(uint16_t port)
{
	uint8_t v = 0x5a;

	ck_assert_int_eq(devices_pio(&dev, port, true, &v, 1), -1);
	return v;
}

struct exit_case {
	bool multiboot;
	unsigned size;
	uint32_t value;
	int status;
};

static const struct exit_case exits[] = {
	{ true, 1, 0, 1 },         { true, 1, 1, 3 },
	{ true, 1, 0x7f, 0xff },   { true, 1, 0x80, 1 }, /* (0x101) & 0xff */
	{ true, 2, 0x1234, 0x69 },                       /* 16-bit write: (0x2469) & 0xff */
	{ true, 4, 0x10000, 1 },                         /* 32-bit write, all of it shifted */
	{ false, 1, 7, 7 },                              /* the ABI: status N */
	{ false, 2, 63, 63 },      { false, 1, 64, VMM_E_EXITRANGE },
};

START_TEST(test_devices_exit_port_status_rule)
{
	const struct exit_case *c = &exits[_i];

	init(c->multiboot);
	ck_assert_int_eq(out(0xf4, c->value, c->size), c->status);
	ck_assert(dev.exited);
	ck_assert_uint_eq(dev.exit_value, c->value);
	ck_assert_int_eq(DEVICES_DEBUG_EXIT_STATUS(c->value) == c->status, c->multiboot);
}
END_TEST

START_TEST(test_devices_com1_lsr_transmitter_empty_no_data)
{
	init(false);
	ck_assert_uint_eq(inb(0x3fd), 0x60);     /* THRE | TEMT */
	ck_assert_uint_eq(inb(0x3fd) & 0x01, 0); /* DR: nothing to read */
	ck_assert_uint_eq(inb(0x3f8), 0);
}
END_TEST

/* The IRQ lines as a device last set them, and how many rising edges. */
static int line[16], edges[16];

static void irq(void *opaque, unsigned gsi, int level)
{
	ck_assert_ptr_eq(opaque, &dev);
	ck_assert_uint_lt(gsi, 16);
	ck_assert_int_ne(line[gsi], level); /* only changes are reported */
	edges[gsi] += level && !line[gsi];
	line[gsi] = level;
}

static void init_irq(void)
{
	init(true);
	memset(line, 0, sizeof(line));
	memset(edges, 0, sizeof(edges));
	devices_set_irq(&dev, irq, &dev);
}

START_TEST(test_devices_com1_receive_in_order_with_lsr_dr)
{
	const uint8_t typed[] = "ls\r";

	init_irq();
	ck_assert_uint_eq(uart_receive(&dev.com1, typed, 3), 3);
	ck_assert_uint_eq(inb(0x3fd), 0x61); /* THRE | TEMT | DR */
	ck_assert_uint_eq(inb(0x3f8), 'l');
	ck_assert_uint_eq(inb(0x3f8), 's');
	ck_assert_uint_eq(inb(0x3fd) & 1, 1);
	ck_assert_uint_eq(inb(0x3f8), '\r');
	ck_assert_uint_eq(inb(0x3fd), 0x60); /* drained */
	ck_assert_uint_eq(inb(0x3f8), 0);
	ck_assert_int_eq(edges[4], 0); /* IER 0: no interrupt */
	devices_fini(&dev);
}
END_TEST

START_TEST(test_devices_com1_receive_interrupt_follows_ier_and_data)
{
	const uint8_t a = 'a';

	init_irq();
	ck_assert_int_eq(out(0x3f9, 0x01, 1), -1); /* IER: received data */
	ck_assert_int_eq(line[4], 0);
	ck_assert_uint_eq(inb(0x3fa), 0x01); /* IIR: none pending */
	uart_receive(&dev.com1, &a, 1);
	ck_assert_int_eq(line[4], 1);
	ck_assert_uint_eq(inb(0x3fa), 0x04); /* IIR: received data available */
	ck_assert_int_eq(line[4], 1);        /* IIR does not clear it: RBR does */
	ck_assert_uint_eq(inb(0x3f8), 'a');
	ck_assert_int_eq(line[4], 0);
	uart_receive(&dev.com1, &a, 1);
	ck_assert_int_eq(edges[4], 2);
	ck_assert_int_eq(out(0x3f9, 0x00, 1), -1); /* masked in IER: the line drops */
	ck_assert_int_eq(line[4], 0);
	devices_fini(&dev);
}
END_TEST

START_TEST(test_devices_com1_thre_interrupt_cleared_by_iir)
{
	init_irq();
	ck_assert_int_eq(out(0x3f9, 0x02, 1), -1); /* IER: THR empty */
	ck_assert_int_eq(line[4], 1);              /* the THR is empty now */
	ck_assert_uint_eq(inb(0x3fa), 0x02);
	ck_assert_int_eq(line[4], 0);
	ck_assert_uint_eq(inb(0x3fa), 0x01);
	ck_assert_int_eq(out(0x3f8, 'x', 1), -1); /* sent at once: empty again */
	ck_assert_int_eq(line[4], 1);
	devices_fini(&dev);
}
END_TEST

START_TEST(test_devices_com1_receive_buffer_bounded)
{
	static uint8_t many[UART_RX_SIZE + 10];

	init_irq();
	ck_assert_uint_eq(uart_receive(&dev.com1, many, sizeof(many)), UART_RX_SIZE);
	ck_assert_uint_eq(uart_receive(&dev.com1, many, 1), 0);
	inb(0x3f8);
	ck_assert_uint_eq(uart_receive(&dev.com1, many, 5), 1);
	devices_fini(&dev);
}
END_TEST

START_TEST(test_devices_crtc_reads_back_and_kbd_empty)
{
	init(true);
	/* the cursor location, as a CGA console keeps it (registers 14, 15) */
	ck_assert_int_eq(out(0x3d4, 14, 1), -1);
	ck_assert_int_eq(out(0x3d5, 0x07, 1), -1);
	ck_assert_int_eq(out(0x3d4, 15, 1), -1);
	ck_assert_int_eq(out(0x3d5, 0xd0, 1), -1);
	ck_assert_int_eq(out(0x3d4, 14, 1), -1);
	ck_assert_uint_eq(inb(0x3d5), 0x07);
	ck_assert_int_eq(out(0x3d4, 15, 1), -1);
	ck_assert_uint_eq(inb(0x3d5), 0xd0);
	ck_assert_uint_eq(inb(0x3d4), 15);
	/* 8042: no data waiting (bit 0), so a kernel never reads port 0x60 */
	ck_assert_uint_eq(inb(0x64) & 0x01, 0);
	/* IMCR: index 0x70, then the register */
	ck_assert_int_eq(out(0x22, 0x70, 1), -1);
	ck_assert_int_eq(out(0x23, 0x01, 1), -1);
	ck_assert_uint_eq(inb(0x23), 0x01);
	devices_fini(&dev);
}
END_TEST

/* Which reads change device state, so that a retried INS must not read
 * them again (trap.c): the receive buffer, IIR (it clears THRE), fw_cfg's
 * data, the IDE data and status registers (the latter acknowledges the
 * interrupt; the alternate status does not); a wide read covers the
 * following ports.  Status and index registers read alike twice. */
struct consume_case {
	uint16_t port;
	unsigned size;
	bool dlab, consumes;
};

static const struct consume_case consumes[] = {
	{ 0x3f8, 1, false, true },  { 0x3f8, 1, true, false },  { 0x3f9, 1, false, false },
	{ 0x3fa, 1, false, true },  { 0x3fd, 1, false, false }, { 0x3f9, 2, false, true },
	{ 0x510, 1, false, false }, { 0x511, 1, false, true },  { 0x1f0, 2, false, true },
	{ 0x1f0, 4, false, true },  { 0x1f7, 1, false, true },  { 0x1f6, 2, false, true },
	{ 0x1f2, 4, false, false }, { 0x3f6, 1, false, false }, { 0x64, 1, false, false },
	{ 0x3d5, 1, false, false }, { 0xf4, 1, false, false },
};

START_TEST(test_devices_read_consumes_only_stateful_registers)
{
	const struct consume_case *c = &consumes[_i];

	init(true);
	if (c->dlab)
		ck_assert_int_eq(out(0x3fb, 0x80, 1), -1);
	ck_assert_msg(devices_read_consumes(&dev, c->port, c->size) == c->consumes,
		      "port 0x%x size %u dlab %d: want consumes=%d", c->port, c->size, c->dlab,
		      c->consumes);
	devices_fini(&dev);
}
END_TEST

START_TEST(test_devices_pic_icw_sequence_and_mask)
{
	init(true);
	/* as a BIOS leaves them: all masked */
	ck_assert_uint_eq(inb(0x21), 0xff);
	ck_assert_uint_eq(inb(0xa1), 0xff);
	/* the usual remap: ICW1 (edge, cascade, IC4), ICW2 vector, ICW3, ICW4 */
	out(0x20, 0x11, 1);
	ck_assert_uint_eq(inb(0x21), 0); /* ICW1 clears the IMR */
	out(0x21, 0x20, 1);
	out(0x21, 0x04, 1);
	out(0x21, 0x01, 1);
	out(0xa0, 0x11, 1);
	out(0xa1, 0x28, 1);
	out(0xa1, 0x02, 1);
	out(0xa1, 0x01, 1);
	ck_assert_uint_eq(dev.pic[0].vector, 0x20);
	ck_assert_uint_eq(dev.pic[0].icw3, 0x04);
	ck_assert_uint_eq(dev.pic[1].vector, 0x28);
	ck_assert_uint_eq(dev.pic[1].icw4, 0x01);
	ck_assert_uint_eq(inb(0x21), 0); /* ICWs are not masks */
	/* OCW1 */
	out(0x21, 0xfb, 1);
	out(0xa1, 0xff, 1);
	ck_assert_uint_eq(inb(0x21), 0xfb);
	ck_assert_uint_eq(inb(0xa1), 0xff);
	ck_assert_uint_eq(inb(0x20), 0); /* IRR */
	out(0x20, 0x0b, 1);              /* OCW3: read ISR */
	ck_assert_uint_eq(inb(0x20), 0);
	ck_assert_uint_eq(inb(0x21), 0xfb); /* OCW3 is no mask write */
	ck_assert_uint_eq(dev.unclaimed, 0);
}
END_TEST

START_TEST(test_devices_pic_single_without_icw4)
{
	init(true);
	out(0x20, 0x12, 1); /* SNGL, no IC4: ICW2 only */
	out(0x21, 0x47, 1);
	ck_assert_uint_eq(dev.pic[0].vector, 0x40);
	out(0x21, 0x55, 1); /* already OCW1 */
	ck_assert_uint_eq(inb(0x21), 0x55);
	ck_assert_uint_eq(dev.pic[0].icw4, 0);
}
END_TEST

START_TEST(test_devices_elcr_masks_edge_only_lines)
{
	init(true);
	out(0x4d0, 0xffff, 2);
	ck_assert_uint_eq(inb(0x4d0), 0xf8);
	ck_assert_uint_eq(inb(0x4d1), 0xde);
}
END_TEST

/* Select `key`, then read `n` bytes of it through the data port. */
static void fw_cfg_read(uint16_t key, uint8_t *buf, unsigned n)
{
	ck_assert_int_eq(out(0x510, key, 2), -1);
	for (unsigned i = 0; i < n; i++)
		buf[i] = inb(0x511);
}

static uint64_t le(const uint8_t *b, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

START_TEST(test_devices_fw_cfg_items)
{
	uint8_t b[12];

	init(true);
	fw_cfg_read(0x0000, b, 6);
	ck_assert_mem_eq(b, "QEMU\0\0", 6); /* 0 past the item's end */
	fw_cfg_read(0x0001, b, 4);
	ck_assert_uint_eq(le(b, 4), 1);
	fw_cfg_read(0x0005, b, 3);
	ck_assert_uint_eq(le(b, 3), 1); /* NB_CPUS, u16 then 0 */
	fw_cfg_read(0x000f, b, 2);
	ck_assert_uint_eq(le(b, 2), 1); /* MAX_CPUS */
	fw_cfg_read(0x0003, b, 8);
	ck_assert_uint_eq(le(b, 8), RAM);
	memset(b, 0xee, sizeof(b));
	fw_cfg_read(0x0019, b, 4);
	ck_assert_uint_eq(le(b, 4), 0); /* FILE_DIR: no files */
	memset(b, 0xee, sizeof(b));
	fw_cfg_read(0x1234, b, 4);
	ck_assert_uint_eq(le(b, 4), 0);
}
END_TEST

START_TEST(test_devices_fw_cfg_selector_rewinds)
{
	uint8_t b[4];

	init(false);
	fw_cfg_read(0x0000, b, 2);
	ck_assert_mem_eq(b, "QE", 2);
	out(0x510, 0x00, 1); /* a byte write is no selection */
	b[0] = inb(0x511);
	ck_assert_uint_eq(b[0], 'M');
	fw_cfg_read(0x0000, b, 4);
	ck_assert_mem_eq(b, "QEMU", 4);
}
END_TEST

Suite *devices_suite(void)
{
	Suite *s = suite_create("devices");
	TCase *tc = tcase_create("pio");

	tcase_add_loop_test(tc, test_devices_exit_port_status_rule, 0,
			    (int)(sizeof(exits) / sizeof(exits[0])));
	tcase_add_test(tc, test_devices_com1_lsr_transmitter_empty_no_data);
	tcase_add_test(tc, test_devices_com1_receive_in_order_with_lsr_dr);
	tcase_add_test(tc, test_devices_com1_receive_interrupt_follows_ier_and_data);
	tcase_add_test(tc, test_devices_com1_thre_interrupt_cleared_by_iir);
	tcase_add_test(tc, test_devices_com1_receive_buffer_bounded);
	tcase_add_test(tc, test_devices_crtc_reads_back_and_kbd_empty);
	tcase_add_loop_test(tc, test_devices_read_consumes_only_stateful_registers, 0,
			    (int)(sizeof(consumes) / sizeof(consumes[0])));
	tcase_add_test(tc, test_devices_pic_icw_sequence_and_mask);
	tcase_add_test(tc, test_devices_pic_single_without_icw4);
	tcase_add_test(tc, test_devices_elcr_masks_edge_only_lines);
	tcase_add_test(tc, test_devices_fw_cfg_items);
	tcase_add_test(tc, test_devices_fw_cfg_selector_rewinds);
	suite_add_tcase(s, tc);
	return s;
}
