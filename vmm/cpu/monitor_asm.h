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
#define HV_ASM_PORT_APPLIED 0xf8

#endif
