/*
 * What /proc says about another process: its CPU time and resident
 * memory.  Shared by echobench (server CPU per message, RSS per
 * connection) and the tests (bounds on the server under test).
 */
#ifndef PROCSTAT_H
#define PROCSTAT_H

#include <sys/types.h>

/* utime + stime of every thread of @pid, in seconds; -1 if unknown. */
double procstat_cpu_seconds(pid_t pid);

/* VmRSS of @pid in KiB; -1 if unknown. */
long procstat_rss_kib(pid_t pid);

#endif
