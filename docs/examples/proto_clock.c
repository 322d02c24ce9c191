/*
 * clock: a worked example of a per-worker ticker and of wake
 * (docs/protocols.md, "Tickers and wake", walks through it).
 *
 * - "watch" makes the connection a watcher: every CLOCK_TICK seconds the
 *   worker's ticker sends each of its watchers "tick N\n", N counting
 *   that worker's ticks.  The watchers live in the worker's local state
 *   (conn_env_local()), by id, so the ticker finds them with
 *   conn_env_find() and needs no lock.
 * - "alarm MS" answers "alarm\n" after MS milliseconds.  With --offload
 *   a pool job sleeps and then calls msg_wake() with the connection's id,
 *   from the pool thread; the handler's wake() then replies on the
 *   worker.  Without a pool it answers at once.
 * - Anything else gets "?\n".
 * A line is what ends in LF.
 */
#include "proto/proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLOCK_TICK 0.1		/* seconds between ticks */
#define CLOCK_MAX_LINE 64
#define CLOCK_WATCHERS 1024	/* per worker */

extern const struct proto_ops proto_clock;

/* One worker's state: its ticker, its tick count and its watchers. */
struct clock_worker {
	struct proto_ticker *ticker;
	unsigned long ticks;
	uint64_t watcher[CLOCK_WATCHERS];
	int n;
};

struct clock_conn {
	int watching;		/* in its worker's list */
};

/* Runs on the worker, every CLOCK_TICK: replies outside a handler call
 * are gathered per connection and written when the tick returns. */
static void clock_tick(struct conn_env *env, void *arg)
{
	struct clock_worker *w = arg;
	char line[32];
	int len;

	w->ticks++;
	len = snprintf(line, sizeof(line), "tick %lu\n", w->ticks);
	for (int i = 0; i < w->n; i++) {
		struct conn *c = conn_env_find(env, w->watcher[i]);

		if (c)
			conn_reply(c, line, (size_t)len);
	}
}

/* This worker's state, made (with its ticker) on first use; NULL if out
 * of memory. */
static struct clock_worker *clock_worker(struct conn *c)
{
	struct conn_env *env = conn_worker(c);
	void **slot = conn_env_local(env, &proto_clock);
	struct clock_worker *w;

	if (!slot)
		return NULL;
	if (*slot)
		return *slot;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->ticker = conn_env_ticker_new(env, CLOCK_TICK, clock_tick, w);
	if (!w->ticker) {
		free(w);
		return NULL;
	}
	*slot = w;
	return w;
}

/* What an alarm's job needs: the delay, and where to post the wake. */
struct clock_alarm {
	long ms;
	struct msg_hub *hub;
};

/* On a pool thread: sleeps, then pokes the connection by id.  It never
 * touches the connection itself, which may be gone by now. */
static void clock_alarm_job(struct proto_job *job, void *arg)
{
	struct clock_alarm *a = arg;
	struct timespec ts = { a->ms / 1000, (a->ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
	msg_wake(a->hub, proto_job_conn(job));
}

/* Answers one line; returns -EAGAIN if it must be given again later. */
static int clock_command(struct conn *c, struct clock_conn *st,
    const char *line, size_t len)
{
	int rc;

	if (len == 5 && !memcmp(line, "watch", 5)) {
		struct clock_worker *w = st->watching ? NULL : clock_worker(c);

		if (w && w->n < CLOCK_WATCHERS) {
			w->watcher[w->n++] = conn_id(c);
			st->watching = 1;
		}
		conn_reply(c, st->watching ? "watching\n" : "?\n",
		    st->watching ? 9 : 2);
	} else if (len > 6 && !memcmp(line, "alarm ", 6)) {
		struct clock_alarm *a = malloc(sizeof(*a));

		if (!a) {
			conn_reply(c, "?\n", 2);
			return 0;
		}
		a->ms = strtol(line + 6, NULL, 10) % 60000;
		a->ms = a->ms < 0 ? 0 : a->ms;
		a->hub = conn_config(c)->hub;
		rc = a->hub ? conn_offload(c, clock_alarm_job, a, free) :
		    -EOPNOTSUPP;
		if (rc == 0)
			return 0;	/* the job has @a now */
		free(a);
		if (rc == -EAGAIN)
			return rc;	/* the pool is full: later */
		conn_reply(c, "alarm\n", 6);	/* no pool: at once */
	} else {
		conn_reply(c, "?\n", 2);
	}
	return 0;
}

static ssize_t clock_data(struct conn *c, void *state, const char *in,
    size_t len)
{
	size_t pos = 0;
	const char *lf;

	while ((lf = memchr(in + pos, '\n', len - pos))) {
		if (clock_command(c, state, in + pos,
		    (size_t)(lf - (in + pos))) == -EAGAIN)
			break;	/* this line and the rest come again */
		pos = (size_t)(lf - in) + 1;
	}
	return (ssize_t)pos;
}

/* msg_wake() from the alarm's job: now on the worker, as a handler call. */
static int clock_wake(struct conn *c, void *state)
{
	conn_reply(c, "alarm\n", 6);
	return 0;
}

/* A watcher leaves its worker's list. */
static void clock_release(struct conn *c, void *state)
{
	struct clock_conn *st = state;
	void **slot = conn_env_local(conn_worker(c), &proto_clock);
	struct clock_worker *w = slot ? *slot : NULL;

	for (int i = 0; st->watching && w && i < w->n; i++)
		if (w->watcher[i] == conn_id(c)) {
			w->watcher[i] = w->watcher[--w->n];
			break;
		}
}

/* The worker is done: its ticker stops with its state. */
static void clock_worker_release(struct conn_env *env, void *local)
{
	struct clock_worker *w = local;

	conn_env_ticker_free(w->ticker);
	free(w);
}

const struct proto_ops proto_clock = {
	.name = "clock",
	.summary = "\"watch\": a tick line per tick; \"alarm MS\": a line "
	    "after MS ms",
	.state_size = sizeof(struct clock_conn),
	.max_pending = CLOCK_MAX_LINE,
	.data = clock_data,
	.wake = clock_wake,
	.release = clock_release,
	.worker_release = clock_worker_release,
};
