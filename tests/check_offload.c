/*
 * Integration tests for offload (proto.h, "Offloading work"), through a
 * real echoserver: the sha256 handler against the real sha256sum, inline
 * and on the pool; replies kept in request order when jobs finish out of
 * order; a slow DEBUG SLEEP not blocking the other clients of the same
 * worker (and blocking them without --offload, the control); the
 * per-connection limit and a full pool holding connections back without
 * losing or reordering anything; and shutdown: live connections get
 * their replies, jobs of closed connections are cancelled, and --grace
 * bounds it all.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct test_server server;

static void teardown(void)
{
	test_server_stop(&server, SIGKILL);
	test_server_cleanup(&server);
}

/* Reads exactly strlen(@want) bytes within 30 s and checks them. */
static void expect(int fd, const char *want)
{
	size_t len = strlen(want);
	char *got = calloc(1, len + 1);

	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(read_exact(fd, got, len, now_ms() + 30000), len);
	ck_assert_str_eq(got, want);
	free(got);
}

/* True if @fd has bytes to read within @ms. */
static int readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 1;
}

/*
 * Lines for sha256: @n lines of printable bytes, of lengths 0 to 2 KiB
 * (every tenth 1 KiB), written to @path with LF endings (for sha256sum)
 * and returned with mixed LF and CRLF endings (for the server); caller
 * frees.
 */
static char *make_lines(const char *path, int n, size_t *len)
{
	FILE *f = fopen(path, "w");
	size_t cap = (size_t)n * 2100 + 16, used = 0;
	char *wire = malloc(cap);
	uint64_t rng = 99;

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(wire);
	for (int i = 0; i < n; i++) {
		size_t l;

		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		l = i % 10 == 0 ? 1024 : (size_t)(rng >> 33) % 2048;
		if (i == 1)
			l = 0;
		for (size_t k = 0; k < l; k++) {
			rng = rng * 6364136223846793005ULL + 1;
			wire[used + k] = (char)('!' + (rng >> 40) % 94);
		}
		fwrite(wire + used, 1, l, f);
		fputc('\n', f);
		used += l;
		if (i % 3 == 0)
			wire[used++] = '\r';
		wire[used++] = '\n';
	}
	fclose(f);
	*len = used;
	return wire;
}

/* What sha256sum says of each line of @path, one digest and LF each;
 * caller frees. */
static char *sha256sum_lines(const char *path)
{
	char cmd[512];
	int status;
	char *out;

	snprintf(cmd, sizeof(cmd), "while IFS= read -r l; do "
	    "printf '%%s' \"$l\" | sha256sum | cut -c1-64; done < '%s'", path);
	out = test_shell(cmd, &status);
	ck_assert_int_eq(status, 0);
	return out;
}

/* Sends the lines in one write, then checks every digest in order. */
static void check_sha256(const char *const *args)
{
	char path[128];
	size_t len, n;
	char *wire, *want, *got;
	int fd, eof = 0, lines = (int)scaled(300, 40);

	test_server_start(&server, args);
	snprintf(path, sizeof(path), "%s/lines", server.dir);
	wire = make_lines(path, lines, &len);
	want = sha256sum_lines(path);
	ck_assert_uint_eq(strlen(want), (size_t)lines * 65);
	fd = test_connect(server.port);
	write_all(fd, wire, len);
	shutdown(fd, SHUT_WR);
	got = calloc(1, (size_t)lines * 66 + 1);
	n = 0;
	while (!eof) {
		ssize_t r;

		if (!readable(fd, 30000))
			break;
		r = read(fd, got + n, (size_t)lines * 66 - n);
		eof = r <= 0;
		n += r > 0 ? (size_t)r : 0;
	}
	ck_assert(eof);
	/* The server keeps each line's ending; sha256sum's side has LF. */
	for (size_t i = 0, j = 0; i <= n; i++)
		if (got[i] != '\r')
			got[j++] = got[i];
	ck_assert_str_eq(got, want);
	close(fd);
	free(wire);
	free(want);
	free(got);
	unlink(path);
	free(test_server_stop_clean(&server));
}

START_TEST(test_sha256_inline_matches_sha256sum)
{
	const char *args[] = { "--protocol", "sha256", "-t", "2", NULL };

	check_sha256(args);
}
END_TEST

START_TEST(test_sha256_offloaded_matches_sha256sum)
{
	const char *args[] = { "--protocol", "sha256", "-t", "2",
	    "--offload", "--offload-threads", "2", NULL };

	check_sha256(args);
}
END_TEST

/* The limit's error and quit come after the digests of the lines before
 * them, though those are hashed on the pool. */
START_TEST(test_sha256_offloaded_keeps_limit_and_quit_in_order)
{
	const char *args[] = { "--protocol", "sha256", "--offload",
	    "--max-line", "8", NULL };
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	write_all(fd, "abc\n123456789\nnot read\n", 23);
	expect(fd, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f2"
	    "0015ad\nerror: line too long\r\n");
	ck_assert(wait_eof(fd, now_ms() + 30000));
	close(fd);
	fd = test_connect(server.port);
	write_all(fd, "abc\r\nquit\nabc\n", 14);
	expect(fd, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f2"
	    "0015ad\r\n");
	ck_assert(wait_eof(fd, now_ms() + 30000));
	close(fd);
	free(test_server_stop_clean(&server));
}
END_TEST

/* Two pool threads: the second sleep ends first, yet every reply comes
 * in request order, the inline ones too. */
START_TEST(test_offload_replies_keep_request_order)
{
	const char *args[] = { "--protocol", "resp", "-t", "1", "--offload",
	    "--offload-threads", "2", NULL };
	static const char req[] = "DEBUG SLEEP 0.4\r\nDEBUG SLEEP 0\r\nPING\r\n"
	    "ECHO x\r\nDEBUG SLEEP 0.1\r\nDEBUG SLEEP\r\nPING\r\n";
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	write_all(fd, req, sizeof(req) - 1);
	expect(fd, "+OK\r\n+OK\r\n+PONG\r\n$1\r\nx\r\n+OK\r\n"
	    "-ERR wrong number of arguments for 'debug|sleep' command\r\n"
	    "+PONG\r\n");
	close(fd);
	free(test_server_stop_clean(&server));
}
END_TEST

/*
 * One worker; A asks for a 2 s sleep, B pings meanwhile.  Returns B's
 * round trip in ms, and checks whether A had its reply by then.
 */
static uint64_t ping_during_sleep(int *a_done_first)
{
	uint64_t t0;
	int a, b;

	a = test_connect(server.port);
	b = test_connect(server.port);
	write_all(b, "PING\r\n", 6);	/* both connections are served */
	expect(b, "+PONG\r\n");
	write_all(a, "DEBUG SLEEP 2\r\n", 15);
	poll(NULL, 0, 100);	/* let A's request reach the worker */
	t0 = now_ms();
	write_all(b, "PING\r\n", 6);
	expect(b, "+PONG\r\n");
	t0 = now_ms() - t0;
	*a_done_first = readable(a, 0);
	expect(a, "+OK\r\n");
	close(a);
	close(b);
	return t0;
}

START_TEST(test_offload_slow_request_does_not_block_its_worker)
{
	const char *args[] = { "--protocol", "resp", "-t", "1", "--offload",
	    "--offload-threads", "1", NULL };
	int a_first;
	uint64_t ms;

	test_server_start(&server, args);
	ms = ping_during_sleep(&a_first);
	ck_assert_msg(!a_first && ms < 1500, "ping took %llu ms",
	    (unsigned long long)ms);
	free(test_server_stop_clean(&server));
}
END_TEST

/* The control: inline, the worker sleeps and B waits for it. */
START_TEST(test_inline_slow_request_blocks_its_worker)
{
	const char *args[] = { "--protocol", "resp", "-t", "1", NULL };
	int a_first;
	uint64_t ms;

	test_server_start(&server, args);
	ms = ping_during_sleep(&a_first);
	ck_assert_msg(ms >= 1500, "ping took only %llu ms",
	    (unsigned long long)ms);
	free(test_server_stop_clean(&server));
}
END_TEST

/* A client waiting for a job is not idle: a sleep longer than
 * --idle-timeout still gets its reply; then the idle timeout applies. */
START_TEST(test_offload_waiting_client_is_not_idle)
{
	const char *args[] = { "--protocol", "resp", "--offload",
	    "--offload-threads", "1", "--idle-timeout", "0.5", NULL };
	uint64_t t0;
	char *log;
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	write_all(fd, "DEBUG SLEEP 1.2\r\n", 17);
	expect(fd, "+OK\r\n");
	t0 = now_ms();
	ck_assert(wait_eof(fd, now_ms() + 30000));
	ck_assert_uint_ge(now_ms() - t0, 300);
	close(fd);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "idle_timeouts"),
	    1);
	free(log);
}
END_TEST

/* Pipelined requests for n sleeps and a PING; checks the replies. */
static void sleeps(int fd, int n, const char *secs)
{
	char req[64];
	int len = snprintf(req, sizeof(req), "DEBUG SLEEP %s\r\n", secs);

	for (int i = 0; i < n; i++)
		write_all(fd, req, (size_t)len);
	write_all(fd, "PING\r\n", 6);
}

static void expect_sleeps(int fd, int n)
{
	for (int i = 0; i < n; i++)
		expect(fd, "+OK\r\n");
	expect(fd, "+PONG\r\n");
}

/* 40 jobs on one connection, over its limit of 16 in flight: the rest
 * wait, unread, and nothing is lost or reordered. */
START_TEST(test_offload_connection_limit_defers_and_resumes)
{
	const char *args[] = { "--protocol", "resp", "--offload",
	    "--offload-threads", "2", NULL };
	char *log;
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	sleeps(fd, 40, "0.01");
	expect_sleeps(fd, 40);
	close(fd);
	log = test_server_stop_clean(&server);
	ck_assert_int_gt(test_stat(log, "at exit", "total", "jobs_deferred"),
	    0);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "jobs_done"), 40);
	free(log);
}
END_TEST

/* A pool with room for 2 queued jobs and 4 connections with 6 each:
 * connections with no job of their own in flight wait for room too (the
 * retry timer), and every reply arrives, in order. */
START_TEST(test_offload_full_pool_holds_connections_back)
{
	const char *args[] = { "--protocol", "resp", "-t", "2", "--offload",
	    "--offload-threads", "1", "--offload-queue", "2", NULL };
	char *log;
	int fd[4];

	test_server_start(&server, args);
	for (int i = 0; i < 4; i++)
		fd[i] = test_connect(server.port);
	for (int i = 0; i < 4; i++)
		sleeps(fd[i], 6, "0.01");
	for (int i = 0; i < 4; i++)
		expect_sleeps(fd[i], 6);
	for (int i = 0; i < 4; i++)
		close(fd[i]);
	log = test_server_stop_clean(&server);
	ck_assert_int_gt(test_stat(log, "at exit", "total", "jobs_deferred"),
	    0);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "jobs_done"), 24);
	ck_assert_msg(strstr(log, "stats offload:"), "%s", log);
	free(log);
}
END_TEST

/* SIGTERM while a job of a live connection runs: its reply is flushed
 * before the close, and the server exits cleanly. */
START_TEST(test_offload_shutdown_flushes_live_jobs)
{
	const char *args[] = { "--protocol", "resp", "--offload",
	    "--offload-threads", "1", NULL };
	char *log;
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	write_all(fd, "PING\r\n", 6);
	expect(fd, "+PONG\r\n");
	sleeps(fd, 3, "0.2");
	poll(NULL, 0, 100);
	kill(server.pid, SIGTERM);
	expect_sleeps(fd, 3);
	ck_assert(wait_eof(fd, now_ms() + 30000));
	close(fd);
	log = test_server_wait_clean(&server);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "jobs_done"), 3);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "dropped_bytes"),
	    0);
	free(log);
}
END_TEST

/* A client whose connection fails (a reset) with 10 jobs of 0.5 s queued
 * on one pool thread: they are cancelled, not run, so the count comes
 * long before 5 s.  (A plain close is a half-close to the server, which
 * still owes the replies, so it runs them.) */
START_TEST(test_offload_jobs_of_a_closed_connection_are_cancelled)
{
	const char *args[] = { "--protocol", "resp", "--offload",
	    "--offload-threads", "1", NULL };
	uint64_t t0;
	char *log;
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	write_all(fd, "PING\r\n", 6);
	expect(fd, "+PONG\r\n");
	sleeps(fd, 10, "0.5");
	poll(NULL, 0, 100);
	t0 = now_ms();
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){ 1, 0 },
	    sizeof(struct linger));
	close(fd);
	ck_assert(test_server_wait_stat(&server, "jobs_cancelled", 10,
	    now_ms() + 30000));
	ck_assert_msg(now_ms() - t0 < 4000, "took %llu ms",
	    (unsigned long long)(now_ms() - t0));
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "jobs_done"), 0);
	free(log);
}
END_TEST

/* A job longer than --grace: the grace period ends it (the connection is
 * dropped, the job sees it and stops), and the queued one is cancelled
 * through the pool. */
START_TEST(test_offload_grace_bounds_shutdown)
{
	const char *args[] = { "--protocol", "resp", "--offload",
	    "--offload-threads", "1", "--grace", "0.5", NULL };
	uint64_t t0;
	char *log;
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	write_all(fd, "PING\r\n", 6);
	expect(fd, "+PONG\r\n");
	sleeps(fd, 2, "60");
	poll(NULL, 0, 100);
	t0 = now_ms();
	log = test_server_stop_clean(&server);
	ck_assert_msg(now_ms() - t0 < 20000, "took %llu ms",
	    (unsigned long long)(now_ms() - t0));
	ck_assert_int_eq(test_stat(log, "at exit", "total", "jobs_done"), 0);
	free(log);
	close(fd);
}
END_TEST

/*
 * Clients that come and go with jobs in flight, through a pool with room
 * for 4 queued jobs: a reset, a plain close, or a half-close after which
 * the client reads everything.  Each half-closing client gets exactly
 * the replies it asked for, in order; the server keeps serving, and
 * exits cleanly (and, under the sanitizers or valgrind, without a
 * report).
 */
START_TEST(test_offload_survives_resets_and_half_closes)
{
	const char *args[] = { "--protocol", "resp", "-t", "2", "--offload",
	    "--offload-threads", "2", "--offload-queue", "4", NULL };
	static const char *const req[] = { "DEBUG SLEEP 0.002\r\n",
	    "PING\r\n", "DEBUG SLEEP 0\r\n" };
	static const char *const rep[] = { "+OK\r\n", "+PONG\r\n",
	    "+OK\r\n" };
	int rounds = (int)scaled(20, 3), served = 0;
	uint64_t rng = 7;
	char *log;
	int fd;

	test_server_start(&server, args);
	for (int r = 0; r < rounds; r++) {
		int fds[10], kind[10];
		char *want[10];

		for (int i = 0; i < 10; i++) {
			int n;
			size_t wl = 0;

			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			n = 1 + (int)((rng >> 33) % 30);
			kind[i] = (int)((rng >> 20) % 10);
			want[i] = calloc((size_t)n, 8);
			fds[i] = test_connect(server.port);
			for (int k = 0; k < n; k++) {
				int q = (int)((rng >> (k % 40)) % 3);

				write_all(fds[i], req[q], strlen(req[q]));
				strcpy(want[i] + wl, rep[q]);
				wl += strlen(rep[q]);
			}
		}
		poll(NULL, 0, (int)(rng >> 60));
		for (int i = 0; i < 10; i++) {
			if (kind[i] < 4) {
				setsockopt(fds[i], SOL_SOCKET, SO_LINGER,
				    &(struct linger){ 1, 0 },
				    sizeof(struct linger));
			} else if (kind[i] < 7) {
				shutdown(fds[i], SHUT_WR);
				expect(fds[i], want[i]);
				ck_assert(wait_eof(fds[i], now_ms() + 30000));
				served++;
			}
			close(fds[i]);
			free(want[i]);
		}
	}
	ck_assert_int_gt(served, 0);
	fd = test_connect(server.port);
	write_all(fd, "DEBUG SLEEP 0\r\nPING\r\n", 21);
	expect(fd, "+OK\r\n+PONG\r\n");
	close(fd);
	log = test_server_stop_clean(&server);
	ck_assert_int_gt(test_stat(log, "at exit", "total", "jobs_done"), 0);
	free(log);
}
END_TEST

static Suite *offload_suite(void)
{
	Suite *s = suite_create("offload");
	TCase *tc = tcase_create("sha256");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sha256_inline_matches_sha256sum);
	tcase_add_test(tc, test_sha256_offloaded_matches_sha256sum);
	tcase_add_test(tc, test_sha256_offloaded_keeps_limit_and_quit_in_order);
	suite_add_tcase(s, tc);

	tc = tcase_create("order");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_offload_replies_keep_request_order);
	tcase_add_test(tc, test_offload_slow_request_does_not_block_its_worker);
	tcase_add_test(tc, test_inline_slow_request_blocks_its_worker);
	suite_add_tcase(s, tc);

	tc = tcase_create("backpressure");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_offload_connection_limit_defers_and_resumes);
	tcase_add_test(tc, test_offload_full_pool_holds_connections_back);
	tcase_add_test(tc, test_offload_waiting_client_is_not_idle);
	suite_add_tcase(s, tc);

	tc = tcase_create("shutdown");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_offload_shutdown_flushes_live_jobs);
	tcase_add_test(tc, test_offload_jobs_of_a_closed_connection_are_cancelled);
	tcase_add_test(tc, test_offload_grace_bounds_shutdown);
	tcase_add_test(tc, test_offload_survives_resets_and_half_closes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(offload_suite());
}
