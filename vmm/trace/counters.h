/* Every counter shadowvm reports, named once.  --stats (stats.c), the -v
 * "shadow:" line (run.c), the tests that compare the trace with --stats, and
 * the bench report (tests/bench_report.c) all expand COUNTERS, so a counter
 * added here appears in each of them.  The KVM exits, counted per exit
 * reason by the vCPU, are reported apart. */
#ifndef SHADOWVM_VMM_COUNTERS_H
#define SHADOWVM_VMM_COUNTERS_H

#include <stdint.h>
#include <stdio.h>

struct vm;

/* X(name, path, src, field, meaning):
 *   name     the key on the -v line and in the bench report; COUNTER_<name>
 *   path     the --stats key; "fills.1" is "1" inside the object "fills"
 *   src      trap: struct trap_stats (vm.h); shadow: struct shadow_stats (shadow.h);
 *            mon: the fill monitor's struct hv_mon (hv_mon.h); lapic: its
 *            local-APIC fast path's struct hv_lapic (monitor.h)
 *   field    its member
 *   meaning  what one count is
 * The order is --stats's and the -v line's; under --paging=hw the shadow
 * counters read 0, so the keys never vary. */
/* clang-format off: the table stays a table */
#define COUNTERS(X)                                                                                \
	X(traps, "traps", trap, traps, "monitor entries")                                          \
	X(hidden_faults, "hidden_faults", shadow, hidden_faults, "shadow_fault() calls")           \
	X(fills_1, "fills.1", shadow, fills[1], "shadow leaves for a 4 KiB guest leaf")            \
	X(fills_2, "fills.2", shadow, fills[2], "shadow leaves for a 2 MiB guest leaf")            \
	X(fills_3, "fills.3", shadow, fills[3], "shadow leaves for a 1 GiB guest leaf")            \
	X(a_sets, "a_sets", shadow, a_sets, "guest entries whose A bit a walk set")                \
	X(d_sets, "d_sets", shadow, d_sets, "guest entries whose D bit a walk set")                \
	X(guest_faults, "guest_faults", shadow, guest_faults,                                      \
	  "walks that ended in a #PF or #GP for the guest")                                        \
	X(reflected, "reflected", trap, reflected, "events delivered through the guest IDT")       \
	X(emulated, "emulated", trap, emulated, "privileged instructions emulated")                \
	X(syscalls, "syscalls", trap, syscalls, "SYSCALLs entered through the virtual LSTAR")      \
	X(cr3_writes, "cr3_writes", shadow, cr3_loads, "guest CR3 writes")                         \
	X(invlpgs, "invlpgs", shadow, invlpgs, "guest INVLPGs")                                    \
	X(flushes, "flushes", shadow, flushes, "whole-shadow flushes, evictions apart")            \
	X(evictions, "evictions", shadow, evictions, "shadows dropped because the pool ran out")   \
	X(ad_retries, "ad_retries", shadow, ad_retries, "walks repeated because an entry changed") \
	X(pages_peak, "pages_peak", shadow, pages_peak, "most shadow pool pages in use at once")   \
	X(roots_reused, "roots_reused", shadow, roots_reused,                                      \
	  "CR3 writes and control-bit changes that found their root cached")                       \
	X(unprotects, "unprotects", shadow, unprotects, "guest writes to a write-protected table") \
	X(zaps, "zaps", shadow, zaps, "shadow tables dropped by those writes")                     \
	X(floods, "floods", shadow, floods,                                                        \
	  "guest tables left unprotected (flooded, self-mapped)")                                  \
	X(prefetched, "prefetched", shadow, prefetched,                                            \
	  "leaves installed for a fault's neighbours")                                             \
	X(huge_leaves, "huge_leaves", shadow, huge_leaves,                                         \
	  "2 MiB shadow leaves, also counted in fills")                                            \
	X(fast_fills, "fast_fills", shadow, fast_fills,                                            \
	  "fills that read only the guest PTE, also counted in fills")                             \
	X(applies, "applies", trap, applies, "resumes through the monitor's store applier")        \
	X(stores, "stores", trap, stores,                                                          \
	  "shadow entry stores and page zeroings the monitor made")                                \
	X(drains, "drains", trap, drains, "store queues applied mid-trap because they were full")  \
	X(stores_peak, "stores_peak", trap, stores_peak,                                           \
	  "most shadow stores queued for one resume")                                              \
	X(mon_resolved, "monitor.resolved", mon, resolved,                                         \
	  "hidden faults the fill monitor resolved inside the VM, without an exit")                \
	X(mon_guest_fault, "monitor.guest_fault", mon, exits[HV_MON_EXIT_GUEST_FAULT],             \
	  "faults it left to the VMM: genuine, to reflect")                                        \
	X(mon_error, "monitor.error", mon, exits[HV_MON_EXIT_ERROR],                               \
	  "... outside RAM or in the reserved slot")                                               \
	X(mon_rsvd, "monitor.rsvd", mon, exits[HV_MON_EXIT_RSVD],                                  \
	  "... a reserved-bit fault on a shadow entry")                                            \
	X(mon_repeat, "monitor.repeat", mon, exits[HV_MON_EXIT_REPEAT],                            \
	  "... the fault it had just resolved, back")                                              \
	X(mon_pool, "monitor.pool", mon, exits[HV_MON_EXIT_POOL],                                  \
	  "... too few free pool pages (the fill could evict)")                                    \
	X(mon_ring, "monitor.ring", mon, exits[HV_MON_EXIT_RING],                                  \
	  "... no room in the event ring for a fault's events")                                    \
	X(mon_slot, "monitor.slot", mon, exits[HV_MON_EXIT_SLOT],                                  \
	  "... the guest maps the reserved PML4 slot")                                             \
	X(mon_not_ready, "monitor.not_ready", mon, exits[HV_MON_EXIT_NOT_READY],                   \
	  "... no shadow context to attach to")                                                    \
	X(mon_check, "monitor.check", mon, exits[HV_MON_EXIT_CHECK],                               \
	  "... resolved, then handed over for --check-invariants")                                 \
	X(mon_insn, "monitor.insn", mon, exits[HV_MON_EXIT_INSN],                                  \
	  "#GPs it left to the VMM: all but the kernel's mov to CR3, from CR2, invlpg")            \
	X(mon_mode, "monitor.mode", mon, exits[HV_MON_EXIT_MODE],                                  \
	  "#GPs it left to the VMM: a mode it does not emulate in (see README)")            \
	X(interrupts, "interrupts", trap, interrupts,                                              \
	  "external interrupts (vectors 32..255) reflected through the guest IDT")                 \
	X(halts, "halts", trap, halts, "hlt emulated as a wait in KVM for an interrupt")           \
	X(in_replays, "in_replays", trap, in_replays,                                              \
	  "string INs whose data was served again after their store took a hidden fault")        \
	X(mmio_marks, "mmio_marks", shadow, mmio_marks,                                            \
	  "local-APIC leaves installed marked for the monitor's fast path")                        \
	X(mmio_unmarks, "mmio_unmarks", shadow, mmio_unmarks,                                      \
	  "marked leaves made plain: an access the fast path left to KVM")                         \
	X(lapic_id_reads, "lapic.id_reads", lapic, id_reads,                                       \
	  "guest-kernel APIC ID reads the monitor served inside the VM, no exit")                  \
	X(lapic_forwarded, "lapic.forwarded", lapic, forwarded,                                    \
	  "other APIC loads and stores it made through its alias (KVM serves them)")               \
	X(lapic_declined, "lapic.declined", lapic, declined,                                       \
	  "marked-leaf faults it left to the VMM (see README)")
/* clang-format on */

enum counter {
#define COUNTER_ENUM(name, path, src, field, meaning) COUNTER_##name,
	COUNTERS(COUNTER_ENUM)
#undef COUNTER_ENUM
		COUNTER_N
};

static inline const char *counter_name(enum counter c)
{
#define COUNTER_NAME(name, path, src, field, meaning) #name,
	static const char *const names[COUNTER_N] = { COUNTERS(COUNTER_NAME) };
#undef COUNTER_NAME
	return names[c];
}

static inline const char *counter_path(enum counter c)
{
#define COUNTER_PATH(name, path, src, field, meaning) path,
	static const char *const paths[COUNTER_N] = { COUNTERS(COUNTER_PATH) };
#undef COUNTER_PATH
	return paths[c];
}

/* Every counter of `vm` now, indexed by enum counter; the shadow's read 0
 * without a shadow MMU. */
void counters_read(const struct vm *vm, uint64_t v[COUNTER_N]);

/* --stats's counters: `,"path":value` each, a dotted path nested in its
 * object. */
void counters_json(FILE *f, const uint64_t v[COUNTER_N]);

/* The -v line's counters, ` name=value` each, into buf (truncated to len). */
void counters_line(char *buf, size_t len, const uint64_t v[COUNTER_N]);

#endif
