/*
 * The protocol-handler interface: what a handler implements, and the few
 * calls it may make on its connection.  A handler never sees libevent, a
 * socket or a thread.  It is given bytes, replies with conn_reply(), and
 * says how many of the bytes it consumed.  Each listener picks one handler
 * (--listen NAME@ADDR); docs/protocols.md shows how to add one.
 *
 * DESIGN
 * Threads.  Every call for one connection runs on the worker thread that
 * owns it, one call at a time.  An ops table is const and shared by all
 * workers; anything per connection lives in the state block, which the
 * connection allocates with itself (state_size bytes, zeroed, aligned for
 * any type) and frees after release().
 *
 * Input.  data() is given every byte of the connection it has not yet
 * consumed.  It returns how many it consumed, from the front; the rest is
 * kept by the connection and given again, followed by new bytes, at the
 * next call.  Kept input is stored only while there is some, so an idle
 * connection pays nothing for it, and never beyond ops->max_pending bytes:
 * past that the connection is closed.  A handler with a frame limit of its
 * own (the line handlers' --max-line) checks it in data(), which sees all
 * of its unconsumed input each time, so that the same limit holds however
 * the bytes were split into reads.
 *
 * Output.  Replies are gathered: everything a handler replies while
 * handling one read is written once, after data() returns, with one
 * write(2) or writev(2); only what the socket does not take is copied into
 * the connection's output buffer.  conn_reply() copies @buf, except when
 * @buf lies inside the input that data() was given, which stays valid
 * until that write: echoing input back costs no copy.
 *
 * PROXY listeners.  On a proxy+ listener (-l proxy+NAME@ADDR) the
 * connection reaches the handler only once its PROXY protocol header is
 * complete and valid: open() is called then, never before, so nothing is
 * sent (a banner included) to a client that has not sent one, and
 * data() never sees the header.  A connection closed before that never
 * reaches the handler: neither open() nor release() is called for it.
 *
 * Closing.  A handler may reply and then return PROTO_CLOSE from the same
 * call.  The connection is never freed under a handler: it sends the
 * replies gathered so far, flushes them like any close (docs/design.md,
 * "Closing without losing bytes"), and frees itself after the call.
 */
#ifndef PROTO_H
#define PROTO_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <stdint.h>

struct conn;
struct store;

/* Returned by open() or data() to close the connection. */
#define PROTO_CLOSE (-1)

/* Server-wide figures, summed over the workers, for a handler that
 * reports them (resp's INFO). */
struct proto_stats {
	uint64_t conns_open;
	uint64_t conns_total;	/* served since start */
	uint64_t requests;	/* counted with conn_count_requests() */
	uint64_t bytes_in, bytes_out;
	double uptime;		/* seconds */
	int workers;
	int port;		/* the first listener's */
};

/* What the server gives the handlers: the operator's settings and the
 * shared state.  One per server, read-only while it runs. */
struct proto_config {
	const char *banner;	/* line that greeting handlers send on
				 * connect, without its ending; NULL: none */
	size_t max_line;	/* longest line the line handlers take,
				 * without its ending; at most
				 * PROTO_MAX_LINE_LIMIT */
	size_t max_bulk;	/* longest bulk string resp takes; at most
				 * PROTO_MAX_BULK_LIMIT */
	struct store *store;	/* the key space resp serves; shared by
				 * every worker, thread-safe (store.h) */
	size_t max_memory;	/* the store's limit, for INFO; 0: none */

	/* Fills @out; callable from any worker thread.  NULL where there
	 * is no server (the unit tests). */
	void (*stats)(const struct proto_config *cfg, struct proto_stats *out);
};

/* The largest --max-line, so that a line handler's max_pending, which
 * must hold a whole line, can be a constant. */
#define PROTO_MAX_LINE_LIMIT ((size_t)64 << 20)

/* The largest and the default --max-bulk: redis's proto-max-bulk-len. */
#define PROTO_MAX_BULK_LIMIT ((size_t)512 << 20)

struct proto_ops {
	const char *name;	/* for --listen NAME@ADDR and --protocol */
	const char *summary;	/* one line for --protocols */
	size_t state_size;	/* per-connection state; may be 0 */
	size_t max_pending;	/* most unconsumed input kept; 0: none */

	/*
	 * Optional.  The connection is set up; @state is zeroed.  May reply
	 * (a banner).  Returns 0, or PROTO_CLOSE to close it after sending
	 * what it replied.
	 */
	int (*open)(struct conn *c, void *state);

	/*
	 * Required.  @in (@len > 0 bytes) is borrowed until the call
	 * returns.  Returns the number of bytes consumed from the front of
	 * @in (0 to @len), or PROTO_CLOSE to close the connection after the
	 * replies made so far; unconsumed input is then dropped.
	 */
	ssize_t (*data)(struct conn *c, void *state, const char *in,
	    size_t len);

	/*
	 * Optional.  The client has shut down its sending side.  @in holds
	 * the @len bytes (possibly none) that data() left unconsumed,
	 * borrowed until return.  May reply; the connection then flushes
	 * and closes.
	 */
	void (*eof)(struct conn *c, void *state, const char *in,
	    size_t len);

	/*
	 * Optional.  The connection is about to be freed; frees what the
	 * handler allocated.  Called exactly once for every connection that
	 * reached the handler (see "PROXY listeners" above),
	 * whatever open() returned (state is zeroed before open(), so it
	 * can tell what open() got to).  Must not reply.
	 */
	void (*release)(struct conn *c, void *state);
};

/*
 * Queues @len bytes of @buf (borrowed until return) as a reply on @c.
 * Only for use inside open(), data() and eof().  Never frees @c: a write
 * error is noticed, and @c closed, after the handler returns.
 */
void conn_reply(struct conn *c, const void *buf, size_t len);

/* The handler settings @c was opened with; borrowed, as long as @c. */
const struct proto_config *conn_config(const struct conn *c);

/* Adds @n to the requests the server has served (proto_stats.requests);
 * one call per data() keeps it cheap. */
void conn_count_requests(struct conn *c, uint64_t n);

/*
 * The client's address, borrowed for as long as @c, with its length in
 * *@len (if @len is not NULL): on a proxy+ listener the source that the
 * PROXY header named, otherwise (and for a LOCAL header, a health check)
 * the socket's peer.  NULL, with *@len 0, if the client vanished before
 * its address could be read.
 */
const struct sockaddr *conn_peer(const struct conn *c, socklen_t *len);

/* The built-in handlers, NULL-terminated, in --protocols order. */
extern const struct proto_ops *const proto_handlers[];

/* The handler called @name, or NULL. */
const struct proto_ops *proto_find(const char *name);

#endif
