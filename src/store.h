/*
 * The key-value store: one key space shared by every worker, for the resp
 * handler.  Keys and values are binary-safe byte strings; a key may carry
 * an expiry time.  Every function may be called from any thread.
 *
 * DESIGN
 * Threads.  memcached's way: the keys are hashed into a fixed number of
 * stripes, each a hash table with its own mutex, so workers touching
 * different keys rarely meet on a lock.  Each call takes exactly one
 * stripe lock (store_count() and store_flush() take them one at a time),
 * so no call can deadlock with another.
 *
 * Growth.  A stripe's table doubles when it fills, incrementally: the
 * old and new tables live side by side and every call on the stripe moves
 * a few buckets across, so no caller ever stalls on a whole rehash.
 *
 * Expiry.  An expired key is removed when it is next touched (lazily),
 * and store_sweep(), which the server calls on a timer, removes a bounded
 * number per call, so keys nobody reads again do not pile up.
 *
 * Memory.  Every key counts its key and value bytes plus a fixed
 * per-entry overhead.  Past max_memory, writes that would grow the total
 * fail with STORE_OOM; reads, deletes and overwrites that shrink still
 * work.
 *
 * Errors are enum store_result values; the store never prints or aborts.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

struct store_options {
	size_t max_memory;	/* bytes accounted; 0: no limit */
	unsigned stripes;	/* a power of two (others round up, to
				 * at most 65536); 0: the default (64) */
};

enum store_result {
	STORE_OK = 0,
	STORE_MISSING,		/* no such key (or expired); XX unmet */
	STORE_EXISTS,		/* NX unmet */
	STORE_OOM,		/* over max_memory, or malloc failed */
	STORE_NOT_INTEGER,	/* INCR on a value that is not an int64 */
	STORE_OVERFLOW,		/* INCR past INT64_MIN..INT64_MAX */
};

enum store_set_flags {
	STORE_NX = 1 << 0,	/* only if the key does not exist */
	STORE_XX = 1 << 1,	/* only if it does */
};

/* Milliseconds on the store's clock (monotonic), for expiry times. */
int64_t store_now_ms(void);

/* A new, empty store with @o (borrowed; NULL: defaults), or NULL if
 * memory ran out.  Caller frees with store_free(). */
struct store *store_new(const struct store_options *o);

/* Frees @s and every key; nothing else may be using it. */
void store_free(struct store *s);

/*
 * Called with a value while its stripe is locked: @value (@len bytes) is
 * borrowed until return.  It must not call into the store.
 */
typedef void store_value_fn(void *arg, const char *value, size_t len);

/* If @key (@klen bytes, borrowed) is present, calls @fn(@arg, ...) with
 * its value (unless @fn is NULL) and returns STORE_OK; otherwise
 * STORE_MISSING. */
enum store_result store_get(struct store *s, const char *key, size_t klen,
    store_value_fn *fn, void *arg);

/*
 * Sets @key to @value (both borrowed, copied), subject to @flags.
 * @expire_ms is an absolute store_now_ms() time, or 0 for none; setting a
 * key always replaces its old expiry.  A time already past stores a key
 * that reads as missing and is removed when next touched or swept (it is
 * counted until then).  Returns STORE_OK, STORE_EXISTS or
 * STORE_MISSING (NX or XX unmet), or STORE_OOM.
 */
enum store_result store_set(struct store *s, const char *key, size_t klen,
    const char *value, size_t vlen, unsigned flags, int64_t expire_ms);

/* Removes @key.  Returns 1 if it was there, else 0. */
int store_del(struct store *s, const char *key, size_t klen);

/* 1 if @key is present, else 0. */
int store_exists(struct store *s, const char *key, size_t klen);

/*
 * Adds @delta to the value of @key read as a decimal int64 (a missing key
 * counts as 0), atomically, keeping its expiry; stores the new value in
 * *@result.  Returns STORE_OK, STORE_NOT_INTEGER, STORE_OVERFLOW or
 * STORE_OOM.
 */
enum store_result store_incrby(struct store *s, const char *key,
    size_t klen, int64_t delta, int64_t *result);

/* Keys present, expired ones not yet removed included. */
uint64_t store_count(struct store *s);

/* Bytes accounted (keys, values and per-entry overhead). */
size_t store_memory(struct store *s);

/* Removes every key. */
void store_flush(struct store *s);

/*
 * Removes up to @budget expired keys, resuming where the last call
 * stopped; returns how many it removed.  It looks at no more than 16
 * bucket positions per unit of @budget, and at most one pass over the
 * store, so that on a store of live keys a call stays cheap.
 */
size_t store_sweep(struct store *s, size_t budget);

#endif
