/* --stats: the run's counters as one JSON object, written at exit. */
#ifndef SHADOWVM_STATS_H
#define SHADOWVM_STATS_H

struct vm;

/* Write the counters of the finished run (exit `status`, `secs` of wall
 * time) to opts->stats_file, or stderr when it is NULL.  0, or -1 after
 * reporting why the file could not be written. */
int stats_write(const struct vm *vm, int status, double secs);

#endif
