#include <string.h>

#include "gva.h"
#include "log.h"
#include "shadow.h"
#include "shadowvm_abi.h"
#include "status.h"
#include "vm.h"
#include "x86.h"

int gva_contract(struct vm *vm, const struct shadow_fault_result *res, gva_t gva)
{
	if (res->err == SHADOW_ERR_RESERVED_SLOT)
		pr_err("guest broke the ABI: the hypervisor's reserved slot holds 0x%llx (rip=0x%llx)",
		       (unsigned long long)gva, (unsigned long long)vm->regs.rip);
	else
		pr_err("guest broke the ABI: page table or page at GPA 0x%llx outside RAM 0x%llx (access to gva=0x%llx, rip=0x%llx)",
		       (unsigned long long)res->gpa, (unsigned long long)vm->mem.size,
		       (unsigned long long)gva, (unsigned long long)vm->regs.rip);
	return VMM_E_CONTRACT;
}

/* SHADOW_RETRY answers before the VMM gives up on its own guest access. */
#define GVA_RETRIES 16

enum gva_status gva_outcome(struct vm *vm, enum shadow_status st,
			    const struct shadow_fault_result *res, gva_t gva, struct x86_event *ev,
			    int *status)
{
	switch (st) {
	case SHADOW_FILLED:
	case SHADOW_RETRY: return GVA_OK;
	case SHADOW_GUEST_PF:
		*ev = (struct x86_event){
			.vector = X86_EXC_PF, .has_err = true, .err = res->pferr, .cr2 = gva
		};
		return GVA_FAULT;
	case SHADOW_GUEST_GP:
		*ev = (struct x86_event){ .vector = X86_EXC_GP, .has_err = true, .err = 0 };
		return GVA_FAULT;
	case SHADOW_ERROR:
	default: *status = gva_contract(vm, res, gva); return GVA_FATAL;
	}
}

/* Translate one page's worth of an access into a host pointer. */
static enum gva_status translate(struct vm *vm, gva_t gva, unsigned access, uint8_t **host,
				 struct x86_event *ev, int *status)
{
	struct shadow_fault_result res;
	enum shadow_status st;
	enum gva_status gs;
	int tries = 0;

	while ((st = shadow_fault(vm->shadow, gva, access, &res)) == SHADOW_RETRY &&
	       ++tries < GVA_RETRIES)
		;
	if (st == SHADOW_RETRY) {
		pr_err("shadow: no stable translation of gva=0x%llx for the VMM's own access after %d tries (rip=0x%llx)",
		       (unsigned long long)gva, GVA_RETRIES, (unsigned long long)vm->regs.rip);
		*status = VMM_E_INTERNAL;
		return GVA_FATAL;
	}
	if ((gs = gva_outcome(vm, st, &res, gva, ev, status)) != GVA_OK)
		return gs;
	*host = mem_gpa(&vm->mem, res.gpa, 1);
	if (!*host) {
		res.err = SHADOW_ERR_PAGE_OUTSIDE_RAM;
		*status = gva_contract(vm, &res, gva);
		return GVA_FATAL;
	}
	return GVA_OK;
}

static enum gva_status copy(struct vm *vm, gva_t gva, uint8_t *buf, size_t len, unsigned access,
			    bool write, struct x86_event *ev, int *status)
{
	while (len) {
		size_t n = X86_PAGE_SIZE - (gva & (X86_PAGE_SIZE - 1));
		uint8_t *host;
		enum gva_status st;

		if (n > len)
			n = len;
		if ((st = translate(vm, gva, access, &host, ev, status)) != GVA_OK)
			return st;
		if (write)
			memcpy(host, buf, n);
		else
			memcpy(buf, host, n);
		gva += n, buf += n, len -= n;
	}
	return GVA_OK;
}

enum gva_status gva_read(struct vm *vm, gva_t gva, void *buf, size_t len, unsigned access,
			 struct x86_event *ev, int *status)
{
	return copy(vm, gva, buf, len, access & ~SHADOW_ACC_WRITE, false, ev, status);
}

enum gva_status gva_write(struct vm *vm, gva_t gva, const void *buf, size_t len, unsigned access,
			  struct x86_event *ev, int *status)
{
	return copy(vm, gva, (uint8_t *)buf, len, access | SHADOW_ACC_WRITE, true, ev, status);
}
