/*
 * A map from 64-bit ids to pointers: how a worker finds one of its
 * connections from the id a message carries (docs/design.md,
 * "Cross-worker messages").  Open addressing with linear probing and
 * backward-shift deletion, so a lookup touches one or two cache lines and
 * the table holds no tombstones; it doubles when half full.
 *
 * Threads: none of its own.  A map belongs to one thread (a worker) and
 * nothing here locks.  Errors: 0 or -ENOMEM.
 */
#ifndef IDMAP_H
#define IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap_slot {
	uint64_t id;		/* 0: empty */
	void *value;
};

struct idmap {
	struct idmap_slot *slots;	/* NULL until the first put */
	size_t mask;		/* slots - 1; the count is a power of two */
	size_t n;		/* ids in the map */
};

/* An empty map in storage the caller owns; allocates nothing. */
void idmap_init(struct idmap *m);

/* Frees the table; the values are the caller's and are not touched. */
void idmap_release(struct idmap *m);

/* Maps @id (not 0, not yet in @m) to @value (borrowed: the map never
 * dereferences it).  Returns 0, or -ENOMEM with @m unchanged. */
int idmap_put(struct idmap *m, uint64_t id, void *value);

/* The value of @id, or NULL if it is not in @m. */
void *idmap_get(const struct idmap *m, uint64_t id);

/* Removes @id if present; never allocates, so never fails. */
void idmap_del(struct idmap *m, uint64_t id);

#endif
