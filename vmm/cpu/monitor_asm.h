/* The monitor's layout as plain numbers, for monitor_apply.S as well as C
 * (monitor.h checks them against its own definitions). */
#ifndef SHADOWVM_MONITOR_ASM_H
#define SHADOWVM_MONITOR_ASM_H

#define HV_ASM_VA_BASE 0xffffff0000000000 /* SHADOWVM_ABI_RESERVED_VA_BASE */
#define HV_ASM_PG_STUBS 21
#define HV_ASM_PG_STACK 23
#define HV_ASM_PG_QUEUE 28
#define HV_ASM_QUEUE_VA (HV_ASM_VA_BASE + HV_ASM_PG_QUEUE * 4096)
#define HV_ASM_APPLY_VA (HV_ASM_VA_BASE + (HV_ASM_PG_STUBS + 1) * 4096 + 64)
#define HV_ASM_QUEUE_OPS_OFF 64 /* the header, then {where, value} pairs */
#define HV_ASM_PORT_TRAP 0xf6
#define HV_ASM_PORT_APPLIED 0xf8
#define HV_ASM_PG_MROOT 25
#define HV_ASM_PG_MON 31
#define HV_ASM_PG_POOL 32
#define HV_ASM_SLOT_MPA 0x800000000 /* HV_BASE */
#define HV_ASM_MROOT_MPA (HV_ASM_SLOT_MPA + HV_ASM_PG_MROOT * 4096)
#define HV_ASM_POOL_MPA (HV_ASM_SLOT_MPA + HV_ASM_PG_POOL * 4096)
#define HV_ASM_MON_VA (HV_ASM_VA_BASE + HV_ASM_PG_MON * 4096)
/* the fill monitor's #PF entry, after the applier */
#define HV_ASM_PF_VA (HV_ASM_VA_BASE + (HV_ASM_PG_STUBS + 1) * 4096 + 512)
#define HV_ASM_MON_IMAGE_VA 0xffffffff80000000 /* HV_MON_IMAGE_VA */
/* the local-APIC fast path's state (struct hv_lapic) at the bottom of the
 * trap stack page, and the APIC's alias (HV_PT_LAPIC) */
#define HV_ASM_LAPIC_VA (HV_ASM_VA_BASE + HV_ASM_PG_STACK * 4096)
#define HV_ASM_LAPIC_ENABLED 0
#define HV_ASM_LAPIC_STAC 4
#define HV_ASM_LAPIC_ID 8
#define HV_ASM_LAPIC_ID_READS 16
#define HV_ASM_LAPIC_FORWARDED 24
#define HV_ASM_LAPIC_DECLINED 32
#define HV_ASM_PT_LAPIC 511
#define HV_ASM_LAPIC_ALIAS_VA (HV_ASM_VA_BASE + HV_ASM_PT_LAPIC * 4096)
#define HV_ASM_PG_GDT 4
#define HV_ASM_GDT_VA (HV_ASM_VA_BASE + HV_ASM_PG_GDT * 4096)
#define HV_ASM_HEAD_ENTRY 8 /* struct hv_mon_head */
#define HV_ASM_HEAD_STACK 16

#endif
