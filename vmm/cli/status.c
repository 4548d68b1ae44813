#include "status.h"

const char *vmm_status_name(int status)
{
	switch (status) {
	case VMM_OK: return "ok";
	case VMM_E_USAGE: return "usage";
	case VMM_E_IMAGE: return "bad-image";
	case VMM_E_NOINPUT: return "no-input";
	case VMM_E_NOKVM: return "no-kvm";
	case VMM_E_INTERNAL: return "internal";
	case VMM_E_CRASH: return "guest-crash";
	case VMM_E_HALTED: return "halted";
	case VMM_E_TRACE: return "trace-error";
	case VMM_E_EXITRANGE: return "exit-range";
	case VMM_E_CONTRACT: return "contract";
	case VMM_E_QUIT: return "quit";
	case VMM_E_TIMEOUT: return "timeout";
	default:
		if (status > VMM_E_SIGNAL && status < VMM_E_SIGNAL + 64)
			return "signal";
		return status >= 0 && status <= 63 ? "guest" : "unknown";
	}
}
