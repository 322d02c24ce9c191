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

	while (p > line) {
		size_t n = 0;

		while (p > line && n < sizeof(scratch))
			scratch[n++] = *--p;
		/* The ending rides with the last chunk when it fits. */
		if (p == line && sizeof(scratch) - n >= ending) {
			memcpy(scratch + n, line + content, ending);
			n += ending;
			ending = 0;
		}
		conn_reply(c, scratch, n);
	}
	/* An empty line's ending, or one that did not fit: it lies in the
	 * input, so it needs no scratch. */
	if (ending)
		conn_reply(c, line + content, ending);
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
