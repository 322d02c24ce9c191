/*
 * The resp command table and dispatch, and the key-value commands on the
 * shared store: GET, SET, DEL, EXISTS, INCR, DECR, INCRBY, DECRBY, MSET,
 * MGET, DBSIZE, FLUSHALL (resp_cmd.h).  Replies and error texts follow
 * redis 7.0's t_string.c, db.c and server.c.
 */
#include "proto/resp_cmd.h"
#include "proto/resp_reply.h"
#include "store.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct resp_cmd {
	const char *name;	/* lowercase, as redis reports it */
	int arity;		/* argc exactly, or at least -arity */
	resp_cmd_fn *fn;
};

static atomic_uint_fast64_t resp_next_id;

void resp_conn_init(struct resp_conn *rc, struct conn *c)
{
	rc->id = (uint64_t)atomic_fetch_add(&resp_next_id, 1) + 1;
	rc->conn = c;
}

void resp_conn_release(struct resp_conn *rc)
{
	resp_pubsub_release(rc);
	resp_parser_release(&rc->parser);
	free(rc->name);
	rc->name = NULL;
	rc->name_len = 0;
}

int resp_arg_is(const struct resp_arg *a, const char *word)
{
	size_t i;

	/* ASCII only: strcasecmp() follows the locale, and a keyword must
	 * not. */
	for (i = 0; i < a->len; i++)
		if (!word[i] || (a->p[i] | 0x20) != word[i])
			return 0;
	return word[i] == '\0';
}

void resp_reply_arity(struct conn *c, const char *name)
{
	resp_reply_errorf(c, "ERR wrong number of arguments for '%s' command",
	    name);
}

/* How much of @a redis's "%.128s" prints: up to a NUL, at most @max. */
static int cstr_len(const struct resp_arg *a, size_t max)
{
	size_t n = a->len < max ? a->len : max;
	const char *nul = memchr(a->p, '\0', n);

	return (int)(nul ? (size_t)(nul - a->p) : n);
}

void resp_reply_unknown_subcommand(struct conn *c,
    const struct resp_arg *argv)
{
	char cmd[32];
	int n = cstr_len(&argv[0], sizeof(cmd) - 1), i;

	for (i = 0; i < n; i++)
		cmd[i] = argv[0].p[i] >= 'a' && argv[0].p[i] <= 'z' ?
		    (char)(argv[0].p[i] - 32) : argv[0].p[i];
	cmd[n] = '\0';
	resp_reply_errorf(c, "ERR unknown subcommand '%.*s'. Try %s HELP.",
	    cstr_len(&argv[1], 128), argv[1].p, cmd);
}

/* redis's reply to a name not in the table, arguments and all. */
static void reply_unknown(struct conn *c, const struct resp_arg *argv,
    size_t argc)
{
	char args[512];
	size_t len = 0, i;

	args[0] = '\0';
	for (i = 1; i < argc && len < 128; i++) {
		int n = cstr_len(&argv[i], 128 - len);

		memcpy(args + len, "'", 1);
		memcpy(args + len + 1, argv[i].p, (size_t)n);
		memcpy(args + len + 1 + n, "' ", 3);
		len += (size_t)n + 3;
	}
	resp_reply_errorf(c, "ERR unknown command '%.*s', with args "
	    "beginning with: %s", cstr_len(&argv[0], 128), argv[0].p, args);
}

/* The store, or NULL after replying that there is none. */
static struct store *cmd_store(struct conn *c)
{
	struct store *s = conn_config(c)->store;

	if (!s)
		resp_reply_error(c, RESP_ERR_NO_STORE);
	return s;
}

/* The reply for a store result other than STORE_OK. */
static void reply_store_error(struct conn *c, enum store_result r)
{
	switch (r) {
	case STORE_OOM:
		resp_reply_error(c, RESP_ERR_OOM);
		break;
	case STORE_NOT_INTEGER:
		resp_reply_error(c, RESP_ERR_NOT_INT);
		break;
	case STORE_OVERFLOW:
		resp_reply_error(c, RESP_ERR_OVERFLOW);
		break;
	case STORE_OK:
	case STORE_MISSING:
	case STORE_EXISTS:
		resp_reply_null(c);
		break;
	}
}

/* store_get()'s callback, under the stripe lock: the value goes straight
 * into the connection's batch, the one copy it needs. */
static void reply_value(void *arg, const char *value, size_t len)
{
	resp_reply_bulk(arg, value, len);
}

static int cmd_get(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	struct store *s = cmd_store(c);

	if (s && store_get(s, argv[1].p, argv[1].len, reply_value, c) !=
	    STORE_OK)
		resp_reply_null(c);
	return 0;
}

/*
 * SET key value [EX s|PX ms] [NX|XX], parsed as redis 7.0 does: options
 * in any order and case, each at most once, then the expiry's number
 * checked.  GET, KEEPTTL, EXAT and PXAT are not supported.
 */
static int cmd_set(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	const struct resp_arg *expire = NULL;
	int64_t expire_ms = 0;
	unsigned flags = 0;
	int seconds = 0;
	enum store_result r;
	struct store *s;
	size_t j;

	for (j = 3; j < argc; j++) {
		const struct resp_arg *a = &argv[j];
		int has_next = j + 1 < argc;

		if (resp_arg_is(a, "nx") && !(flags & STORE_XX)) {
			flags |= STORE_NX;
		} else if (resp_arg_is(a, "xx") && !(flags & STORE_NX)) {
			flags |= STORE_XX;
		} else if ((resp_arg_is(a, "ex") || resp_arg_is(a, "px")) &&
		    has_next && !expire) {
			seconds = resp_arg_is(a, "ex");
			expire = &argv[++j];
		} else {
			resp_reply_error(c, RESP_ERR_SYNTAX);
			return 0;
		}
	}
	if (expire) {
		long long v;
		int64_t now;

		if (!resp_strtoll(expire->p, expire->len, &v)) {
			resp_reply_error(c, RESP_ERR_NOT_INT);
			return 0;
		}
		if (v <= 0 || (seconds && v > LLONG_MAX / 1000))
			goto bad_expire;
		if (seconds)
			v *= 1000;
		now = store_now_ms();
		if (v > INT64_MAX - now)
			goto bad_expire;
		expire_ms = now + v;
	}
	s = cmd_store(c);
	if (!s)
		return 0;
	r = store_set(s, argv[1].p, argv[1].len, argv[2].p, argv[2].len,
	    flags, expire_ms);
	if (r == STORE_OK)
		resp_reply_ok(c);
	else
		reply_store_error(c, r);
	return 0;

bad_expire:
	resp_reply_error(c, "ERR invalid expire time in 'set' command");
	return 0;
}

/* DEL and EXISTS: one store call per key, counting hits; EXISTS k k
 * counts k twice, as in redis. */
static void count_keys(struct conn *c, const struct resp_arg *argv,
    size_t argc, int (*op)(struct store *, const char *, size_t))
{
	struct store *s = cmd_store(c);
	long long n = 0;
	size_t j;

	if (!s)
		return;
	for (j = 1; j < argc; j++)
		n += op(s, argv[j].p, argv[j].len);
	resp_reply_int(c, n);
}

static int cmd_del(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	count_keys(c, argv, argc, store_del);
	return 0;
}

static int cmd_exists(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	count_keys(c, argv, argc, store_exists);
	return 0;
}

static void incr_by(struct conn *c, const struct resp_arg *key,
    int64_t delta)
{
	struct store *s = cmd_store(c);
	enum store_result r;
	int64_t v;

	if (!s)
		return;
	r = store_incrby(s, key->p, key->len, delta, &v);
	if (r == STORE_OK)
		resp_reply_int(c, v);
	else
		reply_store_error(c, r);
}

static int cmd_incr(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	incr_by(c, &argv[1], 1);
	return 0;
}

static int cmd_decr(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	incr_by(c, &argv[1], -1);
	return 0;
}

static int cmd_incrby(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	long long v;

	if (!resp_strtoll(argv[2].p, argv[2].len, &v))
		resp_reply_error(c, RESP_ERR_NOT_INT);
	else
		incr_by(c, &argv[1], v);
	return 0;
}

static int cmd_decrby(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	long long v;

	if (!resp_strtoll(argv[2].p, argv[2].len, &v))
		resp_reply_error(c, RESP_ERR_NOT_INT);
	else if (v == LLONG_MIN)
		resp_reply_error(c, "ERR decrement would overflow");
	else
		incr_by(c, &argv[1], -v);
	return 0;
}

/* Each pair is set on its own: another client may see some of the keys
 * set and not yet the others, and running out of memory midway leaves
 * the first pairs set (redis sets them all atomically). */
static int cmd_mset(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	struct store *s;
	size_t j;

	if (argc % 2 == 0) {
		resp_reply_arity(c, "mset");
		return 0;
	}
	s = cmd_store(c);
	if (!s)
		return 0;
	for (j = 1; j < argc; j += 2) {
		enum store_result r = store_set(s, argv[j].p, argv[j].len,
		    argv[j + 1].p, argv[j + 1].len, 0, 0);

		if (r != STORE_OK) {
			reply_store_error(c, r);
			return 0;
		}
	}
	resp_reply_ok(c);
	return 0;
}

static int cmd_mget(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	struct store *s = cmd_store(c);
	size_t j;

	if (!s)
		return 0;
	resp_reply_array(c, argc - 1);
	for (j = 1; j < argc; j++)
		if (store_get(s, argv[j].p, argv[j].len, reply_value, c) !=
		    STORE_OK)
			resp_reply_null(c);
	return 0;
}

static int cmd_dbsize(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	struct store *s = cmd_store(c);

	if (s)
		resp_reply_int(c, (long long)store_count(s));
	return 0;
}

/* FLUSHALL [ASYNC|SYNC]: always synchronous; the store flushes a stripe
 * at a time, so other workers are not stalled on one lock meanwhile. */
static int cmd_flushall(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	struct store *s;

	if (argc > 2 || (argc == 2 && !resp_arg_is(&argv[1], "async") &&
	    !resp_arg_is(&argv[1], "sync"))) {
		resp_reply_error(c, RESP_ERR_SYNTAX);
		return 0;
	}
	s = cmd_store(c);
	if (s) {
		store_flush(s);
		resp_reply_ok(c);
	}
	return 0;
}

/* Arities as in redis 7.0's command table. */
static const struct resp_cmd resp_cmds[] = {
	{ "get", 2, cmd_get },
	{ "set", -3, cmd_set },
	{ "del", -2, cmd_del },
	{ "exists", -2, cmd_exists },
	{ "incr", 2, cmd_incr },
	{ "decr", 2, cmd_decr },
	{ "incrby", 3, cmd_incrby },
	{ "decrby", 3, cmd_decrby },
	{ "mset", -3, cmd_mset },
	{ "mget", -2, cmd_mget },
	{ "dbsize", 1, cmd_dbsize },
	{ "flushall", -1, cmd_flushall },
	{ "ping", -1, resp_cmd_ping },
	{ "echo", 2, resp_cmd_echo },
	{ "quit", -1, resp_cmd_quit },
	{ "select", 2, resp_cmd_select },
	{ "hello", -1, resp_cmd_hello },
	{ "client", -2, resp_cmd_client },
	{ "command", -1, resp_cmd_command },
	{ "config", -2, resp_cmd_config },
	{ "info", -1, resp_cmd_info },
	{ "debug", -2, resp_cmd_debug },
	{ "subscribe", -2, resp_cmd_subscribe },
	{ "unsubscribe", -1, resp_cmd_unsubscribe },
	{ "psubscribe", -2, resp_cmd_psubscribe },
	{ "punsubscribe", -1, resp_cmd_punsubscribe },
	{ "publish", 3, resp_cmd_publish },
	{ "pubsub", -2, resp_cmd_pubsub },
};

#define NCMDS (sizeof(resp_cmds) / sizeof(resp_cmds[0]))

size_t resp_cmd_count(void)
{
	return NCMDS;
}

/* What RESP2's subscribed mode allows, as redis 7.0 (which also has
 * RESET and the sharded commands, unknown here). */
static int allowed_when_subscribed(const struct resp_cmd *cmd)
{
	return cmd->fn == resp_cmd_subscribe ||
	    cmd->fn == resp_cmd_unsubscribe ||
	    cmd->fn == resp_cmd_psubscribe ||
	    cmd->fn == resp_cmd_punsubscribe || cmd->fn == resp_cmd_ping ||
	    cmd->fn == resp_cmd_quit;
}

int resp_cmd_run(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	const struct resp_cmd *cmd = NULL;
	size_t i;

	/* A scan of a short table: the first byte and the length rule out
	 * almost every entry before a compare. */
	for (i = 0; i < NCMDS && !cmd; i++)
		if (argv[0].len > 0 &&
		    (argv[0].p[0] | 0x20) == resp_cmds[i].name[0] &&
		    resp_arg_is(&argv[0], resp_cmds[i].name))
			cmd = &resp_cmds[i];
	if (!cmd) {
		reply_unknown(c, argv, argc);
		return 0;
	}
	if ((cmd->arity > 0 && argc != (size_t)cmd->arity) ||
	    (cmd->arity < 0 && argc < (size_t)-cmd->arity)) {
		resp_reply_arity(c, cmd->name);
		return 0;
	}
	if (resp_subscribed(rc) && !allowed_when_subscribed(cmd)) {
		/* RESP2's subscribed mode, checked after the arity as redis
		 * does; the text is redis 7.0's, RESET and all. */
		resp_reply_errorf(c, "ERR Can't execute '%s': only "
		    "(P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
		    "are allowed in this context", cmd->name);
		return 0;
	}
	return cmd->fn(c, rc, argv, argc);
}
