/*
 * Tests for the echobench program: against a small threaded echo server
 * inside the test, which can be told to corrupt one byte or to hang up
 * early, echobench must pass a true echo in every mode and fail a false one
 * with a message naming the fault.  Bad options must exit 64.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

Suite *echobench_suite(void);

enum fault {
	FAULT_NONE,
	FAULT_FLIP,	/* flip one byte at stream offset FAULT_AT */
	FAULT_CLOSE,	/* hang up after FAULT_AT bytes */
};

#define FAULT_AT 1000

struct fake_server {
	int lfd;
	int port;
	enum fault fault;
	pthread_t tid;
};

struct fake_conn {
	int fd;
	enum fault fault;
};

static void *fake_conn_run(void *arg)
{
	struct fake_conn *c = arg;
	unsigned char buf[4096];
	unsigned long long off = 0;
	ssize_t n;

	while ((n = read(c->fd, buf, sizeof(buf))) > 0) {
		ssize_t done = 0;

		if (c->fault == FAULT_FLIP && off <= FAULT_AT &&
		    FAULT_AT < off + (unsigned long long)n)
			buf[FAULT_AT - off] ^= 0x5a;
		if (c->fault == FAULT_CLOSE && off + (unsigned long long)n >
		    FAULT_AT)
			break;
		off += (unsigned long long)n;
		while (done < n) {
			ssize_t w = write(c->fd, buf + done, (size_t)(n - done));

			if (w <= 0)
				goto out;
			done += w;
		}
	}
out:
	close(c->fd);
	free(c);
	return NULL;
}

static void *fake_accept_run(void *arg)
{
	struct fake_server *s = arg;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		int fd = accept(s->lfd, NULL, NULL);
		struct fake_conn *c;
		pthread_t tid;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		c = malloc(sizeof(*c));
		ck_assert_ptr_nonnull(c);
		c->fd = fd;
		c->fault = s->fault;
		if (pthread_create(&tid, &attr, fake_conn_run, c) != 0) {
			close(fd);
			free(c);
		}
	}
	return NULL;
}

/* A blocking thread-per-connection echo on a loopback port 0. */
static void fake_server_start(struct fake_server *s, enum fault fault)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);

	s->fault = fault;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s->lfd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	ck_assert_int_eq(listen(s->lfd, 1024), 0);
	ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&sin, &len),
	    0);
	s->port = ntohs(sin.sin_port);
	ck_assert_int_eq(pthread_create(&s->tid, NULL, fake_accept_run, s),
	    0);
}

static void fake_server_stop(struct fake_server *s)
{
	/* Wakes the blocked accept() with an error. */
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->tid, NULL);
	close(s->lfd);
}

/* The output of one echobench run; caller frees both strings. */
struct bench_run {
	int status;
	char *out;
	char *err;
};

static char *slurp_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	ck_assert_ptr_nonnull(buf);
	if (f) {
		n = fread(buf, 1, 65535, f);
		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

/*
 * Runs $ECHOBENCH (default ./echobench) against @port with the
 * NULL-terminated @args, waiting at most 30 s.
 */
static void run_echobench(struct bench_run *r, int port,
    const char *const *args)
{
	char dir[] = "/tmp/echobench-test.XXXXXX", out[64], err[64], ps[16];
	const char *prog = getenv("ECHOBENCH") ? getenv("ECHOBENCH") :
	    "./echobench";
	const char *argv[64];
	uint64_t deadline = now_ms() + 30000;
	int n = 0, status;
	pid_t pid;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	snprintf(ps, sizeof(ps), "%d", port);
	argv[n++] = prog;
	argv[n++] = "-q";
	argv[n++] = "-p";
	argv[n++] = ps;
	for (; *args && n < 62; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (o < 0 || e < 0)
			_exit(127);
		dup2(o, 1);
		dup2(e, 2);
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, WNOHANG) != pid) {
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ck_abort_msg("echobench did not finish in 30 s");
		}
		poll(NULL, 0, 10);	/* polling the child, bounded */
	}
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	r->out = slurp_file(out);
	r->err = slurp_file(err);
	unlink(out);
	unlink(err);
	rmdir(dir);
}

static void bench_run_free(struct bench_run *r)
{
	free(r->out);
	free(r->err);
}

/* The number after "@key": in @json, or -1. */
static double json_number(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	return p ? strtod(p + strlen(pat), NULL) : -1;
}

static void check_true_echo(const char *const *args, int want_msgs)
{
	struct fake_server s;
	struct bench_run r;

	fake_server_start(&s, FAULT_NONE);
	run_echobench(&r, s.port, args);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	ck_assert_msg(json_number(r.out, "errors") == 0, "%s", r.out);
	if (want_msgs)
		ck_assert_msg(json_number(r.out, "msgs") > 0, "%s", r.out);
	bench_run_free(&r);
	fake_server_stop(&s);
}

START_TEST(test_echobench_pingpong_passes_a_true_echo)
{
	static const char *const args[] = { "-c", "20", "-D", "4", "-d",
		"0.3", "-w", "0.1", "--json", NULL };

	check_true_echo(args, 1);
}
END_TEST

START_TEST(test_echobench_bulk_passes_a_true_echo)
{
	static const char *const args[] = { "-m", "bulk", "-c", "3", "-d",
		"0.3", "-w", "0.1", "--json", NULL };

	check_true_echo(args, 1);
}
END_TEST

START_TEST(test_echobench_churn_passes_a_true_echo)
{
	static const char *const args[] = { "-m", "churn", "-c", "4", "-d",
		"0.3", "-w", "0.1", "--json", NULL };

	check_true_echo(args, 1);
}
END_TEST

START_TEST(test_echobench_hold_reports_rss_per_connection)
{
	struct fake_server s;
	struct bench_run r;
	char pid[16];
	const char *args[] = { "-m", "hold", "-c", "50", "-d", "0.1", "-w",
		"0.1", "--json", "--pid", pid, NULL };

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	fake_server_start(&s, FAULT_NONE);
	run_echobench(&r, s.port, args);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	ck_assert_msg(json_number(r.out, "opened") == 50, "%s", r.out);
	ck_assert_msg(strstr(r.out, "\"rss_per_conn_bytes\":"), "%s", r.out);
	ck_assert_msg(json_number(r.out, "rss_before_kib") > 0, "%s", r.out);
	bench_run_free(&r);
	fake_server_stop(&s);
}
END_TEST

START_TEST(test_echobench_reports_a_corrupted_byte)
{
	static const char *const args[] = { "-c", "2", "-d", "0.3", "-w",
		"0.1", NULL };
	struct fake_server s;
	struct bench_run r;

	fake_server_start(&s, FAULT_FLIP);
	run_echobench(&r, s.port, args);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "echoed byte 1000 is"), "%s", r.err);
	bench_run_free(&r);
	fake_server_stop(&s);
}
END_TEST

START_TEST(test_echobench_reports_an_early_close)
{
	static const char *const args[] = { "-m", "bulk", "-c", "2", "-d",
		"0.3", "-w", "0.1", NULL };
	struct fake_server s;
	struct bench_run r;

	fake_server_start(&s, FAULT_CLOSE);
	run_echobench(&r, s.port, args);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "closed by the server") ||
	    strstr(r.err, "reset"), "%s", r.err);
	bench_run_free(&r);
	fake_server_stop(&s);
}
END_TEST

/* A server that closes between messages (its read of message 21 is its
 * last, not echoed): --reconnect opens the connection again, counts it
 * and what was left unanswered, and the run passes. */
START_TEST(test_echobench_reconnect_reopens_after_a_close_between_messages)
{
	static const char *const args[] = { "-c", "2", "-s", "50", "-d",
		"0.3", "-w", "0.1", "--reconnect", "--json", NULL };
	struct fake_server s;
	struct bench_run r;
	const char *p;

	fake_server_start(&s, FAULT_CLOSE);
	run_echobench(&r, s.port, args);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	p = strstr(r.out, "\"reconnects\":");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_gt(atol(p + 13), 0);
	p = strstr(r.out, "\"unanswered_bytes\":");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_gt(atol(p + 19), 0);
	bench_run_free(&r);
	fake_server_stop(&s);
}
END_TEST

/* --reconnect never hides a server that closes before echoing anything. */
START_TEST(test_echobench_reconnect_still_fails_a_server_that_never_echoes)
{
	static const char *const args[] = { "-c", "2", "-s", "1500", "-d",
		"0.3", "-w", "0.1", "--reconnect", NULL };
	struct fake_server s;
	struct bench_run r;

	fake_server_start(&s, FAULT_CLOSE);
	run_echobench(&r, s.port, args);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "closed by the server"), "%s", r.err);
	bench_run_free(&r);
	fake_server_stop(&s);
}
END_TEST

START_TEST(test_echobench_bad_values_exit_64_with_one_line)
{
	static const char *const bad[][3] = {
		{ "--size", "0", NULL }, { "--conns", "x", NULL },
		{ "--duration", "-1", NULL }, { "--mode", "ping", NULL },
		{ "--depth", "0", NULL }, { "--addr", "nowhere", NULL },
		{ "--conns", "2000000", NULL }, { "--warmup", "1e9", NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct bench_run r;

		run_echobench(&r, 1, bad[i]);
		ck_assert_msg(r.status == 64, "%s %s: exit %d", bad[i][0],
		    bad[i][1], r.status);
		ck_assert_msg(strstr(r.err, bad[i][0]) &&
		    strstr(r.err, bad[i][1]) && strchr(r.err, '\n') ==
		    r.err + strlen(r.err) - 1, "%s %s: '%s'", bad[i][0],
		    bad[i][1], r.err);
		bench_run_free(&r);
	}
}
END_TEST

Suite *echobench_suite(void)
{
	Suite *s = suite_create("echobench");
	TCase *ok = tcase_create("true echo");
	TCase *bad = tcase_create("faults");

	tcase_set_timeout(ok, 60);
	tcase_set_timeout(bad, 60);
	tcase_add_test(ok, test_echobench_pingpong_passes_a_true_echo);
	tcase_add_test(ok, test_echobench_bulk_passes_a_true_echo);
	tcase_add_test(ok, test_echobench_churn_passes_a_true_echo);
	tcase_add_test(ok, test_echobench_hold_reports_rss_per_connection);
	tcase_add_test(bad, test_echobench_reports_a_corrupted_byte);
	tcase_add_test(bad, test_echobench_reports_an_early_close);
	tcase_add_test(bad,
	    test_echobench_reconnect_reopens_after_a_close_between_messages);
	tcase_add_test(bad,
	    test_echobench_reconnect_still_fails_a_server_that_never_echoes);
	tcase_add_test(bad, test_echobench_bad_values_exit_64_with_one_line);
	suite_add_tcase(s, ok);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	return run_suite(echobench_suite());
}
