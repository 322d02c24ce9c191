/*
 * echoserver behind a real HAProxy (`make test-haproxy`, also a CI step;
 * not part of `make check`, since it takes about 15 s).  Three
 * echoservers on loopback listen with -l proxy+echo@127.0.0.1:PORT;
 * HAProxy runs docs/examples/haproxy.cfg as it stands (mode tcp, balance
 * leastconn, send-proxy-v2, a tcp-check that sends a line and expects its
 * echo), with its addresses from the environment and its frontend socket
 * handed over already bound (bind fd@N), so that no port is guessed.
 *
 * The scenario of issue 11: echobench through HAProxy checks every byte;
 * one instance gets SIGTERM mid-run, echoes all it read to its clients
 * and exits 0, HAProxy marks it DOWN, new connections go to the other
 * two; it comes back on the same port, is marked UP and gets connections
 * again; and the real client's address (a chosen source, 127.0.0.77)
 * reaches a server's -v log through the PROXY header.  Without haproxy
 * the scenario reports a skip; the check that docs/scale-out.md shows the
 * configuration verbatim always runs.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONFIG "docs/examples/haproxy.cfg"
#define DOC "docs/scale-out.md"
#define N_SERVERS 3

static struct test_server servers[N_SERVERS];
static pid_t haproxy_pid, bench_pid;
static char dir[64] = "";
static char stats_path[96], haproxy_log[96], bench_out[96];

static void teardown(void)
{
	for (int i = 0; i < N_SERVERS; i++) {
		test_server_stop(&servers[i], SIGKILL);
		test_server_cleanup(&servers[i]);
	}
	if (bench_pid > 0) {
		kill(bench_pid, SIGKILL);
		waitpid(bench_pid, NULL, 0);
		bench_pid = 0;
	}
	if (haproxy_pid > 0) {
		kill(haproxy_pid, SIGKILL);
		waitpid(haproxy_pid, NULL, 0);
		haproxy_pid = 0;
	}
	if (*dir) {
		unlink(stats_path);
		unlink(haproxy_log);
		unlink(bench_out);
		rmdir(dir);
		*dir = '\0';
	}
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t cap = 1 << 16, n = 0, r;
	char *buf = malloc(cap);

	ck_assert_ptr_nonnull(buf);
	if (!f) {
		buf[0] = '\0';
		return buf;
	}
	while ((r = fread(buf + n, 1, cap - 1 - n, f)) > 0) {
		n += r;
		if (n == cap - 1)
			ck_assert_ptr_nonnull(buf = realloc(buf, cap *= 2));
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Runs @argv with stdout and stderr to @out; @keep_fd (if >= 0) becomes
 * fd 3 in the child. */
static pid_t spawn_to(char *const *argv, const char *out, int keep_fd)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		if (keep_fd >= 0 && dup2(keep_fd, 3) < 0)
			_exit(127);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* HAProxy's "show stat" CSV, from its stats socket; caller frees. */
static char *show_stat(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t r;

	ck_assert_ptr_nonnull(buf);
	buf[0] = '\0';
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", stats_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		if (fd >= 0)
			close(fd);
		return buf;
	}
	write_all(fd, "show stat\n", 10);
	while ((r = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(fd);
	return buf;
}

/*
 * The field @col of server @sv's line in backend "echoservers" of the
 * CSV @csv, into @out; the columns are found by the header's names.
 * Returns 0, or -1 if absent.
 */
static int stat_field(const char *csv, const char *sv, const char *col,
    char *out, size_t size)
{
	char want[32], line[4096];
	const char *p = csv, *nl;
	int idx = -1;

	snprintf(want, sizeof(want), "echoservers,%s,", sv);
	while (*p) {
		char *save, *tok;
		int i = 0;

		nl = strchr(p, '\n');
		snprintf(line, sizeof(line), "%.*s", (int)(nl ? nl - p :
		    (long)strlen(p)), p);
		p = nl ? nl + 1 : p + strlen(p);
		if (line[0] == '#') {
			for (tok = strtok_r(line + 2, ",", &save); tok;
			    tok = strtok_r(NULL, ",", &save), i++)
				if (!strcmp(tok, col))
					idx = i;
			continue;
		}
		if (idx < 0 || strncmp(line, want, strlen(want)))
			continue;
		/* strtok would merge empty fields; walk commas instead. */
		tok = line;
		for (i = 0; i < idx && tok; i++) {
			tok = strchr(tok, ',');
			if (tok)
				tok++;
		}
		if (!tok)
			return -1;
		snprintf(out, size, "%.*s", (int)strcspn(tok, ","), tok);
		return 0;
	}
	return -1;
}

static long stat_long(const char *sv, const char *col)
{
	char *csv = show_stat(), v[64];
	long n = stat_field(csv, sv, col, v, sizeof(v)) ? -1 : atol(v);

	free(csv);
	return n;
}

/* Polls until server @sv's status starts with @want ("UP", "DOWN"). */
static int wait_status(const char *sv, const char *want, uint64_t deadline)
{
	while (now_ms() < deadline) {
		char *csv = show_stat(), v[64];
		int ok = stat_field(csv, sv, "status", v, sizeof(v)) == 0 &&
		    strncmp(v, want, strlen(want)) == 0;

		free(csv);
		if (ok)
			return 1;
		poll(NULL, 0, 50);	/* a poll interval */
	}
	return 0;
}

static const char *echobench_path(void)
{
	const char *p = getenv("ECHOBENCH");

	return p ? p : "./echobench";
}

/* Runs echobench through HAProxy at @port to completion; returns its
 * --json line (caller frees) and its status in *@status. */
static char *echobench_run(int port, const char *conns, const char *secs,
    int *status)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "%s -p %d -c %s -d %s -w 0 -q --json "
	    "2>&1", echobench_path(), port, conns, secs);
	return test_shell(cmd, status);
}

static long json_long(const char *json, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(json, k);
	return p ? atol(p + strlen(k)) : -1;
}

/* Checks every "closed:" line of @log: what the server read, it echoed.
 * Returns how many there were. */
static int assert_closes_echoed_all(const char *log)
{
	const char *p = log;
	int n = 0;

	while ((p = strstr(p, " closed: client "))) {
		unsigned long long in, out;
		const char *b = strchr(p, ',');

		ck_assert_ptr_nonnull(b);
		ck_assert_int_eq(sscanf(b, ", %llu bytes in, %llu out", &in,
		    &out), 2);
		ck_assert_msg(in == out, "a connection closed having read "
		    "%llu bytes and echoed %llu: %.120s", in, out, p);
		n++;
		p = b;
	}
	return n;
}

static void start_server(int i, int port)
{
	char spec[64];
	const char *args[] = { "-v", "-t", "1", "--grace", "20", "-l", spec,
		NULL };

	snprintf(spec, sizeof(spec), "proxy+echo@127.0.0.1:%d", port);
	test_server_start(&servers[i], args);
}

START_TEST(test_haproxy_spreads_drains_and_readmits_with_real_addresses)
{
	char env_stats[160], env_front[32], env_srv[N_SERVERS][48];
	char *haproxy_argv[] = { "haproxy", "-db", "-f", CONFIG, NULL };
	char front_s[16], *json, *log, *csv;
	char *bench_argv[16];
	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sin);
	long stot_before[N_SERVERS], stot_after[N_SERVERS];
	int lfd, front, status, port2, fd, n = 0;
	uint64_t deadline;
	char want[96];

	snprintf(dir, sizeof(dir), "/tmp/echoserver-haproxy.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(stats_path, sizeof(stats_path), "%s/stats.sock", dir);
	snprintf(haproxy_log, sizeof(haproxy_log), "%s/haproxy.log", dir);
	snprintf(bench_out, sizeof(bench_out), "%s/echobench.json", dir);
	for (int i = 0; i < N_SERVERS; i++)
		start_server(i, 0);

	/* The frontend: bound here, handed to HAProxy as fd 3. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(lfd, 1024), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
	front = ntohs(sin.sin_port);
	snprintf(env_stats, sizeof(env_stats), "%s", stats_path);
	snprintf(env_front, sizeof(env_front), "fd@3");
	setenv("ECHO_STATS", env_stats, 1);
	setenv("ECHO_FRONTEND", env_front, 1);
	for (int i = 0; i < N_SERVERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "ECHO_SERVER%d", i + 1);
		snprintf(env_srv[i], sizeof(env_srv[i]), "127.0.0.1:%d",
		    servers[i].ports[1]);
		setenv(name, env_srv[i], 1);
	}
	haproxy_pid = spawn_to(haproxy_argv, haproxy_log, lfd);
	close(lfd);
	deadline = now_ms() + 30000;
	for (int i = 0; i < N_SERVERS; i++) {
		char sv[8];

		snprintf(sv, sizeof(sv), "echo%d", i + 1);
		ck_assert_msg(wait_status(sv, "UP", deadline),
		    "HAProxy never marked %s UP; its log: %s", sv,
		    log = read_file(haproxy_log));
	}

	/* A long run through HAProxy, every byte checked; --reconnect
	 * because one server will go away under it. */
	snprintf(front_s, sizeof(front_s), "%d", front);
	bench_argv[n++] = (char *)echobench_path();
	bench_argv[n++] = "-p";
	bench_argv[n++] = front_s;
	bench_argv[n++] = "-c";
	bench_argv[n++] = "30";
	bench_argv[n++] = "-d";
	bench_argv[n++] = "12";
	bench_argv[n++] = "-w";
	bench_argv[n++] = "0.5";
	bench_argv[n++] = "--reconnect";
	bench_argv[n++] = "--json";
	bench_argv[n++] = "-q";
	bench_argv[n] = NULL;
	bench_pid = spawn_to(bench_argv, bench_out, -1);

	/* leastconn spreads the 30 sessions over all three. */
	deadline = now_ms() + 30000;
	while (now_ms() < deadline && (stat_long("echo1", "scur") < 5 ||
	    stat_long("echo2", "scur") < 5 || stat_long("echo3", "scur") < 5))
		poll(NULL, 0, 50);	/* a poll interval */
	ck_assert_msg(now_ms() < deadline, "sessions not spread: %s",
	    csv = show_stat());

	/* Stop the second one mid-run. */
	port2 = servers[1].ports[1];
	kill(servers[1].pid, SIGTERM);
	ck_assert_msg(wait_status("echo2", "DOWN", now_ms() + 30000),
	    "HAProxy never marked echo2 DOWN");
	log = test_server_wait_clean(&servers[1]);	/* exit status 0 */
	ck_assert_int_eq(test_stat(log, "at exit", "total", "dropped_bytes"),
	    0);
	ck_assert_msg(assert_closes_echoed_all(log) >= 5,
	    "too few closes in the stopped server's log");
	free(log);
	test_server_cleanup(&servers[1]);

	/* New connections go to the other two. */
	for (int i = 0; i < N_SERVERS; i++) {
		char sv[8];

		snprintf(sv, sizeof(sv), "echo%d", i + 1);
		stot_before[i] = stat_long(sv, "stot");
	}
	json = echobench_run(front, "20", "1", &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
	    json);
	ck_assert_int_eq(json_long(json, "errors"), 0);
	free(json);
	for (int i = 0; i < N_SERVERS; i++) {
		char sv[8];

		snprintf(sv, sizeof(sv), "echo%d", i + 1);
		stot_after[i] = stat_long(sv, "stot");
	}
	ck_assert_int_eq(stot_after[1], stot_before[1]);
	ck_assert_int_ge(stot_after[0] - stot_before[0] + stot_after[2] -
	    stot_before[2], 20);

	/* It comes back on its port, is marked UP and is used again. */
	start_server(1, port2);
	ck_assert_int_eq(servers[1].ports[1], port2);
	ck_assert_msg(wait_status("echo2", "UP", now_ms() + 30000),
	    "HAProxy never marked echo2 UP again");
	stot_before[1] = stat_long("echo2", "stot");
	json = echobench_run(front, "20", "1", &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
	    json);
	free(json);
	ck_assert_int_gt(stat_long("echo2", "stot"), stot_before[1]);

	/* The long run ends with every byte right. */
	deadline = now_ms() + 60000;
	while ((status = -1, waitpid(bench_pid, &status, WNOHANG)) == 0 &&
	    now_ms() < deadline)
		poll(NULL, 0, 50);	/* a poll interval */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "echobench failed: %s", json = read_file(bench_out));
	bench_pid = 0;
	json = read_file(bench_out);
	ck_assert_int_eq(json_long(json, "errors"), 0);
	ck_assert_int_gt(json_long(json, "msgs"), 1000);
	/* The stopped server's sessions were reopened elsewhere. */
	ck_assert_int_ge(json_long(json, "reconnects"), 1);
	free(json);

	/* The real client's address reaches a server. */
	fd = test_connect_from(front, 77);
	ck_assert_int_ge(fd, 0);
	slen = sizeof(sin);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	write_all(fd, "where am I", 10);
	{
		char buf[10];

		ck_assert_uint_eq(read_exact(fd, buf, 10, now_ms() + 20000),
		    10);
		ck_assert(memcmp(buf, "where am I", 10) == 0);
	}
	snprintf(want, sizeof(want), "open: client 127.0.0.77:%d (PROXY v2)",
	    ntohs(sin.sin_port));
	deadline = now_ms() + 20000;
	for (int found = 0; !found; poll(NULL, 0, 50)) {
		ck_assert_msg(now_ms() < deadline, "no '%s' in any log", want);
		for (int i = 0; i < N_SERVERS && !found; i++) {
			log = test_server_log(&servers[i]);
			found = strstr(log, want) != NULL;
			free(log);
		}
	}
	close(fd);
}
END_TEST

/* docs/scale-out.md shows the configuration this test runs, byte for
 * byte, so the documented one is the tested one. */
START_TEST(test_haproxy_docs_show_the_tested_configuration)
{
	char *cfg = read_file(CONFIG), *doc = read_file(DOC);

	ck_assert_msg(strlen(cfg) > 100, "cannot read '%s'", CONFIG);
	ck_assert_msg(strstr(doc, cfg) != NULL, "'%s' does not contain '%s' "
	    "verbatim", DOC, CONFIG);
	free(cfg);
	free(doc);
}
END_TEST

/* NULL if haproxy can run here; otherwise why not. */
static const char *no_haproxy(void)
{
	int status = system("haproxy -v >/dev/null 2>&1");

	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return "haproxy is not installed (apt-get install haproxy)";
	return NULL;
}

static Suite *haproxy_suite(void)
{
	Suite *s = suite_create("haproxy");
	TCase *tc = tcase_create("haproxy");
	TCase *docs = tcase_create("docs");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 120);
	test_add_or_skip(tc,
	    test_haproxy_spreads_drains_and_readmits_with_real_addresses,
	    no_haproxy());
	suite_add_tcase(s, tc);
	tcase_add_test(docs, test_haproxy_docs_show_the_tested_configuration);
	suite_add_tcase(s, docs);
	return s;
}

int main(void)
{
	return run_suite(haproxy_suite());
}
