/*
 * counter: a worked example of a protocol handler (docs/protocols.md
 * walks through it).  It numbers every line it is sent: "a\nb\n" comes
 * back as "1: a\n2: b\n", and a last line without LF at EOF as "3: c".
 * It shows each part of proto.h in use: per-connection state set up in
 * open(), data() that leaves a partial line for the connection to keep,
 * eof() for the bytes left over, and release() freeing what data()
 * allocated.  A line is what ends in LF; a CR before it is kept as text.
 */
#include "proto/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest line kept while waiting for its LF; the connection closes past
 * it (max_pending), so this handler needs no limit check of its own. */
#define COUNTER_MAX_LINE 4096

/* Room for "18446744073709551615: ". */
#define COUNTER_PREFIX_MAX 24

struct counter_state {
	unsigned long next;	/* number of the next line */
	char *buf;		/* replies of one call; owned, reused by
				 * every call, freed in release() */
	size_t cap;
};

/* The state is zeroed; numbering starts at 1. */
static int counter_open(struct conn *c, void *state)
{
	struct counter_state *st = state;

	st->next = 1;
	return 0;
}

/*
 * Appends "N: " and the @len bytes of @line (borrowed) to st->buf at
 * *@used.  Returns 0, or -1 when out of memory.
 */
static int counter_append(struct counter_state *st, size_t *used,
    const char *line, size_t len)
{
	size_t need = *used + COUNTER_PREFIX_MAX + len;

	if (need > st->cap) {
		size_t cap = st->cap * 2 > need ? st->cap * 2 : need;
		char *buf = realloc(st->buf, cap);

		if (!buf)
			return -1;
		st->buf = buf;
		st->cap = cap;
	}
	*used += (size_t)snprintf(st->buf + *used, COUNTER_PREFIX_MAX,
	    "%lu: ", st->next++);
	memcpy(st->buf + *used, line, len);
	*used += len;
	return 0;
}

/*
 * Numbers each complete line of @in and replies them all at once.  A
 * partial line at the end is not consumed: the connection keeps it and
 * presents it again, with what follows, next time.
 */
static ssize_t counter_data(struct conn *c, void *state, const char *in,
    size_t len)
{
	struct counter_state *st = state;
	size_t pos = 0, used = 0;
	const char *lf;

	while ((lf = memchr(in + pos, '\n', len - pos))) {
		size_t n = (size_t)(lf - (in + pos)) + 1;

		if (counter_append(st, &used, in + pos, n) < 0)
			return PROTO_CLOSE;
		pos += n;
	}
	/* st->buf is ours, not the input, so conn_reply() copies it; it
	 * may be reused as soon as the call returns. */
	if (used)
		conn_reply(c, st->buf, used);
	return (ssize_t)pos;
}

/* The client is done: a last line without LF still gets its number. */
static void counter_eof(struct conn *c, void *state, const char *in,
    size_t len)
{
	struct counter_state *st = state;
	size_t used = 0;

	if (len && counter_append(st, &used, in, len) == 0)
		conn_reply(c, st->buf, used);
}

static void counter_release(struct conn *c, void *state)
{
	struct counter_state *st = state;

	free(st->buf);
}

const struct proto_ops proto_counter = {
	.name = "counter",
	.summary = "each line back numbered, \"N: text\"",
	.state_size = sizeof(struct counter_state),
	.max_pending = COUNTER_MAX_LINE,
	.open = counter_open,
	.data = counter_data,
	.eof = counter_eof,
	.release = counter_release,
};
