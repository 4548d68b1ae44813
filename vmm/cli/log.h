/* Leveled logging for the VMM: "shadowvm: <subsystem>: key=value ...".
 * Errors always print; -q hides warnings, -v shows info, -vv debug. */
#ifndef SHADOWVM_LOG_H
#define SHADOWVM_LOG_H

enum log_level { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_verbosity; /* messages at or below this level print */

__attribute__((format(printf, 2, 3))) void log_msg(enum log_level level, const char *fmt, ...);

#define pr_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define pr_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define pr_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define pr_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
