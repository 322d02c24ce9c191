/*
 * Worker threads and their hand-off from the main thread; see worker.h for
 * the design.
 */
#include "worker.h"

#include "conn.h"
#include "log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * One read takes up to this much from a socket.  libevent's own reads stop
 * at 4 KiB (docs/design.md, fact 1); a large read is what makes bulk echo
 * fast, and the buffer is per worker, so it costs nothing per connection.
 * 64 KiB was tried against this size, because a buffer that outgrows the
 * cache can cost more than the syscalls it saves (fact 11), and was
 * slower here; docs/design.md, "Read size", has the figures.
 */
#define WORKER_READ_SIZE (256 * 1024)

/* A half-closed client gets this long without progress to read what it is
 * owed, when --write-timeout is off. */
#define WORKER_FLUSH_TIMEOUT 30.0

static struct timeval seconds_tv(double s)
{
	struct timeval tv;

	tv.tv_sec = (time_t)s;
	tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
	return tv;
}

static const struct timeval *common_timeout(struct event_base *base,
    double seconds)
{
	struct timeval tv = seconds_tv(seconds);

	return seconds > 0 ? event_base_init_common_timeout(base, &tv) : NULL;
}

static void worker_begin_stop(struct worker *w)
{
	struct timeval grace = seconds_tv(w->cfg->grace);
	struct conn *c, *next;

	w->env.stopping = true;
	for (c = w->env.conns; c; c = next) {
		next = conn_next(c);
		conn_close(c);
	}
	if (!w->env.conns) {
		event_base_loopexit(w->env.base, NULL);
		return;
	}
	evtimer_add(w->grace_timer, &grace);
}

/* The grace period is over: whatever is still unsent is dropped (and
 * counted), so that shutdown is bounded.  Freeing the last connection ends
 * the loop (conn_free()). */
static void worker_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	int n = 0;

	while (w->env.conns) {
		conn_free(w->env.conns);
		n++;
	}
	log_warn("worker %d: grace period over, closed %d connections with "
	    "unsent output", w->id, n);
}

static void worker_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct cq_item *it;
	char buf[64];

	/* One read is enough: a leftover byte only means one more (empty)
	 * wake-up.  Read before draining, so that an item pushed after the
	 * drain always comes with a byte still to read. */
	if (read(fd, buf, sizeof(buf)) < 0 && errno != EAGAIN)
		log_warn("worker %d: notify pipe: %s", w->id, strerror(errno));
	stat_add(&w->env.stats.wakeups, 1);

	while ((it = conn_queue_pop(&w->queue))) {
		struct cq_item item = *it;

		conn_queue_item_free(&w->queue, it);
		switch (item.type) {
		case CQ_NEW_CONN:
			if (w->env.stopping) {
				close(item.fd);
				atomic_fetch_sub(w->cfg->conns_now, 1);
			} else {
				conn_new(&w->env, item.fd, item.listen);
			}
			break;
		case CQ_STOP:
			if (!w->env.stopping)
				worker_begin_stop(w);
			break;
		case CQ_CALL:
			item.fn(&w->env, item.arg);
			break;
		case CQ_REPLY:
			conn_env_reply(&w->env, item.conn_id, item.data,
			    item.len);
			free(item.data);
			break;
		case CQ_WAKE:
			conn_env_wake(&w->env, item.conn_id);
			break;
		}
		/* What a message replied goes out now, not after the next
		 * one: each is a batch of its own. */
		conn_env_flush(&w->env);
	}
}

int worker_init(struct worker *w, int id, const struct worker_config *cfg)
{
	struct event_config *ec = NULL;
	int fds[2] = { -1, -1 };

	memset(w, 0, sizeof(*w));
	w->id = id;
	w->cfg = cfg;
	w->env.index = id;
	idmap_init(&w->env.ids);
	w->notify_recv = w->notify_send = -1;
	if (conn_queue_init(&w->queue)) {
		log_error("worker %d: cannot create its queue", id);
		return -1;
	}
	ec = event_config_new();
	if (!ec || event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK))
		goto fail;
	w->env.base = event_base_new_with_config(ec);
	event_config_free(ec);
	ec = NULL;
	if (!w->env.base)
		goto fail;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC)) {
		log_error("worker %d: cannot create its notify pipe: %s", id,
		    strerror(errno));
		goto fail;
	}
	w->notify_recv = fds[0];
	w->notify_send = fds[1];
	w->notify_event = event_new(w->env.base, w->notify_recv,
	    EV_READ | EV_PERSIST, worker_notify_cb, w);
	w->grace_timer = evtimer_new(w->env.base, worker_grace_cb, w);
	w->env.rbuf_size = WORKER_READ_SIZE;
	w->env.rbuf = malloc(w->env.rbuf_size);
	w->env.high_water = cfg->high_water;
	w->env.low_water = cfg->low_water;
	w->env.proto_cfg = cfg->proto_cfg;
	w->env.conns_now = cfg->conns_now;
	w->stop_item = conn_queue_item_new(&w->queue);
	if (!w->notify_event || !w->grace_timer || !w->env.rbuf ||
	    !w->stop_item ||
	    event_add(w->notify_event, NULL))
		goto fail;
	w->env.idle_tv = common_timeout(w->env.base, cfg->idle_timeout);
	w->env.write_tv = common_timeout(w->env.base, cfg->write_timeout);
	w->env.flush_tv = w->env.write_tv ? w->env.write_tv :
	    common_timeout(w->env.base, WORKER_FLUSH_TIMEOUT);
	if ((cfg->idle_timeout > 0 && !w->env.idle_tv) ||
	    (cfg->write_timeout > 0 && !w->env.write_tv) || !w->env.flush_tv)
		goto fail;
	return 0;

fail:
	log_error("worker %d: cannot set up its event loop", id);
	if (ec)
		event_config_free(ec);
	worker_release(w);
	return -1;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	sigset_t set;

	/* Signals belong to the main thread's event loop. */
	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (event_base_dispatch(w->env.base) < 0)
		log_error("worker %d: event loop failed", w->id);
	return NULL;
}

int worker_start(struct worker *w)
{
	char name[16];
	int rc = pthread_create(&w->thread, NULL, worker_main, w);

	if (rc)
		return -rc;
	w->started = true;
	snprintf(name, sizeof(name), "echo-worker-%d", w->id);
	pthread_setname_np(w->thread, name);
	return 0;
}

/* Wakes the worker.  A full pipe already holds a wake-up, so EAGAIN is
 * success. */
static int worker_notify(struct worker *w)
{
	for (;;) {
		if (write(w->notify_send, "", 1) == 1 || errno == EAGAIN)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static int worker_push(struct worker *w, struct cq_item *it)
{
	int rc;

	if (!conn_queue_push(&w->queue, it))
		return 0;	/* already non-empty: a wake-up is pending */
	rc = worker_notify(w);
	if (rc == 0)
		return 0;
	/* The worker might sleep through this item.  Take it back if it is
	 * still queued, so the caller keeps ownership and can clean up;
	 * if the worker already took it, it is being served. */
	log_error("worker %d: cannot notify: %s", w->id, strerror(-rc));
	if (!conn_queue_remove(&w->queue, it))
		return 0;
	conn_queue_item_free(&w->queue, it);
	return rc;
}

int worker_post(struct worker *w, struct cq_item *it)
{
	return worker_push(w, it);
}

int worker_dispatch(struct worker *w, int fd, const struct conn_listen *l)
{
	struct cq_item *it = conn_queue_item_new(&w->queue);

	if (!it)
		return -ENOMEM;
	it->type = CQ_NEW_CONN;
	it->fd = fd;
	it->listen = l;
	return worker_push(w, it);
}

int worker_stop(struct worker *w)
{
	struct cq_item *it = w->stop_item;

	w->stop_item = NULL;
	if (!it)
		return -EALREADY;
	it->type = CQ_STOP;
	return worker_push(w, it);
}

void worker_join(struct worker *w)
{
	if (w->started)
		pthread_join(w->thread, NULL);
	w->started = false;
}

void worker_release(struct worker *w)
{
	struct cq_item *it;

	while (w->env.conns)
		conn_free(w->env.conns);
	/* Connections handed over but never served, and messages that
	 * came too late: a call still runs (its function owns its
	 * argument; msg_call()), with no connection left to find. */
	while ((it = conn_queue_pop(&w->queue))) {
		if (it->type == CQ_NEW_CONN) {
			close(it->fd);
			atomic_fetch_sub(w->cfg->conns_now, 1);
		} else if (it->type == CQ_CALL) {
			it->fn(&w->env, it->arg);
		} else if (it->type == CQ_REPLY || it->type == CQ_WAKE) {
			stat_add(&w->env.stats.msgs_dropped, 1);
			free(it->data);
		}
		conn_queue_item_free(&w->queue, it);
	}
	conn_env_release(&w->env);
	if (w->stop_item)
		conn_queue_item_free(&w->queue, w->stop_item);
	if (w->notify_event)
		event_free(w->notify_event);
	if (w->grace_timer)
		event_free(w->grace_timer);
	if (w->env.base)
		event_base_free(w->env.base);
	if (w->notify_recv >= 0)
		close(w->notify_recv);
	if (w->notify_send >= 0)
		close(w->notify_send);
	free(w->env.rbuf);
	conn_queue_release(&w->queue);
	memset(w, 0, sizeof(*w));
	w->notify_recv = w->notify_send = -1;
}
