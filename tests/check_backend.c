/* Backend classification (vmm/kvm/backend.c) from fake sysfs trees and fake
 * KVM_GET_SUPPORTED_CPUID tables: no /dev/kvm involved. */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "kvm.h"
#include "status.h"
#include "suites.h"
#include "util.h"

/* ---- fixtures: a sysfs tree in the test's directory ----------------------- */

static char sysfs[128];

static void tree_setup(void)
{
	ck_assert(snprintf(sysfs, sizeof(sysfs), "%s", test_file("sys")) < (int)sizeof(sysfs));
	ck_assert_int_eq(mkdir(sysfs, 0755), 0);
}

/* mkdir -p sysfs/module/MOD[/parameters], and PARAM = VALUE if given. */
static void add_module(const char *mod, const char *param, const char *value)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/module", sysfs);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/module/%s", sysfs, mod);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	if (!param)
		return;
	snprintf(path, sizeof(path), "%s/module/%s/parameters", sysfs, mod);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/module/%s/parameters/%s", sysfs, mod, param);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "%s\n", value);
	fclose(f);
}

/* ---- fake CPUID tables --------------------------------------------------------- */

#define LE4(a, b, c, d) \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

static struct kvm_cpuid_entry2 leaf(uint32_t fn, uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
	return (struct kvm_cpuid_entry2){ .function = fn, .eax = a, .ebx = b, .ecx = c, .edx = d };
}

/* Vendor leaf 0: EBX, EDX, ECX spell the vendor (SDM 2A CPUID leaf 0). */
static struct kvm_cpuid_entry2 vendor_intel(void)
{
	return leaf(0, 0xd, LE4('G', 'e', 'n', 'u'), LE4('n', 't', 'e', 'l'),
		    LE4('i', 'n', 'e', 'I'));
}

static struct kvm_cpuid_entry2 vendor_amd(void)
{
	return leaf(0, 0xd, LE4('A', 'u', 't', 'h'), LE4('c', 'A', 'M', 'D'),
		    LE4('e', 'n', 't', 'i'));
}

/* KVM's hypervisor leaf: "KVMKVMKVM\0\0\0" in EBX:ECX:EDX. */
static struct kvm_cpuid_entry2 hv_base(uint32_t max)
{
	return leaf(0x40000000, max, LE4('K', 'V', 'M', 'K'), LE4('V', 'M', 'K', 'V'),
		    LE4('M', 0, 0, 0));
}

/* ---- the classification table ---------------------------------------------------- */

struct backend_case {
	const char *name;
	const char *mods[2][3]; /* module, parameter, value */
	int cpuid;              /* which table below */
	enum backend_kind kind;
	int tdp;
	bool shadow_runs, hw_runs;
};

enum { CPU_NONE, CPU_INTEL, CPU_AMD, CPU_PVM, CPU_PVM_SHORT };

static unsigned make_cpuid(int which, struct kvm_cpuid_entry2 *t)
{
	unsigned n = 0;

	switch (which) {
	case CPU_INTEL:
		t[n++] = vendor_intel();
		t[n++] = hv_base(0x40000001);
		break;
	case CPU_AMD:
		t[n++] = vendor_amd();
		t[n++] = hv_base(0x40000001);
		break;
	case CPU_PVM: /* PVM: max hypervisor leaf 0x40000002, whose EBX is "PVM" */
		t[n++] = vendor_intel();
		t[n++] = hv_base(0x40000002);
		t[n++] = leaf(0x40000002, 0, 0x4d5650, 0, 0);
		break;
	case CPU_PVM_SHORT: /* the leaf is there, but EAX of 0x40000000 does not reach it */
		t[n++] = vendor_intel();
		t[n++] = hv_base(0x40000001);
		t[n++] = leaf(0x40000002, 0, 0x4d5650, 0, 0);
		break;
	}
	return n;
}

static const struct backend_case cases[] = {
	{ "intel ept=Y",
	  { { "kvm_intel", "ept", "Y" } },
	  CPU_INTEL,
	  BACKEND_KVM_INTEL,
	  TDP_ON,
	  true,
	  true },
	{ "intel ept=N",
	  { { "kvm_intel", "ept", "N" } },
	  CPU_INTEL,
	  BACKEND_KVM_INTEL,
	  TDP_OFF,
	  true,
	  true },
	{ "amd npt=Y",
	  { { "kvm_amd", "npt", "Y" } },
	  CPU_AMD,
	  BACKEND_KVM_AMD,
	  TDP_ON,
	  true,
	  true },
	{ "amd npt=N",
	  { { "kvm_amd", "npt", "N" } },
	  CPU_AMD,
	  BACKEND_KVM_AMD,
	  TDP_OFF,
	  true,
	  true },
	{ "amd npt=1 (int)",
	  { { "kvm_amd", "npt", "1" } },
	  CPU_AMD,
	  BACKEND_KVM_AMD,
	  TDP_ON,
	  true,
	  true },
	{ "amd npt=0 (int)",
	  { { "kvm_amd", "npt", "0" } },
	  CPU_AMD,
	  BACKEND_KVM_AMD,
	  TDP_OFF,
	  true,
	  true },
	{ "pvm module", { { "kvm_pvm" } }, CPU_INTEL, BACKEND_KVM_PVM, TDP_UNKNOWN, false, false },
	{ "pvm cpuid", { { NULL } }, CPU_PVM, BACKEND_KVM_PVM, TDP_UNKNOWN, false, false },
	{ "pvm beside kvm_intel",
	  { { "kvm_intel", "ept", "Y" }, { "kvm_pvm" } },
	  CPU_PVM,
	  BACKEND_KVM_PVM,
	  TDP_UNKNOWN,
	  false,
	  false },
	{ "pvm leaf past max",
	  { { "kvm_intel", "ept", "Y" } },
	  CPU_PVM_SHORT,
	  BACKEND_KVM_INTEL,
	  TDP_ON,
	  true,
	  true },
	{ "intel and amd, AMD cpu",
	  { { "kvm_intel", "ept", "Y" }, { "kvm_amd", "npt", "N" } },
	  CPU_AMD,
	  BACKEND_KVM_AMD,
	  TDP_OFF,
	  true,
	  true },
	{ "intel, no parameters",
	  { { "kvm_intel" } },
	  CPU_INTEL,
	  BACKEND_KVM_INTEL,
	  TDP_UNKNOWN,
	  true,
	  true },
	{ "no module", { { NULL } }, CPU_NONE, BACKEND_UNKNOWN, TDP_UNKNOWN, true, true },
};

START_TEST(test_backend_classify_table)
{
	const struct backend_case *c = &cases[_i];
	struct kvm_cpuid_entry2 t[8];
	struct backend_facts f = { .api_version = 12 };
	unsigned n = make_cpuid(c->cpuid, t);
	char why[400];

	for (int m = 0; m < 2 && c->mods[m][0]; m++)
		add_module(c->mods[m][0], c->mods[m][1], c->mods[m][2]);
	backend_classify(sysfs, t, n, &f);
	ck_assert_msg(f.kind == c->kind, "%s: kind %s", c->name, backend_name(f.kind));
	ck_assert_msg(f.tdp == c->tdp, "%s: tdp %d", c->name, f.tdp);
	ck_assert_int_eq(backend_refuses(&f, PAGING_SHADOW, why, sizeof(why)) == VMM_OK,
			 c->shadow_runs);
	ck_assert_int_eq(backend_refuses(&f, PAGING_HW, why, sizeof(why)) == VMM_OK, c->hw_runs);
}
END_TEST

/* The refusals name the backend, the reason and the way out. */
START_TEST(test_backend_refusals_say_why_and_what_to_do)
{
	struct kvm_cpuid_entry2 t[8];
	struct backend_facts f = { 0 };
	char why[400];
	unsigned n = make_cpuid(CPU_AMD, t);

	add_module("kvm_amd", "npt", "N");
	backend_classify(sysfs, t, n, &f);
	backend_label(&f, why, sizeof(why));
	ck_assert_str_eq(why, "kvm_amd (AMD SVM, NPT off)");
	add_module("kvm_pvm", NULL, NULL);
	backend_classify(sysfs, t, n, &f);
	for (int m = 0; m < 2; m++) {
		ck_assert_int_eq(backend_refuses(&f, m, why, sizeof(why)), VMM_E_NOKVM);
		ck_assert_msg(strstr(why, "kvm_pvm (PVM)") && strstr(why, "PVM-enlightened") &&
				      strstr(why, "scripts/with-kvm"),
			      "%s", why);
		ck_assert_msg(!strchr(why, '\n'), "one line: %s", why);
	}
}
END_TEST

START_TEST(test_backend_none_and_missing_caps_refuse_both)
{
	struct backend_facts f = { .kind = BACKEND_NONE };
	char why[400];

	snprintf(f.open_error, sizeof(f.open_error), "/dev/kvm: not found");
	for (int m = 0; m < 2; m++) {
		ck_assert_int_eq(backend_refuses(&f, m, why, sizeof(why)), VMM_E_NOKVM);
		ck_assert_str_eq(why, "/dev/kvm: not found");
	}
	add_module("kvm_intel", "ept", "Y");
	backend_classify(sysfs, NULL, 0, &f);
	ck_assert_int_eq(f.kind, BACKEND_KVM_INTEL);
	f.caps_missing = 1u << (kvm_ncaps - 1);
	ck_assert_int_eq(backend_refuses(&f, PAGING_HW, why, sizeof(why)), VMM_E_NOKVM);
	ck_assert_msg(strstr(why, kvm_caps[kvm_ncaps - 1].name), "%s", why);
}
END_TEST

/* Each feature from its own CPUID bit (SDM 2A, CPUID): only that one set. */
struct feature_case {
	uint32_t leaf;
	int reg; /* 1 EBX, 2 ECX, 3 EDX */
	unsigned bit;
	size_t off; /* the flag in struct backend_cpu */
};

#define FEAT(l, r, b, name)                                 \
	{                                                   \
		l, r, b, offsetof(struct backend_cpu, name) \
	}
static const struct feature_case feats[] = {
	FEAT(1, 2, 17, pcid),        FEAT(7, 1, 7, smep),
	FEAT(7, 1, 20, smap),        FEAT(7, 2, 2, umip),
	FEAT(7, 2, 3, pku),          FEAT(7, 2, 16, la57),
	FEAT(0x80000001, 3, 20, nx), FEAT(0x80000001, 3, 26, gbpages),
};

START_TEST(test_backend_reads_each_guest_cpu_feature)
{
	const struct feature_case *c = &feats[_i];
	struct kvm_cpuid_entry2 t[4] = { leaf(1, 0, 0, 0, 0), leaf(7, 0, 0, 0, 0),
					 leaf(0x80000001, 0, 0, 0, 0) };
	struct backend_facts f = { 0 };
	uint32_t *regs;
	const bool *flags = (const bool *)&f.cpu;

	for (unsigned i = 0; i < 3; i++)
		if (t[i].function == c->leaf) {
			regs = &t[i].eax;
			regs[c->reg] = 1u << c->bit;
		}
	backend_classify(sysfs, t, 3, &f);
	for (size_t i = 0; i < sizeof(f.cpu) / sizeof(bool); i++)
		ck_assert_msg(flags[i] == (i * sizeof(bool) == c->off),
			      "feature %zu of leaf 0x%x bit %u", i, c->leaf, c->bit);
}
END_TEST

/* What the guest is not offered (kvm_cpuid_restrict): these bits only,
 * leaf 7 subleaf 0 only, every other bit left as KVM reported it. */
START_TEST(test_backend_cpuid_withdraws_what_is_not_implemented)
{
	struct kvm_cpuid_entry2 t[5] = {
		leaf(1, ~0u, ~0u, ~0u, ~0u),          leaf(7, ~0u, ~0u, ~0u, ~0u),
		leaf(0x80000001, ~0u, ~0u, ~0u, ~0u), leaf(0x80000008, ~0u, ~0u, ~0u, ~0u),
		leaf(7, ~0u, ~0u, ~0u, ~0u),
	};

	t[4].index = 1;
	t[1].flags = t[4].flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	/* 1.ECX: MONITOR VMX PCID x2APIC; 7.EBX INVPCID; 7.ECX PKU OSPKE LA57; SVM */
	ck_assert_uint_eq(kvm_cpuid_restrict(t, 5), 4 + 1 + 3 + 1);
	ck_assert_uint_eq(t[0].ecx, ~((1u << 3) | (1u << 5) | (1u << 17) | (1u << 21)));
	ck_assert_uint_eq(t[0].edx, ~0u);         /* PSE, PSE-36, PAE, APIC stay */
	ck_assert_uint_eq(t[1].ebx, ~(1u << 10)); /* SMEP, SMAP stay */
	ck_assert_uint_eq(t[1].ecx, ~((1u << 3) | (1u << 4) | (1u << 16))); /* UMIP stays */
	ck_assert_uint_eq(t[2].ecx, ~(1u << 2));
	ck_assert_uint_eq(t[2].edx, ~0u);
	ck_assert_uint_eq(t[3].eax, ~0u); /* MAXPHYADDR as KVM says */
	ck_assert_uint_eq(t[4].ebx & t[4].ecx, ~0u);
	ck_assert_uint_eq(kvm_cpuid_restrict(t, 5), 0);
}
END_TEST

Suite *backend_suite(void)
{
	Suite *s = suite_create("backend");
	TCase *tc = tcase_create("classify");

	tcase_add_temp_dir(tc);
	tcase_add_checked_fixture(tc, tree_setup, NULL);
	tcase_add_loop_test(tc, test_backend_classify_table, 0,
			    (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_backend_refusals_say_why_and_what_to_do);
	tcase_add_test(tc, test_backend_none_and_missing_caps_refuse_both);
	tcase_add_loop_test(tc, test_backend_reads_each_guest_cpu_feature, 0,
			    (int)(sizeof(feats) / sizeof(feats[0])));
	tcase_add_test(tc, test_backend_cpuid_withdraws_what_is_not_implemented);
	suite_add_tcase(s, tc);
	return s;
}
