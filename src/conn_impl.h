/*
 * conn's own: struct conn, its flags and the helpers the transport's files
 * share (conn.c, the core socket transport; conn_proxy.c, the PROXY
 * header phase; conn_tls.c, TLS; conn_jobs.c, the ordered replies for
 * offloaded jobs); not for handlers or the worker, which see conn.h and
 * proto/proto.h.  Everything here runs on the connection's worker thread.
 */
#ifndef CONN_IMPL_H
#define CONN_IMPL_H

#include "conn.h"
#include "netaddr.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/uio.h>

struct bufferevent;

/*
 * libevent writes at most 16 KiB of pending output per write callback by
 * default (docs/design.md, fact 12); a backed-up bulk client would then
 * cost a callback per 16 KiB.  Let it write as much as one read brings.
 */
#define CONN_MAX_SINGLE_WRITE (256 * 1024)

enum conn_flags {
	CONN_PAUSED = 1 << 0,	/* reading stopped by backpressure */
	CONN_CLOSING = 1 << 1,	/* flushing, then free */
	CONN_EOF = 1 << 2,	/* the client shut down its write side */
	CONN_LINGER = 1 << 3,	/* sent FIN; discarding input until EOF */
	CONN_BROKEN = 1 << 4,	/* a write failed; free once the handler
				 * returns */
	CONN_HEADER = 1 << 5,	/* awaiting the PROXY header: the handler
				 * has not seen the connection yet */
	CONN_TLS = 1 << 6,	/* a bufferevent_openssl (see conn.h) */
	CONN_HANDSHAKE = 1 << 7,	/* TLS: handshake not finished */
	CONN_WRITING = 1 << 8,	/* TLS: inside an output-buffer write,
				 * which libevent may answer with
				 * callbacks at once */
	CONN_TLS_EOF = 1 << 9,	/* TLS: the client ended its stream; its
				 * last bytes may still be on their way to
				 * the read callback */
	CONN_PROXIED = 1 << 10,	/* the PROXY header named the client */
	CONN_ABORTED = 1 << 11,	/* conn_abort() in its own handler call */
	CONN_JOB_WAIT = 1 << 12,	/* a job could not be submitted: not read
				 * until one comes back (conn_job_wait) */
	CONN_RETRY_LISTED = 1 << 13,	/* on env->job_waiters */
	CONN_HELD = 1 << 14,	/* reading stopped by conn_hold_input() */
};

/*
 * One place in a connection's reply order while jobs are in flight
 * (conn.h, "Ordered replies"): a job's result to come (seq > 0, not
 * ready until it is back) or replies made meanwhile (seq 0, ready).
 */
struct conn_slot {
	struct conn_slot *next;
	uint64_t seq;
	bool ready;
	_Atomic bool *cancel;	/* the job's flag, until it is back */
	char *data;		/* owned */
	size_t len, cap;
};

/* A connection's jobs; allocated at its first job. */
struct conn_jobs {
	struct conn_slot *head, *tail;	/* reply order */
	unsigned in_flight;
	uint64_t next_seq;
	size_t bytes;		/* held in slots */
	struct conn *wait_next;	/* env->job_waiters */
};

/* A PROXY header that came in pieces, kept while it is incomplete. */
struct conn_header {
	struct timespec deadline;	/* CLOCK_MONOTONIC */
	size_t len, cap;
	unsigned char buf[];
};

/* Input the handler has not consumed yet; exists only while non-empty. */
struct conn_pending {
	size_t len, cap;
	char buf[];
};

struct conn {
	struct bufferevent *bev;
	struct conn_env *env;
	struct conn *prev, *next;	/* env->conns */
	const struct conn_listen *listen;	/* borrowed, outlives us */
	const struct proto_ops *ops;	/* listen->ops */
	union {
		struct conn_pending *pending;
		/* TLS, while CONN_HANDSHAKE: the handshake's deadline.  It
		 * shares the slot because no input is kept before the
		 * handshake ends, so plain connections pay nothing for it. */
		struct event *handshake_timer;
	};
	int fd;
	unsigned flags;
	uint64_t bytes_in, bytes_out;	/* payload, for the close log */
	struct conn_header *header;	/* while CONN_HEADER */
	union netaddr_ip peer;	/* the client: getpeername(), or the
				 * PROXY header's source */
	uint64_t id;		/* env->ids; never reused */
	struct conn_jobs *jobs;	/* NULL until it offloads */
	/* The handler's state follows, at CONN_STATE_OFFSET, when it has
	 * any. */
};

#define CONN_STATE_OFFSET \
	((sizeof(struct conn) + alignof(max_align_t) - 1) & \
	    ~(alignof(max_align_t) - 1))


/* --- conn.c --------------------------------------------------------------- */

/* The client's address as text in @buf (borrowed), for log lines;
 * returns @buf. */
const char *conn_peer_text(const struct conn *c, char *buf, size_t size);
/* The bytes in @c's output buffer. */
size_t conn_output_len(const struct conn *c);
/* Counts an error, logs @what and @err, and frees @c. */
void conn_fail(struct conn *c, const char *what, int err);
/* Backpressure: stops reading until the output drains to low_water. */
void conn_pause(struct conn *c);
/* Reads again, unless something else holds reading off. */
void conn_resume(struct conn *c);
/* A write failed: marks @c, which is freed later, never under its caller. */
void conn_break(struct conn *c, int err);
/* Sends @len bytes in @iov[@n] (borrowed), eagerly or via the output. */
void conn_writev(struct conn *c, struct iovec *iov, int n, size_t len);
/* After a handler call: frees @c if broken or aborted; true if gone. */
bool conn_reap(struct conn *c);
/* Hands @n bytes at @buf (borrowed), after any kept input, to the
 * handler; true if @c was closed or freed meanwhile. */
bool conn_input(struct conn *c, const char *buf, size_t n);
/* The client shut down its sending side: the handler's eof(), then close. */
void conn_eof(struct conn *c);
/* Closing with every reply in the output buffer: flush it, then free. */
void conn_close_output(struct conn *c);
/* The bufferevent's write callback: finishes a close, or resumes. */
void conn_write_cb(struct bufferevent *bev, void *arg);
/* The bufferevent's event callback: write errors and write timeouts. */
void conn_event_cb(struct bufferevent *bev, short what, void *arg);
/* Lets the handler greet the client; @via (static) ends the log line.
 * Returns false if @c is gone, or closing (which may have freed it). */
bool conn_open(struct conn *c, const char *via);

/* --- conn_proxy.c --------------------------------------------------------- */

/* Waits for the PROXY header, from now until listen->proxy_timeout;
 * 0 or -1. */
int conn_header_begin(struct conn *c);
/* The read callback while CONN_HEADER: reads and parses the header. */
void conn_header_read(struct conn *c, short what);

/* --- conn_tls.c ----------------------------------------------------------- */

/* Sends @len bytes in @iov[@n] (borrowed) through the TLS output. */
void conn_tls_writev(struct conn *c, const struct iovec *iov, int n,
    size_t len);
/* Sets up a TLS connection on @fd; returns 0, or -1 (c->bev, if set,
 * owns @fd). */
int conn_tls_setup(struct conn *c, int fd);
/* Starts TLS on a proxy+tls+ connection's socket after its header. */
void conn_tls_setup_after_header(struct conn *c);

/* --- conn_jobs.c ---------------------------------------------------------- */

/* Keeps a reply (@p borrowed, copied) behind a job's result to come. */
void conn_slot_append(struct conn *c, const char *p, size_t len);
/* Frees @c's jobs, telling those still out; returns the bytes dropped. */
size_t conn_jobs_free(struct conn *c);

#endif
