/*
 * Client connections: the echo fast path, backpressure, half-close and
 * flush-before-free.  See conn.h for the design.
 */
#include "conn.h"

#include "log.h"
#include "worker.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

enum conn_flags {
	CONN_PAUSED = 1 << 0,	/* reading stopped by backpressure */
	CONN_CLOSING = 1 << 1,	/* flushing, then free */
	CONN_EOF = 1 << 2,	/* the client shut down its write side */
	CONN_LINGER = 1 << 3,	/* sent FIN; discarding input until EOF */
};

struct conn {
	struct bufferevent *bev;
	struct worker *worker;
	struct conn *prev, *next;	/* worker->conns */
	int fd;
	unsigned flags;
};

struct conn *conn_next(const struct conn *c)
{
	return c->next;
}

static size_t conn_pending(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

void conn_free(struct conn *c)
{
	struct worker *w = c->worker;
	size_t pending = conn_pending(c);

	if (pending) {
		/* bytes_out counted these when they were queued. */
		stat_add(&w->stats.dropped_bytes, pending);
		stat_add(&w->stats.bytes_out, (uint64_t)0 - pending);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	bufferevent_free(c->bev);	/* closes the fd */
	free(c);
	stat_add(&w->stats.conns_closed, 1);
	atomic_fetch_sub(w->cfg->conns_now, 1);
	if (!w->conns)
		worker_conns_gone(w);
}

static void conn_fail(struct conn *c, const char *what, int err)
{
	stat_add(&c->worker->stats.errors, 1);
	log_verbose("closing connection fd %d: %s: %s", c->fd, what,
	    strerror(err));
	conn_free(c);
}

static void conn_pause(struct conn *c)
{
	c->flags |= CONN_PAUSED;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, c->worker->cfg->low_water,
	    0);
}

static void conn_resume(struct conn *c)
{
	c->flags &= ~CONN_PAUSED;
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	if (!(c->flags & CONN_CLOSING))
		bufferevent_enable(c->bev, EV_READ);
}

void conn_send(struct conn *c, const void *buf, size_t len)
{
	struct worker *w = c->worker;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t pending = evbuffer_get_length(out);
	const char *p = buf;

	if (pending == 0) {
		/* Eager write: saves arming EV_WRITE and a loop turn. */
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				conn_fail(c, "write", errno);
				return;
			}
			n = 0;
		}
		stat_add(&w->stats.bytes_out, (uint64_t)n);
		if ((size_t)n == len)
			return;
		p += n;
		len -= (size_t)n;
	}
	if (evbuffer_add(out, p, len)) {
		conn_fail(c, "buffering output", ENOMEM);
		return;
	}
	stat_add(&w->stats.bytes_out, len);
	if (!(bufferevent_get_enabled(c->bev) & EV_WRITE)) {
		/* Enabled on first use, not at connect: enabling it with
		 * nothing to write costs two epoll_ctl calls. */
		bufferevent_enable(c->bev, EV_WRITE);
	}
	if (pending + len > w->cfg->high_water && !(c->flags & CONN_PAUSED))
		conn_pause(c);
}

/*
 * The output buffer is empty.  close() is clean if the client already sent
 * EOF, or if the kernel holds neither unacknowledged output nor unread
 * input.  Otherwise close() would send RST, which discards the reply's
 * unacknowledged tail and shows the client a reset instead of EOF; so send
 * FIN with shutdown() and discard input until the client's EOF, as nginx's
 * lingering close does.  The flush timeout (or the grace period) bounds it.
 */
static void conn_finish(struct conn *c)
{
	int unacked = 0, unread = 0;

	if ((c->flags & CONN_EOF) ||
	    ioctl(c->fd, SIOCOUTQ, &unacked) || ioctl(c->fd, FIONREAD, &unread) ||
	    (unacked == 0 && unread == 0) || shutdown(c->fd, SHUT_WR)) {
		conn_free(c);
		return;
	}
	c->flags |= CONN_LINGER;
	bufferevent_set_timeouts(c->bev, c->worker->flush_tv, NULL);
	bufferevent_enable(c->bev, EV_READ);
}

void conn_close(struct conn *c)
{
	if (c->flags & CONN_CLOSING)
		return;
	c->flags |= CONN_CLOSING;
	bufferevent_disable(c->bev, EV_READ);
	if (conn_pending(c) == 0) {
		conn_finish(c);
		return;
	}
	/* Finish on the write callback once the output is empty; give up if
	 * the client reads nothing for flush_tv. */
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->bev, NULL, c->worker->flush_tv);
}

/* Lingering: the reply is on its way; input is read only to be dropped. */
static void conn_linger_read(struct conn *c, short what)
{
	struct worker *w = c->worker;
	ssize_t n = (what & EV_TIMEOUT) ? 0 :
	    read(c->fd, w->rbuf, w->rbuf_size);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		conn_free(c);
}

/* The event's argument is the bufferevent, as libevent's own is: its
 * finalizer runs with that argument after bufferevent_free(). */
static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bufferevent *bev = arg;
	struct conn *c = bev->cbarg;
	struct worker *w = c->worker;
	ssize_t n;

	if (c->flags & CONN_LINGER) {
		conn_linger_read(c, what);
		return;
	}
	if (what & EV_TIMEOUT) {
		stat_add(&w->stats.idle_timeouts, 1);
		log_verbose("closing idle connection fd %d", c->fd);
		conn_free(c);
		return;
	}
	n = read(fd, w->rbuf, w->rbuf_size);
	if (n > 0) {
		stat_add(&w->stats.bytes_in, (uint64_t)n);
		conn_send(c, w->rbuf, (size_t)n);
	} else if (n == 0) {
		/* Half-close: the client still gets everything it sent. */
		c->flags |= CONN_EOF;
		conn_close(c);
	} else if (errno != EAGAIN && errno != EINTR) {
		conn_fail(c, "read", errno);
	}
}

/* libevent calls this when the output has drained to the low-watermark. */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if ((c->flags & CONN_CLOSING) && conn_pending(c) == 0)
		conn_finish(c);
	else if (c->flags & CONN_PAUSED)
		conn_resume(c);
}

/* Only the write side reaches here: errors and write-stall timeouts. */
static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	struct worker *w = c->worker;

	if (what & BEV_EVENT_TIMEOUT) {
		stat_add(&w->stats.write_timeouts, 1);
		log_info("closing connection fd %d: client read none of its "
		    "%zu pending bytes in time", c->fd, conn_pending(c));
		conn_free(c);
	} else {
		conn_fail(c, "write", EVUTIL_SOCKET_ERROR());
	}
}

struct conn *conn_new(struct worker *w, int fd)
{
	struct conn *c = malloc(sizeof(*c));
	int one = 1;

	if (!c)
		goto fail;
	memset(c, 0, sizeof(*c));
	c->worker = w;
	c->fd = fd;
	/* Echo replies are small and latency-bound. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto fail;
	/* Take over the read side; see conn.h.  The event is not pending
	 * yet, so it may be re-assigned. */
	if (event_assign(&c->bev->ev_read, w->base, fd,
	    EV_READ | EV_PERSIST | EV_FINALIZE, conn_read_cb, c->bev))
		goto fail_bev;
	bufferevent_setcb(c->bev, NULL, conn_write_cb, conn_event_cb, c);
	if ((w->idle_tv || w->write_tv) &&
	    bufferevent_set_timeouts(c->bev, w->idle_tv, w->write_tv))
		goto fail_bev;
	if (bufferevent_enable(c->bev, EV_READ))
		goto fail_bev;

	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	stat_add(&w->stats.conns_opened, 1);
	return c;

fail_bev:
	bufferevent_free(c->bev);	/* closes fd */
	fd = -1;
fail:
	if (fd >= 0)
		close(fd);
	free(c);
	stat_add(&w->stats.errors, 1);
	atomic_fetch_sub(w->cfg->conns_now, 1);
	log_warn("worker %d: cannot set up a connection", w->id);
	return NULL;
}
