/*
 * wq_example: the tutorial in docs/workqueue.md as a program.  It sums the
 * squares of 1..N in parallel chunks, showing the options, a job that owns
 * a heap argument (freed by the job or by its cancel callback), stats, and
 * a clean shutdown.  Built by `make all`; run ./src/workqueue/wq_example.
 *
 * Outside this tree:
 *   cc wq_example.c $(pkg-config --cflags --libs workqueue)
 */
#include <workqueue.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One chunk of the sum; the job owns it and frees it. */
struct chunk {
	unsigned long from, to;
	_Atomic unsigned long long *total;
};

static void chunk_sum(void *arg)
{
	struct chunk *c = arg;
	unsigned long long sum = 0;

	for (unsigned long i = c->from; i <= c->to; i++)
		sum += (unsigned long long)i * i;
	atomic_fetch_add(c->total, sum);
	free(c);
}

/* Runs instead of chunk_sum() for jobs still queued at a cancel. */
static void chunk_cancel(void *arg)
{
	free(arg);
}

int main(void)
{
	struct workqueue_options opts = { .threads = 0, .capacity = 64,
		.name = "example" };
	_Atomic unsigned long long total = 0;
	struct workqueue_stats st;
	struct workqueue *wq;
	const unsigned long n = 1000000, step = 10000;
	int err;

	err = workqueue_new(&wq, &opts);
	if (err) {
		fprintf(stderr, "wq_example: cannot create the pool: %s\n",
			strerror(-err));
		return 1;
	}
	for (unsigned long from = 1; from <= n; from += step) {
		struct chunk *c = malloc(sizeof(*c));

		if (!c)
			break;
		*c = (struct chunk){ from, from + step - 1, &total };
		/* Blocks while 64 jobs are queued.  On error the pool did
		 * not take the chunk, so it is still ours to free. */
		err = workqueue_submit(wq, chunk_sum, c, chunk_cancel);
		if (err) {
			free(c);
			break;
		}
	}
	workqueue_wait_idle(wq);
	workqueue_get_stats(wq, &st);
	printf("sum of squares 1..%lu = %llu\n", n,
	       (unsigned long long)atomic_load(&total));
	printf("%llu jobs on %u threads, queue high-water %llu\n",
	       (unsigned long long)st.completed, st.threads,
	       (unsigned long long)st.high_water);
	workqueue_free(wq);
	return err ? 1 : 0;
}
