/*
 * Stress tests of issue 5 (make stress), too long for make check: connection
 * churn, a connection flood past the fd limit, trickling clients beside a
 * fast one, a client that never reads, and SIGTERM under load.  Each runs a
 * real echoserver and prints one "stress NAME:" line of what it measured.
 *
 * Sizes come from the environment (the Makefile passes its variables on):
 * STRESS_CHURN, STRESS_FLOOD, STRESS_FLOOD_NOFILE, STRESS_TRICKLE,
 * STRESS_HOG_MIB and STRESS_SIGTERM_CLIENTS.  Unset, they are the full
 * sizes of the issue, or with STRESS_SMALL=1 sizes that run in about a
 * minute (CI, TSan).  docs/operations.md records the figures.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define KIB 1024L
#define MIB (1024L * 1024)

/* Source addresses 127.0.0.x, a block per scenario, so that no scenario
 * runs out of ephemeral ports or meets another's TIME_WAIT sockets. */
#define SRC_CHURN 10		/* .. 25 */
#define SRC_FLOOD 30		/* .. 45, 8 per run */
#define SRC_TRICKLE 50		/* .. 57 */
#define SRC_SIGTERM 60		/* .. 67 */

static struct {
	bool small;
	long churn, flood, flood_nofile, trickle, hog_mib, sigterm_clients;
} sz;

static long env_size(const char *name, long full, long small)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return sz.small ? small : full;
	v = strtol(s, &end, 10);
	if (*end || v < 1) {
		fprintf(stderr, "stress: bad %s '%s'\n", name, s);
		exit(2);
	}
	return v;
}

static void read_sizes(void)
{
	const char *s = getenv("STRESS_SMALL");

	sz.small = s && *s && strcmp(s, "0") != 0;
	sz.churn = env_size("STRESS_CHURN", 1000000, 20000);
	sz.flood = env_size("STRESS_FLOOD", 25000, 2000);
	/* 0: the server keeps the test's limit, the 20,000 hard limit. */
	sz.flood_nofile = env_size("STRESS_FLOOD_NOFILE", 0, 1024);
	sz.trickle = env_size("STRESS_TRICKLE", 1000, 1000);
	sz.hog_mib = env_size("STRESS_HOG_MIB", 1024, 256);
	sz.sigterm_clients = env_size("STRESS_SIGTERM_CLIENTS", 1000, 100);
}

static struct test_server server;

static void teardown(void)
{
	test_server_stop(&server, SIGKILL);
	test_server_cleanup(&server);
}

static void set_nonblocking(int fd)
{
	ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK),
	    0);
}

/* Polls until the server's fd count is @want; returns the last count. */
static int wait_fd_count(int want, uint64_t deadline)
{
	int n;

	while ((n = proc_fd_count(server.pid)) != want && now_ms() < deadline)
		poll(NULL, 0, 10);	/* a poll interval, bounded above */
	return n;
}

/* The connection limit from the start-up line "... max N connections". */
static long logged_max_conns(void)
{
	char *log = test_server_log(&server);
	const char *p = strstr(log, "; max ");
	long v = p ? strtol(p + 6, NULL, 10) : -1;

	free(log);
	return v;
}

/* --- churn ------------------------------------------------------------ */

enum { CHURN_THREADS = 4, CHURN_SOURCES = 4 };

struct churn_thread {
	pthread_t thread;
	int id, port;
	long cycles, done;
	char error[128];	/* the first failure; empty if none */
};

/* connect, echo 8 bytes, close; the first failure ends the thread. */
static void *churn_main(void *arg)
{
	struct churn_thread *t = arg;

	for (long i = 0; i < t->cycles; i++) {
		uint64_t token = ((uint64_t)t->id << 48) | (uint64_t)i, back;
		int src = SRC_CHURN + t->id * CHURN_SOURCES +
		    (int)(i % CHURN_SOURCES);
		int fd = test_connect_from(t->port, src);

		if (fd < 0) {
			snprintf(t->error, sizeof(t->error), "cycle %ld: "
			    "connect: %s", i, strerror(errno));
			break;
		}
		if (write(fd, &token, sizeof(token)) != sizeof(token) ||
		    read_exact(fd, &back, sizeof(back), now_ms() + 20000) !=
		    sizeof(back) || back != token) {
			snprintf(t->error, sizeof(t->error), "cycle %ld: no "
			    "echo", i);
			close(fd);
			break;
		}
		close(fd);
		t->done++;
	}
	return NULL;
}

/* Runs @cycles churn cycles over CHURN_THREADS threads. */
static void churn(long cycles)
{
	struct churn_thread t[CHURN_THREADS];

	for (int i = 0; i < CHURN_THREADS; i++) {
		t[i] = (struct churn_thread){ .id = i, .port = server.port,
			.cycles = cycles / CHURN_THREADS +
			    (i < cycles % CHURN_THREADS) };
		ck_assert_int_eq(pthread_create(&t[i].thread, NULL,
		    churn_main, &t[i]), 0);
	}
	for (int i = 0; i < CHURN_THREADS; i++)
		pthread_join(t[i].thread, NULL);
	for (int i = 0; i < CHURN_THREADS; i++) {
		ck_assert_msg(!t[i].error[0], "churn thread %d: %s", i,
		    t[i].error);
		ck_assert_int_eq(t[i].done, t[i].cycles);
	}
}

/* RSS may grow this much over the whole run (allocator arenas settling). */
#define CHURN_RSS_TOLERANCE_KIB 4096

START_TEST(test_churn_returns_fds_and_rss_to_the_baseline)
{
	const char *args[] = { "-t", "2", NULL };
	long warm = sz.churn < 100000 ? 2000 : 20000;
	int fds_start, fds0, fds1;
	long rss0, rss1;
	double cpu0, cpu1, secs;
	uint64_t t0;
	char *log;

	test_server_start(&server, args);
	fds_start = proc_fd_count(server.pid);
	/* Warm up, so that allocator arenas exist before the baseline. */
	churn(warm);
	ck_assert(test_server_wait_stat(&server, "conns_open", 0,
	    now_ms() + 30000));
	fds0 = wait_fd_count(fds_start, now_ms() + 10000);
	ck_assert_int_eq(fds0, fds_start);
	rss0 = procstat_rss_kib(server.pid);

	cpu0 = procstat_cpu_seconds(server.pid);
	t0 = now_ms();
	churn(sz.churn);
	secs = (double)(now_ms() - t0) / 1000.0;
	cpu1 = procstat_cpu_seconds(server.pid);

	ck_assert(test_server_wait_stat(&server, "conns_open", 0,
	    now_ms() + 60000));
	fds1 = wait_fd_count(fds0, now_ms() + 10000);
	rss1 = procstat_rss_kib(server.pid);
	printf("stress churn: %ld cycles (%d threads) in %.1f s, %.0f/s; "
	    "server CPU %.1f s; fds %d -> %d; RSS %ld -> %ld KiB (%+ld)\n",
	    sz.churn, CHURN_THREADS, secs, (double)sz.churn / secs,
	    cpu1 - cpu0, fds0, fds1, rss0, rss1, rss1 - rss0);
	fflush(stdout);

	ck_assert_int_eq(fds1, fds0);
	ck_assert_msg(!rss_is_meaningful() ||
	    rss1 - rss0 <= CHURN_RSS_TOLERANCE_KIB,
	    "RSS grew %ld KiB over %ld cycles", rss1 - rss0, sz.churn);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "conns_total"),
	    warm + sz.churn);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "errors"), 0);
	free(log);
}
END_TEST

/* --- flood ------------------------------------------------------------ */

/*
 * Flooding clients live in forked children, so that the ~20,000 sockets
 * the server accepts do not count against this process's own fd limit.
 * The flood has two stages.  The fill makes as many attempts as the server
 * has room for; the overflow makes the rest, against a full server, and is
 * where a spinning listener would show.  Each child makes its share of a
 * stage with up to FLOOD_WINDOW attempts awaiting an answer, reports its
 * tally on a pipe, and waits for a byte on the control pipe before the
 * next stage; after the overflow it holds the connections it was served on
 * until the parent closes the control pipe.  The fill goes as fast as the
 * server answers; the overflow is paced (FLOOD_OVERFLOW_MS).
 */
enum { FLOOD_CHILDREN = 4, FLOOD_WINDOW = 64, FLOOD_EXISTING = 4 };

/* The overflow is spread over this long, so that server CPU per second
 * tells a quiet server from a spinning one. */
#define FLOOD_OVERFLOW_MS (sz.small ? 2000 : 5000)

/* Descriptors the server needs besides connections (stdio, epoll, pipes,
 * listener, reserve, ...), rounded up: the fill leaves it this many. */
#define FLOOD_SERVER_FDS 64

struct flood_tally {
	long held;	/* echoed: the server serves it */
	long rejected;	/* the reject line, then a close */
	long shed;	/* closed or reset without a word */
	long failed;	/* connect failed or something unexpected */
	char error[96];
};

/* Reads the answer to an attempt on @fd and tallies it; held connections
 * go to @held.  Returns false once @fd has its answer. */
static bool flood_classify(int fd, struct flood_tally *t, int *held,
    long *nheld)
{
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;	/* no answer yet */
	if (n == 1 && buf[0] == 'x') {
		held[(*nheld)++] = fd;
		t->held++;
		return false;
	}
	if (n >= 5 && memcmp(buf, "ERROR", 5) == 0)
		t->rejected++;
	else if (n == 0 || (n < 0 && errno == ECONNRESET))
		t->shed++;
	else if (!t->failed++)
		snprintf(t->error, sizeof(t->error), "read %zd: %s", n,
		    n < 0 ? strerror(errno) : "unexpected data");
	close(fd);
	return false;
}

/* Makes @attempts connection attempts from 127.0.0.@src, each sending one
 * byte and waiting for its answer, spread evenly over @pace_ms (0: as fast
 * as answers come); returns the tally. */
static struct flood_tally flood_stage(int port, long attempts, int src,
    uint64_t pace_ms, int *held, long *nheld)
{
	struct flood_tally t = { 0 };
	struct pollfd w[FLOOD_WINDOW];
	uint64_t start = now_ms(), deadline = start + 600000, due = start;
	long next = 0;
	int nw = 0, timeout;

	while (next < attempts || nw > 0) {
		while (next < attempts && nw < FLOOD_WINDOW &&
		    (due = start + (uint64_t)next * pace_ms /
		    (uint64_t)attempts) <= now_ms()) {
			int fd = test_connect_from(port, src);

			next++;
			if (fd < 0) {
				if (!t.failed++)
					snprintf(t.error, sizeof(t.error),
					    "connect: %s", strerror(errno));
				continue;
			}
			if (write(fd, "x", 1) != 1) {
				t.shed++;	/* already closed on us */
				close(fd);
				continue;
			}
			w[nw++] = (struct pollfd){ .fd = fd, .events = POLLIN };
		}
		if (now_ms() > deadline) {
			snprintf(t.error, sizeof(t.error), "%d attempts "
			    "unanswered after 600 s", nw);
			t.failed += nw;
			break;
		}
		timeout = 1000;
		if (next < attempts && nw < FLOOD_WINDOW)
			timeout = due > now_ms() ? (int)(due - now_ms()) : 0;
		if (poll(w, (nfds_t)nw, timeout) <= 0)
			continue;
		for (int i = 0; i < nw; i++)
			if (w[i].revents &&
			    !flood_classify(w[i].fd, &t, held, nheld))
				w[i--] = w[--nw];
	}
	return t;
}

static void flood_child(int port, const long share[2], int src,
    uint64_t pace_ms, int report, int control)
{
	int *held = malloc((size_t)(share[0] + share[1]) * sizeof(*held));
	long nheld = 0;
	char c;

	if (!held)
		_exit(3);
	for (int stage = 0; stage < 2; stage++) {
		struct flood_tally t = flood_stage(port, share[stage], src,
		    stage ? pace_ms : 0, held, &nheld);

		if (write(report, &t, sizeof(t)) != sizeof(t))
			_exit(4);
		if (read(control, &c, 1) != 1 && stage == 0)
			_exit(5);	/* the parent gave up */
	}
	while (read(control, &c, 1) > 0)	/* until the parent closes it */
		;
	_exit(0);
}

/* Waits for every child's tally of a stage, echoing on the existing
 * clients throughout; adds the tallies to @sum. */
static void flood_wait_stage(int report, const int *existing,
    struct flood_tally *sum, int *echoes, uint64_t *worst_us)
{
	uint64_t deadline = now_ms() + 900000;

	for (int reports = 0; reports < FLOOD_CHILDREN;) {
		struct pollfd pfd = { .fd = report, .events = POLLIN };
		struct flood_tally t;

		ck_assert_msg(now_ms() < deadline, "flood did not finish");
		for (int i = 0; i < FLOOD_EXISTING; i++) {
			uint64_t t0 = now_us();

			ck_assert_msg(test_echo_once(existing[i]),
			    "existing client %d not served during the flood",
			    i);
			if (now_us() - t0 > *worst_us)
				*worst_us = now_us() - t0;
			(*echoes)++;
		}
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ck_assert_int_eq(read(report, &t, sizeof(t)), sizeof(t));
		ck_assert_msg(!t.failed, "flood child: %ld failed: %s",
		    t.failed, t.error);
		sum->held += t.held;
		sum->rejected += t.rejected;
		sum->shed += t.shed;
		reports++;
	}
}

/*
 * One flood run: FLOOD_EXISTING clients connect first, then sz.flood
 * attempts in two stages; the existing clients are echoed throughout and
 * after.  With @emfile the connection limit is out of reach, so the
 * server runs out of descriptors instead.
 */
static void flood_run(bool emfile)
{
	const char *args_limit[] = { "-t", "2", NULL };
	const char *args_emfile[] = { "-t", "2", "-c", "100000", NULL };
	const char *what = emfile ? "EMFILE, -c 100000" :
	    "default --max-conns";
	struct flood_tally fill = { 0 }, over = { 0 };
	int existing[FLOOD_EXISTING], report[2], control[2];
	pid_t kids[FLOOD_CHILDREN];
	int fds0, fds1, echoes = 0, resumed = -1;
	long max_conns, nofile = sz.flood_nofile, room, held, acc, rej, err,
	    shed, total;
	uint64_t t0, t1, t2, worst_us = 0;
	double cpu0, cpu1, cpu2, fill_s, over_s;
	char *log;

	test_server_start_ex(&server, emfile ? args_emfile : args_limit, NULL,
	    nofile);
	if (!nofile)
		nofile = 20000;	/* the hard limit the test passes on */
	fds0 = proc_fd_count(server.pid);
	max_conns = logged_max_conns();
	ck_assert_int_gt(max_conns, 0);
	for (int i = 0; i < FLOOD_EXISTING; i++) {
		existing[i] = test_connect(server.port);
		ck_assert(test_echo_once(existing[i]));
	}
	/* Room for new connections, below the limit or the fd limit. */
	room = (emfile ? nofile - FLOOD_SERVER_FDS : max_conns) -
	    FLOOD_EXISTING;
	ck_assert_msg(sz.flood > room, "a flood of %ld does not exceed the "
	    "server's room for %ld connections", sz.flood, room);

	ck_assert_int_eq(pipe(report), 0);
	ck_assert_int_eq(pipe(control), 0);
	cpu0 = procstat_cpu_seconds(server.pid);
	t0 = now_ms();
	for (int k = 0; k < FLOOD_CHILDREN; k++) {
		long share[2] = {
			room / FLOOD_CHILDREN + (k < room % FLOOD_CHILDREN),
			(sz.flood - room) / FLOOD_CHILDREN +
			    (k < (sz.flood - room) % FLOOD_CHILDREN),
		};

		kids[k] = fork();
		ck_assert_int_ge(kids[k], 0);
		if (kids[k] == 0) {
			close(report[0]);
			close(control[1]);
			flood_child(server.port, share, SRC_FLOOD +
			    (emfile ? 8 : 0) + k, FLOOD_OVERFLOW_MS,
			    report[1], control[0]);
		}
	}
	close(report[1]);
	close(control[0]);

	flood_wait_stage(report[0], existing, &fill, &echoes, &worst_us);
	t1 = now_ms();
	cpu1 = procstat_cpu_seconds(server.pid);
	ck_assert_int_eq(write(control[1], "gogo", FLOOD_CHILDREN),
	    FLOOD_CHILDREN);
	flood_wait_stage(report[0], existing, &over, &echoes, &worst_us);
	t2 = now_ms();
	cpu2 = procstat_cpu_seconds(server.pid);
	for (int i = 0; i < FLOOD_EXISTING; i++)
		ck_assert(test_echo_once(existing[i]));
	fill_s = (double)(t1 - t0) / 1000.0;
	over_s = (double)(t2 - t1) / 1000.0;
	held = fill.held + over.held;

	printf("stress flood (%s): %ld attempts against %ld fds (max-conns "
	    "%ld); fill: %ld held in %.1f s, server CPU %.2f s; overflow: "
	    "%ld attempts in %.1f s, %ld held, %ld rejected, %ld shed, "
	    "server CPU %.2f s (%.0f%% of a core); %d echoes to %d existing "
	    "clients, slowest %.1f ms\n", what, sz.flood, nofile, max_conns,
	    fill.held, fill_s, cpu1 - cpu0, sz.flood - room, over_s,
	    over.held, over.rejected, over.shed, cpu2 - cpu1,
	    100.0 * (cpu2 - cpu1) / over_s, echoes, FLOOD_EXISTING,
	    (double)worst_us / 1000.0);
	fflush(stdout);

	ck_assert_int_eq(fill.held, room);
	ck_assert_int_eq(over.held + over.rejected + over.shed,
	    sz.flood - room);
	/* Turning a flood away costs the server little; a spinning
	 * listener would cost a whole core. */
	ck_assert_msg(cpu2 - cpu1 < 0.25 * over_s, "server used %.2f s of CPU "
	    "in %.2f s of overflow", cpu2 - cpu1, over_s);
	if (emfile) {
		/* The last few descriptors held, the rest shed. */
		ck_assert_int_eq(over.rejected, 0);
		ck_assert_int_gt(over.shed, 0);
	} else {
		/* Exactly up to the limit, the rest turned away. */
		ck_assert_int_eq(held + FLOOD_EXISTING, max_conns);
		ck_assert_int_eq(over.rejected, sz.flood - room);
	}

	/* Close the flood; accepting resumes and every fd comes back. */
	close(control[1]);
	for (int k = 0; k < FLOOD_CHILDREN; k++) {
		int status;

		ck_assert_int_eq(waitpid(kids[k], &status, 0), kids[k]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	close(report[0]);
	ck_assert(test_server_wait_stat(&server, "conns_open", FLOOD_EXISTING,
	    now_ms() + 60000));
	for (uint64_t end = now_ms() + 20000; resumed < 0;) {
		ck_assert_msg(now_ms() < end, "accepting did not resume");
		resumed = test_connect_from(server.port, 0);
		if (resumed >= 0 && !test_echo_once(resumed)) {
			close(resumed);
			resumed = -1;
		}
	}
	close(resumed);
	for (int i = 0; i < FLOOD_EXISTING; i++) {
		ck_assert(test_echo_once(existing[i]));
		close(existing[i]);
	}
	ck_assert(test_server_wait_stat(&server, "conns_open", 0,
	    now_ms() + 30000));
	fds1 = wait_fd_count(fds0, now_ms() + 10000);
	ck_assert_int_eq(fds1, fds0);

	log = test_server_stop_clean(&server);
	acc = test_stat(log, "at exit", "total", "accepted");
	rej = test_stat(log, "at exit", "total", "rejected");
	err = test_stat(log, "at exit", "total", "accept_errors");
	shed = test_stat(log, "at exit", "total", "shed");
	total = test_stat(log, "at exit", "total", "conns_total");
	printf("stress flood (%s): afterwards fds %d -> %d; server "
	    "accepted=%ld conns_total=%ld rejected=%ld accept_errors=%ld "
	    "shed=%ld\n", what, fds0, fds1, acc, total, rej, err, shed);
	fflush(stdout);
	/* Every accepted connection was either served or rejected. */
	ck_assert_int_eq(acc, total + rej);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "dispatch_errors"),
	    0);
	if (emfile) {
		ck_assert_int_eq(rej, 0);
		ck_assert_int_gt(err, 0);
		ck_assert_int_ge(shed, over.shed);
	} else {
		/* The limit keeps the server clear of EMFILE. */
		ck_assert_int_eq(rej, over.rejected);
		ck_assert_int_eq(err, 0);
		ck_assert_int_eq(shed, 0);
	}
	free(log);
}

START_TEST(test_flood_past_max_conns_rejects_and_serves_the_rest)
{
	flood_run(false);
}
END_TEST

START_TEST(test_flood_past_the_fd_limit_sheds_and_serves_the_rest)
{
	flood_run(true);
}
END_TEST

/* --- trickle ---------------------------------------------------------- */

/*
 * Trickling clients, driven by one thread: client k % n sends the k-th
 * byte at k / n seconds, so every client sends one byte a second.  The
 * thread wakes every TRICKLE_TICK_MS and uses epoll, so that driving the
 * trickle costs the test little CPU beside the fast client it measures.
 */
#define TRICKLE_TICK_MS 10

struct trickle {
	pthread_t thread;
	int n, epfd;
	int *fds;
	uint32_t *sent, *got;
	atomic_bool stop;
	uint64_t bytes;
	char error[128];
};

static unsigned char trickle_byte(int i, uint32_t k)
{
	return (unsigned char)(i * 7 + (int)k);
}

static void trickle_read(struct trickle *t, int i)
{
	unsigned char buf[64];
	ssize_t n = read(t->fds[i], buf, sizeof(buf));

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		snprintf(t->error, sizeof(t->error), "client %d: %s", i,
		    n ? strerror(errno) : "closed by the server");
		return;
	}
	for (ssize_t j = 0; j < n && !t->error[0]; j++)
		if (t->got[i] >= t->sent[i] ||
		    buf[j] != trickle_byte(i, t->got[i]++))
			snprintf(t->error, sizeof(t->error), "client %d: "
			    "wrong echo at byte %u", i, t->got[i]);
}

/* Sends every byte due by @now. */
static void trickle_send(struct trickle *t, uint64_t t0, uint64_t *k,
    uint64_t now)
{
	while (!t->error[0] && t0 + *k * 1000 / (uint64_t)t->n <= now) {
		int i = (int)(*k % (uint64_t)t->n);
		unsigned char b = trickle_byte(i, t->sent[i]);

		if (write(t->fds[i], &b, 1) != 1) {
			snprintf(t->error, sizeof(t->error), "client %d: "
			    "write: %s", i, strerror(errno));
			return;
		}
		t->sent[i]++;
		t->bytes++;
		(*k)++;
	}
}

static void *trickle_main(void *arg)
{
	struct trickle *t = arg;
	struct epoll_event ev[256];
	uint64_t t0 = now_ms(), k = 0, drain_end = 0;

	while (!t->error[0]) {
		int n;

		if (!atomic_load(&t->stop)) {
			trickle_send(t, t0, &k, now_ms());
		} else {
			/* Stop sending; wait for the last echoes. */
			bool done = true;

			if (!drain_end)
				drain_end = now_ms() + 10000;
			for (int i = 0; i < t->n && done; i++)
				done = t->got[i] == t->sent[i];
			if (done)
				break;
			if (now_ms() > drain_end) {
				snprintf(t->error, sizeof(t->error), "echoes "
				    "missing after 10 s");
				break;
			}
		}
		n = epoll_wait(t->epfd, ev, 256, TRICKLE_TICK_MS);
		for (int j = 0; j < n; j++)
			trickle_read(t, (int)ev[j].data.u32);
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Ping-pongs 32 bytes on @fd for @ms; returns the p99 (and *p50) in µs,
 * and the number of round trips in *count. */
static uint32_t ping_pong_p99(int fd, uint64_t ms, uint32_t *p50,
    size_t *count)
{
	size_t cap = 1 << 22, n = 0;
	uint32_t *lat = malloc(cap * sizeof(*lat)), p99;
	uint64_t end = now_ms() + ms;
	char msg[32], back[32];

	ck_assert_ptr_nonnull(lat);
	memset(msg, 'p', sizeof(msg));
	while (now_ms() < end && n < cap) {
		uint64_t t = now_us();

		msg[0] = (char)n;
		write_all(fd, msg, sizeof(msg));
		ck_assert_uint_eq(read_exact(fd, back, sizeof(back),
		    now_ms() + 10000), sizeof(back));
		ck_assert(memcmp(msg, back, sizeof(msg)) == 0);
		lat[n++] = (uint32_t)(now_us() - t);
	}
	ck_assert_uint_gt(n, 100);
	qsort(lat, n, sizeof(*lat), cmp_u32);
	*p50 = lat[n / 2];
	p99 = lat[n * 99 / 100];
	*count = n;
	free(lat);
	return p99;
}

/* Trickle clients may slow the fast client's p99 to 2x its own baseline,
 * plus this much: a 2-core box shared with builds has ~ms timer noise. */
#define TRICKLE_P99_FLOOR_US 1000

START_TEST(test_trickling_clients_do_not_slow_a_fast_one)
{
	const char *args[] = { "-t", "2", NULL };
	struct trickle t = { .n = (int)sz.trickle };
	uint64_t phase_ms = sz.small ? 3000 : 5000;
	uint32_t p99_base, p99_trickle, p50_base, p50_trickle;
	size_t n_base, n_trickle;
	uint32_t min_sent = UINT32_MAX;
	int fast;

	test_server_start(&server, args);
	fast = test_connect(server.port);
	p99_base = ping_pong_p99(fast, phase_ms, &p50_base, &n_base);

	t.fds = calloc((size_t)t.n, sizeof(*t.fds));
	t.sent = calloc((size_t)t.n, sizeof(*t.sent));
	t.got = calloc((size_t)t.n, sizeof(*t.got));
	ck_assert(t.fds && t.sent && t.got);
	t.epfd = epoll_create1(EPOLL_CLOEXEC);
	ck_assert_int_ge(t.epfd, 0);
	for (int i = 0; i < t.n; i++) {
		int fd = test_connect_from(server.port, SRC_TRICKLE + i % 8);

		ck_assert_msg(fd >= 0, "trickle connect: %s", strerror(errno));
		ck_assert(test_echo_once(fd));
		set_nonblocking(fd);
		t.fds[i] = fd;
		ck_assert_int_eq(epoll_ctl(t.epfd, EPOLL_CTL_ADD, fd,
		    &(struct epoll_event){ .events = EPOLLIN,
		    .data.u32 = (uint32_t)i }), 0);
	}
	ck_assert_int_eq(pthread_create(&t.thread, NULL, trickle_main, &t),
	    0);
	p99_trickle = ping_pong_p99(fast, phase_ms, &p50_trickle, &n_trickle);
	atomic_store(&t.stop, true);
	pthread_join(t.thread, NULL);
	for (int i = 0; i < t.n; i++) {
		if (t.sent[i] < min_sent)
			min_sent = t.sent[i];
		close(t.fds[i]);
	}
	close(fast);

	printf("stress trickle: fast client p50/p99 %u/%u us alone (%zu "
	    "round trips), %u/%u us beside %d trickling clients (%zu round "
	    "trips; %llu trickled bytes, all echoed); bound 2 x p99 + %d us\n",
	    p50_base, p99_base, n_base, p50_trickle, p99_trickle, t.n,
	    n_trickle, (unsigned long long)t.bytes, TRICKLE_P99_FLOOR_US);
	fflush(stdout);
	ck_assert_msg(!t.error[0], "trickle: %s", t.error);
	/* Each client trickled about once a second all along. */
	ck_assert_uint_ge(min_sent, phase_ms / 1000 - 1);
	ck_assert_msg(p99_trickle <= 2 * p99_base + TRICKLE_P99_FLOOR_US,
	    "p99 %u us with trickle vs %u us without", p99_trickle, p99_base);
	close(t.epfd);
	free(t.fds);
	free(t.sent);
	free(t.got);
	free(test_server_stop_clean(&server));
}
END_TEST

/* --- hog -------------------------------------------------------------- */

/* Server memory over its start-up level that a client which never reads
 * may cost: its output up to high-water, one read in flight and the
 * worker's read buffer (256 KiB each), plus this for allocator slack. */
#define HOG_RSS_SLACK_KIB 2048

START_TEST(test_a_client_that_never_reads_holds_memory_below_high_water)
{
	const char *args[] = { "-t", "2", "--high-water", "1M",
		"--low-water", "256K", NULL };
	const long bound_kib = (1 * MIB + 256 * KIB + 256 * KIB) / KIB +
	    HOG_RSS_SLACK_KIB;
	size_t cap = (size_t)sz.hog_mib * MIB, sent = 0, got = 0, off = 0,
	    len = 0;
	uint64_t send_rng = 0x9e3779b97f4a7c15ULL, check_rng = send_rng;
	uint64_t last_progress, next_echo = 0, t_drain;
	static unsigned char buf[256 * 1024], expect[256 * 1024];
	long rss0, rss_max = 0, rss;
	int hog, other, echoes = 0;
	char *log;

	test_server_start(&server, args);
	other = test_connect(server.port);
	ck_assert(test_echo_once(other));
	rss0 = procstat_rss_kib(server.pid);
	hog = test_connect(server.port);
	set_nonblocking(hog);

	/* Push until the cap, or until the server has stopped reading for a
	 * second; echo on the other client meanwhile. */
	last_progress = now_ms();
	while (sent < cap && now_ms() - last_progress < 1000) {
		struct pollfd pfd = { .fd = hog, .events = POLLOUT };

		if (poll(&pfd, 1, 100) > 0) {
			ssize_t n;

			if (off == len) {
				len = cap - sent < sizeof(buf) ? cap - sent :
				    sizeof(buf);
				fill_random(&send_rng, buf, len);
				off = 0;
			}
			n = write(hog, buf + off, len - off);
			ck_assert_msg(n > 0 || errno == EAGAIN, "hog write: %s",
			    strerror(errno));
			if (n > 0) {
				off += (size_t)n;
				sent += (size_t)n;
				last_progress = now_ms();
			}
		}
		if ((rss = procstat_rss_kib(server.pid)) > rss_max)
			rss_max = rss;
		if (now_ms() >= next_echo) {
			ck_assert_msg(test_echo_once(other), "other client "
			    "not served beside the hog");
			echoes++;
			next_echo = now_ms() + 100;
		}
	}
	ck_assert(test_echo_once(other));
	printf("stress hog: tried %ld MiB without reading; the server took "
	    "%.1f MiB and stopped; server RSS %ld KiB at start, peak %ld KiB "
	    "(%+ld, bound %+ld); %d echoes to another client meanwhile\n",
	    sz.hog_mib, (double)sent / MIB, rss0, rss_max, rss_max - rss0,
	    bound_kib, echoes + 1);
	fflush(stdout);
	ck_assert_msg(sent < cap, "the server buffered all %ld MiB",
	    sz.hog_mib);
	ck_assert_msg(!rss_is_meaningful() || rss_max - rss0 <= bound_kib,
	    "server RSS grew %ld KiB beside a client that never reads",
	    rss_max - rss0);

	/* The hog reads at last: every byte it sent comes back. */
	ck_assert_int_eq(shutdown(hog, SHUT_WR), 0);
	t_drain = now_ms();
	for (;;) {
		struct pollfd pfd = { .fd = hog, .events = POLLIN };
		ssize_t n;

		ck_assert_msg(now_ms() - t_drain < 120000, "hog drain timed "
		    "out after %zu of %zu bytes", got, sent);
		if (poll(&pfd, 1, 1000) <= 0)
			continue;
		n = read(hog, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN)
			continue;
		ck_assert_msg(n >= 0, "hog read: %s", strerror(errno));
		if (n == 0)
			break;
		ck_assert_msg(got + (size_t)n <= sent, "echoed more than sent");
		fill_random(&check_rng, expect, (size_t)n);
		ck_assert_msg(memcmp(buf, expect, (size_t)n) == 0,
		    "wrong bytes echoed to the hog at offset %zu", got);
		got += (size_t)n;
	}
	ck_assert_uint_eq(got, sent);
	close(hog);
	close(other);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "dropped_bytes"), 0);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "bytes_in"),
	    (long)sent + echoes + 2);
	free(log);
}
END_TEST

/* --- SIGTERM under load ----------------------------------------------- */

struct loaded_client {
	int fd;
	uint64_t send_rng, check_rng;
	size_t sent, got;
	uint64_t last_write;
	bool stalled, eof;
	long unread;		/* at SIGTERM: echo in our receive queue */
	long server_queue;	/* at SIGTERM: the server end's send queue */
	struct sockaddr_in addr;	/* ours, to find the server's end */
};

/*
 * Fills in each client's server_queue: the bytes in the kernel send queue
 * of the server's end of the connection (unsent or unacknowledged), from
 * /proc/net/tcp, where addresses print as the raw 32-bit value and ports
 * in host order.  Together with what the client had not read yet and what
 * it receives in the end, this splits the output the server still owed at
 * SIGTERM into what its kernel held and what echoserver itself held.
 */
static void read_server_queues(struct loaded_client *cl, int n, int port)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	char line[512];

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned la, lp, ra, rp, st;
		unsigned long tx, rx;

		if (sscanf(line, " %*d: %X:%X %X:%X %X %lX:%lX", &la, &lp, &ra,
		    &rp, &st, &tx, &rx) != 7 || (int)lp != port || st != 1)
			continue;	/* not an established server socket */
		for (int i = 0; i < n; i++)
			if (cl[i].addr.sin_addr.s_addr == ra &&
			    ntohs(cl[i].addr.sin_port) == rp)
				cl[i].server_queue = (long)tx;
	}
	fclose(f);
}

/* Writes up to 64 KiB of @c's stream; returns the bytes written. */
static size_t loaded_write(struct loaded_client *c)
{
	static unsigned char buf[64 * 1024];
	uint64_t rng = c->send_rng;
	ssize_t n;

	fill_random(&rng, buf, sizeof(buf));
	n = write(c->fd, buf, sizeof(buf));
	if (n < 0) {
		ck_assert_msg(errno == EAGAIN, "write: %s", strerror(errno));
		return 0;
	}
	/* Advance the stream by what went out. */
	fill_random(&c->send_rng, buf, (size_t)n);
	c->sent += (size_t)n;
	return (size_t)n;
}

static void loaded_read(struct loaded_client *c)
{
	static unsigned char buf[256 * 1024], expect[256 * 1024];
	ssize_t n = read(c->fd, buf, sizeof(buf));

	if (n < 0 && errno == EAGAIN)
		return;
	ck_assert_msg(n >= 0, "read: %s", strerror(errno));
	if (n == 0) {
		c->eof = true;
		return;
	}
	ck_assert_msg(c->got + (size_t)n <= c->sent, "echoed more than sent");
	fill_random(&c->check_rng, expect, (size_t)n);
	ck_assert_msg(memcmp(buf, expect, (size_t)n) == 0,
	    "wrong bytes echoed at offset %zu", c->got);
	c->got += (size_t)n;
}

/*
 * A small high-water mark, so that the server's own buffers stay small.
 * The kernel's are not: before a stalled client's output backs up into the
 * server, the server's socket send buffer fills, and Linux grows it up to
 * tcp_wmem's maximum (4 MiB here).  1,000 stalled clients therefore hold
 * gigabytes in the kernel, until TCP memory pressure holds buffers down.
 */
#define SIGTERM_HIGH_WATER (64 * KIB)
#define SIGTERM_GRACE 120

START_TEST(test_sigterm_under_load_echoes_every_byte_read_and_exits_0)
{
	const char *args[] = { "-t", "2", "--grace", "120", "--high-water",
		"64K", "--low-water", "16K", NULL };
	int n = (int)sz.sigterm_clients, stalled = 0, done = 0, threads0,
	    threads;
	struct loaded_client *cl = calloc((size_t)n, sizeof(*cl));
	struct pollfd *pfd = calloc((size_t)n, sizeof(*pfd));
	uint64_t t0, t_sig, t_eof, t_exit, received = 0, sent = 0, stall_ms;
	long least = LONG_MAX, owed_kernel = 0, owed_user = 0;
	int status, in_user = 0;
	pid_t pid;
	char *log;

	ck_assert(cl && pfd);
	test_server_start(&server, args);
	threads0 = proc_thread_count(server.pid);
	for (int i = 0; i < n; i++) {
		struct loaded_client *c = &cl[i];
		char x;

		c->fd = test_connect_from(server.port, SRC_SIGTERM + i % 8);
		ck_assert_msg(c->fd >= 0, "connect: %s", strerror(errno));
		ck_assert_int_eq(getsockname(c->fd, (struct sockaddr *)&c->addr,
		    &(socklen_t){ sizeof(c->addr) }), 0);
		/* One echo first, so a worker surely serves this client. */
		write_all(c->fd, "x", 1);
		ck_assert_uint_eq(read_exact(c->fd, &x, 1, now_ms() + 30000),
		    1);
		set_nonblocking(c->fd);
		c->send_rng = c->check_rng = 0x1234567ULL * (uint64_t)(i + 1);
		c->last_write = now_ms();
	}

	/* Every client writes without reading until the server stops
	 * reading it for stall_ms: its output is then past high-water.  A
	 * server slowed by a sanitizer (TSan: several times) can leave a
	 * client unread for 300 ms while it still reads, and that client
	 * would then be owed nothing, so the wait stretches with
	 * CK_TIMEOUT_MULTIPLIER as Check's own timeouts do. */
	stall_ms = 300 * (getenv("CK_TIMEOUT_MULTIPLIER") ?
	    strtoul(getenv("CK_TIMEOUT_MULTIPLIER"), NULL, 10) : 1);
	if (stall_ms == 0)
		stall_ms = 300;
	t0 = now_ms();
	while (stalled < n) {
		uint64_t now = now_ms();

		ck_assert_msg(now - t0 < 300000, "%d of %d clients stalled",
		    stalled, n);
		for (int i = 0; i < n; i++) {
			if (!cl[i].stalled &&
			    now - cl[i].last_write > stall_ms) {
				cl[i].stalled = true;
				stalled++;
			}
			pfd[i] = (struct pollfd){ .fd = cl[i].stalled ? -1 :
				cl[i].fd, .events = POLLOUT };
		}
		if (poll(pfd, (nfds_t)n, 50) <= 0)
			continue;
		for (int i = 0; i < n; i++)
			if ((pfd[i].revents & POLLOUT) &&
			    loaded_write(&cl[i]) > 0)
				cl[i].last_write = now_ms();
	}
	pid = server.pid;
	threads = proc_thread_count(pid);
	for (int i = 0; i < n; i++) {
		int unread = 0;

		ck_assert_int_eq(ioctl(cl[i].fd, FIONREAD, &unread), 0);
		cl[i].unread = unread;
	}
	read_server_queues(cl, n, server.port);

	kill(pid, SIGTERM);
	t_sig = now_ms();
	while (done < n) {
		ck_assert_msg(now_ms() - t_sig < (SIGTERM_GRACE + 30) * 1000,
		    "%d of %d clients drained", done, n);
		for (int i = 0; i < n; i++)
			pfd[i] = (struct pollfd){ .fd = cl[i].eof ? -1 :
				cl[i].fd, .events = POLLIN };
		if (poll(pfd, (nfds_t)n, 1000) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			loaded_read(&cl[i]);
			if (cl[i].eof) {
				close(cl[i].fd);
				done++;
			}
		}
	}
	t_eof = now_ms();
	status = test_server_wait(&server, now_ms() + 60000);
	t_exit = now_ms();
	log = test_server_log(&server);
	for (int i = 0; i < n; i++) {
		/* Owed at SIGTERM: everything echoed since, less what was
		 * already in our receive queue. */
		long owed = (long)cl[i].got - cl[i].unread;
		long user = owed - cl[i].server_queue;

		received += cl[i].got;
		sent += cl[i].sent;
		if (owed < least)
			least = owed;
		owed_kernel += owed - (user > 0 ? user : 0);
		if (user > 0) {
			owed_user += user;
			in_user++;
		}
	}
	printf("stress sigterm: %d clients stalled (sent %.1f MiB, server "
	    "read %.1f MiB); at SIGTERM the server owed %.1f MiB in its "
	    "socket send queues and %.1f MiB in its own buffers (%d clients), "
	    "at least %ld bytes to each; all got every byte and EOF in "
	    "%.2f s, server exited in %.2f s with status %d; %d threads "
	    "before, none after\n", n, (double)sent / MIB,
	    (double)received / MIB, (double)owed_kernel / MIB,
	    (double)owed_user / MIB, in_user, least,
	    (double)(t_eof - t_sig) / 1000.0,
	    (double)(t_exit - t_sig) / 1000.0,
	    WIFEXITED(status) ? WEXITSTATUS(status) : -1, threads);
	fflush(stdout);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "echoserver did not exit 0 (status %#x): %s", status, log);
	ck_assert_msg(t_exit - t_sig < SIGTERM_GRACE * 1000,
	    "shutdown took longer than the grace period");
	/* Main and two workers (and a sanitizer's own), as at start-up; reaped
	 * after exit, so every one of them had ended. */
	ck_assert_int_eq(threads, threads0);
	ck_assert_int_ge(threads, 3);
	ck_assert(kill(pid, 0) == -1 && errno == ESRCH);
	/* Every client was owed output by the server at SIGTERM, and the
	 * server's own buffers held some of it (the bytes bufferevent_free()
	 * would drop). */
	ck_assert_int_gt(least, 0);
	ck_assert_int_gt(in_user, 0);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "dropped_bytes"), 0);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "bytes_in"),
	    (long)received + n);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "bytes_out"),
	    (long)received + n);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "conns_total"), n);
	free(log);
	free(cl);
	free(pfd);
}
END_TEST

static Suite *stress_suite(void)
{
	Suite *s = suite_create("stress");
	int timeout = sz.small ? 300 : 3600;
	TCase *tc;

	tc = tcase_create("churn");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, timeout);
	tcase_add_test(tc, test_churn_returns_fds_and_rss_to_the_baseline);
	suite_add_tcase(s, tc);

	tc = tcase_create("flood");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, timeout);
	tcase_add_test(tc,
	    test_flood_past_max_conns_rejects_and_serves_the_rest);
	tcase_add_test(tc,
	    test_flood_past_the_fd_limit_sheds_and_serves_the_rest);
	suite_add_tcase(s, tc);

	tc = tcase_create("trickle");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, timeout);
	tcase_add_test(tc, test_trickling_clients_do_not_slow_a_fast_one);
	suite_add_tcase(s, tc);

	tc = tcase_create("hog");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, timeout);
	tcase_add_test(tc,
	    test_a_client_that_never_reads_holds_memory_below_high_water);
	suite_add_tcase(s, tc);

	tc = tcase_create("sigterm");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, timeout);
	tcase_add_test(tc,
	    test_sigterm_under_load_echoes_every_byte_read_and_exits_0);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	read_sizes();
	printf("stress sizes: churn %ld, flood %ld (server fds %s), trickle "
	    "%ld, hog %ld MiB, sigterm %ld clients%s\n", sz.churn, sz.flood,
	    sz.flood_nofile ? "limited" : "at the hard limit", sz.trickle,
	    sz.hog_mib, sz.sigterm_clients, sz.small ? " (small)" : "");
	fflush(stdout);
	return run_suite(stress_suite());
}
