/*
 * Cross-worker messages through real worker threads (src/msg.h,
 * proto.h "Across threads"): workers started as the server starts them,
 * real loopback connections handed to them with worker_dispatch(), and a
 * test handler that posts calls, replies and wakes.  Proves that a
 * message finds its connection by id on the right worker thread, that a
 * message for a closed connection is dropped and counted, that a call
 * posted to every worker reaches the subscribers kept in each worker's
 * local state, that replies from other threads keep their order, that
 * abort and wake work from outside the connection's own call, and that
 * ids are never reused.  The clock example of docs/protocols.md runs here
 * too, with a real pool: its tickers on every worker, and its alarm's
 * msg_wake() from a pool thread.
 */
#include "msg.h"
#include "offload.h"
#include "testutil.h"
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RIG_MAX 3
#define SUBS_MAX 64

struct rig {
	struct worker w[RIG_MAX];
	int n;
	int next;
	struct worker_config cfg;
	struct proto_config pcfg;
	struct msg_hub hub;
	struct conn_listen cl;
	struct offload offload;
	int lfd, port;
	_Atomic long conns_now;
};

static struct rig *rig_now;	/* for the handler's checks */
static atomic_int calls_on_wrong_thread;
static atomic_int locals_freed;

/* A worker's local state: the ids that said "sub". */
struct subs {
	uint64_t id[SUBS_MAX];
	int n;
};

extern const struct proto_ops msgtest_ops;

static struct subs *local_subs(struct conn_env *env)
{
	void **slot = conn_env_local(env, &msgtest_ops);

	ck_assert_ptr_nonnull(slot);
	if (!*slot)
		*slot = calloc(1, sizeof(struct subs));
	return *slot;
}

static void check_thread(struct conn_env *env)
{
	int i = conn_env_index(env);

	if (i < 0 || i >= rig_now->n ||
	    conn_env_config(env) != &rig_now->pcfg ||
	    msg_hub_workers(conn_env_config(env)->hub) != rig_now->n ||
	    !pthread_equal(pthread_self(), rig_now->w[i].thread))
		atomic_fetch_add(&calls_on_wrong_thread, 1);
}

/* On each worker: the published text to every local subscriber. */
static void deliver(struct conn_env *env, void *arg)
{
	struct subs *s = local_subs(env);
	char *text = arg;

	check_thread(env);
	for (int i = 0; i < s->n; i++) {
		struct conn *c = conn_env_find(env, s->id[i]);

		if (c)
			conn_reply(c, text, strlen(text));
	}
	free(text);
}

static void abort_there(struct conn_env *env, void *arg)
{
	uint64_t *id = arg;
	struct conn *c = conn_env_find(env, *id);

	check_thread(env);
	if (c)
		conn_abort(c);
	free(id);
}

static void reply_line(struct conn *c, const char *fmt, uint64_t v)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), fmt, (unsigned long long)v);

	conn_reply(c, buf, (size_t)n);
}

static int msgtest_command(struct conn *c, const char *line, size_t len)
{
	struct msg_hub *hub = conn_config(c)->hub;

	check_thread(conn_worker(c));
	if (len == 2 && !memcmp(line, "id", 2)) {
		reply_line(c, "%llu\n", conn_id(c));
	} else if (len == 3 && !memcmp(line, "sub", 3)) {
		struct subs *s = local_subs(conn_worker(c));

		ck_assert_int_lt(s->n, SUBS_MAX);
		s->id[s->n++] = conn_id(c);
		conn_reply(c, "ok\n", 3);
	} else if (len > 4 && !memcmp(line, "pub ", 4)) {
		for (int w = 0; w < msg_hub_workers(hub); w++) {
			char *text = malloc(len - 4 + 2);

			memcpy(text, line + 4, len - 4);
			memcpy(text + len - 4, "\n", 2);
			ck_assert_int_eq(msg_call(hub, w, deliver, text), 0);
		}
		conn_reply(c, "published\n", 10);
	} else if (len > 6 && !memcmp(line, "abort ", 6)) {
		uint64_t *id = malloc(sizeof(*id));

		*id = strtoull(line + 6, NULL, 10);
		ck_assert_int_eq(msg_call(hub, conn_id_worker(*id),
		    abort_there, id), 0);
		conn_reply(c, "sent\n", 5);
	} else if (len == 4 && !memcmp(line, "kill", 4)) {
		conn_abort(c);	/* in its own call: freed after it */
	} else {
		conn_reply(c, "?\n", 2);
	}
	return 0;
}

static ssize_t msgtest_data(struct conn *c, void *state, const char *in,
    size_t len)
{
	size_t pos = 0;
	const char *lf;

	while ((lf = memchr(in + pos, '\n', len - pos))) {
		msgtest_command(c, in + pos, (size_t)(lf - (in + pos)));
		pos = (size_t)(lf - in) + 1;
	}
	return (ssize_t)pos;
}

static int msgtest_wake(struct conn *c, void *state)
{
	check_thread(conn_worker(c));
	conn_reply(c, "woken\n", 6);
	return 0;
}

static void msgtest_release(struct conn *c, void *state)
{
	void **slot = conn_env_local(conn_worker(c), &msgtest_ops);
	struct subs *s = slot ? *slot : NULL;

	for (int i = 0; s && i < s->n; i++)
		if (s->id[i] == conn_id(c))
			s->id[i] = s->id[--s->n];
}

static void msgtest_worker_release(struct conn_env *env, void *local)
{
	free(local);
	atomic_fetch_add(&locals_freed, 1);
}

const struct proto_ops msgtest_ops = {
	.name = "msgtest",
	.summary = "test handler for cross-worker messages",
	.max_pending = 4096,
	.data = msgtest_data,
	.wake = msgtest_wake,
	.release = msgtest_release,
	.worker_release = msgtest_worker_release,
};

static void rig_start_ops(struct rig *r, int n, const struct proto_ops *ops,
    int pool)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int one = 1;

	memset(r, 0, sizeof(*r));
	rig_now = r;
	atomic_store(&calls_on_wrong_thread, 0);
	atomic_store(&locals_freed, 0);
	r->n = n;
	r->pcfg = (struct proto_config){ .hub = &r->hub, .max_line = 1024 };
	r->cfg = (struct worker_config){
		.high_water = 1 << 20, .low_water = 1 << 18, .grace = 5,
		.proto_cfg = &r->pcfg, .conns_now = &r->conns_now,
	};
	r->hub = (struct msg_hub){ .workers = r->w, .n = n };
	r->cl.ops = ops;
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(worker_init(&r->w[i], i, &r->cfg), 0);
	if (pool) {
		ck_assert_int_eq(offload_init(&r->offload, &r->hub, 1, 16), 0);
		r->pcfg.offload = &r->offload;
	}
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(worker_start(&r->w[i]), 0);
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(r->lfd, 0);
	setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(r->lfd, 64), 0);
	ck_assert_int_eq(getsockname(r->lfd, (struct sockaddr *)&sa, &len),
	    0);
	r->port = ntohs(sa.sin_port);
}

static void rig_start(struct rig *r, int n)
{
	rig_start_ops(r, n, &msgtest_ops, 0);
}

/* A client, served by the next worker round-robin. */
static int rig_connect(struct rig *r)
{
	int fd = test_connect(r->port);
	int sfd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	ck_assert_int_ge(sfd, 0);
	atomic_fetch_add(&r->conns_now, 1);
	ck_assert_int_eq(worker_dispatch(&r->w[r->next], sfd, &r->cl), 0);
	r->next = (r->next + 1) % r->n;
	return fd;
}

static void rig_stop(struct rig *r)
{
	for (int i = 0; i < r->n; i++)
		ck_assert_int_eq(worker_stop(&r->w[i]), 0);
	for (int i = 0; i < r->n; i++)
		worker_join(&r->w[i]);
	offload_shutdown(&r->offload);	/* as server.c: after the join */
	for (int i = 0; i < r->n; i++)
		worker_release(&r->w[i]);
	offload_release(&r->offload);
	close(r->lfd);
	ck_assert_int_eq(atomic_load(&calls_on_wrong_thread), 0);
	ck_assert_int_eq(atomic_load(&r->conns_now), 0);
	rig_now = NULL;
}

static uint64_t worker_stat_dropped(struct rig *r)
{
	uint64_t n = 0;

	for (int i = 0; i < r->n; i++)
		n += stat_get(&r->w[i].env.stats.msgs_dropped);
	return n;
}

/* One line, with its LF, into @buf (NUL-terminated); fails the test on
 * EOF or after 20 s. */
static void read_line(int fd, char *buf, size_t size)
{
	uint64_t deadline = now_ms() + 20000;
	size_t n = 0;

	while (n + 1 < size) {
		ck_assert_msg(read_exact(fd, buf + n, 1, deadline) == 1,
		    "no line (got '%.*s')", (int)n, buf);
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
}

static void expect_line(int fd, const char *want)
{
	char buf[256];

	read_line(fd, buf, sizeof(buf));
	ck_assert_str_eq(buf, want);
}

static uint64_t ask_id(int fd)
{
	char buf[64];

	write_all(fd, "id\n", 3);
	read_line(fd, buf, sizeof(buf));
	return strtoull(buf, NULL, 10);
}

START_TEST(test_msg_reply_from_another_thread_keeps_order)
{
	struct rig r;
	int fd[2];
	uint64_t id[2];
	int n = (int)scaled(2000, 200);

	rig_start(&r, 2);
	for (int i = 0; i < 2; i++) {
		fd[i] = rig_connect(&r);
		id[i] = ask_id(fd[i]);
		ck_assert_uint_ne(id[i], 0);
		ck_assert_int_eq(conn_id_worker(id[i]), i);
	}
	/* The test thread is not a worker: it can only post. */
	for (int k = 0; k < n; k++) {
		char buf[32];
		int len = snprintf(buf, sizeof(buf), "m%d\n", k);

		ck_assert_int_eq(msg_reply(&r.hub, id[k % 2], buf,
		    (size_t)len), 0);
	}
	for (int k = 0; k < n; k++) {
		char want[32];

		snprintf(want, sizeof(want), "m%d\n", k);
		expect_line(fd[k % 2], want);
	}
	ck_assert_uint_eq(worker_stat_dropped(&r), 0);
	close(fd[0]);
	close(fd[1]);
	rig_stop(&r);
}
END_TEST

static int wait_dropped(struct rig *r, uint64_t want)
{
	uint64_t deadline = now_ms() + 20000;

	while (worker_stat_dropped(r) != want && now_ms() < deadline)
		usleep(1000);
	return worker_stat_dropped(r) == want;
}

/* A call that holds its worker until the test lets it go. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_entered, gate_open;

static void gate(struct conn_env *env, void *arg)
{
	pthread_mutex_lock(&gate_lock);
	gate_entered = 1;
	pthread_cond_broadcast(&gate_cond);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
}

/* Messages are batched as connections are: while the worker is busy,
 * a burst of posts finds its queue non-empty and writes no notify, and
 * the next wake-up drains the lot, in order. */
START_TEST(test_msg_burst_costs_one_wake_up)
{
	struct rig r;
	uint64_t id, before;
	int fd, n = (int)scaled(1000, 100);

	rig_start(&r, 1);
	fd = rig_connect(&r);
	id = ask_id(fd);
	gate_entered = gate_open = 0;
	ck_assert_int_eq(msg_call(&r.hub, 0, gate, NULL), 0);
	pthread_mutex_lock(&gate_lock);
	while (!gate_entered)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	before = stat_get(&r.w[0].env.stats.wakeups);
	for (int k = 0; k < n; k++) {
		char buf[32];
		int len = snprintf(buf, sizeof(buf), "m%d\n", k);

		ck_assert_int_eq(msg_reply(&r.hub, id, buf, (size_t)len), 0);
	}
	pthread_mutex_lock(&gate_lock);
	gate_open = 1;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	for (int k = 0; k < n; k++) {
		char want[32];

		snprintf(want, sizeof(want), "m%d\n", k);
		expect_line(fd, want);
	}
	/* The gate's own wake-up was already counted; the burst's first
	 * post found the queue empty (the gate had been popped), so at
	 * most one more. */
	ck_assert_uint_le(stat_get(&r.w[0].env.stats.wakeups) - before, 1);
	close(fd);
	rig_stop(&r);
}
END_TEST

START_TEST(test_msg_for_a_closed_connection_is_dropped_and_counted)
{
	struct rig r;
	uint64_t deadline = now_ms() + 20000, id;
	int fd;

	rig_start(&r, 2);
	fd = rig_connect(&r);
	id = ask_id(fd);
	close(fd);
	while (stat_get(&r.w[0].env.stats.conns_closed) != 1 &&
	    now_ms() < deadline)
		usleep(1000);
	ck_assert_uint_eq(stat_get(&r.w[0].env.stats.conns_closed), 1);
	ck_assert_int_eq(msg_reply(&r.hub, id, "late\n", 5), 0);
	ck_assert_int_eq(msg_wake(&r.hub, id), 0);
	ck_assert(wait_dropped(&r, 2));
	ck_assert_uint_eq(stat_get(&r.w[0].env.stats.msgs_dropped), 2);
	/* An id naming no worker is refused at once. */
	ck_assert_int_eq(msg_reply(&r.hub, (uint64_t)7 << 48 | 1, "x", 1),
	    -EINVAL);
	ck_assert_int_eq(msg_wake(&r.hub, 0), -EINVAL);
	ck_assert_int_eq(msg_call(&r.hub, 2, deliver, NULL), -EINVAL);
	rig_stop(&r);
}
END_TEST

START_TEST(test_msg_call_reaches_the_local_subscribers_of_every_worker)
{
	struct rig r;
	int fd[7];

	rig_start(&r, 3);
	for (int i = 0; i < 7; i++)
		fd[i] = rig_connect(&r);
	for (int i = 0; i < 6; i++) {
		write_all(fd[i], "sub\n", 4);
		expect_line(fd[i], "ok\n");
	}
	write_all(fd[6], "pub one\npub two\n", 16);
	expect_line(fd[6], "published\n");
	expect_line(fd[6], "published\n");
	for (int i = 0; i < 6; i++) {
		expect_line(fd[i], "one\n");
		expect_line(fd[i], "two\n");
	}
	/* A subscriber that leaves stops receiving; nothing is dropped,
	 * since release() took it off its worker's list. */
	close(fd[0]);
	{
		uint64_t deadline = now_ms() + 20000;

		while (stat_get(&r.w[0].env.stats.conns_closed) != 1 &&
		    now_ms() < deadline)
			usleep(1000);
	}
	write_all(fd[6], "pub three\n", 10);
	expect_line(fd[6], "published\n");
	for (int i = 1; i < 6; i++)
		expect_line(fd[i], "three\n");
	ck_assert_uint_eq(worker_stat_dropped(&r), 0);
	for (int i = 1; i < 7; i++)
		close(fd[i]);
	rig_stop(&r);
	/* Each worker made its local state once, and freed it once. */
	ck_assert_int_eq(atomic_load(&locals_freed), 3);
}
END_TEST

START_TEST(test_msg_wake_runs_the_wake_op_on_the_owner)
{
	struct rig r;
	uint64_t id;
	int fd;

	rig_start(&r, 2);
	(void)rig_connect(&r);	/* worker 0; the next goes to 1 */
	fd = rig_connect(&r);
	id = ask_id(fd);
	ck_assert_int_eq(conn_id_worker(id), 1);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(msg_wake(&r.hub, id), 0);
	for (int i = 0; i < 3; i++)
		expect_line(fd, "woken\n");
	close(fd);
	rig_stop(&r);
}
END_TEST

START_TEST(test_msg_abort_from_another_worker_closes_the_connection)
{
	struct rig r;
	char cmd[64];
	uint64_t id;
	int a, b, n;

	rig_start(&r, 2);
	a = rig_connect(&r);
	b = rig_connect(&r);
	id = ask_id(a);
	n = snprintf(cmd, sizeof(cmd), "abort %llu\n", (unsigned long long)id);
	write_all(b, cmd, (size_t)n);
	expect_line(b, "sent\n");
	ck_assert(wait_eof(a, now_ms() + 20000));
	/* And a connection may abort itself in its own call. */
	write_all(b, "kill\n", 5);
	ck_assert(wait_eof(b, now_ms() + 20000));
	close(a);
	close(b);
	rig_stop(&r);
}
END_TEST

START_TEST(test_msg_ids_are_never_reused)
{
	struct rig r;
	uint64_t last[2] = { 0, 0 };
	int rounds = (int)scaled(100, 20);

	rig_start(&r, 2);
	for (int k = 0; k < rounds; k++) {
		int fd = rig_connect(&r);
		uint64_t id = ask_id(fd);
		int w = conn_id_worker(id);

		ck_assert_int_eq(w, k % 2);
		ck_assert_uint_gt(id, last[w]);
		last[w] = id;
		close(fd);
	}
	rig_stop(&r);
}
END_TEST

extern const struct proto_ops proto_clock;

START_TEST(test_clock_example_ticks_on_every_worker_and_wakes_from_the_pool)
{
	struct rig r;
	int fd[3];

	rig_start_ops(&r, 2, &proto_clock, 1);
	for (int i = 0; i < 3; i++)
		fd[i] = rig_connect(&r);	/* workers 0, 1, 0 */
	for (int i = 0; i < 2; i++) {
		write_all(fd[i], "watch\n", 6);
		expect_line(fd[i], "watching\n");
	}
	/* Each worker's own ticker and count. */
	for (int i = 0; i < 2; i++) {
		char buf[64];

		read_line(fd[i], buf, sizeof(buf));
		ck_assert_msg(!strncmp(buf, "tick ", 5), "%s", buf);
		read_line(fd[i], buf, sizeof(buf));
		ck_assert_msg(!strncmp(buf, "tick ", 5), "%s", buf);
	}
	/* The alarm's job sleeps on the pool, then wakes the connection;
	 * the job's own reply is empty. */
	write_all(fd[2], "alarm 50\nalarm 0\n", 18);
	expect_line(fd[2], "alarm\n");
	expect_line(fd[2], "alarm\n");
	write_all(fd[2], "nope\n", 5);
	expect_line(fd[2], "?\n");
	ck_assert_uint_eq(stat_get(&r.w[0].env.stats.jobs_done), 2);
	for (int i = 0; i < 3; i++)
		close(fd[i]);
	rig_stop(&r);
}
END_TEST

static Suite *msg_suite(void)
{
	Suite *s = suite_create("msg");
	TCase *tc = tcase_create("messages");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_msg_reply_from_another_thread_keeps_order);
	tcase_add_test(tc, test_msg_burst_costs_one_wake_up);
	tcase_add_test(tc,
	    test_msg_for_a_closed_connection_is_dropped_and_counted);
	tcase_add_test(tc,
	    test_msg_call_reaches_the_local_subscribers_of_every_worker);
	tcase_add_test(tc, test_msg_wake_runs_the_wake_op_on_the_owner);
	tcase_add_test(tc,
	    test_msg_abort_from_another_worker_closes_the_connection);
	tcase_add_test(tc, test_msg_ids_are_never_reused);
	tcase_add_test(tc,
	    test_clock_example_ticks_on_every_worker_and_wakes_from_the_pool);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(msg_suite());
}
