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
 * A tls+ listener likewise opens the handler once the TLS handshake is
 * done; the handler sees the decrypted stream.
 *
 * Across threads.  The calls for a connection all run on its worker; what
 * comes from elsewhere (another worker, a pool job, a timer) reaches it as
 * a message to that worker, and a slow request can be handed to the
 * offload pool: see "Across threads", "Tickers" and "Offloading work"
 * below, and docs/protocols.md.
 *
 * Closing.  A handler may reply and then return PROTO_CLOSE from the same
 * call.  The connection is never freed under a handler: it sends the
 * replies gathered so far, flushes them like any close (docs/design.md,
 * "Closing without losing bytes"), and frees itself after the call.
 */
#ifndef PROTO_H
#define PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <stdint.h>

struct conn;
struct conn_env;
struct msg_hub;
struct offload;
struct pubsub;
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
	struct msg_hub *hub;	/* every worker, for messages across
				 * threads ("Across threads" below);
				 * NULL where there is no server */
	struct offload *offload;	/* the --offload pool, for
					 * conn_offload(); NULL: off */
	struct pubsub *pubsub;	/* resp's channels, shared by every
				 * worker (pubsub.h); NULL: none */
	struct proto_pubsub_limit {
		size_t hard;	/* a subscriber's pending output past
				 * which it is closed; 0: none */
		size_t soft;	/* ... past which for seconds; 0: none */
		double seconds;
	} pubsub_limit;		/* --pubsub-limit */

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

	/*
	 * Optional.  Someone called msg_wake() with this connection's id:
	 * runs on the owning worker, with no input, as a handler call (it
	 * may reply, and may return PROTO_CLOSE to close after its
	 * replies).  Wakes of a closing connection are dropped.  Without
	 * it, a wake does nothing.
	 */
	int (*wake)(struct conn *c, void *state);

	/*
	 * Optional.  Frees the handler's per-worker state (see
	 * conn_env_local()), once per worker that made some, when the
	 * worker is released: after its thread has stopped and every one
	 * of its connections is gone.  Runs on the releasing thread.
	 */
	void (*worker_release)(struct conn_env *env, void *local);
};

/*
 * Queues @len bytes of @buf (borrowed until return) as a reply on @c.
 * Inside a handler call on @c (open(), data(), eof(), wake()), or on
 * @c's worker outside one ("Replying outside a handler call" below).
 * Never frees @c: a write error is noticed, and @c closed, after the
 * handler returns (outside a call, on a later turn of the loop).
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

/*
 * Across threads.
 *
 * A handler call runs on the connection's worker and may touch only that
 * connection, and (through conn_env_find()) the other connections of the
 * same worker.  Work for a connection of another worker, or from a thread
 * that is not a worker (a pool job, say), is a message: it goes through
 * the destination worker's queue and notify pipe, which wakes it once per
 * burst, and the worker runs it between handler calls (docs/design.md,
 * "Cross-worker messages").
 *
 * Connections are addressed by id, never by pointer.  An id is unique for
 * the life of the server and never reused, and names its worker
 * (conn_id_worker()), so any thread can route by id alone.  A message for
 * a connection that has gone is dropped and counted (msgs_dropped in the
 * statistics), never dereferenced.
 */

/* @c's id; never 0.  Owning worker only, like every call on @c. */
uint64_t conn_id(const struct conn *c);

/* The index of the worker that owns connection @id, from the id alone
 * (any thread). */
#define CONN_ID_WORKER_SHIFT 48
static inline int conn_id_worker(uint64_t id)
{
	return (int)(id >> CONN_ID_WORKER_SHIFT);
}

/* The worker that owns @c, as a handler sees it (borrowed, lives as long
 * as the server).  Owning worker only. */
struct conn_env *conn_worker(struct conn *c);

/* @env's index, 0 to msg_hub_workers() - 1.  Any thread. */
int conn_env_index(const struct conn_env *env);

/* The handler settings of @env's server, its hub (for the worker count
 * and for posting on) included, for a message function or a ticker that
 * has no connection to ask; borrowed, as long as the server.  Any
 * thread. */
const struct proto_config *conn_env_config(const struct conn_env *env);

/* The connection @id if @env owns it and it is open, or NULL.  Borrowed
 * until the caller returns to the loop.  @env's thread only. */
struct conn *conn_env_find(struct conn_env *env, uint64_t id);

/*
 * A slot for per-worker state of the handler @ops, NULL at first; the
 * handler allocates what it likes and stores it there, and frees it in
 * ops->worker_release().  Returns NULL only if the worker has no slot
 * left (CONN_ENV_LOCALS handlers).  @env's thread only.
 */
#define CONN_ENV_LOCALS 8
void **conn_env_local(struct conn_env *env, const struct proto_ops *ops);

/*
 * Output queued on @c and not yet taken by the socket, in bytes: the
 * figure for a cap like redis's client-output-buffer-limit.  Owning
 * worker only.
 */
size_t conn_output_size(const struct conn *c);

/*
 * Closes @c now, dropping its pending output (counted in dropped_bytes),
 * as a cap on a slow reader must.  From inside a handler call on @c
 * itself it is done when the call returns; elsewhere (a message, a
 * ticker, another connection's call) @c is freed, and its release()
 * run, before conn_abort() returns.  Owning worker only.
 */
void conn_abort(struct conn *c);

/*
 * Replying outside a handler call.  conn_reply() also works from a
 * message function, a ticker and another connection's handler call, on
 * the owning worker.  The rules are those of a handler call: the reply
 * is copied; the replies to one connection are gathered until the
 * worker replies to another connection or returns to its loop, then
 * written with one write(2) while the output buffer is empty; past
 * --high-water of pending output the connection stops being read.
 * (Inside another connection's handler call, replies to @c are written
 * at once, ungathered.)
 */

/*
 * Tickers: a per-worker timer for a handler (evio's Tick).  @fn(env,
 * @arg) runs on @env's thread every @seconds (at least a microsecond),
 * between handler calls, and may reply to @env's connections
 * (conn_env_find()) as a message may.  A handler typically starts one
 * per worker the first time it needs it, keeps it in its
 * conn_env_local() state and frees it in ops->worker_release().
 * @env's thread only (conn_env_ticker_free() also from worker_release).
 * Returns NULL if out of memory.
 */
struct proto_ticker;
typedef void proto_tick_fn(struct conn_env *env, void *arg);
struct proto_ticker *conn_env_ticker_new(struct conn_env *env,
    double seconds, proto_tick_fn *fn, void *arg);

/* Stops and frees @t (taken over; may be NULL). */
void conn_env_ticker_free(struct proto_ticker *t);

/* A function run on a worker by msg_call(); @env is that worker. */
typedef void msg_fn(struct conn_env *env, void *arg);

/* The number of workers; any thread.  0 for a NULL @hub. */
int msg_hub_workers(const struct msg_hub *hub);

/*
 * Runs @fn(env, @arg) on worker @worker, between its handler calls,
 * exactly once.  If the worker has already stopped, @fn still runs, on
 * the thread that releases it, when no connection is left: so @fn may
 * always free @arg.  Calls posted to one worker run in the order they
 * were posted by any one thread.  Any thread.  Returns 0 (@arg is then
 * @fn's), or -EINVAL (no such worker) or -ENOMEM, in which case @fn
 * never runs and the caller keeps @arg.
 */
int msg_call(struct msg_hub *hub, int worker, msg_fn *fn, void *arg);

/*
 * Sends @len bytes of @buf (borrowed; copied) to connection @id, as if
 * its worker had replied them outside a handler call.  Any thread.
 * Returns 0 (queued; dropped and counted if the connection is gone by
 * then), -EINVAL (an id of no worker) or -ENOMEM.
 */
int msg_reply(struct msg_hub *hub, uint64_t id, const void *buf,
    size_t len);

/*
 * Makes connection @id's ops->wake() run on its worker, as evio's Wake
 * does.  Any thread, a pool job included.  Returns 0, -EINVAL or
 * -ENOMEM, as msg_reply().
 */
int msg_wake(struct msg_hub *hub, uint64_t id);

/*
 * Offloading work.
 *
 * With --offload the server runs a pool of threads (--offload-threads),
 * and a handler may hand a slow request to it instead of running it on
 * the worker, which then goes on serving its other connections.  The job
 * runs on a pool thread and builds its reply with proto_job_reply(); the
 * reply comes back to the owning worker through its queue, which writes
 * it in its place: a connection's replies keep their request order, those
 * made inline after a job waiting behind it, however the jobs finish.
 *
 * A job must not touch any connection, or anything a worker may touch
 * without a lock: it has its argument, and it returns bytes.  If its
 * connection goes away first, it is cancelled: not run if it has not
 * started, and proto_job_cancelled() says so to a long job that has.
 * At shutdown, queued jobs of open connections still run and their
 * replies are flushed within --grace; the rest are cancelled.
 */
struct proto_job;

/* A job's body, on a pool thread: @arg is what conn_offload() was
 * given. */
typedef void proto_job_fn(struct proto_job *job, void *arg);

/* Frees a job's argument; on a pool thread, or wherever the job is
 * cancelled. */
typedef void proto_free_fn(void *arg);

/*
 * Submits run(job, @arg) for @c, inside a handler call on @c.  Returns:
 * - 0: submitted.  @arg is the job's: @free_arg (may be NULL) is called
 *   on it exactly once, after run() or instead of it.
 * - -EOPNOTSUPP: there is no pool (no --offload): do the work inline.
 * - -EAGAIN: @c has CONN_MAX_JOBS (conn.h) jobs in flight, or the pool's
 *   queue is full.  Consume nothing from this request on: return the
 *   bytes before it.  @c is then not read until it can go on, when
 *   data() is given the unconsumed input again.  This is how a full
 *   pool holds a connection back without ever blocking its worker.
 * - -ENOMEM.
 * On error the caller keeps @arg.
 */
int conn_offload(struct conn *c, proto_job_fn *run, void *arg,
    proto_free_fn *free_arg);

/* Appends @len bytes of @buf (borrowed; copied) to @job's reply.  Only
 * inside run(). */
void proto_job_reply(struct proto_job *job, const void *buf, size_t len);

/* Non-zero once @job's connection has gone: a long job may stop early.
 * Only inside run(). */
int proto_job_cancelled(const struct proto_job *job);

/* The id of @job's connection (for msg_wake(), say); any thread. */
uint64_t proto_job_conn(const struct proto_job *job);

/*
 * Stops (@hold true) or resumes reading @c's socket, for a handler that
 * must wait for something other than its own output, as resp's PUBLISH
 * waits for its messages to drain (src/pubsub.h, "Flow control").
 * Independent of the output backpressure: reading resumes when neither
 * holds it.  Owning worker only.
 */
void conn_hold_input(struct conn *c, bool hold);

/* Counts @c in output_overflows: closed for output over the handler's
 * cap (resp's pub/sub limit); call it next to conn_abort(). */
void conn_count_overflow(struct conn *c);

/* The built-in handlers, NULL-terminated, in --protocols order. */
extern const struct proto_ops *const proto_handlers[];

/* The handler called @name, or NULL. */
const struct proto_ops *proto_find(const char *name);

#endif
