/* One guest run, from image to exit status: the top of the VMM. */
#ifndef SHADOWVM_VM_H
#define SHADOWVM_VM_H

#include "cli.h"

/* Load opts->image, run it on KVM and return the exit status (the guest's
 * exit value or a VMM_E_* status).  Every failure is reported once, here. */
int vm_run(const struct options *opts);

/* Validate opts->image without KVM.  VMM_OK, VMM_E_IMAGE or VMM_E_NOINPUT. */
int vm_check(const struct options *opts);

#endif
