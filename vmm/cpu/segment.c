#include "monitor.h"
#include "segment.h"
#include "vm.h"
#include "x86.h"

unsigned seg_vcpl(const struct vm *vm)
{
	return (vm->sregs.cs.selector & 3) == 3 ? 3 : 0;
}

void seg_from_desc(struct kvm_segment *s, uint16_t sel, uint64_t d)
{
	s->base = x86_desc_base(d);
	s->limit = x86_desc_limit(d);
	s->g = x86_desc_bit(d, X86_DESC_G_BIT);
	s->selector = sel;
	s->type = x86_desc_type(d);
	s->s = x86_desc_bit(d, X86_DESC_S_BIT);
	s->dpl = x86_desc_dpl(d);
	s->present = x86_desc_bit(d, X86_DESC_P_BIT);
	s->avl = x86_desc_bit(d, X86_DESC_AVL_BIT);
	s->l = x86_desc_bit(d, X86_DESC_L_BIT);
	s->db = x86_desc_bit(d, X86_DESC_DB_BIT);
	s->unusable = !s->present;
	s->padding = 0;
}

/* A code segment `cpl` may run, present or not (SDM 2B RET): 64-bit, or
 * 32-/16-bit (compatibility mode on the real CPU; L and D together are
 * reserved), non-conforming with DPL == CPL, or conforming with DPL <= CPL. */
static bool cs_fits(const struct kvm_segment *s, unsigned cpl)
{
	if (!s->s || !(s->type & 8) || (s->l && s->db))
		return false;
	return (s->type & 4) ? s->dpl <= cpl : s->dpl == cpl;
}

/* A stack for `cpl`, present or not (SDM 2A MOV): writable data, DPL == CPL. */
static bool ss_fits(const struct kvm_segment *s, unsigned cpl)
{
	return s->s && !(s->type & 8) && (s->type & 2) && s->dpl == cpl;
}

bool seg_load_cs(struct vm *vm, uint16_t sel, unsigned cpl)
{
	uint64_t d = monitor_descriptor(&vm->mon, sel);
	struct kvm_segment s;

	seg_from_desc(&s, (uint16_t)((sel & ~3u) | cpl), d);
	if (!s.present || !cs_fits(&s, cpl))
		return false;
	vm->sregs.cs = s;
	return true;
}

bool seg_load_ss(struct vm *vm, uint16_t sel, unsigned cpl)
{
	struct kvm_segment s;

	if ((sel & ~3u) == 0) {
		if (cpl == 3)
			return false;
		/* On AMD, KVM takes the CPL from SS.DPL even for a null SS. */
		vm->sregs.ss = (struct kvm_segment){ .selector = (uint16_t)cpl,
						     .type = 3,
						     .s = 1,
						     .dpl = (uint8_t)cpl,
						     .db = 1,
						     .unusable = 1 };
		return true;
	}
	seg_from_desc(&s, (uint16_t)((sel & ~3u) | cpl), monitor_descriptor(&vm->mon, sel));
	if (!s.present || !ss_fits(&s, cpl))
		return false;
	vm->sregs.ss = s;
	return true;
}

unsigned seg_load_fault(const struct vm *vm, uint16_t sel, unsigned cpl, bool ss)
{
	struct kvm_segment s;

	seg_from_desc(&s, sel, monitor_descriptor(&vm->mon, sel));
	if ((sel & ~3u) == 0 || !(ss ? ss_fits(&s, cpl) : cs_fits(&s, cpl)))
		return X86_EXC_GP;
	return ss ? X86_EXC_SS : X86_EXC_NP;
}

void seg_flat(struct kvm_segment *s, uint16_t sel, bool code, unsigned dpl)
{
	*s = (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = sel,
		.present = 1,
		.s = 1,
		.g = 1,
		.dpl = (uint8_t)dpl,
		.type = code ? X86_SEG_TYPE_CODE_XR | 1 : X86_SEG_TYPE_DATA_RW | 1,
		.l = code,
		.db = !code,
	};
}
