/*
 * Tests of the work-queue library: one test case per promise the header
 * makes (exactly once, ownership on failure, backpressure, wait_idle, drain,
 * cancel, threads joined, create/destroy cycles, self-calls, independent
 * pools, a failing pthread_create, FIFO, stats).  Nothing sleeps to
 * synchronise: jobs block on gates, and the tests poll with deadlines.
 *
 * The binary is linked with --wrap=pthread_create and --wrap=pthread_join,
 * so that a test can make thread creation fail and count the joins.
 */
#include "testutil.h"
#include "workqueue/workqueue.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* --- wrapped pthread calls ----------------------------------------------- */

int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr,
			  void *(*start)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
			  void *(*start)(void *), void *arg);
int __real_pthread_join(pthread_t t, void **ret);
int __wrap_pthread_join(pthread_t t, void **ret);

/* Creations left before pthread_create fails with EAGAIN; -1: never. */
static atomic_int create_budget = -1;
static atomic_int threads_created, threads_joined;

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
			  void *(*start)(void *), void *arg)
{
	int err;

	if (atomic_load(&create_budget) == 0)
		return EAGAIN;
	if (atomic_load(&create_budget) > 0)
		atomic_fetch_sub(&create_budget, 1);
	err = __real_pthread_create(t, attr, start, arg);
	if (!err)
		atomic_fetch_add(&threads_created, 1);
	return err;
}

int __wrap_pthread_join(pthread_t t, void **ret)
{
	int err = __real_pthread_join(t, ret);

	if (!err)
		atomic_fetch_add(&threads_joined, 1);
	return err;
}

/* --- helpers ------------------------------------------------------------- */

/* Threads of this process, from /proc/self/task. */
static int task_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/*
 * The thread count to come back to.  A pool is started and freed first,
 * because sanitizers start a helper thread with the first pthread_create.
 */
static int task_base(void)
{
	struct workqueue_options o = { .threads = 1 };
	struct workqueue *wq = NULL;

	ck_assert_int_eq(workqueue_new(&wq, &o), 0);
	ck_assert_int_eq(workqueue_free(wq), 0);
	return task_count();
}

/* Polls until the process has @n threads or 5 s pass; returns the count.
 * An exited thread can linger in /proc for a moment after its join. */
static int wait_task_count(int n)
{
	uint64_t deadline = now_ms() + 5000;
	int c;

	while ((c = task_count()) != n && now_ms() < deadline)
		poll(NULL, 0, 1);
	return c;
}

static struct workqueue *pool_new(unsigned int threads, size_t capacity)
{
	struct workqueue_options o = { .threads = threads,
		.capacity = capacity, .name = "wqtest" };
	struct workqueue *wq = NULL;

	ck_assert_int_eq(workqueue_new(&wq, &o), 0);
	ck_assert_ptr_nonnull(wq);
	return wq;
}

static struct workqueue_stats pool_stats(struct workqueue *wq)
{
	struct workqueue_stats st;

	ck_assert_int_eq(workqueue_get_stats(wq, &st), 0);
	return st;
}

static void assert_stats_add_up(const struct workqueue_stats *st)
{
	ck_assert_uint_eq(st->submitted,
	    st->completed + st->cancelled + st->queued + st->running);
}

/*
 * A gate: jobs that run gate_job() report that they entered and block until
 * the test opens the gate (or 10 s pass, so a broken test cannot hang).
 */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int entered;
	int open;
};

static void gate_init(struct gate *g)
{
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->entered = 0;
	g->open = 0;
}

static void gate_job(void *arg)
{
	struct gate *g = arg;
	uint64_t deadline = now_ms() + 10000;

	pthread_mutex_lock(&g->lock);
	g->entered++;
	pthread_cond_broadcast(&g->cond);
	while (!g->open && now_ms() < deadline) {
		pthread_mutex_unlock(&g->lock);
		poll(NULL, 0, 1);	/* bounded by deadline */
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* Waits until @n jobs entered the gate; fails the test after 5 s. */
static void gate_wait_entered(struct gate *g, int n)
{
	uint64_t deadline = now_ms() + 5000;

	pthread_mutex_lock(&g->lock);
	while (g->entered < n && now_ms() < deadline) {
		pthread_mutex_unlock(&g->lock);
		poll(NULL, 0, 1);
		pthread_mutex_lock(&g->lock);
	}
	ck_assert_int_ge(g->entered, n);
	pthread_mutex_unlock(&g->lock);
}

/* Jobs that count into an array of per-job counters. */
struct tally {
	atomic_int *ran;
	atomic_int *cancelled;
	size_t n;
};

static struct tally tally;

static void tally_init(size_t n)
{
	tally.ran = calloc(n, sizeof(*tally.ran));
	tally.cancelled = calloc(n, sizeof(*tally.cancelled));
	tally.n = n;
	ck_assert_ptr_nonnull(tally.ran);
	ck_assert_ptr_nonnull(tally.cancelled);
}

static void tally_release(void)
{
	free(tally.ran);
	free(tally.cancelled);
}

/* The argument is the job's index, smuggled in the pointer. */
static void tally_run(void *arg)
{
	atomic_fetch_add(&tally.ran[(uintptr_t)arg], 1);
}

static void tally_cancel(void *arg)
{
	atomic_fetch_add(&tally.cancelled[(uintptr_t)arg], 1);
}

/* Polls until @fn(@arg) is true or 5 s pass. */
static int poll_until(int (*fn)(void *), void *arg)
{
	uint64_t deadline = now_ms() + 5000;

	while (!fn(arg)) {
		if (now_ms() >= deadline)
			return 0;
		poll(NULL, 0, 1);
	}
	return 1;
}

static void must_not_run(void *arg)
{
	ck_abort_msg("the pool touched the argument of a failed submit");
}

/* For a full pool: true once a submit from outside meets the shutdown
 * (-ESHUTDOWN) rather than the full queue (-EAGAIN). */
static int refuses_outside_submits(void *arg)
{
	int r = workqueue_try_submit(arg, must_not_run, NULL, must_not_run);

	ck_assert_msg(r == -ESHUTDOWN || r == -EAGAIN, "unexpected %d", r);
	return r == -ESHUTDOWN;
}

/* --- exactly once -------------------------------------------------------- */

struct producer {
	struct workqueue *wq;
	size_t first, count;
	atomic_int *accepted;
};

/* Submits jobs first..first+count-1, cycling through the three submits. */
static void *producer_main(void *p)
{
	struct producer *pr = p;

	for (size_t i = pr->first; i < pr->first + pr->count; i++) {
		void *arg = (void *)(uintptr_t)i;
		int r;

		switch (i % 3) {
		case 0:
			r = workqueue_submit(pr->wq, tally_run, arg,
					     tally_cancel);
			break;
		case 1:
			r = workqueue_try_submit(pr->wq, tally_run, arg,
						 tally_cancel);
			break;
		default:
			r = workqueue_submit_timeout(pr->wq, tally_run, arg,
						     tally_cancel, 1);
			break;
		}
		ck_assert_msg(r == 0 || r == -EAGAIN || r == -ETIMEDOUT ||
		    r == -ESHUTDOWN, "submit returned %d", r);
		atomic_store(&pr->accepted[i], r == 0);
	}
	return NULL;
}

static void run_producers(struct workqueue *wq, size_t per, int nprod,
			  atomic_int *accepted, pthread_t *threads,
			  struct producer *prs)
{
	for (int p = 0; p < nprod; p++) {
		prs[p] = (struct producer){ wq, (size_t)p * per, per,
			accepted };
		ck_assert_int_eq(pthread_create(&threads[p], NULL,
		    producer_main, &prs[p]), 0);
	}
}

START_TEST(test_workqueue_runs_each_accepted_job_exactly_once)
{
	size_t per = scaled(20000, 500), n = per * 4;
	atomic_int *accepted = calloc(n, sizeof(*accepted));
	struct workqueue *wq = pool_new(2, 16);
	struct producer prs[4];
	pthread_t threads[4];
	struct workqueue_stats st;
	uint64_t naccepted = 0;

	tally_init(n);
	run_producers(wq, per, 4, accepted, threads, prs);
	for (int p = 0; p < 4; p++)
		pthread_join(threads[p], NULL);
	ck_assert_int_eq(workqueue_wait_idle(wq), 0);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(tally.ran[i], accepted[i]);
		ck_assert_int_eq(tally.cancelled[i], 0);
		naccepted += (uint64_t)accepted[i];
	}
	st = pool_stats(wq);
	ck_assert_uint_eq(st.submitted, naccepted);
	ck_assert_uint_eq(st.completed, naccepted);
	ck_assert_uint_eq(st.rejected, n - naccepted);
	ck_assert_int_eq(workqueue_free(wq), 0);
	tally_release();
	free(accepted);
}
END_TEST

START_TEST(test_workqueue_runs_or_cancels_exactly_once_racing_cancel)
{
	size_t per = scaled(20000, 500), n = per * 2;
	atomic_int *accepted = calloc(n, sizeof(*accepted));
	struct workqueue *wq = pool_new(2, 64);
	struct producer prs[2];
	pthread_t threads[2];
	struct workqueue_stats st;
	uint64_t naccepted = 0, ncancelled = 0;

	tally_init(n);
	run_producers(wq, per, 2, accepted, threads, prs);
	/* Cancel while the producers are still going. */
	while (pool_stats(wq).submitted < per / 2)
		poll(NULL, 0, 1);
	ck_assert_int_eq(workqueue_shutdown(wq, WORKQUEUE_CANCEL), 0);
	for (int p = 0; p < 2; p++)
		pthread_join(threads[p], NULL);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(tally.ran[i] + tally.cancelled[i],
		    accepted[i]);
		naccepted += (uint64_t)accepted[i];
		ncancelled += (uint64_t)tally.cancelled[i];
	}
	st = pool_stats(wq);
	ck_assert_uint_eq(st.submitted, naccepted);
	ck_assert_uint_eq(st.cancelled, ncancelled);
	ck_assert_uint_eq(st.completed + st.cancelled, naccepted);
	ck_assert_int_eq(workqueue_free(wq), 0);
	tally_release();
	free(accepted);
}
END_TEST

/* --- ownership on failure ------------------------------------------------ */

START_TEST(test_workqueue_failed_submit_never_touches_the_argument)
{
	struct workqueue *wq = pool_new(1, 1);
	struct gate g;
	int *arg;

	tally_init(1);
	gate_init(&g);
	ck_assert_int_eq(workqueue_submit(wq, gate_job, &g, NULL), 0);
	gate_wait_entered(&g, 1);
	ck_assert_int_eq(workqueue_submit(wq, tally_run, (void *)0,
	    tally_cancel), 0);

	/* Full: each failure hands the argument back, so freeing it at once
	 * is legal, and ASan would catch a later touch. */
	arg = malloc(sizeof(*arg));
	ck_assert_int_eq(workqueue_try_submit(wq, must_not_run, arg,
	    must_not_run), -EAGAIN);
	free(arg);
	arg = malloc(sizeof(*arg));
	ck_assert_int_eq(workqueue_submit_timeout(wq, must_not_run, arg,
	    must_not_run, 5), -ETIMEDOUT);
	free(arg);
	ck_assert_int_eq(workqueue_submit(wq, NULL, NULL, must_not_run),
	    -EINVAL);

	/* Cancel what is queued, then refuse: neither the cancel nor the
	 * refusal may reach a refused argument. */
	gate_open(&g);
	ck_assert_int_eq(workqueue_shutdown(wq, WORKQUEUE_CANCEL), 0);
	arg = malloc(sizeof(*arg));
	ck_assert_int_eq(workqueue_submit(wq, must_not_run, arg,
	    must_not_run), -ESHUTDOWN);
	free(arg);
	ck_assert_uint_eq(pool_stats(wq).rejected, 3);
	ck_assert_int_eq(workqueue_free(wq), 0);
	ck_assert_int_eq(tally.ran[0] + tally.cancelled[0], 1);
	tally_release();
}
END_TEST

/* --- backpressure -------------------------------------------------------- */

struct blocked_submit {
	struct workqueue *wq;
	struct gate *gate;
	atomic_int returned;
	int result;
	int gate_was_open;
};

static void *blocked_submit_main(void *p)
{
	struct blocked_submit *bs = p;
	int r = workqueue_submit(bs->wq, tally_run, (void *)0, NULL);

	pthread_mutex_lock(&bs->gate->lock);
	bs->gate_was_open = bs->gate->open;
	pthread_mutex_unlock(&bs->gate->lock);
	bs->result = r;
	atomic_store(&bs->returned, 1);
	return NULL;
}

START_TEST(test_workqueue_full_queue_blocks_fails_or_times_out)
{
	struct workqueue *wq = pool_new(1, 4);
	struct blocked_submit bs = { .wq = wq };
	struct workqueue_stats st;
	struct gate g;
	uint64_t t0, deadline;
	pthread_t t;

	tally_init(1);
	gate_init(&g);
	bs.gate = &g;
	ck_assert_int_eq(workqueue_submit(wq, gate_job, &g, NULL), 0);
	gate_wait_entered(&g, 1);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(workqueue_try_submit(wq, tally_run,
		    (void *)0, NULL), 0);
	ck_assert_int_eq(workqueue_try_submit(wq, tally_run, (void *)0,
	    NULL), -EAGAIN);
	t0 = now_ms();
	ck_assert_int_eq(workqueue_submit_timeout(wq, tally_run, (void *)0,
	    NULL, 30), -ETIMEDOUT);
	ck_assert_uint_ge(now_ms() - t0, 29);

	/* A blocking submit stays blocked while the queue is full... */
	ck_assert_int_eq(pthread_create(&t, NULL, blocked_submit_main, &bs),
	    0);
	deadline = now_ms() + 100;
	while (now_ms() < deadline) {
		ck_assert_int_eq(atomic_load(&bs.returned), 0);
		poll(NULL, 0, 5);
	}
	st = pool_stats(wq);
	ck_assert_uint_eq(st.queued, 4);
	ck_assert_uint_eq(st.high_water, 4);
	ck_assert_uint_eq(st.rejected, 2);

	/* ...and goes through once there is room. */
	gate_open(&g);
	pthread_join(t, NULL);
	ck_assert_int_eq(bs.result, 0);
	ck_assert_int_eq(bs.gate_was_open, 1);
	ck_assert_int_eq(workqueue_wait_idle(wq), 0);
	ck_assert_int_eq(tally.ran[0], 5);
	ck_assert_int_eq(workqueue_free(wq), 0);
	tally_release();
}
END_TEST

START_TEST(test_workqueue_capacity_one_still_moves_every_job)
{
	struct workqueue *wq = pool_new(2, 1);
	size_t n = scaled(20000, 1000);

	tally_init(1);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(workqueue_submit(wq, tally_run, (void *)0,
		    NULL), 0);
	ck_assert_int_eq(workqueue_free(wq), 0);
	ck_assert_int_eq(tally.ran[0], (int)n);
	tally_release();
}
END_TEST

/* --- wait_idle ----------------------------------------------------------- */

static void store_job(void *arg)
{
	size_t *p = arg;

	/* A plain write: wait_idle must order it before the reader. */
	p[0] = p[1];
}

START_TEST(test_workqueue_wait_idle_sees_each_job_in_a_100k_loop)
{
	struct workqueue *wq = pool_new(2, 0);
	size_t n = scaled(100000, 2000);
	size_t cell[2] = { 0, 0 };

	for (size_t i = 1; i <= n; i++) {
		cell[1] = i;
		ck_assert_int_eq(workqueue_submit(wq, store_job, cell, NULL),
		    0);
		ck_assert_int_eq(workqueue_wait_idle(wq), 0);
		ck_assert_uint_eq(cell[0], i);
	}
	ck_assert_uint_eq(pool_stats(wq).completed, n);
	ck_assert_int_eq(workqueue_free(wq), 0);
}
END_TEST

START_TEST(test_workqueue_wait_idle_timeout_expires_while_a_job_runs)
{
	struct workqueue *wq = pool_new(1, 0);
	struct gate g;
	uint64_t t0;

	gate_init(&g);
	ck_assert_int_eq(workqueue_submit(wq, gate_job, &g, NULL), 0);
	t0 = now_ms();
	ck_assert_int_eq(workqueue_wait_idle_timeout(wq, 20), -ETIMEDOUT);
	ck_assert_uint_ge(now_ms() - t0, 19);
	gate_open(&g);
	ck_assert_int_eq(workqueue_wait_idle_timeout(wq, 5000), 0);
	ck_assert_int_eq(workqueue_wait_idle_timeout(wq, 0), 0);
	ck_assert_int_eq(workqueue_free(wq), 0);
}
END_TEST

struct late_submitter {
	struct workqueue *wq;
	pid_t waiter_tid;
	struct gate *first, *late;
};

/* True once thread @tid sleeps (state S in /proc). */
static int thread_sleeps(void *p)
{
	pid_t tid = *(pid_t *)p;
	char path[64], buf[256], *s;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	s = strrchr(buf, ')');
	return s && s[1] == ' ' && s[2] == 'S';
}

/* Once the main thread sleeps in wait_idle, submits a job that blocks on
 * the late gate, then lets the first job finish. */
static void *late_submitter_main(void *p)
{
	struct late_submitter *ls = p;

	ck_assert(poll_until(thread_sleeps, &ls->waiter_tid));
	ck_assert_int_eq(workqueue_submit(ls->wq, gate_job, ls->late, NULL),
	    0);
	gate_wait_entered(ls->late, 1);
	gate_open(ls->first);
	return NULL;
}

START_TEST(test_workqueue_wait_idle_ignores_jobs_accepted_after_the_call)
{
	struct workqueue *wq = pool_new(2, 0);
	struct gate first, late;
	struct late_submitter ls = { wq, (pid_t)syscall(SYS_gettid), &first,
		&late };
	pthread_t t;

	gate_init(&first);
	gate_init(&late);
	ck_assert_int_eq(workqueue_submit(wq, gate_job, &first, NULL), 0);
	gate_wait_entered(&first, 1);
	ck_assert_int_eq(pthread_create(&t, NULL, late_submitter_main, &ls),
	    0);
	ck_assert_int_eq(workqueue_wait_idle(wq), 0);
	/* The late job is still blocked: wait_idle did not wait for it. */
	pthread_mutex_lock(&late.lock);
	ck_assert_int_eq(late.open, 0);
	pthread_mutex_unlock(&late.lock);
	ck_assert_uint_eq(pool_stats(wq).running, 1);
	gate_open(&late);
	pthread_join(t, NULL);
	ck_assert_int_eq(workqueue_free(wq), 0);
}
END_TEST

/* --- drain --------------------------------------------------------------- */

struct spawner {
	struct workqueue *wq;
	size_t index;
	atomic_int result;
};

/* A job that submits a child job into its own pool. */
static void spawn_child(void *arg)
{
	struct spawner *sp = arg;

	atomic_store(&sp->result, workqueue_submit(sp->wq, tally_run,
	    (void *)(uintptr_t)sp->index, NULL));
}

struct shutdown_call {
	struct workqueue *wq;
	enum workqueue_shutdown_mode mode;
	int result;
};

static void *shutdown_main(void *p)
{
	struct shutdown_call *sc = p;

	sc->result = workqueue_shutdown(sc->wq, sc->mode);
	return NULL;
}

START_TEST(test_workqueue_drain_runs_every_queued_job_and_their_children)
{
	enum { N = 200 };
	struct workqueue *wq = pool_new(1, 2 * N);
	struct shutdown_call sc = { wq, WORKQUEUE_DRAIN, -1 };
	struct spawner sp[N];
	struct workqueue_stats st;
	struct gate g;
	pthread_t t;

	tally_init(2 * N);
	gate_init(&g);
	ck_assert_int_eq(workqueue_submit(wq, gate_job, &g, NULL), 0);
	gate_wait_entered(&g, 1);
	/* Fill the queue exactly: N jobs, each followed by a spawner. */
	for (size_t i = 0; i < N; i++) {
		sp[i] = (struct spawner){ wq, N + i, -1 };
		ck_assert_int_eq(workqueue_submit(wq, tally_run,
		    (void *)(uintptr_t)i, tally_cancel), 0);
		ck_assert_int_eq(workqueue_submit(wq, spawn_child, &sp[i],
		    NULL), 0);
	}
	ck_assert_int_eq(pthread_create(&t, NULL, shutdown_main, &sc), 0);

	/* Outside submits are refused while the queue still drains. */
	ck_assert(poll_until(refuses_outside_submits, wq));
	ck_assert_uint_eq(pool_stats(wq).queued, 2 * N);
	gate_open(&g);
	pthread_join(t, NULL);
	ck_assert_int_eq(sc.result, 0);

	for (size_t i = 0; i < N; i++) {
		ck_assert_int_eq(sp[i].result, 0);
		ck_assert_int_eq(tally.ran[i], 1);
		ck_assert_int_eq(tally.ran[N + i], 1);
		ck_assert_int_eq(tally.cancelled[i], 0);
	}
	st = pool_stats(wq);
	ck_assert_uint_eq(st.submitted, 1 + 2 * N + N);
	ck_assert_uint_eq(st.completed, st.submitted);
	ck_assert_uint_eq(st.threads, 0);
	ck_assert_int_eq(workqueue_free(wq), 0);
	tally_release();
}
END_TEST

START_TEST(test_workqueue_free_drains_queued_jobs)
{
	struct workqueue *wq = pool_new(2, 0);
	size_t n = 500;

	tally_init(1);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(workqueue_submit(wq, tally_run, (void *)0,
		    tally_cancel), 0);
	ck_assert_int_eq(workqueue_free(wq), 0);
	ck_assert_int_eq(tally.ran[0], (int)n);
	ck_assert_int_eq(tally.cancelled[0], 0);
	tally_release();
}
END_TEST

/* --- cancel -------------------------------------------------------------- */

START_TEST(test_workqueue_cancel_calls_each_cancel_once_and_runs_none)
{
	enum { N = 300 };
	struct workqueue *wq = pool_new(2, N);
	struct shutdown_call sc = { wq, WORKQUEUE_CANCEL, -1 };
	struct workqueue_stats st;
	struct gate g;
	pthread_t t;

	tally_init(N);
	gate_init(&g);
	/* Both workers blocked, so everything else stays queued. */
	ck_assert_int_eq(workqueue_submit(wq, gate_job, &g, NULL), 0);
	ck_assert_int_eq(workqueue_submit(wq, gate_job, &g, NULL), 0);
	gate_wait_entered(&g, 2);
	for (size_t i = 0; i < N; i++)
		ck_assert_int_eq(workqueue_submit(wq, tally_run,
		    (void *)(uintptr_t)i, i % 2 ? tally_cancel : NULL), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, shutdown_main, &sc), 0);
	ck_assert(poll_until(refuses_outside_submits, wq));
	gate_open(&g);
	pthread_join(t, NULL);
	ck_assert_int_eq(sc.result, 0);
	for (size_t i = 0; i < N; i++) {
		ck_assert_int_eq(tally.ran[i], 0);
		ck_assert_int_eq(tally.cancelled[i], i % 2 ? 1 : 0);
	}
	st = pool_stats(wq);
	ck_assert_uint_eq(st.cancelled, N);
	ck_assert_uint_eq(st.completed, 2);	/* the gate jobs */
	assert_stats_add_up(&st);
	ck_assert_int_eq(workqueue_free(wq), 0);
	tally_release();
}
END_TEST

START_TEST(test_workqueue_shutdown_is_idempotent_in_both_modes)
{
	struct workqueue *wq = pool_new(2, 0);
	struct shutdown_call sc[4];
	pthread_t t[4];

	ck_assert_int_eq(workqueue_shutdown(wq, WORKQUEUE_DRAIN), 0);
	ck_assert_int_eq(workqueue_shutdown(wq, WORKQUEUE_DRAIN), 0);
	ck_assert_int_eq(workqueue_shutdown(wq, WORKQUEUE_CANCEL), 0);
	ck_assert_int_eq(workqueue_shutdown(wq, WORKQUEUE_CANCEL), 0);
	ck_assert_int_eq(workqueue_shutdown(wq, 0), -EINVAL);
	ck_assert_int_eq(workqueue_free(wq), 0);

	/* Concurrent callers all return once the threads are joined. */
	wq = pool_new(2, 0);
	for (int i = 0; i < 4; i++) {
		sc[i] = (struct shutdown_call){ wq, i % 2 ? WORKQUEUE_CANCEL :
			WORKQUEUE_DRAIN, -1 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, shutdown_main,
		    &sc[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(sc[i].result, 0);
	}
	ck_assert_uint_eq(pool_stats(wq).threads, 0);
	ck_assert_int_eq(workqueue_free(wq), 0);
}
END_TEST

/* True once the cancel emptied the queue (the gate job still runs). */
static int all_cancelled(void *arg)
{
	struct workqueue_stats st = pool_stats(arg);

	return st.queued == 0 && st.running == 1;
}

START_TEST(test_workqueue_cancel_during_drain_cancels_what_is_left)
{
	enum { N = 100 };
	struct workqueue *wq = pool_new(1, N);
	struct shutdown_call drain = { wq, WORKQUEUE_DRAIN, -1 };
	struct shutdown_call cancel = { wq, WORKQUEUE_CANCEL, -1 };
	struct gate g;
	pthread_t t, t2;

	tally_init(N);
	gate_init(&g);
	ck_assert_int_eq(workqueue_submit(wq, gate_job, &g, NULL), 0);
	gate_wait_entered(&g, 1);
	for (size_t i = 0; i < N; i++)
		ck_assert_int_eq(workqueue_submit(wq, tally_run,
		    (void *)(uintptr_t)i, tally_cancel), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, shutdown_main, &drain),
	    0);
	ck_assert(poll_until(refuses_outside_submits, wq));
	ck_assert_int_eq(pthread_create(&t2, NULL, shutdown_main, &cancel),
	    0);
	ck_assert(poll_until(all_cancelled, wq));
	gate_open(&g);
	pthread_join(t2, NULL);
	pthread_join(t, NULL);
	ck_assert_int_eq(cancel.result, 0);
	ck_assert_int_eq(drain.result, 0);
	for (size_t i = 0; i < N; i++) {
		ck_assert_int_eq(tally.ran[i], 0);
		ck_assert_int_eq(tally.cancelled[i], 1);
	}
	ck_assert_int_eq(workqueue_free(wq), 0);
	tally_release();
}
END_TEST

/* --- threads ------------------------------------------------------------- */

START_TEST(test_workqueue_shutdown_joins_every_thread)
{
	int base = task_base();
	int created = atomic_load(&threads_created);
	int joined = atomic_load(&threads_joined);
	struct workqueue *wq = pool_new(3, 0);

	ck_assert_int_eq(atomic_load(&threads_created) - created, 3);
	ck_assert_int_eq(task_count(), base + 3);
	ck_assert_uint_eq(pool_stats(wq).threads, 3);
	ck_assert_int_eq(workqueue_shutdown(wq, WORKQUEUE_DRAIN), 0);
	ck_assert_int_eq(atomic_load(&threads_joined) - joined, 3);
	ck_assert_int_eq(wait_task_count(base), base);
	ck_assert_uint_eq(pool_stats(wq).threads, 0);
	ck_assert_int_eq(workqueue_free(wq), 0);
	ck_assert_int_eq(atomic_load(&threads_joined) - joined, 3);
}
END_TEST

static void read_comm(void *arg)
{
	char *name = arg;

	pthread_getname_np(pthread_self(), name, 16);
}

START_TEST(test_workqueue_threads_carry_the_name_prefix)
{
	struct workqueue_options o = { .threads = 1, .name = "resize" };
	struct workqueue *wq = NULL;
	char name[16] = "";

	ck_assert_int_eq(workqueue_new(&wq, &o), 0);
	ck_assert_int_eq(workqueue_submit(wq, read_comm, name, NULL), 0);
	ck_assert_int_eq(workqueue_wait_idle(wq), 0);
	ck_assert_str_eq(name, "resize-0");
	ck_assert_int_eq(workqueue_free(wq), 0);
}
END_TEST

START_TEST(test_workqueue_zero_threads_means_one_per_usable_cpu)
{
	struct workqueue *wq = NULL;
	cpu_set_t all, one;
	int cpu;

	ck_assert_int_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	ck_assert_int_eq(workqueue_new(&wq, NULL), 0);
	ck_assert_uint_eq(pool_stats(wq).threads,
	    (unsigned int)CPU_COUNT(&all));
	ck_assert_int_eq(workqueue_free(wq), 0);

	/* Under taskset or a cpuset: the mask, not the online CPUs.  Keep
	 * one CPU of the mask we were given, which need not hold CPU 0. */
	CPU_ZERO(&one);
	for (cpu = 0; !CPU_ISSET(cpu, &all); cpu++)
		;
	CPU_SET(cpu, &one);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	ck_assert_int_eq(workqueue_new(&wq, NULL), 0);
	ck_assert_uint_eq(pool_stats(wq).threads, 1);
	ck_assert_int_eq(workqueue_free(wq), 0);
	/* Restored, for CK_FORK=no runs. */
	ck_assert_int_eq(sched_setaffinity(0, sizeof(all), &all), 0);
}
END_TEST

/* --- create/destroy cycles ----------------------------------------------- */

START_TEST(test_workqueue_survives_10k_create_free_cycles_without_jobs)
{
	size_t n = scaled(10000, 200);
	int base = task_base();

	for (size_t i = 0; i < n; i++) {
		struct workqueue *wq = pool_new(2, 8);

		ck_assert_int_eq(workqueue_free(wq), 0);
	}
	ck_assert_int_eq(wait_task_count(base), base);
}
END_TEST

START_TEST(test_workqueue_survives_10k_create_free_cycles_with_jobs)
{
	size_t n = scaled(10000, 200);
	int base = task_base();

	tally_init(2);
	for (size_t i = 0; i < n; i++) {
		struct workqueue *wq = pool_new(2, 8);

		for (int j = 0; j < 3; j++)
			ck_assert_int_eq(workqueue_submit(wq, tally_run,
			    (void *)0, tally_cancel), 0);
		ck_assert_int_eq(workqueue_submit(wq, tally_run, (void *)1,
		    tally_cancel), 0);
		/* Alternate: free drains; cancel then free cancels. */
		if (i % 2)
			ck_assert_int_eq(workqueue_shutdown(wq,
			    WORKQUEUE_CANCEL), 0);
		ck_assert_int_eq(workqueue_free(wq), 0);
	}
	ck_assert_int_eq(tally.ran[0] + tally.cancelled[0], (int)(3 * n));
	ck_assert_int_eq(tally.ran[1] + tally.cancelled[1], (int)n);
	ck_assert_int_eq(wait_task_count(base), base);
	tally_release();
}
END_TEST

/* --- self-calls ---------------------------------------------------------- */

struct self_call {
	struct workqueue *wq;
	int wait, wait_timeout, shutdown, free;
	int try_full, submit_full, inline_ran_first;
	atomic_int order;		/* bumped by each job, in order */
	int child_order;
};

static void self_child(void *arg)
{
	struct self_call *sc = arg;

	sc->child_order = atomic_fetch_add(&sc->order, 1);
}

static void self_caller(void *arg)
{
	struct self_call *sc = arg;

	sc->wait = workqueue_wait_idle(sc->wq);
	sc->wait_timeout = workqueue_wait_idle_timeout(sc->wq, 10);
	sc->shutdown = workqueue_shutdown(sc->wq, WORKQUEUE_DRAIN);
	sc->free = workqueue_free(sc->wq);

	/* Fill the one slot, then a blocking submit must run inline. */
	ck_assert_int_eq(workqueue_try_submit(sc->wq, tally_run, (void *)0,
	    NULL), 0);
	sc->try_full = workqueue_try_submit(sc->wq, tally_run, (void *)0,
	    NULL);
	sc->submit_full = workqueue_submit(sc->wq, self_child, sc, NULL);
	sc->inline_ran_first = atomic_load(&sc->order) == 1;
}

START_TEST(test_workqueue_self_calls_fail_or_run_inline_not_deadlock)
{
	struct workqueue *wq = pool_new(1, 1);
	struct self_call sc = { .wq = wq };
	struct workqueue_stats st;

	tally_init(1);
	ck_assert_int_eq(workqueue_submit(wq, self_caller, &sc, NULL), 0);
	/* Twice: the job's own submits come after the first call. */
	ck_assert_int_eq(workqueue_wait_idle(wq), 0);
	ck_assert_int_eq(workqueue_wait_idle(wq), 0);
	ck_assert_int_eq(sc.wait, -EDEADLK);
	ck_assert_int_eq(sc.wait_timeout, -EDEADLK);
	ck_assert_int_eq(sc.shutdown, -EDEADLK);
	ck_assert_int_eq(sc.free, -EDEADLK);
	ck_assert_int_eq(sc.try_full, -EAGAIN);
	ck_assert_int_eq(sc.submit_full, 0);
	ck_assert_int_eq(sc.inline_ran_first, 1);
	ck_assert_int_eq(tally.ran[0], 1);
	st = pool_stats(wq);
	ck_assert_uint_eq(st.submitted, 3);
	ck_assert_uint_eq(st.completed, 3);
	ck_assert_uint_eq(st.threads, 1);	/* still running */
	ck_assert_int_eq(workqueue_free(wq), 0);
	tally_release();
}
END_TEST

/* --- independent pools --------------------------------------------------- */

struct cross {
	struct workqueue *other;
	int wait;
};

static void wait_other(void *arg)
{
	struct cross *c = arg;

	c->wait = workqueue_wait_idle(c->other);
}

START_TEST(test_workqueue_pools_do_not_affect_each_other)
{
	struct workqueue *a = pool_new(1, 4), *b = pool_new(1, 4);
	struct cross c = { b, -1 };
	struct gate g;

	tally_init(2);
	gate_init(&g);
	ck_assert_int_eq(workqueue_submit(a, gate_job, &g, NULL), 0);
	gate_wait_entered(&g, 1);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(workqueue_submit(a, tally_run, (void *)0,
		    tally_cancel), 0);

	/* a is stuck and full; b runs, waits and stops regardless. */
	ck_assert_int_eq(workqueue_try_submit(a, tally_run, (void *)0,
	    NULL), -EAGAIN);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(workqueue_submit(b, tally_run, (void *)1,
		    NULL), 0);
	ck_assert_int_eq(workqueue_wait_idle(b), 0);
	ck_assert_int_eq(tally.ran[1], 100);
	ck_assert_int_eq(tally.ran[0], 0);

	/* A job of b waiting for b is a self-call; waiting for a is not. */
	ck_assert_int_eq(workqueue_submit(b, wait_other, &c, NULL), 0);
	ck_assert_int_eq(workqueue_wait_idle(b), 0);
	ck_assert_int_eq(c.wait, -EDEADLK);
	c.other = a;
	gate_open(&g);
	ck_assert_int_eq(workqueue_submit(b, wait_other, &c, NULL), 0);
	ck_assert_int_eq(workqueue_wait_idle(b), 0);
	ck_assert_int_eq(c.wait, 0);
	ck_assert_int_eq(tally.ran[0], 4);

	ck_assert_int_eq(workqueue_shutdown(b, WORKQUEUE_CANCEL), 0);
	ck_assert_int_eq(workqueue_submit(a, tally_run, (void *)0, NULL), 0);
	ck_assert_int_eq(workqueue_free(a), 0);
	ck_assert_int_eq(tally.ran[0], 5);
	ck_assert_int_eq(workqueue_free(b), 0);
	tally_release();
}
END_TEST

/* --- a failing pthread_create -------------------------------------------- */

START_TEST(test_workqueue_failed_thread_start_leaves_no_thread_behind)
{
	int base = task_base();

	for (int budget = 0; budget < 4; budget++) {
		struct workqueue_options o = { .threads = 4 };
		struct workqueue *wq = (struct workqueue *)&o;
		int created = atomic_load(&threads_created);
		int joined = atomic_load(&threads_joined);

		atomic_store(&create_budget, budget);
		ck_assert_int_eq(workqueue_new(&wq, &o), -EAGAIN);
		atomic_store(&create_budget, -1);
		ck_assert_ptr_eq(wq, (struct workqueue *)&o);
		ck_assert_int_eq(atomic_load(&threads_created) - created,
		    budget);
		ck_assert_int_eq(atomic_load(&threads_joined) - joined,
		    budget);
		ck_assert_int_eq(wait_task_count(base), base);
	}
}
END_TEST

/* --- FIFO ---------------------------------------------------------------- */

struct fifo {
	size_t next;
	size_t bad;
};

struct fifo_job {
	struct fifo *f;
	size_t seq;
};

static void fifo_check(void *arg)
{
	struct fifo_job *j = arg;

	if (j->seq != j->f->next)
		j->f->bad++;
	j->f->next = j->seq + 1;
}

START_TEST(test_workqueue_one_worker_runs_jobs_in_submit_order)
{
	size_t n = scaled(50000, 2000);
	struct fifo_job *jobs = calloc(n, sizeof(*jobs));
	struct workqueue *wq = pool_new(1, 64);
	struct fifo f = { 0, 0 };

	ck_assert_ptr_nonnull(jobs);
	for (size_t i = 0; i < n; i++) {
		jobs[i] = (struct fifo_job){ &f, i };
		/* Mix the submits; try_submit falls back when full. */
		if (i % 2 == 0 || workqueue_try_submit(wq, fifo_check,
		    &jobs[i], NULL) != 0)
			ck_assert_int_eq(workqueue_submit(wq, fifo_check,
			    &jobs[i], NULL), 0);
	}
	ck_assert_int_eq(workqueue_wait_idle(wq), 0);
	ck_assert_uint_eq(f.bad, 0);
	ck_assert_uint_eq(f.next, n);
	ck_assert_int_eq(workqueue_free(wq), 0);
	free(jobs);
}
END_TEST

/* --- stats --------------------------------------------------------------- */

START_TEST(test_workqueue_stats_add_up_during_and_after_a_run)
{
	size_t per = scaled(20000, 500), n = per * 2;
	atomic_int *accepted = calloc(n, sizeof(*accepted));
	struct workqueue *wq = pool_new(2, 8);
	struct producer prs[2];
	pthread_t threads[2];
	struct workqueue_stats st;
	uint64_t naccepted = 0, last = 0;
	int snapshots = 0;

	tally_init(n);
	st = pool_stats(wq);
	ck_assert_uint_eq(st.submitted + st.completed + st.cancelled +
	    st.rejected + st.queued + st.running + st.high_water, 0);
	run_producers(wq, per, 2, accepted, threads, prs);
	do {
		st = pool_stats(wq);
		assert_stats_add_up(&st);
		ck_assert_uint_le(st.queued, 8);
		ck_assert_uint_le(st.high_water, 8);
		ck_assert_uint_ge(st.submitted + st.rejected, last);
		last = st.submitted + st.rejected;
		snapshots++;
	} while (last < n);
	for (int p = 0; p < 2; p++)
		pthread_join(threads[p], NULL);
	ck_assert_int_eq(workqueue_wait_idle(wq), 0);
	for (size_t i = 0; i < n; i++)
		naccepted += (uint64_t)accepted[i];
	st = pool_stats(wq);
	ck_assert_uint_eq(st.submitted, naccepted);
	ck_assert_uint_eq(st.completed, naccepted);
	ck_assert_uint_eq(st.rejected, n - naccepted);
	ck_assert_uint_eq(st.queued + st.running + st.cancelled, 0);
	ck_assert_uint_ge(st.high_water, 1);
	ck_assert_int_gt(snapshots, 0);
	ck_assert_int_eq(workqueue_free(wq), 0);
	tally_release();
	free(accepted);
}
END_TEST

/* --- arguments ----------------------------------------------------------- */

START_TEST(test_workqueue_rejects_bad_arguments)
{
	struct workqueue_options big = { .capacity = WORKQUEUE_MAX_CAPACITY +
		1 };
	struct workqueue_options many = { .threads = WORKQUEUE_MAX_THREADS +
		1 };
	struct workqueue *wq = NULL;

	ck_assert_int_eq(workqueue_new(NULL, NULL), -EINVAL);
	ck_assert_int_eq(workqueue_new(&wq, &big), -EINVAL);
	ck_assert_int_eq(workqueue_new(&wq, &many), -EINVAL);
	ck_assert_ptr_null(wq);
	ck_assert_int_eq(workqueue_submit(NULL, tally_run, NULL, NULL),
	    -EINVAL);
	ck_assert_int_eq(workqueue_wait_idle(NULL), -EINVAL);
	ck_assert_int_eq(workqueue_shutdown(NULL, WORKQUEUE_DRAIN), -EINVAL);
	ck_assert_int_eq(workqueue_get_stats(NULL, NULL), -EINVAL);
	ck_assert_int_eq(workqueue_free(NULL), 0);
}
END_TEST

/*
 * Adds @test to the suite, in a new test case if @name differs from the
 * last one.  @timeout is in seconds; CK_TIMEOUT_MULTIPLIER stretches it.
 */
static void add(Suite *s, const char *name, double timeout,
		const TTest *test)
{
	static const char *last;
	static TCase *tc;

	if (!last || strcmp(last, name) != 0) {
		tc = tcase_create(name);
		tcase_set_timeout(tc, timeout);
		suite_add_tcase(s, tc);
		last = name;
	}
	tcase_add_test(tc, test);
}

Suite *workqueue_suite(void);

Suite *workqueue_suite(void)
{
	Suite *s = suite_create("workqueue");

	add(s, "exactly_once", 30,
	    test_workqueue_runs_each_accepted_job_exactly_once);
	add(s, "exactly_once", 30,
	    test_workqueue_runs_or_cancels_exactly_once_racing_cancel);
	add(s, "ownership", 10,
	    test_workqueue_failed_submit_never_touches_the_argument);
	add(s, "backpressure", 10,
	    test_workqueue_full_queue_blocks_fails_or_times_out);
	add(s, "backpressure", 10,
	    test_workqueue_capacity_one_still_moves_every_job);
	add(s, "wait_idle", 60,
	    test_workqueue_wait_idle_sees_each_job_in_a_100k_loop);
	add(s, "wait_idle", 60,
	    test_workqueue_wait_idle_timeout_expires_while_a_job_runs);
	add(s, "wait_idle", 60,
	    test_workqueue_wait_idle_ignores_jobs_accepted_after_the_call);
	add(s, "drain", 10,
	    test_workqueue_drain_runs_every_queued_job_and_their_children);
	add(s, "drain", 10, test_workqueue_free_drains_queued_jobs);
	add(s, "cancel", 10,
	    test_workqueue_cancel_calls_each_cancel_once_and_runs_none);
	add(s, "cancel", 10,
	    test_workqueue_shutdown_is_idempotent_in_both_modes);
	add(s, "cancel", 10,
	    test_workqueue_cancel_during_drain_cancels_what_is_left);
	add(s, "threads", 10, test_workqueue_shutdown_joins_every_thread);
	add(s, "threads", 10, test_workqueue_threads_carry_the_name_prefix);
	add(s, "threads", 10,
	    test_workqueue_zero_threads_means_one_per_usable_cpu);
	add(s, "create_free_cycles", 60,
	    test_workqueue_survives_10k_create_free_cycles_without_jobs);
	add(s, "create_free_cycles", 60,
	    test_workqueue_survives_10k_create_free_cycles_with_jobs);
	add(s, "self_calls", 10,
	    test_workqueue_self_calls_fail_or_run_inline_not_deadlock);
	add(s, "independent_pools", 10,
	    test_workqueue_pools_do_not_affect_each_other);
	add(s, "failing_pthread_create", 10,
	    test_workqueue_failed_thread_start_leaves_no_thread_behind);
	add(s, "fifo", 30,
	    test_workqueue_one_worker_runs_jobs_in_submit_order);
	add(s, "stats", 30,
	    test_workqueue_stats_add_up_during_and_after_a_run);
	add(s, "arguments", 10, test_workqueue_rejects_bad_arguments);
	return s;
}

int main(void)
{
	/* Sanitizers slow threads down tenfold: shrink the big loops unless
	 * the caller chose a scale. */
	if (TEST_SANITIZED)
		setenv("TEST_SCALE", "0.2", 0);
	return run_suite(workqueue_suite());
}
