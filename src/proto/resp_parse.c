/*
 * The RESP2 request parser (resp_parse.h): inline and multibulk requests
 * into an argument vector pointing into the input, resumable across
 * reads, with the limits and error replies of redis 7.0's networking.c.
 * It works only on the caller's bytes and parser, so it is safe on any
 * number of worker threads.
 */
#include "proto/resp_parse.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* redis's texts, so that clients and their tests see the same errors. */
#define ERR_MBULK_LEN "ERR Protocol error: invalid multibulk length"
#define ERR_BULK_LEN "ERR Protocol error: invalid bulk length"
#define ERR_INLINE_BIG "ERR Protocol error: too big inline request"
#define ERR_MBULK_BIG "ERR Protocol error: too big mbulk count string"
#define ERR_BULK_BIG "ERR Protocol error: too big bulk count string"
#define ERR_QUOTES "ERR Protocol error: unbalanced quotes in request"
#define ERR_OOM "ERR out of memory"

enum line_status { LINE_FOUND, LINE_MORE, LINE_TOO_BIG };

int resp_strtoll(const char *s, size_t len, long long *out)
{
	unsigned long long v = 0, lim = LLONG_MAX;
	size_t i = 0;
	int neg = 0;

	/* 20 bytes hold "-9223372036854775808"; longer must be bad. */
	if (len == 0 || len > 20)
		return 0;
	if (len == 1 && s[0] == '0') {
		*out = 0;
		return 1;
	}
	if (s[0] == '-') {
		neg = 1;
		i = 1;
		lim = (unsigned long long)LLONG_MAX + 1;
	}
	if (i == len || s[i] < '1' || s[i] > '9')
		return 0;
	for (; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (s[i] < '0' || s[i] > '9' || v > (lim - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	if (!neg)
		*out = (long long)v;
	else if (v == (unsigned long long)LLONG_MAX + 1)
		*out = LLONG_MIN;
	else
		*out = -(long long)v;
	return 1;
}

/* Forgets the frame in progress, but keeps the buffers. */
static void parser_reset(struct resp_parser *p)
{
	p->pos = 0;
	p->scanned = 0;
	p->want = 0;
	p->bulk = 0;
	p->have_bulk = 0;
}

static enum resp_parse_status parser_fail(struct resp_parser *p,
    const char *err)
{
	snprintf(p->err, sizeof(p->err), "%s", err);
	parser_reset(p);
	p->argc = 0;
	return RESP_PARSE_ERROR;
}

void resp_parser_release(struct resp_parser *p)
{
	free(p->argv);
	free(p->off);
	free(p->scratch);
	memset(p, 0, sizeof(*p));
}

void resp_parser_trim(struct resp_parser *p)
{
	if (p->cap > RESP_KEEP_ARGS) {
		free(p->argv);
		free(p->off);
		p->argv = NULL;
		p->off = NULL;
		p->cap = 0;
		p->argc = 0;
	}
	if (p->scratch_cap > RESP_KEEP_ARGS * 64) {
		free(p->scratch);
		p->scratch = NULL;
		p->scratch_cap = 0;
		p->argc = 0;
	}
}

/* Room for @n arguments; -1 if memory ran out (nothing lost). */
static int parser_reserve(struct resp_parser *p, size_t n)
{
	size_t cap = p->cap ? p->cap : 8;
	void *grown;

	if (n <= p->cap)
		return 0;
	while (cap < n)
		cap *= 2;
	grown = realloc(p->argv, cap * sizeof(*p->argv));
	if (!grown)
		return -1;
	p->argv = grown;
	grown = realloc(p->off, cap * sizeof(*p->off));
	if (!grown)
		return -1;
	p->off = grown;
	p->cap = cap;
	return 0;
}

/*
 * Finds @term in the line at @line (@avail bytes), looking no further
 * than RESP_INLINE_MAX bytes in and resuming after p->scanned.  Stores
 * its index in *@at.  LINE_TOO_BIG once the line must be longer than the
 * limit, so that the verdict does not depend on the split into reads.
 */
static enum line_status find_line(struct resp_parser *p, const char *line,
    size_t avail, char term, size_t *at)
{
	size_t window = avail < RESP_INLINE_MAX + 1 ? avail :
	    RESP_INLINE_MAX + 1;
	size_t from = p->scanned < window ? p->scanned : window;
	const char *hit = NULL;

	if (from < window)
		hit = memchr(line + from, term, window - from);
	if (hit) {
		*at = (size_t)(hit - line);
		return LINE_FOUND;
	}
	p->scanned = window;
	return avail > RESP_INLINE_MAX ? LINE_TOO_BIG : LINE_MORE;
}

/* isspace() in the C locale, whatever the process's locale is. */
static int is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' ||
	    ch == '\f' || ch == '\r';
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Byte @i of the @len bytes at @s, or NUL past the end: redis splits a
 * C string, and these rules read most naturally that way. */
static char byte_at(const char *s, size_t len, size_t i)
{
	return i < len ? s[i] : '\0';
}

/*
 * Splits the inline line @s (@len bytes, without its ending) into
 * p->argv as redis's sdssplitargs() does.  Without quotes in the line
 * every argument points into @s; with them, all are decoded into the
 * scratch buffer, which no argument can outgrow since decoding only
 * shrinks.  Returns 0, or the error reply.
 */
static const char *split_inline(struct resp_parser *p, const char *s,
    size_t len)
{
	const char *nul = memchr(s, '\0', len);
	char *out = NULL;
	size_t i = 0, o = 0;

	/* sdssplitargs() stops at a NUL, so everything after it is lost. */
	if (nul)
		len = (size_t)(nul - s);
	if (memchr(s, '"', len) || memchr(s, '\'', len)) {
		if (p->scratch_cap < len) {
			char *grown = realloc(p->scratch, len);

			if (!grown)
				return ERR_OOM;
			p->scratch = grown;
			p->scratch_cap = len;
		}
		out = p->scratch;
	}
	p->argc = 0;
	for (;;) {
		size_t start, start_out = o, n = 0;
		int inq = 0, insq = 0, done = 0;

		while (i < len && is_blank(s[i]))
			i++;
		if (i == len)
			return NULL;
		start = i;
		while (!done) {
			char ch = byte_at(s, len, i), emit = ch;
			char next = byte_at(s, len, i + 1);
			int emitting = 1;

			if (inq) {
				int hi = hex_value(byte_at(s, len, i + 2));
				int lo = hex_value(byte_at(s, len, i + 3));

				if (ch == '\\' && next == 'x' && hi >= 0 &&
				    lo >= 0) {
					emit = (char)(hi * 16 + lo);
					i += 3;
				} else if (ch == '\\' && next) {
					emit = s[++i];
					if (emit == 'n')
						emit = '\n';
					else if (emit == 'r')
						emit = '\r';
					else if (emit == 't')
						emit = '\t';
					else if (emit == 'b')
						emit = '\b';
					else if (emit == 'a')
						emit = '\a';
				} else if (ch == '"') {
					/* A closing quote must end the
					 * argument. */
					if (next && !is_blank(next))
						return ERR_QUOTES;
					done = 1;
					emitting = 0;
				} else if (!ch) {
					return ERR_QUOTES;
				}
			} else if (insq) {
				if (ch == '\\' && next == '\'') {
					emit = s[++i];
				} else if (ch == '\'') {
					if (next && !is_blank(next))
						return ERR_QUOTES;
					done = 1;
					emitting = 0;
				} else if (!ch) {
					return ERR_QUOTES;
				}
			} else if (ch == ' ' || ch == '\n' || ch == '\r' ||
			    ch == '\t' || ch == '\0') {
				done = 1;
				emitting = 0;
			} else if (ch == '"' || ch == '\'') {
				inq = ch == '"';
				insq = ch == '\'';
				emitting = 0;
			}
			if (emitting) {
				if (out)
					out[o++] = emit;
				n++;
			}
			if (i < len)
				i++;
		}
		if (parser_reserve(p, p->argc + 1) < 0)
			return ERR_OOM;
		p->argv[p->argc].p = out ? out + start_out : s + start;
		p->argv[p->argc].len = n;
		p->argc++;
	}
}

static enum resp_parse_status parse_inline(struct resp_parser *p,
    const char *in, size_t len, size_t *used)
{
	size_t at = 0, n;
	const char *err;

	switch (find_line(p, in, len, '\n', &at)) {
	case LINE_MORE:
		return RESP_PARSE_MORE;
	case LINE_TOO_BIG:
		return parser_fail(p, ERR_INLINE_BIG);
	case LINE_FOUND:
		break;
	}
	n = at;
	if (n > 0 && in[n - 1] == '\r')
		n--;
	err = split_inline(p, in, n);
	if (err)
		return parser_fail(p, err);
	parser_reset(p);
	*used = at + 1;
	return RESP_PARSE_DONE;
}

/*
 * The header line ("*N" or "$N") at @h (@avail bytes): its number, once
 * the CR and the byte after it are there.  The byte after CR is not
 * checked, as in redis.
 */
static enum resp_parse_status parse_header(struct resp_parser *p,
    const char *h, size_t avail, const char *too_big, size_t *at)
{
	switch (find_line(p, h, avail, '\r', at)) {
	case LINE_MORE:
		return RESP_PARSE_MORE;
	case LINE_TOO_BIG:
		return parser_fail(p, too_big);
	case LINE_FOUND:
		break;
	}
	if (avail - *at < 2) {
		p->scanned = *at;
		return RESP_PARSE_MORE;
	}
	return RESP_PARSE_DONE;
}

static enum resp_parse_status parse_multibulk(struct resp_parser *p,
    const char *in, size_t len, size_t max_bulk, size_t *used)
{
	enum resp_parse_status st;
	long long ll;
	size_t at = 0, i;

	if (p->want == 0) {
		p->argc = 0;
		st = parse_header(p, in, len, ERR_MBULK_BIG, &at);
		if (st != RESP_PARSE_DONE)
			return st;
		if (!resp_strtoll(in + 1, at - 1, &ll) ||
		    ll > RESP_MULTIBULK_MAX)
			return parser_fail(p, ERR_MBULK_LEN);
		if (ll <= 0) {
			/* "*0" and "*-1" are consumed and do nothing. */
			parser_reset(p);
			*used = at + 2;
			return RESP_PARSE_DONE;
		}
		p->want = ll;
		p->pos = at + 2;
		p->scanned = 0;
	}
	while (p->argc < (size_t)p->want) {
		const char *h = in + p->pos;

		if (!p->have_bulk) {
			if (p->pos == len)
				return RESP_PARSE_MORE;
			st = parse_header(p, h, len - p->pos, ERR_BULK_BIG,
			    &at);
			if (st != RESP_PARSE_DONE)
				return st;
			if (h[0] != '$') {
				snprintf(p->err, sizeof(p->err),
				    "ERR Protocol error: expected '$', "
				    "got '%c'", h[0]);
				parser_reset(p);
				p->argc = 0;
				return RESP_PARSE_ERROR;
			}
			if (!resp_strtoll(h + 1, at - 1, &ll) || ll < 0 ||
			    (unsigned long long)ll > max_bulk)
				return parser_fail(p, ERR_BULK_LEN);
			if (parser_reserve(p, p->argc + 1) < 0)
				return parser_fail(p, ERR_OOM);
			p->bulk = (size_t)ll;
			p->have_bulk = 1;
			p->pos += at + 2;
			p->scanned = 0;
		}
		/* The data and the two bytes after it, unchecked. */
		if (len - p->pos < p->bulk + 2)
			return RESP_PARSE_MORE;
		p->off[p->argc] = p->pos;
		p->argv[p->argc].len = p->bulk;
		p->argc++;
		p->pos += p->bulk + 2;
		p->have_bulk = 0;
	}
	for (i = 0; i < p->argc; i++)
		p->argv[i].p = in + p->off[i];
	*used = p->pos;
	parser_reset(p);
	return RESP_PARSE_DONE;
}

enum resp_parse_status resp_parse(struct resp_parser *p, const char *in,
    size_t len, size_t max_bulk, size_t *used)
{
	/* Progress that cannot belong to this input means the caller broke
	 * "Resuming"; starting over is safe, if slower. */
	if (p->pos > len || p->scanned > len - p->pos ||
	    (p->want > 0 && in[0] != '*'))
		parser_reset(p);
	if (p->want > 0 || in[0] == '*')
		return parse_multibulk(p, in, len, max_bulk, used);
	return parse_inline(p, in, len, used);
}
