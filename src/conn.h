/*
 * One client connection, served by its worker's event loop: the socket
 * transport under a protocol handler (proto/proto.h).  Every function here
 * runs on the owning worker's thread.
 *
 * DESIGN
 * A connection is a socket bufferevent whose read side we take over and
 * whose write side libevent keeps, plus the handler's state:
 *
 * - Read.  libevent 2.1's socket bufferevent reads at most 4 KiB per
 *   callback and asks FIONREAD first (docs/design.md, facts 1 and 2).  We
 *   point the bufferevent's own read event (bev->ev_read, from the public
 *   bufferevent_struct.h) at conn.c's callback, which does one large
 *   read(2) into the worker's scratch buffer and hands the bytes to the
 *   handler.  Because it is still the bufferevent's event,
 *   bufferevent_enable/disable(EV_READ) and the read (idle) timeout keep
 *   working, and the connection costs no extra event.
 *
 * - Input the handler leaves unconsumed is copied to a per-connection
 *   buffer that exists only while it is non-empty, and is capped by the
 *   handler's max_pending.
 *
 * - Write.  Replies to one read are gathered in the worker's batch (an
 *   iovec list that points into the read buffer where it can, and copies
 *   otherwise) and written once, eagerly: while the output buffer is
 *   empty they go straight to the socket with one send or sendmsg, so a
 *   ping-pong echo costs one read and one write.  Only the unsent
 *   remainder goes to the bufferevent's output, which libevent then
 *   writes when the socket is writable.
 *
 * - Latency.  With measure_latency (--metrics), a read that returns bytes
 *   reads the clock, and the first write of the replies it produced reads
 *   it again and counts one observation in the worker's histogram
 *   (latency.h); without it the hook is one untaken branch.
 *
 * - Backpressure.  Past high_water bytes of output, reading stops and the
 *   write low-watermark is set to low_water; the write callback resumes
 *   reading (docs/design.md, fact 3: never a read high-watermark).
 *
 * - Closing.  bufferevent_free() drops pending output (fact 4), so
 *   conn_close() first stops reading, lets the output drain, and frees on
 *   the write callback, with a write timeout as the fallback.  If the
 *   kernel still holds unacknowledged output then, it sends FIN and waits
 *   for the client's EOF (a lingering close), because close() with unread
 *   input sends RST, which discards that output.  Nothing frees a
 *   connection while its handler runs: a write error marks it, and the
 *   caller of the handler frees it afterwards.
 *
 * - PROXY header.  On a proxy+ listener the connection first collects
 *   the PROXY protocol header, in the read callback's slow branch (the
 *   one that also serves lingering), under a deadline for the whole
 *   header; only then is the handler's open() called and the bytes after
 *   the header handed to it.  Plain listeners pay one flag test that the
 *   linger check already made.
 * - TLS (a listener's tls+).  The connection is a bufferevent_openssl
 *   (tls.h) instead, and conn.c keeps none of the socket tricks above:
 *   the bufferevent reads and decrypts, and its read callback hands the
 *   decrypted input to the same conn_input() as the fast path; a batch
 *   is copied into the output buffer in one piece (so it goes out in as
 *   few records as possible) instead of being sent with sendmsg.
 *   Backpressure is the same EV_READ switch, which for bufferevent_openssl
 *   is exactly what stops it reading; closing sends close_notify first.
 *   The handler is opened once the handshake is done, and the handshake
 *   is bounded by its own timeout.  docs/design.md, "TLS", has the
 *   libevent 2.1.12 behaviours this works around (facts T1-T4).
 *
 * The transport is this file alone: the handlers see only proto.h, so a
 * TLS bufferevent or a UDP socket can drive them without changing them.
 * Its code is one concept per file, sharing the private conn_impl.h:
 * conn.c (the socket transport), conn_proxy.c (the PROXY header phase),
 * conn_tls.c (TLS) and conn_jobs.c (the ordered replies for offloaded
 * jobs).
 */
#ifndef CONN_H
#define CONN_H

#include "latency.h"
#include "idmap.h"
#include "stats.h"
#include "proto/proto.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>
#include <sys/uio.h>

struct conn;
struct event_base;
struct proto_config;
struct proto_ops;
struct tls_ctx;

/* The most pieces, and copied bytes, one batch gathers before it is
 * written out mid-handler. */
#define CONN_BATCH_IOV 64
#define CONN_BATCH_COPY (16 * 1024)

/*
 * Replies gathered for the connection whose handler is running; one per
 * worker, since a worker runs one handler at a time.  Private to conn.c.
 */
struct conn_batch {
	struct conn *owner;	/* NULL: no handler running */
	bool loose;		/* owner is replied to outside a handler
				 * call (proto.h, "Replying outside a
				 * handler call"); ends at the next
				 * handler call, another owner, or
				 * conn_env_flush() */
	const char *in, *in_end;	/* the handler's borrowed input */
	struct iovec iov[CONN_BATCH_IOV];
	int n_iov;
	size_t len;		/* bytes in iov */
	size_t copied;		/* bytes of copy in use */
	uint64_t read_ns;	/* when the input was read, until its first
				 * reply is written; 0: not timed */
	char copy[CONN_BATCH_COPY];
};

/*
 * What a connection needs from its worker.  The worker embeds one, sets
 * the fields marked (worker) before the first conn_new() and leaves the
 * rest to conn.c; all of it belongs to the worker's thread, except the
 * counters, which others may read (stats.h).
 */
struct conn_env {
	struct event_base *base;	/* (worker) */
	char *rbuf;		/* (worker) read scratch, shared */
	size_t rbuf_size;	/* (worker) */
	size_t high_water;	/* (worker) pause reading past this output */
	size_t low_water;	/* (worker) resume at or below this */
	/* (worker) common timeouts; NULL when off */
	const struct timeval *idle_tv;
	const struct timeval *write_tv;
	const struct timeval *flush_tv;	/* close-flush stall limit */
	const struct timeval *handshake_tv;	/* (worker) the longest a
						 * TLS handshake may take */
	const struct proto_config *proto_cfg;	/* (worker) borrowed */
	_Atomic long *conns_now;	/* (worker) open, server-wide */
	bool stopping;		/* (worker) leave the loop at the last close */
	bool measure_latency;	/* (worker) fill @latency (--metrics) */

	struct conn *conns;	/* every open connection */
	struct worker_stats stats;
	struct latency_hist latency;	/* read to reply (latency.h) */
	struct conn_batch batch;

	/* Cross-worker messages (docs/design.md). */
	int index;		/* (worker) its place in the hub */
	uint64_t next_serial;	/* ids: index << 48 | serial, from 1 */
	struct idmap ids;	/* id -> open connection */
	struct {
		const struct proto_ops *ops;	/* NULL: free slot */
		void *local;
	} locals[CONN_ENV_LOCALS];	/* conn_env_local() */

	/* Offloaded jobs (conn_job_wait()). */
	struct conn *job_waiters;	/* waiting for room in the pool */
	struct conn *job_retrying;	/* being retried (conn_jobs.c) */
	struct event *retry_timer;	/* retries them; made on first use */
};

/* The layers a listener puts in front of its handler, as its -l prefixes
 * say ("proxy+echo@..."). */
enum conn_listen_flags {
	/* A PROXY protocol header (proxy.h) comes first on every
	 * connection; the handler sees the connection once it is complete
	 * (docs/design.md, "PROXY protocol"). */
	CONN_LISTEN_PROXY = 1 << 0,
	/* TLS (tls.h) over the socket, after the PROXY header if there is
	 * one; the handler sees the connection once the handshake is done
	 * (docs/design.md, "TLS"). */
	CONN_LISTEN_TLS = 1 << 1,
};

/*
 * How one listener's connections are served: the handler, and (as
 * transports are added) the layers in front of it.  One per listener,
 * owned by the server and read-only while workers run; every connection
 * accepted on it borrows it for its whole life, so it must outlive the
 * workers, not just the listening socket.
 */
struct conn_listen {
	const struct proto_ops *ops;	/* static */
	unsigned flags;		/* enum conn_listen_flags */
	/* CONN_LISTEN_PROXY: the whole header must arrive within this */
	struct timeval proxy_timeout;
	struct tls_ctx *tls;	/* CONN_LISTEN_TLS: the server's TLS
				 * context (tls.h), which workers may use */
};

/*
 * Serves the connected socket @fd on @env as @l says (borrowed; see
 * struct conn_listen).  @fd is taken over either way: on failure it is
 * closed and counted in the errors, and NULL is returned.  The connection
 * then lives until it closes itself.
 */
struct conn *conn_new(struct conn_env *env, int fd,
    const struct conn_listen *l);

/* Stops reading, sends what is pending, then frees @c.  May free @c at
 * once; not for use inside a handler (return PROTO_CLOSE instead).
 * Idempotent. */
void conn_close(struct conn *c);

/* Frees @c now, dropping (and counting) any pending output. */
void conn_free(struct conn *c);

/* The next connection of the same worker, for walking env->conns. */
struct conn *conn_next(const struct conn *c);

/*
 * The worker's side of cross-worker messages (proto.h, "Across
 * threads").  All on @env's thread, between handler calls.
 */

/* Replies @len bytes of @buf (borrowed) to connection @id, gathered as
 * outside a handler call.  Returns false, having counted it in
 * msgs_dropped, if @id is not open here. */
bool conn_env_reply(struct conn_env *env, uint64_t id, const void *buf,
    size_t len);

/* Runs connection @id's ops->wake(); a wake for a connection that is
 * gone or closing is dropped and counted. */
void conn_env_wake(struct conn_env *env, uint64_t id);

/* Writes out replies gathered outside a handler call: the worker calls
 * it after each message, so that they never wait for the next one. */
void conn_env_flush(struct conn_env *env);

/*
 * Ordered replies.  A job's result takes a place in its connection's
 * reply order when it is submitted, and the replies made after it, by
 * the handler or by messages, wait behind it in memory (counted as
 * output for the high-water rule), so a connection's replies go out in
 * request order however its jobs finish.  While a connection has a job
 * in flight, closing it waits for the job, then flushes as usual.
 */

/* Jobs in flight on one connection before the next submit is deferred
 * (conn_job_wait()). */
#define CONN_MAX_JOBS 16

/*
 * Reserves the next place in @c's reply order for a job; *@seq names it.
 * @cancel (borrowed, until the job is back or @c is freed) is set if @c
 * is freed first.  Returns 0, -EAGAIN (CONN_MAX_JOBS are in flight) or
 * -ENOMEM.  Inside @c's handler call.
 */
int conn_job_begin(struct conn *c, _Atomic bool *cancel, uint64_t *seq);

/* Gives back place @seq, whose job could not be submitted. */
void conn_job_undo(struct conn *c, uint64_t seq);

/*
 * A job could not be submitted: @c is not read, and its handler not
 * called, until one of its jobs comes back, or, with none in flight, a
 * short timer retries; data() is then given the kept input again.
 */
void conn_job_wait(struct conn *c);

/*
 * The result of job @seq of connection @id: @len bytes at @data (taken
 * over, malloc'ed or NULL) fill its place, and the replies that were
 * waiting for it go out.  @failed (the job ran out of memory) breaks the
 * connection.  Returns false, having counted it in msgs_dropped, if the
 * connection is gone.
 */
bool conn_env_job_done(struct conn_env *env, uint64_t id, uint64_t seq,
    char *data, size_t len, bool failed);

/* Frees the handlers' per-worker state (ops->worker_release) and the id
 * map.  Every connection must be gone. */
void conn_env_release(struct conn_env *env);

#endif
