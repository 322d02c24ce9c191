/*
 * The line framing of the line and reverse handlers: finding line ends,
 * the limit, "quit", the banner and the final partial line (lines.h).
 * Everything here works on the caller's bytes and the per-connection
 * state it is handed, so it is safe on any number of worker threads.
 */
#include "proto/lines.h"

#include <string.h>

/*
 * The limit in force on @c.  A max_line above PROTO_MAX_LINE_LIMIT would
 * let a partial line outgrow LINES_MAX_PENDING, and the connection would
 * close it without the error reply, so it is capped here.
 */
static size_t lines_limit(const struct conn *c)
{
	size_t max = conn_config(c)->max_line;

	return max < PROTO_MAX_LINE_LIMIT ? max : PROTO_MAX_LINE_LIMIT;
}

/* "quit" in any case.  ASCII only, on purpose: strncasecmp() follows the
 * locale, and a protocol keyword must not. */
static int lines_is_quit(const char *line, size_t content)
{
	static const char quit[] = "quit";
	size_t i;

	if (content != sizeof(quit) - 1)
		return 0;
	for (i = 0; i < content; i++)
		if ((line[i] | 0x20) != quit[i])
			return 0;
	return 1;
}

int lines_open(struct conn *c, void *state)
{
	const char *banner = conn_config(c)->banner;

	if (banner) {
		conn_reply(c, banner, strlen(banner));
		conn_reply(c, "\r\n", 2);
	}
	return 0;
}

enum lines_step lines_next(struct conn *c, struct lines_state *st,
    const char *in, size_t len, size_t *pos, struct lines_line *out)
{
	size_t max = lines_limit(c);
	const char *line = in + *pos, *lf = NULL;
	size_t left = len - *pos, content, ending = 1, window, from = 0;

	/* The kept partial line comes first in @in, so what is known of
	 * it holds at the front only; the check guards against a caller
	 * that broke the contract, at no cost. */
	if (*pos == 0) {
		from = st->scanned <= len ? st->scanned : 0;
		st->scanned = 0;
	}
	if (*pos >= len)
		return LINES_END;
	/* Content, CR and LF: no LF within max + 2 bytes means the line
	 * is too long, so no need to look further. */
	window = left < max + 2 ? left : max + 2;
	if (from < window)
		lf = memchr(line + from, '\n', window - from);
	if (!lf) {
		content = left - (line[left - 1] == '\r');
		if (content > max)
			return LINES_LONG;
		st->scanned = left;
		return LINES_END;
	}
	content = (size_t)(lf - line);
	if (content > 0 && line[content - 1] == '\r') {
		content--;
		ending = 2;
	}
	if (content > max)
		return LINES_LONG;
	if (lines_is_quit(line, content))
		return LINES_QUIT;
	out->p = line;
	out->content = content;
	out->ending = ending;
	*pos += content + ending;
	return LINES_LINE;
}

ssize_t lines_data(struct conn *c, struct lines_state *st, const char *in,
    size_t len, lines_reply_fn *reply)
{
	struct lines_line l;
	size_t pos = 0;

	for (;;) {
		switch (lines_next(c, st, in, len, &pos, &l)) {
		case LINES_LINE:
			reply(c, l.p, l.content, l.ending);
			break;
		case LINES_END:
			return (ssize_t)pos;
		case LINES_QUIT:
			return PROTO_CLOSE;
		case LINES_LONG:
			conn_reply(c, LINES_TOO_LONG,
			    sizeof(LINES_TOO_LONG) - 1);
			return PROTO_CLOSE;
		}
	}
}

void lines_eof(struct conn *c, struct lines_state *st, const char *in,
    size_t len, lines_reply_fn *reply)
{
	ssize_t used = 0;

	if (len > 0)
		used = lines_data(c, st, in, len, reply);
	if (used == PROTO_CLOSE || (size_t)used == len)
		return;
	/* No CRLF can follow now, so a final CR is content and counts. */
	if (len - (size_t)used > lines_limit(c))
		conn_reply(c, LINES_TOO_LONG, sizeof(LINES_TOO_LONG) - 1);
	else
		reply(c, in + used, len - (size_t)used, 0);
}
