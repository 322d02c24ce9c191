/*
 * Client connections: the socket transport under a protocol handler.  The
 * read takeover, kept input, gathered replies with the eager write,
 * backpressure, half-close and flush-before-free.  See conn.h for the
 * design and proto/proto.h for the handler's side of the contract.
 */
#include "conn.h"

#include "log.h"
#include "netaddr.h"
#include "proxy.h"
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
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * libevent writes at most 16 KiB of pending output per write callback by
 * default (docs/design.md, fact 12); a backed-up bulk client would then
 * cost a callback per 16 KiB.  Let it write as much as one read brings.
 */
#define CONN_MAX_SINGLE_WRITE (256 * 1024)

enum conn_flags {
	CONN_PAUSED = 1 << 0,	/* reading stopped by backpressure */
	CONN_CLOSING = 1 << 1,	/* flushing, then free */
	CONN_EOF = 1 << 2,	/* the client shut down its write side */
	CONN_LINGER = 1 << 3,	/* sent FIN; discarding input until EOF */
	CONN_BROKEN = 1 << 4,	/* a write failed; free once the handler
				 * returns */
	CONN_HEADER = 1 << 5,	/* awaiting the PROXY header: the handler
				 * has not seen the connection yet */
	CONN_TLS = 1 << 6,	/* a bufferevent_openssl (see conn.h) */
	CONN_HANDSHAKE = 1 << 7,	/* TLS: handshake not finished */
	CONN_WRITING = 1 << 8,	/* TLS: inside an output-buffer write,
				 * which libevent may answer with
				 * callbacks at once */
	CONN_TLS_EOF = 1 << 9,	/* TLS: the client ended its stream; its
				 * last bytes may still be on their way to
				 * the read callback */
	CONN_PROXIED = 1 << 10,	/* the PROXY header named the client */
	CONN_ABORTED = 1 << 11,	/* conn_abort() in its own handler call */
	CONN_JOB_WAIT = 1 << 12,	/* a job could not be submitted: not read
				 * until one comes back (conn_job_wait) */
	CONN_RETRY_LISTED = 1 << 13,	/* on env->job_waiters */
	CONN_HELD = 1 << 14,	/* reading stopped by conn_hold_input() */
};

/*
 * One place in a connection's reply order while jobs are in flight
 * (conn.h, "Ordered replies"): a job's result to come (seq > 0, not
 * ready until it is back) or replies made meanwhile (seq 0, ready).
 */
struct conn_slot {
	struct conn_slot *next;
	uint64_t seq;
	bool ready;
	_Atomic bool *cancel;	/* the job's flag, until it is back */
	char *data;		/* owned */
	size_t len, cap;
};

/* A connection's jobs; allocated at its first job. */
struct conn_jobs {
	struct conn_slot *head, *tail;	/* reply order */
	unsigned in_flight;
	uint64_t next_seq;
	size_t bytes;		/* held in slots */
	struct conn *wait_next;	/* env->job_waiters */
};

/* A PROXY header that came in pieces, kept while it is incomplete. */
struct conn_header {
	struct timespec deadline;	/* CLOCK_MONOTONIC */
	size_t len, cap;
	unsigned char buf[];
};

/* The first allocation for a header in pieces: any v1 line, a v2 with
 * IPv6 addresses and a few TLVs.  It grows to PROXY_HEADER_MAX. */
#define CONN_HEADER_BUF 256

/* Input the handler has not consumed yet; exists only while non-empty. */
struct conn_pending {
	size_t len, cap;
	char buf[];
};

struct conn {
	struct bufferevent *bev;
	struct conn_env *env;
	struct conn *prev, *next;	/* env->conns */
	const struct conn_listen *listen;	/* borrowed, outlives us */
	const struct proto_ops *ops;	/* listen->ops */
	union {
		struct conn_pending *pending;
		/* TLS, while CONN_HANDSHAKE: the handshake's deadline.  It
		 * shares the slot because no input is kept before the
		 * handshake ends, so plain connections pay nothing for it. */
		struct event *handshake_timer;
	};
	int fd;
	unsigned flags;
	uint64_t bytes_in, bytes_out;	/* payload, for the close log */
	struct conn_header *header;	/* while CONN_HEADER */
	union netaddr_ip peer;	/* the client: getpeername(), or the
				 * PROXY header's source */
	uint64_t id;		/* env->ids; never reused */
	struct conn_jobs *jobs;	/* NULL until it offloads */
	/* The handler's state follows, at CONN_STATE_OFFSET, when it has
	 * any. */
};

#define CONN_STATE_OFFSET \
	((sizeof(struct conn) + alignof(max_align_t) - 1) & \
	    ~(alignof(max_align_t) - 1))

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
static const char *conn_peer_text(const struct conn *c, char *buf,
    size_t size)
{
	if (netaddr_len(&c->peer.sa))
		netaddr_format(&c->peer.sa, buf, size);
	else
		snprintf(buf, size, "(unknown)");
	return buf;
}

static size_t conn_output_len(const struct conn *c)
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

static size_t conn_jobs_free(struct conn *c);

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

static void conn_fail(struct conn *c, const char *what, int err)
{
	stat_add(&c->env->stats.errors, 1);
	log_verbose("closing connection fd %d: %s: %s", c->fd, what,
	    strerror(err));
	conn_free(c);
}

static void conn_pause(struct conn *c)
{
	c->flags |= CONN_PAUSED;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, c->env->low_water, 0);
}

static void conn_resume(struct conn *c)
{
	c->flags &= ~CONN_PAUSED;
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	if (!(c->flags & (CONN_CLOSING | CONN_JOB_WAIT | CONN_HELD)))
		bufferevent_enable(c->bev, EV_READ);
}

/* A write failed.  The connection is freed by whoever called the
 * handler, never under it. */
static void conn_break(struct conn *c, int err)
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

static void conn_tls_writev(struct conn *c, const struct iovec *iov, int n,
    size_t len);

/*
 * Sends @len bytes in @iov[@n] (borrowed): straight to the socket while
 * nothing is pending before them, the rest into the output buffer.
 */
static void conn_writev(struct conn *c, struct iovec *iov, int n, size_t len)
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

static void conn_slot_append(struct conn *c, const char *p, size_t len);

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
static bool conn_reap(struct conn *c)
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
static bool conn_input(struct conn *c, const char *buf, size_t n)
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
static void conn_eof(struct conn *c)
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

static void conn_close_output(struct conn *c);

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
static void conn_close_output(struct conn *c)
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

static void conn_header_read(struct conn *c, short what);

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
static void conn_write_cb(struct bufferevent *bev, void *arg)
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
static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
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
static bool conn_open(struct conn *c, const char *via)
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

/*
 * PROXY protocol listeners (conn.h, "PROXY header").  The header is
 * parsed where it lies: in the read buffer when it came in one read, as
 * it nearly always does, or in c->header when it came in pieces.  Reads
 * are capped so that c->header never holds more than PROXY_HEADER_MAX
 * bytes, and whatever follows the header in them is the client's first
 * payload, handed to the handler right after its open().
 */

static void timespec_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

static void conn_tls_setup_after_header(struct conn *c);

/* Closes @c, which sent no valid PROXY header: @why says what was
 * wrong. */
static void conn_header_fail(struct conn *c, stat_t *counter,
    const char *why)
{
	char peer[NETADDR_STRLEN];

	stat_add(counter, 1);
	log_verbose("closing connection fd %d from %s: %s", c->fd,
	    conn_peer_text(c, peer, sizeof(peer)), why);
	conn_free(c);
}

/* Waits for the header; the deadline counts from now. */
static int conn_header_begin(struct conn *c)
{
	const struct timeval *tv = &c->listen->proxy_timeout;
	struct conn_header *hd = malloc(sizeof(*hd) + CONN_HEADER_BUF);

	if (!hd)
		return -1;
	timespec_now(&hd->deadline);
	hd->deadline.tv_sec += tv->tv_sec;
	hd->deadline.tv_nsec += (long)tv->tv_usec * 1000;
	if (hd->deadline.tv_nsec >= 1000000000L) {
		hd->deadline.tv_sec++;
		hd->deadline.tv_nsec -= 1000000000L;
	}
	hd->len = 0;
	hd->cap = CONN_HEADER_BUF;
	c->header = hd;
	c->flags |= CONN_HEADER;
	return bufferevent_set_timeouts(c->bev, tv, c->env->write_tv);
}

/*
 * Re-arms the read timeout with what is left of the header's deadline:
 * the event is persistent, so libevent re-armed it with the full timeout
 * when this read arrived (docs/design.md, fact P5).  Returns false if the
 * deadline has passed.
 */
static bool conn_header_rearm(struct conn *c)
{
	struct timespec now, *d = &c->header->deadline;
	struct timeval left;
	long long ns;

	timespec_now(&now);
	ns = (long long)(d->tv_sec - now.tv_sec) * 1000000000LL +
	    (d->tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return false;
	left.tv_sec = (time_t)(ns / 1000000000LL);
	left.tv_usec = (suseconds_t)(ns % 1000000000LL / 1000);
	return bufferevent_set_timeouts(c->bev, &left, c->env->write_tv) == 0;
}

/* The header of @used bytes at @in (of @len) is valid: the handler takes
 * over, and gets the bytes after it. */
static void conn_header_done(struct conn *c, const struct proxy_header *h,
    const unsigned char *in, size_t len, size_t used)
{
	struct conn_env *env = c->env;
	struct conn_header *hd = c->header;	/* @in may lie in it */

	c->header = NULL;
	c->flags &= ~CONN_HEADER;
	/* LOCAL (HAProxy's health checks, fact P4) and address-less headers
	 * keep the socket's address. */
	if (h->has_addr)
		c->peer = h->src;
	c->flags |= CONN_PROXIED;
	if (c->listen->flags & CONN_LISTEN_TLS) {
		free(hd);
		conn_tls_setup_after_header(c);
		return;
	}
	if (bufferevent_set_timeouts(c->bev, env->idle_tv, env->write_tv)) {
		conn_fail(c, "restoring timeouts", ENOMEM);
	} else if (conn_open(c, h->local ? " (PROXY v2 LOCAL)" :
	    h->version == 1 ? " (PROXY v1)" : " (PROXY v2)") && len > used) {
		stat_add(&env->stats.bytes_in, len - used);
		c->bytes_in += len - used;
		conn_input(c, (const char *)in + used, len - used);
	}
	free(hd);
}

/* Appends @n bytes to c->header, growing it; 0 or -1. */
static int conn_header_keep(struct conn *c, const void *buf, size_t n)
{
	struct conn_header *hd = c->header;

	if (hd->cap - hd->len < n) {
		size_t cap = hd->len + n > hd->cap * 2 ? hd->len + n :
		    hd->cap * 2;

		hd = realloc(hd, sizeof(*hd) + cap);
		if (!hd)
			return -1;
		hd->cap = cap;
		c->header = hd;
	}
	memcpy(hd->buf + hd->len, buf, n);
	hd->len += n;
	return 0;
}

/*
 * Takes @n peeked bytes, all of them header, from the socket of a
 * proxy+tls+ connection.  They are at the front of its receive queue, so
 * one read takes them all, and it writes the same bytes over the read
 * buffer's copy, which may still be parsed.  Returns 0, or -1 after
 * closing @c.
 */
static int conn_header_take(struct conn *c, size_t n)
{
	ssize_t got = n ? recv(c->fd, c->env->rbuf, n, 0) : 0;

	if (got == (ssize_t)n)
		return 0;
	conn_fail(c, "taking the PROXY header", got < 0 ? errno : EIO);
	return -1;
}

static void conn_header_read(struct conn *c, short what)
{
	struct conn_env *env = c->env;
	struct conn_header *hd = c->header;
	size_t room = PROXY_HEADER_MAX - hd->len;
	const unsigned char *in = (const unsigned char *)env->rbuf;
	struct proxy_header h;
	const char *why = "bad PROXY header";
	bool tls = c->listen->flags & CONN_LISTEN_TLS;
	size_t kept = hd->len;	/* header bytes taken by earlier reads */
	ssize_t n, used;
	size_t len;

	if ((what & EV_TIMEOUT) || !conn_header_rearm(c)) {
		conn_header_fail(c, &env->stats.proxy_timeouts,
		    "no complete PROXY header in time");
		return;
	}
	/* Before TLS only the header may be taken from the socket: what
	 * follows it is the handshake, for OpenSSL to read (conn_tls_setup).
	 * So the bytes are peeked, and taken once it is known how many of
	 * them are header (conn_header_take()). */
	n = recv(c->fd, env->rbuf, room < env->rbuf_size ? room :
	    env->rbuf_size, tls ? MSG_PEEK : 0);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_fail(c, "read", errno);
		return;
	}
	if (n == 0) {
		conn_header_fail(c, &env->stats.proxy_errors,
		    "closed before a complete PROXY header");
		return;
	}
	len = (size_t)n;
	if (hd->len) {
		if (conn_header_keep(c, env->rbuf, len)) {
			conn_fail(c, "keeping the PROXY header", ENOMEM);
			return;
		}
		hd = c->header;
		in = hd->buf;
		len = hd->len;
	}
	used = proxy_parse(in, len, &h, &why);
	if (tls && used >= 0 && conn_header_take(c, used ? (size_t)used - kept :
	    (size_t)n))
		return;
	if (used < 0) {
		char msg[96];

		snprintf(msg, sizeof(msg), "bad PROXY header: %s", why);
		conn_header_fail(c, &env->stats.proxy_errors, msg);
	} else if (used > 0) {
		conn_header_done(c, &h, in, len, (size_t)used);
	} else if (!hd->len && conn_header_keep(c, in, len)) {
		conn_fail(c, "keeping the PROXY header", ENOMEM);
	}
}

/*
 * TLS (see conn.h).  The bufferevent_openssl reads, decrypts and writes;
 * these callbacks connect it to the same handler path as the fast one.
 */

/* A batch for a TLS connection: one contiguous copy into the output
 * buffer, which bufferevent_openssl encrypts and writes at once (its
 * output callback runs inside the commit, so any error callback it makes
 * finds CONN_WRITING set and only marks the connection). */
static void conn_tls_writev(struct conn *c, const struct iovec *iov, int n,
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
static int conn_tls_setup(struct conn *c, int fd)
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
static void conn_tls_setup_after_header(struct conn *c)
{
	bufferevent_setfd(c->bev, -1);
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (conn_tls_setup(c, c->fd))
		conn_fail(c, "starting tls after the PROXY header", ENOMEM);
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

/* --- ordered replies for offloaded jobs (conn.h) ------------------------- */

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
static void conn_slot_append(struct conn *c, const char *p, size_t len)
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
static size_t conn_jobs_free(struct conn *c)
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
