/*
 * Integration tests: a real echoserver subprocess on a kernel-chosen
 * loopback port, real sockets, every echoed byte checked.  Sizes shrink
 * with TEST_SCALE for valgrind runs.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024 * 1024)

/* The byte at @offset of the stream with @seed: random access, so clients
 * need no copy of what they sent. */
static void stream_bytes(uint64_t seed, uint64_t offset, unsigned char *buf,
    size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t z = seed + ((offset + i) >> 3) * 0x9e3779b97f4a7c15ULL;

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		buf[i] = (unsigned char)(z >> (((offset + i) & 7) * 8));
	}
}

static void set_nonblocking(int fd)
{
	ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK),
	    0);
}

/*
 * The echo driver: many non-blocking clients in one poll() loop.  Each
 * writes its stream in chunks of random size (1 B to max_chunk), reading
 * and checking the echo as it goes, and half-closes once it has sent
 * @total; it is done when every byte came back, followed by EOF.
 */
struct client {
	int fd;
	uint64_t seed, rng;
	size_t total, sent, received, chunk_left;
	bool shut, eof;
};

static unsigned char scratch[MIB], expect[MIB];

static size_t next_chunk(struct client *c, size_t max_chunk)
{
	int bits = 0;
	size_t n;

	fill_random(&c->rng, &n, sizeof(n));
	while ((1UL << bits) < max_chunk)
		bits++;
	/* Log-uniform, so small and large chunks are both common. */
	n = (n % ((1UL << (n % (unsigned)(bits + 1))))) + 1;
	return n > max_chunk ? max_chunk : n;
}

static void client_write(struct client *c, size_t max_chunk)
{
	size_t n;
	ssize_t w;

	if (c->chunk_left == 0)
		c->chunk_left = next_chunk(c, max_chunk);
	n = c->chunk_left;
	if (n > c->total - c->sent)
		n = c->total - c->sent;
	if (n > sizeof(scratch))
		n = sizeof(scratch);
	stream_bytes(c->seed, c->sent, scratch, n);
	w = write(c->fd, scratch, n);
	if (w < 0) {
		ck_assert_msg(errno == EAGAIN, "write: %s", strerror(errno));
		return;
	}
	c->sent += (size_t)w;
	c->chunk_left -= (size_t)w;
	if (c->sent == c->total) {
		ck_assert_int_eq(shutdown(c->fd, SHUT_WR), 0);
		c->shut = true;
	}
}

static void client_read(struct client *c)
{
	ssize_t n = read(c->fd, scratch, sizeof(scratch));

	if (n < 0) {
		ck_assert_msg(errno == EAGAIN, "client read: %s",
		    strerror(errno));
		return;
	}
	if (n == 0) {
		c->eof = true;
		return;
	}
	ck_assert_msg(c->received + (size_t)n <= c->sent,
	    "echoed %zu bytes more than sent", c->received + (size_t)n -
	    c->sent);
	stream_bytes(c->seed, c->received, expect, (size_t)n);
	ck_assert_msg(memcmp(scratch, expect, (size_t)n) == 0,
	    "wrong bytes echoed at offset %zu", c->received);
	c->received += (size_t)n;
}

static void run_clients(int port, int n, size_t total, size_t max_chunk)
{
	struct client *cl = calloc((size_t)n, sizeof(*cl));
	struct pollfd *pfd = calloc((size_t)n, sizeof(*pfd));
	uint64_t deadline = now_ms() + 120000;
	int done = 0;

	ck_assert(cl && pfd);
	for (int i = 0; i < n; i++) {
		cl[i].fd = test_connect(port);
		set_nonblocking(cl[i].fd);
		cl[i].seed = 0x1234 + (uint64_t)i * 7919;
		cl[i].rng = cl[i].seed | 1;
		cl[i].total = total;
	}
	while (done < n) {
		ck_assert_msg(now_ms() < deadline, "echo of %zu bytes by %d "
		    "clients did not finish in time", total, n);
		for (int i = 0; i < n; i++) {
			pfd[i].fd = cl[i].eof ? -1 : cl[i].fd;
			pfd[i].events = POLLIN | (cl[i].shut ? 0 : POLLOUT);
		}
		if (poll(pfd, (nfds_t)n, 1000) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			struct client *c = &cl[i];

			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				client_read(c);
			if (!c->shut && (pfd[i].revents & POLLOUT))
				client_write(c, max_chunk);
			if (c->eof) {
				ck_assert_msg(c->received == c->total,
				    "client %d: EOF after %zu of %zu bytes",
				    i, c->received, c->total);
				close(c->fd);
				c->fd = -1;
				done++;
				pfd[i].fd = -1;
			}
		}
	}
	free(cl);
	free(pfd);
}

static struct test_server server;

static void stop_server_at_teardown(void)
{
	test_server_stop(&server, SIGKILL);
	test_server_cleanup(&server);
}

START_TEST(test_echo_lines_as_telnet_sends_them)
{
	const char *lines[] = { "hello\r\n", "second line\r\n", "\r\n",
		"quit\r\n" };
	char buf[64];
	int fd;

	test_server_start(&server, NULL);
	fd = test_connect(server.port);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		size_t len = strlen(lines[i]);

		write_all(fd, lines[i], len);
		ck_assert_uint_eq(read_exact(fd, buf, len, now_ms() + 10000),
		    len);
		ck_assert(memcmp(buf, lines[i], len) == 0);
	}
	/* A line typed in two pieces comes back as it was typed. */
	write_all(fd, "tel", 3);
	write_all(fd, "net\n", 4);
	ck_assert_uint_eq(read_exact(fd, buf, 7, now_ms() + 10000), 7);
	ck_assert(memcmp(buf, "telnet\n", 7) == 0);
	close(fd);
	free(test_server_stop_clean(&server));
}
END_TEST

START_TEST(test_listens_on_ipv4_and_ipv6_and_prints_both)
{
	const char *args[] = { "-l", "::1", NULL };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	char *log, *p, buf[4];
	int fd, port6;

	/* Added only where [::1] works (echoserver_suite). */
	test_server_start(&server, args);
	log = test_server_log(&server);
	/* The start-up line lists every bound address, ports included. */
	p = strstr(log, "listening on echo@127.0.0.1:");
	ck_assert_msg(p, "no start-up line: %s", log);
	p = strstr(p, " echo@[::1]:");
	ck_assert_msg(p && sscanf(p, " echo@[::1]:%d", &port6) == 1, "%s", log);
	free(log);

	sin6.sin6_port = htons((uint16_t)port6);
	sin6.sin6_addr = in6addr_loopback;
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin6, sizeof(sin6)),
	    0);
	write_all(fd, "six", 3);
	ck_assert_uint_eq(read_exact(fd, buf, 3, now_ms() + 10000), 3);
	ck_assert(memcmp(buf, "six", 3) == 0);
	close(fd);
	free(test_server_stop_clean(&server));
}
END_TEST

START_TEST(test_echo_200_clients_random_chunks_every_byte_checked)
{
	const char *args[] = { "-t", "2", NULL };

	test_server_start(&server, args);
	run_clients(server.port, 200, scaled(MIB, 4096), MIB);
	free(test_server_stop_clean(&server));
}
END_TEST

START_TEST(test_echo_64mib_then_half_close_returns_everything)
{
	const char *args[] = { "-t", "2", NULL };
	char *log;

	test_server_start(&server, args);
	run_clients(server.port, 1, scaled(64 * MIB, MIB), 256 * 1024);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "dropped_bytes"), 0);
	free(log);
}
END_TEST

/* Writes the stream of @c without reading until the socket stays full for
 * @quiet_ms, or all of c->total is out. */
static void push_until_stalled(struct client *c, int quiet_ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
		size_t n = c->total - c->sent;

		ssize_t w;

		if (n == 0 || poll(&pfd, 1, quiet_ms) <= 0)
			return;
		if (n > 256 * 1024)
			n = 256 * 1024;
		stream_bytes(c->seed, c->sent, scratch, n);
		w = write(c->fd, scratch, n);
		if (w > 0)
			c->sent += (size_t)w;
	}
}

/* Reads the rest of @c's echo until EOF, checking every byte. */
static void drain_client(struct client *c, uint64_t deadline)
{
	while (!c->eof) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

		ck_assert_msg(now_ms() < deadline, "drain timed out after %zu "
		    "of %zu bytes", c->received, c->sent);
		if (poll(&pfd, 1, 1000) > 0)
			client_read(c);
	}
}

START_TEST(test_backpressure_bounds_memory_of_a_client_that_never_reads)
{
	const char *args[] = { "-t", "2", "--high-water", "1M",
		"--low-water", "256K", NULL };
	struct client hog = { .seed = 99, .total = 256 * (size_t)MIB };
	long rss_before, rss_after;
	char buf[6];
	int fd;

	test_server_start(&server, args);
	rss_before = procstat_rss_kib(server.pid);
	hog.fd = test_connect(server.port);
	set_nonblocking(hog.fd);
	push_until_stalled(&hog, 500);
	rss_after = procstat_rss_kib(server.pid);

	/* The server stopped reading long before 256 MiB: what it holds is
	 * the high-water mark plus one read, beside the kernel's buffers. */
	ck_assert_msg(hog.sent < hog.total, "server buffered all 256 MiB");
	ck_assert_msg(!rss_is_meaningful() ||
	    rss_after - rss_before < 16 * 1024,
	    "RSS grew by %ld KiB while a client did not read",
	    rss_after - rss_before);

	/* Everyone else is still served. */
	fd = test_connect(server.port);
	write_all(fd, "ping\n", 5);
	ck_assert_uint_eq(read_exact(fd, buf, 5, now_ms() + 10000), 5);
	ck_assert(memcmp(buf, "ping\n", 5) == 0);
	close(fd);

	/* And the hog loses nothing once it reads. */
	hog.total = hog.sent;
	ck_assert_int_eq(shutdown(hog.fd, SHUT_WR), 0);
	drain_client(&hog, now_ms() + 60000);
	ck_assert_uint_eq(hog.received, hog.sent);
	close(hog.fd);
	free(test_server_stop_clean(&server));
}
END_TEST

START_TEST(test_connections_spread_evenly_over_workers)
{
	const char *args[] = { "-t", "3", NULL };
	int fds[99];
	char c;
	char *log;

	test_server_start(&server, args);
	for (int i = 0; i < 99; i++) {
		fds[i] = test_connect(server.port);
		/* An echo proves the worker has taken the connection. */
		write_all(fds[i], "x", 1);
		ck_assert_uint_eq(read_exact(fds[i], &c, 1, now_ms() + 10000),
		    1);
	}
	for (int i = 0; i < 99; i++)
		close(fds[i]);
	log = test_server_stop_clean(&server);
	for (int w = 0; w < 3; w++) {
		char who[16];

		snprintf(who, sizeof(who), "worker %d", w);
		ck_assert_msg(test_stat(log, "at exit", who, "conns_total") ==
		    33, "%s served %ld of 99: %s", who,
		    test_stat(log, "at exit", who, "conns_total"), log);
	}
	free(log);
}
END_TEST

START_TEST(test_sigterm_mid_transfer_delivers_pending_output_and_exits_0)
{
	enum { N = 20 };
	const char *args[] = { "-t", "2", "--grace", "30", NULL };
	struct client cl[N];
	uint64_t received = 0;
	char *log, c;

	test_server_start(&server, args);
	for (int i = 0; i < N; i++) {
		cl[i] = (struct client){ .seed = 500 + (uint64_t)i,
			.total = scaled(8 * MIB, 64 * 1024) };
		cl[i].fd = test_connect(server.port);
		/* One echo first, so the worker surely serves this client. */
		write_all(cl[i].fd, "x", 1);
		ck_assert_uint_eq(read_exact(cl[i].fd, &c, 1,
		    now_ms() + 30000), 1);
		set_nonblocking(cl[i].fd);
	}
	/* Every client has output pending in the server, and none reads. */
	for (int i = 0; i < N; i++)
		push_until_stalled(&cl[i], 200);

	kill(server.pid, SIGTERM);
	for (int i = 0; i < N; i++) {
		drain_client(&cl[i], now_ms() + 60000);
		received += cl[i].received;
		close(cl[i].fd);
	}
	log = test_server_wait_clean(&server);
	/* Everything the server read, it echoed before closing (N bytes
	 * were the warm-up echoes). */
	ck_assert_uint_gt(received, 0);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "dropped_bytes"), 0);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "bytes_in"), (long)received + N);
	ck_assert_int_eq(test_stat(log, "at exit", "total", "bytes_out"), (long)received + N);
	free(log);
}
END_TEST

START_TEST(test_grace_expiry_drops_and_counts_unsent_output_and_exits_0)
{
	const char *args[] = { "-t", "2", "--grace", "0.5", NULL };
	struct client hog = { .seed = 7, .total = 64 * (size_t)MIB };
	uint64_t t0;
	char *log;
	int status;

	test_server_start(&server, args);
	hog.fd = test_connect(server.port);
	set_nonblocking(hog.fd);
	push_until_stalled(&hog, 300);	/* output pending, never read */
	t0 = now_ms();
	kill(server.pid, SIGTERM);
	status = test_server_wait(&server, now_ms() + 30000);
	log = test_server_log(&server);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "status %#x: %s", status, log);
	/* Bounded by the grace period (0.5 s), not by the client. */
	ck_assert_msg(now_ms() - t0 < 10000, "shutdown took %llu ms",
	    (unsigned long long)(now_ms() - t0));
	ck_assert_ptr_nonnull(strstr(log, "grace period over"));
	ck_assert_int_gt(test_stat(log, "at exit", "total", "dropped_bytes"),
	    0);
	close(hog.fd);
	free(log);
}
END_TEST

static Suite *echoserver_suite(void)
{
	Suite *s = suite_create("echoserver");
	TCase *tc;

	tc = tcase_create("echo");
	tcase_add_checked_fixture(tc, NULL, stop_server_at_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_echo_lines_as_telnet_sends_them);
	test_add_or_skip(tc, test_listens_on_ipv4_and_ipv6_and_prints_both,
	    test_no_ipv6_loopback());
	tcase_add_test(tc, test_echo_200_clients_random_chunks_every_byte_checked);
	tcase_add_test(tc, test_echo_64mib_then_half_close_returns_everything);
	suite_add_tcase(s, tc);

	tc = tcase_create("backpressure");
	tcase_add_checked_fixture(tc, NULL, stop_server_at_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc,
	    test_backpressure_bounds_memory_of_a_client_that_never_reads);
	suite_add_tcase(s, tc);

	tc = tcase_create("dispatch");
	tcase_add_checked_fixture(tc, NULL, stop_server_at_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_connections_spread_evenly_over_workers);
	suite_add_tcase(s, tc);

	tc = tcase_create("shutdown");
	tcase_add_checked_fixture(tc, NULL, stop_server_at_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc,
	    test_sigterm_mid_transfer_delivers_pending_output_and_exits_0);
	tcase_add_test(tc,
	    test_grace_expiry_drops_and_counts_unsent_output_and_exits_0);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(echoserver_suite());
}
