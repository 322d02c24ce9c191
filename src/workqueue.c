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
 * The queue is a ring of struct wq_job (no malloc per job) indexed by two
 * monotonic 64-bit counters, head and tail, so a job's position is also its
 * sequence number.  One mutex guards the ring, the counters and the stats.
 * Speed on a small machine comes from touching that lock and the futexes as
 * rarely as possible:
 *   - a worker takes up to WQ_BATCH jobs per lock acquisition, copies them
 *     out (freeing their slots at once) and runs them unlocked;
 *   - a worker with nothing to do spins for a little while, reading head and
 *     tail without the lock, before it goes to sleep;
 *   - sleepers wait on their own condvar and sit on an idle stack; a submit
 *     wakes exactly one of them, and only if one is asleep;
 *   - submitters waiting for room and wait_idle callers are counted, and are
 *     only signalled when there are some.
 *
 * wait_idle.  A caller notes tail, the sequence number of the next job.  It
 * is done when head has passed it and no worker still holds a batch that
 * started before it (each worker publishes the first sequence number of the
 * batch it holds in busy_lo).  Jobs accepted after the call therefore never
 * delay it, however busy the pool is.
 *
 * Shutdown.  state goes RUNNING -> DRAINING or CANCELLING (DRAINING may then
 * become CANCELLING), under the lock, and never back.  A worker leaves when
 * the state is not RUNNING and the ring is empty.  In DRAINING only a pool's
 * own threads may still submit, and a thread leaves only with the ring empty
 * after its last job, so jobs submitted by jobs always run.  The caller that
 * moves the state to CANCELLING empties the ring calling cancel callbacks,
 * and workers check the state before each job of a batch they hold, so no
 * job starts after the cancel.
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

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Jobs a worker takes per lock acquisition. */
#define WQ_BATCH 64
/* Polls of an empty queue before a worker sleeps: tens of microseconds. */
#define WQ_SPIN 4000
/* busy_lo of a worker that holds no batch. */
#define WQ_NONE UINT64_MAX

enum wq_state {
	WQ_RUNNING,
	WQ_DRAINING,
	WQ_CANCELLING
};

struct wq_job {
	workqueue_fn *fn;
	workqueue_fn *cancel;
	void *arg;
};

struct wq_worker {
	struct workqueue *wq;
	pthread_t thread;
	pthread_cond_t wake_cond;	/* signalled with woken set */
	uint64_t busy_lo;		/* first seq of the batch held */
	unsigned int index;
	int woken;
};

struct workqueue {
	pthread_mutex_t lock;

	/* The ring.  head and tail are written under the lock but read
	 * without it by spinning workers, hence atomics. */
	struct wq_job *ring;
	uint64_t mask;			/* ring size - 1 (a power of two) */
	uint64_t capacity;		/* jobs allowed in the ring */
	_Atomic uint64_t head;		/* next seq to take */
	_Atomic uint64_t tail;		/* next seq to give */
	_Atomic int state;		/* enum wq_state */

	/* Workers; workers[nthreads] is a slot for the thread that cancels
	 * the queue, so that wait_idle sees the batches it holds too. */
	struct wq_worker *workers;
	unsigned int nthreads;
	unsigned int nstarted;		/* threads not yet joined */
	unsigned int *idle;		/* stack of sleeping worker indexes */
	unsigned int nidle;

	pthread_cond_t space_cond;	/* the ring has room, or shutdown */
	unsigned int nspace_waiters;
	pthread_cond_t idle_cond;	/* a batch finished */
	unsigned int nidle_waiters;
	pthread_cond_t joined_cond;	/* the threads are joined */
	int join_started;
	int joined;

	uint64_t submitted, completed, cancelled, rejected;
	uint64_t running, high_water;

	char name[16];
};

/* The pool whose job this thread is running, if any. */
static _Thread_local struct workqueue *wq_current;

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

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

/* Pops a sleeping worker and marks it woken; the caller signals it after
 * unlocking.  Lock held. */
static struct wq_worker *wq_pop_idle(struct workqueue *wq)
{
	struct wq_worker *w;

	if (wq->nidle == 0)
		return NULL;
	w = &wq->workers[wq->idle[--wq->nidle]];
	w->woken = 1;
	return w;
}

/* Wakes every sleeping worker and every waiting submitter.  Lock held. */
static void wq_wake_all(struct workqueue *wq)
{
	struct wq_worker *w;

	while ((w = wq_pop_idle(wq)) != NULL)
		pthread_cond_signal(&w->wake_cond);
	if (wq->nspace_waiters)
		pthread_cond_broadcast(&wq->space_cond);
}

/*
 * Moves up to @max jobs from the ring into @batch for @w, which must hold no
 * batch.  Lock held; returns the number taken.
 */
static unsigned int wq_take(struct workqueue *wq, struct wq_worker *w,
			    struct wq_job *batch, unsigned int max)
{
	uint64_t head = LOAD(wq->head), tail = LOAD(wq->tail);
	uint64_t n = tail - head;

	/* Leave a share for the other awake threads, so that a batch of
	 * long jobs does not sit behind one of them while another idles. */
	if (n > 1 && wq->nthreads > 1) {
		uint64_t awake = wq->nthreads - wq->nidle;

		if (awake > 1)
			n = (n + awake - 1) / awake;
	}
	if (n > max)
		n = max;
	for (uint64_t i = 0; i < n; i++)
		batch[i] = wq->ring[(head + i) & wq->mask];
	if (n) {
		w->busy_lo = head;
		STORE(wq->head, head + n);
		wq->running += n;
		if (wq->nspace_waiters) {
			if (n == 1)
				pthread_cond_signal(&wq->space_cond);
			else
				pthread_cond_broadcast(&wq->space_cond);
		}
	}
	return (unsigned int)n;
}

/* Accounts for a finished batch of @w.  Lock held. */
static void wq_finish(struct workqueue *wq, struct wq_worker *w,
		      unsigned int ran, unsigned int cancelled)
{
	wq->completed += ran;
	wq->cancelled += cancelled;
	wq->running -= ran + cancelled;
	w->busy_lo = WQ_NONE;
	if (wq->nidle_waiters)
		pthread_cond_broadcast(&wq->idle_cond);
}

/*
 * Runs (or, once the pool is cancelling, cancels) the @n jobs of @batch,
 * unlocked.  Counts the cancelled ones into *@cancelled; returns the number
 * run.
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

/* True once the ring is empty without the lock; for spinning. */
static int wq_seems_empty(struct workqueue *wq)
{
	return LOAD(wq->head) == LOAD(wq->tail);
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

	pthread_mutex_lock(&wq->lock);
	for (;;) {
		unsigned int n = wq_take(wq, w, batch, WQ_BATCH);
		unsigned int ran, cancelled;

		if (n) {
			pthread_mutex_unlock(&wq->lock);
			ran = wq_run_batch(wq, batch, n, &cancelled);
			pthread_mutex_lock(&wq->lock);
			wq_finish(wq, w, ran, cancelled);
			continue;
		}
		if (LOAD(wq->state) != WQ_RUNNING)
			break;

		/* Spin a little: the next job usually comes soon, and a
		 * sleeping worker costs the submitter a futex wake. */
		pthread_mutex_unlock(&wq->lock);
		for (int i = 0; i < WQ_SPIN && wq_seems_empty(wq) &&
		     LOAD(wq->state) == WQ_RUNNING; i++)
			wq_cpu_relax();
		pthread_mutex_lock(&wq->lock);
		if (!wq_seems_empty(wq) || LOAD(wq->state) != WQ_RUNNING)
			continue;

		wq->idle[wq->nidle++] = w->index;
		w->woken = 0;
		while (!w->woken)
			pthread_cond_wait(&w->wake_cond, &wq->lock);
	}
	pthread_mutex_unlock(&wq->lock);
	return NULL;
}

/* Refuses a submit: counts it, unlocks, returns @err. */
static int wq_reject(struct workqueue *wq, int err)
{
	wq->rejected++;
	pthread_mutex_unlock(&wq->lock);
	return err;
}

/* Runs @fn(@arg) on this thread for a job of @wq submitting into its own
 * full pool.  Lock held on entry, released on return. */
static int wq_run_inline(struct workqueue *wq, workqueue_fn *fn, void *arg)
{
	wq->submitted++;
	wq->running++;
	pthread_mutex_unlock(&wq->lock);
	fn(arg);
	pthread_mutex_lock(&wq->lock);
	wq->completed++;
	wq->running--;
	pthread_mutex_unlock(&wq->lock);
	return 0;
}

/*
 * The three submits.  While the ring is full: with @wait unset fail with
 * @full_err; otherwise wait, for ever if @timeout_ms is 0, else for at most
 * @timeout_ms and then fail with @full_err.
 */
static int wq_submit(struct workqueue *wq, workqueue_fn *fn, void *arg,
		     workqueue_fn *cancel, int wait, unsigned int timeout_ms,
		     int full_err)
{
	struct wq_worker *w;
	struct timespec ts = { 0, 0 };
	int own, state, timed_out = 0;
	uint64_t tail, depth;

	if (!wq || !fn)
		return -EINVAL;
	own = wq_current == wq;
	pthread_mutex_lock(&wq->lock);
	for (;;) {
		state = LOAD(wq->state);
		if (state != WQ_RUNNING && !(state == WQ_DRAINING && own))
			return wq_reject(wq, -ESHUTDOWN);
		tail = LOAD(wq->tail);
		if (tail - LOAD(wq->head) < wq->capacity)
			break;
		if (!wait || timed_out)
			return wq_reject(wq, full_err);
		if (own)
			return wq_run_inline(wq, fn, arg);
		wq->nspace_waiters++;
		if (timeout_ms == 0) {
			pthread_cond_wait(&wq->space_cond, &wq->lock);
		} else {
			if (ts.tv_sec == 0 && ts.tv_nsec == 0)
				wq_deadline(&ts, timeout_ms);
			timed_out = pthread_cond_timedwait(&wq->space_cond,
					&wq->lock, &ts) == ETIMEDOUT;
		}
		wq->nspace_waiters--;
	}
	wq->ring[tail & wq->mask] = (struct wq_job){ fn, cancel, arg };
	STORE(wq->tail, tail + 1);
	wq->submitted++;
	depth = tail + 1 - LOAD(wq->head);
	if (depth > wq->high_water)
		wq->high_water = depth;
	w = wq_pop_idle(wq);
	pthread_mutex_unlock(&wq->lock);
	if (w)
		pthread_cond_signal(&w->wake_cond);
	return 0;
}

int workqueue_submit(struct workqueue *wq, workqueue_fn *fn, void *arg,
		     workqueue_fn *cancel)
{
	return wq_submit(wq, fn, arg, cancel, 1, 0, 0);
}

int workqueue_try_submit(struct workqueue *wq, workqueue_fn *fn, void *arg,
			 workqueue_fn *cancel)
{
	return wq_submit(wq, fn, arg, cancel, 0, 0, -EAGAIN);
}

int workqueue_submit_timeout(struct workqueue *wq, workqueue_fn *fn,
			     void *arg, workqueue_fn *cancel,
			     unsigned int timeout_ms)
{
	return wq_submit(wq, fn, arg, cancel, timeout_ms != 0, timeout_ms,
			 -ETIMEDOUT);
}

/* True once every job with a sequence number below @seq finished.  Lock
 * held. */
static int wq_done_before(struct workqueue *wq, uint64_t seq)
{
	if (LOAD(wq->head) < seq)
		return 0;
	for (unsigned int i = 0; i <= wq->nthreads; i++)
		if (wq->workers[i].busy_lo < seq)
			return 0;
	return 1;
}

/* wait_idle for ever (@timeout_ms 0) or for at most @timeout_ms. */
static int wq_wait_idle(struct workqueue *wq, int timed,
			unsigned int timeout_ms)
{
	struct timespec ts;
	uint64_t seq;
	int err = 0;

	if (!wq)
		return -EINVAL;
	if (wq_current == wq)
		return -EDEADLK;
	if (timed)
		wq_deadline(&ts, timeout_ms);
	pthread_mutex_lock(&wq->lock);
	seq = LOAD(wq->tail);
	wq->nidle_waiters++;
	while (!wq_done_before(wq, seq) && err == 0) {
		if (!timed)
			pthread_cond_wait(&wq->idle_cond, &wq->lock);
		else if (pthread_cond_timedwait(&wq->idle_cond, &wq->lock,
						&ts) == ETIMEDOUT)
			err = wq_done_before(wq, seq) ? 0 : -ETIMEDOUT;
	}
	wq->nidle_waiters--;
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

	while ((n = wq_take(wq, w, batch, WQ_BATCH)) > 0) {
		pthread_mutex_unlock(&wq->lock);
		for (unsigned int i = 0; i < n; i++)
			if (batch[i].cancel)
				batch[i].cancel(batch[i].arg);
		pthread_mutex_lock(&wq->lock);
		wq_finish(wq, w, 0, n);
	}
}

/* Joins the first @n workers.  Lock not held. */
static void wq_join(struct workqueue *wq, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		pthread_join(wq->workers[i].thread, NULL);
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
		STORE(wq->state, WQ_CANCELLING);
		wq_wake_all(wq);
		wq_cancel_queue(wq);
	} else if (state == WQ_RUNNING) {
		STORE(wq->state, WQ_DRAINING);
		wq_wake_all(wq);
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
	if (!wq || !st)
		return -EINVAL;
	pthread_mutex_lock(&wq->lock);
	st->submitted = wq->submitted;
	st->completed = wq->completed;
	st->cancelled = wq->cancelled;
	st->rejected = wq->rejected;
	st->queued = LOAD(wq->tail) - LOAD(wq->head);
	st->running = wq->running;
	st->high_water = wq->high_water;
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
	uint64_t size = 1;

	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n < 1 ? 1 : n > WORKQUEUE_MAX_THREADS ?
			WORKQUEUE_MAX_THREADS : (unsigned int)n;
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
	wq = calloc(1, sizeof(*wq));
	if (!wq)
		return -ENOMEM;
	err = wq_apply_options(wq, opts);
	if (err)
		goto fail;
	err = -ENOMEM;
	wq->ring = calloc(wq->mask + 1, sizeof(*wq->ring));
	wq->workers = calloc(wq->nthreads + 1, sizeof(*wq->workers));
	wq->idle = calloc(wq->nthreads, sizeof(*wq->idle));
	if (!wq->ring || !wq->workers || !wq->idle)
		goto fail;

	/* Adaptive: spin a little on a contended lock before sleeping,
	 * which suits the short critical sections here. */
	if ((err = -pthread_mutexattr_init(&mattr)) != 0)
		goto fail;
	pthread_mutexattr_settype(&mattr, PTHREAD_MUTEX_ADAPTIVE_NP);
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
		w->busy_lo = WQ_NONE;
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
		STORE(wq->state, WQ_DRAINING);
		wq_wake_all(wq);
		pthread_mutex_unlock(&wq->lock);
		wq_join(wq, wq->nstarted);
	}
	wq_release(wq, nsync, nconds);
	return err;
}
