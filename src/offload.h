/*
 * Offload: the server's pool of threads for slow requests (--offload,
 * --offload-threads), on libworkqueue (src/workqueue/workqueue.h), and
 * the implementation of proto.h's conn_offload() and proto_job_*().
 *
 * DESIGN
 * A job is made on the connection's worker, which also takes an item of
 * its own queue for the way back and a place in the connection's reply
 * order (conn.h, "Ordered replies").  It is submitted with
 * workqueue_try_submit() (docs/design.md, fact X3), so a full pool never
 * blocks a worker: the submit fails with -EAGAIN and the connection
 * waits (conn_job_wait()).
 * A pool thread runs it, or cancels it (the pool's cancel callback, at a
 * cancelling shutdown, or because the connection went away first, which
 * the worker says through the job's atomic flag), and posts it back as a
 * CQ_CALL on the item reserved for that.  The worker then delivers the
 * result by connection id, never by pointer, and frees the job.
 *
 * Ownership.  Only the worker frees a job, after it has come back, so
 * the worker may set the job's flag for as long as the connection holds
 * its place.  The job's argument belongs to the job from a successful
 * submit until its free function runs, on the pool thread.
 *
 * Shutdown (server.c).  Workers stop first, within --grace, while the
 * pool still runs their connections' jobs; then offload_shutdown()
 * cancels what is queued and joins the pool threads; their last results
 * wait in the stopped workers' queues, which worker_release() drains.
 */
#ifndef OFFLOAD_H
#define OFFLOAD_H

#include "msg.h"

#include <stddef.h>

struct workqueue;

struct offload {
	struct workqueue *wq;
	struct msg_hub *hub;	/* borrowed: where results go */
};

/*
 * Starts @threads pool threads (0: the usable CPUs) in @o (caller's
 * storage), with room for @queue queued jobs, posting results through
 * @hub (borrowed, must outlive @o).  Returns 0 or -errno.
 */
int offload_init(struct offload *o, struct msg_hub *hub, unsigned threads,
    size_t queue);

/* Cancels the queued jobs and joins the threads; idempotent.  Main
 * thread, once the workers have stopped. */
void offload_shutdown(struct offload *o);

/* Logs the pool's counters at info level. */
void offload_log_stats(struct offload *o);

/* Frees @o's pool; after offload_shutdown(). */
void offload_release(struct offload *o);

#endif
