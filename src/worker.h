/*
 * A worker thread: one event_base serving many connections.
 *
 * DESIGN
 * The main thread accepts and hands each fd to a worker with
 * worker_dispatch(): it pushes an item on the worker's connection-item queue
 * and, only if the queue was empty, writes a byte to the worker's notify
 * pipe.  The woken worker reads the pipe once and then drains the whole
 * queue, so a burst of accepts costs the worker one wake-up.
 *
 * Nothing but the worker thread touches its event_base, its bufferevents or
 * its connection list; the base is created with EVENT_BASE_FLAG_NOLOCK.
 * Every cross-thread request (a new connection, stop, and the messages of
 * msg.h: a call, a reply, a wake) is a queue item, posted from any thread
 * with worker_post().
 * worker_init() and worker_release() run on the main thread while the worker
 * thread is not running.
 */
#ifndef WORKER_H
#define WORKER_H

#include "conn.h"
#include "conn_queue.h"
#include "stats.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>

struct proto_config;

/* Settings shared by every worker; owned by the server, read-only while
 * workers run. */
struct worker_config {
	size_t high_water;	/* pause reading past this much output */
	size_t low_water;	/* resume at or below this */
	double idle_timeout;	/* seconds, 0: off */
	double write_timeout;	/* seconds, 0: off */
	double grace;		/* seconds to flush at shutdown */
	const struct proto_config *proto_cfg;	/* the handlers' settings */
	_Atomic long *conns_now;	/* open connections, server-wide */
};

struct worker {
	int id;
	const struct worker_config *cfg;	/* borrowed */
	pthread_t thread;
	bool started;
	struct conn_queue queue;
	int notify_recv;	/* read end, the worker's */
	int notify_send;	/* write end, the main thread's */
	struct event *notify_event;
	struct event *grace_timer;
	struct cq_item *stop_item;	/* allocated up front: stopping
					 * must not fail for want of memory */
	struct conn_env env;	/* its event_base, connections, scratch
				 * buffers, timeouts and counters
				 * (conn.h) */
};

/* Sets up @w (caller's storage) with its base, queue and pipe; @cfg is
 * borrowed and must outlive @w.  Returns 0, or -1 with the reason logged. */
int worker_init(struct worker *w, int id, const struct worker_config *cfg);

/* Starts the thread.  Returns 0 or -errno. */
int worker_start(struct worker *w);

/*
 * Hands the connected socket @fd to @w, to be served as @l says
 * (borrowed; conn.h says how long it must live).  On success the worker
 * owns @fd; on failure (-errno) the caller still does and must close it.
 */
int worker_dispatch(struct worker *w, int fd, const struct conn_listen *l);

/*
 * Pushes @it (an item of @w's queue, filled in) and wakes @w if its
 * queue was empty.  Any thread.  Returns 0 (the worker owns @it), or
 * -errno if the notify pipe failed and @it could be taken back, in which
 * case @it has been returned to the freelist (what it carried is still
 * the caller's).
 */
int worker_post(struct worker *w, struct cq_item *it);

/* Asks @w to flush and close its connections, then leave its loop.
 * Returns 0 or -errno (only if the notify pipe fails).  Call once. */
int worker_stop(struct worker *w);

/* Waits for the thread to leave, if it was started. */
void worker_join(struct worker *w);

/* Frees everything; the thread must have been joined (or never started). */
void worker_release(struct worker *w);

#endif
