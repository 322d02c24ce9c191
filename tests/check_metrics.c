/*
 * Integration tests for --metrics: a real echoserver, scraped over real
 * HTTP on a loopback socket, its text checked by the real promtool
 * (Debian's prometheus package; the test says skip where it is missing),
 * its figures checked against the traffic the test made, and evhttp's
 * refusals of bad requests checked not to touch the echo service.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The endpoint's per-read-or-write timeout (src/metrics.c). */
#define METRICS_TIMEOUT_MS 10000

static struct test_server server;

static void teardown(void)
{
	test_server_stop(&server, SIGKILL);
	test_server_cleanup(&server);
}

static uint64_t deadline_in(uint64_t ms)
{
	const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
	double k = m ? atof(m) : 1;

	return now_ms() + (uint64_t)((double)ms * (k > 1 ? k : 1));
}

/* Starts the server with --metrics on a free loopback port (always the
 * port file's last line) and the NULL-terminated @extra options. */
static int start_with_metrics(const char *const *extra)
{
	const char *args[24] = { "-t", "2", "--metrics", "127.0.0.1:0" };
	int n = 4;

	while (extra && *extra && n < 23)
		args[n++] = *extra++;
	args[n] = NULL;
	test_server_start(&server, args);
	ck_assert_int_ge(server.n_ports, 2);
	return server.ports[server.n_ports - 1];
}

/* Reads until EOF or @deadline into a NUL-terminated buffer (caller
 * frees); *@len gets its length, *@eof whether EOF came. */
static char *read_until_eof(int fd, uint64_t deadline, size_t *len,
    int *eof)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);

	ck_assert_ptr_nonnull(buf);
	*eof = 0;
	while (now_ms() < deadline) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, (int)(deadline - now_ms())) <= 0)
			continue;
		if (n + 1 == cap) {
			buf = realloc(buf, cap *= 2);
			ck_assert_ptr_nonnull(buf);
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0) {
			*eof = r == 0 || errno == ECONNRESET;
			break;
		}
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

struct http_reply {
	int status;		/* 0: no status line */
	char *text;		/* the whole reply; caller frees */
	const char *body;	/* in @text, after the blank line */
	int eof;
};

/* Sends @req (@len bytes) on a fresh connection to @port and reads the
 * reply until the server closes. */
static struct http_reply http_raw(int port, const char *req, size_t len)
{
	struct http_reply r = { 0 };
	int fd = test_connect(port);
	const char *end;
	size_t n;

	write_all(fd, req, len);
	r.text = read_until_eof(fd, deadline_in(20000), &n, &r.eof);
	close(fd);
	sscanf(r.text, "HTTP/1.%*d %d", &r.status);
	end = strstr(r.text, "\r\n\r\n");
	r.body = end ? end + 4 : r.text + n;
	return r;
}

static struct http_reply http(int port, const char *method,
    const char *path)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: test\r\n"
	    "Connection: close\r\n\r\n", method, path);

	return http_raw(port, req, (size_t)n);
}

/* GET /metrics: the body (caller frees), after checking the reply. */
static char *scrape(int port)
{
	struct http_reply r = http(port, "GET", "/metrics");
	char *body;

	ck_assert_msg(r.status == 200, "scrape: %s", r.text);
	ck_assert_msg(strstr(r.text, "\r\nContent-Type: text/plain; "
	    "version=0.0.4"), "no 0.0.4 content type: %.300s", r.text);
	body = strdup(r.body);
	free(r.text);
	return body;
}

/* The value of the sample @series ("name" or "name{labels}") in @body;
 * -1 if it is not there. */
static double sample(const char *body, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = body; p && *p; p = strchr(p, '\n'),
	    p = p ? p + 1 : NULL)
		if (!strncmp(p, series, n) && p[n] == ' ')
			return atof(p + n + 1);
	return -1;
}

/* The sum of every sample of the family @name with a worker label. */
static double sum_workers(const char *body, const char *name, int workers)
{
	char series[160];
	double sum = 0;

	for (int w = 0; w < workers; w++) {
		double v;

		snprintf(series, sizeof(series), "%s{worker=\"%d\"}", name, w);
		v = sample(body, series);
		ck_assert_msg(v >= 0, "no %s", series);
		sum += v;
	}
	return sum;
}

/*
 * Scrapes until @series reaches @want, and returns what it last read.  A
 * worker counts a reply just after it has sent it, so a client can have
 * its echo before the count moves (a moment, but under valgrind a long
 * one).
 */
static double wait_sample(int port, const char *series, double want)
{
	uint64_t deadline = deadline_in(20000);
	double v;

	do {
		char *body = scrape(port);

		v = sample(body, series);
		free(body);
	} while (v < want && now_ms() < deadline);
	return v;
}

/* Sends @n messages of @size bytes on @fd one at a time, each echoed and
 * checked before the next. */
static void ping_pong(int fd, int n, size_t size)
{
	char out[4096], in[4096];

	ck_assert_uint_le(size, sizeof(out));
	for (int i = 0; i < n; i++) {
		memset(out, 'a' + i % 26, size);
		write_all(fd, out, size);
		ck_assert_uint_eq(read_exact(fd, in, size, deadline_in(20000)),
		    size);
		ck_assert(memcmp(in, out, size) == 0);
	}
}

START_TEST(test_metrics_scrape_passes_promtool_check_metrics)
{
	int port = start_with_metrics((const char *[]){ "-l",
	    "resp@127.0.0.1", NULL });
	char path[160], cmd[256], *body, *out;
	int fd = test_connect(server.port), status;
	FILE *f;

	ping_pong(fd, 10, 64);	/* so the histogram has observations */
	body = scrape(port);
	snprintf(path, sizeof(path), "%s/metrics.txt", server.dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(body, f);
	ck_assert_int_eq(fclose(f), 0);
	/* promtool prints format errors and lint problems (names, HELP,
	 * counter suffixes) and then exits non-zero. */
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
	out = test_shell(cmd, &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    !*out, "promtool check metrics (status %d): %.2000s", status, out);
	unlink(path);
	free(out);
	free(body);
	close(fd);
}
END_TEST

START_TEST(test_metrics_counters_and_histogram_follow_the_echoes)
{
	enum { N = 50, SIZE = 100 };
	int port = start_with_metrics(NULL);
	char *before = scrape(port), *after, *later;
	double count0 = sample(before,
	    "echoserver_reply_latency_seconds_count");
	double prev = 0;
	char series[96];
	int fd, open_now;
	uint64_t deadline;

	ck_assert(count0 == 0);
	ck_assert(sample(before, "echoserver_connections_open") == 0);
	ck_assert(sample(before, "echoserver_workers") == 2);
	fd = test_connect(server.port);
	ping_pong(fd, N, SIZE);
	ck_assert(wait_sample(port, "echoserver_reply_latency_seconds_count",
	    N) == N);
	ck_assert(wait_sample(port, "echoserver_bytes_out_total", N * SIZE) ==
	    N * SIZE);
	after = scrape(port);

	/* Each ping-pong is one read and one reply: N observations. */
	ck_assert(sample(after, "echoserver_bytes_in_total") -
	    sample(before, "echoserver_bytes_in_total") == N * SIZE);
	ck_assert(sample(after, "echoserver_bytes_out_total") -
	    sample(before, "echoserver_bytes_out_total") == N * SIZE);
	ck_assert(sample(after, "echoserver_reply_latency_seconds_count") -
	    count0 == N);
	ck_assert(sample(after, "echoserver_reply_latency_seconds_sum") > 0);
	ck_assert(sample(after, "echoserver_accepted_total") == 1);
	ck_assert(sample(after, "echoserver_conns_opened_total") == 1);
	ck_assert(sample(after, "echoserver_connections_open") == 1);

	/* The per-worker series add up to the totals. */
	ck_assert(sum_workers(after, "echoserver_worker_bytes_in_total", 2) ==
	    sample(after, "echoserver_bytes_in_total"));
	ck_assert(sum_workers(after,
	    "echoserver_worker_reply_latency_seconds_count", 2) == N);
	ck_assert(sum_workers(after, "echoserver_worker_connections_open",
	    2) == 1);

	/* Buckets are cumulative and end at the count. */
	for (unsigned i = 0; i < 24; i++) {
		double v;

		snprintf(series, sizeof(series),
		    "echoserver_reply_latency_seconds_bucket{le=\"%u.%06u\"}",
		    (1u << i) / 1000000, (1u << i) % 1000000);
		v = sample(after, series);
		ck_assert_msg(v >= prev, "%s is %g, below %g", series, v,
		    prev);
		prev = v;
	}
	ck_assert(sample(after,
	    "echoserver_reply_latency_seconds_bucket{le=\"+Inf\"}") == N);
	ck_assert(prev <= N);

	/* The gauge follows the close. */
	close(fd);
	deadline = deadline_in(20000);
	do {
		later = scrape(port);
		open_now = (int)sample(later, "echoserver_connections_open");
		free(later);
	} while (open_now != 0 && now_ms() < deadline);
	ck_assert_int_eq(open_now, 0);
	free(before);
	free(after);
	free(test_server_stop_clean(&server));
}
END_TEST

/* SETs @n keys "key:N" to "value-N" (both 5 and 7 bytes for N < 10). */
static void resp_set_keys(int fd, int n)
{
	char cmd[128], reply[8];

	for (int i = 0; i < n; i++) {
		int len = snprintf(cmd, sizeof(cmd), "*3\r\n$3\r\nSET\r\n$5\r\n"
		    "key:%d\r\n$7\r\nvalue-%d\r\n", i, i);

		write_all(fd, cmd, (size_t)len);
		ck_assert_uint_eq(read_exact(fd, reply, 5, deadline_in(20000)),
		    5);
		ck_assert(memcmp(reply, "+OK\r\n", 5) == 0);
	}
}

START_TEST(test_metrics_store_keys_and_memory_follow_resp)
{
	int port = start_with_metrics((const char *[]){ "-l",
	    "resp@127.0.0.1", "--max-memory", "1M", NULL });
	int fd = test_connect(server.ports[1]);
	char *body = scrape(port), reply[8];

	ck_assert(sample(body, "echoserver_store_keys") == 0);
	ck_assert(sample(body, "echoserver_store_memory_bytes") == 0);
	ck_assert(sample(body, "echoserver_store_max_memory_bytes") ==
	    1 << 20);
	free(body);

	resp_set_keys(fd, 10);
	body = scrape(port);
	ck_assert(sample(body, "echoserver_store_keys") == 10);
	/* 48 bytes per entry plus its key and value (docs/design.md). */
	ck_assert(sample(body, "echoserver_store_memory_bytes") ==
	    10 * (48 + 5 + 7));
	ck_assert(sample(body, "echoserver_requests_total") == 10);
	free(body);

	write_all(fd, "*2\r\n$3\r\nDEL\r\n$5\r\nkey:3\r\n", 24);
	ck_assert_uint_eq(read_exact(fd, reply, 4, deadline_in(20000)), 4);
	ck_assert(memcmp(reply, ":1\r\n", 4) == 0);
	body = scrape(port);
	ck_assert(sample(body, "echoserver_store_keys") == 9);
	ck_assert(sample(body, "echoserver_store_memory_bytes") ==
	    9 * (48 + 5 + 7));
	free(body);
	close(fd);
}
END_TEST

START_TEST(test_metrics_other_paths_get_404_and_other_methods_405)
{
	const char *refused[] = { "POST", "PUT", "DELETE", "PATCH",
		"OPTIONS" };
	int port = start_with_metrics(NULL);
	struct http_reply r;

	r = http(port, "GET", "/");
	ck_assert_int_eq(r.status, 404);
	free(r.text);
	r = http(port, "GET", "/metricsx");
	ck_assert_int_eq(r.status, 404);
	free(r.text);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		r = http(port, refused[i], "/metrics");
		ck_assert_msg(r.status == 405, "%s: %.300s", refused[i],
		    r.text);
		ck_assert_msg(strstr(r.text, "\r\nAllow: GET, HEAD\r\n"),
		    "%s: no Allow header: %.300s", refused[i], r.text);
		free(r.text);
	}
	r = http(port, "HEAD", "/metrics");
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(!*r.body, "HEAD sent a body: %.100s", r.body);
	ck_assert_msg(strstr(r.text, "\r\nContent-Length: "),
	    "HEAD without a length: %.300s", r.text);
	free(r.text);
	/* The query is ignored. */
	r = http(port, "GET", "/metrics?debug=1");
	ck_assert_int_eq(r.status, 200);
	ck_assert(sample(r.body, "echoserver_workers") == 2);
	free(r.text);
}
END_TEST

/* @len bytes of a request whose one header is @len long. */
static char *huge_header_request(size_t len)
{
	char *req = malloc(len + 128);
	int n;

	ck_assert_ptr_nonnull(req);
	n = sprintf(req, "GET /metrics HTTP/1.1\r\nHost: test\r\nX-Big: ");
	memset(req + n, 'h', len);
	strcpy(req + n + len, "\r\n\r\n");
	return req;
}

START_TEST(test_metrics_bad_http_is_refused_and_echo_goes_on)
{
	static const char garbage[] = "\x16\x03\x01 hello?\r\n\r\n";
	static const char body_req[] = "POST /metrics HTTP/1.1\r\nHost: t\r\n"
	    "Content-Length: 2000\r\n\r\n";
	static const char brew[] = "BREW /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
	int port = start_with_metrics(NULL);
	int echo_fd = test_connect(server.port);
	int stalled = test_connect(port), eof;
	char *req, *body, *log;
	struct http_reply r;
	uint64_t t0;
	size_t n;

	ping_pong(echo_fd, 1, 32);
	/* Half a request, then nothing: the timeout must close it. */
	write_all(stalled, "GET /metrics HTTP/1.1\r\nHo", 25);
	t0 = now_ms();

	r = http_raw(port, garbage, sizeof(garbage) - 1);
	ck_assert_msg(r.status == 400 && r.eof, "garbage: %.300s", r.text);
	free(r.text);
	/* Headers over the 8 KiB limit. */
	req = huge_header_request(9000);
	r = http_raw(port, req, strlen(req));
	ck_assert_msg(r.status == 400 && r.eof, "9 KB header: %.300s", r.text);
	free(r.text);
	free(req);
	/* A body over the 1 KiB limit: refused before it is read. */
	req = malloc(sizeof(body_req) + 2000);
	ck_assert_ptr_nonnull(req);
	memcpy(req, body_req, sizeof(body_req) - 1);
	memset(req + sizeof(body_req) - 1, 'b', 2000);
	r = http_raw(port, req, sizeof(body_req) - 1 + 2000);
	ck_assert_msg(r.status == 413 && r.eof, "2 KB body: %.300s", r.text);
	free(r.text);
	free(req);
	/* A method evhttp does not know: its own 501. */
	r = http_raw(port, brew, sizeof(brew) - 1);
	ck_assert_msg(r.status == 501 && r.eof, "BREW: %.300s", r.text);
	free(r.text);

	/* None of it touched the echo service or the endpoint. */
	ping_pong(echo_fd, 20, 512);
	body = scrape(port);
	ck_assert(sample(body, "echoserver_errors_total") == 0);
	ck_assert(sample(body, "echoserver_connections_open") == 1);
	free(body);

	/* The stalled scraper is cut off by the timeout, not before. */
	free(read_until_eof(stalled, deadline_in(METRICS_TIMEOUT_MS + 20000),
	    &n, &eof));
	ck_assert_msg(eof, "stalled request not closed");
	ck_assert_uint_ge(now_ms() - t0, METRICS_TIMEOUT_MS - 1000);
	close(stalled);
	ping_pong(echo_fd, 1, 32);
	close(echo_fd);
	log = test_server_stop_clean(&server);
	free(log);
}
END_TEST

START_TEST(test_metrics_port_taken_fails_start_up_naming_it)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), status;
	char addr[64], want[128], *err;
	const char *args[] = { "-l", "127.0.0.1:0", "--metrics", addr, NULL };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sin.sin_port));
	status = run_echoserver(args, &err);
	close(fd);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 1);
	snprintf(want, sizeof(want), "cannot serve metrics on '%s': Address "
	    "already in use", addr);
	ck_assert_msg(strstr(err, want), "stderr: %s", err);
	free(err);
}
END_TEST

/* Echoes @n messages of @size bytes and exits 0 if every one came back;
 * for a child process, so it never fails the test itself. */
static void echo_child(int port, int n, size_t size)
{
	char out[256], in[256];
	int fd = test_connect_from(port, 0);

	memset(out, 'e', sizeof(out));
	if (fd < 0 || size > sizeof(out))
		_exit(2);
	for (int i = 0; i < n; i++) {
		size_t got = 0;

		if (write(fd, out, size) != (ssize_t)size)
			_exit(3);
		while (got < size) {
			ssize_t r = read(fd, in + got, size - got);

			if (r <= 0)
				_exit(4);
			got += (size_t)r;
		}
	}
	close(fd);
	_exit(0);
}

START_TEST(test_metrics_scrapes_beside_busy_workers_see_counts_grow)
{
	enum { CHILDREN = 4, N = 2000, SIZE = 64 };
	int port = start_with_metrics(NULL), status, scrapes = 0, left;
	pid_t kids[CHILDREN];
	double prev = 0, bytes;
	char *body;

	for (int i = 0; i < CHILDREN; i++) {
		kids[i] = fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0)
			echo_child(server.port, (int)scaled(N, 50), SIZE);
	}
	/* Scrape while the workers echo: every scrape is whole, and the
	 * counters only grow. */
	do {
		body = scrape(port);
		bytes = sample(body, "echoserver_bytes_in_total");
		ck_assert_msg(bytes >= prev, "bytes_in went from %g to %g",
		    prev, bytes);
		prev = bytes;
		scrapes++;
		free(body);
		left = 0;
		for (int i = 0; i < CHILDREN; i++)
			if (kids[i] && waitpid(kids[i], &status, WNOHANG) ==
			    kids[i]) {
				ck_assert_msg(WIFEXITED(status) &&
				    WEXITSTATUS(status) == 0,
				    "echo client %d failed: %d", i, status);
				kids[i] = 0;
			} else if (kids[i]) {
				left++;
			}
	} while (left);
	bytes = (double)CHILDREN * (double)scaled(N, 50) * SIZE;
	ck_assert(wait_sample(port, "echoserver_bytes_in_total", bytes) ==
	    bytes);
	ck_assert(wait_sample(port, "echoserver_bytes_out_total", bytes) ==
	    bytes);
	ck_assert_int_gt(scrapes, 1);
	/* A sanitizer's report would make this exit status non-zero. */
	free(test_server_stop_clean(&server));
}
END_TEST

START_TEST(test_metrics_out_of_descriptors_backs_off_and_recovers)
{
	/* A connection limit above the fd limit, so accept() meets EMFILE;
	 * the metrics port is the port file's last line. */
	const char *args[] = { "-t", "2", "-c", "100000", "--metrics",
		"127.0.0.1:0", "-v", NULL };
	enum { MAX = 400 };
	int fds[MAX], held = 0, shed = 0, fd, port, eof;
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: t\r\n"
	    "Connection: close\r\n\r\n";
	double cpu0, cpu1;
	uint64_t t0;
	char *reply;
	size_t n;

	test_server_start_ex(&server, args, NULL, 64);
	port = server.ports[server.n_ports - 1];
	while (held + shed < MAX) {
		fd = test_connect(server.port);
		if (test_echo_once(fd)) {
			fds[held++] = fd;
		} else {
			close(fd);
			if (++shed > 20)
				break;
		}
	}
	ck_assert_int_gt(shed, 0);	/* out of descriptors now */

	/* The kernel queues the scrape; the server cannot accept it.  It
	 * must rest, not spin, meanwhile. */
	fd = test_connect(port);
	write_all(fd, req, sizeof(req) - 1);
	cpu0 = procstat_cpu_seconds(server.pid);
	t0 = now_ms();
	poll(NULL, 0, 1000);	/* the span measured, not a sync */
	cpu1 = procstat_cpu_seconds(server.pid);
	ck_assert_msg(cpu1 - cpu0 < 0.25 * (double)(now_ms() - t0) / 1000.0,
	    "server used %.2f s of CPU in %.2f s", cpu1 - cpu0,
	    (double)(now_ms() - t0) / 1000.0);
	ck_assert(test_server_log_wait(&server, "metrics: accept: Too many "
	    "open files; pausing", deadline_in(1000)));

	/* Descriptors come back, and the waiting scrape is answered. */
	for (int i = 0; i < held; i++)
		close(fds[i]);
	reply = read_until_eof(fd, deadline_in(20000), &n, &eof);
	if (strncmp(reply, "HTTP/1.1 200 ", 13)) {
		char *log = test_server_log(&server);
		size_t len = strlen(log);

		ck_abort_msg("reply: '%.300s'; log ends: %s", reply,
		    log + (len > 1500 ? len - 1500 : 0));
	}
	ck_assert(sample(strstr(reply, "\r\n\r\n") + 4,
	    "echoserver_workers") == 2);
	free(reply);
	close(fd);
	free(test_server_stop_clean(&server));
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("scrape");
	const char *no_promtool = test_have_tool("promtool") ? NULL :
	    "promtool is not installed (apt-get install prometheus)";
	const char *wrapper = getenv("TEST_WRAPPER");
	/* valgrind's accept() closes a connection it has no descriptor
	 * for and reports EMFILE, so the queued scrape would be reset. */
	const char *no_emfile = wrapper && *wrapper ? "under TEST_WRAPPER "
	    "(valgrind closes what it cannot give a descriptor)" : NULL;

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	test_add_or_skip(tc, test_metrics_scrape_passes_promtool_check_metrics,
	    no_promtool);
	tcase_add_test(tc,
	    test_metrics_counters_and_histogram_follow_the_echoes);
	tcase_add_test(tc, test_metrics_store_keys_and_memory_follow_resp);
	tcase_add_test(tc,
	    test_metrics_scrapes_beside_busy_workers_see_counts_grow);
	suite_add_tcase(s, tc);

	tc = tcase_create("http");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc,
	    test_metrics_other_paths_get_404_and_other_methods_405);
	tcase_add_test(tc, test_metrics_bad_http_is_refused_and_echo_goes_on);
	tcase_add_test(tc, test_metrics_port_taken_fails_start_up_naming_it);
	test_add_or_skip(tc,
	    test_metrics_out_of_descriptors_backs_off_and_recovers,
	    no_emfile);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(metrics_suite());
}
