/*
 * resp's pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE,
 * PUNSUBSCRIBE, PUBLISH and PUBSUB, with redis 7.0's RESP2 replies, and
 * the subscriber's side of delivery: formatting "message" and "pmessage"
 * pushes, the output limit (--pubsub-limit, redis's
 * client-output-buffer-limit pubsub), and holding a publisher while its
 * messages drain.  The registry and the delivery between workers are
 * src/pubsub.c's; docs/resp.md, "Pub/sub", is the user's view.
 *
 * A connection's subscriber (struct resp_conn's sub) belongs to its
 * worker's local map, found on first use through conn_worker().  Every
 * callback here runs on that worker: message() and flush() while a batch
 * is delivered, between handler calls or inside a publisher's call on
 * the same worker, never inside this connection's own call.
 */
#include "proto/resp_cmd.h"
#include "proto/resp_reply.h"
#include "pubsub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A subscriber's message buffer is freed after a batch past this size,
 * so that one burst does not pin its memory. */
#define RESP_PS_KEEP (64 * 1024)

static struct resp_conn *sub_conn(struct pubsub_sub *sub)
{
	return (struct resp_conn *)((char *)sub -
	    offsetof(struct resp_conn, sub));
}

static uint64_t coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Appends @len bytes to the message buffer.  Returns 0 or -1. */
static int out_add(struct resp_conn *rc, const void *p, size_t len)
{
	if (rc->ps_cap - rc->ps_len < len) {
		size_t cap = rc->ps_cap ? rc->ps_cap : 1024;
		char *n;

		while (cap - rc->ps_len < len)
			cap *= 2;
		n = realloc(rc->ps_out, cap);
		if (!n)
			return -1;
		rc->ps_out = n;
		rc->ps_cap = cap;
	}
	memcpy(rc->ps_out + rc->ps_len, p, len);
	rc->ps_len += len;
	return 0;
}

/* Appends a bulk string of @len bytes at @p to @out; returns the end. */
static char *put_bulk(char *out, const char *p, size_t len)
{
	out += sprintf(out, "$%zu\r\n", len);
	memcpy(out, p, len);
	memcpy(out + len, "\r\n", 2);
	return out + len + 2;
}

/* The push for @d, formatted once per message in the worker's scratch:
 * "*3 $7 message $ch $msg" or "*4 $8 pmessage $pat $ch $msg". */
static const char *wire(struct pubsub_delivery *d)
{
	char *buf, *p;

	if (d->wire)
		return d->wire;
	buf = pubsub_scratch(d->local, d->plen + d->chlen + d->mlen + 128);
	if (!buf)
		return NULL;
	if (d->pat) {
		p = buf + sprintf(buf, "*4\r\n$8\r\npmessage\r\n");
		p = put_bulk(p, d->pat, d->plen);
	} else {
		p = buf + sprintf(buf, "*3\r\n$7\r\nmessage\r\n");
	}
	p = put_bulk(p, d->ch, d->chlen);
	p = put_bulk(p, d->msg, d->mlen);
	d->wire = buf;
	d->wire_len = (size_t)(p - buf);
	return buf;
}

/*
 * Over the limit?  As in redis: past the hard limit at once; past the
 * soft limit when it has stayed past it for the limit's seconds, timed
 * from the first message that found it so.
 */
static bool over_limit(struct resp_conn *rc, size_t pending)
{
	const struct proto_pubsub_limit *lim = rc->limit;
	uint64_t now;

	if (lim->hard && pending > lim->hard)
		return true;
	if (!lim->soft || pending <= lim->soft) {
		rc->soft_since = 0;
		return false;
	}
	now = coarse_ms();
	if (!rc->soft_since) {
		rc->soft_since = now ? now : 1;
		return false;
	}
	return (double)(now - rc->soft_since) >= lim->seconds * 1000;
}

static int sub_message(struct pubsub_sub *sub, struct pubsub_delivery *d)
{
	struct resp_conn *rc = sub_conn(sub);
	const char *w = wire(d);

	/* The connection's pending output is read once per batch: for a
	 * thousand subscribers, per message, it was a sixth of the time. */
	if (rc->ps_len == 0)
		rc->ps_base = conn_output_size(rc->conn);
	if (!w || over_limit(rc, rc->ps_base + rc->ps_len + d->wire_len))
		return -1;
	return out_add(rc, w, d->wire_len);
}

/* One write for everything the batch brought. */
static void sub_flush(struct pubsub_sub *sub)
{
	struct resp_conn *rc = sub_conn(sub);

	if (rc->ps_len)
		conn_reply(rc->conn, rc->ps_out, rc->ps_len);
	rc->ps_len = 0;
	if (rc->ps_cap > RESP_PS_KEEP) {
		free(rc->ps_out);
		rc->ps_out = NULL;
		rc->ps_cap = 0;
	}
}

/* Over the limit: closed at once, its pending output dropped, as redis
 * closes a pubsub client past client-output-buffer-limit. */
static void sub_drop(struct pubsub_sub *sub)
{
	struct resp_conn *rc = sub_conn(sub);
	struct conn *c = rc->conn;

	resp_pubsub_release(rc);
	conn_count_overflow(c);
	conn_abort(c);		/* frees c and rc */
}

static const struct pubsub_sub_ops resp_sub_ops = {
	.message = sub_message,
	.flush = sub_flush,
	.drop = sub_drop,
};

static void publisher_resume(struct pubsub_waiter *w)
{
	struct resp_conn *rc = (struct resp_conn *)((char *)w -
	    offsetof(struct resp_conn, waiter));

	conn_hold_input(rc->conn, false);
}

/* @c's worker's local map, or NULL after replying that there is no
 * pub/sub. */
static struct pubsub_local *local_of(struct conn *c, struct resp_conn *rc)
{
	struct pubsub *ps = conn_config(c)->pubsub;

	if (rc->ps)
		return rc->ps;
	if (!ps) {
		resp_reply_error(c, RESP_ERR_NO_PUBSUB);
		return NULL;
	}
	rc->ps = pubsub_local(ps, conn_env_index(conn_worker(c)));
	rc->limit = &conn_config(c)->pubsub_limit;
	pubsub_sub_init(&rc->sub, &resp_sub_ops);
	rc->waiter.resume = publisher_resume;
	return rc->ps;
}

void resp_pubsub_release(struct resp_conn *rc)
{
	if (!rc->ps)
		return;
	pubsub_sub_release(rc->ps, &rc->sub);
	pubsub_unwait(rc->ps, &rc->waiter);
	free(rc->ps_out);
	rc->ps_out = NULL;
	rc->ps_len = rc->ps_cap = 0;
}

void resp_pubsub_after_read(struct conn *c, struct resp_conn *rc)
{
	if (!rc->published)
		return;
	rc->published = false;
	if (pubsub_flush(rc->ps)) {
		conn_hold_input(c, true);
		pubsub_wait(rc->ps, &rc->waiter);
	}
}

/* "*3 $kind $name :count", the reply to each (un)subscription; @name
 * NULL is the null bulk (unsubscribing from nothing). */
static void reply_sub(struct conn *c, struct resp_conn *rc, const char *kind,
    const char *name, size_t len)
{
	resp_reply_array(c, 3);
	resp_reply_bulk_str(c, kind);
	if (name)
		resp_reply_bulk(c, name, len);
	else
		resp_reply_null(c);
	resp_reply_int(c, (long long)pubsub_sub_count(&rc->sub));
}

static int subscribe(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc, bool pattern)
{
	struct pubsub_local *l = local_of(c, rc);

	if (!l)
		return 0;
	for (size_t j = 1; j < argc; j++) {
		if (pubsub_subscribe(l, &rc->sub, pattern, argv[j].p,
		    argv[j].len) < 0) {
			resp_reply_error(c, RESP_ERR_OOM);
			continue;
		}
		reply_sub(c, rc, pattern ? "psubscribe" : "subscribe",
		    argv[j].p, argv[j].len);
	}
	return 0;
}

struct unsub_all {
	struct conn *c;
	struct resp_conn *rc;
	const char *kind;
};

static void reply_unsub(void *arg, const char *name, size_t len)
{
	struct unsub_all *u = arg;

	reply_sub(u->c, u->rc, u->kind, name, len);
}

static int unsubscribe(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc, bool pattern)
{
	struct unsub_all u = { c, rc, pattern ? "punsubscribe" :
	    "unsubscribe" };
	struct pubsub_local *l = local_of(c, rc);

	if (!l)
		return 0;
	if (argc == 1) {
		if (!pubsub_unsubscribe_all(l, &rc->sub, pattern, reply_unsub,
		    &u))
			reply_sub(c, rc, u.kind, NULL, 0);
		return 0;
	}
	for (size_t j = 1; j < argc; j++) {
		pubsub_unsubscribe(l, &rc->sub, pattern, argv[j].p,
		    argv[j].len);
		reply_sub(c, rc, u.kind, argv[j].p, argv[j].len);
	}
	return 0;
}

int resp_cmd_subscribe(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	return subscribe(c, rc, argv, argc, false);
}

int resp_cmd_psubscribe(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	return subscribe(c, rc, argv, argc, true);
}

int resp_cmd_unsubscribe(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	return unsubscribe(c, rc, argv, argc, false);
}

int resp_cmd_punsubscribe(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	return unsubscribe(c, rc, argv, argc, true);
}

/* PUBLISH channel message: the receivers now; delivery after the read. */
int resp_cmd_publish(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	struct pubsub_local *l = local_of(c, rc);
	long long n;

	if (!l)
		return 0;
	n = pubsub_publish(l, argv[1].p, argv[1].len, argv[2].p, argv[2].len);
	rc->published = true;
	if (n < 0)
		resp_reply_error(c, RESP_ERR_OOM);
	else
		resp_reply_int(c, n);
	return 0;
}

static void reply_begin(void *arg, size_t n)
{
	resp_reply_array(arg, n);
}

static void reply_name(void *arg, const char *name, size_t len)
{
	resp_reply_bulk(arg, name, len);
}

/* How much of @a redis's "%.128s" shows: up to a NUL, 128 bytes. */
static int shown(const struct resp_arg *a)
{
	size_t n = a->len < 128 ? a->len : 128;
	const char *nul = memchr(a->p, '\0', n);

	return (int)(nul ? (size_t)(nul - a->p) : n);
}

static const char *const pubsub_help[] = {
	"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"CHANNELS [<pattern>]",
	"    Return the currently active channels matching a <pattern> "
	    "(default: '*').",
	"NUMPAT",
	"    Return number of subscriptions to patterns.",
	"NUMSUB [<channel> ...]",
	"    Return the number of subscribers for the specified channels, "
	    "excluding",
	"    pattern subscriptions(default: no channels).",
	"SHARDCHANNELS [<pattern>]",
	"    Return the currently active shard level channels matching a "
	    "<pattern> (default: '*').",
	"SHARDNUMSUB [<shardchannel> ...]",
	"    Return the number of subscribers for the specified shard level "
	    "channel(s)",
	"HELP",
	"    Prints this help.",
};

/*
 * PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT | HELP, and
 * SHARDCHANNELS and SHARDNUMSUB, which answer as a redis with no shard
 * channels would, since resp has no SSUBSCRIBE.
 */
int resp_cmd_pubsub(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc)
{
	struct pubsub *ps = conn_config(c)->pubsub;
	const struct resp_arg *sub = &argv[1];
	bool shard = resp_arg_is(sub, "shardchannels") ||
	    resp_arg_is(sub, "shardnumsub");

	if (resp_arg_is(sub, "help")) {
		size_t n = sizeof(pubsub_help) / sizeof(pubsub_help[0]);

		if (argc != 2) {
			resp_reply_arity(c, "pubsub|help");
			return 0;
		}
		resp_reply_array(c, n);
		for (size_t i = 0; i < n; i++)
			resp_reply_simple(c, pubsub_help[i]);
		return 0;
	}
	if (!shard && !resp_arg_is(sub, "channels") &&
	    !resp_arg_is(sub, "numsub") && !resp_arg_is(sub, "numpat")) {
		resp_reply_unknown_subcommand(c, argv);
		return 0;
	}
	if (!ps && !shard) {
		resp_reply_error(c, RESP_ERR_NO_PUBSUB);
		return 0;
	}
	if (resp_arg_is(sub, "channels") || resp_arg_is(sub, "shardchannels")) {
		if (argc > 3) {
			resp_reply_errorf(c, "ERR unknown subcommand or wrong "
			    "number of arguments for '%.*s'. Try PUBSUB HELP.",
			    shown(sub), sub->p);
		} else if (shard) {
			resp_reply_array(c, 0);
		} else {
			pubsub_channels(ps, argc == 3 ? argv[2].p : NULL,
			    argc == 3 ? argv[2].len : 0, reply_begin,
			    reply_name, c);
		}
	} else if (resp_arg_is(sub, "numpat")) {
		if (argc != 2)
			resp_reply_arity(c, "pubsub|numpat");
		else
			resp_reply_int(c, (long long)pubsub_numpat(ps));
	} else {
		resp_reply_array(c, (argc - 2) * 2);
		for (size_t j = 2; j < argc; j++) {
			resp_reply_bulk(c, argv[j].p, argv[j].len);
			resp_reply_int(c, shard ? 0 : (long long)pubsub_numsub(
			    ps, argv[j].p, argv[j].len));
		}
	}
	return 0;
}
