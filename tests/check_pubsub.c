/*
 * Integration tests for resp's pub/sub (src/pubsub.h, resp_pubsub.c)
 * on a real echoserver with three workers and real sockets: fan-out to
 * subscribers on every worker, exactly once and in order per publisher;
 * unsubscribing while messages fly; pattern matching; a subscriber that
 * never reads cut off at its limit while the others keep up, with the
 * server's memory bounded; redis-cli's SUBSCRIBE mode; and every reply
 * shape byte for byte against a real redis-server.  Connections are
 * handed to workers round-robin, so consecutive connections land on
 * different workers.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct test_server server;
static struct test_redis redis;

#define WORKERS 3
#define RESP_PORT (server.ports[1])

static void start(const char *limit)
{
	const char *args[] = { "-t", "3", "-l", "resp@127.0.0.1",
	    "--pubsub-limit", limit, NULL };

	test_server_start(&server, args);
	ck_assert_int_eq(server.n_ports, 2);
}

static void setup(void)
{
	start("32m:8m:60");
}

/* A clean stop, whose exit status also carries what a sanitizer or
 * valgrind found in the server during the test. */
static void teardown(void)
{
	if (server.pid > 0)
		free(test_server_stop_clean(&server));
	test_server_cleanup(&server);
	test_redis_stop(&redis);
}

/* --- a small RESP client ------------------------------------------------- */

struct client {
	int fd;
	char *buf;
	size_t len, off, cap;
};

/* A client on the connected socket @fd (taken over). */
static void client_adopt(struct client *cl, int fd)
{
	memset(cl, 0, sizeof(*cl));
	cl->fd = fd;
	cl->cap = 1 << 16;
	cl->buf = malloc(cl->cap);
	ck_assert_ptr_nonnull(cl->buf);
}

static void client_open(struct client *cl, int port)
{
	client_adopt(cl, test_connect(port));
}

static void client_close(struct client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl->buf);
	memset(cl, 0, sizeof(*cl));
	cl->fd = -1;
}

/* Appends the multibulk request of the NULL-terminated @args (with the
 * lengths @lens, or strlen when NULL) to @out, which must have room. */
static size_t encode(char *out, const char *const *args, const size_t *lens)
{
	size_t n = 0, argc = 0, off = 0;

	while (args[argc])
		argc++;
	off += (size_t)sprintf(out + off, "*%zu\r\n", argc);
	for (n = 0; n < argc; n++) {
		size_t len = lens ? lens[n] : strlen(args[n]);

		off += (size_t)sprintf(out + off, "$%zu\r\n", len);
		memcpy(out + off, args[n], len);
		off += len;
		memcpy(out + off, "\r\n", 2);
		off += 2;
	}
	return off;
}

static void client_send(struct client *cl, const char *const *args)
{
	char out[4096];

	write_all(cl->fd, out, encode(out, args, NULL));
}

/* The length of the complete RESP value at @p (@len bytes), 0 if it is
 * not complete yet. */
static size_t value_len(const char *p, size_t len)
{
	const char *nl = memchr(p, '\n', len);
	size_t head;
	long n;

	if (!nl)
		return 0;
	head = (size_t)(nl - p) + 1;
	n = strtol(p + 1, NULL, 10);
	switch (p[0]) {
	case '$':
		if (n < 0)
			return head;
		return len >= head + (size_t)n + 2 ? head + (size_t)n + 2 : 0;
	case '*': {
		size_t at = head;

		for (long i = 0; i < n; i++) {
			size_t v = at < len ? value_len(p + at, len - at) : 0;

			if (!v)
				return 0;
			at += v;
		}
		return at;
	}
	default:
		return head;
	}
}

/*
 * The next complete value from @cl, pointing into its buffer (valid
 * until the next call), or NULL if none came by @deadline or the server
 * closed.
 */
static const char *client_value(struct client *cl, size_t *vlen,
    uint64_t deadline)
{
	for (;;) {
		size_t v = cl->len > cl->off ?
		    value_len(cl->buf + cl->off, cl->len - cl->off) : 0;
		struct pollfd pfd = { cl->fd, POLLIN, 0 };
		ssize_t r;

		if (v) {
			const char *p = cl->buf + cl->off;

			cl->off += v;
			*vlen = v;
			return p;
		}
		if (cl->off) {
			memmove(cl->buf, cl->buf + cl->off, cl->len - cl->off);
			cl->len -= cl->off;
			cl->off = 0;
		}
		if (cl->len == cl->cap) {
			cl->cap *= 2;
			cl->buf = realloc(cl->buf, cl->cap);
			ck_assert_ptr_nonnull(cl->buf);
		}
		if (now_ms() >= deadline ||
		    poll(&pfd, 1, (int)(deadline - now_ms())) <= 0)
			return NULL;
		r = read(cl->fd, cl->buf + cl->len, cl->cap - cl->len);
		if (r <= 0)
			return NULL;
		cl->len += (size_t)r;
	}
}

static uint64_t deadline_s(int s)
{
	const char *m = getenv("CK_TIMEOUT_MULTIPLIER");

	return now_ms() + (uint64_t)s * 1000 * (m ? (uint64_t)atoi(m) : 1);
}

/* Reads one value and checks it is exactly @want. */
static void expect(struct client *cl, const char *want)
{
	size_t len;
	const char *v = client_value(cl, &len, deadline_s(20));

	ck_assert_msg(v, "no reply; wanted '%s'", want);
	ck_assert_msg(len == strlen(want) && !memcmp(v, want, len),
	    "got '%.*s', wanted '%s'", (int)len, v, want);
}

/* A push "message" or "pmessage": its channel, pattern and payload. */
struct push {
	char kind;		/* 'm' or 'p' */
	char pat[64], ch[64], msg[2048];
};

/* Copies the bulk at *@p into @out (NUL-terminated) and moves past it. */
static void take_bulk(const char **p, char *out, size_t size)
{
	long n = strtol(*p + 1, NULL, 10);
	const char *data = strchr(*p, '\n') + 1;

	ck_assert_int_lt(n, (long)size);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*p = data + n + 2;
}

static int client_push(struct client *cl, struct push *m, uint64_t deadline)
{
	size_t len;
	const char *v = client_value(cl, &len, deadline), *p;
	char kind[16];

	if (!v)
		return 0;
	memset(m, 0, sizeof(*m));
	ck_assert_msg(v[0] == '*', "not a push: '%.*s'", (int)len, v);
	p = strchr(v, '\n') + 1;
	take_bulk(&p, kind, sizeof(kind));
	if (!strcmp(kind, "pmessage")) {
		m->kind = 'p';
		take_bulk(&p, m->pat, sizeof(m->pat));
	} else {
		ck_assert_str_eq(kind, "message");
		m->kind = 'm';
	}
	take_bulk(&p, m->ch, sizeof(m->ch));
	take_bulk(&p, m->msg, sizeof(m->msg));
	return 1;
}

static long client_int(struct client *cl)
{
	size_t len;
	const char *v = client_value(cl, &len, deadline_s(20));

	ck_assert_msg(v && v[0] == ':', "not an integer: '%.*s'",
	    v ? (int)len : 0, v ? v : "");
	return strtol(v + 1, NULL, 10);
}

/* Subscribes @cl to @ch (or with @pattern, psubscribes) and checks the
 * confirmation, whose count must be @count. */
static void subscribe(struct client *cl, const char *ch, int pattern,
    int count)
{
	const char *kind = pattern ? "psubscribe" : "subscribe";
	const char *args[] = { kind, ch, NULL };
	char want[256];

	client_send(cl, args);
	snprintf(want, sizeof(want), "*3\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n:%d"
	    "\r\n", strlen(kind), kind, strlen(ch), ch, count);
	expect(cl, want);
}

/* --- fan-out across workers --------------------------------------------- */

#define SUBS 12
#define PUBS 3

struct sub_thread {
	struct client cl;
	long want;		/* messages in all */
	long next[PUBS];	/* the sequence number expected next */
	long got;
	const char *error;
};

static void *sub_run(void *arg)
{
	struct sub_thread *t = arg;
	uint64_t deadline = deadline_s(60);
	struct push m;

	while (t->got < t->want) {
		int p;
		long seq;

		if (!client_push(&t->cl, &m, deadline)) {
			t->error = "messages stopped coming";
			return NULL;
		}
		if (sscanf(m.msg, "p%d:%ld", &p, &seq) != 2 || p < 0 ||
		    p >= PUBS || strcmp(m.ch, "fan")) {
			t->error = "a message that was not published";
			return NULL;
		}
		if (seq != t->next[p]) {
			t->error = seq < t->next[p] ? "a duplicate" :
			    "a gap or a reordering";
			return NULL;
		}
		t->next[p]++;
		t->got++;
	}
	return NULL;
}

struct pub_thread {
	struct client cl;
	int id;
	long n;
	long receivers;		/* what every PUBLISH must answer */
	const char *error;
};

/* Publishes n messages in bursts of 100 per write, reading the replies
 * of each burst before the next. */
static void *pub_run(void *arg)
{
	struct pub_thread *t = arg;
	char *out = malloc(100 * 128);

	for (long i = 0; i < t->n && !t->error; i += 100) {
		size_t len = 0;
		long k = t->n - i < 100 ? t->n - i : 100;

		for (long j = 0; j < k; j++) {
			char msg[32];
			const char *args[] = { "PUBLISH", "fan", msg, NULL };

			snprintf(msg, sizeof(msg), "p%d:%ld", t->id, i + j);
			len += encode(out + len, args, NULL);
		}
		write_all(t->cl.fd, out, len);
		for (long j = 0; j < k; j++) {
			size_t vl;
			const char *v = client_value(&t->cl, &vl,
			    deadline_s(30));

			if (!v || v[0] != ':' ||
			    strtol(v + 1, NULL, 10) != t->receivers)
				t->error = "a wrong receiver count";
		}
	}
	free(out);
	return NULL;
}

START_TEST(test_pubsub_every_message_reaches_every_worker_once_in_order)
{
	long n = (long)scaled(20000, 500);
	struct sub_thread subs[SUBS];
	struct pub_thread pubs[PUBS];
	pthread_t st[SUBS], pt[PUBS];
	struct client probe;

	/* 12 subscribers over the 3 workers, four on each; two of each
	 * four by a pattern that matches "fan", so the channel and pattern
	 * paths are both crossed. */
	for (int i = 0; i < SUBS; i++) {
		memset(&subs[i], 0, sizeof(subs[i]));
		client_open(&subs[i].cl, RESP_PORT);
		subscribe(&subs[i].cl, i % 4 < 2 ? "fan" : "f?n", i % 4 >= 2,
		    1);
		subs[i].want = n * PUBS;
	}
	client_open(&probe, RESP_PORT);
	client_send(&probe, (const char *const[]){ "PUBSUB", "NUMSUB", "fan",
	    NULL });
	expect(&probe, "*2\r\n$3\r\nfan\r\n:6\r\n");
	client_send(&probe, (const char *const[]){ "PUBSUB", "NUMPAT",
	    NULL });
	expect(&probe, ":1\r\n");
	for (int i = 0; i < SUBS; i++)
		ck_assert_int_eq(pthread_create(&st[i], NULL, sub_run,
		    &subs[i]), 0);
	/* One publisher per worker. */
	for (int i = 0; i < PUBS; i++) {
		pubs[i] = (struct pub_thread){ .id = i, .n = n,
		    .receivers = SUBS };
		client_open(&pubs[i].cl, RESP_PORT);
		ck_assert_int_eq(pthread_create(&pt[i], NULL, pub_run,
		    &pubs[i]), 0);
	}
	for (int i = 0; i < PUBS; i++) {
		pthread_join(pt[i], NULL);
		ck_assert_msg(!pubs[i].error, "publisher %d: %s", i,
		    pubs[i].error);
		client_close(&pubs[i].cl);
	}
	for (int i = 0; i < SUBS; i++) {
		pthread_join(st[i], NULL);
		ck_assert_msg(!subs[i].error, "subscriber %d: %s after %ld "
		    "messages", i, subs[i].error, subs[i].got);
		ck_assert_int_eq(subs[i].got, n * PUBS);
		client_close(&subs[i].cl);
	}
	client_close(&probe);
}
END_TEST

/* --- unsubscribing while messages fly ------------------------------------ */

struct streamer {
	struct client cl;
	atomic_int stop;
	long sent;
};

/* Publishes "seq" numbers on "race" until told to stop. */
static void *stream_run(void *arg)
{
	struct streamer *s = arg;
	char out[50 * 64];

	while (!atomic_load(&s->stop)) {
		size_t len = 0;

		for (int j = 0; j < 50; j++) {
			char msg[32];
			const char *args[] = { "PUBLISH", "race", msg, NULL };

			snprintf(msg, sizeof(msg), "%ld", s->sent + j);
			len += encode(out + len, args, NULL);
		}
		write_all(s->cl.fd, out, len);
		for (int j = 0; j < 50; j++) {
			size_t vl;

			if (!client_value(&s->cl, &vl, deadline_s(30)))
				return NULL;
		}
		s->sent += 50;
	}
	return NULL;
}

START_TEST(test_pubsub_unsubscribe_racing_publish_loses_and_repeats_nothing)
{
	struct streamer s;
	struct client subs[WORKERS];
	long last[WORKERS];
	int rounds = (int)scaled(200, 20);
	pthread_t t;

	memset(&s, 0, sizeof(s));
	client_open(&s.cl, RESP_PORT);
	for (int i = 0; i < WORKERS; i++) {
		client_open(&subs[i], RESP_PORT);
		last[i] = -1;
	}
	ck_assert_int_eq(pthread_create(&t, NULL, stream_run, &s), 0);
	/* Each subscriber, one per worker, subscribes and unsubscribes
	 * again and again while the stream runs.  Between its subscribe
	 * and unsubscribe replies it must see increasing numbers only, and
	 * nothing after the unsubscribe reply but its next subscribe's. */
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < WORKERS; i++) {
			struct client *cl = &subs[i];
			int got = 0;

			subscribe(cl, "race", 0, 1);
			for (;;) {
				size_t len;
				const char *v;
				struct push m;

				if (got == 3) {
					client_send(cl, (const char *const[]){
					    "UNSUBSCRIBE", "race", NULL });
					got++;
				}
				v = client_value(cl, &len, deadline_s(20));
				ck_assert_msg(v, "subscriber %d stalled", i);
				if (memmem(v, len, "unsubscribe", 11))
					break;
				cl->off -= len;		/* read it again */
				ck_assert(client_push(cl, &m, now_ms()));
				ck_assert_msg(atol(m.msg) > last[i],
				    "subscriber %d: %s after %ld", i, m.msg,
				    last[i]);
				last[i] = atol(m.msg);
				got += got < 3;
			}
		}
	atomic_store(&s.stop, 1);
	pthread_join(t, NULL);
	/* Nothing arrives once unsubscribed. */
	for (int i = 0; i < WORKERS; i++) {
		size_t len;

		client_send(&subs[i], (const char *const[]){ "PING", NULL });
		expect(&subs[i], "+PONG\r\n");
		ck_assert_ptr_null(client_value(&subs[i], &len,
		    now_ms() + 100));
		client_close(&subs[i]);
	}
	client_send(&s.cl, (const char *const[]){ "PUBSUB", "NUMSUB",
	    "race", NULL });
	expect(&s.cl, "*2\r\n$4\r\nrace\r\n:0\r\n");
	client_close(&s.cl);
}
END_TEST

/* A subscriber that goes away with messages on their way to it is
 * forgotten at once: they are dropped, and the server serves on. */
START_TEST(test_pubsub_subscribers_closing_under_a_stream_are_forgotten)
{
	struct streamer s;
	int rounds = (int)scaled(300, 30);
	pthread_t t;

	memset(&s, 0, sizeof(s));
	client_open(&s.cl, RESP_PORT);
	ck_assert_int_eq(pthread_create(&t, NULL, stream_run, &s), 0);
	for (int r = 0; r < rounds; r++) {
		struct client cl;

		client_open(&cl, RESP_PORT);
		subscribe(&cl, "race", 0, 1);
		/* Messages may come before the second confirmation. */
		client_send(&cl, (const char *const[]){ "PSUBSCRIBE", "r*",
		    NULL });
		for (;;) {
			size_t len;
			const char *v = client_value(&cl, &len,
			    deadline_s(20));

			ck_assert_ptr_nonnull(v);
			if (memmem(v, len, "psubscribe", 10))
				break;
		}
		client_close(&cl);
	}
	atomic_store(&s.stop, 1);
	pthread_join(t, NULL);
	client_send(&s.cl, (const char *const[]){ "PING", NULL });
	expect(&s.cl, "+PONG\r\n");
	ck_assert_int_eq(test_server_wait_stat(&server, "conns_open", 1,
	    deadline_s(20)), 1);
	client_send(&s.cl, (const char *const[]){ "PUBSUB", "NUMSUB",
	    "race", NULL });
	expect(&s.cl, "*2\r\n$4\r\nrace\r\n:0\r\n");
	client_send(&s.cl, (const char *const[]){ "PUBSUB", "NUMPAT", NULL });
	expect(&s.cl, ":0\r\n");
	client_close(&s.cl);
}
END_TEST

/* --- patterns ------------------------------------------------------------ */

START_TEST(test_pubsub_patterns_match_with_redis_globs)
{
	static const char *const pats[] = {
		"news.*", "n?ws.[a-c]x", "\\*lit", "[^n]*",
	};
	static const struct {
		const char *ch;
		const char *matched;	/* the patterns, in order */
	} cases[] = {
		{ "news.tech", "news.*" },
		{ "news.bx", "news.* n?ws.[a-c]x" },
		{ "nows.cx", "n?ws.[a-c]x" },
		{ "news.dx", "news.*" },
		{ "*lit", "\\*lit [^n]*" },
		{ "xlit", "[^n]*" },
		{ "news", "" },
	};
	struct client sub, pub;

	client_open(&sub, RESP_PORT);
	client_open(&pub, RESP_PORT);
	for (int i = 0; i < 4; i++)
		subscribe(&sub, pats[i], 1, i + 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = { "PUBLISH", cases[i].ch, "hi", NULL };
		char want[64] = "";
		long n;

		client_send(&pub, args);
		n = client_int(&pub);
		for (long k = 0; k < n; k++) {
			struct push m;

			ck_assert(client_push(&sub, &m, deadline_s(20)));
			ck_assert_int_eq(m.kind, 'p');
			ck_assert_str_eq(m.ch, cases[i].ch);
			ck_assert_str_eq(m.msg, "hi");
			if (k)
				strcat(want, " ");
			strcat(want, m.pat);
		}
		ck_assert_msg(!strcmp(want, cases[i].matched),
		    "'%s' matched '%s', not '%s'", cases[i].ch, want,
		    cases[i].matched);
	}
	client_send(&pub, (const char *const[]){ "PUBSUB", "NUMPAT", NULL });
	expect(&pub, ":4\r\n");
	client_close(&sub);
	client_close(&pub);
}
END_TEST

/* --- slow subscribers ----------------------------------------------------- */

/* A subscriber that never reads, with a small receive buffer (set
 * before connecting, so that the window is negotiated small) so that
 * the server's side fills up soon. */
static int slow_subscriber(const char *ch)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_port = htons((uint16_t)RESP_PORT) };
	struct client cl;
	int small = 4096, fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	client_adopt(&cl, fd);
	subscribe(&cl, ch, 0, 1);
	fd = cl.fd;
	cl.fd = -1;
	client_close(&cl);
	return fd;
}

struct keeper {
	struct client cl;
	long want;
	_Atomic long got;
	const char *error;
};

static void *keeper_run(void *arg)
{
	struct keeper *k = arg;
	uint64_t deadline = deadline_s(120);
	struct push m;

	while (k->got < k->want) {
		if (!client_push(&k->cl, &m, deadline)) {
			k->error = "messages stopped coming";
			return NULL;
		}
		if (atol(m.msg) != atomic_load(&k->got)) {
			k->error = "a message out of order";
			return NULL;
		}
		atomic_fetch_add(&k->got, 1);
	}
	return NULL;
}

/*
 * Publishes @n messages of about 1 KiB ("seq" then padding) on @ch,
 * never more than 512 ahead of any of the @nk keepers @k, so that a
 * keeper slowed by a busy machine never nears the limit that cuts off
 * the subscriber that does not read at all.
 */
static void publish_stream(struct client *pub, const char *ch, long n,
    struct keeper *keepers, int nk)
{
	char msg[1024], *out = malloc(100 * 1200);
	uint64_t deadline = deadline_s(120);

	memset(msg, 'x', sizeof(msg));
	for (long i = 0; i < n; i += 100) {
		size_t len = 0;
		long k = n - i < 100 ? n - i : 100;

		for (int j = 0; j < nk; j++)
			while (atomic_load(&keepers[j].got) < i - 512 &&
			    !keepers[j].error && now_ms() < deadline)
				poll(NULL, 0, 1);

		for (long j = 0; j < k; j++) {
			const char *args[] = { "PUBLISH", ch, msg, NULL };
			size_t lens[] = { 7, strlen(ch), sizeof(msg) };
			int d = snprintf(msg, 24, "%ld", i + j);

			msg[d] = ' ';
			len += encode(out + len, args, lens);
		}
		write_all(pub->fd, out, len);
		for (long j = 0; j < k; j++)
			ck_assert_int_ge(client_int(pub), 1);
	}
	free(out);
}

START_TEST(test_pubsub_slow_subscriber_is_cut_off_at_the_hard_limit)
{
	long n = (long)scaled(20000, 8000);	/* 20 MiB, past 2 MiB */
	struct keeper k[2];
	pthread_t t[2];
	struct client pub;
	long rss0, rss1;
	int slow;
	char *log;

	test_server_stop(&server, SIGKILL);
	test_server_cleanup(&server);
	start("2m");
	slow = slow_subscriber("flood");
	for (int i = 0; i < 2; i++) {
		memset(&k[i], 0, sizeof(k[i]));
		client_open(&k[i].cl, RESP_PORT);
		subscribe(&k[i].cl, "flood", 0, 1);
		k[i].want = n;
		ck_assert_int_eq(pthread_create(&t[i], NULL, keeper_run,
		    &k[i]), 0);
	}
	client_open(&pub, RESP_PORT);
	rss0 = procstat_rss_kib(server.pid);
	publish_stream(&pub, "flood", n, k, 2);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		ck_assert_msg(!k[i].error, "subscriber %d: %s after %ld", i,
		    k[i].error, atomic_load(&k[i].got));
	}
	rss1 = procstat_rss_kib(server.pid);
	ck_assert_int_eq(test_server_wait_stat(&server, "output_overflows", 1,
	    deadline_s(20)), 1);
	/* The slow one was closed: what it can still read ends. */
	ck_assert_int_eq(wait_eof(slow, deadline_s(20)), 1);
	close(slow);
	client_send(&pub, (const char *const[]){ "PUBSUB", "NUMSUB", "flood",
	    NULL });
	expect(&pub, "*2\r\n$5\r\nflood\r\n:2\r\n");
	/* 20 MiB went to a reader that took none of it; the server kept at
	 * most its 2 MiB limit and the kernel's buffers of it. */
	if (rss_is_meaningful())
		ck_assert_msg(rss1 - rss0 < 16 * 1024, "RSS grew by %ld KiB "
		    "(from %ld)", rss1 - rss0, rss0);
	for (int i = 0; i < 2; i++)
		client_close(&k[i].cl);
	client_close(&pub);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(test_stat(log, "at exit", "total",
	    "output_overflows"), 1);
	free(log);
}
END_TEST

START_TEST(test_pubsub_slow_subscriber_is_cut_off_after_the_soft_period)
{
	struct client pub, fast;
	uint64_t t0, deadline = deadline_s(60);
	int slow, cut = 0;

	test_server_stop(&server, SIGKILL);
	test_server_cleanup(&server);
	start("64m:256k:1");
	slow = slow_subscriber("soft");
	client_open(&fast, RESP_PORT);
	subscribe(&fast, "soft", 0, 1);
	client_open(&pub, RESP_PORT);
	t0 = now_ms();
	/* Rounds of 200 messages, each read in full by the fast one, until
	 * the slow one has been past 256 KiB for a second and is cut. */
	while (!cut && now_ms() < deadline) {
		struct keeper k = { .cl = fast, .want = 200 };
		pthread_t t;

		ck_assert_int_eq(pthread_create(&t, NULL, keeper_run, &k), 0);
		publish_stream(&pub, "soft", 200, &k, 1);
		pthread_join(t, NULL);
		ck_assert_msg(!k.error, "fast subscriber: %s", k.error);
		fast = k.cl;
		if (now_ms() - t0 > 1000)
			cut = test_server_wait_stat(&server,
			    "output_overflows", 1, now_ms() + 50);
	}
	ck_assert_msg(cut, "the slow subscriber was never cut off");
	ck_assert_uint_ge(now_ms() - t0, 1000);
	ck_assert_int_eq(wait_eof(slow, deadline_s(20)), 1);
	close(slow);
	client_close(&fast);
	client_close(&pub);
}
END_TEST

/* --- redis-cli and redis-server -------------------------------------------- */

/* Waits until PUBSUB NUMSUB @ch is @n on @port. */
static void wait_numsub(int port, const char *ch, int n)
{
	struct client cl;
	char want[64];
	uint64_t deadline = deadline_s(20);

	snprintf(want, sizeof(want), "*2\r\n$%zu\r\n%s\r\n:%d\r\n",
	    strlen(ch), ch, n);
	client_open(&cl, port);
	for (;;) {
		size_t len;
		const char *v;

		client_send(&cl, (const char *const[]){ "PUBSUB", "NUMSUB",
		    ch, NULL });
		v = client_value(&cl, &len, deadline);
		ck_assert_ptr_nonnull(v);
		if (len == strlen(want) && !memcmp(v, want, len))
			break;
		ck_assert_msg(now_ms() < deadline, "no subscriber on '%s'",
		    ch);
		poll(NULL, 0, 10);
	}
	client_close(&cl);
}

/*
 * redis-cli subscribe in the background against @port: three messages
 * published from another client, then its output.  Caller frees.
 */
static char *cli_subscribe_session(int port)
{
	char path[] = "/tmp/echoserver-pubsub-cli.XXXXXX", cmd[256];
	int fd = mkstemp(path), status;
	struct client pub;
	uint64_t deadline = deadline_s(20);
	char *out;
	pid_t pid;

	ck_assert_int_ge(fd, 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char p[16];

		snprintf(p, sizeof(p), "%d", port);
		dup2(fd, 1);
		dup2(fd, 2);
		execlp("redis-cli", "redis-cli", "-p", p, "subscribe", "news",
		    "sport", (char *)NULL);
		_exit(127);
	}
	close(fd);
	wait_numsub(port, "sport", 1);
	client_open(&pub, port);
	client_send(&pub, (const char *const[]){ "PUBLISH", "news", "hello",
	    NULL });
	client_send(&pub, (const char *const[]){ "PUBLISH", "sport",
	    "two words", NULL });
	client_send(&pub, (const char *const[]){ "PUBLISH", "news", "", NULL });
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(client_int(&pub), 1);
	client_close(&pub);
	/* Until its output holds the last message, then stop it. */
	for (;;) {
		snprintf(cmd, sizeof(cmd), "cat %s", path);
		out = test_shell(cmd, &status);
		if (strstr(out, "two words\nmessage\nnews\n\n") ||
		    now_ms() > deadline)
			break;
		free(out);
		poll(NULL, 0, 20);
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	unlink(path);
	return out;
}

START_TEST(test_pubsub_redis_cli_subscribe_prints_what_is_published)
{
	char *ours = cli_subscribe_session(RESP_PORT), *theirs;

	ck_assert_msg(strstr(ours, "subscribe\nnews\n1\nsubscribe\nsport\n2\n"
	    "message\nnews\nhello\nmessage\nsport\ntwo words\nmessage\n"
	    "news\n\n"), "redis-cli printed: %s", ours);
	if (test_have_tool("redis-server")) {
		test_redis_start(&redis);
		theirs = cli_subscribe_session(redis.port);
		ck_assert_str_eq(ours, theirs);
		free(theirs);
	}
	free(ours);
}
END_TEST

/*
 * One session of three clients: r and r2 subscribe, p publishes and
 * asks.  Each step sends a request (or none) on one client and reads a
 * known number of values from it.  No message matches two patterns of
 * one subscriber: redis sends those in the order of its hash table,
 * which changes from run to run.
 */
static const struct step {
	int who;		/* 0 r, 1 r2, 2 p */
	const char *args[6];
	int replies;
} steps[] = {
	{ 0, { "UNSUBSCRIBE" }, 1 },
	{ 0, { "PUNSUBSCRIBE" }, 1 },
	{ 0, { "SUBSCRIBE" }, 1 },
	{ 2, { "PUBLISH", "a" }, 1 },
	{ 2, { "PUBSUB" }, 1 },
	{ 2, { "PUBSUB", "CHANNELS", "a", "b" }, 1 },
	{ 2, { "PUBSUB", "NUMPAT", "x" }, 1 },
	{ 2, { "PUBSUB", "NUMSUB" }, 1 },
	{ 2, { "PUBSUB", "foo" }, 1 },
	{ 2, { "PUBSUB", "HELP" }, 1 },
	{ 2, { "PUBSUB", "HELP", "x" }, 1 },
	{ 0, { "SUBSCRIBE", "a", "b", "a" }, 3 },
	{ 0, { "PING" }, 1 },
	{ 0, { "PING", "x" }, 1 },
	{ 0, { "PING", "x", "y" }, 1 },
	{ 0, { "GET", "k" }, 1 },
	{ 0, { "SET", "k", "v" }, 1 },
	{ 0, { "FOO" }, 1 },
	{ 0, { "PSUBSCRIBE", "a*", "a*" }, 2 },
	{ 0, { "PSUBSCRIBE", "[xy]" }, 1 },
	{ 1, { "PSUBSCRIBE", "a*" }, 1 },
	{ 1, { "SUBSCRIBE", "a" }, 1 },
	{ 2, { "PUBSUB", "CHANNELS", "a" }, 1 },
	{ 2, { "PUBSUB", "CHANNELS", "[" }, 1 },
	{ 2, { "PUBSUB", "NUMSUB", "a", "zz", "b" }, 1 },
	{ 2, { "PUBSUB", "NUMPAT" }, 1 },
	{ 2, { "PUBLISH", "a", "hi" }, 1 },
	{ 2, { "publish", "ab", "hi" }, 1 },
	{ 0, { NULL }, 3 },
	{ 1, { NULL }, 3 },
	{ 0, { "UNSUBSCRIBE", "zz" }, 1 },
	{ 1, { "UNSUBSCRIBE" }, 1 },
	{ 1, { "PUNSUBSCRIBE" }, 1 },
	{ 1, { "UNSUBSCRIBE" }, 1 },
	{ 1, { "ECHO", "out of subscribed mode" }, 1 },
	{ 0, { "PUNSUBSCRIBE", "a*", "zz" }, 2 },
	{ 0, { "UNSUBSCRIBE", "b" }, 1 },
	{ 2, { "PUBSUB", "SHARDCHANNELS" }, 1 },
	{ 2, { "PUBSUB", "SHARDNUMSUB", "a" }, 1 },
	{ 2, { "PUBLISH", "a", "x", "y" }, 1 },
	{ 2, { "PUBLISH", "b", "" }, 1 },
	{ 0, { "SUBSCRIBE", "" }, 1 },
	{ 2, { "PUBLISH", "", "empty" }, 1 },
	{ 0, { NULL }, 1 },
	{ 2, { "PUBSUB", "NUMSUB", "" }, 1 },
	{ 0, { "QUIT" }, 1 },
};

#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

/* Runs the session on @port; returns every step's bytes, caller frees
 * each. */
static void run_session(int port, char **out)
{
	struct client cl[3];

	for (int i = 0; i < 3; i++)
		client_open(&cl[i], port);
	for (size_t s = 0; s < NSTEPS; s++) {
		struct client *c = &cl[steps[s].who];
		size_t total = 0;

		if (steps[s].args[0])
			client_send(c, steps[s].args);
		out[s] = malloc(1 << 16);
		for (int k = 0; k < steps[s].replies; k++) {
			size_t len;
			const char *v = client_value(c, &len, deadline_s(20));

			ck_assert_msg(v, "step %zu: reply %d missing", s, k);
			ck_assert_uint_lt(total + len, 1 << 16);
			memcpy(out[s] + total, v, len);
			total += len;
		}
		out[s][total] = '\0';
	}
	for (int i = 0; i < 3; i++)
		client_close(&cl[i]);
}

START_TEST(test_pubsub_replies_are_byte_identical_to_redis_server)
{
	char *ours[NSTEPS], *theirs[NSTEPS];

	test_redis_start(&redis);
	run_session(RESP_PORT, ours);
	run_session(redis.port, theirs);
	for (size_t s = 0; s < NSTEPS; s++) {
		ck_assert_msg(!strcmp(ours[s], theirs[s]), "step %zu (%s %s): "
		    "echoserver said '%s', redis-server '%s'", s,
		    steps[s].args[0] ? steps[s].args[0] : "(read)",
		    steps[s].args[1] ? steps[s].args[1] : "", ours[s],
		    theirs[s]);
		free(ours[s]);
		free(theirs[s]);
	}
}
END_TEST

static Suite *pubsub_suite(void)
{
	Suite *s = suite_create("pubsub");
	const char *no_cli = test_have_tool("redis-cli") ? NULL :
	    "redis-cli is not installed (apt-get install redis-tools)";
	const char *no_redis = test_have_tool("redis-server") ? NULL :
	    "redis-server is not installed (apt-get install redis-server)";
	TCase *tc = tcase_create("delivery");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc,
	    test_pubsub_every_message_reaches_every_worker_once_in_order);
	tcase_add_test(tc,
	    test_pubsub_unsubscribe_racing_publish_loses_and_repeats_nothing);
	tcase_add_test(tc,
	    test_pubsub_subscribers_closing_under_a_stream_are_forgotten);
	tcase_add_test(tc, test_pubsub_patterns_match_with_redis_globs);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc,
	    test_pubsub_slow_subscriber_is_cut_off_at_the_hard_limit);
	tcase_add_test(tc,
	    test_pubsub_slow_subscriber_is_cut_off_after_the_soft_period);
	suite_add_tcase(s, tc);

	tc = tcase_create("redis");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	test_add_or_skip(tc,
	    test_pubsub_redis_cli_subscribe_prints_what_is_published, no_cli);
	test_add_or_skip(tc,
	    test_pubsub_replies_are_byte_identical_to_redis_server, no_redis);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(pubsub_suite());
}
