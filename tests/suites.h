/* Every Check suite of the test runner (tests/runner.c). */
#ifndef SHADOWVM_TESTS_SUITES_H
#define SHADOWVM_TESTS_SUITES_H

#include <check.h>

/* unit: no KVM */
Suite *elf_load_suite(void);
Suite *multiboot_suite(void);
Suite *devices_suite(void);
Suite *ide_suite(void);
Suite *console_suite(void);
Suite *cli_suite(void);
Suite *backend_suite(void);
Suite *abi_suite(void);
Suite *shadow_walk_suite(void);
Suite *shadow_spte_suite(void);
Suite *shadow_vtlb_suite(void);
Suite *shadow_cache_suite(void);
Suite *shadow_check_suite(void);
Suite *trace_suite(void);
Suite *trace_plot_suite(void);
Suite *segment_suite(void);
Suite *reflect_suite(void);
Suite *emulate_suite(void);
Suite *gva_suite(void);
Suite *counters_suite(void);
Suite *control_suite(void);

/* integration: real guests on a real /dev/kvm */
Suite *integration_suite(void);

#endif
