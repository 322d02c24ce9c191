/*
 * The commands of the resp handler: the command table, looking a command
 * up by name (ASCII case-insensitive), checking its arity, and running it
 * against the shared store (store.h), with redis 7.0's replies and error
 * texts.  Internal to src/proto/ and its tests.
 *
 * DESIGN
 * Files.  resp_cmd.c holds the table, the dispatch and the key-value
 * commands; resp_server.c the connection and server commands (PING, QUIT,
 * HELLO, CLIENT, COMMAND, CONFIG, INFO, ...).  Both reply only through
 * resp_reply.h, during data().
 *
 * Offload.  DEBUG SLEEP is the one command that may run on the offload
 * pool (proto.h, "Offloading work"): with --offload it sleeps there and
 * its +OK comes back in its place; without, it sleeps on the worker, as
 * redis does.
 *
 * Threads.  Commands run on the worker that owns the connection and keep
 * nothing mutable outside struct resp_conn, except the connection id
 * counter, which is atomic.  The store is shared by every worker and
 * locks itself; a command makes one store call per key, so a multi-key
 * command (MSET, MGET, DEL, EXISTS) is not atomic across keys.
 *
 * No store.  With conn_config()->store NULL (the unit tests of other
 * handlers, or a server that made none) the data commands reply
 * RESP_ERR_NO_STORE; the others work.
 */
#ifndef PROTO_RESP_CMD_H
#define PROTO_RESP_CMD_H

#include "proto/proto.h"
#include "proto/resp_parse.h"
#include "pubsub.h"

#include <stddef.h>
#include <stdint.h>

/* The redis version resp claims (INFO, HELLO); clients check it for
 * features, and resp speaks 7.0's dialect of RESP2. */
#define RESP_REDIS_VERSION "7.0.0"

#define RESP_ERR_NO_STORE "ERR no key space on this server"
#define RESP_ERR_SYNTAX "ERR syntax error"
#define RESP_ERR_NOT_INT "ERR value is not an integer or out of range"
#define RESP_ERR_OVERFLOW "ERR increment or decrement would overflow"
#define RESP_ERR_OOM \
	"OOM command not allowed when used memory > 'maxmemory'."

/* A resp connection's state block (the ops' state_size), zeroed at open;
 * resp_conn_release() frees what it holds. */
struct resp_conn {
	struct resp_parser parser;
	uint64_t id;		/* CLIENT ID, HELLO; unique per server */
	char *name;		/* CLIENT SETNAME; owned, or NULL */
	size_t name_len;

	/* Pub/sub (resp_pubsub.c). */
	struct conn *conn;	/* whose state this is */
	struct pubsub_local *ps;	/* its worker's, once used */
	struct pubsub_sub sub;	/* subscribed mode while it has any */
	struct pubsub_waiter waiter;	/* a publisher waiting for credit */
	bool published;		/* PUBLISH in this read: flush after */
	char *ps_out;		/* messages of the batch running */
	size_t ps_len, ps_cap;
	size_t ps_base;		/* output pending when the batch began */
	const struct proto_pubsub_limit *limit;	/* conn_config()'s */
	uint64_t soft_since;	/* ms over the soft limit since; 0: not */
};

/* Sets up @rc (borrowed), the state of @c: its connection id. */
void resp_conn_init(struct resp_conn *rc, struct conn *c);

/* Frees what @rc holds. */
void resp_conn_release(struct resp_conn *rc);

/* Returned by a command that could not start now (conn_offload() said
 * -EAGAIN): its request must stay unconsumed, to be run again. */
#define RESP_CMD_AGAIN (-2)

/*
 * Runs the request of @argc >= 1 arguments @argv (borrowed) on @c,
 * replying to it, or with redis's error for an unknown command or a wrong
 * number of arguments.  Returns 0, PROTO_CLOSE after QUIT's reply, or
 * RESP_CMD_AGAIN.
 */
int resp_cmd_run(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc);

/* Commands in the table (COMMAND COUNT). */
size_t resp_cmd_count(void);

/* --- shared by resp_cmd.c and resp_server.c ----------------------------- */

typedef int resp_cmd_fn(struct conn *c, struct resp_conn *rc,
    const struct resp_arg *argv, size_t argc);

/* 1 if @a is @word (lowercase, NUL-terminated) in any ASCII case. */
int resp_arg_is(const struct resp_arg *a, const char *word);

/* "wrong number of arguments for '@name' command"; @name is the full
 * lowercase name ("config|get"). */
void resp_reply_arity(struct conn *c, const char *name);

/* "unknown subcommand 'SUB'. Try CMD HELP." for argv[1] of argv[0]. */
void resp_reply_unknown_subcommand(struct conn *c,
    const struct resp_arg *argv);

resp_cmd_fn resp_cmd_ping, resp_cmd_echo, resp_cmd_quit, resp_cmd_select,
    resp_cmd_hello, resp_cmd_client, resp_cmd_command, resp_cmd_config,
    resp_cmd_info, resp_cmd_debug;

/* --- pub/sub, in resp_pubsub.c ------------------------------------------ */

#define RESP_ERR_NO_PUBSUB "ERR no pub/sub on this server"

resp_cmd_fn resp_cmd_subscribe, resp_cmd_unsubscribe, resp_cmd_psubscribe,
    resp_cmd_punsubscribe, resp_cmd_publish, resp_cmd_pubsub;

/* True while @rc is subscribed to anything: RESP2's subscribed mode. */
static inline bool resp_subscribed(const struct resp_conn *rc)
{
	return pubsub_sub_count(&rc->sub) > 0;
}

/* After the requests of one read: sends what they published, and holds
 * the connection's input if too much is in flight (pubsub.h). */
void resp_pubsub_after_read(struct conn *c, struct resp_conn *rc);

/* The connection is closing: unsubscribes it from everything, so that it
 * gets no more messages while it flushes.  Idempotent. */
void resp_pubsub_release(struct resp_conn *rc);

#endif
