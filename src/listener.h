/*
 * A listening socket on the main thread's event_base: binding, accepting,
 * and surviving descriptor exhaustion.
 *
 * DESIGN
 * libevent's evconnlistener reports EMFILE to its error callback but stays
 * enabled, so level-triggered epoll would spin at 100% CPU while the
 * backlog is full (docs/design.md, fact 5).  On EMFILE or ENFILE a listener
 * closes its reserve descriptor to accept and close the waiting clients,
 * so that they see a close rather than a hang, reopens the reserve, and
 * stops polling for a short back-off, after which it tries again by itself.
 * What to do with an accepted socket is the caller's policy (server.c).
 */
#ifndef LISTENER_H
#define LISTENER_H

#include "stats.h"

#include <sys/socket.h>

struct event_base;
struct listener;

/* Called on the main thread with an accepted non-blocking socket, which
 * the callback takes over. */
typedef void listener_accept_fn(int fd, void *arg);

/* How a listener binds. */
enum listener_flags {
	LISTENER_DUAL_STACK = 1 << 0,	/* IPv6 that takes IPv4 too */
	/* SO_REUSEPORT: other processes may bind the same port, and the
	 * kernel spreads new connections over them all */
	LISTENER_REUSEPORT = 1 << 1,
};

/*
 * Binds @sa (borrowed) and listens with @backlog on @base (borrowed, must
 * outlive the listener).  IPv6 addresses are v6-only unless @flags has
 * LISTENER_DUAL_STACK.  @stats (borrowed) gets the accept counters.
 * Returns the listener, which the caller frees with listener_free(), or
 * NULL with errno set.
 */
struct listener *listener_new(struct event_base *base,
    const struct sockaddr *sa, socklen_t len, unsigned flags, int backlog,
    listener_accept_fn *cb, void *arg, struct listener_stats *stats);

/*
 * Like listener_new(), for @fd, a socket already bound and listening
 * (one systemd passed, socket activation).  The listener takes @fd over,
 * and closes it if this fails.  Returns the listener, or NULL with errno
 * set.
 */
struct listener *listener_adopt(struct event_base *base, int fd,
    listener_accept_fn *cb, void *arg, struct listener_stats *stats);

/* Closes the socket and frees @l. */
void listener_free(struct listener *l);

/* Writes the bound address as text ("127.0.0.1:5555") into @buf. */
void listener_address(const struct listener *l, char *buf, size_t size);

/* The bound port, useful after binding port 0. */
int listener_port(const struct listener *l);

#endif
