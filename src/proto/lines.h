/*
 * The line framing shared by the line and reverse handlers (line.c,
 * reverse.c): splitting input into LF or CRLF lines, the --max-line
 * limit, "quit", the banner and the final partial line at EOF.  Internal
 * to src/proto/ and its tests; a handler built on it supplies only what it
 * replies for one line.
 *
 * DESIGN
 * Input.  lines_data() consumes every complete line and leaves a partial
 * one unconsumed, so the connection keeps it and presents it again with
 * the next bytes (proto.h, "Input").  The per-connection struct
 * lines_state remembers how much of that partial line was already
 * searched for LF, so a line arriving in many small reads is scanned once
 * in all, not once per read.
 *
 * Limit.  A line whose content (without its ending) is longer than
 * conn_config()->max_line gets "error: line too long\r\n" and the
 * connection is closed, after the lines before it.  A partial line is too
 * long as soon as its content must exceed the limit; a final CR is not
 * counted yet, since it may begin a CRLF.  So the verdict is the same
 * however the bytes were split, and a kept partial line never exceeds
 * max_line + 1 bytes, which is why LINES_MAX_PENDING suffices.
 */
#ifndef PROTO_LINES_H
#define PROTO_LINES_H

#include "proto/proto.h"

#include <stddef.h>
#include <sys/types.h>

/* A line handler's per-connection state (its ops' state_size). */
struct lines_state {
	size_t scanned;		/* bytes at the front of the kept partial
				 * line already known to hold no LF */
};

/* A line handler's max_pending: a partial line under the largest limit,
 * with the CR that may start its CRLF. */
#define LINES_MAX_PENDING (PROTO_MAX_LINE_LIMIT + 1)

/* What lines_data() replies when a line is over the limit. */
#define LINES_TOO_LONG "error: line too long\r\n"

/* The reverse handler's scratch buffer, in bytes; here so that the tests
 * can reverse lines longer than it. */
#define LINES_REVERSE_SCRATCH 4096

/*
 * Replies for one line on @c: @content bytes at @line, then its @ending
 * (1 for LF, 2 for CRLF, 0 for a final line without one) right after
 * them.  @line is borrowed, and lies inside the input data() or eof() was
 * given, so passing it to conn_reply() costs no copy.
 */
typedef void lines_reply_fn(struct conn *c, const char *line,
    size_t content, size_t ending);

/* One line found by lines_next(): @content bytes at @p (borrowed, in
 * the caller's input), then its @ending (1 for LF, 2 for CRLF). */
struct lines_line {
	const char *p;
	size_t content, ending;
};

enum lines_step {
	LINES_LINE,	/* a complete line, in *out; *pos is past it */
	LINES_END,	/* no complete line left: *pos is where the
			 * partial one, if any, begins */
	LINES_QUIT,	/* "quit" at *pos: close, not replied */
	LINES_LONG,	/* the line at *pos is over the limit */
};

/*
 * The framing alone, for a handler that does more between lines than
 * reply (sha256 gathers them into one job): the line of @in (borrowed,
 * @len bytes) at *@pos, with the same rules as lines_data(), which is a
 * loop over it.  Start each data() call at *@pos 0; @st keeps what is
 * known of a partial line across calls, so a handler that stops early
 * and leaves complete lines unconsumed loses nothing.
 */
enum lines_step lines_next(struct conn *c, struct lines_state *st,
    const char *in, size_t len, size_t *pos, struct lines_line *out);

/* An ops open(): sends conn_config(@c)->banner and CRLF if there is a
 * banner.  Always returns 0. */
int lines_open(struct conn *c, void *state);

/*
 * The body of a line handler's data(): calls @reply for each complete
 * line of @in (borrowed, @len > 0 bytes) in order, and returns the bytes
 * consumed, which end where the partial line, if any, begins.  Returns
 * PROTO_CLOSE at "quit" (not replied) or after replying LINES_TOO_LONG.
 * @st is the connection's zeroed-at-open state.
 */
ssize_t lines_data(struct conn *c, struct lines_state *st, const char *in,
    size_t len, lines_reply_fn *reply);

/*
 * The body of a line handler's eof(): as lines_data() on @in (borrowed,
 * @len bytes, possibly 0), then the final partial line, which has no
 * ending, goes to @reply, or gets LINES_TOO_LONG if over the limit.
 */
void lines_eof(struct conn *c, struct lines_state *st, const char *in,
    size_t len, lines_reply_fn *reply);

#endif
