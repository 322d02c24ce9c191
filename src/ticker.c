/*
 * Per-worker tickers for handlers (proto.h, "Tickers"): a persistent
 * libevent timer on the worker's own base, so it runs on the worker's
 * thread between handler calls and needs no lock.  What the tick replied
 * outside a handler call is written when it returns, as after a message.
 */
#include "conn.h"

#include <event2/event.h>
#include <stdlib.h>

struct proto_ticker {
	struct event *ev;
	struct conn_env *env;
	proto_tick_fn *fn;
	void *arg;
};

static void ticker_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proto_ticker *t = arg;

	t->fn(t->env, t->arg);
	conn_env_flush(t->env);
}

struct proto_ticker *conn_env_ticker_new(struct conn_env *env,
    double seconds, proto_tick_fn *fn, void *arg)
{
	struct proto_ticker *t = calloc(1, sizeof(*t));
	struct timeval tv;

	if (!t)
		return NULL;
	if (seconds < 1e-6)
		seconds = 1e-6;
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	t->env = env;
	t->fn = fn;
	t->arg = arg;
	t->ev = event_new(env->base, -1, EV_PERSIST, ticker_cb, t);
	if (!t->ev || event_add(t->ev, &tv)) {
		conn_env_ticker_free(t);
		return NULL;
	}
	return t;
}

void conn_env_ticker_free(struct proto_ticker *t)
{
	if (!t)
		return;
	if (t->ev)
		event_free(t->ev);
	free(t);
}
