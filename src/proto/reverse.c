/*
 * reverse: every line back with its content bytes in reverse order and
 * its ending kept at the end ("abc\r\n" -> "cba\r\n"), until "quit" (see
 * lines.h for the framing and the limit).  The reversed bytes are new, so
 * they are built in a bounded scratch buffer on the stack, which keeps the
 * handler thread-safe without locks, and replied a buffer at a time;
 * conn_reply() copies them.
 */
#include "proto/lines.h"

#include <string.h>

static void reverse_reply(struct conn *c, const char *line, size_t content,
    size_t ending)
{
	char scratch[LINES_REVERSE_SCRATCH];
	const char *p = line + content;
	size_t fill = 0;

	while (p > line) {
		if (fill == sizeof(scratch)) {
			conn_reply(c, scratch, fill);
			fill = 0;
		}
		scratch[fill++] = *--p;
	}
	if (fill + ending > sizeof(scratch)) {
		conn_reply(c, scratch, fill);
		fill = 0;
	}
	memcpy(scratch + fill, line + content, ending);
	fill += ending;
	if (fill > 0)
		conn_reply(c, scratch, fill);
}

static ssize_t reverse_data(struct conn *c, void *state, const char *in,
    size_t len)
{
	return lines_data(c, state, in, len, reverse_reply);
}

static void reverse_eof(struct conn *c, void *state, const char *in,
    size_t len)
{
	lines_eof(c, state, in, len, reverse_reply);
}

const struct proto_ops proto_reverse = {
	.name = "reverse",
	.summary = "each line back with its bytes reversed; quit closes",
	.state_size = sizeof(struct lines_state),
	.max_pending = LINES_MAX_PENDING,
	.open = lines_open,
	.data = reverse_data,
	.eof = reverse_eof,
};
