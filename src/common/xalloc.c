/*
 * Aborting allocators for the program; see xalloc.h.
 */
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void oom(size_t size)
{
	char msg[80];
	int n = snprintf(msg, sizeof(msg),
	    "echoserver: out of memory allocating %zu bytes\n", size);

	/* stdio may itself need memory; write(2) does not. */
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
		abort();
	abort();
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p)
		oom(size);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom(n * size);
	return p;
}
