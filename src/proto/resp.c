/*
 * resp: the redis protocol (RESP2) on the shared store, so that redis-cli
 * and redis-benchmark work against echoserver as against redis-server
 * (docs/resp.md).  This file is the handler itself: per read, it parses
 * as many complete requests as the input holds (resp_parse.h), runs each
 * (resp_cmd.h), and consumes what it ran; a partial request is left for
 * the next read.  All replies to one read are gathered by the connection
 * and go out in one write, which is what makes pipelining cheap.
 */
#include "proto/proto.h"
#include "proto/resp_cmd.h"
#include "proto/resp_parse.h"
#include "proto/resp_reply.h"

/*
 * The most input kept for a partial request: redis's default
 * client-query-buffer-limit (1 GiB), twice the largest bulk, so that a
 * SET with the largest value and any sensible key fits.  A request
 * larger still makes the connection close without a reply, as redis
 * closes a client over that limit.
 */
#define RESP_MAX_PENDING ((size_t)1 << 30)

static int resp_open(struct conn *c, void *state)
{
	resp_conn_init(state, c);
	return 0;
}

/* conn_config()->max_bulk, with 0 (a config that does not set it) read
 * as the default, and capped so that a request fits RESP_MAX_PENDING. */
static size_t resp_max_bulk(const struct conn *c)
{
	size_t max = conn_config(c)->max_bulk;

	return max && max < PROTO_MAX_BULK_LIMIT ? max : PROTO_MAX_BULK_LIMIT;
}

static ssize_t resp_data(struct conn *c, void *state, const char *in,
    size_t len)
{
	struct resp_conn *rc = state;
	size_t max_bulk = resp_max_bulk(c), pos = 0;
	uint64_t requests = 0;
	ssize_t ret = 0;

	while (pos < len) {
		size_t used = 0;
		enum resp_parse_status st = resp_parse(&rc->parser, in + pos,
		    len - pos, max_bulk, &used);

		if (st == RESP_PARSE_MORE)
			break;
		if (st == RESP_PARSE_ERROR) {
			resp_reply_error(c, rc->parser.err);
			ret = PROTO_CLOSE;
			break;
		}
		pos += used;
		if (rc->parser.argc == 0)
			continue;
		requests++;
		ret = resp_cmd_run(c, rc, rc->parser.argv, rc->parser.argc);
		resp_parser_trim(&rc->parser);
		if (ret == RESP_CMD_AGAIN) {
			/* Left for the next call (the parser starts afresh
			 * at every request). */
			pos -= used;
			requests--;
			ret = 0;
			break;
		}
		if (ret == PROTO_CLOSE)
			break;
	}
	if (requests)
		conn_count_requests(c, requests);
	resp_pubsub_after_read(c, rc);
	if (ret == PROTO_CLOSE) {
		/* No more messages for a connection on its way out. */
		resp_pubsub_release(rc);
		return PROTO_CLOSE;
	}
	return (ssize_t)pos;
}

/* The client is done sending: a subscriber takes no more messages while
 * the connection flushes and closes. */
static void resp_eof(struct conn *c, void *state, const char *in,
    size_t len)
{
	resp_pubsub_release(state);
}

static void resp_release(struct conn *c, void *state)
{
	resp_conn_release(state);
}

const struct proto_ops proto_resp = {
	.name = "resp",
	.summary = "redis protocol (RESP2): PING, GET, SET, INCR, MGET, ... "
	    "on the shared store, and PUBLISH/SUBSCRIBE across workers",
	.state_size = sizeof(struct resp_conn),
	.max_pending = RESP_MAX_PENDING,
	.open = resp_open,
	.data = resp_data,
	.eof = resp_eof,
	.release = resp_release,
};
