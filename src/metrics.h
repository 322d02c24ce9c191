/*
 * The Prometheus endpoint (--metrics): GET /metrics answers with every
 * counter of the stats module, per worker and in total, the open
 * connections, the store's keys and memory, and the reply-latency
 * histogram, in the text exposition format 0.0.4.  HTTP is libevent's own
 * evhttp; nothing here parses HTTP.
 *
 * DESIGN
 * Threads.  evhttp is not thread-safe, so it runs on the main thread's
 * event_base beside the listeners and signals, and everything here runs on
 * that thread.  A scrape reads the workers' counters and histograms with
 * relaxed loads (stats.h, latency.h): it never locks, waits for or wakes a
 * worker.  Only the store's figures take locks, each of its stripe locks
 * in turn for a few instructions (store.h), as resp's INFO does.
 *
 * Limits.  libevent 2.1's evhttp accepts headers and bodies of any size
 * and never times a server connection out unless told otherwise, and it
 * has no connection limit (docs/design.md, facts M1 and M2), so metrics_new()
 * sets every limit it has, and its listener is our own evconnlistener,
 * which backs off on EMFILE instead of spinning (fact 5).
 *
 * The metric names come from the stats field lists (stats.h): a counter
 * added there appears here without a change (docs/operations.md,
 * "Metrics", lists them).
 */
#ifndef METRICS_H
#define METRICS_H

#include "stats.h"

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct metrics;
struct store;
struct worker;

/* What a scrape reads.  Every pointer is borrowed and must outlive the
 * endpoint: the server's workers, counters and store. */
struct metrics_source {
	struct worker *workers;		/* n_workers of them */
	int n_workers;
	struct listener_stats *listener;	/* the main thread's */
	struct store *store;		/* NULL: no store figures */
	size_t max_memory;		/* the store's limit; 0: none */
	long max_conns;			/* --max-conns in force */
};

/*
 * Serves GET /metrics on @sa (@len bytes, borrowed) from @base (borrowed;
 * the main thread's), reading @src (copied; its pointers borrowed).  An
 * IPv6 address is v6-only unless @dual_stack.  Returns the endpoint, which
 * the caller frees with metrics_free(), or NULL after logging why.
 */
struct metrics *metrics_new(struct event_base *base,
    const struct sockaddr *sa, socklen_t len, int dual_stack,
    const struct metrics_source *src);

/* Closes the socket and every scrape connection, and frees @m (NULL: a
 * no-op). */
void metrics_free(struct metrics *m);

/* The bound port, useful after binding port 0. */
int metrics_port(const struct metrics *m);

/* Writes the bound address as text ("127.0.0.1:9100") into @buf. */
void metrics_address(const struct metrics *m, char *buf, size_t size);

#endif
