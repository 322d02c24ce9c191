/*
 * echo: every byte back, in order (RFC 862 over TCP).  The default
 * handler, and the fast path: it replies with the input itself, which
 * conn_reply() sends without copying, so an echoed read costs one write
 * and no allocation.
 */
#include "proto/proto.h"

static ssize_t echo_data(struct conn *c, void *state, const char *in,
    size_t len)
{
	conn_reply(c, in, len);
	return (ssize_t)len;
}

const struct proto_ops proto_echo = {
	.name = "echo",
	.summary = "every byte back, as it came (the default)",
	.data = echo_data,
};
