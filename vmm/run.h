/* One guest run, from image to exit status: the top of the VMM, called by
 * main.c only. */
#ifndef SHADOWVM_RUN_H
#define SHADOWVM_RUN_H

#include "cli.h"

/* Load opts->image, run it on KVM and return the exit status (the guest's
 * exit value or a VMM_E_* status).  Every failure is reported once, here. */
int run_guest(const struct options *opts);

/* Validate opts->image without KVM.  VMM_OK, VMM_E_IMAGE or VMM_E_NOINPUT. */
int run_check(const struct options *opts);

#endif
