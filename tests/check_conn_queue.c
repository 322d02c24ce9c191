/*
 * Unit tests for the connection-item queue: FIFO order, the empty-to-
 * non-empty signal that drives notification, freelist reuse, take-back,
 * and nothing lost or duplicated under concurrent producers and consumers.
 */
#include "conn_queue.h"
#include "testutil.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

static struct cq_item *item(struct conn_queue *q, int fd)
{
	struct cq_item *it = conn_queue_item_new(q);

	ck_assert_ptr_nonnull(it);
	it->type = CQ_NEW_CONN;
	it->fd = fd;
	return it;
}

START_TEST(test_conn_queue_pops_in_fifo_order)
{
	struct conn_queue q;
	struct cq_item *it;

	ck_assert_int_eq(conn_queue_init(&q), 0);
	for (int i = 0; i < 100; i++)
		conn_queue_push(&q, item(&q, i));
	for (int i = 0; i < 100; i++) {
		it = conn_queue_pop(&q);
		ck_assert_ptr_nonnull(it);
		ck_assert_int_eq(it->fd, i);
		conn_queue_item_free(&q, it);
	}
	ck_assert_ptr_null(conn_queue_pop(&q));
	conn_queue_release(&q);
}
END_TEST

START_TEST(test_conn_queue_push_reports_only_the_empty_transition)
{
	struct conn_queue q;

	ck_assert_int_eq(conn_queue_init(&q), 0);
	ck_assert(conn_queue_push(&q, item(&q, 1)));
	ck_assert(!conn_queue_push(&q, item(&q, 2)));
	conn_queue_item_free(&q, conn_queue_pop(&q));
	ck_assert(!conn_queue_push(&q, item(&q, 3)));
	conn_queue_item_free(&q, conn_queue_pop(&q));
	conn_queue_item_free(&q, conn_queue_pop(&q));
	ck_assert(conn_queue_push(&q, item(&q, 4)));
	conn_queue_release(&q);	/* frees the queued item too */
}
END_TEST

START_TEST(test_conn_queue_reuses_freed_items)
{
	struct conn_queue q;

	ck_assert_int_eq(conn_queue_init(&q), 0);
	for (int round = 0; round < 1000; round++) {
		for (int i = 0; i < 8; i++)
			conn_queue_push(&q, item(&q, i));
		for (int i = 0; i < 8; i++)
			conn_queue_item_free(&q, conn_queue_pop(&q));
	}
	/* Steady state allocates nothing after the first round. */
	ck_assert_uint_eq(q.allocated, 8);
	conn_queue_release(&q);
}
END_TEST

START_TEST(test_conn_queue_remove_takes_back_only_queued_items)
{
	struct conn_queue q;
	struct cq_item *a, *b, *c;

	ck_assert_int_eq(conn_queue_init(&q), 0);
	a = item(&q, 1);
	b = item(&q, 2);
	c = item(&q, 3);
	conn_queue_push(&q, a);
	conn_queue_push(&q, b);
	conn_queue_push(&q, c);
	ck_assert(conn_queue_remove(&q, c));	/* the tail */
	ck_assert(!conn_queue_remove(&q, c));	/* not queued any more */
	ck_assert(conn_queue_remove(&q, a));	/* the head */
	ck_assert_ptr_eq(conn_queue_pop(&q), b);
	ck_assert_ptr_null(conn_queue_pop(&q));
	/* The tail was fixed up: a push after removals still works. */
	ck_assert(conn_queue_push(&q, a));
	ck_assert_ptr_eq(conn_queue_pop(&q), a);
	conn_queue_item_free(&q, a);
	conn_queue_item_free(&q, b);
	conn_queue_item_free(&q, c);
	conn_queue_release(&q);
}
END_TEST

static void noop_call(struct conn_env *env, void *arg)
{
}

/* A message item carries its fields through the queue, and an item
 * taken from the freelist carries nothing of its last use. */
START_TEST(test_conn_queue_message_items_keep_their_fields_and_reuse_clean)
{
	struct conn_queue q;
	struct cq_item *it;
	char payload[] = "hello";
	int arg;

	ck_assert_int_eq(conn_queue_init(&q), 0);
	it = conn_queue_item_new(&q);
	it->type = CQ_REPLY;
	it->conn_id = ((uint64_t)3 << 48) | 42;
	it->data = payload;
	it->len = 5;
	conn_queue_push(&q, it);
	it = conn_queue_item_new(&q);
	it->type = CQ_CALL;
	it->fn = noop_call;
	it->arg = &arg;
	conn_queue_push(&q, it);
	it = conn_queue_item_new(&q);
	it->type = CQ_WAKE;
	it->conn_id = 7;
	conn_queue_push(&q, it);

	it = conn_queue_pop(&q);
	ck_assert_int_eq(it->type, CQ_REPLY);
	ck_assert_uint_eq(it->conn_id, ((uint64_t)3 << 48) | 42);
	ck_assert_ptr_eq(it->data, payload);
	ck_assert_uint_eq(it->len, 5);
	conn_queue_item_free(&q, it);
	it = conn_queue_pop(&q);
	ck_assert_int_eq(it->type, CQ_CALL);
	ck_assert_ptr_eq(it->fn, noop_call);
	ck_assert_ptr_eq(it->arg, &arg);
	conn_queue_item_free(&q, it);
	it = conn_queue_pop(&q);
	ck_assert_int_eq(it->type, CQ_WAKE);
	ck_assert_uint_eq(it->conn_id, 7);
	conn_queue_item_free(&q, it);

	/* LIFO freelist: this is the wake item, then the call, the reply. */
	for (int i = 0; i < 3; i++) {
		it = conn_queue_item_new(&q);
		ck_assert_uint_eq(it->conn_id, 0);
		ck_assert_ptr_null(it->data);
		ck_assert_uint_eq(it->len, 0);
		ck_assert_ptr_null(it->fn);
		ck_assert_ptr_null(it->arg);
		ck_assert_int_eq(it->fd, -1);
		conn_queue_push(&q, it);
	}
	ck_assert_uint_eq(q.allocated, 3);
	conn_queue_release(&q);
}
END_TEST

#define PRODUCERS 4
#define CONSUMERS 2

struct race {
	struct conn_queue q;
	int per_producer;
	atomic_int popped;
	atomic_uchar *seen;	/* one flag per item */
	int last[PRODUCERS];	/* with one consumer: last seq per producer */
	int check_order;
	atomic_int order_errors;
};

struct producer {
	struct race *r;
	int id;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (int i = 0; i < p->r->per_producer; i++)
		conn_queue_push(&p->r->q, item(&p->r->q,
		    p->id * p->r->per_producer + i));
	return NULL;
}

static void *consume(void *arg)
{
	struct race *r = arg;
	int total = PRODUCERS * r->per_producer;

	while (atomic_load(&r->popped) < total) {
		struct cq_item *it = conn_queue_pop(&r->q);
		int fd, prod, seq;

		if (!it) {
			sched_yield();
			continue;
		}
		fd = it->fd;
		conn_queue_item_free(&r->q, it);
		atomic_fetch_add(&r->seen[fd], 1);
		atomic_fetch_add(&r->popped, 1);
		prod = fd / r->per_producer;
		seq = fd % r->per_producer;
		if (r->check_order) {
			if (seq != r->last[prod] + 1)
				atomic_fetch_add(&r->order_errors, 1);
			r->last[prod] = seq;
		}
	}
	return NULL;
}

static void run_race(int consumers)
{
	struct race r = { .per_producer = (int)scaled(50000, 1000) };
	struct producer p[PRODUCERS];
	pthread_t pt[PRODUCERS], ct[CONSUMERS];
	int total = PRODUCERS * r.per_producer;

	ck_assert_int_eq(conn_queue_init(&r.q), 0);
	r.seen = calloc((size_t)total, sizeof(*r.seen));
	ck_assert_ptr_nonnull(r.seen);
	r.check_order = consumers == 1;
	for (int i = 0; i < PRODUCERS; i++)
		r.last[i] = -1;
	for (int i = 0; i < consumers; i++)
		ck_assert_int_eq(pthread_create(&ct[i], NULL, consume, &r), 0);
	for (int i = 0; i < PRODUCERS; i++) {
		p[i] = (struct producer){ &r, i };
		ck_assert_int_eq(pthread_create(&pt[i], NULL, produce, &p[i]),
		    0);
	}
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(pt[i], NULL);
	for (int i = 0; i < consumers; i++)
		pthread_join(ct[i], NULL);

	ck_assert_int_eq(atomic_load(&r.popped), total);
	for (int i = 0; i < total; i++)
		ck_assert_msg(r.seen[i] == 1, "item %d seen %d times", i,
		    r.seen[i]);
	ck_assert_int_eq(atomic_load(&r.order_errors), 0);
	ck_assert_ptr_null(conn_queue_pop(&r.q));
	free(r.seen);
	conn_queue_release(&r.q);
}

START_TEST(test_conn_queue_one_consumer_keeps_each_producers_order)
{
	run_race(1);
}
END_TEST

START_TEST(test_conn_queue_concurrent_pops_see_each_item_once)
{
	run_race(CONSUMERS);
}
END_TEST

static Suite *conn_queue_suite(void)
{
	Suite *s = suite_create("conn_queue");
	TCase *tc = tcase_create("fifo");

	tcase_add_test(tc, test_conn_queue_pops_in_fifo_order);
	tcase_add_test(tc, test_conn_queue_push_reports_only_the_empty_transition);
	tcase_add_test(tc, test_conn_queue_remove_takes_back_only_queued_items);
	suite_add_tcase(s, tc);
	tc = tcase_create("freelist");
	tcase_add_test(tc, test_conn_queue_reuses_freed_items);
	tcase_add_test(tc,
	    test_conn_queue_message_items_keep_their_fields_and_reuse_clean);
	suite_add_tcase(s, tc);
	tc = tcase_create("concurrency");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_conn_queue_one_consumer_keeps_each_producers_order);
	tcase_add_test(tc, test_conn_queue_concurrent_pops_see_each_item_once);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(conn_queue_suite());
}
