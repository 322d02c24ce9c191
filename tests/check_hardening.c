/*
 * Hardening tests against a real echoserver: the connection limit, file
 * descriptor exhaustion, idle and write-stall timeouts, statistics on
 * SIGUSR1, injected faults inside the server (tests/faults.c), and
 * connection churn leaving no descriptor or memory behind.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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

START_TEST(test_max_conns_rejects_with_message_and_spares_others)
{
	const char *args[] = { "-t", "2", "-c", "5", "--reject-message",
		"BUSY\r\n", NULL };
	int fds[5], extra, again;
	char buf[16] = "";
	char *log;

	test_server_start(&server, args);
	for (int i = 0; i < 5; i++) {
		fds[i] = test_connect(server.port);
		ck_assert(test_echo_once(fds[i]));
	}
	extra = test_connect(server.port);
	ck_assert_uint_eq(read_exact(extra, buf, 6, now_ms() + 10000), 6);
	ck_assert_str_eq(buf, "BUSY\r\n");
	ck_assert(wait_eof(extra, now_ms() + 10000));
	close(extra);
	for (int i = 0; i < 5; i++)
		ck_assert(test_echo_once(fds[i]));

	/* A slot freed is a slot usable again. */
	close(fds[0]);
	for (again = -1; again < 0;) {
		int fd = test_connect(server.port);

		if (test_echo_once(fd))
			again = fd;
		else
			close(fd);
	}
	close(again);
	for (int i = 1; i < 5; i++)
		close(fds[i]);
	log = test_server_stop_clean(&server);
	ck_assert_int_ge(test_stat(log, "at exit", "total", "rejected"), 1);
	free(log);
}
END_TEST

START_TEST(test_fd_exhaustion_sheds_clients_without_spinning_and_recovers)
{
	/* A limit above the fd limit, so that accept() meets EMFILE. */
	const char *args[] = { "-t", "2", "-c", "100000", NULL };
	enum { MAX = 400 };
	int fds[MAX], held = 0, shed = 0, fd;
	double cpu0, cpu1;
	uint64_t t0, t1;
	char *log;

	test_server_start_ex(&server, args, NULL, 64);
	/* Fill every descriptor the server has. */
	while (held + shed < MAX) {
		fd = test_connect(server.port);
		if (test_echo_once(fd)) {
			fds[held++] = fd;
		} else {
			close(fd);
			shed++;
			if (shed > 20)
				break;
		}
	}
	ck_assert_int_gt(held, 10);
	ck_assert_int_gt(shed, 0);

	/* Keep knocking for a second: the server must not spin. */
	cpu0 = procstat_cpu_seconds(server.pid);
	t0 = now_ms();
	while (now_ms() - t0 < 1000) {
		fd = test_connect_from(server.port, 0);
		if (fd >= 0) {
			/* shed: a close */
			ck_assert(!test_echo_once(fd));
			close(fd);
		}
	}
	cpu1 = procstat_cpu_seconds(server.pid);
	t1 = now_ms();
	ck_assert_msg(cpu1 - cpu0 < 0.5 * (double)(t1 - t0) / 1000.0,
	    "server used %.2f s of CPU in %.2f s of flood", cpu1 - cpu0,
	    (double)(t1 - t0) / 1000.0);

	/* The held clients are still served. */
	for (int i = 0; i < held; i++)
		ck_assert(test_echo_once(fds[i]));
	/* Free descriptors, and accepting resumes by itself. */
	for (int i = 0; i < held; i++)
		close(fds[i]);
	for (fd = -1; fd < 0;) {
		ck_assert_msg(now_ms() - t1 < 20000,
		    "accepting did not resume");
		fd = test_connect(server.port);
		if (!test_echo_once(fd)) {
			close(fd);
			fd = -1;
		}
	}
	close(fd);
	log = test_server_stop_clean(&server);
	ck_assert_int_gt(test_stat(log, "at exit", "total", "shed"), 0);
	free(log);
}
END_TEST

START_TEST(test_idle_timeout_closes_only_idle_connections)
{
	const char *args[] = { "--idle-timeout", "0.3", NULL };
	int idle, busy;
	uint64_t until;
	char *log;

	test_server_start(&server, args);
	idle = test_connect(server.port);
	busy = test_connect(server.port);
	ck_assert(test_echo_once(idle));
	/* busy talks every 100 ms for over a second; idle says nothing. */
	until = now_ms() + 1200;
	while (now_ms() < until) {
		ck_assert(test_echo_once(busy));
		poll(NULL, 0, 100);	/* the client's pace, not a sync */
	}
	ck_assert(wait_eof(idle, now_ms() + 10000));
	ck_assert(test_echo_once(busy));
	close(idle);
	close(busy);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "idle_timeouts"), 1);
	free(log);
}
END_TEST

START_TEST(test_write_timeout_closes_a_client_that_never_reads)
{
	const char *args[] = { "--write-timeout", "0.5", "--high-water",
		"64K", "--low-water", "16K", NULL };
	static char junk[64 * 1024];
	int fd, other;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	/* Fill both directions until the server stops reading us. */
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };

		if (poll(&pfd, 1, 300) <= 0 || write(fd, junk, sizeof(junk))
		    < 0)
			break;
	}
	ck_assert(test_server_wait_stat(&server, "write_timeouts", 1,
	    now_ms() + 20000));
	ck_assert(test_server_log_wait(&server, "read none of its",
	    now_ms() + 1000));
	other = test_connect(server.port);
	ck_assert(test_echo_once(other));
	close(other);
	close(fd);
	free(test_server_stop_clean(&server));
}
END_TEST

START_TEST(test_sigusr1_logs_live_statistics)
{
	int fd;

	test_server_start(&server, NULL);
	fd = test_connect(server.port);
	write_all(fd, "hello", 5);
	ck_assert(read_exact(fd, (char[5]){ 0 }, 5, now_ms() + 10000) == 5);
	ck_assert(test_server_wait_stat(&server, "bytes_out", 5,
	    now_ms() + 10000));
	ck_assert(test_server_wait_stat(&server, "conns_open", 1,
	    now_ms() + 10000));
	close(fd);
	ck_assert(test_server_wait_stat(&server, "conns_open", 0,
	    now_ms() + 10000));
	free(test_server_stop_clean(&server));
}
END_TEST

/*
 * Runs @n serial clients against the fault-injecting server and checks
 * that each was either served or closed, that the failures were counted
 * under @counter, and that no descriptor leaked.
 */
static void check_faults(const char *spec, const char *counter, int n)
{
	const char *args[] = { "-t", "2", NULL };
	int served = 0, closed = 0, fds0;
	char *log;

	setenv("ECHOSERVER_FAULTS", spec, 1);
	test_server_start_ex(&server, args, "tests/echoserver-faults", 0);
	fds0 = proc_fd_count(server.pid);
	for (int i = 0; i < n; i++) {
		int fd = test_connect(server.port);

		if (test_echo_once(fd))
			served++;
		else
			closed++;
		close(fd);
	}
	ck_assert_int_gt(closed, 0);
	ck_assert_int_gt(served, 0);
	/* Every fd given back: the count returns to where it started. */
	for (uint64_t end = now_ms() + 10000;
	    proc_fd_count(server.pid) != fds0 && now_ms() < end;)
		poll(NULL, 0, 10);	/* a poll interval, bounded above */
	ck_assert_int_eq(proc_fd_count(server.pid), fds0);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(test_stat(log, "at exit", "total", counter), closed);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "conns_total"),
	    served);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "conns_open"), 0);
	free(log);
}

START_TEST(test_failed_bufferevent_closes_and_counts_the_connection)
{
	check_faults("bev=3", "errors", 12);
}
END_TEST

START_TEST(test_failed_dispatch_allocation_closes_and_counts)
{
	check_faults("item=3", "dispatch_errors", 12);
}
END_TEST

START_TEST(test_failed_notify_closes_and_counts_without_leaking_the_item)
{
	check_faults("notify=4", "dispatch_errors", 12);
}
END_TEST

START_TEST(test_churn_returns_fds_and_memory_to_the_start)
{
	const char *args[] = { "-t", "2", NULL };
	size_t cycles = scaled(5000, 200);
	int fds0, fds1;
	long rss0, rss1;
	char *log;

	test_server_start(&server, args);
	/* Warm up first, so allocator arenas exist before the baseline. */
	for (int i = 0; i < 100; i++) {
		int fd = test_connect(server.port);

		ck_assert(test_echo_once(fd));
		close(fd);
	}
	ck_assert(test_server_wait_stat(&server, "conns_open", 0,
	    now_ms() + 10000));
	fds0 = proc_fd_count(server.pid);
	rss0 = procstat_rss_kib(server.pid);
	for (size_t i = 0; i < cycles; i++) {
		int fd = test_connect(server.port);

		ck_assert(test_echo_once(fd));
		close(fd);
	}
	ck_assert(test_server_wait_stat(&server, "conns_open", 0,
	    now_ms() + 10000));
	fds1 = proc_fd_count(server.pid);
	rss1 = procstat_rss_kib(server.pid);
	ck_assert_int_eq(fds1, fds0);
	ck_assert_msg(!rss_is_meaningful() || rss1 - rss0 < 2048,
	    "RSS grew %ld KiB over %zu cycles", rss1 - rss0, cycles);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "conns_total"),
	    (long)cycles + 100);
	free(log);
}
END_TEST

static Suite *hardening_suite(void)
{
	Suite *s = suite_create("hardening");
	TCase *tc;

	tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc,
	    test_max_conns_rejects_with_message_and_spares_others);
	tcase_add_test(tc,
	    test_fd_exhaustion_sheds_clients_without_spinning_and_recovers);
	suite_add_tcase(s, tc);

	tc = tcase_create("timeouts");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_idle_timeout_closes_only_idle_connections);
	tcase_add_test(tc, test_write_timeout_closes_a_client_that_never_reads);
	suite_add_tcase(s, tc);

	tc = tcase_create("stats");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sigusr1_logs_live_statistics);
	suite_add_tcase(s, tc);

	tc = tcase_create("faults");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc,
	    test_failed_bufferevent_closes_and_counts_the_connection);
	tcase_add_test(tc, test_failed_dispatch_allocation_closes_and_counts);
	tcase_add_test(tc,
	    test_failed_notify_closes_and_counts_without_leaking_the_item);
	suite_add_tcase(s, tc);

	tc = tcase_create("churn");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_churn_returns_fds_and_memory_to_the_start);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(hardening_suite());
}
