#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>

#include "status.h"
#include "watchdog.h"

static struct kvm_run *volatile wd_run;
static volatile sig_atomic_t wd_status;
static pthread_t wd_thread; /* the vCPU's */

/* SIGUSR1 is the kick (watchdog_kick): the status is already set. */
static void on_kick(int sig)
{
	(void)sig;
	if (wd_run)
		wd_run->immediate_exit = 1;
}

static void on_signal(int sig)
{
	if (!wd_status)
		wd_status = sig == SIGALRM ? VMM_E_TIMEOUT : VMM_E_SIGNAL + sig;
	if (wd_run)
		wd_run->immediate_exit = 1;
}

int watchdog_arm(struct kvm_run *run, double seconds)
{
	static const int sigs[] = { SIGALRM, SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	wd_run = run;
	wd_status = 0;
	wd_thread = pthread_self();
	sa.sa_handler = on_kick;
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = on_signal;
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) != 0)
			return -1;
	if (seconds > 0) {
		struct itimerval it = { 0 };
		it.it_value.tv_sec = (time_t)seconds;
		it.it_value.tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6);
		if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
			it.it_value.tv_usec = 1;
		if (setitimer(ITIMER_REAL, &it, NULL) != 0)
			return -1;
	}
	return 0;
}

void watchdog_stop(int status)
{
	if (!wd_status)
		wd_status = status;
	if (wd_run)
		wd_run->immediate_exit = 1;
}

void watchdog_kick(int status)
{
	watchdog_stop(status);
	pthread_kill(wd_thread, SIGUSR1);
}

int watchdog_fired(void)
{
	return wd_status;
}

void watchdog_disarm(void)
{
	struct itimerval it = { 0 };

	setitimer(ITIMER_REAL, &it, NULL);
	wd_run = NULL;
}
