/*
 * The connection-item queue (CQ): how the main thread, other workers and
 * pool threads hand work to a worker (docs/design.md, "Cross-worker
 * messages").  A mutex-protected FIFO of small items with a freelist, so that
 * steady-state dispatch allocates nothing.  The queue knows nothing of
 * pipes or event bases: conn_queue_push() reports whether the queue was
 * empty, and the caller decides to notify (see worker.c).
 *
 * Threads: any number of producers and consumers; every function locks.
 */
#ifndef CONN_QUEUE_H
#define CONN_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cq_item_type {
	CQ_NEW_CONN,	/* fd: an accepted socket for the worker to serve */
	CQ_STOP,	/* flush and close every connection, then exit */
	CQ_CALL,	/* fn(env, arg) on the worker: msg_call() */
	CQ_REPLY,	/* data: bytes for connection conn_id: msg_reply() */
	CQ_WAKE,	/* the wake() op of connection conn_id: msg_wake() */
};

struct conn_env;
struct conn_listen;

struct cq_item {
	enum cq_item_type type;
	int fd;
	const struct conn_listen *listen;	/* CQ_NEW_CONN: how to serve
						 * it; borrowed (conn.h) */
	uint64_t conn_id;	/* CQ_REPLY, CQ_WAKE: the connection */
	void *data;		/* CQ_REPLY: owned by the item (malloc) */
	size_t len;		/* CQ_REPLY: bytes at data */
	/* CQ_CALL: run once on the worker; @arg is the poster's */
	void (*fn)(struct conn_env *env, void *arg);
	void *arg;
	struct cq_item *next;	/* queue or freelist link; queue-private */
};

struct conn_queue {
	pthread_mutex_t lock;
	struct cq_item *head, *tail;
	struct cq_item *freelist;
	unsigned long allocated;	/* items ever malloc'ed, for tests */
};

/* Initialises @q in storage the caller owns.  Returns 0 or -errno. */
int conn_queue_init(struct conn_queue *q);

/* Frees every queued and free item; @q must have no users left.  Queued
 * items are dropped without closing their fds: drain the queue first. */
void conn_queue_release(struct conn_queue *q);

/* An item from the freelist, or a new one; caller owns it until pushed.
 * Returns NULL only if malloc fails. */
struct cq_item *conn_queue_item_new(struct conn_queue *q);

/* Returns @item (taken over) to the freelist. */
void conn_queue_item_free(struct conn_queue *q, struct cq_item *item);

/* Appends @item; the queue owns it until popped.  Returns true if the
 * queue was empty, meaning the consumer may be asleep and needs a notify. */
bool conn_queue_push(struct conn_queue *q, struct cq_item *item);

/* Removes the oldest item; caller owns it (give it back with
 * conn_queue_item_free()).  NULL when empty. */
struct cq_item *conn_queue_pop(struct conn_queue *q);

/* Takes @item back out of the queue if it is still there (a consumer has
 * not popped it), returning true; the caller then owns it again. */
bool conn_queue_remove(struct conn_queue *q, struct cq_item *item);

#endif
