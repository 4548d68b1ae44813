/* The one test runner: `runner unit` (no KVM) or `runner integration`
 * (real guests on a real /dev/kvm; run it under scripts/with-kvm). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"

int main(int argc, char **argv)
{
	SRunner *sr;
	int failed;

	if (argc != 2 || (strcmp(argv[1], "unit") && strcmp(argv[1], "integration"))) {
		fprintf(stderr, "usage: %s unit|integration\n", argv[0]);
		return 64;
	}
	if (!strcmp(argv[1], "unit")) {
		sr = srunner_create(abi_suite());
		srunner_add_suite(sr, cli_suite());
		srunner_add_suite(sr, backend_suite());
		srunner_add_suite(sr, elf_load_suite());
		srunner_add_suite(sr, multiboot_suite());
		srunner_add_suite(sr, devices_suite());
		srunner_add_suite(sr, ide_suite());
		srunner_add_suite(sr, console_suite());
		srunner_add_suite(sr, shadow_walk_suite());
		srunner_add_suite(sr, shadow_spte_suite());
		srunner_add_suite(sr, shadow_vtlb_suite());
		srunner_add_suite(sr, shadow_cache_suite());
		srunner_add_suite(sr, shadow_check_suite());
		srunner_add_suite(sr, trace_suite());
		srunner_add_suite(sr, trace_plot_suite());
		srunner_add_suite(sr, segment_suite());
		srunner_add_suite(sr, reflect_suite());
		srunner_add_suite(sr, emulate_suite());
		srunner_add_suite(sr, gva_suite());
		srunner_add_suite(sr, counters_suite());
		srunner_add_suite(sr, control_suite());
	} else {
		sr = srunner_create(integration_suite());
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
