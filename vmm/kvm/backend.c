#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "backend.h"
#include "kvm.h"
#include "status.h"
#include "x86.h"

/* PVM's hypervisor leaves (its published ABI): 0x40000000 EAX reaches
 * 0x40000002, whose EBX holds "PVM" in little-endian bytes. */
#define CPUID_PVM_LEAF 0x40000002u
#define CPUID_PVM_SIGNATURE 0x4d5650u

static const uint32_t *cpuid_find(const struct kvm_cpuid_entry2 *t, unsigned n, uint32_t leaf,
				  uint32_t index)
{
	const struct kvm_cpuid_entry2 *e = kvm_cpuid_find(t, n, leaf, index);

	return e ? &e->eax : NULL;
}

static bool cpuid_bit(const struct kvm_cpuid_entry2 *t, unsigned n, uint32_t leaf, unsigned reg,
		      unsigned bit)
{
	const uint32_t *r = cpuid_find(t, n, leaf, 0);

	return r && (r[reg] >> bit & 1);
}

/* Twelve signature bytes from three registers, in the order given. */
static void signature(char out[13], uint32_t a, uint32_t b, uint32_t c)
{
	memcpy(out, &a, 4);
	memcpy(out + 4, &b, 4);
	memcpy(out + 8, &c, 4);
	out[12] = 0;
	for (int i = 0; i < 12; i++)
		if (out[i] && (out[i] < 0x20 || out[i] > 0x7e))
			out[i] = '?';
}

enum { EAX, EBX, ECX, EDX };

static void classify_cpuid(const struct kvm_cpuid_entry2 *t, unsigned n, struct backend_facts *f)
{
	const uint32_t *r;

	if ((r = cpuid_find(t, n, 0, 0)))
		signature(f->vendor, r[EBX], r[EDX], r[ECX]);
	if ((r = cpuid_find(t, n, X86_CPUID_HV_BASE, 0))) {
		f->hv_max_leaf = r[EAX];
		signature(f->hv_signature, r[EBX], r[ECX], r[EDX]);
	}
	if (f->hv_max_leaf >= CPUID_PVM_LEAF && (r = cpuid_find(t, n, CPUID_PVM_LEAF, 0)))
		f->pvm_cpuid = r[EBX] == CPUID_PVM_SIGNATURE;
	f->cpu.pcid = cpuid_bit(t, n, X86_CPUID_FEATURES, ECX, X86_CPUID_1_ECX_PCID_BIT);
	f->cpu.smep = cpuid_bit(t, n, X86_CPUID_EXT_FEATURES, EBX, X86_CPUID_7_EBX_SMEP_BIT);
	f->cpu.smap = cpuid_bit(t, n, X86_CPUID_EXT_FEATURES, EBX, X86_CPUID_7_EBX_SMAP_BIT);
	f->cpu.umip = cpuid_bit(t, n, X86_CPUID_EXT_FEATURES, ECX, X86_CPUID_7_ECX_UMIP_BIT);
	f->cpu.pku = cpuid_bit(t, n, X86_CPUID_EXT_FEATURES, ECX, X86_CPUID_7_ECX_PKU_BIT);
	f->cpu.la57 = cpuid_bit(t, n, X86_CPUID_EXT_FEATURES, ECX, X86_CPUID_7_ECX_LA57_BIT);
	f->cpu.nx = cpuid_bit(t, n, X86_CPUID_EXT_INFO, EDX, X86_CPUID_E1_EDX_NX_BIT);
	f->cpu.gbpages = cpuid_bit(t, n, X86_CPUID_EXT_INFO, EDX, X86_CPUID_E1_EDX_PAGE1GB_BIT);
}

static bool sysfs_has(const char *sysfs, const char *rel)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", sysfs, rel);
	return stat(path, &st) == 0;
}

/* A module's boolean parameter: "Y"/"1" on, "N"/"0" off (bool and int
 * parameters both occur: kvm_amd's npt was an int before Linux 5.x). */
static void read_tdp(const char *sysfs, const char *rel, struct backend_facts *f)
{
	char path[256], v[8] = "";
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", sysfs, rel);
	snprintf(f->tdp_param, sizeof(f->tdp_param), "/sys/%s", rel);
	f->tdp = TDP_UNKNOWN;
	if (!(fp = fopen(path, "r")))
		return;
	if (fgets(v, sizeof(v), fp)) {
		v[strcspn(v, "\n")] = 0;
		snprintf(f->tdp_value, sizeof(f->tdp_value), "%s", v);
		if (!strcmp(v, "Y") || !strcmp(v, "1"))
			f->tdp = TDP_ON;
		else if (!strcmp(v, "N") || !strcmp(v, "0"))
			f->tdp = TDP_OFF;
	}
	fclose(fp);
}

void backend_classify(const char *sysfs, const struct kvm_cpuid_entry2 *cpuid, unsigned n,
		      struct backend_facts *f)
{
	bool intel = sysfs_has(sysfs, "module/kvm_intel"), amd = sysfs_has(sysfs, "module/kvm_amd");

	f->kind = BACKEND_UNKNOWN;
	f->tdp = TDP_UNKNOWN;
	f->tdp_param[0] = f->tdp_value[0] = f->hv_signature[0] = f->vendor[0] = 0;
	f->hv_max_leaf = 0;
	f->pvm_cpuid = false;
	f->cpu = (struct backend_cpu){ 0 };
	classify_cpuid(cpuid, n, f);
	f->pvm_module = sysfs_has(sysfs, "module/kvm_pvm");
	/* PVM first: it may share a machine with a loaded kvm_intel. */
	if (f->pvm_module || f->pvm_cpuid) {
		f->kind = BACKEND_KVM_PVM;
		return;
	}
	if (intel && amd) { /* only one can serve /dev/kvm: the CPU's vendor decides */
		intel = !strcmp(f->vendor, "GenuineIntel");
		amd = !intel;
	}
	if (intel) {
		f->kind = BACKEND_KVM_INTEL;
		read_tdp(sysfs, "module/kvm_intel/parameters/ept", f);
	} else if (amd) {
		f->kind = BACKEND_KVM_AMD;
		read_tdp(sysfs, "module/kvm_amd/parameters/npt", f);
	}
}

int backend_read(struct kvm *kvm, struct backend_facts *f, char *err, size_t errlen)
{
	const struct kvm_cpuid2 *c = kvm_supported_cpuid(kvm, err, errlen);

	f->api_version = ioctl(kvm->sys_fd, KVM_GET_API_VERSION, 0);
	f->caps_missing = 0;
	for (unsigned i = 0; i < kvm_ncaps; i++)
		if (ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, kvm_caps[i].cap) <= 0)
			f->caps_missing |= 1u << i;
	f->open_error[0] = 0;
	backend_classify("/sys", c ? c->entries : NULL, c ? c->nent : 0, f);
	return c ? VMM_OK : VMM_E_INTERNAL;
}

int backend_probe(struct backend_facts *f)
{
	struct kvm kvm = { .sys_fd = -1, .vm_fd = -1 };
	char err[200] = "";
	int rc;

	memset(f, 0, sizeof(*f));
	f->api_version = -1;
	if (kvm_open(&kvm, err, sizeof(err)) != VMM_OK) {
		backend_classify("/sys", NULL, 0, f);
		f->kind = BACKEND_NONE;
		snprintf(f->open_error, sizeof(f->open_error), "%s", err);
		return VMM_E_NOKVM;
	}
	rc = backend_read(&kvm, f, err, sizeof(err));
	kvm_close(&kvm);
	if (rc != VMM_OK) {
		f->kind = BACKEND_NONE;
		snprintf(f->open_error, sizeof(f->open_error), "%s", err);
		return VMM_E_NOKVM;
	}
	return VMM_OK;
}

const char *backend_name(enum backend_kind kind)
{
	switch (kind) {
	case BACKEND_NONE: return "none";
	case BACKEND_KVM_INTEL: return "kvm_intel";
	case BACKEND_KVM_AMD: return "kvm_amd";
	case BACKEND_KVM_PVM: return "kvm_pvm";
	case BACKEND_UNKNOWN: break;
	}
	return "unknown";
}

static const char *tdp_name(enum backend_kind kind)
{
	return kind == BACKEND_KVM_INTEL ? "EPT" : "NPT";
}

void backend_label(const struct backend_facts *f, char *buf, size_t len)
{
	const char *tdp = f->tdp == TDP_ON ? "on" : f->tdp == TDP_OFF ? "off" : "unknown";

	switch (f->kind) {
	case BACKEND_KVM_INTEL:
	case BACKEND_KVM_AMD:
		snprintf(buf, len, "%s (%s, %s %s)", backend_name(f->kind),
			 f->kind == BACKEND_KVM_INTEL ? "Intel VMX" : "AMD SVM", tdp_name(f->kind),
			 tdp);
		break;
	case BACKEND_KVM_PVM: snprintf(buf, len, "kvm_pvm (PVM)"); break;
	case BACKEND_NONE: snprintf(buf, len, "none (no usable /dev/kvm)"); break;
	case BACKEND_UNKNOWN:
		snprintf(buf, len, "unknown (no kvm_intel, kvm_amd or kvm_pvm in /sys/module)");
		break;
	}
}

int backend_refuses(const struct backend_facts *f, enum paging_mode mode, char *why, size_t len)
{
	const char *m = mode == PAGING_HW ? "--paging=hw" : "--paging=shadow";

	switch (f->kind) {
	case BACKEND_NONE:
		snprintf(why, len, "%s", f->open_error[0] ? f->open_error : "/dev/kvm: not usable");
		return VMM_E_NOKVM;
	case BACKEND_KVM_PVM:
		snprintf(
			why, len,
			"/dev/kvm is kvm_pvm (PVM): it runs only PVM-enlightened guest kernels (ring-3 "
			"kernels, events through its own entry points, no CPL1 code segments), so %s "
			"cannot run here; use scripts/with-kvm, which runs on nested KVM instead",
			m);
		return VMM_E_NOKVM;
	case BACKEND_KVM_INTEL:
	case BACKEND_KVM_AMD:
	case BACKEND_UNKNOWN:
		/* Without EPT/NPT KVM shadows our shadow tables in turn; that is
		 * right because only the vCPU writes them (the monitor's store
		 * queue, DESIGN.md §3), so both modes run. */
		break;
	}
	if (f->caps_missing) {
		for (unsigned i = 0; i < kvm_ncaps; i++)
			if (f->caps_missing & (1u << i)) {
				snprintf(why, len, "/dev/kvm (%s) lacks %s, which shadowvm needs",
					 backend_name(f->kind), kvm_caps[i].name);
				break;
			}
		return VMM_E_NOKVM;
	}
	why[0] = 0;
	return VMM_OK;
}

/* ---- `shadowvm kvm` ------------------------------------------------------------- */

struct feature {
	const char *name;
	bool on;
};

static unsigned features(const struct backend_facts *f, struct feature out[8])
{
	const struct backend_cpu *c = &f->cpu;
	struct feature t[8] = {
		{ "nx", c->nx },     { "gbpages", c->gbpages }, { "smep", c->smep },
		{ "smap", c->smap }, { "umip", c->umip },       { "pku", c->pku },
		{ "la57", c->la57 }, { "pcid", c->pcid },
	};

	memcpy(out, t, sizeof(t));
	return 8;
}

static void print_text(const struct backend_facts *f, const char verdict[2][400])
{
	struct feature ft[8];
	unsigned nf = features(f, ft);
	char label[160];

	backend_label(f, label, sizeof(label));
	printf("device:       /dev/kvm");
	if (f->api_version >= 0)
		printf(" (KVM API version %d)", f->api_version);
	printf("\nbackend:      %s\n", label);
	if (f->kind == BACKEND_NONE)
		printf("error:        %s\n", f->open_error);
	if (f->tdp_param[0])
		printf("tdp:          %s = %s\n", f->tdp_param,
		       f->tdp_value[0] ? f->tdp_value : "(unreadable)");
	printf("pvm:          module %s, CPUID 0x40000002 signature %s\n",
	       f->pvm_module ? "loaded" : "absent", f->pvm_cpuid ? "\"PVM\"" : "absent");
	if (f->kind != BACKEND_NONE) {
		printf("cpu vendor:   %s\n", f->vendor[0] ? f->vendor : "(none)");
		printf("hypervisor:   CPUID 0x40000000 max leaf 0x%x, signature \"%s\"\n",
		       f->hv_max_leaf, f->hv_signature);
		printf("capabilities:");
		for (unsigned i = 0; i < kvm_ncaps; i++)
			printf(" %s%s", f->caps_missing & (1u << i) ? "-" : "", kvm_caps[i].name);
		printf("\nguest cpu:   ");
		for (unsigned i = 0; i < nf; i++)
			printf(" %s%s", ft[i].on ? "" : "-", ft[i].name);
		printf("\n");
	}
	for (int m = 0; m < 2; m++)
		printf("%-15s%s%s\n", m == PAGING_HW ? "paging=hw:" : "paging=shadow:",
		       verdict[m][0] ? "refused: " : "runs", verdict[m]);
}

/* A JSON string body: the facts are ASCII, but quotes and backslashes in an
 * error text must still be escaped. */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		if ((unsigned char)*s >= 0x20)
			putchar(*s);
	}
	putchar('"');
}

static void print_json(const struct backend_facts *f, const char verdict[2][400])
{
	struct feature ft[8];
	unsigned nf = features(f, ft);

	printf("{\"device\":\"/dev/kvm\",\"backend\":\"%s\",\"api_version\":%d,\"tdp\":%s,",
	       backend_name(f->kind), f->api_version,
	       f->tdp == TDP_ON    ? "true"
	       : f->tdp == TDP_OFF ? "false"
				   : "null");
	printf("\"tdp_param\":");
	json_str(f->tdp_param);
	printf(",\"tdp_value\":");
	json_str(f->tdp_value);
	printf(",\"pvm_module\":%s,\"pvm_cpuid\":%s,\"vendor\":", f->pvm_module ? "true" : "false",
	       f->pvm_cpuid ? "true" : "false");
	json_str(f->vendor);
	printf(",\"hv_max_leaf\":%u,\"hv_signature\":", f->hv_max_leaf);
	json_str(f->hv_signature);
	printf(",\"error\":");
	json_str(f->open_error);
	printf(",\"capabilities\":{");
	for (unsigned i = 0; i < kvm_ncaps; i++)
		printf("%s\"%s\":%s", i ? "," : "", kvm_caps[i].name,
		       f->kind != BACKEND_NONE && !(f->caps_missing & (1u << i)) ? "true"
										 : "false");
	printf("},\"guest_cpu\":{");
	for (unsigned i = 0; i < nf; i++)
		printf("%s\"%s\":%s", i ? "," : "", ft[i].name, ft[i].on ? "true" : "false");
	printf("},\"paging\":{");
	for (int m = 0; m < 2; m++) {
		printf("%s\"%s\":{\"runs\":%s,\"reason\":", m ? "," : "",
		       m == PAGING_HW ? "hw" : "shadow", verdict[m][0] ? "false" : "true");
		json_str(verdict[m]);
		printf("}");
	}
	printf("}}\n");
}

int backend_main(int format)
{
	struct backend_facts f;
	char verdict[2][400], label[160];
	int both;

	backend_probe(&f);
	backend_refuses(&f, PAGING_SHADOW, verdict[PAGING_SHADOW], sizeof(verdict[0]));
	backend_refuses(&f, PAGING_HW, verdict[PAGING_HW], sizeof(verdict[0]));
	both = !verdict[PAGING_SHADOW][0] && !verdict[PAGING_HW][0];
	if (format == BACKEND_OUT_JSON) {
		print_json(&f, (const char(*)[400])verdict);
	} else if (format == BACKEND_OUT_BRIEF) {
		backend_label(&f, label, sizeof(label));
		printf("%s: %s\n", label,
		       both                         ? "both paging modes run"
		       : !verdict[PAGING_HW][0]     ? "only --paging=hw runs"
		       : !verdict[PAGING_SHADOW][0] ? "only --paging=shadow runs"
						    : "neither paging mode runs");
	} else {
		print_text(&f, (const char(*)[400])verdict);
	}
	return both ? VMM_OK : VMM_E_NOKVM;
}
