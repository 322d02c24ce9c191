/*
 * The log sink; see log.h.  The level is set once before threads start and
 * only read afterwards, so it needs no lock.
 */
#include "log.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level max_level = LL_INFO;

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

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n, m;

	if (level > max_level)
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	n = (int)strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ld %s: ",
	    (long)tv.tv_usec / 1000, level_names[level]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;	/* truncated, keep the newline */
	line[n++] = '\n';
	/* Nothing sensible to do if stderr is gone. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
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
