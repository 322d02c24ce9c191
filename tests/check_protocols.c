/*
 * Integration tests for the protocol handlers: a real echoserver on
 * kernel-chosen loopback ports, one listener per handler, real sockets.
 * The handlers' parsing is unit-tested with a fake connection in
 * check_proto.c; these prove the server drives them as users see it:
 * per-listener selection, gathering, quit, limits, banners, half-close,
 * the real nc; resp with the real redis-cli is check_resp_cli.c.
 */
#include "testutil.h"

#include <errno.h>
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

/* Reads until EOF or @deadline_ms from now into @buf (NUL-terminated);
 * returns the length, and sets *@eof. */
static size_t read_all(int fd, char *buf, size_t size, int deadline_ms,
    int *eof)
{
	uint64_t deadline = now_ms() + (uint64_t)deadline_ms;
	size_t n = 0;

	*eof = 0;
	while (n < size - 1 && now_ms() < deadline) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, (int)(deadline - now_ms())) <= 0)
			continue;
		r = read(fd, buf + n, size - 1 - n);
		if (r <= 0) {
			*eof = r == 0 || errno == ECONNRESET;
			break;
		}
		n += (size_t)r;
	}
	buf[n] = '\0';
	return n;
}

/* Reads exactly strlen(@want) bytes and checks them. */
static void expect(int fd, const char *want)
{
	size_t len = strlen(want);
	char *got = calloc(1, len + 1);

	ck_assert_uint_eq(read_exact(fd, got, len, now_ms() + 20000), len);
	ck_assert_msg(memcmp(got, want, len) == 0, "got '%s', want '%s'",
	    got, want);
	free(got);
}

/* Reads what is left and checks that it is exactly @want, then EOF. */
static void expect_then_eof(int fd, const char *want)
{
	char buf[4096];
	int eof;

	read_all(fd, buf, sizeof(buf), 20000, &eof);
	ck_assert_str_eq(buf, want);
	ck_assert_msg(eof, "no EOF after '%s'", want);
}

static void send_str(int fd, const char *s)
{
	write_all(fd, s, strlen(s));
}

START_TEST(test_line_echoes_each_line_with_the_ending_it_came_with)
{
	const char *args[] = { "--protocol", "line", NULL };
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	send_str(fd, "one\ntwo\r\nthree\n");
	expect(fd, "one\ntwo\r\nthree\n");
	close(fd);
}
END_TEST

START_TEST(test_line_sent_a_byte_at_a_time_comes_back_the_same)
{
	const char *args[] = { "--protocol", "line", NULL };
	const char *text = "hello world\r\nsecond line\nx\n";
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	/* TCP_NODELAY (test_connect) makes each byte its own segment. */
	for (const char *p = text; *p; p++)
		write_all(fd, p, 1);
	expect(fd, text);
	close(fd);
}
END_TEST

START_TEST(test_line_quit_closes_after_the_replies_before_it)
{
	const char *args[] = { "--protocol", "line", NULL };
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	send_str(fd, "a\nb\r\nquit\r\nnot echoed\n");
	expect_then_eof(fd, "a\nb\r\n");
	close(fd);
}
END_TEST

START_TEST(test_line_too_long_is_refused_and_others_are_still_served)
{
	const char *args[] = { "--protocol", "line", "--max-line", "16",
		NULL };
	int fd, other;

	test_server_start(&server, args);
	other = test_connect(server.port);
	fd = test_connect(server.port);
	/* 16 bytes is the limit; the 17th without an ending breaks it. */
	send_str(fd, "ok\n0123456789abcdef\n0123456789abcdefg");
	expect_then_eof(fd, "ok\n0123456789abcdef\nerror: line too long\r\n");
	close(fd);
	send_str(other, "still here\n");
	expect(other, "still here\n");
	close(other);
}
END_TEST

/* A client that streams one endless line: it is cut off at the limit, and
 * the server's memory does not grow with what it sent. */
START_TEST(test_line_endless_line_leaves_memory_bounded)
{
	const char *args[] = { "--protocol", "line", NULL };
	static char junk[64 * 1024];
	long rss0, rss1;
	size_t sent = 0;
	int fd, other;

	test_server_start(&server, args);
	other = test_connect(server.port);
	rss0 = procstat_rss_kib(server.pid);
	memset(junk, 'x', sizeof(junk));
	for (int i = 0; i < 8; i++) {
		fd = test_connect(server.port);
		for (int k = 0; k < 64; k++) {
			ssize_t n = send(fd, junk, sizeof(junk),
			    MSG_NOSIGNAL);

			if (n <= 0)
				break;	/* the server gave up on us */
			sent += (size_t)n;
		}
		ck_assert_int_eq(wait_eof(fd, now_ms() + 20000), 1);
		close(fd);
	}
	send_str(other, "alive\n");
	expect(other, "alive\n");
	rss1 = procstat_rss_kib(server.pid);
	ck_assert_uint_gt(sent, 8 * 8 * 1024);
	if (rss_is_meaningful())
		ck_assert_msg(rss1 - rss0 < 4096, "RSS grew by %ld KiB after "
		    "%zu bytes of endless lines", rss1 - rss0, sent);
	close(other);
}
END_TEST

START_TEST(test_line_banner_is_sent_on_connect)
{
	const char *args[] = { "--protocol", "line", "--banner",
		"welcome to echoserver", NULL };
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	expect(fd, "welcome to echoserver\r\n");
	send_str(fd, "hi\n");
	expect(fd, "hi\n");
	close(fd);
}
END_TEST

START_TEST(test_line_half_close_returns_the_unfinished_last_line)
{
	const char *args[] = { "--protocol", "line", NULL };
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	send_str(fd, "a\nunfinished");
	shutdown(fd, SHUT_WR);
	expect_then_eof(fd, "a\nunfinished");
	close(fd);
}
END_TEST

START_TEST(test_reverse_reverses_each_line_keeping_its_ending)
{
	const char *args[] = { "--protocol", "reverse", NULL };
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	send_str(fd, "abc\r\nxy\n\n");
	expect(fd, "cba\r\nyx\n\n");
	send_str(fd, "quit\n");
	expect_then_eof(fd, "");
	close(fd);
}
END_TEST

START_TEST(test_each_listener_serves_its_own_protocol)
{
	const char *args[] = { "-l", "line@127.0.0.1", "-l",
		"reverse@127.0.0.1:0", NULL };
	char *log;
	int e, l, r;

	test_server_start(&server, args);
	ck_assert_int_eq(server.n_ports, 3);
	log = test_server_log(&server);
	ck_assert_msg(strstr(log, " echo@127.0.0.1:") &&
	    strstr(log, " line@127.0.0.1:") &&
	    strstr(log, " reverse@127.0.0.1:"), "start-up line: %s", log);
	free(log);
	e = test_connect(server.ports[0]);
	l = test_connect(server.ports[1]);
	r = test_connect(server.ports[2]);
	send_str(e, "quit\nabc");
	send_str(l, "abc\nquit\n");
	send_str(r, "abc\n");
	expect(e, "quit\nabc");
	expect_then_eof(l, "abc\n");
	expect(r, "cba\n");
	close(e);
	close(r);
}
END_TEST

/* The real nc, as a user runs it: lines back, and quit ends the session. */
START_TEST(test_nc_gets_its_lines_back_and_quit_ends_it)
{
	const char *args[] = { "--protocol", "line", NULL };
	char cmd[256], *out;
	int status;

	test_server_start(&server, args);
	snprintf(cmd, sizeof(cmd), "printf 'hello\\r\\nworld\\nquit\\n' | "
	    "timeout 20 nc 127.0.0.1 %d", server.port);
	out = test_shell(cmd, &status);
	ck_assert_str_eq(out, "hello\r\nworld\n");
	/* nc exits 0 because the server closed, not the timeout (124). */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "nc status %d", status);
	free(out);
}
END_TEST

START_TEST(test_resp_pipeline_is_answered_in_order_and_quit_closes)
{
	const char *args[] = { "--protocol", "resp", NULL };
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	send_str(fd, "PING\r\n*1\r\n$4\r\nPING\r\nECHO \"a b\"\r\n"
	    "FOO x\r\n");
	expect(fd, "+PONG\r\n+PONG\r\n$3\r\na b\r\n-ERR unknown command "
	    "'FOO', with args beginning with: 'x' \r\n");
	send_str(fd, "*1\r\n$4\r\nQUIT\r\nPING\r\n");
	expect_then_eof(fd, "+OK\r\n");
	close(fd);
}
END_TEST

static Suite *protocols_suite(void)
{
	Suite *s = suite_create("protocols");
	TCase *tc = tcase_create("line");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc,
	    test_line_echoes_each_line_with_the_ending_it_came_with);
	tcase_add_test(tc, test_line_sent_a_byte_at_a_time_comes_back_the_same);
	tcase_add_test(tc, test_line_quit_closes_after_the_replies_before_it);
	tcase_add_test(tc,
	    test_line_too_long_is_refused_and_others_are_still_served);
	tcase_add_test(tc, test_line_endless_line_leaves_memory_bounded);
	tcase_add_test(tc, test_line_banner_is_sent_on_connect);
	tcase_add_test(tc,
	    test_line_half_close_returns_the_unfinished_last_line);
	test_add_or_skip(tc, test_nc_gets_its_lines_back_and_quit_ends_it,
	    test_have_tool("nc") ? NULL :
	    "nc is not installed (apt-get install netcat-openbsd)");
	suite_add_tcase(s, tc);

	tc = tcase_create("reverse");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reverse_reverses_each_line_keeping_its_ending);
	suite_add_tcase(s, tc);

	tc = tcase_create("resp");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc,
	    test_resp_pipeline_is_answered_in_order_and_quit_closes);
	suite_add_tcase(s, tc);

	tc = tcase_create("listeners");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_each_listener_serves_its_own_protocol);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(protocols_suite());
}
