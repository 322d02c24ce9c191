/*
 * The fake connection of proto_harness.h: conn_reply() and conn_config()
 * on a test-only struct conn, and a driver that calls a handler's ops as
 * the server does (proto.h).  Allocation failure aborts: this is test
 * code, and a half-run handler would only give a confusing failure.
 */
#include "proto_harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *harness_alloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fputs("proto_harness: out of memory\n", stderr);
		abort();
	}
	return p;
}

static void harness_breach(struct conn *c, const char *what)
{
	if (!c->violation)
		c->violation = what;
}

void conn_reply(struct conn *c, const void *buf, size_t len)
{
	const char *p = buf;

	if (!c->in_call && !harness_env.in_tick) {
		harness_breach(c, "conn_reply() outside a call or a tick");
		return;
	}
	if (len == 0)
		return;
	if (!buf) {
		harness_breach(c, "conn_reply() of NULL");
		return;
	}
	c->replies++;
	if (c->in && p >= c->in && len <= c->in_len &&
	    (size_t)(p - c->in) <= c->in_len - len) {
		c->zero_copy++;
		if (p != c->span_end)
			c->segments++;
		c->span_end = p + len;
	} else {
		c->segments++;
		c->span_end = NULL;
	}
	if (c->out_cap - c->out_len < len) {
		size_t cap = c->out_cap ? c->out_cap : 256;

		while (cap - c->out_len < len)
			cap *= 2;
		c->out = realloc(c->out, cap);
		if (!c->out) {
			fputs("proto_harness: out of memory\n", stderr);
			abort();
		}
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, len);
	c->out_len += len;
}

const struct proto_config *conn_config(const struct conn *c)
{
	return &c->config;
}

void conn_count_requests(struct conn *c, uint64_t n)
{
	c->requests += n;
}

/* The fake connection has no socket, so no client address. */
const struct sockaddr *conn_peer(const struct conn *c, socklen_t *len)
{
	if (len)
		*len = 0;
	return NULL;
}

struct conn_env harness_env;

struct proto_ticker {
	proto_tick_fn *fn;
	void *arg;
};

uint64_t conn_id(const struct conn *c)
{
	return c->id;
}

struct conn_env *conn_worker(struct conn *c)
{
	return &harness_env;
}

int conn_env_index(const struct conn_env *env)
{
	return 0;
}

/* The harness has no server-wide config: an open connection's stands
 * in (they are all the test's own). */
const struct proto_config *conn_env_config(const struct conn_env *env)
{
	for (int i = HARNESS_CONNS - 1; i >= 0; i--)
		if (env->conns[i])
			return &env->conns[i]->config;
	return NULL;
}

struct conn *conn_env_find(struct conn_env *env, uint64_t id)
{
	for (int i = 0; i < HARNESS_CONNS; i++)
		if (env->conns[i] && env->conns[i]->id == id)
			return env->conns[i];
	return NULL;
}

void **conn_env_local(struct conn_env *env, const struct proto_ops *ops)
{
	for (int i = 0; i < CONN_ENV_LOCALS; i++) {
		if (!env->local_ops[i])
			env->local_ops[i] = ops;
		if (env->local_ops[i] == ops)
			return &env->local[i];
	}
	return NULL;
}

struct proto_ticker *conn_env_ticker_new(struct conn_env *env,
    double seconds, proto_tick_fn *fn, void *arg)
{
	for (int i = 0; i < HARNESS_TICKERS; i++)
		if (!env->tickers[i]) {
			struct proto_ticker *t = harness_alloc(sizeof(*t));

			t->fn = fn;
			t->arg = arg;
			env->tickers[i] = t;
			return t;
		}
	return NULL;
}

void conn_env_ticker_free(struct proto_ticker *t)
{
	for (int i = 0; t && i < HARNESS_TICKERS; i++)
		if (harness_env.tickers[i] == t)
			harness_env.tickers[i] = NULL;
	free(t);
}

size_t conn_output_size(const struct conn *c)
{
	return 0;	/* the sink takes everything at once */
}

void conn_abort(struct conn *c)
{
	harness_breach(c, "conn_abort() is not simulated");
}

int msg_hub_workers(const struct msg_hub *hub)
{
	return 0;
}

int msg_call(struct msg_hub *hub, int worker, msg_fn *fn, void *arg)
{
	return -EINVAL;	/* no hub */
}

int msg_reply(struct msg_hub *hub, uint64_t id, const void *buf,
    size_t len)
{
	return -EINVAL;
}

int msg_wake(struct msg_hub *hub, uint64_t id)
{
	return -EINVAL;
}

void harness_tick(void)
{
	harness_env.in_tick = 1;
	for (int i = 0; i < HARNESS_TICKERS; i++)
		if (harness_env.tickers[i])
			harness_env.tickers[i]->fn(&harness_env,
			    harness_env.tickers[i]->arg);
	harness_env.in_tick = 0;
}

void harness_env_release(void)
{
	for (int i = 0; i < CONN_ENV_LOCALS; i++) {
		const struct proto_ops *ops = harness_env.local_ops[i];

		if (ops && harness_env.local[i] && ops->worker_release)
			ops->worker_release(&harness_env,
			    harness_env.local[i]);
	}
	for (int i = 0; i < HARNESS_TICKERS; i++)
		free(harness_env.tickers[i]);
	memset(&harness_env, 0, sizeof(harness_env));
}

/* No pool here: handlers that offload do their work inline, which is
 * what they do on a server without --offload. */
int conn_offload(struct conn *c, proto_job_fn *run, void *arg,
    proto_free_fn *free_arg)
{
	if (!c->in_call)
		harness_breach(c, "conn_offload() outside a handler call");
	return -EOPNOTSUPP;
}

/* Never reached, since no job runs; defined for the handlers' links. */
void proto_job_reply(struct proto_job *job, const void *buf, size_t len)
{
	abort();
}

int proto_job_cancelled(const struct proto_job *job)
{
	abort();
}

uint64_t proto_job_conn(const struct proto_job *job)
{
	abort();
}

/* resp's pub/sub holds a publisher and counts a cut subscriber; with no
 * pub/sub in the harness (config.pubsub NULL) neither is reached. */
void conn_hold_input(struct conn *c, bool hold)
{
	harness_breach(c, "conn_hold_input() is not simulated");
}

void conn_count_overflow(struct conn *c)
{
	harness_breach(c, "conn_count_overflow() is not simulated");
}

/* Brackets one handler call: conn_reply() is allowed, and may point
 * into @in (NULL for open()). */
static void harness_call_begin(struct conn *c, const char *in, size_t len)
{
	c->in_call = 1;
	c->in = in;
	c->in_len = len;
	c->span_end = NULL;
}

static void harness_call_end(struct conn *c)
{
	c->in_call = 0;
	c->in = NULL;
	c->in_len = 0;
	c->span_end = NULL;
}

static void harness_drop_kept(struct conn *c)
{
	free(c->kept);
	c->kept = NULL;
	c->kept_len = 0;
}

int harness_open(struct conn *c, const struct proto_ops *ops,
    const struct proto_config *cfg)
{
	int rc = 0;

	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->config = *cfg;
	c->id = ++harness_env.next_id;
	for (int i = 0; i < HARNESS_CONNS; i++)
		if (!harness_env.conns[i]) {
			harness_env.conns[i] = c;
			break;
		}
	if (ops->state_size)
		c->state = calloc(1, ops->state_size);
	if (ops->state_size && !c->state) {
		fputs("proto_harness: out of memory\n", stderr);
		abort();
	}
	if (!ops->data)
		harness_breach(c, "ops without data()");
	if (ops->open) {
		harness_call_begin(c, NULL, 0);
		rc = ops->open(c, c->state);
		harness_call_end(c);
	}
	if (rc != 0 && rc != PROTO_CLOSE)
		harness_breach(c, "open() returned neither 0 nor PROTO_CLOSE");
	if (rc == PROTO_CLOSE)
		c->end = HARNESS_CLOSED_BY_OPEN;
	return rc == PROTO_CLOSE ? PROTO_CLOSE : 0;
}

void harness_wake(struct conn *c)
{
	int rc;

	if (c->end != HARNESS_OPEN || !c->ops->wake)
		return;
	harness_call_begin(c, NULL, 0);
	rc = c->ops->wake(c, c->state);
	harness_call_end(c);
	if (rc == PROTO_CLOSE)
		c->end = HARNESS_CLOSED_BY_DATA;
}

void harness_read(struct conn *c, const void *buf, size_t len)
{
	size_t total = c->kept_len + len;
	char *in;
	ssize_t used;

	if (c->end != HARNESS_OPEN || len == 0 || !c->ops->data)
		return;
	/* Exactly the bytes of this call, freshly allocated, so that ASan
	 * sees a read past @len or a pointer kept after the call. */
	in = harness_alloc(total);
	if (c->kept_len)
		memcpy(in, c->kept, c->kept_len);
	memcpy(in + c->kept_len, buf, len);
	harness_drop_kept(c);

	c->data_calls++;
	harness_call_begin(c, in, total);
	used = c->ops->data(c, c->state, in, total);
	harness_call_end(c);

	if (used == PROTO_CLOSE) {
		c->end = HARNESS_CLOSED_BY_DATA;
	} else if (used < 0 || (size_t)used > total) {
		harness_breach(c, "data() returned more than it was given");
		c->end = HARNESS_CLOSED_BY_DATA;
	} else if (total - (size_t)used > c->ops->max_pending) {
		c->end = HARNESS_OVERFLOW;
	} else if ((size_t)used < total) {
		c->kept_len = total - (size_t)used;
		c->kept = harness_alloc(c->kept_len);
		memcpy(c->kept, in + used, c->kept_len);
	}
	free(in);
}

void harness_eof(struct conn *c)
{
	if (c->end != HARNESS_OPEN)
		return;
	if (c->ops->eof) {
		/* The kept bytes, copied so that the call has its own
		 * buffer, as data() does. */
		char *in = harness_alloc(c->kept_len);

		if (c->kept_len)
			memcpy(in, c->kept, c->kept_len);
		harness_call_begin(c, in, c->kept_len);
		c->ops->eof(c, c->state, in, c->kept_len);
		harness_call_end(c);
		free(in);
	}
	harness_drop_kept(c);
	c->end = HARNESS_EOF;
}

void harness_release(struct conn *c)
{
	if (!c->released && c->ops && c->ops->release)
		c->ops->release(c, c->state);
	c->released = 1;
	for (int i = 0; i < HARNESS_CONNS; i++)
		if (harness_env.conns[i] == c)
			harness_env.conns[i] = NULL;
	free(c->state);
	c->state = NULL;
	harness_drop_kept(c);
}

void harness_free(struct conn *c)
{
	harness_release(c);
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_cap = 0;
}

void harness_run(struct conn *c, const struct proto_ops *ops,
    const struct proto_config *cfg, const void *in, size_t len,
    const size_t *cuts, size_t ncuts)
{
	const char *p = in;
	size_t at = 0, i;

	harness_open(c, ops, cfg);
	for (i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		if (to > len)
			to = len;
		if (to > at) {
			harness_read(c, p + at, to - at);
			at = to;
		}
	}
	harness_eof(c);
	harness_release(c);
}

void harness_run_chunked(struct conn *c, const struct proto_ops *ops,
    const struct proto_config *cfg, const void *in, size_t len,
    size_t chunk)
{
	const char *p = in;
	size_t at;

	harness_open(c, ops, cfg);
	if (chunk == 0)
		chunk = len ? len : 1;
	for (at = 0; at < len; at += chunk)
		harness_read(c, p + at, len - at < chunk ? len - at : chunk);
	harness_eof(c);
	harness_release(c);
}

const char *harness_end_name(enum harness_end end)
{
	switch (end) {
	case HARNESS_OPEN:
		return "open";
	case HARNESS_CLOSED_BY_OPEN:
		return "closed by open()";
	case HARNESS_CLOSED_BY_DATA:
		return "closed by data()";
	case HARNESS_OVERFLOW:
		return "closed: kept input over max_pending";
	case HARNESS_EOF:
		return "eof";
	}
	return "?";
}
