/*
 * Client connections: the socket transport under a protocol handler.  The
 * read takeover, kept input, gathered replies with the eager write,
 * backpressure, half-close and flush-before-free.  See conn.h for the
 * design and proto/proto.h for the handler's side of the contract.
 */
#include "conn.h"

#include "log.h"
#include "proto/proto.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
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
	CONN_ABORTED = 1 << 5,	/* conn_abort() in its own handler call */
	CONN_JOB_WAIT = 1 << 6,	/* a job could not be submitted: not read
				 * until one comes back (conn_job_wait) */
	CONN_RETRY_LISTED = 1 << 7,	/* on env->job_waiters */
	CONN_HELD = 1 << 8,	/* reading stopped by conn_hold_input() */
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
	struct conn_pending *pending;
	int fd;
	unsigned flags;
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

	if (c->ops->release)
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
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		env->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	bufferevent_free(c->bev);	/* closes the fd */
	free(c->pending);
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
	if (b->owner != c || b->loose)
		event_active(&c->bev->ev_read, EV_READ, 0);
}

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

/* Writes out what the batch holds, keeping it open for more. */
static void conn_batch_flush(struct conn_batch *b)
{
	if (b->n_iov)
		conn_writev(b->owner, b->iov, b->n_iov, b->len);
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

/* Bytes arrived: hand them, after any kept input, to the handler. */
static void conn_input(struct conn *c, const char *buf, size_t n)
{
	const char *in = buf;
	size_t len = n;
	ssize_t used;
	int rc;

	if (c->pending) {
		if (n > 0 && conn_pending_append(c, buf, n)) {
			conn_fail(c, "keeping input", ENOMEM);
			return;
		}
		in = c->pending->buf;
		len = c->pending->len;
	}
	conn_batch_begin(c, in, len);
	used = c->ops->data(c, conn_state(c), in, len);
	conn_batch_end(c);
	if (conn_reap(c))
		return;
	if (used == PROTO_CLOSE) {
		conn_close(c);
		return;
	}
	if (used < 0 || (size_t)used > len) {
		log_error("handler '%s' consumed %zd of %zu bytes; closing",
		    c->ops->name, used, len);
		conn_fail(c, "handler", EPROTO);
		return;
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

	if ((c->flags & CONN_EOF) ||
	    ioctl(c->fd, SIOCOUTQ, &unacked) || ioctl(c->fd, FIONREAD, &unread) ||
	    (unacked == 0 && unread == 0) || shutdown(c->fd, SHUT_WR)) {
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
	if (c->flags & CONN_LINGER) {
		conn_linger_read(c, what);
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
		conn_input(c, env->rbuf, (size_t)n);
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

/* Lets the handler greet the client.  Returns false if @c is gone. */
static bool conn_open(struct conn *c)
{
	int rc;

	if (!c->ops->open)
		return true;
	conn_batch_begin(c, NULL, 0);
	rc = c->ops->open(c, conn_state(c));
	conn_batch_end(c);
	if (conn_reap(c))
		return false;
	if (rc == PROTO_CLOSE)
		conn_close(c);
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
	/* Replies are small and latency-bound. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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

	c->id = ((uint64_t)env->index << CONN_ID_WORKER_SHIFT) |
	    ++env->next_serial;
	if (idmap_put(&env->ids, c->id, c))
		goto fail_bev;
	c->next = env->conns;
	if (env->conns)
		env->conns->prev = c;
	env->conns = c;
	stat_add(&env->stats.conns_opened, 1);
	return conn_open(c) ? c : NULL;

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
