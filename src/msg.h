/*
 * Cross-worker messages: the hub through which any thread reaches any
 * worker, and the posting side of proto.h's msg_call(), msg_reply() and
 * msg_wake().  A message is one item on the destination worker's
 * connection-item queue (conn_queue.h), pushed with the same
 * notify-on-empty rule as a new connection (worker.h); the worker runs it
 * between handler calls (worker.c) on its own connections (conn.h).
 *
 * DESIGN
 * Threads.  The hub is filled in by the server before the workers start
 * and is read-only afterwards, so posting needs no lock beyond the
 * destination queue's own.  Posting is allowed from any thread (workers,
 * pool jobs, the main thread) from worker_init() of every worker until
 * server_release() begins; the server shuts the offload pool down before
 * it releases the workers, so no pool job can post into a freed queue.
 *
 * Ownership.  A posted item belongs to the destination queue; once
 * popped, to the worker, which frees what it carries (the reply bytes).
 * A CQ_CALL's argument belongs to its function from a successful post on.
 * A failed post leaves everything with the caller.
 */
#ifndef MSG_H
#define MSG_H

#include "proto/proto.h"

struct worker;

struct msg_hub {
	struct worker *workers;	/* borrowed: the server's array */
	int n;
};

#endif
