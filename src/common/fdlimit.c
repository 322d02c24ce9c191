/*
 * Raising the fd limit; see fdlimit.h.
 */
#include "fdlimit.h"

#include <limits.h>
#include <sys/resource.h>

long fdlimit_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		/* Read back what holds: a refused raise leaves the old one
		 * (the struct would claim the new one). */
		if (setrlimit(RLIMIT_NOFILE, &rl) && getrlimit(RLIMIT_NOFILE,
		    &rl))
			return -1;
	}
	return rl.rlim_cur > LONG_MAX ? LONG_MAX : (long)rl.rlim_cur;
}
