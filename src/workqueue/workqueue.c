/*
 * The work queue: a bounded FIFO of jobs run by a fixed set of pthreads.
 * Everything a pool needs lives in its struct workqueue; the only
 * thread-local is the "pool this thread works for" pointer, which is what
 * lets calls from inside a job see that they would wait for themselves.
 *
 * DESIGN
 *
 * Threads.  workqueue_new() starts the workers with every signal blocked, so
 * that signals go to the application's own threads.  Workers only leave at
 * shutdown, and the first workqueue_shutdown() caller joins them all; other
 * callers wait on joined_cond for it.
 *
 * The queue is a lock-free bounded ring after Dmitry Vyukov's MPMC queue: no
 * malloc per job, and no lock on the path of a job.  Each slot carries a
 * sequence number saying whose turn it is: slot p % size is free for the
 * producer of position p when seq == p, holds a job for the consumer when
 * seq == p + 1, and is handed back for position p + size.  Producers
 * reserve a position with a CAS on tail, fill the slot and publish it;
 * workers take every ready slot up to WQ_BATCH with one CAS on head, copy
 * the jobs out, free the slots and run the jobs.  head and tail live on
 * their own cache lines, so a producer and a worker share only the slots.
 * Positions are 64-bit and never wrap in practice.
 *
 * The mutex guards only the slow paths: the idle stack of sleeping workers,
 * the waits of blocked submitters and of wait_idle, and shutdown.  Each
 * wait follows the same rule so that no wakeup is lost: the waiter counts
 * itself (nidle, nspace_waiters, nidle_waiters) and then re-checks; the
 * other side changes the queue and then reads the count, with sequentially
 * consistent operations on both sides (an RMW where a release store must be
 * seen), so at least one of them sees the other.  Because the counts are
 * read without the lock and are zero while the pool is busy, a busy pool
 * makes no futex calls at all.  A worker with nothing to do spins for a
 * while on the next slot before it sleeps, since a sleeping worker costs
 * the next submit a wakeup; a submit wakes exactly one sleeper, most
 * recently idle first.
 *
 * wait_idle.  A caller notes tail, the position of the next job.  It is done
 * once head has passed it and no worker still holds a batch that started
 * before it: a worker publishes the first position of a batch in busy_lo
 * before its CAS on head, and clears it when the batch has finished.  Jobs
 * accepted after the call never delay it, however busy the pool is.
 *
 * Shutdown.  state goes RUNNING -> DRAINING or CANCELLING (DRAINING may then
 * become CANCELLING), under the lock, and never back; the same moment sets
 * WQ_CLOSED in tail, so a producer's reservation either happened before the
 * shutdown or fails.  Only threads of the pool itself may still reserve,
 * and only while DRAINING.  A worker leaves when the state is not RUNNING
 * and head has caught up with tail, waiting for reserved slots to be
 * published first; the worker running a job that submits is still there to
 * take the job, so nothing accepted is left behind.  The caller that moves
 * the state to CANCELLING takes the queue and calls the cancel callbacks,
 * and workers check the state before each job of a batch, so no job starts
 * after the cancel.
 *
 * Stats.  The counters that change per job are positions (tail, head) and
 * per-worker counts, written only by their owner; workqueue_get_stats()
 * reads completions before head before tail so the sums never go negative.
 * high_water is exact: the depth only grows between two takes, so each take
 * (and each stats call) records the depth it sees.
 *
 * Ownership.  The pool owns a job from the moment a submit returns 0 until
 * it calls fn or cancel; it copies the job out of the ring before calling,
 * and never touches the argument after.  User callbacks never run under the
 * lock, so they may call any function of any pool, including submitting to
 * their own.
 *
 * Who may call what: any thread may call anything except that no call may
 * race with or follow workqueue_free(); from a job of the pool itself,
 * wait_idle, shutdown and free return -EDEADLK.
 */
#include "workqueue.h"

#include "common/cpus.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Jobs a worker takes per CAS. */
#define WQ_BATCH 64
/* Polls of an empty queue before a worker sleeps: about 10 us here.  At
 * 2000 the spin cost 0.2 ms of CPU per idle moment and won nothing. */
#ifndef WQ_SPIN
#define WQ_SPIN 500
#endif
/* Polls before wait_idle sleeps. */
#define WQ_WAIT_SPIN 200
/* busy_lo of a worker that holds no batch. */
#define WQ_NONE UINT64_MAX
/* Set in tail by shutdown: outsiders may no longer reserve. */
#define WQ_CLOSED ((uint64_t)1 << 63)
#define WQ_CACHELINE 64

enum wq_state {
	WQ_RUNNING,
	WQ_DRAINING,
	WQ_CANCELLING
};

struct wq_slot {
	_Atomic uint64_t seq;
	workqueue_fn *fn;
	workqueue_fn *cancel;
	void *arg;
};

struct wq_job {
	workqueue_fn *fn;
	workqueue_fn *cancel;
	void *arg;
};

struct wq_worker {
	alignas(WQ_CACHELINE) struct workqueue *wq;
	pthread_t thread;
	_Atomic uint64_t busy_lo;	/* first position of the batch held */
	_Atomic uint64_t completed;	/* written by this worker only */
	_Atomic uint64_t cancelled;	/* written by this worker only */
	pthread_cond_t wake_cond;	/* signalled with woken set */
	unsigned int index;
	int woken;
};

struct workqueue {
	/* Read-mostly. */
	struct wq_slot *ring;
	uint64_t mask;			/* ring size - 1, a power of 2 */
	uint64_t capacity;		/* jobs allowed in the ring */
	struct wq_worker *workers;	/* [nthreads] is the canceller's */
	unsigned int nthreads;
	_Atomic int state;		/* enum wq_state */
	char name[16];

	/* Producers' line. */
	alignas(WQ_CACHELINE) _Atomic uint64_t tail;
	_Atomic uint64_t head_seen;	/* a recent head */

	/* Consumers' line. */
	alignas(WQ_CACHELINE) _Atomic uint64_t head;
	_Atomic uint64_t high_water;

	/* Waiter counts: written rarely, read per job or per batch. */
	alignas(WQ_CACHELINE) _Atomic unsigned int nidle;
	_Atomic unsigned int nidle_waiters;

	/* Read-modify-written by workers per batch: see wq_take(). */
	alignas(WQ_CACHELINE) _Atomic unsigned int nspace_waiters;

	/* The slow paths. */
	alignas(WQ_CACHELINE) pthread_mutex_t lock;
	unsigned int *idle;		/* stack of sleeping workers */
	unsigned int nstarted;		/* threads not yet joined */
	pthread_cond_t space_cond;	/* slots freed, or shutdown */
	pthread_cond_t idle_cond;	/* a batch finished */
	pthread_cond_t joined_cond;	/* the threads are joined */
	int join_started;
	int joined;
	_Atomic uint64_t rejected;
	_Atomic uint64_t inline_runs;	/* run by their submitter */
	_Atomic uint64_t inline_done;
};

/* The pool whose job this thread is running, if any. */
static _Thread_local struct workqueue *wq_current;

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)
#define LOAD_ACQ(x) atomic_load_explicit(&(x), memory_order_acquire)
#define STORE_REL(x, v) atomic_store_explicit(&(x), (v), memory_order_release)

static inline void wq_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* CLOCK_MONOTONIC now + @ms, for pthread_cond_timedwait(). */
static void wq_deadline(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* True if the slot at head holds a job. */
static int wq_ready(struct workqueue *wq)
{
	uint64_t h = atomic_load(&wq->head);

	return atomic_load(&wq->ring[h & wq->mask].seq) == h + 1;
}

/* True once every reserved position has been taken. */
static int wq_drained(struct workqueue *wq)
{
	return atomic_load(&wq->head) == (atomic_load(&wq->tail) & ~WQ_CLOSED);
}

static void wq_raise_high_water(struct workqueue *wq, uint64_t depth)
{
	uint64_t hw = LOAD(wq->high_water);

	while (depth > hw && !atomic_compare_exchange_weak_explicit(
			&wq->high_water, &hw, depth, memory_order_relaxed,
			memory_order_relaxed))
		;
}

/* Pops a sleeping worker and marks it woken; the caller signals it after
 * unlocking.  Lock held. */
static struct wq_worker *wq_pop_idle(struct workqueue *wq)
{
	unsigned int n = LOAD(wq->nidle);
	struct wq_worker *w;

	if (n == 0)
		return NULL;
	w = &wq->workers[wq->idle[n - 1]];
	atomic_store(&wq->nidle, n - 1);
	w->woken = 1;
	return w;
}

/* After a publish: wakes one sleeping worker if there is one. */
static void wq_wake_one(struct workqueue *wq)
{
	struct wq_worker *w;

	if (atomic_load(&wq->nidle) == 0)
		return;
	pthread_mutex_lock(&wq->lock);
	w = wq_pop_idle(wq);
	pthread_mutex_unlock(&wq->lock);
	if (w)
		pthread_cond_signal(&w->wake_cond);
}

/* Wakes every sleeping worker and every waiting submitter.  Lock held. */
static void wq_wake_all(struct workqueue *wq)
{
	struct wq_worker *w;

	while ((w = wq_pop_idle(wq)) != NULL)
		pthread_cond_signal(&w->wake_cond);
	pthread_cond_broadcast(&wq->space_cond);
}

/* After busy_lo moved: wakes wait_idle callers, if any.  The sequentially
 * consistent load pairs with their count; see the DESIGN note. */
static void wq_signal_idle_waiters(struct workqueue *wq)
{
	if (atomic_load(&wq->nidle_waiters)) {
		pthread_mutex_lock(&wq->lock);
		pthread_cond_broadcast(&wq->idle_cond);
		pthread_mutex_unlock(&wq->lock);
	}
}

/*
 * Takes up to @max ready jobs into @batch for @w, which holds no batch;
 * with @share, leaves the other workers their share of what is ready, so
 * that jobs do not sit behind a long one while another worker idles.
 * Returns the number taken.
 */
static unsigned int wq_take(struct workqueue *wq, struct wq_worker *w,
			    struct wq_job *batch, unsigned int max, int share)
{
	uint64_t h = LOAD(wq->head), n, ready;

	for (;;) {
		ready = 0;
		while (ready < max && LOAD_ACQ(wq->ring[(h + ready) &
		       wq->mask].seq) == h + ready + 1)
			ready++;
		if (ready == 0) {
			/* Idle: the batch held before is finished. */
			if (LOAD(w->busy_lo) != WQ_NONE) {
				atomic_store(&w->busy_lo, WQ_NONE);
				wq_signal_idle_waiters(wq);
			}
			return 0;
		}
		n = ready;
		/* Counting sleepers too: a sleeper is being woken for
		 * the job it would otherwise find taken. */
		if (share && n > 1 && wq->nthreads > 1)
			n = (n + wq->nthreads - 1) / wq->nthreads;
		/* Before the CAS (a release), so that wait_idle never sees
		 * head past a job without seeing who holds it.  Moving
		 * busy_lo on also says the batch held before finished. */
		STORE_REL(w->busy_lo, h);
		if (atomic_compare_exchange_weak(&wq->head, &h, h + n))
			break;
	}
	wq_signal_idle_waiters(wq);
	for (uint64_t i = 0; i < n; i++) {
		struct wq_slot *s = &wq->ring[(h + i) & wq->mask];

		batch[i] = (struct wq_job){ s->fn, s->cancel, s->arg };
		STORE_REL(s->seq, h + i + wq->mask + 1);
	}
	/* The depth only grows between takes, so the depth seen here is the
	 * peak since the last take; counting ready slots avoids reading the
	 * producers' cache line unless the scan stopped at @max. */
	wq_raise_high_water(wq, ready < max ? ready :
			    (LOAD(wq->tail) & ~WQ_CLOSED) - h);

	/*
	 * An RMW rather than a load: either it comes after a blocked
	 * submitter's increment and sees it, or the submitter's increment
	 * reads from it and so sees the slots freed above.  (A fence would
	 * do, but TSan does not support fences.)
	 */
	if (atomic_fetch_add(&wq->nspace_waiters, 0)) {
		pthread_mutex_lock(&wq->lock);
		pthread_cond_broadcast(&wq->space_cond);
		pthread_mutex_unlock(&wq->lock);
	}
	return (unsigned int)n;
}

/* Counts a finished batch of @w; its next take tells wait_idle. */
static void wq_finish(struct workqueue *wq, struct wq_worker *w,
		      unsigned int ran, unsigned int cancelled)
{
	if (ran)
		STORE_REL(w->completed, LOAD(w->completed) + ran);
	if (cancelled)
		STORE_REL(w->cancelled, LOAD(w->cancelled) + cancelled);
}

/*
 * Runs (or, once the pool is cancelling, cancels) the @n jobs of @batch.
 * Counts the cancelled ones into *@cancelled; returns the number run.
 */
static unsigned int wq_run_batch(struct workqueue *wq,
				 const struct wq_job *batch, unsigned int n,
				 unsigned int *cancelled)
{
	unsigned int ran = 0;

	*cancelled = 0;
	for (unsigned int i = 0; i < n; i++) {
		if (LOAD(wq->state) == WQ_CANCELLING) {
			if (batch[i].cancel)
				batch[i].cancel(batch[i].arg);
			(*cancelled)++;
		} else {
			batch[i].fn(batch[i].arg);
			ran++;
		}
	}
	return ran;
}

/* Sleeps until a submit or shutdown wakes @w, unless work or shutdown
 * arrived meanwhile. */
static void wq_sleep(struct workqueue *wq, struct wq_worker *w)
{
	pthread_mutex_lock(&wq->lock);
	wq->idle[LOAD(wq->nidle)] = w->index;
	w->woken = 0;
	/* Count first, then re-check: see the DESIGN note. */
	atomic_fetch_add(&wq->nidle, 1);
	if (wq_ready(wq) || LOAD(wq->state) != WQ_RUNNING) {
		atomic_store(&wq->nidle, LOAD(wq->nidle) - 1);
		pthread_mutex_unlock(&wq->lock);
		return;
	}
	while (!w->woken)
		pthread_cond_wait(&w->wake_cond, &wq->lock);
	pthread_mutex_unlock(&wq->lock);
}

static void *wq_worker_main(void *p)
{
	struct wq_worker *w = p;
	struct workqueue *wq = w->wq;
	struct wq_job batch[WQ_BATCH];
	char name[16];

	wq_current = wq;
	snprintf(name, sizeof(name), "%.10s-%u", wq->name, w->index % 10000);
	pthread_setname_np(pthread_self(), name);

	for (;;) {
		unsigned int n = wq_take(wq, w, batch, WQ_BATCH, 1);
		unsigned int ran, cancelled;

		if (n) {
			ran = wq_run_batch(wq, batch, n, &cancelled);
			wq_finish(wq, w, ran, cancelled);
			continue;
		}
		if (atomic_load(&wq->state) != WQ_RUNNING) {
			if (wq_drained(wq))
				break;
			sched_yield();	/* a producer is mid-publish */
			continue;
		}
		for (int i = 0; i < WQ_SPIN && !wq_ready(wq) &&
		     LOAD(wq->state) == WQ_RUNNING; i++)
			wq_cpu_relax();
		if (!wq_ready(wq))
			wq_sleep(wq, w);
	}
	return NULL;
}

/*
 * Reserves a slot and publishes the job: 0, -EAGAIN when full (or a slot
 * not yet handed back), -ESHUTDOWN.  Does not wake anyone.
 */
static int wq_push(struct workqueue *wq, const struct wq_job *job, int own)
{
	uint64_t t = LOAD(wq->tail), pos, seq;
	struct wq_slot *s;

	for (;;) {
		if ((t & WQ_CLOSED) &&
		    !(own && atomic_load(&wq->state) == WQ_DRAINING))
			return -ESHUTDOWN;
		pos = t & ~WQ_CLOSED;
		if (pos - LOAD(wq->head_seen) >= wq->capacity) {
			uint64_t h = atomic_load(&wq->head);

			STORE(wq->head_seen, h);
			if (pos - h >= wq->capacity)
				return -EAGAIN;
		}
		s = &wq->ring[pos & wq->mask];
		seq = LOAD_ACQ(s->seq);
		if (seq < pos)
			return -EAGAIN;
		if (seq > pos) {
			t = LOAD(wq->tail);
			continue;
		}
		if (atomic_compare_exchange_weak(&wq->tail, &t, t + 1))
			break;
	}
	s->fn = job->fn;
	s->cancel = job->cancel;
	s->arg = job->arg;
	/* Sequentially consistent: pairs with the re-check in wq_sleep(). */
	atomic_store(&s->seq, pos + 1);
	return 0;
}

/* Runs @job on this thread for a job of @wq submitting into its own full
 * pool. */
static int wq_run_inline(struct workqueue *wq, const struct wq_job *job)
{
	atomic_fetch_add_explicit(&wq->inline_runs, 1, memory_order_relaxed);
	job->fn(job->arg);
	atomic_fetch_add_explicit(&wq->inline_done, 1, memory_order_relaxed);
	return 0;
}

static int wq_reject(struct workqueue *wq, int err)
{
	atomic_fetch_add_explicit(&wq->rejected, 1, memory_order_relaxed);
	return err;
}

/*
 * The blocking part of a submit: waits for room, for ever if @timeout_ms is
 * 0, else for at most @timeout_ms.
 */
static int wq_submit_slow(struct workqueue *wq, const struct wq_job *job,
			  unsigned int timeout_ms)
{
	struct timespec ts;
	int err, timed_out = 0;

	if (timeout_ms)
		wq_deadline(&ts, timeout_ms);
	pthread_mutex_lock(&wq->lock);
	/* Pairs with the RMW in wq_take(). */
	atomic_fetch_add(&wq->nspace_waiters, 1);
	while ((err = wq_push(wq, job, 0)) == -EAGAIN && !timed_out) {
		if (timeout_ms == 0)
			pthread_cond_wait(&wq->space_cond, &wq->lock);
		else if (pthread_cond_timedwait(&wq->space_cond, &wq->lock,
						&ts) == ETIMEDOUT)
			timed_out = 1;
	}
	atomic_fetch_sub(&wq->nspace_waiters, 1);
	pthread_mutex_unlock(&wq->lock);
	return err == -EAGAIN ? -ETIMEDOUT : err;
}

/*
 * The three submits.  While the ring is full: with @wait unset fail with
 * -EAGAIN; otherwise wait, for ever if @timeout_ms is 0, else for at most
 * @timeout_ms, then fail with -ETIMEDOUT.
 */
static int wq_submit(struct workqueue *wq, workqueue_fn *fn, void *arg,
		     workqueue_fn *cancel, int wait, unsigned int timeout_ms)
{
	struct wq_job job = { fn, cancel, arg };
	int err, own;

	if (!wq || !fn)
		return -EINVAL;
	own = wq_current == wq;
	err = wq_push(wq, &job, own);
	if (err == -EAGAIN && wait) {
		if (own)
			return wq_run_inline(wq, &job);
		err = wq_submit_slow(wq, &job, timeout_ms);
	}
	if (err)
		return wq_reject(wq, err);
	wq_wake_one(wq);
	return 0;
}

int workqueue_submit(struct workqueue *wq, workqueue_fn *fn, void *arg,
		     workqueue_fn *cancel)
{
	return wq_submit(wq, fn, arg, cancel, 1, 0);
}

int workqueue_try_submit(struct workqueue *wq, workqueue_fn *fn, void *arg,
			 workqueue_fn *cancel)
{
	return wq_submit(wq, fn, arg, cancel, 0, 0);
}

int workqueue_submit_timeout(struct workqueue *wq, workqueue_fn *fn,
			     void *arg, workqueue_fn *cancel,
			     unsigned int timeout_ms)
{
	int err;

	if (timeout_ms)
		return wq_submit(wq, fn, arg, cancel, 1, timeout_ms);
	err = wq_submit(wq, fn, arg, cancel, 0, 0);
	return err == -EAGAIN ? -ETIMEDOUT : err;
}

/* True once every job at a position below @pos finished. */
static int wq_done_before(struct workqueue *wq, uint64_t pos)
{
	if (atomic_load(&wq->head) < pos)
		return 0;
	for (unsigned int i = 0; i <= wq->nthreads; i++)
		if (atomic_load(&wq->workers[i].busy_lo) < pos)
			return 0;
	return 1;
}

/* wait_idle for ever (@timed unset) or for at most @timeout_ms. */
static int wq_wait_idle(struct workqueue *wq, int timed,
			unsigned int timeout_ms)
{
	struct timespec ts;
	uint64_t pos;
	int err = 0;

	if (!wq)
		return -EINVAL;
	if (wq_current == wq)
		return -EDEADLK;
	pos = atomic_load(&wq->tail) & ~WQ_CLOSED;
	for (int i = 0; i < WQ_WAIT_SPIN; i++) {
		if (wq_done_before(wq, pos))
			return 0;
		wq_cpu_relax();
	}
	if (timed)
		wq_deadline(&ts, timeout_ms);
	pthread_mutex_lock(&wq->lock);
	atomic_fetch_add(&wq->nidle_waiters, 1);
	while (!wq_done_before(wq, pos) && err == 0) {
		if (!timed)
			pthread_cond_wait(&wq->idle_cond, &wq->lock);
		else if (pthread_cond_timedwait(&wq->idle_cond, &wq->lock,
						&ts) == ETIMEDOUT)
			err = wq_done_before(wq, pos) ? 0 : -ETIMEDOUT;
	}
	atomic_fetch_sub(&wq->nidle_waiters, 1);
	pthread_mutex_unlock(&wq->lock);
	return err;
}

int workqueue_wait_idle(struct workqueue *wq)
{
	return wq_wait_idle(wq, 0, 0);
}

int workqueue_wait_idle_timeout(struct workqueue *wq, unsigned int timeout_ms)
{
	return wq_wait_idle(wq, 1, timeout_ms);
}

/* Cancels every queued job from the calling thread, using the spare worker
 * slot.  Lock held; dropped while callbacks run. */
static void wq_cancel_queue(struct workqueue *wq)
{
	struct wq_worker *w = &wq->workers[wq->nthreads];
	struct wq_job batch[WQ_BATCH];
	unsigned int n;

	pthread_mutex_unlock(&wq->lock);
	while (!wq_drained(wq)) {
		n = wq_take(wq, w, batch, WQ_BATCH, 0);
		for (unsigned int i = 0; i < n; i++)
			if (batch[i].cancel)
				batch[i].cancel(batch[i].arg);
		if (n)
			wq_finish(wq, w, 0, n);
		else
			sched_yield();	/* a producer is mid-publish */
	}
	/* Tells wait_idle that the last batch is done. */
	wq_take(wq, w, batch, WQ_BATCH, 0);
	pthread_mutex_lock(&wq->lock);
}

/* Joins the first @n workers.  Lock not held. */
static void wq_join(struct workqueue *wq, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		pthread_join(wq->workers[i].thread, NULL);
}

/* Moves the state on and closes tail to outsiders.  Lock held. */
static void wq_close(struct workqueue *wq, int state)
{
	atomic_store(&wq->state, state);
	atomic_fetch_or(&wq->tail, WQ_CLOSED);
	wq_wake_all(wq);
}

int workqueue_shutdown(struct workqueue *wq,
		       enum workqueue_shutdown_mode mode)
{
	int state;

	if (!wq || (mode != WORKQUEUE_DRAIN && mode != WORKQUEUE_CANCEL))
		return -EINVAL;
	if (wq_current == wq)
		return -EDEADLK;
	pthread_mutex_lock(&wq->lock);
	state = LOAD(wq->state);
	if (mode == WORKQUEUE_CANCEL && state != WQ_CANCELLING) {
		wq_close(wq, WQ_CANCELLING);
		wq_cancel_queue(wq);
	} else if (state == WQ_RUNNING) {
		wq_close(wq, WQ_DRAINING);
	}
	if (!wq->join_started) {
		wq->join_started = 1;
		pthread_mutex_unlock(&wq->lock);
		wq_join(wq, wq->nstarted);
		pthread_mutex_lock(&wq->lock);
		wq->nstarted = 0;
		wq->joined = 1;
		pthread_cond_broadcast(&wq->joined_cond);
	}
	while (!wq->joined)
		pthread_cond_wait(&wq->joined_cond, &wq->lock);
	pthread_mutex_unlock(&wq->lock);
	return 0;
}

/*
 * Frees what workqueue_new() set up: the first @nsync of lock, space_cond,
 * idle_cond and joined_cond, and @nconds worker condvars.  No thread runs.
 */
static void wq_release(struct workqueue *wq, int nsync, unsigned int nconds)
{
	for (unsigned int i = 0; i < nconds; i++)
		pthread_cond_destroy(&wq->workers[i].wake_cond);
	if (nsync > 3)
		pthread_cond_destroy(&wq->joined_cond);
	if (nsync > 2)
		pthread_cond_destroy(&wq->idle_cond);
	if (nsync > 1)
		pthread_cond_destroy(&wq->space_cond);
	if (nsync > 0)
		pthread_mutex_destroy(&wq->lock);
	free(wq->idle);
	free(wq->workers);
	free(wq->ring);
	free(wq);
}

int workqueue_free(struct workqueue *wq)
{
	int err;

	if (!wq)
		return 0;
	err = workqueue_shutdown(wq, WORKQUEUE_DRAIN);
	if (err)
		return err;
	wq_release(wq, 4, wq->nthreads + 1);
	return 0;
}

int workqueue_get_stats(struct workqueue *wq, struct workqueue_stats *st)
{
	uint64_t done = 0, cancelled = 0, head, tail, inl_done, inl_runs;

	if (!wq || !st)
		return -EINVAL;
	/* Completions before head before tail: see the DESIGN note. */
	inl_done = atomic_load(&wq->inline_done);
	for (unsigned int i = 0; i <= wq->nthreads; i++) {
		done += atomic_load(&wq->workers[i].completed);
		cancelled += atomic_load(&wq->workers[i].cancelled);
	}
	/* head again after tail: if it did not move, tail - head was the
	 * depth at one instant, so it never exceeds the capacity. */
	head = atomic_load(&wq->head);
	for (int tries = 0;; tries++) {
		uint64_t again;

		tail = atomic_load(&wq->tail) & ~WQ_CLOSED;
		again = atomic_load(&wq->head);
		if (again == head || tries == 1000)
			break;
		head = again;
	}
	inl_runs = atomic_load(&wq->inline_runs);
	wq_raise_high_water(wq, tail - head);

	st->submitted = tail + inl_runs;
	st->completed = done + inl_done;
	st->cancelled = cancelled;
	st->rejected = atomic_load(&wq->rejected);
	st->queued = tail - head;
	st->running = head - done - cancelled + inl_runs - inl_done;
	st->high_water = atomic_load(&wq->high_water);
	pthread_mutex_lock(&wq->lock);
	st->threads = wq->nstarted;
	pthread_mutex_unlock(&wq->lock);
	return 0;
}

/* Condvars on CLOCK_MONOTONIC, so that timeouts ignore clock changes. */
static int wq_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int err;

	err = pthread_condattr_init(&attr);
	if (err)
		return err;
	err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return err;
}

/* Checks @opts and fills in the defaults; returns 0 or -EINVAL. */
static int wq_apply_options(struct workqueue *wq,
			    const struct workqueue_options *opts)
{
	unsigned int threads = opts ? opts->threads : 0;
	size_t capacity = opts ? opts->capacity : 0;
	const char *name = opts && opts->name ? opts->name : "wq";
	uint64_t size = 2;	/* with 1 slot, "ready" and "free" would
				   share a sequence number */

	if (threads == 0) {
		int n = cpus_usable();

		threads = n > WORKQUEUE_MAX_THREADS ? WORKQUEUE_MAX_THREADS :
			(unsigned int)n;
	}
	if (threads > WORKQUEUE_MAX_THREADS)
		return -EINVAL;
	if (capacity == 0)
		capacity = WORKQUEUE_DEFAULT_CAPACITY;
	if (capacity > WORKQUEUE_MAX_CAPACITY)
		return -EINVAL;
	while (size < capacity)
		size <<= 1;
	wq->nthreads = threads;
	wq->capacity = capacity;
	wq->mask = size - 1;
	snprintf(wq->name, sizeof(wq->name), "%s", name);
	return 0;
}

/* Zeroed memory aligned to a cache line, or NULL. */
static void *wq_zalloc(size_t size)
{
	void *p;

	size = (size + WQ_CACHELINE - 1) & ~(size_t)(WQ_CACHELINE - 1);
	p = aligned_alloc(WQ_CACHELINE, size);
	if (p)
		memset(p, 0, size);
	return p;
}

int workqueue_new(struct workqueue **wqp,
		  const struct workqueue_options *opts)
{
	struct workqueue *wq;
	pthread_mutexattr_t mattr;
	sigset_t all, old;
	unsigned int nconds = 0;
	int nsync = 0, err;

	if (!wqp)
		return -EINVAL;
	wq = wq_zalloc(sizeof(*wq));
	if (!wq)
		return -ENOMEM;
	err = wq_apply_options(wq, opts);
	if (err)
		goto fail;
	err = -ENOMEM;
	wq->ring = wq_zalloc((wq->mask + 1) * sizeof(*wq->ring));
	wq->workers = wq_zalloc((wq->nthreads + 1) * sizeof(*wq->workers));
	wq->idle = calloc(wq->nthreads, sizeof(*wq->idle));
	if (!wq->ring || !wq->workers || !wq->idle)
		goto fail;
	for (uint64_t i = 0; i <= wq->mask; i++)
		atomic_init(&wq->ring[i].seq, i);

	if ((err = -pthread_mutexattr_init(&mattr)) != 0)
		goto fail;
	err = -pthread_mutex_init(&wq->lock, &mattr);
	pthread_mutexattr_destroy(&mattr);
	if (err)
		goto fail;
	nsync++;
	if ((err = -wq_cond_init(&wq->space_cond)) != 0)
		goto fail;
	nsync++;
	if ((err = -wq_cond_init(&wq->idle_cond)) != 0)
		goto fail;
	nsync++;
	if ((err = -wq_cond_init(&wq->joined_cond)) != 0)
		goto fail;
	nsync++;
	for (; nconds <= wq->nthreads; nconds++) {
		struct wq_worker *w = &wq->workers[nconds];

		w->wq = wq;
		w->index = nconds;
		atomic_init(&w->busy_lo, WQ_NONE);
		if ((err = -pthread_cond_init(&w->wake_cond, NULL)) != 0)
			goto fail;
	}

	/* Workers inherit the creator's signal mask: block everything. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; wq->nstarted < wq->nthreads; wq->nstarted++) {
		struct wq_worker *w = &wq->workers[wq->nstarted];

		err = -pthread_create(&w->thread, NULL, wq_worker_main, w);
		if (err)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		goto fail;
	*wqp = wq;
	return 0;

fail:
	if (wq->nstarted) {
		/* The ring is empty, so started threads leave at once. */
		pthread_mutex_lock(&wq->lock);
		wq_close(wq, WQ_DRAINING);
		pthread_mutex_unlock(&wq->lock);
		wq_join(wq, wq->nstarted);
	}
	wq_release(wq, nsync, nconds);
	return err;
}
