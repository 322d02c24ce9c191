/*
 * Publish/subscribe across workers: who is subscribed to what, and the
 * delivery of published messages to subscribers on every worker.  It
 * knows nothing of RESP or sockets: a subscriber is a struct pubsub_sub
 * with callbacks, embedded in a handler's state (resp's in
 * src/proto/resp_pubsub.c), and a worker is reached through a post
 * function the server gives (run this on worker W).
 *
 * DESIGN
 * Two levels of state:
 *
 * - The registry, one per server (struct pubsub): for every channel and
 *   every pattern with a subscriber, how many subscriptions each worker
 *   has.  It answers PUBLISH's receiver count, PUBSUB CHANNELS, NUMSUB
 *   and NUMPAT, and tells a publisher which workers to send to.  One
 *   rwlock guards it: a publish takes it shared, once per message, for
 *   a hash lookup and a match against each distinct pattern; only
 *   (un)subscribing takes it exclusively, for a counter update.
 *
 * - A local map per worker (struct pubsub_local): channel or pattern ->
 *   that worker's subscribers.  Only its worker touches it, so delivery
 *   takes no lock at all.
 *
 * Publishing.  pubsub_publish() looks the message up in the registry and
 * appends it to one outgoing batch per worker that has a receiver (the
 * publisher's own worker included).  pubsub_flush(), which the handler
 * calls once per read, posts each batch to its worker as ONE message,
 * however many publishes and subscribers it holds, and delivers the
 * batch for its own worker at once.  A worker runs a batch by walking
 * its local map: each subscriber's message() callback queues the
 * message, and once the batch is done every subscriber it touched gets
 * one flush() (one write), or one drop() if it went over its limit.
 *
 * Order.  Batches from one worker to another travel through one FIFO,
 * and a worker's batches are built in the order its publishers ran, so
 * a subscriber sees the messages of one publisher connection in publish
 * order.  Messages of different publishers may interleave differently
 * for different subscribers, as they would in any multi-threaded server.
 *
 * Counts.  The receiver count is the registry's at the moment of the
 * publish.  A subscription that changes while the batch travels makes
 * the delivery differ from the count, as in redis only the count is a
 * promise about "now": a subscriber that unsubscribed is skipped, one
 * that just subscribed on another worker may or may not get it.
 *
 * Flow control.  Bytes posted by a worker and not yet delivered count as
 * its in-flight bytes.  Past PUBSUB_INFLIGHT_HIGH, pubsub_flush() says
 * so, and the handler stops reading its publisher and waits
 * (pubsub_wait()); the destination that brings the figure back under
 * PUBSUB_INFLIGHT_LOW posts a credit back, which resumes every waiter.
 * A fast publisher therefore runs at the speed of the slowest worker,
 * and a worker's queue holds at most about PUBSUB_INFLIGHT_HIGH plus one
 * read's batch from each other worker.
 *
 * Threads.  pubsub_new() and pubsub_free() on one thread while no worker
 * runs.  Calls taking a struct pubsub_local, on that local's worker only.
 * pubsub_numsub(), pubsub_numpat() and pubsub_channels() on any thread.
 */
#ifndef PUBSUB_H
#define PUBSUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct pubsub;
struct pubsub_local;
struct pubsub_member;

/* Posted in-flight bytes past which publishers wait, and under which
 * they resume. */
#define PUBSUB_INFLIGHT_HIGH ((size_t)8 << 20)
#define PUBSUB_INFLIGHT_LOW ((size_t)2 << 20)

/* Something to run on a worker: a batch or a credit.  Opaque to the
 * server, which only hands it back to pubsub_msg_run(). */
struct pubsub_msg {
	void (*run)(struct pubsub_msg *m);
};

/* Runs @m (taken over) on the thread of the worker it was posted to.
 * Also the way to dispose of it at shutdown: it must run exactly once. */
void pubsub_msg_run(struct pubsub_msg *m);

struct pubsub_options {
	int workers;		/* at least 1 */
	/*
	 * Makes pubsub_msg_run(@m) happen on worker @worker's thread,
	 * exactly once, after the messages this thread posted there
	 * before.  Any thread.  Returns 0 (@m is taken over), or < 0, in
	 * which case the caller keeps @m.
	 */
	int (*post)(void *ctx, int worker, struct pubsub_msg *m);
	void *post_ctx;
};

/* A new registry with one local map per worker; NULL if memory ran out.
 * @o is copied. */
struct pubsub *pubsub_new(const struct pubsub_options *o);

/* Frees @ps and its local maps; every subscriber must be released and
 * every posted message run. */
void pubsub_free(struct pubsub *ps);

/* No more posts from now on: batches that still run (a worker being
 * released runs what its queue holds) post no credit back.  Call once
 * the workers have stopped, before they are released. */
void pubsub_stop(struct pubsub *ps);

/* Worker @worker's local map (borrowed, as long as @ps). */
struct pubsub_local *pubsub_local(struct pubsub *ps, int worker);

/* Messages lost because a batch could not be allocated or posted. */
unsigned long pubsub_lost(struct pubsub *ps);

/* --- subscribers -------------------------------------------------------- */

struct pubsub_sub;
struct pubsub_sub_ops;

/*
 * One message as it reaches a worker's subscribers: the channel and the
 * message, and the pattern that matched (NULL for a channel
 * subscription), all borrowed for the delivery.  @wire is the message
 * as its subscribers' protocol sends it: NULL for the first subscriber,
 * whose message() formats it (in pubsub_scratch(), say) and sets it, so
 * that the others of the same @wire_ops only copy it.  Formatting once
 * per message instead of once per subscriber is what a fan-out to
 * thousands needs.
 */
struct pubsub_delivery {
	const char *pat, *ch, *msg;
	size_t plen, chlen, mlen;
	const char *wire;
	size_t wire_len;
	const struct pubsub_sub_ops *wire_ops;
	struct pubsub_local *local;	/* the worker delivering */
};

/* A scratch buffer of at least @len bytes owned by @l, valid until the
 * next call on @l; NULL if memory ran out.  @l's worker only. */
char *pubsub_scratch(struct pubsub_local *l, size_t len);

struct pubsub_sub_ops {
	/*
	 * One message for @sub (@d borrowed until return; see struct
	 * pubsub_delivery).  Queue it without writing.  Returns 0, or -1
	 * if @sub cannot take it (over its output limit): it then gets
	 * nothing more from this batch, and drop() instead of flush().
	 */
	int (*message)(struct pubsub_sub *sub, struct pubsub_delivery *d);
	/* After a batch: write what message() queued. */
	void (*flush)(struct pubsub_sub *sub);
	/* After a batch in which message() refused: close the subscriber.
	 * It must call pubsub_sub_release() on @sub (it may free it). */
	void (*drop)(struct pubsub_sub *sub);
};

enum pubsub_sub_flags {
	PUBSUB_SUB_TOUCHED = 1 << 0,	/* queued in this batch */
	PUBSUB_SUB_REFUSED = 1 << 1,	/* message() refused: drop() */
};

/* A subscriber; embedded in its owner's state.  Owned by one worker:
 * the one whose local map it is used with. */
struct pubsub_sub {
	const struct pubsub_sub_ops *ops;
	struct pubsub_member *subs;	/* its subscriptions: channels */
	struct pubsub_member *psubs;	/* and patterns */
	size_t n_subs, n_psubs;
	struct pubsub_sub *touched_next;
	unsigned flags;
};

/* Initialises @sub (caller's storage) with @ops (static). */
void pubsub_sub_init(struct pubsub_sub *sub, const struct pubsub_sub_ops *ops);

/* Unsubscribes @sub from everything, without telling it.  Idempotent. */
void pubsub_sub_release(struct pubsub_local *l, struct pubsub_sub *sub);

/* Channels plus patterns @sub is subscribed to (redis's reply count). */
static inline size_t pubsub_sub_count(const struct pubsub_sub *sub)
{
	return sub->n_subs + sub->n_psubs;
}

/*
 * Subscribes @sub to the channel (or, with @pattern, the glob pattern)
 * @name of @len bytes (borrowed; copied).  Returns 1 if it is new, 0 if
 * @sub had it already, -1 if memory ran out.
 */
int pubsub_subscribe(struct pubsub_local *l, struct pubsub_sub *sub,
    bool pattern, const char *name, size_t len);

/* Undoes pubsub_subscribe(); returns 1 if @sub had it, else 0. */
int pubsub_unsubscribe(struct pubsub_local *l, struct pubsub_sub *sub,
    bool pattern, const char *name, size_t len);

/*
 * Unsubscribes @sub from every channel (or pattern), oldest first,
 * calling @each(@arg, name, len) after each one; the name is borrowed
 * until @each returns.  Returns how many there were.
 */
size_t pubsub_unsubscribe_all(struct pubsub_local *l, struct pubsub_sub *sub,
    bool pattern, void (*each)(void *arg, const char *name, size_t len),
    void *arg);

/* --- publishing --------------------------------------------------------- */

/*
 * Publishes @msg to channel @ch (both borrowed; copied).  Returns the
 * number of receivers: subscriptions to @ch plus pattern subscriptions
 * matching it, server-wide; -1 if memory ran out.  Delivery starts at
 * pubsub_flush().
 */
long long pubsub_publish(struct pubsub_local *l, const char *ch,
    size_t chlen, const char *msg, size_t mlen);

/*
 * Sends what pubsub_publish() queued: one post per other worker, and the
 * local subscribers served now.  Returns true if this worker has too
 * much in flight: its publishers should stop reading and pubsub_wait().
 */
bool pubsub_flush(struct pubsub_local *l);

/* A publisher waiting for in-flight bytes to drain; embedded in its
 * owner's state, zeroed. */
struct pubsub_waiter {
	struct pubsub_waiter *prev, *next;
	bool waiting;
	void (*resume)(struct pubsub_waiter *w);	/* on the worker */
};

/*
 * Calls @w->resume(@w) once this worker's in-flight bytes are back under
 * PUBSUB_INFLIGHT_LOW (at once, from this call, if they are already).
 * A waiter that is already waiting is left as it is.
 */
void pubsub_wait(struct pubsub_local *l, struct pubsub_waiter *w);

/* Stops @w waiting; idempotent. */
void pubsub_unwait(struct pubsub_local *l, struct pubsub_waiter *w);

/* --- the registry: any thread --------------------------------------------- */

/* Subscriptions to the channel @ch server-wide (PUBSUB NUMSUB). */
size_t pubsub_numsub(struct pubsub *ps, const char *ch, size_t len);

/* Distinct patterns with a subscriber (PUBSUB NUMPAT, as redis 7). */
size_t pubsub_numpat(struct pubsub *ps);

/*
 * The channels with a subscriber that match @pat (NULL: all), for PUBSUB
 * CHANNELS: @begin(@arg, n) once, then @each(@arg, name, len) n times,
 * all under the registry's read lock, so the count is exact; neither may
 * call into pubsub.
 */
void pubsub_channels(struct pubsub *ps, const char *pat, size_t plen,
    void (*begin)(void *arg, size_t n),
    void (*each)(void *arg, const char *name, size_t len), void *arg);

#endif
