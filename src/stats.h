/*
 * Server statistics.  Every counter has exactly one writer, the thread that
 * owns it (a worker, or the main thread for the listener counters), so the
 * hot path needs no lock and no atomic read-modify-write: the owner does a
 * relaxed load and store, which compiles to a plain add, and a reader on
 * another thread (SIGUSR1, shutdown) does a relaxed load.  The figures a
 * reader sees may be a moment old, never torn.
 */
#ifndef STATS_H
#define STATS_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t stat_t;

/* Only the owning thread may call this on a counter. */
static inline void stat_add(stat_t *s, uint64_t n)
{
	atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed)
	    + n, memory_order_relaxed);
}

static inline uint64_t stat_get(stat_t *s)
{
	return atomic_load_explicit(s, memory_order_relaxed);
}

/* Owned by one worker. */
struct worker_stats {
	stat_t conns_opened;	/* connections served, in total */
	stat_t conns_closed;	/* of those, closed; open = opened - closed */
	stat_t bytes_in;
	stat_t bytes_out;
	stat_t idle_timeouts;
	stat_t write_timeouts;	/* write stalls, including flush fallbacks */
	stat_t errors;		/* I/O errors and failed set-ups */
	stat_t dropped_bytes;	/* pending output lost at close */
	stat_t input_overflows;	/* closed: unconsumed input over the
				 * handler's cap */
};

/* Owned by the main thread. */
struct listener_stats {
	stat_t accepted;
	stat_t rejected;	/* over --max-conns */
	stat_t accept_errors;	/* EMFILE and friends */
	stat_t shed;		/* accepted and closed at fd exhaustion */
	stat_t dispatch_errors;	/* hand-off to a worker failed */
};

/* Logs one line per worker and a total, at info level.  Arrays borrowed. */
void stats_log(const char *when, struct worker_stats *const *workers,
    int n_workers, struct listener_stats *listener);

#endif
