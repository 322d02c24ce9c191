/*
 * One client connection, served by its worker's event loop.  Every function
 * here runs on the owning worker's thread.
 *
 * DESIGN
 * A connection is a socket bufferevent whose read side we take over and
 * whose write side libevent keeps:
 *
 * - Read.  libevent 2.1's socket bufferevent reads at most 4 KiB per
 *   callback and asks FIONREAD first (DESIGN.md, facts 1 and 2).  We point
 *   the bufferevent's own read event (bev->ev_read, from the public
 *   bufferevent_struct.h) at conn.c's callback, which does one large read(2)
 *   into the worker's scratch buffer.  Because it is still the bufferevent's
 *   event, bufferevent_enable/disable(EV_READ) and the read (idle) timeout
 *   keep working, and the connection costs no extra event.
 *
 * - Write.  Replies go out eagerly: while the output buffer is empty,
 *   conn_send() writes straight to the socket, so a ping-pong echo costs one
 *   read and one write.  Only the unsent remainder goes to the bufferevent's
 *   output, which libevent then writes when the socket is writable.
 *
 * - Backpressure.  Past high_water bytes of output, reading stops and the
 *   write low-watermark is set to low_water; the write callback resumes
 *   reading (DESIGN.md, fact 3: never a read high-watermark).
 *
 * - Closing.  bufferevent_free() drops pending output (fact 4), so
 *   conn_close() first stops reading, lets the output drain, and frees on
 *   the write callback, with a write timeout as the fallback.  If the
 *   kernel still holds unacknowledged output then, it sends FIN and waits
 *   for the client's EOF (a lingering close), because close() with unread
 *   input sends RST, which discards that output.
 */
#ifndef CONN_H
#define CONN_H

#include <stddef.h>

struct conn;
struct worker;

/*
 * Serves the connected socket @fd on @w.  @fd is taken over either way: on
 * failure it is closed and counted in the worker's errors, and NULL is
 * returned.  The connection then lives until it closes itself.
 */
struct conn *conn_new(struct worker *w, int fd);

/* Queues @len bytes of @buf (borrowed; copied if not sent at once) for the
 * client.  May free @c on a write error: do not use @c afterwards. */
void conn_send(struct conn *c, const void *buf, size_t len);

/* Stops reading, sends what is pending, then frees @c.  May free @c at
 * once.  Idempotent. */
void conn_close(struct conn *c);

/* Frees @c now, dropping (and counting) any pending output. */
void conn_free(struct conn *c);

/* The next connection of the same worker, for walking w->conns. */
struct conn *conn_next(const struct conn *c);

#endif
