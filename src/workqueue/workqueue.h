/*
 * workqueue: a bounded FIFO thread pool for C programs, using pthreads only.
 *
 * A pool runs jobs (a function and an argument, with an optional cancel
 * callback) on a fixed set of threads.  Submitting blocks, fails at once or
 * times out while the queue is full; wait_idle waits for the jobs accepted so
 * far without stopping the pool; shutdown drains or cancels the queue and
 * joins every thread.  There is no global state: pools are independent.
 *
 * Errors: every function that can fail returns 0 or a negative errno value
 * (-EAGAIN, -ETIMEDOUT, ...), as libuv does, and never prints or aborts.
 *
 * Ownership of a job's argument, in one sentence: when a submit returns 0 the
 * pool calls exactly one of fn(arg) or cancel(arg) exactly once; when it
 * returns an error the pool never touches @arg and the caller keeps it.
 *
 * See workqueue(3) and docs/workqueue.md for the full semantics.
 */
#ifndef WORKQUEUE_H
#define WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The pool; opaque. */
struct workqueue;

/* A job body, and the cancel callback's type too.  @arg is the submitter's. */
typedef void workqueue_fn(void *arg);

#define WORKQUEUE_DEFAULT_CAPACITY 1024
#define WORKQUEUE_MAX_THREADS 1024
#define WORKQUEUE_MAX_CAPACITY ((size_t)1 << 28)

/*
 * Options for workqueue_new().  Zero-initialise the struct and set what you
 * need, so that fields added later keep their defaults.
 */
struct workqueue_options {
	/* 0: one per CPU in the caller's affinity mask (sched_getaffinity),
	 * which is every online CPU unless taskset or a cpuset says less. */
	unsigned int threads;
	size_t capacity;	/* queued jobs before submits block; 0: 1024 */
	/* Thread-name prefix ("name-0", ...), cut to fit 15 bytes; NULL:
	 * "wq".  Borrowed: copied during workqueue_new(). */
	const char *name;
};

/* How workqueue_shutdown() treats jobs still queued. */
enum workqueue_shutdown_mode {
	/* Run every queued job, and jobs that running jobs submit. */
	WORKQUEUE_DRAIN = 1 << 0,
	/* Call each queued job's cancel callback instead of running it. */
	WORKQUEUE_CANCEL = 1 << 1
};

/*
 * A picture of the pool, read without stopping it, that always adds up:
 * submitted == completed + cancelled + queued + running.  No counter ever
 * goes backwards; completed counts a batch of jobs when its last returns.
 */
struct workqueue_stats {
	uint64_t submitted;	/* jobs accepted: submits that returned 0 */
	uint64_t completed;	/* jobs whose fn returned */
	uint64_t cancelled;	/* jobs cancelled by WORKQUEUE_CANCEL */
	uint64_t rejected;	/* failed submits: full, timeout, shutdown */
	uint64_t queued;	/* queue depth now */
	uint64_t running;	/* taken by a thread, not yet finished */
	uint64_t high_water;	/* the largest queue depth seen */
	unsigned int threads;	/* threads started and not yet joined */
};

/*
 * Creates a pool and starts its threads.  @opts is borrowed and may be NULL
 * for the defaults.  On success stores the pool in *@wqp (caller frees with
 * workqueue_free()) and returns 0.  Errors: -EINVAL (bad options), -ENOMEM,
 * or pthread_create()'s error negated, e.g. -EAGAIN; on error no thread is
 * left running and *@wqp is untouched.
 */
int workqueue_new(struct workqueue **wqp,
		  const struct workqueue_options *opts);

/*
 * Queues fn(@arg), waiting while the queue is full.  @wq is borrowed; @fn
 * and @cancel (may be NULL) must stay callable until the job finishes; @arg
 * is taken over on success (see the ownership sentence above) and left to
 * the caller on error.
 *
 * Called from a job of @wq itself while the queue is full, the submit runs
 * fn(@arg) at once on the calling thread instead of waiting, because the
 * wait could be for itself.
 *
 * Returns 0, -EINVAL (NULL @wq or @fn), or -ESHUTDOWN: workqueue_shutdown()
 * has begun.  While a drain is in progress, jobs of @wq may still submit.
 */
int workqueue_submit(struct workqueue *wq, workqueue_fn *fn, void *arg,
		     workqueue_fn *cancel);

/* As workqueue_submit(), but returns -EAGAIN at once if the queue is full. */
int workqueue_try_submit(struct workqueue *wq, workqueue_fn *fn, void *arg,
			 workqueue_fn *cancel);

/*
 * As workqueue_submit(), but waits at most @timeout_ms for room, then
 * returns -ETIMEDOUT.  A timeout of 0 fails at once with -ETIMEDOUT.
 */
int workqueue_submit_timeout(struct workqueue *wq, workqueue_fn *fn,
			     void *arg, workqueue_fn *cancel,
			     unsigned int timeout_ms);

/*
 * Waits until every job accepted before the call has finished (run or
 * cancelled).  Jobs accepted later, even ones those jobs submit, are not
 * waited for.  The pool stays usable.  @wq is borrowed.  Returns 0, or
 * -EDEADLK when called from a job of @wq, or -EINVAL.
 */
int workqueue_wait_idle(struct workqueue *wq);

/* As workqueue_wait_idle(), but gives up after @timeout_ms: -ETIMEDOUT. */
int workqueue_wait_idle_timeout(struct workqueue *wq, unsigned int timeout_ms);

/*
 * Stops the pool and joins every thread before returning.  New submits fail
 * with -ESHUTDOWN from the moment of the call (WORKQUEUE_DRAIN still lets
 * running jobs of @wq submit).  WORKQUEUE_DRAIN runs every queued job;
 * WORKQUEUE_CANCEL calls the cancel callback of each job not yet started
 * (on the calling thread or on a pool thread) and never runs it.  Jobs
 * already running finish.
 *
 * Idempotent and callable from several threads: every call returns once
 * the threads are joined.  A CANCEL during or after a DRAIN cancels what is
 * still queued.  @wq is borrowed.  Returns 0, -EINVAL, or -EDEADLK when
 * called from a job of @wq.
 */
int workqueue_shutdown(struct workqueue *wq,
		       enum workqueue_shutdown_mode mode);

/*
 * Shuts the pool down with WORKQUEUE_DRAIN unless already shut down, then
 * frees it.  @wq is taken over and may be NULL.  No other call on @wq may be
 * in progress or follow.  Returns 0, or -EDEADLK (and frees nothing) when
 * called from a job of @wq.
 */
int workqueue_free(struct workqueue *wq);

/* Fills @st (caller-owned) with a snapshot of @wq (borrowed).  Returns 0 or
 * -EINVAL. */
int workqueue_get_stats(struct workqueue *wq, struct workqueue_stats *st);

#ifdef __cplusplus
}
#endif

#endif
