/*
 * The log sink; see log.h.  The level and format are set once before
 * threads start and only read afterwards, so they need no lock.  A line is
 * built in a buffer on the caller's stack and written at once; an overlong
 * line is cut, and in JSON the cut still leaves a valid object that says
 * "truncated":true.
 */
#include "log.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The message as formatted, before escaping. */
#define LOG_MSG_MAX 1024
/* The whole line: room for a message escaped to \u00XX throughout. */
#define LOG_LINE_MAX (8 * LOG_MSG_MAX)
/* Kept back for what closes a cut line: "\",\"truncated\":true}\n". */
#define LOG_LINE_TAIL 32

static enum log_level max_level = LL_INFO;
static enum log_format format = LOG_FORMAT_TEXT;

static const char *const level_names[] = {
	[LL_ERROR] = "error",
	[LL_WARN] = "warn",
	[LL_INFO] = "info",
	[LL_VERBOSE] = "verbose",
	[LL_DEBUG] = "debug",
};

void log_set_level(enum log_level level)
{
	max_level = level;
}

bool log_enabled(enum log_level level)
{
	return level <= max_level;
}

void log_set_format(enum log_format f)
{
	format = f;
}

int log_format_parse(const char *name)
{
	if (!strcmp(name, "text"))
		return LOG_FORMAT_TEXT;
	if (!strcmp(name, "json"))
		return LOG_FORMAT_JSON;
	return -1;
}

/* A line being built.  Once a piece does not fit, @cut is set and every
 * later piece is dropped, so the line never holds half an escape. */
struct line {
	char buf[LOG_LINE_MAX];
	size_t len;
	int cut;
};

static void put(struct line *l, const char *s, size_t n)
{
	if (l->cut || n > LOG_LINE_MAX - LOG_LINE_TAIL - l->len) {
		l->cut = 1;
		return;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void put_str(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

/* Appends from the kept-back tail, whatever was cut before. */
static void put_tail(struct line *l, const char *s)
{
	size_t n = strlen(s);

	if (n > LOG_LINE_MAX - l->len)
		n = LOG_LINE_MAX - l->len;	/* cannot happen: tail fits */
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

/* Length of the well-formed UTF-8 sequence at @p (at most @n bytes), or
 * 0 if none starts there (RFC 3629: no overlongs, no surrogates). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/*
 * @s as a JSON string, quotes included.  Log messages can carry what a
 * client sent, so control bytes are escaped and bytes that are not UTF-8
 * become U+FFFD: a shipper's parser never meets an invalid line.
 */
static void put_json_string(struct line *l, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	char esc[8];

	put(l, "\"", 1);
	while (n) {
		size_t u;

		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			put(l, esc, 2);
			u = 1;
		} else if (*p == '\n') {
			put(l, "\\n", 2);
			u = 1;
		} else if (*p == '\t') {
			put(l, "\\t", 2);
			u = 1;
		} else if (*p == '\r') {
			put(l, "\\r", 2);
			u = 1;
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			put(l, esc, 6);
			u = 1;
		} else if (*p < 0x80) {
			put(l, (const char *)p, 1);
			u = 1;
		} else if ((u = utf8_len(p, n)) > 0) {
			put(l, (const char *)p, u);
		} else {
			put(l, "\\ufffd", 6);
			u = 1;
		}
		p += u;
		n -= u;
	}
	if (l->cut)
		put_tail(l, "\"");
	else
		put(l, "\"", 1);
}

/* True if @s reads back as one key=value word without quotes. */
static int text_is_plain(const char *s)
{
	if (!*s)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\\' ||
		    *p == '=')
			return 0;
	return 1;
}

/* A text field's value, quoted (with C-style escapes) only when needed,
 * so that a line still splits into key=value words on spaces. */
static void put_text_value(struct line *l, const char *s)
{
	char esc[8];

	if (text_is_plain(s)) {
		put_str(l, s);
		return;
	}
	put(l, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			put(l, esc, 2);
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
			put(l, esc, 4);
		} else {
			put(l, (const char *)p, 1);
		}
	}
	put(l, "\"", 1);
}

static void build_text(struct line *l, const struct timeval *tv,
    enum log_level level, const char *msg, const struct log_field *fields,
    size_t n)
{
	char ts[64];
	struct tm tm;
	size_t k;

	localtime_r(&tv->tv_sec, &tm);
	k = strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(ts + k, sizeof(ts) - k, ".%03ld %s: ",
	    (long)tv->tv_usec / 1000, level_names[level]);
	put_str(l, ts);
	put_str(l, msg);
	for (size_t i = 0; i < n; i++) {
		char num[32];

		put(l, " ", 1);
		put_str(l, fields[i].key);
		put(l, "=", 1);
		if (fields[i].str) {
			put_text_value(l, fields[i].str);
		} else {
			snprintf(num, sizeof(num), "%lld", fields[i].num);
			put_str(l, num);
		}
	}
	put_tail(l, "\n");
}

/* Every member of the object is whole: a field that does not fit is
 * left out, and the message, the one string that may be cut, is closed. */
static void build_json(struct line *l, const struct timeval *tv,
    enum log_level level, const char *msg, int msg_cut,
    const struct log_field *fields, size_t n)
{
	char ts[64];
	struct tm tm;
	size_t k;

	/* UTC with a Z, RFC 3339: shippers need no time zone to read it. */
	gmtime_r(&tv->tv_sec, &tm);
	k = strftime(ts, sizeof(ts), "{\"ts\":\"%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + k, sizeof(ts) - k, ".%03ldZ\",\"level\":\"%s\","
	    "\"msg\":", (long)tv->tv_usec / 1000, level_names[level]);
	put_str(l, ts);
	put_json_string(l, msg);
	for (size_t i = 0; i < n && !l->cut; i++) {
		size_t mark = l->len;
		char num[32];

		put(l, ",", 1);
		put_json_string(l, fields[i].key);
		put(l, ":", 1);
		if (fields[i].str) {
			put_json_string(l, fields[i].str);
		} else {
			snprintf(num, sizeof(num), "%lld", fields[i].num);
			put_str(l, num);
		}
		if (l->cut)
			l->len = mark;
	}
	if (l->cut || msg_cut)
		put_tail(l, ",\"truncated\":true");
	put_tail(l, "}\n");
}

static void log_emit(enum log_level level, const struct log_field *fields,
    size_t n, const char *fmt, va_list ap)
{
	char msg[LOG_MSG_MAX];
	struct timeval tv;
	struct line l;
	int msg_cut;

	msg_cut = vsnprintf(msg, sizeof(msg), fmt, ap) >= (int)sizeof(msg);
	gettimeofday(&tv, NULL);
	l.len = 0;
	l.cut = 0;
	if (format == LOG_FORMAT_JSON)
		build_json(&l, &tv, level, msg, msg_cut, fields, n);
	else
		build_text(&l, &tv, level, msg, fields, n);
	/* Nothing sensible to do if stderr is gone. */
	if (write(STDERR_FILENO, l.buf, l.len) < 0)
		return;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	log_emit(level, NULL, 0, fmt, ap);
	va_end(ap);
}

void log_fields(enum log_level level, const struct log_field *fields,
    size_t n, const char *fmt, ...)
{
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	log_emit(level, fields, n, fmt, ap);
	va_end(ap);
}

static void libevent_log(int severity, const char *msg)
{
	enum log_level level = LL_DEBUG;

	switch (severity) {
	case EVENT_LOG_ERR:
		level = LL_ERROR;
		break;
	case EVENT_LOG_WARN:
		level = LL_WARN;
		break;
	case EVENT_LOG_MSG:
		level = LL_VERBOSE;
		break;
	}
	log_msg(level, "libevent: %s", msg);
}

void log_capture_libevent(void)
{
	event_set_log_callback(libevent_log);
}
