/*
 * line: every line back as it came, ending and all, until "quit" (see
 * lines.h for the framing and the limit).  Each reply points into the
 * input, so conn_reply() copies nothing, and the lines of one read are
 * contiguous there, which lets the connection send them as one span.
 */
#include "proto/lines.h"

static void line_reply(struct conn *c, const char *line, size_t content,
    size_t ending)
{
	conn_reply(c, line, content + ending);
}

static ssize_t line_data(struct conn *c, void *state, const char *in,
    size_t len)
{
	return lines_data(c, state, in, len, line_reply);
}

static void line_eof(struct conn *c, void *state, const char *in,
    size_t len)
{
	lines_eof(c, state, in, len, line_reply);
}

const struct proto_ops proto_line = {
	.name = "line",
	.summary = "each LF or CRLF line back as it came; quit closes",
	.state_size = sizeof(struct lines_state),
	.max_pending = LINES_MAX_PENDING,
	.open = lines_open,
	.data = line_data,
	.eof = line_eof,
};
