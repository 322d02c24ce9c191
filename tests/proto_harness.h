/*
 * A fake connection for unit-testing protocol handlers without a server,
 * a socket or libevent: it implements conn_reply() and conn_config() from
 * proto.h for a test-only struct conn, and drives a handler exactly as
 * proto.h says the server does.  The Check suite and the fuzz target
 * both use it; it depends on neither.
 *
 * DESIGN
 * The driver follows proto.h's contract: open() on zeroed state of
 * state_size bytes (NULL when 0); data() with every unconsumed byte
 * followed by the new ones, in a buffer of exactly that size allocated
 * for the call and freed after it, so that a handler reading past @len
 * or keeping @in trips ASan; closing on PROTO_CLOSE, or when kept input
 * passes max_pending, after which reads are dropped; eof() with the kept
 * input; release() exactly once.  Replies are copied into one sink at
 * once (the server writes them after the call; the bytes are the same).
 * A handler that breaks the contract is not aborted: the first breach is
 * recorded in c->violation, and the tests check that it stays NULL.
 *
 * Across threads (proto.h): the harness is one worker, harness_env, that
 * every harness connection belongs to; conn_env_find() finds the open
 * ones by id, conn_env_local() keeps the handlers' per-worker state, and
 * harness_tick() fires the tickers handlers started.  There is no pool
 * (conn_offload() says -EOPNOTSUPP, so handlers work inline) and no hub.
 *
 * Single-threaded: one struct conn is driven by one thread.
 */
#ifndef PROTO_HARNESS_H
#define PROTO_HARNESS_H

#include "proto/proto.h"

#include <stddef.h>
#include <stdint.h>

/* How a harness connection ended, if it did. */
enum harness_end {
	HARNESS_OPEN = 0,	/* still open */
	HARNESS_CLOSED_BY_OPEN,	/* open() returned PROTO_CLOSE */
	HARNESS_CLOSED_BY_DATA,	/* data() returned PROTO_CLOSE */
	HARNESS_OVERFLOW,	/* kept input passed max_pending */
	HARNESS_EOF,		/* the client's EOF; eof() ran if any */
};

struct conn {
	const struct proto_ops *ops;	/* borrowed */
	uint64_t id;			/* conn_id(); in harness_env while
					 * open */
	struct proto_config config;	/* copy; banner borrowed */
	void *state;			/* state_size bytes, or NULL */

	char *kept;			/* unconsumed input, or NULL */
	size_t kept_len;

	char *out;			/* every reply, in order */
	size_t out_len, out_cap;
	size_t replies;			/* conn_reply() calls */
	uint64_t requests;		/* conn_count_requests() total */
	size_t zero_copy;		/* of which lay inside data()'s @in */
	size_t segments;		/* spans to write if contiguous
					 * zero-copy replies of one call are
					 * sent as one (what writev needs) */
	size_t data_calls;

	enum harness_end end;
	int released;			/* release() done (or not needed) */
	const char *violation;		/* first breach of proto.h, or NULL */

	/* The call in progress: where conn_reply() may be used, the input
	 * it may point into, and the end of the last zero-copy reply. */
	int in_call;
	const char *in;
	size_t in_len;
	const char *span_end;
};

/*
 * Sets up @c (caller's storage) for @ops (borrowed) with a copy of @cfg
 * (borrowed; its banner must outlive @c) and calls open().  Returns 0, or
 * PROTO_CLOSE if open() closed the connection.
 */
int harness_open(struct conn *c, const struct proto_ops *ops,
    const struct proto_config *cfg);

/* One read of @len bytes of @buf (borrowed); dropped once @c is closed,
 * ignored when @len is 0. */
void harness_read(struct conn *c, const void *buf, size_t len);

/* The client shuts down its side: eof() with the kept input, unless @c
 * is closed already.  @c is closed afterwards. */
void harness_eof(struct conn *c);

/* The connection goes away: release() unless already done, and the
 * state and kept input are freed.  The replies stay readable. */
void harness_release(struct conn *c);

/* Frees what @c holds, releasing it first if needed. */
void harness_free(struct conn *c);

/*
 * A whole connection: open, @len bytes of @in (borrowed) as reads split
 * at the @ncuts ascending offsets in @cuts (each at most @len; repeats
 * and 0 are allowed and make no empty read), EOF, release.  The replies
 * and the outcome are left in @c for the caller, who harness_free()s it.
 */
void harness_run(struct conn *c, const struct proto_ops *ops,
    const struct proto_config *cfg, const void *in, size_t len,
    const size_t *cuts, size_t ncuts);

/* As harness_run(), with reads of @chunk bytes (0: one read). */
void harness_run_chunked(struct conn *c, const struct proto_ops *ops,
    const struct proto_config *cfg, const void *in, size_t len,
    size_t chunk);

#define HARNESS_CONNS 64
#define HARNESS_TICKERS 8

/* The harness's one worker. */
struct conn_env {
	uint64_t next_id;
	struct conn *conns[HARNESS_CONNS];	/* borrowed; NULL: free */
	const struct proto_ops *local_ops[CONN_ENV_LOCALS];
	void *local[CONN_ENV_LOCALS];
	struct proto_ticker *tickers[HARNESS_TICKERS];
	int in_tick;			/* replies allowed outside calls */
};

extern struct conn_env harness_env;

/* Fires every ticker once, as the worker's timer would. */
void harness_tick(void);

/* Runs @c's wake() op as a handler call, as msg_wake() makes the worker
 * do; nothing if @c is closed or has none. */
void harness_wake(struct conn *c);

/* The worker goes: ops->worker_release() for each handler's local
 * state, and every ticker left is freed.  harness_env is then empty. */
void harness_env_release(void);

/* A name for @end, for test messages. */
const char *harness_end_name(enum harness_end end);

#endif
