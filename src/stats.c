/*
 * Statistics summary lines; see stats.h for who writes what.
 */
#include "stats.h"

#include "log.h"

#include <inttypes.h>

#define WORKER_FMT "conns_open=%" PRIu64 " conns_total=%" PRIu64 \
	" bytes_in=%" PRIu64 " bytes_out=%" PRIu64 " idle_timeouts=%" PRIu64 \
	" write_timeouts=%" PRIu64 " errors=%" PRIu64 " dropped_bytes=%" PRIu64 " input_overflows=%" PRIu64

void stats_log(const char *when, struct worker_stats *const *workers,
    int n_workers, struct listener_stats *l)
{
	uint64_t t[9] = { 0 };

	for (int i = 0; i < n_workers; i++) {
		struct worker_stats *w = workers[i];
		uint64_t v[9] = {
			stat_get(&w->conns_opened) - stat_get(&w->conns_closed),
			stat_get(&w->conns_opened), stat_get(&w->bytes_in),
			stat_get(&w->bytes_out), stat_get(&w->idle_timeouts),
			stat_get(&w->write_timeouts), stat_get(&w->errors),
			stat_get(&w->dropped_bytes),
			stat_get(&w->input_overflows),
		};

		for (int k = 0; k < 9; k++)
			t[k] += v[k];
		log_info("stats %s: worker %d " WORKER_FMT, when, i, v[0],
		    v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]);
	}
	log_info("stats %s: total " WORKER_FMT " accepted=%" PRIu64
	    " rejected=%" PRIu64 " accept_errors=%" PRIu64 " shed=%" PRIu64
	    " dispatch_errors=%" PRIu64, when, t[0], t[1], t[2], t[3], t[4],
	    t[5], t[6], t[7], t[8], stat_get(&l->accepted), stat_get(&l->rejected),
	    stat_get(&l->accept_errors), stat_get(&l->shed),
	    stat_get(&l->dispatch_errors));
}
