/* What serves /dev/kvm, read once at start-up, and whether each paging mode
 * can run on it.  The facts come from sysfs (/sys/module/kvm_*) and from
 * KVM_GET_SUPPORTED_CPUID; classification is pure, so the unit tests feed it
 * fake sysfs trees and fake CPUID tables. */
#ifndef SHADOWVM_BACKEND_H
#define SHADOWVM_BACKEND_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"

struct kvm;

enum backend_kind {
	BACKEND_NONE,      /* /dev/kvm missing or unusable */
	BACKEND_UNKNOWN,   /* a KVM, but no module shadowvm knows */
	BACKEND_KVM_INTEL, /* VMX */
	BACKEND_KVM_AMD,   /* SVM */
	BACKEND_KVM_PVM,   /* PVM: guests in hardware ring 3, no VMX/SVM */
};

enum backend_tdp { TDP_UNKNOWN = -1, TDP_OFF = 0, TDP_ON = 1 };

/* CPU features KVM offers the guest (KVM_GET_SUPPORTED_CPUID). */
struct backend_cpu {
	bool nx, gbpages, smep, smap, umip, pku, la57, pcid;
};

struct backend_facts {
	enum backend_kind kind;
	int tdp;               /* enum backend_tdp: EPT (Intel) or NPT (AMD) */
	char tdp_param[80];    /* the sysfs file TDP was read from, "" if none */
	char tdp_value[8];     /* its contents, e.g. "Y", "0" */
	bool pvm_module;       /* /sys/module/kvm_pvm exists */
	bool pvm_cpuid;        /* CPUID 0x40000002 EBX = "PVM" */
	uint32_t hv_max_leaf;  /* CPUID 0x40000000 EAX, 0 if absent */
	char hv_signature[13]; /* CPUID 0x40000000 EBX:ECX:EDX */
	char vendor[13];       /* CPUID 0 EBX:EDX:ECX */
	int api_version;       /* KVM_GET_API_VERSION, -1 if not opened */
	uint32_t caps_missing; /* bit i set: kvm_caps[i] is missing */
	struct backend_cpu cpu;
	char open_error[200]; /* why /dev/kvm is unusable (BACKEND_NONE) */
};

/* Classify from a sysfs root ("/sys", or a fake tree) and a supported-CPUID
 * table (n entries, may be 0).  Fills kind, tdp*, pvm_*, hv_*, vendor and
 * cpu; leaves api_version, caps_missing and open_error alone. */
void backend_classify(const char *sysfs, const struct kvm_cpuid_entry2 *cpuid, unsigned n,
		      struct backend_facts *f);

/* All facts about an open /dev/kvm on this machine (its supported CPUID is
 * read into kvm, for the vCPU to reuse).  VMM_OK, or VMM_E_INTERNAL with
 * one line in err if KVM_GET_SUPPORTED_CPUID fails. */
int backend_read(struct kvm *kvm, struct backend_facts *f, char *err, size_t errlen);

/* Open /dev/kvm and read its facts; when it cannot be opened, kind is
 * BACKEND_NONE and open_error says why.  Returns VMM_OK or VMM_E_NOKVM. */
int backend_probe(struct backend_facts *f);

/* 0 if `mode` can run on this backend; else VMM_E_NOKVM and one line in why
 * that names the backend, the reason and the way out. */
int backend_refuses(const struct backend_facts *f, enum paging_mode mode, char *why, size_t len);

/* "kvm_amd", "kvm_pvm", ... and a longer label: "kvm_amd (AMD SVM, NPT on)". */
const char *backend_name(enum backend_kind kind);
void backend_label(const struct backend_facts *f, char *buf, size_t len);

/* `shadowvm kvm [--json|--brief]`: print the facts and each mode's verdict.
 * Returns 0 when both paging modes can run, else VMM_E_NOKVM. */
int backend_main(int format);

enum { BACKEND_OUT_TEXT, BACKEND_OUT_JSON, BACKEND_OUT_BRIEF };

#endif
