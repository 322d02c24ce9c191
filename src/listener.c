/*
 * Listening sockets; see listener.h for the EMFILE design.
 */
#include "listener.h"

#include "log.h"
#include "netaddr.h"
#include "common/xalloc.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long a listener rests after running out of descriptors. */
#define LISTENER_BACKOFF_MS 50

/* Waiting clients shed per EMFILE, so one callback stays short. */
#define LISTENER_SHED_MAX 256

struct listener {
	struct evconnlistener *evl;
	struct event *backoff;
	int reserve_fd;		/* /dev/null, given up to shed clients */
	listener_accept_fn *cb;
	void *arg;
	struct listener_stats *stats;
	struct sockaddr_storage addr;	/* as bound */
};

static void listener_accept_cb(struct evconnlistener *evl,
    evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;

	stat_add(&l->stats->accepted, 1);
	l->cb(fd, l->arg);
}

static int open_reserve(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Out of descriptors: use the reserve slot to accept and close waiting
 * clients, then rest. */
static void listener_shed(struct listener *l)
{
	struct timeval tv = { 0, LISTENER_BACKOFF_MS * 1000 };
	int lfd = evconnlistener_get_fd(l->evl);
	int n = 0;

	if (l->reserve_fd >= 0) {
		close(l->reserve_fd);
		l->reserve_fd = -1;
	}
	for (; n < LISTENER_SHED_MAX; n++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			break;
		close(fd);
	}
	stat_add(&l->stats->shed, (uint64_t)n);
	l->reserve_fd = open_reserve();
	evconnlistener_disable(l->evl);
	evtimer_add(l->backoff, &tv);
	log_verbose("out of descriptors: shed %d waiting clients, pausing "
	    "accepts for %d ms", n, LISTENER_BACKOFF_MS);
}

static void listener_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();

	stat_add(&l->stats->accept_errors, 1);
	if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM) {
		listener_shed(l);
	} else {
		log_warn("accept: %s", strerror(err));
	}
}

static void listener_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	if (l->reserve_fd < 0)
		l->reserve_fd = open_reserve();
	evconnlistener_enable(l->evl);
}

/* Wraps the bound socket @fd in an evconnlistener with the EMFILE
 * handling.  Once l->evl is set it owns @fd, failure or not; before that
 * @fd is still the caller's to close. */
static int listener_arm(struct listener *l, struct event_base *base, int fd,
    int backlog)
{
	l->evl = evconnlistener_new(base, listener_accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE, backlog, fd);
	if (!l->evl)
		return -1;
	evconnlistener_set_error_cb(l->evl, listener_error_cb);
	l->backoff = evtimer_new(base, listener_backoff_cb, l);
	l->reserve_fd = open_reserve();
	if (!l->backoff || l->reserve_fd < 0)
		return -1;
	return 0;
}

struct listener *listener_new(struct event_base *base,
    const struct sockaddr *sa, socklen_t len, unsigned flags, int backlog,
    listener_accept_fn *cb, void *arg, struct listener_stats *stats)
{
	struct listener *l = xcalloc(1, sizeof(*l));
	socklen_t alen = sizeof(l->addr);
	int one = 1, v6only = !(flags & LISTENER_DUAL_STACK);
	int fd, err;

	l->reserve_fd = -1;
	l->cb = cb;
	l->arg = arg;
	l->stats = stats;
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		goto fail;
	/* Before bind(), as the group requires (docs/design.md, fact P6). */
	if ((flags & LISTENER_REUSEPORT) &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		goto fail;
	if (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &v6only, sizeof(v6only)))
		goto fail;
	if (bind(fd, sa, len) ||
	    getsockname(fd, (struct sockaddr *)&l->addr, &alen))
		goto fail;
	/* evconnlistener_new() calls listen() with the backlog. */
	if (listener_arm(l, base, fd, backlog))
		goto fail;
	return l;

fail:
	err = errno;
	if (fd >= 0 && !l->evl)
		close(fd);
	listener_free(l);
	errno = err;
	return NULL;
}

struct listener *listener_adopt(struct event_base *base, int fd,
    listener_accept_fn *cb, void *arg, struct listener_stats *stats)
{
	struct listener *l = xcalloc(1, sizeof(*l));
	socklen_t alen = sizeof(l->addr);
	int flags, err;

	l->reserve_fd = -1;
	l->cb = cb;
	l->arg = arg;
	l->stats = stats;
	/* Passed sockets are blocking unless the unit says otherwise, and
	 * accepting must never block the main thread (docs/design.md,
	 * fact O2). */
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) ||
	    getsockname(fd, (struct sockaddr *)&l->addr, &alen))
		goto fail;
	/* Backlog 0: already listening, with the backlog its binder chose
	 * (the socket unit's Backlog=; fact O2). */
	if (listener_arm(l, base, fd, 0))
		goto fail;
	return l;

fail:
	err = errno;
	if (!l->evl)
		close(fd);
	listener_free(l);
	errno = err;
	return NULL;
}

void listener_free(struct listener *l)
{
	if (!l)
		return;
	if (l->evl)
		evconnlistener_free(l->evl);
	if (l->backoff)
		event_free(l->backoff);
	if (l->reserve_fd >= 0)
		close(l->reserve_fd);
	free(l);
}

void listener_address(const struct listener *l, char *buf, size_t size)
{
	netaddr_format((const struct sockaddr *)&l->addr, buf, size);
}

int listener_port(const struct listener *l)
{
	const struct sockaddr *sa = (const struct sockaddr *)&l->addr;

	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}
