/*
 * Statistics summary lines; see stats.h for who writes what.  Everything
 * here is generated from the field lists there, so a new counter is one
 * line in stats.h and appears in the struct, the total and the log.
 */
#include "stats.h"

#include "log.h"

#include <inttypes.h>
#include <stdio.h>

/* Plain sums of the worker counters, read once each. */
struct worker_totals {
#define STATS_TOTAL(field, label) uint64_t field;
	WORKER_STATS_FIELDS(STATS_TOTAL)
#undef STATS_TOTAL
};

/* Appends " @label=@v" to @buf, which holds @n bytes of @len; a NULL
 * @label appends nothing.  Returns the new length, at most @len - 1. */
static size_t stats_append(char *buf, size_t len, size_t n,
    const char *label, uint64_t v)
{
	int m;

	if (!label || n + 1 >= len)
		return n;
	m = snprintf(buf + n, len - n, " %s=%" PRIu64, label, v);
	if (m < 0)
		return n;
	return n + (size_t)m < len ? n + (size_t)m : len - 1;
}

static size_t stats_format_worker(char *buf, size_t len, size_t n,
    const struct worker_totals *t)
{
	n = stats_append(buf, len, n, "conns_open",
	    t->conns_opened - t->conns_closed);
#define STATS_FORMAT(field, label) \
	n = stats_append(buf, len, n, label, t->field);
	WORKER_STATS_FIELDS(STATS_FORMAT)
#undef STATS_FORMAT
	return n;
}

void stats_log(const char *when, struct worker_stats *const *workers,
    int n_workers, struct listener_stats *l)
{
	struct worker_totals total = { 0 };
	char line[1536];
	size_t n;

	for (int i = 0; i < n_workers; i++) {
		struct worker_stats *w = workers[i];
		struct worker_totals one;

#define STATS_SUM(field, label) \
		one.field = stat_get(&w->field); \
		total.field += one.field;
		WORKER_STATS_FIELDS(STATS_SUM)
#undef STATS_SUM
		stats_format_worker(line, sizeof(line), 0, &one);
		log_info("stats %s: worker %d%s", when, i, line);
	}
	n = stats_format_worker(line, sizeof(line), 0, &total);
#define STATS_FORMAT(field, label) \
	n = stats_append(line, sizeof(line), n, label, stat_get(&l->field));
	LISTENER_STATS_FIELDS(STATS_FORMAT)
#undef STATS_FORMAT
	log_info("stats %s: total%s", when, line);
}
