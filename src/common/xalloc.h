/*
 * Allocation for the echoserver program (not the work-queue library, which
 * must return errors instead): running out of memory in a server that
 * bounds every buffer is a bug or a dying machine, so it aborts with one
 * message, as tmux does.
 */
#ifndef XALLOC_H
#define XALLOC_H

#include <stddef.h>

/* Like malloc/calloc, but never return NULL; caller frees. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);

#endif
