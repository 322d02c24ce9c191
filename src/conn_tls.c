/*
 * TLS (see conn.h): the transport of a tls+ listener's connections.  The
 * bufferevent_openssl reads, decrypts and writes; these callbacks connect
 * it to the same handler path as the fast one.  The handshake, with its
 * own deadline, comes before the handler's open(); OpenSSL itself is
 * behind tls.h.
 */
#include "conn.h"
#include "conn_impl.h"

#include "log.h"
#include "tls.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <string.h>

/* A batch for a TLS connection: one contiguous copy into the output
 * buffer, which bufferevent_openssl encrypts and writes at once (its
 * output callback runs inside the commit, so any error callback it makes
 * finds CONN_WRITING set and only marks the connection). */
void conn_tls_writev(struct conn *c, const struct iovec *iov, int n,
    size_t len)
{
	struct conn_env *env = c->env;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer_iovec v;
	char *p;

	if (evbuffer_reserve_space(out, (ev_ssize_t)len, &v, 1) != 1) {
		conn_break(c, ENOMEM);
		return;
	}
	p = v.iov_base;
	for (int i = 0; i < n; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	v.iov_len = len;
	stat_add(&env->stats.bytes_out, len);
	c->bytes_out += len;
	c->flags |= CONN_WRITING;
	if (evbuffer_commit_space(out, &v, 1))
		conn_break(c, ENOMEM);
	c->flags &= ~CONN_WRITING;
	if (c->flags & CONN_BROKEN)
		return;
	if (evbuffer_get_length(out) > env->high_water) {
		if (!(c->flags & CONN_PAUSED))
			conn_pause(c);
	} else if ((c->flags & CONN_PAUSED) &&
	    evbuffer_get_length(out) <= env->low_water) {
		/* Drained during the commit, when the write callback was
		 * held off. */
		conn_resume(c);
	}
}

/*
 * Hands the decrypted input to the handler, a read buffer at a time;
 * input that arrives while closing is dropped, as a lingering close
 * does.  Returns true if @c is still open, false if it is closing or
 * gone.
 */
static bool conn_tls_drain(struct conn *c)
{
	struct conn_env *env = c->env;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t len;

	while ((len = evbuffer_get_length(in)) > 0) {
		int n;

		if (c->flags & CONN_CLOSING) {
			evbuffer_drain(in, len);
			return false;
		}
		n = evbuffer_remove(in, env->rbuf, env->rbuf_size);
		if (n <= 0)
			break;
		stat_add(&env->stats.bytes_in, (uint64_t)n);
		c->bytes_in += (uint64_t)n;
		if (conn_input(c, env->rbuf, (size_t)n))
			return false;
	}
	return !(c->flags & CONN_CLOSING);
}

/* Decrypted input arrived, or (CONN_TLS_EOF) the client's last bytes
 * are all in: the handler sees them, then the end of the stream. */
static void conn_tls_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (conn_reap(c))	/* broken outside a call (conn_break()) */
		return;
	if (conn_tls_drain(c) && (c->flags & CONN_TLS_EOF))
		conn_eof(c);
}

/* The handshake is done: the connection starts its ordinary timeouts,
 * and its handler opens. */
static void conn_tls_opened(struct conn *c)
{
	struct conn_env *env = c->env;

	event_free(c->handshake_timer);
	c->handshake_timer = NULL;
	c->flags &= ~CONN_HANDSHAKE;
	stat_add(&env->stats.tls_handshakes, 1);
	if (bufferevent_set_timeouts(c->bev, env->idle_tv, env->write_tv)) {
		conn_fail(c, "timeouts", ENOMEM);
		return;
	}
	conn_open(c, c->flags & CONN_PROXIED ? " (PROXY, TLS)" : " (TLS)");
}

/* The handshake took longer than --tls-handshake-timeout in all, however
 * the client spread its bytes (fact T7 is why this is a timer of its
 * own rather than the bufferevent's timeouts). */
static void conn_tls_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	stat_add(&c->env->stats.tls_handshake_timeouts, 1);
	log_verbose("closing connection fd %d: no tls handshake within the "
	    "timeout", c->fd);
	conn_free(c);
}

static void conn_tls_handshake_failed(struct conn *c, short what)
{
	struct conn_env *env = c->env;
	char why[128];

	if (what & BEV_EVENT_TIMEOUT) {
		stat_add(&env->stats.tls_handshake_timeouts, 1);
		log_verbose("closing connection fd %d: tls handshake timed "
		    "out", c->fd);
	} else {
		stat_add(&env->stats.tls_handshake_failures, 1);
		log_verbose("closing connection fd %d: tls handshake failed: "
		    "%s", c->fd, what & BEV_EVENT_EOF ? "closed by the client" :
		    tls_error(c->bev, why, sizeof(why)));
	}
	conn_free(c);
}

/*
 * The client ended its stream, with close_notify or (fact T1) without.
 * libevent has stopped writing as well as reading (fact T5), so writing
 * is turned back on: the client is still owed its replies.  The last
 * bytes the client sent may not have reached the input buffer yet: libevent
 * reports the EOF from inside the read that decrypted them, and commits
 * them and runs the read callback only after this returns (fact T3).  So
 * the EOF is only noted here, and the read callback, run once more
 * after libevent's own (deferred, so it is the last), hands the handler
 * the rest and then the EOF, as on the fast path.
 */
static void conn_tls_eof(struct conn *c)
{
	bufferevent_enable(c->bev, EV_WRITE);
	if (c->flags & CONN_LINGER) {
		conn_free(c);
		return;
	}
	if (c->flags & CONN_CLOSING) {
		/* Flushing already; no need to linger once it is out. */
		c->flags |= CONN_EOF;
		return;
	}
	c->flags |= CONN_TLS_EOF;
	bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
	    BEV_TRIG_DEFER_CALLBACKS);
}

static void conn_tls_event_cb(struct bufferevent *bev, short what,
    void *arg)
{
	struct conn *c = arg;
	struct conn_env *env = c->env;
	char why[128];

	if (what & BEV_EVENT_CONNECTED) {
		conn_tls_opened(c);
		return;
	}
	if (c->flags & CONN_HANDSHAKE) {
		conn_tls_handshake_failed(c, what);
		return;
	}
	if ((c->flags & CONN_WRITING) || env->batch.owner == c) {
		/* Under a write or a handler: freed after it (conn_reap). */
		conn_break(c, EPIPE);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
		conn_event_cb(bev, what, arg);
	} else if (what & BEV_EVENT_TIMEOUT) {
		if (!(c->flags & CONN_LINGER)) {
			stat_add(&env->stats.idle_timeouts, 1);
			log_verbose("closing idle connection fd %d", c->fd);
			tls_close_notify(c->bev);
		}
		conn_free(c);
	} else if (what & BEV_EVENT_EOF) {
		conn_tls_eof(c);
	} else if (c->flags & CONN_LINGER) {
		conn_free(c);
	} else {
		stat_add(&env->stats.errors, 1);
		log_verbose("closing connection fd %d: tls: %s", c->fd,
		    tls_error(bev, why, sizeof(why)));
		conn_free(c);
	}
}

/* Sets up a TLS connection on @fd; returns 0, or -1 (c->bev, if set,
 * owns @fd). */
int conn_tls_setup(struct conn *c, int fd)
{
	struct conn_env *env = c->env;

	c->flags |= CONN_TLS | CONN_HANDSHAKE;
	c->bev = tls_bufferevent_new(c->listen->tls, env->base, fd);
	if (!c->bev)
		return -1;
	bufferevent_setcb(c->bev, conn_tls_read_cb, conn_write_cb,
	    conn_tls_event_cb, c);
	c->handshake_timer = evtimer_new(env->base, conn_tls_deadline_cb, c);
	if (!c->handshake_timer ||
	    evtimer_add(c->handshake_timer, env->handshake_tv) ||
	    bufferevent_set_max_single_write(c->bev, CONN_MAX_SINGLE_WRITE) ||
	    bufferevent_enable(c->bev, EV_READ | EV_WRITE))
		return -1;
	return 0;
}

/*
 * A proxy+tls+ connection has its PROXY header (the handshake is still
 * unread in the socket, conn_header_take()): the socket bufferevent that
 * read the header gives the socket to a TLS one.  It is detached from
 * the fd first, so that freeing it does not close it.
 */
void conn_tls_setup_after_header(struct conn *c)
{
	bufferevent_setfd(c->bev, -1);
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (conn_tls_setup(c, c->fd))
		conn_fail(c, "starting tls after the PROXY header", ENOMEM);
}
