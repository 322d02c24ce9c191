/*
 * The resp handler's connection and server commands: PING, ECHO, QUIT,
 * SELECT, HELLO, CLIENT, COMMAND, CONFIG GET and INFO (resp_cmd.h).  They
 * answer what redis-cli and redis-benchmark ask at start-up the way
 * redis 7.0 does, from the server's figures (proto_config.stats) rather
 * than a real configuration.
 */
#include "proto/resp_cmd.h"
#include "proto/resp_reply.h"
#include "store.h"
#include "common/glob.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef VERSION
#define VERSION "unknown"
#endif

int resp_cmd_ping(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	if (argc > 2) {
		resp_reply_arity(c, "ping");
	} else if (resp_subscribed(rc)) {
		/* RESP2 subscribed mode: a push-shaped pair, as redis. */
		resp_reply_array(c, 2);
		resp_reply_bulk_str(c, "pong");
		resp_reply_bulk(c, argc == 2 ? argv[1].p : "",
		    argc == 2 ? argv[1].len : 0);
	} else if (argc == 2) {
		resp_reply_bulk(c, argv[1].p, argv[1].len);
	} else {
		conn_reply(c, "+PONG\r\n", 7);
	}
	return 0;
}

int resp_cmd_echo(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	resp_reply_bulk(c, argv[1].p, argv[1].len);
	return 0;
}

/* redis 7.0 answers QUIT before looking at its arguments. */
int resp_cmd_quit(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	resp_reply_ok(c);
	return PROTO_CLOSE;
}

int resp_cmd_select(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	long long db;

	if (!resp_strtoll(argv[1].p, argv[1].len, &db) || db < INT_MIN ||
	    db > INT_MAX)
		resp_reply_error(c, RESP_ERR_NOT_INT);
	else if (db != 0)
		resp_reply_error(c, "ERR DB index is out of range");
	else
		resp_reply_ok(c);
	return 0;
}

/* redis's rule for client names: printable ASCII without spaces. */
static int name_is_valid(const struct resp_arg *a)
{
	size_t i;

	for (i = 0; i < a->len; i++)
		if (a->p[i] < '!' || a->p[i] > '~')
			return 0;
	return 1;
}

/* Sets @rc's name to @a (an empty one clears it); replies an error and
 * returns -1 if @a is not a valid name or memory ran out. */
static int set_name(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *a)
{
	char *name = NULL;

	if (!name_is_valid(a)) {
		resp_reply_error(c, "ERR Client names cannot contain spaces, "
		    "newlines or special characters.");
		return -1;
	}
	if (a->len) {
		name = malloc(a->len);
		if (!name) {
			resp_reply_error(c, RESP_ERR_OOM);
			return -1;
		}
		memcpy(name, a->p, a->len);
	}
	free(rc->name);
	rc->name = name;
	rc->name_len = a->len;
	return 0;
}

/*
 * HELLO [protover [AUTH user pass] [SETNAME name]]: RESP2 only, so the
 * reply is redis's map as a flat array.  There are no users, so AUTH is
 * accepted as redis accepts it for the default user without a password.
 */
int resp_cmd_hello(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	const struct resp_arg *name = NULL;
	size_t j = 2;

	if (argc >= 2) {
		long long ver;

		if (!resp_strtoll(argv[1].p, argv[1].len, &ver)) {
			resp_reply_error(c, "ERR Protocol version is not an "
			    "integer or out of range");
			return 0;
		}
		if (ver == 3) {
			resp_reply_error(c, "NOPROTO sorry, this protocol "
			    "version is not supported");
			return 0;
		}
		if (ver != 2) {
			resp_reply_error(c,
			    "NOPROTO unsupported protocol version");
			return 0;
		}
	}
	for (; j < argc; j++) {
		size_t more = argc - j - 1;

		if (resp_arg_is(&argv[j], "auth") && more >= 2) {
			j += 2;
		} else if (resp_arg_is(&argv[j], "setname") && more >= 1) {
			name = &argv[++j];
		} else {
			resp_reply_errorf(c, "ERR Syntax error in HELLO "
			    "option '%.*s'", (int)(argv[j].len < 128 ?
			    argv[j].len : 128), argv[j].p);
			return 0;
		}
	}
	if (name && set_name(c, rc, name) < 0)
		return 0;
	resp_reply_array(c, 14);
	resp_reply_bulk_str(c, "server");
	resp_reply_bulk_str(c, "redis");
	resp_reply_bulk_str(c, "version");
	resp_reply_bulk_str(c, RESP_REDIS_VERSION);
	resp_reply_bulk_str(c, "proto");
	resp_reply_int(c, 2);
	resp_reply_bulk_str(c, "id");
	resp_reply_int(c, (long long)rc->id);
	resp_reply_bulk_str(c, "mode");
	resp_reply_bulk_str(c, "standalone");
	resp_reply_bulk_str(c, "role");
	resp_reply_bulk_str(c, "master");
	resp_reply_bulk_str(c, "modules");
	resp_reply_array(c, 0);
	return 0;
}

/* CLIENT ID, GETNAME, SETNAME, and SETINFO (a redis 7.2 subcommand that
 * newer client libraries send, accepted and ignored). */
int resp_cmd_client(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	const struct resp_arg *sub = &argv[1];

	if (resp_arg_is(sub, "id")) {
		if (argc != 2)
			resp_reply_arity(c, "client|id");
		else
			resp_reply_int(c, (long long)rc->id);
	} else if (resp_arg_is(sub, "getname")) {
		if (argc != 2)
			resp_reply_arity(c, "client|getname");
		else if (rc->name)
			resp_reply_bulk(c, rc->name, rc->name_len);
		else
			resp_reply_null(c);
	} else if (resp_arg_is(sub, "setname")) {
		if (argc != 3)
			resp_reply_arity(c, "client|setname");
		else if (set_name(c, rc, &argv[2]) == 0)
			resp_reply_ok(c);
	} else if (resp_arg_is(sub, "setinfo")) {
		if (argc != 4)
			resp_reply_arity(c, "client|setinfo");
		else
			resp_reply_ok(c);
	} else {
		resp_reply_unknown_subcommand(c, argv);
	}
	return 0;
}

/*
 * COMMAND, COMMAND DOCS and COMMAND INFO reply an empty array: redis-cli
 * then falls back to its built-in help, and nothing else needs the
 * table's details.  COMMAND COUNT is true.
 */
int resp_cmd_command(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	if (argc == 1 || resp_arg_is(&argv[1], "docs") ||
	    resp_arg_is(&argv[1], "info"))
		resp_reply_array(c, 0);
	else if (!resp_arg_is(&argv[1], "count"))
		resp_reply_unknown_subcommand(c, argv);
	else if (argc != 2)
		resp_reply_arity(c, "command|count");
	else
		resp_reply_int(c, (long long)resp_cmd_count());
	return 0;
}

/*
 * CONFIG GET pattern [pattern ...]: redis-benchmark reads "save" and
 * "appendonly" at start-up and wants a pair back for each, so those two
 * are answered as a redis without persistence would; any other
 * parameter matches nothing.  CONFIG SET sets nothing.
 */
int resp_cmd_config(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	static const char *const params[][2] = {
		{ "save", "" },
		{ "appendonly", "no" },
	};
	const size_t nparams = sizeof(params) / sizeof(params[0]);
	int hit[sizeof(params) / sizeof(params[0])] = { 0 };
	size_t i, j, n = 0;

	if (resp_arg_is(&argv[1], "set")) {
		if (argc < 4)
			resp_reply_arity(c, "config|set");
		else
			resp_reply_errorf(c, "ERR Unknown option or number "
			    "of arguments for CONFIG SET - '%.*s'",
			    (int)(argv[2].len < 128 ? argv[2].len : 128),
			    argv[2].p);
		return 0;
	}
	if (!resp_arg_is(&argv[1], "get")) {
		resp_reply_unknown_subcommand(c, argv);
		return 0;
	}
	if (argc < 3) {
		resp_reply_arity(c, "config|get");
		return 0;
	}
	for (j = 2; j < argc; j++)
		for (i = 0; i < nparams; i++)
			if (!hit[i] && glob_match(argv[j].p, argv[j].len,
			    params[i][0], strlen(params[i][0]), GLOB_NOCASE)) {
				hit[i] = 1;
				n++;
			}
	resp_reply_array(c, 2 * n);
	for (i = 0; i < nparams; i++)
		if (hit[i]) {
			resp_reply_bulk_str(c, params[i][0]);
			resp_reply_bulk_str(c, params[i][1]);
		}
	return 0;
}

/* INFO's text, built on the stack: its size is bounded by the fields. */
struct info_text {
	char buf[2048];
	size_t len;
};

static void info_add(struct info_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void info_add(struct info_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->len >= sizeof(t->buf))
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len += (size_t)n;
	if (t->len > sizeof(t->buf) - 1)
		t->len = sizeof(t->buf) - 1;
}

enum info_section {
	INFO_SERVER = 1 << 0,
	INFO_CLIENTS = 1 << 1,
	INFO_MEMORY = 1 << 2,
	INFO_STATS = 1 << 3,
	INFO_KEYSPACE = 1 << 4,
	INFO_ALL = (1 << 5) - 1,
};

static unsigned info_sections(const struct resp_arg *argv, size_t argc)
{
	static const char *const names[] = {
		"server", "clients", "memory", "stats", "keyspace",
	};
	unsigned want = 0;
	size_t i, j;

	if (argc == 1)
		return INFO_ALL;
	for (j = 1; j < argc; j++) {
		if (resp_arg_is(&argv[j], "all") ||
		    resp_arg_is(&argv[j], "default") ||
		    resp_arg_is(&argv[j], "everything"))
			want |= INFO_ALL;
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (resp_arg_is(&argv[j], names[i]))
				want |= 1u << i;
	}
	return want;
}

/* INFO [section ...]: the sections redis-cli and monitoring scripts read
 * most, in redis's layout; an unknown section gives an empty text. */
int resp_cmd_info(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	const struct proto_config *cfg = conn_config(c);
	unsigned want = info_sections(argv, argc);
	struct proto_stats st;
	struct info_text t;
	int sections = 0;

	memset(&st, 0, sizeof(st));
	if (cfg->stats)
		cfg->stats(cfg, &st);
	t.len = 0;
	t.buf[0] = '\0';
	if (want & INFO_SERVER) {
		struct utsname u;

		if (uname(&u) < 0)
			memset(&u, 0, sizeof(u));
		info_add(&t, "%s# Server\r\n"
		    "redis_version:%s\r\n"
		    "echoserver_version:%s\r\n"
		    "redis_mode:standalone\r\n"
		    "os:%s %s %s\r\n"
		    "arch_bits:%zu\r\n"
		    "process_id:%ld\r\n"
		    "tcp_port:%d\r\n"
		    "uptime_in_seconds:%llu\r\n"
		    "uptime_in_days:%llu\r\n",
		    sections++ ? "\r\n" : "", RESP_REDIS_VERSION, VERSION,
		    u.sysname, u.release, u.machine, sizeof(void *) * 8,
		    (long)getpid(), st.port,
		    (unsigned long long)st.uptime,
		    (unsigned long long)(st.uptime / 86400));
	}
	if (want & INFO_CLIENTS)
		info_add(&t, "%s# Clients\r\nconnected_clients:%llu\r\n",
		    sections++ ? "\r\n" : "",
		    (unsigned long long)st.conns_open);
	if (want & INFO_MEMORY)
		info_add(&t, "%s# Memory\r\nused_memory:%zu\r\n"
		    "maxmemory:%zu\r\nmaxmemory_policy:noeviction\r\n",
		    sections++ ? "\r\n" : "",
		    cfg->store ? store_memory(cfg->store) : 0,
		    cfg->max_memory);
	if (want & INFO_STATS)
		info_add(&t, "%s# Stats\r\n"
		    "total_connections_received:%llu\r\n"
		    "total_commands_processed:%llu\r\n"
		    "total_net_input_bytes:%llu\r\n"
		    "total_net_output_bytes:%llu\r\n",
		    sections++ ? "\r\n" : "",
		    (unsigned long long)st.conns_total,
		    (unsigned long long)st.requests,
		    (unsigned long long)st.bytes_in,
		    (unsigned long long)st.bytes_out);
	if (want & INFO_KEYSPACE) {
		uint64_t keys = cfg->store ? store_count(cfg->store) : 0;

		info_add(&t, "%s# Keyspace\r\n", sections++ ? "\r\n" : "");
		if (keys)
			info_add(&t, "db0:keys=%llu,expires=0,avg_ttl=0\r\n",
			    (unsigned long long)keys);
	}
	resp_reply_bulk(c, t.buf, t.len);
	return 0;
}

/* Longest DEBUG SLEEP: a day, so that a typo cannot park a thread for
 * good. */
#define RESP_SLEEP_MAX 86400.0

static int64_t resp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sleeps @seconds, in slices of at most 10 ms so that a job whose
 * connection has gone (@job non-NULL) stops early: the pool's shutdown
 * waits for running jobs (docs/design.md, fact X4). */
static void resp_sleep(double seconds, const struct proto_job *job)
{
	int64_t end = resp_now_ns() + (int64_t)(seconds * 1e9), left;

	while ((left = end - resp_now_ns()) > 0 &&
	    !(job && proto_job_cancelled(job))) {
		struct timespec slice = { 0, left < 10000000 ? (long)left :
		    10000000L };

		nanosleep(&slice, NULL);
	}
}

static void resp_sleep_job(struct proto_job *job, void *arg)
{
	resp_sleep(*(double *)arg, job);
	proto_job_reply(job, "+OK\r\n", 5);
}

/*
 * DEBUG SLEEP seconds: +OK after the sleep (fractions allowed).  With
 * --offload the sleep runs on the pool, so the worker's other clients
 * are served meanwhile; without it the worker sleeps, as redis does.
 * The other DEBUG subcommands of redis are not implemented.
 */
int resp_cmd_debug(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	char num[64], *end;
	double *arg, s;
	int err;

	if (!resp_arg_is(&argv[1], "sleep")) {
		resp_reply_unknown_subcommand(c, argv);
		return 0;
	}
	if (argc != 3) {
		resp_reply_arity(c, "debug|sleep");
		return 0;
	}
	snprintf(num, sizeof(num), "%.*s", (int)(argv[2].len < 63 ?
	    argv[2].len : 63), argv[2].p);
	errno = 0;
	s = strtod(num, &end);
	if (argv[2].len == 0 || argv[2].len > 63 || *end || errno ||
	    !isfinite(s) || s < 0 || s > RESP_SLEEP_MAX) {
		resp_reply_error(c, "ERR value is not a valid float");
		return 0;
	}
	arg = malloc(sizeof(*arg));
	if (!arg) {
		resp_reply_error(c, RESP_ERR_OOM);
		return 0;
	}
	*arg = s;
	err = conn_offload(c, resp_sleep_job, arg, free);
	if (err == 0)
		return 0;
	free(arg);
	if (err == -EAGAIN)
		return RESP_CMD_AGAIN;
	resp_sleep(s, NULL);
	resp_reply_ok(c);
	return 0;
}
