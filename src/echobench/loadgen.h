/*
 * The engine of echobench: one loadgen drives a share of the connections
 * from one thread, with its own epoll set, counters and latency histogram.
 * Every connection sends a slice of one shared pseudo-random pattern,
 * starting at its own offset, so any echoed byte can be checked against
 * what was sent without keeping a copy of it.
 *
 * DESIGN: the main thread creates the loadgens, starts one thread per
 * loadgen on loadgen_run(), and then only moves the shared phase forward
 * and reads the published counters.  Each loadgen's connections, epoll set
 * and histogram belong to its thread until loadgen_run() returns.
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <netinet/in.h>
#include <stdint.h>

#include "histogram.h"

struct ssl_ctx_st;	/* OpenSSL's SSL_CTX */

enum loadgen_mode {
	LOADGEN_PINGPONG,	/* depth messages in flight per connection */
	LOADGEN_BULK,		/* the same, with a window that keeps both
				 * directions streaming */
	LOADGEN_CHURN,		/* connect, echo one message, close, repeat */
	LOADGEN_HOLD,		/* connect, echo one message, stay idle */
};

/* Moved forward by the main thread only. */
enum loadgen_phase {
	LOADGEN_OPENING,	/* connecting: each connection echoes one
				 * message, then waits */
	LOADGEN_WARMUP,		/* running; nothing is recorded */
	LOADGEN_MEASURE,	/* latencies are recorded */
	LOADGEN_DRAIN,		/* no new messages; wait for echoes, close */
};

/* Shared read-only by every loadgen once the threads start. */
struct loadgen_config {
	enum loadgen_mode mode;
	struct sockaddr_in target;
	unsigned size;			/* message size in bytes */
	unsigned depth;			/* messages in flight per connection */
	unsigned sources;		/* bind round-robin to 127.0.0.1..N;
					 * 0: no bind until the ports of one
					 * address run out */
	unsigned connect_window;	/* connections opening at once */
	double drain_timeout;		/* seconds to wait for the last echoes */
	int reconnect;			/* ping-pong and bulk: a connection the
					 * server closes between messages is
					 * opened again, not an error */
	struct ssl_ctx_st *tls;		/* --tls: a client SSL_CTX, shared
					 * (OpenSSL locks it); NULL: plain */
	int *phase;			/* enum loadgen_phase, atomic */
};

/* A snapshot of a loadgen's counters, safe to take from any thread. */
struct loadgen_counters {
	uint64_t msgs;		/* messages fully echoed (churn: cycles) */
	uint64_t bytes;		/* bytes echoed back and verified */
	uint64_t errors;	/* failed connections, mismatches, closes */
	uint64_t open;		/* connections open now */
	uint64_t ready;		/* connections that completed a first echo */
	uint64_t failed;	/* connections given up on */
	uint64_t reconnects;	/* closed by the server between messages
				 * and opened again (reconnect) */
	uint64_t unanswered;	/* bytes sent on those that the server
				 * closed without echoing */
};

/*
 * The pattern that every connection's bytes are taken from; built once
 * before any loadgen starts.
 */
void loadgen_pattern_init(void);

/*
 * A loadgen for @nconns connections to @config (borrowed; must outlive the
 * loadgen), numbered from @first_id in error messages.  Aborts on
 * out-of-memory.  Caller frees with loadgen_free().
 */
struct loadgen *loadgen_new(const struct loadgen_config *config,
    unsigned nconns, unsigned first_id);

/* Closes every connection of @lg (taken; its thread must have returned)
 * and frees it.  NULL is a no-op. */
void loadgen_free(struct loadgen *lg);

/*
 * Runs @lg (borrowed, owned by the calling thread until return) until the
 * phase reaches LOADGEN_DRAIN and every connection has drained or timed
 * out, then closes them all.  A thread body: pass @lg as the argument.
 */
void *loadgen_run(void *lg);

/* Copies @lg's published counters into @out (caller's). */
void loadgen_counters(const struct loadgen *lg, struct loadgen_counters *out);

/* @lg's latencies in ns, recorded in LOADGEN_MEASURE; read it only after
 * loadgen_run() has returned.  Borrowed from @lg. */
const struct histogram *loadgen_histogram(const struct loadgen *lg);

#endif
