/*
 * The per-thread load engine; see loadgen.h.  Plain level-triggered epoll:
 * a connection always waits for EPOLLIN and asks for EPOLLOUT only while a
 * write is short, so a ping-pong message costs one read and one write, as
 * in the thinnest echo server.  Replies are written straight from the
 * shared pattern and compared against it as they arrive, so a connection
 * needs no buffer of its own: only its stream offsets and, per message in
 * flight, the time it was sent.
 *
 * With --tls each connection is an OpenSSL client on its non-blocking
 * socket: after connect() it handshakes, then reads and writes go through
 * SSL_read and SSL_write, and the rest is the same.  Churn's cycle then
 * includes the handshake, so its rate is handshakes per second.
 */
#include "loadgen.h"
#include "common/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * The pattern repeats every PATTERN_PERIOD bytes, a prime, so that message
 * boundaries never line up with it and a duplicated, lost or reordered
 * message shows up as a mismatch.  The buffer holds two periods so that any
 * slice of up to one period starting inside the first is contiguous.
 */
#define PATTERN_PERIOD 262147u
#define READ_BUF_SIZE (256 * 1024)
#define MAX_EVENTS 256
#define MAX_REPORTED_ERRORS 10
#define MAX_SOURCES 254

/* A read is compared against one contiguous slice of the pattern. */
_Static_assert(READ_BUF_SIZE <= PATTERN_PERIOD, "read buffer too big");

static unsigned char pattern[2 * PATTERN_PERIOD];

enum lg_state {
	LG_IDLE,		/* no socket: not started yet, or churn between
				 * cycles */
	LG_CONNECTING,
	LG_HANDSHAKE,		/* --tls: connected, handshaking */
	LG_OPEN,
	LG_DEAD,		/* given up on after an error */
};

struct lg_conn {
	int fd;
	enum lg_state state;
	unsigned id;
	unsigned pat_start;	/* where this stream starts in the pattern */
	uint64_t want;		/* bytes queued to send */
	uint64_t sent;		/* bytes written */
	uint64_t recvd;		/* bytes read back and verified */
	uint64_t started;	/* ns: connect started (churn latency) */
	uint64_t *stamps;	/* depth send times, indexed by message % depth */
	int ready;		/* a first echo has completed */
	int want_out;		/* EPOLLOUT is in the interest set */
	SSL *ssl;		/* --tls */
};

struct loadgen {
	const struct loadgen_config *cfg;
	unsigned nconns;
	struct lg_conn *conns;
	uint64_t *stamps;
	int epfd;
	unsigned next_open;	/* conns below this have been started once */
	unsigned opening;	/* started, not ready, not dead */
	unsigned source;	/* current source address index, see cfg */
	unsigned reported;	/* error lines printed */
	int phase;		/* as seen at the top of this loop turn */
	unsigned char *buf;
	struct histogram hist;
	struct loadgen_counters mine;	/* the thread's working copy */
	struct loadgen_counters pub;	/* published with atomic stores */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void loadgen_pattern_init(void)
{
	uint64_t x = 0x2545f4914f6cdd1dULL;
	unsigned i;

	for (i = 0; i < PATTERN_PERIOD; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pattern[i] = (unsigned char)(x >> 32);
	}
	memcpy(pattern + PATTERN_PERIOD, pattern, PATTERN_PERIOD);
}

static const unsigned char *pattern_at(const struct lg_conn *c, uint64_t off)
{
	return pattern + (c->pat_start + off) % PATTERN_PERIOD;
}

static int lg_phase(const struct loadgen *lg)
{
	return __atomic_load_n(lg->cfg->phase, __ATOMIC_ACQUIRE);
}

static void lg_publish(struct loadgen *lg)
{
	const uint64_t *src = (const uint64_t *)&lg->mine;
	uint64_t *dst = (uint64_t *)&lg->pub;
	size_t i;

	for (i = 0; i < sizeof(lg->pub) / sizeof(uint64_t); i++)
		__atomic_store_n(&dst[i], src[i], __ATOMIC_RELAXED);
}

void loadgen_counters(const struct loadgen *lg, struct loadgen_counters *out)
{
	const uint64_t *src = (const uint64_t *)&lg->pub;
	uint64_t *dst = (uint64_t *)out;
	size_t i;

	for (i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

const struct histogram *loadgen_histogram(const struct loadgen *lg)
{
	return &lg->hist;
}

struct loadgen *loadgen_new(const struct loadgen_config *config,
    unsigned nconns, unsigned first_id)
{
	struct loadgen *lg = xcalloc(1, sizeof(*lg));
	unsigned i;

	lg->cfg = config;
	lg->nconns = nconns;
	lg->conns = xcalloc(nconns, sizeof(*lg->conns));
	lg->stamps = xcalloc((size_t)nconns * config->depth,
	    sizeof(*lg->stamps));
	lg->buf = xmalloc(READ_BUF_SIZE);
	lg->epfd = -1;
	histogram_init(&lg->hist);
	for (i = 0; i < nconns; i++) {
		struct lg_conn *c = &lg->conns[i];

		c->fd = -1;
		c->id = first_id + i;
		c->stamps = lg->stamps + (size_t)i * config->depth;
		/* Spread the streams over the pattern. */
		c->pat_start = (unsigned)(((uint64_t)c->id * 40503u) %
		    PATTERN_PERIOD);
	}
	return lg;
}

void loadgen_free(struct loadgen *lg)
{
	unsigned i;

	if (!lg)
		return;
	for (i = 0; i < lg->nconns; i++)
		if (lg->conns[i].fd >= 0)
			close(lg->conns[i].fd);
	if (lg->epfd >= 0)
		close(lg->epfd);
	free(lg->buf);
	free(lg->stamps);
	free(lg->conns);
	free(lg);
}

static void lg_close(struct loadgen *lg, struct lg_conn *c)
{
	if (c->ssl) {
		/* close_notify, best effort, as a polite client sends. */
		if (c->state == LG_OPEN)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
		ERR_clear_error();
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->state == LG_OPEN)
		lg->mine.open--;
	c->want_out = 0;
}

/* Gives up on @c after an error, printing the first few. */
static void lg_fail(struct loadgen *lg, struct lg_conn *c, const char *fmt,
    ...)
{
	va_list ap;
	char msg[256];

	if (lg->reported++ < MAX_REPORTED_ERRORS) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		fprintf(stderr, "echobench: connection %u: %s\n", c->id, msg);
	} else if (lg->reported == MAX_REPORTED_ERRORS + 1) {
		fprintf(stderr, "echobench: more errors; not showing them\n");
	}
	if (!c->ready)
		lg->opening--;
	lg_close(lg, c);
	c->state = LG_DEAD;
	lg->mine.errors++;
	lg->mine.failed++;
}

static void lg_set_events(struct loadgen *lg, struct lg_conn *c, int op,
    uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (epoll_ctl(lg->epfd, op, c->fd, &ev) < 0) {
		fprintf(stderr, "echobench: epoll_ctl: %s\n", strerror(errno));
		abort();
	}
}

static void lg_want_out(struct loadgen *lg, struct lg_conn *c, int on)
{
	if (c->want_out == on)
		return;
	c->want_out = on;
	lg_set_events(lg, c, EPOLL_CTL_MOD, EPOLLIN | (on ? EPOLLOUT : 0));
}

/*
 * SSL_write() as write(2) would: a would-block is -1 with EAGAIN (and
 * OpenSSL then wants the same buffer again, at least as long, which
 * lg_flush() gives it), a failure -1 with EPROTO.
 */
static ssize_t lg_tls_write(struct lg_conn *c, const void *buf, size_t len)
{
	int n = SSL_write(c->ssl, buf, (int)len);

	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_WRITE:
	case SSL_ERROR_WANT_READ:
		errno = EAGAIN;
		break;
	default:
		errno = EPROTO;
		ERR_clear_error();
	}
	return -1;
}

/* Writes what is queued on @c; 0, or -1 if @c failed. */
static int lg_flush(struct loadgen *lg, struct lg_conn *c)
{
	while (c->sent < c->want) {
		uint64_t left = c->want - c->sent;
		size_t len = left < PATTERN_PERIOD ? (size_t)left :
		    PATTERN_PERIOD;
		ssize_t n = c->ssl ? lg_tls_write(c, pattern_at(c, c->sent),
		    len) : write(c->fd, pattern_at(c, c->sent), len);

		if (n > 0) {
			c->sent += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			lg_want_out(lg, c, 1);
			return 0;
		}
		lg_fail(lg, c, "write after %llu bytes: %s",
		    (unsigned long long)c->sent,
		    n < 0 ? strerror(errno) : "wrote nothing");
		return -1;
	}
	lg_want_out(lg, c, 0);
	return 0;
}

/* Queues @n more messages on @c, sent at @now. */
static void lg_queue(struct loadgen *lg, struct lg_conn *c, uint64_t n,
    uint64_t now)
{
	unsigned size = lg->cfg->size, depth = lg->cfg->depth;

	while (n--) {
		c->stamps[(c->want / size) % depth] = now;
		c->want += size;
	}
}

/*
 * How many messages @c should have in flight now.  A connection sends one
 * first message and nothing more while the connections are opening, so
 * that a server accepts them without also serving their traffic; from
 * the warm-up on, ping-pong and bulk keep depth in flight.  Churn and hold
 * send one message per connection.
 */
static uint64_t lg_target(const struct loadgen *lg, const struct lg_conn *c)
{
	if (lg->phase >= LOADGEN_DRAIN)
		return 0;
	if (lg->cfg->mode == LOADGEN_CHURN || lg->cfg->mode == LOADGEN_HOLD ||
	    lg->phase == LOADGEN_OPENING)
		return c->want == 0;
	return lg->cfg->depth;
}

/* Tops @c up to its target in flight and writes; 0, or -1 if @c failed. */
static int lg_top_up(struct loadgen *lg, struct lg_conn *c, uint64_t now)
{
	unsigned size = lg->cfg->size;
	uint64_t target = lg_target(lg, c);
	uint64_t inflight = c->want / size - c->recvd / size;

	if (inflight < target)
		lg_queue(lg, c, target - inflight, now);
	return lg_flush(lg, c);
}

static int lg_open(struct loadgen *lg, struct lg_conn *c, uint64_t now)
{
	c->state = LG_OPEN;
	lg->mine.open++;
	lg_set_events(lg, c, EPOLL_CTL_MOD, EPOLLIN);
	return lg_top_up(lg, c, now);
}

/* Drives @c's TLS handshake; 0, or -1 if @c failed. */
static int lg_handshake(struct loadgen *lg, struct lg_conn *c, uint64_t now)
{
	int r = SSL_do_handshake(c->ssl);
	char why[128];

	if (r == 1)
		return lg_open(lg, c, now);
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		lg_set_events(lg, c, EPOLL_CTL_MOD, EPOLLIN);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		lg_set_events(lg, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
		return 0;
	default:
		ERR_error_string_n(ERR_get_error(), why, sizeof(why));
		ERR_clear_error();
		lg_fail(lg, c, "tls handshake: %s", why);
		return -1;
	}
}

static int lg_connected(struct loadgen *lg, struct lg_conn *c, uint64_t now)
{
	if (!lg->cfg->tls)
		return lg_open(lg, c, now);
	c->ssl = SSL_new(lg->cfg->tls);
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
		lg_fail(lg, c, "cannot set up tls");
		return -1;
	}
	SSL_set_connect_state(c->ssl);
	c->state = LG_HANDSHAKE;
	return lg_handshake(lg, c, now);
}

/*
 * Binds @fd to the next source address if sources are configured; after
 * the ports of one address have run out (auto mode), to the current one.
 */
static int lg_bind_source(struct loadgen *lg, int fd)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	unsigned idx;
	int one = 1;

	if (lg->cfg->sources) {
		idx = lg->source++ % lg->cfg->sources;
	} else {
		if (lg->source == 0)
			return 0;
		idx = lg->source;
	}
	/* The port is chosen at connect(), per destination. */
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
	    sizeof(one));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK + idx);
	return bind(fd, (struct sockaddr *)&sin, sizeof(sin));
}

/* Starts connecting @c; on failure @c is dead. */
static void lg_connect(struct loadgen *lg, struct lg_conn *c, uint64_t now)
{
	int one = 1;

	for (;;) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		int r;

		if (fd < 0) {
			lg_fail(lg, c, "socket: %s", strerror(errno));
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (lg_bind_source(lg, fd) < 0) {
			lg_fail(lg, c, "bind to source 127.0.0.%u: %s",
			    lg->source + 1, strerror(errno));
			close(fd);
			return;
		}
		r = connect(fd, (const struct sockaddr *)&lg->cfg->target,
		    sizeof(lg->cfg->target));
		if (r < 0 && errno == EADDRNOTAVAIL && !lg->cfg->sources &&
		    lg->source + 1 < MAX_SOURCES) {
			/* This source address is out of ports. */
			close(fd);
			lg->source++;
			continue;
		}
		c->fd = fd;
		c->started = now;
		c->sent = c->want = c->recvd = 0;
		c->want_out = 0;
		if (r < 0 && errno != EINPROGRESS) {
			lg_fail(lg, c, "connect: %s", strerror(errno));
			return;
		}
		c->state = LG_CONNECTING;
		lg_set_events(lg, c, EPOLL_CTL_ADD, EPOLLOUT);
		if (r == 0)
			lg_connected(lg, c, now);
		return;
	}
}

static void lg_connect_done(struct loadgen *lg, struct lg_conn *c,
    uint64_t now)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		lg_fail(lg, c, "connect: %s", strerror(err));
		return;
	}
	lg_connected(lg, c, now);
}

/* Reports where @got first differs from what @c sent at @off. */
static void lg_mismatch(struct loadgen *lg, struct lg_conn *c,
    const unsigned char *got, size_t n)
{
	const unsigned char *want = pattern_at(c, c->recvd);
	size_t i = 0;

	while (i < n && got[i] == want[i])
		i++;
	lg_fail(lg, c, "echoed byte %llu is 0x%02x, sent 0x%02x",
	    (unsigned long long)(c->recvd + i), got[i], want[i]);
}

/* A churn cycle is complete: close and, unless draining, go again. */
static void lg_churn_next(struct loadgen *lg, struct lg_conn *c,
    uint64_t now)
{
	lg_close(lg, c);
	c->state = LG_IDLE;
	c->pat_start = (c->pat_start + 7919u) % PATTERN_PERIOD;
	if (lg->phase < LOADGEN_DRAIN)
		lg_connect(lg, c, now);
}

/* Checks and accounts @n bytes echoed on @c; 0, or -1 if @c failed. */
static int lg_consume(struct loadgen *lg, struct lg_conn *c,
    const unsigned char *got, size_t n, uint64_t now)
{
	unsigned size = lg->cfg->size, depth = lg->cfg->depth;
	uint64_t outstanding = c->sent - c->recvd, first, last, m;

	if (n > outstanding) {
		lg_fail(lg, c, "server sent %llu bytes more than it was sent",
		    (unsigned long long)(n - outstanding));
		return -1;
	}
	if (memcmp(got, pattern_at(c, c->recvd), n) != 0) {
		lg_mismatch(lg, c, got, n);
		return -1;
	}
	first = c->recvd / size;
	last = (c->recvd + n) / size;
	c->recvd += n;
	lg->mine.bytes += n;
	lg->mine.msgs += last - first;
	if (last == first)
		return 0;
	if (!c->ready) {
		c->ready = 1;
		lg->mine.ready++;
		lg->opening--;
	}
	if (lg->cfg->mode == LOADGEN_CHURN) {
		if (lg->phase == LOADGEN_MEASURE)
			histogram_record(&lg->hist, now - c->started);
		lg_churn_next(lg, c, now);
		return -1;
	}
	if (lg->phase == LOADGEN_MEASURE)
		for (m = first; m < last; m++)
			histogram_record(&lg->hist,
			    now - c->stamps[m % depth]);
	return lg_top_up(lg, c, now);
}

/*
 * The server closed @c cleanly.  With reconnect, a close between messages
 * (every byte echoed is a whole number of messages: nothing was cut
 * short) is a server going away, as one behind a balancer does when it
 * is stopped: count what it left unanswered and open a new connection.
 * Returns 0 if so, -1 if it is an error after all.
 */
static int lg_reopen(struct loadgen *lg, struct lg_conn *c)
{
	if (!lg->cfg->reconnect || !c->ready ||
	    lg->cfg->mode == LOADGEN_CHURN || lg->cfg->mode == LOADGEN_HOLD ||
	    c->recvd % lg->cfg->size != 0)
		return -1;
	lg->mine.reconnects++;
	lg->mine.unanswered += c->sent - c->recvd;
	lg_close(lg, c);
	c->state = LG_IDLE;
	c->pat_start = (c->pat_start + 7919u) % PATTERN_PERIOD;
	if (lg->phase < LOADGEN_DRAIN)
		lg_connect(lg, c, now_ns());
	return 0;
}

/* --tls: reads until OpenSSL has nothing more, since data it holds
 * decrypted does not make the socket readable again. */
static void lg_tls_readable(struct loadgen *lg, struct lg_conn *c)
{
	for (;;) {
		int n = SSL_read(c->ssl, lg->buf, READ_BUF_SIZE);
		int err;

		if (n > 0) {
			if (lg_consume(lg, c, lg->buf, (size_t)n,
			    now_ns()) < 0)
				return;
			continue;
		}
		err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			return;
		ERR_clear_error();
		lg_fail(lg, c, "%s after %llu of %llu bytes echoed",
		    err == SSL_ERROR_ZERO_RETURN ? "closed by the server" :
		    "tls error", (unsigned long long)c->recvd,
		    (unsigned long long)c->sent);
		return;
	}
}

static void lg_readable(struct loadgen *lg, struct lg_conn *c)
{
	if (c->ssl) {
		lg_tls_readable(lg, c);
		return;
	}
	for (;;) {
		ssize_t n = read(c->fd, lg->buf, READ_BUF_SIZE);

		if (n > 0) {
			if (lg_consume(lg, c, lg->buf, (size_t)n,
			    now_ns()) < 0)
				return;
			if (n < READ_BUF_SIZE)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n == 0 && lg_reopen(lg, c) == 0)
			return;
		lg_fail(lg, c, "%s after %llu of %llu bytes echoed",
		    n == 0 ? "closed by the server" : strerror(errno),
		    (unsigned long long)c->recvd,
		    (unsigned long long)c->sent);
		return;
	}
}

static void lg_event(struct loadgen *lg, struct lg_conn *c, uint32_t events)
{
	if (c->state == LG_CONNECTING) {
		lg_connect_done(lg, c, now_ns());
		return;
	}
	if (c->state == LG_HANDSHAKE) {
		lg_handshake(lg, c, now_ns());
		return;
	}
	if (c->state != LG_OPEN)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		lg_readable(lg, c);
		if (c->state != LG_OPEN)
			return;
	}
	if (events & EPOLLOUT)
		lg_flush(lg, c);
}

/* Starts connections up to the window; churn starts every slot at once. */
static void lg_open_more(struct loadgen *lg)
{
	unsigned window = lg->cfg->connect_window;
	uint64_t now = now_ns();

	while (lg->next_open < lg->nconns &&
	    (lg->opening < window || lg->cfg->mode == LOADGEN_CHURN)) {
		struct lg_conn *c = &lg->conns[lg->next_open++];

		lg->opening++;
		lg_connect(lg, c, now);
	}
}

/* True when every live connection has had all its bytes echoed. */
static int lg_drained(const struct loadgen *lg)
{
	unsigned i;

	for (i = 0; i < lg->nconns; i++) {
		const struct lg_conn *c = &lg->conns[i];

		if (c->state == LG_CONNECTING || c->state == LG_HANDSHAKE ||
		    (c->state == LG_OPEN && c->recvd < c->want))
			return 0;
	}
	return 1;
}

static void lg_drain_timeout(struct loadgen *lg)
{
	unsigned i;

	for (i = 0; i < lg->nconns; i++) {
		struct lg_conn *c = &lg->conns[i];

		if (c->state == LG_CONNECTING || c->state == LG_HANDSHAKE ||
		    (c->state == LG_OPEN && c->recvd < c->want))
			lg_fail(lg, c, "%llu of %llu bytes not echoed "
			    "within %.1f s of the end",
			    (unsigned long long)(c->want - c->recvd),
			    (unsigned long long)c->want,
			    lg->cfg->drain_timeout);
	}
}

/* The connections opened idle; from the warm-up on they get busy. */
static void lg_start_traffic(struct loadgen *lg)
{
	uint64_t now = now_ns();
	unsigned i;

	if (lg->phase == LOADGEN_OPENING || lg->phase >= LOADGEN_DRAIN)
		return;
	for (i = 0; i < lg->nconns; i++)
		if (lg->conns[i].state == LG_OPEN)
			lg_top_up(lg, &lg->conns[i], now);
}

void *loadgen_run(void *arg)
{
	struct loadgen *lg = arg;
	struct epoll_event evs[MAX_EVENTS];
	uint64_t drain_deadline = 0;
	unsigned i;

	lg->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (lg->epfd < 0) {
		fprintf(stderr, "echobench: epoll_create1: %s\n",
		    strerror(errno));
		abort();
	}
	for (;;) {
		int phase = lg_phase(lg), n;

		if (phase != lg->phase) {
			lg->phase = phase;
			lg_start_traffic(lg);
		}
		if (phase < LOADGEN_DRAIN)
			lg_open_more(lg);
		else if (!drain_deadline)
			drain_deadline = now_ns() +
			    (uint64_t)(lg->cfg->drain_timeout * 1e9);
		lg_publish(lg);
		if (drain_deadline) {
			if (lg->cfg->mode == LOADGEN_HOLD || lg_drained(lg))
				break;
			if (now_ns() >= drain_deadline) {
				lg_drain_timeout(lg);
				break;
			}
		}
		n = epoll_wait(lg->epfd, evs, MAX_EVENTS, 20);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "echobench: epoll_wait: %s\n",
			    strerror(errno));
			abort();
		}
		for (i = 0; (int)i < n; i++)
			lg_event(lg, evs[i].data.ptr, evs[i].events);
	}
	for (i = 0; i < lg->nconns; i++)
		lg_close(lg, &lg->conns[i]);
	lg_publish(lg);
	return NULL;
}
