/*
 * Unit tests for src/pubsub.c without a server: the post function queues
 * what the core sends to each "worker" and the test runs it when it
 * chooses, so that batching, order, counts, refusal and the publisher
 * credit can be checked step by step.  One thread; tests/check_pubsub.c
 * has the real workers.
 */
#include "pubsub.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS 3
#define QUEUE_MAX 4096

/* What was posted to each worker, not yet run. */
static struct pubsub_msg *queued[WORKERS][QUEUE_MAX];
static int n_queued[WORKERS];
static int fail_posts;

static int fake_post(void *ctx, int worker, struct pubsub_msg *m)
{
	if (fail_posts || n_queued[worker] == QUEUE_MAX)
		return -1;
	queued[worker][n_queued[worker]++] = m;
	return 0;
}

/* Runs what worker @w was sent, in order; returns how many. */
static int run_worker(int w)
{
	int n = 0;

	/* Running may post more (credits): take them too. */
	while (n < n_queued[w]) {
		pubsub_msg_run(queued[w][n]);
		n++;
	}
	n_queued[w] = 0;
	return n;
}

struct tsub {
	struct pubsub_sub sub;
	char log[8192];		/* "ch=msg;" or "pat>ch=msg;" */
	size_t len;
	int flushes, drops, refuse, count;
	struct pubsub_local *l;
};

static int tsub_message(struct pubsub_sub *sub, struct pubsub_delivery *d)
{
	struct tsub *t = (struct tsub *)sub;

	if (t->refuse)
		return -1;
	t->count++;
	if (d->mlen > 64)
		return 0;	/* counted, not logged */
	if (d->pat)
		t->len += (size_t)snprintf(t->log + t->len,
		    sizeof(t->log) - t->len, "%.*s>", (int)d->plen, d->pat);
	t->len += (size_t)snprintf(t->log + t->len, sizeof(t->log) - t->len,
	    "%.*s=%.*s;", (int)d->chlen, d->ch, (int)d->mlen, d->msg);
	return 0;
}

static void tsub_flush(struct pubsub_sub *sub)
{
	((struct tsub *)sub)->flushes++;
}

static void tsub_drop(struct pubsub_sub *sub)
{
	struct tsub *t = (struct tsub *)sub;

	t->drops++;
	pubsub_sub_release(t->l, sub);
}

static const struct pubsub_sub_ops tsub_ops = {
	.message = tsub_message,
	.flush = tsub_flush,
	.drop = tsub_drop,
};

static struct pubsub *ps;

static void setup(void)
{
	memset(n_queued, 0, sizeof(n_queued));
	fail_posts = 0;
	ps = pubsub_new(&(struct pubsub_options){ .workers = WORKERS,
	    .post = fake_post });
	ck_assert_ptr_nonnull(ps);
}

static void teardown(void)
{
	for (int w = 0; w < WORKERS; w++)
		run_worker(w);
	pubsub_free(ps);
	ps = NULL;
}

static void tsub_init(struct tsub *t, int worker)
{
	memset(t, 0, sizeof(*t));
	t->l = pubsub_local(ps, worker);
	pubsub_sub_init(&t->sub, &tsub_ops);
}

static int sub(struct tsub *t, int pattern, const char *name)
{
	return pubsub_subscribe(t->l, &t->sub, pattern, name, strlen(name));
}

static long long pub(int worker, const char *ch, const char *msg)
{
	return pubsub_publish(pubsub_local(ps, worker), ch, strlen(ch), msg,
	    strlen(msg));
}

START_TEST(test_pubsub_core_one_post_per_worker_per_flush_in_order)
{
	struct tsub a, b, c;

	tsub_init(&a, 0);
	tsub_init(&b, 1);
	tsub_init(&c, 1);
	ck_assert_int_eq(sub(&a, 0, "ch"), 1);
	ck_assert_int_eq(sub(&a, 0, "ch"), 0);	/* already */
	ck_assert_int_eq(sub(&b, 0, "ch"), 1);
	ck_assert_int_eq(sub(&c, 1, "c?"), 1);
	ck_assert_int_eq(sub(&c, 0, "ch"), 1);
	/* Three publishes from worker 2: one post to worker 1, one to
	 * worker 0, none to itself. */
	ck_assert_int_eq(pub(2, "ch", "1"), 4);
	ck_assert_int_eq(pub(2, "ch", "2"), 4);
	ck_assert_int_eq(pub(2, "cx", "3"), 1);
	ck_assert_int_eq(pub(2, "none", "4"), 0);
	ck_assert_int_eq(n_queued[0] + n_queued[1], 0);	/* until flush */
	ck_assert(!pubsub_flush(pubsub_local(ps, 2)));
	ck_assert_int_eq(n_queued[0], 1);
	ck_assert_int_eq(n_queued[1], 1);
	ck_assert_int_eq(n_queued[2], 0);
	ck_assert_int_eq(run_worker(1), 1);
	ck_assert_str_eq(b.log, "ch=1;ch=2;");
	/* The channel first, then the pattern; one flush for the batch. */
	ck_assert_str_eq(c.log, "ch=1;c?>ch=1;ch=2;c?>ch=2;c?>cx=3;");
	ck_assert_int_eq(b.flushes, 1);
	ck_assert_int_eq(c.flushes, 1);
	ck_assert_int_eq(a.len, 0);
	run_worker(0);
	ck_assert_str_eq(a.log, "ch=1;ch=2;");
	/* A publisher's own worker is served at flush, without a post. */
	ck_assert_int_eq(pub(0, "ch", "5"), 4);
	ck_assert(!pubsub_flush(pubsub_local(ps, 0)));
	ck_assert_str_eq(a.log, "ch=1;ch=2;ch=5;");
	ck_assert_int_eq(n_queued[0], 0);
	pubsub_sub_release(a.l, &a.sub);
	pubsub_sub_release(b.l, &b.sub);
	pubsub_sub_release(c.l, &c.sub);
	ck_assert_int_eq(pubsub_numsub(ps, "ch", 2), 0);
	ck_assert_int_eq(pubsub_numpat(ps), 0);
}
END_TEST

START_TEST(test_pubsub_core_unsubscribed_while_in_flight_gets_nothing)
{
	struct tsub a;

	tsub_init(&a, 1);
	sub(&a, 0, "ch");
	ck_assert_int_eq(pub(0, "ch", "x"), 1);
	pubsub_flush(pubsub_local(ps, 0));
	ck_assert_int_eq(pubsub_unsubscribe(a.l, &a.sub, 0, "ch", 2), 1);
	ck_assert_int_eq(pubsub_unsubscribe(a.l, &a.sub, 0, "ch", 2), 0);
	run_worker(1);
	ck_assert_int_eq(a.len, 0);
	ck_assert_int_eq(a.flushes, 0);
}
END_TEST

static char names[256];
static size_t names_len;

static void add_name(void *arg, const char *name, size_t len)
{
	names_len += (size_t)snprintf(names + names_len,
	    sizeof(names) - names_len, "%.*s,", (int)len, name);
}

static void begin_names(void *arg, size_t n)
{
	*(size_t *)arg = n;
}

START_TEST(test_pubsub_core_registry_counts_across_workers)
{
	struct tsub s[WORKERS];
	size_t n = 0;

	for (int w = 0; w < WORKERS; w++) {
		tsub_init(&s[w], w);
		sub(&s[w], 0, "a");
		sub(&s[w], 1, "a*");
	}
	sub(&s[0], 0, "b");
	sub(&s[1], 1, "*");
	ck_assert_int_eq(pubsub_numsub(ps, "a", 1), 3);
	ck_assert_int_eq(pubsub_numsub(ps, "b", 1), 1);
	ck_assert_int_eq(pubsub_numpat(ps), 2);	/* distinct */
	ck_assert_int_eq(pub(0, "a", "m"), 3 + 3 + 1);
	pubsub_channels(ps, "a", 1, begin_names, add_name, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(names, "a,");
	names_len = 0;
	pubsub_channels(ps, NULL, 0, begin_names, add_name, &n);
	ck_assert_uint_eq(n, 2);
	/* Oldest first, with a callback per channel. */
	names_len = 0;
	ck_assert_uint_eq(pubsub_unsubscribe_all(s[0].l, &s[0].sub, 0,
	    add_name, NULL), 2);
	ck_assert_str_eq(names, "a,b,");
	ck_assert_uint_eq(pubsub_sub_count(&s[0].sub), 1);
	ck_assert_int_eq(pubsub_numsub(ps, "b", 1), 0);
	for (int w = 0; w < WORKERS; w++)
		pubsub_sub_release(s[w].l, &s[w].sub);
	ck_assert_int_eq(pubsub_numpat(ps), 0);
	ck_assert_int_eq(pub(0, "a", "m"), 0);
}
END_TEST

START_TEST(test_pubsub_core_a_refusing_subscriber_is_dropped_after_the_batch)
{
	struct tsub a, b;

	tsub_init(&a, 1);
	tsub_init(&b, 1);
	sub(&a, 0, "ch");
	sub(&b, 0, "ch");
	a.refuse = 1;
	pub(0, "ch", "1");
	pub(0, "ch", "2");
	pubsub_flush(pubsub_local(ps, 0));
	run_worker(1);
	ck_assert_int_eq(a.drops, 1);
	ck_assert_int_eq(a.flushes, 0);
	ck_assert_str_eq(b.log, "ch=1;ch=2;");
	ck_assert_int_eq(pubsub_numsub(ps, "ch", 2), 1);
	pubsub_sub_release(b.l, &b.sub);
}
END_TEST

static int resumed;

static void on_resume(struct pubsub_waiter *w)
{
	resumed++;
}

START_TEST(test_pubsub_core_publishers_wait_for_credit_and_get_it)
{
	static char big[64 * 1024];
	struct pubsub_local *l0 = pubsub_local(ps, 0);
	struct pubsub_waiter w = { .resume = on_resume };
	struct tsub a;
	int flushes = 0;

	tsub_init(&a, 1);
	sub(&a, 0, "ch");
	memset(big, 'x', sizeof(big) - 1);
	/* Flush batches to worker 1 without running them until the core
	 * says worker 0 has too much in flight. */
	while (!pubsub_flush(l0)) {
		ck_assert_int_eq(pub(0, "ch", big), 1);
		ck_assert_int_lt(++flushes, 1000);
	}
	/* A batch counts its allocation, here twice its 64 KiB message. */
	ck_assert_int_ge((long)flushes * 2 * (long)sizeof(big),
	    (long)PUBSUB_INFLIGHT_HIGH);
	resumed = 0;
	pubsub_wait(l0, &w);
	ck_assert_int_eq(resumed, 0);
	pubsub_wait(l0, &w);		/* already waiting: nothing more */
	/* Worker 1 catches up and posts one credit back to worker 0. */
	run_worker(1);
	ck_assert_int_eq(a.count, flushes);
	ck_assert_int_eq(n_queued[0], 1);
	ck_assert_int_eq(resumed, 0);	/* on worker 0's thread only */
	run_worker(0);
	ck_assert_int_eq(resumed, 1);
	ck_assert(!w.waiting);
	/* With nothing in flight, waiting resumes at once. */
	pubsub_wait(l0, &w);
	ck_assert_int_eq(resumed, 2);
	/* A waiter that goes away is not resumed. */
	pub(0, "ch", big);
	while (!pubsub_flush(l0))
		pub(0, "ch", big);
	pubsub_wait(l0, &w);
	pubsub_unwait(l0, &w);
	run_worker(1);
	run_worker(0);
	ck_assert_int_eq(resumed, 2);
	pubsub_sub_release(a.l, &a.sub);
}
END_TEST

START_TEST(test_pubsub_core_a_failed_post_loses_only_that_batch)
{
	struct tsub a;

	tsub_init(&a, 1);
	sub(&a, 0, "ch");
	fail_posts = 1;
	pub(0, "ch", "1");
	pub(0, "ch", "2");
	pubsub_flush(pubsub_local(ps, 0));
	ck_assert_uint_eq(pubsub_lost(ps), 2);
	fail_posts = 0;
	pub(0, "ch", "3");
	pubsub_flush(pubsub_local(ps, 0));
	run_worker(1);
	ck_assert_str_eq(a.log, "ch=3;");
	pubsub_sub_release(a.l, &a.sub);
}
END_TEST

static Suite *pubsub_core_suite(void)
{
	Suite *s = suite_create("pubsub_core");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc,
	    test_pubsub_core_one_post_per_worker_per_flush_in_order);
	tcase_add_test(tc,
	    test_pubsub_core_unsubscribed_while_in_flight_gets_nothing);
	tcase_add_test(tc, test_pubsub_core_registry_counts_across_workers);
	tcase_add_test(tc,
	    test_pubsub_core_a_refusing_subscriber_is_dropped_after_the_batch);
	tcase_add_test(tc,
	    test_pubsub_core_publishers_wait_for_credit_and_get_it);
	tcase_add_test(tc,
	    test_pubsub_core_a_failed_post_loses_only_that_batch);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(pubsub_core_suite());
}
