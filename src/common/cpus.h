/*
 * How many CPUs this process may run on: the default worker count of
 * echoserver and the default thread count of the work-queue library.
 *
 * It is a static inline function, not an object file, because the library
 * uses it too: compiled into each user as a local function, it adds no
 * symbol to libworkqueue.a or libworkqueue.so (which export workqueue_*
 * only) and needs nothing beyond the C library.
 */
#ifndef CPUS_H
#define CPUS_H

#include <sched.h>	/* needs _GNU_SOURCE, which the Makefile sets */
#include <unistd.h>

/*
 * The CPUs in this process's affinity mask: all online CPUs normally, fewer
 * under taskset or a container's cpuset, where more threads than CPUs would
 * only take turns on the same cores.  Falls back to the online CPUs if the
 * mask cannot be read, and never returns less than 1.
 */
static inline int cpus_usable(void)
{
	cpu_set_t set;
	long online;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set))
		return CPU_COUNT(&set);
	online = sysconf(_SC_NPROCESSORS_ONLN);
	return online > 0 ? (int)online : 1;
}

#endif
