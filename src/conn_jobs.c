/*
 * Ordered replies for offloaded jobs (conn.h, "Ordered replies"): while a
 * connection has jobs in flight, its replies wait in slots, in the order
 * they were made, and each job's result fills its own slot when it comes
 * back (conn_env_job_done()); the ready slots at the front are written
 * out.  A connection whose job could not be submitted stops reading until
 * one comes back, or a short timer retries it (conn_job_wait()).
 */
#include "conn.h"
#include "conn_impl.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

static struct conn_jobs *conn_jobs_get(struct conn *c)
{
	if (!c->jobs)
		c->jobs = calloc(1, sizeof(*c->jobs));
	return c->jobs;
}

static struct conn_slot *conn_slot_new(struct conn_jobs *j, uint64_t seq)
{
	struct conn_slot *sl = calloc(1, sizeof(*sl));

	if (!sl)
		return NULL;
	sl->seq = seq;
	sl->ready = seq == 0;
	if (j->tail)
		j->tail->next = sl;
	else
		j->head = sl;
	j->tail = sl;
	return sl;
}

static void conn_slot_free(struct conn_slot *sl)
{
	free(sl->data);
	free(sl);
}

/* A reply made while a job's result is still to come: kept, in order,
 * in the last slot of replies (a new one after a job's slot). */
void conn_slot_append(struct conn *c, const char *p, size_t len)
{
	struct conn_jobs *j = c->jobs;
	struct conn_slot *sl = j->tail;

	if (sl->seq != 0 && !(sl = conn_slot_new(j, 0))) {
		conn_break(c, ENOMEM);
		return;
	}
	if (sl->cap - sl->len < len) {
		size_t cap = sl->cap * 2 > sl->len + len ? sl->cap * 2 :
		    sl->len + len;
		char *data = realloc(sl->data, cap < 256 ? 256 : cap);

		if (!data) {
			conn_break(c, ENOMEM);
			return;
		}
		sl->data = data;
		sl->cap = cap < 256 ? 256 : cap;
	}
	memcpy(sl->data + sl->len, p, len);
	sl->len += len;
	j->bytes += len;
	/* Held replies count as output: the same high-water rule. */
	if (j->bytes > c->env->high_water && !(c->flags & CONN_PAUSED))
		conn_pause(c);
}

/* Writes the ready slots at the front of the order, gathered. */
static void conn_slots_flush(struct conn *c)
{
	struct conn_jobs *j = c->jobs;

	while (j->head && j->head->ready) {
		struct iovec iov[16];
		struct conn_slot *ready[16];
		size_t len = 0;
		int n = 0;

		while (n < 16 && j->head && j->head->ready) {
			struct conn_slot *sl = j->head;

			j->head = sl->next;
			if (!j->head)
				j->tail = NULL;
			j->bytes -= sl->len;
			if (sl->len) {
				iov[n].iov_base = sl->data;
				iov[n].iov_len = sl->len;
				len += sl->len;
				ready[n++] = sl;
			} else {
				conn_slot_free(sl);
			}
		}
		if (n)
			conn_writev(c, iov, n, len);
		while (n > 0)
			conn_slot_free(ready[--n]);
	}
	if ((c->flags & CONN_PAUSED) && j->bytes <= c->env->low_water &&
	    conn_output_len(c) <= c->env->low_water)
		conn_resume(c);
}

/*
 * A client waiting for a job's reply is not idle: --idle-timeout is off
 * while a connection has jobs in flight (as redis spares a blocked
 * client its timeout), and back on with the last one.
 */
static void conn_jobs_idle_timer(struct conn *c, bool on)
{
	struct conn_env *env = c->env;

	if (env->idle_tv && !(c->flags & CONN_CLOSING))
		bufferevent_set_timeouts(c->bev, on ? env->idle_tv : NULL,
		    env->write_tv);
}

int conn_job_begin(struct conn *c, _Atomic bool *cancel, uint64_t *seq)
{
	struct conn_jobs *j = conn_jobs_get(c);
	struct conn_slot *sl;

	if (!j)
		return -ENOMEM;
	if (j->in_flight >= CONN_MAX_JOBS)
		return -EAGAIN;
	sl = conn_slot_new(j, ++j->next_seq);
	if (!sl)
		return -ENOMEM;
	sl->cancel = cancel;
	if (j->in_flight++ == 0)
		conn_jobs_idle_timer(c, false);
	*seq = sl->seq;
	return 0;
}

void conn_job_undo(struct conn *c, uint64_t seq)
{
	struct conn_jobs *j = c->jobs;
	struct conn_slot **p, *prev = NULL;

	for (p = &j->head; *p; prev = *p, p = &(*p)->next) {
		if ((*p)->seq != seq)
			continue;
		struct conn_slot *sl = *p;

		*p = sl->next;
		if (j->tail == sl)
			j->tail = prev;
		conn_slot_free(sl);
		if (--j->in_flight == 0)
			conn_jobs_idle_timer(c, true);
		return;
	}
}

static void conn_retry_cb(evutil_socket_t fd, short what, void *arg);

#define CONN_RETRY_MS 1

void conn_job_wait(struct conn *c)
{
	struct conn_env *env = c->env;
	struct conn_jobs *j = conn_jobs_get(c);

	if (!(c->flags & CONN_JOB_WAIT)) {
		c->flags |= CONN_JOB_WAIT;
		stat_add(&env->stats.jobs_deferred, 1);
		bufferevent_disable(c->bev, EV_READ);
	}
	/* A job of its own coming back resumes it; without one (the pool
	 * is full of others' jobs), a short timer retries. */
	if (!j || j->in_flight || (c->flags & CONN_RETRY_LISTED))
		return;
	if (!env->retry_timer)
		env->retry_timer = evtimer_new(env->base, conn_retry_cb, env);
	if (!env->retry_timer) {
		conn_break(c, ENOMEM);
		return;
	}
	c->flags |= CONN_RETRY_LISTED;
	j->wait_next = env->job_waiters;
	env->job_waiters = c;
	if (!evtimer_pending(env->retry_timer, NULL)) {
		struct timeval tv = { 0, CONN_RETRY_MS * 1000 };

		evtimer_add(env->retry_timer, &tv);
	}
}

/* Takes @c off the list it waits on: the waiters, or those the retry
 * timer is going through (conn_retry_cb()). */
static void conn_unlist(struct conn *c)
{
	struct conn **lists[] = { &c->env->job_waiters, &c->env->job_retrying };

	if (!(c->flags & CONN_RETRY_LISTED))
		return;
	for (int i = 0; i < 2; i++)
		for (struct conn **p = lists[i]; *p; p = &(*p)->jobs->wait_next)
			if (*p == c) {
				*p = c->jobs->wait_next;
				c->jobs->wait_next = NULL;
				c->flags &= ~CONN_RETRY_LISTED;
				return;
			}
}

/* The handler may go on: read again and present the kept input. */
static void conn_job_resume(struct conn *c)
{
	conn_unlist(c);
	c->flags &= ~CONN_JOB_WAIT;
	if (c->flags & (CONN_CLOSING | CONN_BROKEN))
		return;
	if (!(c->flags & (CONN_PAUSED | CONN_HELD)))
		bufferevent_enable(c->bev, EV_READ);
	if (c->pending)
		conn_input(c, NULL, 0);	/* may free @c */
}

static void conn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn_env *env = arg;
	struct conn *c;

	/* Moved aside first: a resumed connection may wait again (on the
	 * emptied list, for the next round), and a handler may free
	 * another waiting connection, which conn_unlist() then finds. */
	env->job_retrying = env->job_waiters;
	env->job_waiters = NULL;
	while ((c = env->job_retrying)) {
		env->job_retrying = c->jobs->wait_next;
		c->jobs->wait_next = NULL;
		c->flags &= ~CONN_RETRY_LISTED;
		conn_job_resume(c);
	}
	conn_env_flush(env);
}

bool conn_env_job_done(struct conn_env *env, uint64_t id, uint64_t seq,
    char *data, size_t len, bool failed)
{
	struct conn *c = conn_env_find(env, id);
	struct conn_slot *sl;

	if (!c) {
		stat_add(&env->stats.msgs_dropped, 1);
		free(data);
		return false;
	}
	for (sl = c->jobs ? c->jobs->head : NULL; sl && sl->seq != seq;
	    sl = sl->next)
		;
	if (!sl || sl->ready) {
		free(data);
		return false;
	}
	free(sl->data);
	sl->data = data;
	sl->len = sl->cap = len;
	sl->ready = true;
	sl->cancel = NULL;
	c->jobs->bytes += len;
	if (--c->jobs->in_flight == 0)
		conn_jobs_idle_timer(c, true);
	if (failed)
		conn_break(c, ENOMEM);
	conn_slots_flush(c);
	if (c->flags & (CONN_BROKEN | CONN_ABORTED))
		return true;	/* freed from its read callback */
	if (c->flags & CONN_CLOSING) {
		if (!c->jobs->head)
			conn_close_output(c);
		return true;
	}
	if (c->flags & CONN_JOB_WAIT)
		conn_job_resume(c);
	return true;
}

/* @c is being freed: every job still out is told so, and what its
 * slots hold is dropped.  Returns the bytes dropped. */
size_t conn_jobs_free(struct conn *c)
{
	struct conn_jobs *j = c->jobs;
	size_t dropped = j->bytes;

	conn_unlist(c);
	while (j->head) {
		struct conn_slot *sl = j->head;

		j->head = sl->next;
		if (sl->cancel)
			atomic_store_explicit(sl->cancel, true,
			    memory_order_release);
		conn_slot_free(sl);
	}
	free(j);
	c->jobs = NULL;
	return dropped;
}
