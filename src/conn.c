/*
 * Client connections: the socket transport under a protocol handler.  The
 * read takeover, kept input, gathered replies with the eager write,
 * backpressure, half-close and flush-before-free, and what other threads
 * ask of a connection through its worker (conn_env_*).  The PROXY header
 * phase is in conn_proxy.c, TLS in conn_tls.c and the ordered replies for
 * offloaded jobs in conn_jobs.c; conn_impl.h is what they share.  See
 * conn.h for the design and proto/proto.h for the handler's side of the
 * contract.
 */
#include "conn.h"
#include "conn_impl.h"

#include "log.h"
#include "netaddr.h"
#include "proto/proto.h"
#include "tls.h"

#include <errno.h>
#include <inttypes.h>
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

static void *conn_state(struct conn *c)
{
	return c->ops->state_size ? (char *)c + CONN_STATE_OFFSET : NULL;
}

struct conn *conn_next(const struct conn *c)
{
	return c->next;
}

const struct proto_config *conn_config(const struct conn *c)
{
	return c->env->proto_cfg;
}

void conn_count_requests(struct conn *c, uint64_t n)
{
	stat_add(&c->env->stats.requests, n);
}

const struct sockaddr *conn_peer(const struct conn *c, socklen_t *len)
{
	socklen_t n = netaddr_len(&c->peer.sa);

	if (len)
		*len = n;
	return n ? &c->peer.sa : NULL;
}

/* The client's address as text, for log lines. */
const char *conn_peer_text(const struct conn *c, char *buf,
    size_t size)
{
	if (netaddr_len(&c->peer.sa))
		netaddr_format(&c->peer.sa, buf, size);
	else
		snprintf(buf, size, "(unknown)");
	return buf;
}

size_t conn_output_len(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Forgets the replies gathered for @c outside a handler call, and
 * returns how many bytes they were. */
static size_t conn_batch_drop(struct conn *c)
{
	struct conn_batch *b = &c->env->batch;
	size_t len = b->len;

	if (b->owner != c)
		return 0;
	b->owner = NULL;
	b->loose = false;
	b->n_iov = 0;
	b->len = 0;
	b->copied = 0;
	return len;
}

void conn_free(struct conn *c)
{
	struct conn_env *env = c->env;
	size_t pending = conn_output_len(c);
	size_t gathered = conn_batch_drop(c);

	/* A connection still awaiting its PROXY header never reached the
	 * handler, so there is nothing to release. */
	if (c->ops->release && !(c->flags & CONN_HEADER))
		c->ops->release(c, conn_state(c));
	idmap_del(&env->ids, c->id);
	if (c->jobs)
		gathered += conn_jobs_free(c);
	if (gathered)
		stat_add(&env->stats.dropped_bytes, gathered);
	if (pending) {
		/* bytes_out counted these when they were queued. */
		stat_add(&env->stats.dropped_bytes, pending);
		stat_add(&env->stats.bytes_out, (uint64_t)0 - pending);
		c->bytes_out -= pending;
	}
	if (!(c->flags & CONN_HEADER) && log_enabled(LL_VERBOSE)) {
		char peer[NETADDR_STRLEN];

		log_verbose("connection fd %d closed: client %s, %" PRIu64
		    " bytes in, %" PRIu64 " out", c->fd,
		    conn_peer_text(c, peer, sizeof(peer)), c->bytes_in,
		    c->bytes_out);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		env->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->flags & CONN_HANDSHAKE) {
		if (c->handshake_timer)
			event_free(c->handshake_timer);
		c->handshake_timer = NULL;
	}
	if (c->bev)
		bufferevent_free(c->bev);	/* closes the fd */
	else
		close(c->fd);	/* between a PROXY header and TLS */
	free(c->pending);
	free(c->header);
	free(c);
	stat_add(&env->stats.conns_closed, 1);
	atomic_fetch_sub(env->conns_now, 1);
	if (!env->conns && env->stopping)
		event_base_loopexit(env->base, NULL);
}

void conn_fail(struct conn *c, const char *what, int err)
{
	stat_add(&c->env->stats.errors, 1);
	log_verbose("closing connection fd %d: %s: %s", c->fd, what,
	    strerror(err));
	conn_free(c);
}

void conn_pause(struct conn *c)
{
	c->flags |= CONN_PAUSED;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, c->env->low_water, 0);
}

void conn_resume(struct conn *c)
{
	c->flags &= ~CONN_PAUSED;
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	if (!(c->flags & (CONN_CLOSING | CONN_JOB_WAIT | CONN_HELD)))
		bufferevent_enable(c->bev, EV_READ);
}

/* A write failed.  The connection is freed by whoever called the
 * handler, never under it. */
void conn_break(struct conn *c, int err)
{
	struct conn_batch *b = &c->env->batch;

	if (c->flags & CONN_BROKEN)
		return;
	c->flags |= CONN_BROKEN;
	log_verbose("connection fd %d: write: %s", c->fd, strerror(err));
	/* Outside its own handler call nobody reaps it afterwards, and
	 * whoever replied may still hold it: let its read callback free
	 * it, on a later turn of the loop, even if reading is off
	 * (docs/design.md, fact X1). */
	if (b->owner == c && !b->loose)
		return;
	if (c->flags & CONN_TLS)	/* its read callback is libevent's */
		bufferevent_trigger(c->bev, EV_READ,
		    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	else
		event_active(&c->bev->ev_read, EV_READ, 0);
}

/*
 * Sends @len bytes in @iov[@n] (borrowed): straight to the socket while
 * nothing is pending before them, the rest into the output buffer.
 */
void conn_writev(struct conn *c, struct iovec *iov, int n, size_t len)
{
	struct conn_env *env = c->env;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t pending = evbuffer_get_length(out);
	size_t sent = 0;

	if (c->flags & CONN_BROKEN)
		return;
	if (c->flags & CONN_TLS) {
		conn_tls_writev(c, iov, n, len);
		return;
	}
	if (pending == 0) {
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = n == 1 ?
		    send(c->fd, iov[0].iov_base, len, MSG_NOSIGNAL) :
		    sendmsg(c->fd, &msg, MSG_NOSIGNAL);

		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			conn_break(c, errno);
			return;
		}
		sent = w > 0 ? (size_t)w : 0;
	}
	stat_add(&env->stats.bytes_out, len);
	c->bytes_out += len;
	if (sent == len)
		return;
	for (int i = 0; i < n; i++) {
		size_t skip = sent < iov[i].iov_len ? sent : iov[i].iov_len;

		sent -= skip;
		if (iov[i].iov_len > skip && evbuffer_add(out,
		    (char *)iov[i].iov_base + skip, iov[i].iov_len - skip)) {
			conn_break(c, ENOMEM);
			return;
		}
	}
	if (!(bufferevent_get_enabled(c->bev) & EV_WRITE)) {
		/* Enabled on first use, not at connect: enabling it with
		 * nothing to write costs two epoll_ctl calls. */
		bufferevent_enable(c->bev, EV_WRITE);
	}
	if (evbuffer_get_length(out) > env->high_water &&
	    !(c->flags & CONN_PAUSED))
		conn_pause(c);
}

/* Writes out what the batch holds, keeping it open for more.  The first
 * write after a timed read is the reply-latency observation. */
static void conn_batch_flush(struct conn_batch *b)
{
	if (b->n_iov) {
		conn_writev(b->owner, b->iov, b->n_iov, b->len);
		if (b->read_ns) {
			latency_observe(&b->owner->env->latency,
			    latency_now_ns() - b->read_ns);
			b->read_ns = 0;
		}
	}
	b->n_iov = 0;
	b->len = 0;
	b->copied = 0;
}

/* Opens the batch for @c's handler, whose input is @in (borrowed until
 * conn_batch_end()). */
static void conn_batch_end(struct conn *c);

static void conn_batch_begin(struct conn *c, const char *in, size_t len)
{
	struct conn_batch *b = &c->env->batch;

	if (b->owner)		/* replies gathered outside a call */
		conn_batch_end(b->owner);
	b->owner = c;
	b->loose = false;
	b->in = in;
	b->in_end = in + len;
}

static void conn_batch_end(struct conn *c)
{
	struct conn_batch *b = &c->env->batch;

	conn_batch_flush(b);
	b->owner = NULL;
	b->loose = false;
	b->in = b->in_end = NULL;
}

/* Makes room for one more piece of which @copy bytes are copied, by
 * writing out what the batch holds if it is full. */
static void conn_batch_room(struct conn_batch *b, size_t copy)
{
	if (b->n_iov == CONN_BATCH_IOV || copy > sizeof(b->copy) - b->copied)
		conn_batch_flush(b);
}

/* Appends a piece, merging it with the last when they are adjacent in
 * memory (consecutive lines of one read, say).  Call conn_batch_room()
 * first. */
static void conn_batch_add(struct conn_batch *b, const char *p, size_t len)
{
	struct iovec *last = b->n_iov ? &b->iov[b->n_iov - 1] : NULL;

	if (last && (char *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
	} else {
		b->iov[b->n_iov].iov_base = (void *)p;
		b->iov[b->n_iov].iov_len = len;
		b->n_iov++;
	}
	b->len += len;
}

void conn_reply(struct conn *c, const void *buf, size_t len)
{
	struct conn_batch *b = &c->env->batch;
	const char *p = buf;

	if (len == 0 || (c->flags & CONN_BROKEN))
		return;
	if (c->jobs && c->jobs->head) {
		/* Behind a job's result still to come. */
		conn_slot_append(c, p, len);
		return;
	}
	if (b->owner != c && b->owner && !b->loose) {
		/* Inside another connection's handler call, whose batch
		 * this cannot join. */
		struct iovec iov = { (void *)p, len };

		conn_writev(c, &iov, 1, len);
		return;
	}
	if (b->owner != c) {
		/* Outside a handler call: gather until the worker moves on
		 * (proto.h, "Replying outside a handler call"). */
		if (b->owner)
			conn_batch_end(b->owner);
		b->owner = c;
		b->loose = true;
		b->in = b->in_end = NULL;
	}
	if (p >= b->in && p < b->in_end) {
		/* The handler's own input lives until the batch ends. */
		conn_batch_room(b, 0);
		conn_batch_add(b, p, len);
		return;
	}
	if (len > sizeof(b->copy)) {
		/* Too big to copy here; @buf is valid until we return. */
		struct iovec iov = { (void *)p, len };

		conn_batch_flush(b);
		conn_writev(c, &iov, 1, len);
		return;
	}
	conn_batch_room(b, len);
	memcpy(b->copy + b->copied, p, len);
	conn_batch_add(b, b->copy + b->copied, len);
	b->copied += len;
}

/*
 * After a handler call: frees @c if a write failed.  Returns true if @c
 * is gone.
 */
bool conn_reap(struct conn *c)
{
	if (!(c->flags & (CONN_BROKEN | CONN_ABORTED)))
		return false;
	if (c->flags & CONN_BROKEN)
		stat_add(&c->env->stats.errors, 1);
	conn_free(c);
	return true;
}

/*
 * Keeps the @len bytes at @rest that data() left, in c->pending (which
 * @rest may already lie in).  Returns 0, 1 if they are over the handler's
 * cap, or -1 if memory ran out.
 */
static int conn_keep(struct conn *c, const char *rest, size_t len)
{
	struct conn_pending *p = c->pending;

	if (len == 0) {
		free(p);
		c->pending = NULL;
		return 0;
	}
	if (len > c->ops->max_pending)
		return 1;
	if (p && rest >= p->buf && rest < p->buf + p->len) {
		memmove(p->buf, rest, len);
		p->len = len;
		return 0;
	}
	/* New: the input came straight from the read buffer. */
	p = c->pending = malloc(sizeof(*p) + (len < 1024 ? 1024 : len));
	if (!p)
		return -1;
	p->cap = len < 1024 ? 1024 : len;
	memcpy(p->buf, rest, len);
	p->len = len;
	return 0;
}

/* Appends @len bytes of @buf to the kept input.  Returns 0 or -1. */
static int conn_pending_append(struct conn *c, const char *buf, size_t len)
{
	struct conn_pending *p = c->pending;

	if (p->cap - p->len < len) {
		size_t cap = p->cap * 2 > p->len + len ? p->cap * 2 :
		    p->len + len;
		struct conn_pending *np = realloc(p, sizeof(*p) + cap);

		if (!np)
			return -1;
		p = c->pending = np;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, buf, len);
	p->len += len;
	return 0;
}

/* Bytes arrived: hand them, after any kept input, to the handler.
 * Returns true if @c was closed or freed meanwhile. */
bool conn_input(struct conn *c, const char *buf, size_t n)
{
	const char *in = buf;
	size_t len = n;
	ssize_t used;
	int rc;

	if (c->pending) {
		if (n > 0 && conn_pending_append(c, buf, n)) {
			conn_fail(c, "keeping input", ENOMEM);
			return true;
		}
		in = c->pending->buf;
		len = c->pending->len;
	}
	conn_batch_begin(c, in, len);
	used = c->ops->data(c, conn_state(c), in, len);
	conn_batch_end(c);
	if (conn_reap(c))
		return true;
	if (used == PROTO_CLOSE) {
		conn_close(c);
		return true;
	}
	if (used < 0 || (size_t)used > len) {
		log_error("handler '%s' consumed %zd of %zu bytes; closing",
		    c->ops->name, used, len);
		conn_fail(c, "handler", EPROTO);
		return true;
	}
	rc = conn_keep(c, in + used, len - (size_t)used);
	if (rc < 0) {
		conn_fail(c, "keeping input", ENOMEM);
	} else if (rc > 0) {
		stat_add(&c->env->stats.input_overflows, 1);
		log_verbose("closing connection fd %d: %zu bytes of "
		    "unconsumed input, over the '%s' handler's limit", c->fd,
		    len - (size_t)used, c->ops->name);
		conn_close(c);
	}
	return rc != 0;
}

/* The client shut down its sending side: it still gets everything it is
 * owed, and the handler sees what it left unconsumed. */
void conn_eof(struct conn *c)
{
	struct conn_pending *p = c->pending;

	c->flags |= CONN_EOF;
	if (c->ops->eof) {
		const char *in = p ? p->buf : NULL;
		size_t len = p ? p->len : 0;

		conn_batch_begin(c, in, len);
		c->ops->eof(c, conn_state(c), in, len);
		conn_batch_end(c);
		if (conn_reap(c))
			return;
	}
	conn_keep(c, NULL, 0);
	conn_close(c);
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
	bool clean = (c->flags & CONN_EOF) ||
	    ioctl(c->fd, SIOCOUTQ, &unacked) || ioctl(c->fd, FIONREAD, &unread) ||
	    (unacked == 0 && unread == 0);

	/* A TLS client is told the stream ended, not cut (fact T2). */
	if (c->flags & CONN_TLS)
		tls_close_notify(c->bev);
	if (clean || shutdown(c->fd, SHUT_WR)) {
		conn_free(c);
		return;
	}
	c->flags |= CONN_LINGER;
	bufferevent_set_timeouts(c->bev, c->env->flush_tv, NULL);
	bufferevent_enable(c->bev, EV_READ);
}

void conn_close(struct conn *c)
{
	struct conn_batch *b = &c->env->batch;

	if (c->flags & CONN_CLOSING)
		return;
	if (c->flags & CONN_HANDSHAKE) {
		/* Nothing is owed before the handshake ends. */
		conn_free(c);
		return;
	}
	if (b->owner == c && b->loose)
		conn_batch_end(c);	/* its replies go before the close */
	c->flags |= CONN_CLOSING;
	bufferevent_disable(c->bev, EV_READ);
	if (c->jobs && c->jobs->head)
		return;		/* conn_env_job_done() goes on */
	conn_close_output(c);
}

/* Closing, with every reply in the output buffer: flush it, then free. */
void conn_close_output(struct conn *c)
{
	if (conn_output_len(c) == 0) {
		conn_finish(c);
		return;
	}
	/* Finish on the write callback once the output is empty; give up if
	 * the client reads nothing for flush_tv. */
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->bev, NULL, c->env->flush_tv);
}

/* Lingering: the reply is on its way; input is read only to be dropped. */
static void conn_linger_read(struct conn *c, short what)
{
	struct conn_env *env = c->env;
	ssize_t n = (what & EV_TIMEOUT) ? 0 :
	    read(c->fd, env->rbuf, env->rbuf_size);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		conn_free(c);
}

/* The event's argument is the bufferevent, as libevent's own is: its
 * finalizer runs with that argument after bufferevent_free(). */
static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bufferevent *bev = arg;
	struct conn *c = bev->cbarg;
	struct conn_env *env = c->env;
	ssize_t n;

	if (conn_reap(c))	/* broken or aborted outside a call */
		return;
	if (c->flags & (CONN_LINGER | CONN_HEADER)) {
		if (c->flags & CONN_LINGER)
			conn_linger_read(c, what);
		else
			conn_header_read(c, what);
		return;
	}
	if (what & EV_TIMEOUT) {
		stat_add(&env->stats.idle_timeouts, 1);
		log_verbose("closing idle connection fd %d", c->fd);
		conn_free(c);
		return;
	}
	n = read(fd, env->rbuf, env->rbuf_size);
	if (n > 0) {
		stat_add(&env->stats.bytes_in, (uint64_t)n);
		c->bytes_in += (uint64_t)n;
		/* One clock read per read, and one more per reply written
		 * (conn_batch_flush); docs/design.md, "The latency hook",
		 * has the cost. */
		if (env->measure_latency)
			env->batch.read_ns = latency_now_ns();
		conn_input(c, env->rbuf, (size_t)n);
		env->batch.read_ns = 0;	/* no reply: nothing to time */
	} else if (n == 0) {
		conn_eof(c);
	} else if (errno != EAGAIN && errno != EINTR) {
		conn_fail(c, "read", errno);
	}
}

/* libevent calls this when the output has drained to the low-watermark. */
void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->flags & CONN_WRITING)
		return;		/* conn_tls_writev() looks for itself */
	if ((c->flags & CONN_CLOSING) && conn_output_len(c) == 0)
		conn_finish(c);
	else if (c->flags & CONN_PAUSED)
		conn_resume(c);
}

/* Only the write side reaches here: errors and write-stall timeouts. */
void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	struct conn_env *env = c->env;

	if (what & BEV_EVENT_TIMEOUT) {
		stat_add(&env->stats.write_timeouts, 1);
		log_info("closing connection fd %d: client read none of its "
		    "%zu pending bytes in time", c->fd, conn_output_len(c));
		conn_free(c);
	} else {
		conn_fail(c, "write", EVUTIL_SOCKET_ERROR());
	}
}

/* Lets the handler greet the client; @via (static) ends the log line.
 * Returns false if @c is gone, or closing (which may have freed it). */
bool conn_open(struct conn *c, const char *via)
{
	int rc;

	if (log_enabled(LL_VERBOSE)) {
		char peer[NETADDR_STRLEN];

		log_verbose("connection fd %d open: client %s%s", c->fd,
		    conn_peer_text(c, peer, sizeof(peer)), via);
	}
	if (!c->ops->open)
		return true;
	conn_batch_begin(c, NULL, 0);
	rc = c->ops->open(c, conn_state(c));
	conn_batch_end(c);
	if (conn_reap(c))
		return false;
	if (rc == PROTO_CLOSE) {
		conn_close(c);
		return false;
	}
	return true;
}

struct conn *conn_new(struct conn_env *env, int fd,
    const struct conn_listen *l)
{
	const struct proto_ops *ops = l->ops;
	size_t size = ops->state_size ? CONN_STATE_OFFSET + ops->state_size :
	    sizeof(struct conn);
	struct conn *c = calloc(1, size);
	int one = 1;

	if (!c)
		goto fail;
	c->env = env;
	c->listen = l;
	c->ops = ops;
	c->fd = fd;
	/* Fails only for a client already gone; its address is then
	 * unknown (conn_peer()). */
	if (getpeername(fd, &c->peer.sa, &(socklen_t){ sizeof(c->peer) }))
		c->peer.sa.sa_family = AF_UNSPEC;
	/* Replies are small and latency-bound. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((l->flags & CONN_LISTEN_TLS) && !(l->flags & CONN_LISTEN_PROXY)) {
		if (conn_tls_setup(c, fd))
			goto fail_tls;
		goto serve;
	}
	c->bev = bufferevent_socket_new(env->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto fail;
	/* Take over the read side; see conn.h.  The event is not pending
	 * yet, so it may be re-assigned. */
	if (event_assign(&c->bev->ev_read, env->base, fd,
	    EV_READ | EV_PERSIST | EV_FINALIZE, conn_read_cb, c->bev))
		goto fail_bev;
	bufferevent_setcb(c->bev, NULL, conn_write_cb, conn_event_cb, c);
	if (bufferevent_set_max_single_write(c->bev, CONN_MAX_SINGLE_WRITE))
		goto fail_bev;
	if ((env->idle_tv || env->write_tv) &&
	    bufferevent_set_timeouts(c->bev, env->idle_tv, env->write_tv))
		goto fail_bev;
	if (bufferevent_enable(c->bev, EV_READ))
		goto fail_bev;

serve:
	c->id = ((uint64_t)env->index << CONN_ID_WORKER_SHIFT) |
	    ++env->next_serial;
	if (idmap_put(&env->ids, c->id, c))
		goto fail_tls;
	c->next = env->conns;
	if (env->conns)
		env->conns->prev = c;
	env->conns = c;
	stat_add(&env->stats.conns_opened, 1);
	if (l->flags & CONN_LISTEN_PROXY) {
		/* The handler, and TLS, wait for the header
		 * (conn_header_read()). */
		if (conn_header_begin(c)) {
			conn_fail(c, "waiting for the PROXY header", ENOMEM);
			return NULL;
		}
		return c;
	}
	if (c->flags & CONN_HANDSHAKE)
		return c;	/* opened by conn_tls_opened() */
	return conn_open(c, "") ? c : NULL;

fail_tls:
	if (c->handshake_timer)
		event_free(c->handshake_timer);
	if (!c->bev)
		goto fail;
fail_bev:
	bufferevent_free(c->bev);	/* closes fd */
	fd = -1;
fail:
	if (fd >= 0)
		close(fd);
	free(c);
	stat_add(&env->stats.errors, 1);
	atomic_fetch_sub(env->conns_now, 1);
	log_warn("cannot set up a connection");
	return NULL;
}

/* --- across threads (proto.h, "Across threads") ------------------------- */

uint64_t conn_id(const struct conn *c)
{
	return c->id;
}

struct conn_env *conn_worker(struct conn *c)
{
	return c->env;
}

int conn_env_index(const struct conn_env *env)
{
	return env->index;
}

const struct proto_config *conn_env_config(const struct conn_env *env)
{
	return env->proto_cfg;
}

struct conn *conn_env_find(struct conn_env *env, uint64_t id)
{
	return idmap_get(&env->ids, id);
}

void **conn_env_local(struct conn_env *env, const struct proto_ops *ops)
{
	for (int i = 0; i < CONN_ENV_LOCALS; i++) {
		if (!env->locals[i].ops)
			env->locals[i].ops = ops;
		if (env->locals[i].ops == ops)
			return &env->locals[i].local;
	}
	return NULL;
}

size_t conn_output_size(const struct conn *c)
{
	const struct conn_batch *b = &c->env->batch;

	return conn_output_len(c) + (b->owner == c ? b->len : 0) +
	    (c->jobs ? c->jobs->bytes : 0);
}

void conn_abort(struct conn *c)
{
	struct conn_batch *b = &c->env->batch;

	if (b->owner == c && !b->loose) {
		c->flags |= CONN_ABORTED;	/* its caller frees it */
		return;
	}
	conn_free(c);
}

bool conn_env_reply(struct conn_env *env, uint64_t id, const void *buf,
    size_t len)
{
	struct conn *c = conn_env_find(env, id);

	if (!c || (c->flags & (CONN_LINGER | CONN_BROKEN | CONN_ABORTED))) {
		stat_add(&env->stats.msgs_dropped, 1);
		return false;
	}
	conn_reply(c, buf, len);
	return true;
}

void conn_env_wake(struct conn_env *env, uint64_t id)
{
	struct conn *c = conn_env_find(env, id);
	int rc;

	if (!c || (c->flags & (CONN_CLOSING | CONN_BROKEN | CONN_ABORTED))) {
		stat_add(&env->stats.msgs_dropped, 1);
		return;
	}
	if (!c->ops->wake)
		return;
	conn_batch_begin(c, NULL, 0);
	rc = c->ops->wake(c, conn_state(c));
	conn_batch_end(c);
	if (conn_reap(c))
		return;
	if (rc == PROTO_CLOSE)
		conn_close(c);
}

void conn_env_flush(struct conn_env *env)
{
	struct conn_batch *b = &env->batch;

	if (b->owner && b->loose)
		conn_batch_end(b->owner);
}

void conn_env_release(struct conn_env *env)
{
	for (int i = 0; i < CONN_ENV_LOCALS; i++) {
		const struct proto_ops *ops = env->locals[i].ops;

		if (ops && env->locals[i].local && ops->worker_release)
			ops->worker_release(env, env->locals[i].local);
		env->locals[i].ops = NULL;
		env->locals[i].local = NULL;
	}
	idmap_release(&env->ids);
	if (env->retry_timer)
		event_free(env->retry_timer);
	env->retry_timer = NULL;
}

/* --- input held by the handler (proto.h) --------------------------------- */

void conn_hold_input(struct conn *c, bool hold)
{
	if (hold) {
		c->flags |= CONN_HELD;
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	c->flags &= ~CONN_HELD;
	if (!(c->flags & (CONN_CLOSING | CONN_PAUSED | CONN_JOB_WAIT)))
		bufferevent_enable(c->bev, EV_READ);
}

void conn_count_overflow(struct conn *c)
{
	stat_add(&c->env->stats.output_overflows, 1);
}
