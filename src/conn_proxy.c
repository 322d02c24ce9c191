/*
 * PROXY protocol listeners (conn.h, "PROXY header"): the phase before the
 * handler sees a connection, while it waits for the header that names the
 * client.  The header is parsed where it lies: in the read buffer when it
 * came in one read, as it nearly always does, or in c->header when it
 * came in pieces.  Reads are capped so that c->header never holds more
 * than PROXY_HEADER_MAX bytes, and whatever follows the header in them is
 * the client's first payload, handed to the handler right after its
 * open().  The parser itself is proxy.c.
 */
#include "conn.h"
#include "conn_impl.h"

#include "log.h"
#include "netaddr.h"
#include "proxy.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

/* The first allocation for a header in pieces: any v1 line, a v2 with
 * IPv6 addresses and a few TLVs.  It grows to PROXY_HEADER_MAX. */
#define CONN_HEADER_BUF 256

static void timespec_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

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
int conn_header_begin(struct conn *c)
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

void conn_header_read(struct conn *c, short what)
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
