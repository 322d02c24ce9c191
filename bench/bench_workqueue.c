/*
 * bench_workqueue: the work-queue library against GLib's GThreadPool, run
 * interleaved in one process (each run alternates which goes first) so that
 * both see the same machine noise.  Every scenario is repeated and reported
 * as median [min-max] with the ratio of the medians.
 *
 * Scenarios: tiny jobs from 1 producer with 1 and 2 workers and from 2
 * producers; a submit-to-completion round trip (p50, p99); bursts of 64 jobs
 * followed by a wait for idle; and the CPU an idle pool burns in 1 s.
 *
 * GThreadPool pools are exclusive (their threads start at once, like ours).
 * It has no wait-for-idle, so its burst scenario counts completions with an
 * atomic and a GCond, the cheapest way a user would write it; and its tiny-
 * job runs end with g_thread_pool_free(pool, FALSE, TRUE), so ours end with
 * workqueue_shutdown(WORKQUEUE_DRAIN): both drain and join.
 *
 * Usage: bench_workqueue [--quick] [--runs N] [--jobs N]
 */
#include "workqueue/workqueue.h"

#include <glib.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 50

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_workqueue: %s: %s\n", what, strerror(err));
	exit(1);
}

/*
 * CPU seconds used by every thread but the main one, from the nanosecond
 * counters in /proc/self/task/<tid>/schedstat: the pool's threads, without
 * the main thread's own accounting noise.  A thread that exits in between
 * would be lost, but none does while this is used.
 */
static double cpu_s(void)
{
	char path[64];
	unsigned long long ns, sum = 0;
	struct dirent *e;
	DIR *d = opendir("/proc/self/task");
	FILE *f;

	if (!d)
		die("/proc/self/task", errno);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat",
			 atoi(e->d_name));
		f = fopen(path, "r");
		if (f && fscanf(f, "%llu", &ns) == 1)
			sum += ns;
		if (f)
			fclose(f);
	}
	closedir(d);
	return (double)sum / 1e9;
}


/* --- the two pools behind one interface ---------------------------------- */

enum lib { LIB_WQ, LIB_GLIB };

static const char *const lib_names[] = { "workqueue", "GThreadPool" };

/* Every job gets this as its argument: GLib refuses NULL data. */
static int dummy;

/* Per-thread job count: the tiny job touches nothing shared. */
static _Thread_local unsigned long tiny_count;

static void tiny_wq(void *arg)
{
	(void)arg;
	tiny_count++;
}

static void tiny_glib(gpointer data, gpointer user)
{
	(void)data;
	(void)user;
	tiny_count++;
}

struct pool {
	enum lib lib;
	struct workqueue *wq;
	GThreadPool *gp;
};

static void pool_start(struct pool *p, enum lib lib, unsigned int workers,
		       GFunc gfn)
{
	GError *gerr = NULL;

	p->lib = lib;
	if (lib == LIB_WQ) {
		struct workqueue_options o = { .threads = workers,
			.name = "bench" };
		int err = workqueue_new(&p->wq, &o);

		if (err)
			die("workqueue_new", -err);
	} else {
		p->gp = g_thread_pool_new(gfn, NULL, (gint)workers, TRUE,
					  &gerr);
		if (!p->gp) {
			fprintf(stderr, "bench_workqueue: %s\n",
				gerr->message);
			exit(1);
		}
	}
}

/* Drains and joins (and frees, for GLib, which cannot split the two). */
static void pool_drain(struct pool *p)
{
	if (p->lib == LIB_WQ)
		workqueue_shutdown(p->wq, WORKQUEUE_DRAIN);
	else
		g_thread_pool_free(p->gp, FALSE, TRUE);
}

static void pool_free(struct pool *p)
{
	if (p->lib == LIB_WQ)
		workqueue_free(p->wq);
}

static void pool_push(struct pool *p, workqueue_fn *fn, void *arg)
{
	if (p->lib == LIB_WQ) {
		int err = workqueue_submit(p->wq, fn, arg, NULL);

		if (err)
			die("workqueue_submit", -err);
	} else {
		g_thread_pool_push(p->gp, arg, NULL);
	}
}

/* --- tiny jobs ----------------------------------------------------------- */

struct feeder {
	struct pool *pool;
	unsigned long n;
};

static void *feeder_main(void *p)
{
	struct feeder *f = p;

	for (unsigned long i = 0; i < f->n; i++)
		pool_push(f->pool, tiny_wq, &dummy);
	return NULL;
}

/* Jobs per second for @n tiny jobs from @producers threads. */
static double run_tiny(enum lib lib, unsigned int workers,
		       unsigned int producers, unsigned long n)
{
	struct feeder f[8];
	pthread_t t[8];
	struct pool p;
	double t0, t1;

	pool_start(&p, lib, workers, tiny_glib);
	t0 = now_s();
	for (unsigned int i = 0; i < producers; i++) {
		f[i] = (struct feeder){ &p, n / producers };
		if (producers == 1)
			feeder_main(&f[i]);
		else if (pthread_create(&t[i], NULL, feeder_main, &f[i]))
			die("pthread_create", errno);
	}
	if (producers > 1)
		for (unsigned int i = 0; i < producers; i++)
			pthread_join(t[i], NULL);
	pool_drain(&p);
	t1 = now_s();
	if (lib == LIB_WQ) {
		struct workqueue_stats st;

		workqueue_get_stats(p.wq, &st);
		if (st.completed != n / producers * producers)
			die("lost jobs", EIO);
	}
	pool_free(&p);
	return (double)(n / producers * producers) / (t1 - t0);
}

/* --- round trip ---------------------------------------------------------- */

static atomic_int rt_flag;

static void rt_wq(void *arg)
{
	(void)arg;
	atomic_store_explicit(&rt_flag, 1, memory_order_release);
}

static void rt_glib(gpointer data, gpointer user)
{
	rt_wq(data);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Submit-to-completion latency in microseconds, seen by a submitter that
 * spins on a flag the job sets; p50 and p99 of @n round trips. */
static void run_roundtrip(enum lib lib, unsigned long n, double *p50,
			  double *p99)
{
	double *lat = malloc(n * sizeof(*lat));
	struct pool p;

	if (!lat)
		die("malloc", ENOMEM);
	pool_start(&p, lib, 1, rt_glib);
	for (unsigned long i = 0; i < n; i++) {
		double t0 = now_s();

		atomic_store_explicit(&rt_flag, 0, memory_order_relaxed);
		pool_push(&p, rt_wq, &dummy);
		while (!atomic_load_explicit(&rt_flag, memory_order_acquire))
			;
		lat[i] = (now_s() - t0) * 1e6;
	}
	pool_drain(&p);
	pool_free(&p);
	qsort(lat, n, sizeof(*lat), cmp_double);
	*p50 = lat[n / 2];
	*p99 = lat[n * 99 / 100];
	free(lat);
}

/* --- bursts + wait for idle ---------------------------------------------- */

static GMutex burst_lock;
static GCond burst_cond;
static gint burst_done;

static void burst_glib(gpointer data, gpointer user)
{
	gint target = GPOINTER_TO_INT(data);

	tiny_count++;
	if (g_atomic_int_add(&burst_done, 1) + 1 == target) {
		g_mutex_lock(&burst_lock);
		g_cond_signal(&burst_cond);
		g_mutex_unlock(&burst_lock);
	}
}

/* Bursts per second: 64 jobs, then wait until all 64 finished. */
static double run_burst(enum lib lib, unsigned long bursts)
{
	struct pool p;
	double t0, t1;

	pool_start(&p, lib, 2, burst_glib);
	g_atomic_int_set(&burst_done, 0);
	t0 = now_s();
	for (unsigned long b = 0; b < bursts; b++) {
		gint target = (gint)((b + 1) * 64);

		for (int i = 0; i < 64; i++)
			pool_push(&p, tiny_wq, GINT_TO_POINTER(target));
		if (lib == LIB_WQ) {
			workqueue_wait_idle(p.wq);
			continue;
		}
		g_mutex_lock(&burst_lock);
		while (g_atomic_int_get(&burst_done) < target)
			g_cond_wait(&burst_cond, &burst_lock);
		g_mutex_unlock(&burst_lock);
	}
	t1 = now_s();
	pool_drain(&p);
	pool_free(&p);
	return (double)bursts / (t1 - t0);
}

/* --- idle CPU ------------------------------------------------------------ */

/*
 * CPU the pool's threads use while they have nothing to do: in
 * *@settle the 100 ms after its last job (where ours spins before
 * sleeping), and, returned, the following 1 s; both in milliseconds.
 */
static double run_idle(enum lib lib, double *settle)
{
	struct timespec one = { 1, 0 }, tenth = { 0, 100000000 };
	struct pool p;
	double c0, c1, c2;

	pool_start(&p, lib, 2, rt_glib);
	atomic_store(&rt_flag, 0);
	pool_push(&p, rt_wq, &dummy);
	while (!atomic_load(&rt_flag))
		;
	c0 = cpu_s();
	nanosleep(&tenth, NULL);
	c1 = cpu_s();
	nanosleep(&one, NULL);
	c2 = cpu_s();
	pool_drain(&p);
	pool_free(&p);
	*settle = (c1 - c0) * 1e3;
	return (c2 - c1) * 1e3;
}

/* --- reporting ----------------------------------------------------------- */

struct series {
	double v[MAX_RUNS];
	int n;
};

static double median(struct series *s)
{
	double tmp[MAX_RUNS];

	memcpy(tmp, s->v, sizeof(double) * (size_t)s->n);
	qsort(tmp, (size_t)s->n, sizeof(double), cmp_double);
	return s->n % 2 ? tmp[s->n / 2] :
		(tmp[s->n / 2 - 1] + tmp[s->n / 2]) / 2;
}

static double smin(const struct series *s)
{
	double m = s->v[0];

	for (int i = 1; i < s->n; i++)
		if (s->v[i] < m)
			m = s->v[i];
	return m;
}

static double smax(const struct series *s)
{
	double m = s->v[0];

	for (int i = 1; i < s->n; i++)
		if (s->v[i] > m)
			m = s->v[i];
	return m;
}

/* Prints one table row.  @scale divides values for display; @higher says
 * whether bigger is better, which orients the ratio as "times better". */
static void row(const char *name, const char *unit, struct series *wq,
		struct series *gl, double scale, int higher)
{
	double mw = median(wq), mg = median(gl);
	double ratio = higher ? mw / mg : mg / mw;
	char a[64], b[64], c[16] = "-";

	snprintf(a, sizeof(a), "%.2f [%.2f-%.2f]", mw / scale,
		 smin(wq) / scale, smax(wq) / scale);
	snprintf(b, sizeof(b), "%.2f [%.2f-%.2f]", mg / scale,
		 smin(gl) / scale, smax(gl) / scale);
	/* An idle pool may measure exactly 0 ms: no ratio then. */
	if (mw > 0 && mg > 0)
		snprintf(c, sizeof(c), "%.2fx", ratio);
	printf("| %-36s | %-9s | %-24s | %-24s | %8s |\n", name, unit, a,
	       b, c);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	unsigned long jobs = 10000000, trips = 200000, bursts = 50000;
	int runs = 5, quick = 0;
	struct series tw[3][2], rt50[2], rt99[2], bu[2], idle[2], settle[2];
	struct utsname u;
	const char *titles[3] = { "tiny jobs, 1 producer, 1 worker",
		"tiny jobs, 1 producer, 2 workers",
		"tiny jobs, 2 producers, 2 workers" };
	const unsigned int wk[3] = { 1, 2, 2 }, pr[3] = { 1, 1, 2 };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--jobs") && i + 1 < argc) {
			jobs = strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: bench_workqueue [--quick] "
				"[--runs N] [--jobs N]\n");
			return 2;
		}
	}
	if (quick) {
		jobs = jobs > 1000000 ? 1000000 : jobs;
		trips = 50000;
		bursts = 5000;
	}
	if (runs < 1 || runs > MAX_RUNS)
		runs = 5;
	memset(tw, 0, sizeof(tw));
	memset(rt50, 0, sizeof(rt50));
	memset(rt99, 0, sizeof(rt99));
	memset(bu, 0, sizeof(bu));
	memset(idle, 0, sizeof(idle));
	memset(settle, 0, sizeof(settle));

	uname(&u);
	printf("bench_workqueue: %s %s, %ld online CPUs, glib %u.%u.%u, "
	       "%d runs, %lu tiny jobs, %lu round trips, %lu bursts%s\n\n",
	       u.sysname, u.machine, sysconf(_SC_NPROCESSORS_ONLN),
	       glib_major_version, glib_minor_version, glib_micro_version,
	       runs, jobs, trips, bursts, quick ? " (quick)" : "");

	for (int r = 0; r < runs; r++) {
		for (int k = 0; k < 2; k++) {
			/* Alternate who goes first, run by run. */
			enum lib lib = (enum lib)((k + r) % 2);

			for (int s = 0; s < 3; s++)
				tw[s][lib].v[r] = run_tiny(lib, wk[s], pr[s],
							   jobs);
			run_roundtrip(lib, trips, &rt50[lib].v[r],
				      &rt99[lib].v[r]);
			bu[lib].v[r] = run_burst(lib, bursts);
			idle[lib].v[r] = run_idle(lib, &settle[lib].v[r]);
		}
		fprintf(stderr, "run %d/%d done\n", r + 1, runs);
	}
	for (int s = 0; s < 3; s++)
		tw[s][0].n = tw[s][1].n = runs;
	rt50[0].n = rt50[1].n = rt99[0].n = rt99[1].n = runs;
	bu[0].n = bu[1].n = idle[0].n = idle[1].n = runs;
	settle[0].n = settle[1].n = runs;

	printf("| %-36s | %-9s | %-24s | %-24s | %8s |\n", "scenario",
	       "unit", lib_names[LIB_WQ], lib_names[LIB_GLIB], "ratio");
	printf("|%s|%s|%s|%s|%s|\n", "--------------------------------------",
	       "-----------", "--------------------------",
	       "--------------------------", "----------");
	for (int s = 0; s < 3; s++)
		row(titles[s], "Mjobs/s", &tw[s][LIB_WQ], &tw[s][LIB_GLIB],
		    1e6, 1);
	row("round trip p50 (1 worker)", "us", &rt50[LIB_WQ],
	    &rt50[LIB_GLIB], 1, 0);
	row("round trip p99 (1 worker)", "us", &rt99[LIB_WQ],
	    &rt99[LIB_GLIB], 1, 0);
	row("bursts of 64 + wait idle (2 workers)", "kbursts/s", &bu[LIB_WQ],
	    &bu[LIB_GLIB], 1e3, 1);
	row("idle pool CPU over 1 s (2 threads)", "us", &idle[LIB_WQ],
	    &idle[LIB_GLIB], 1e-3, 0);
	row("CPU in the 100 ms after a last job", "us", &settle[LIB_WQ],
	    &settle[LIB_GLIB], 1e-3, 0);
	printf("\nMedian [min-max] of %d runs; ratio = how many times better "
	       "workqueue's median is (> 1: workqueue wins).\n", runs);
	printf("Idle CPU is the pool threads' own time (schedstat), not the "
	       "process's.\n");
	return 0;
}
