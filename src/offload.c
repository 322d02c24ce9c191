/*
 * The offload pool and the life of a job; see offload.h for the design.
 */
#include "offload.h"

#include "conn.h"
#include "log.h"
#include "worker.h"
#include "workqueue/workqueue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct proto_job {
	struct worker *worker;	/* the connection's */
	struct cq_item *item;	/* for the way back; from worker's queue */
	uint64_t conn_id;
	uint64_t seq;		/* its place in the reply order */
	proto_job_fn *run;
	void *arg;
	proto_free_fn *free_arg;
	_Atomic bool cancelled;	/* set by the worker: connection gone */
	bool ran;
	bool failed;		/* a reply did not fit in memory */
	char *out;		/* the reply; handed to the connection */
	size_t len, cap;
};

int offload_init(struct offload *o, struct msg_hub *hub, unsigned threads,
    size_t queue)
{
	struct workqueue_options opts = {
		.threads = threads,
		.capacity = queue,
		.name = "echo-offload",
	};

	o->hub = hub;
	o->wq = NULL;
	return workqueue_new(&o->wq, &opts);
}

void offload_shutdown(struct offload *o)
{
	if (o->wq)
		workqueue_shutdown(o->wq, WORKQUEUE_CANCEL);
}

void offload_log_stats(struct offload *o)
{
	struct workqueue_stats st;

	if (!o->wq || workqueue_get_stats(o->wq, &st))
		return;
	log_info("stats offload: threads=%u submitted=%" PRIu64
	    " completed=%" PRIu64 " cancelled=%" PRIu64 " rejected=%" PRIu64
	    " queue_high_water=%" PRIu64, st.threads, st.submitted,
	    st.completed, st.cancelled, st.rejected, st.high_water);
}

void offload_release(struct offload *o)
{
	if (o->wq)
		workqueue_free(o->wq);
	o->wq = NULL;
}

/* On the worker: the job is back, run or not. */
static void offload_done(struct conn_env *env, void *arg)
{
	struct proto_job *job = arg;

	if (!job->ran) {
		stat_add(&env->stats.jobs_cancelled, 1);
		conn_env_job_done(env, job->conn_id, job->seq, NULL, 0, true);
	} else if (conn_env_job_done(env, job->conn_id, job->seq, job->out,
	    job->len, job->failed)) {
		stat_add(&env->stats.jobs_done, 1);
	} else {
		stat_add(&env->stats.jobs_cancelled, 1);
	}
	/* conn_env_job_done() took the reply either way. */
	free(job);
}

/* On a pool thread (or the thread cancelling the pool): back to the
 * worker, on the item reserved at submit, so this cannot run out of
 * memory. */
static void offload_post(struct proto_job *job)
{
	struct cq_item *it = job->item;
	int rc;

	it->type = CQ_CALL;
	it->fn = offload_done;
	it->arg = job;
	rc = worker_post(job->worker, it);
	if (rc) {
		/* The worker may still hold the job's place and flag, so
		 * it cannot be freed here: it leaks, with its reply. */
		log_error("worker %d: cannot return an offloaded job: %s",
		    job->worker->id, strerror(-rc));
	}
}

/* The pool's cancel callback, and what a job whose connection has gone
 * does instead of running. */
static void offload_cancel(void *arg)
{
	struct proto_job *job = arg;

	if (job->free_arg)
		job->free_arg(job->arg);
	job->ran = false;
	offload_post(job);
}

static void offload_run(void *arg)
{
	struct proto_job *job = arg;

	if (atomic_load_explicit(&job->cancelled, memory_order_acquire)) {
		offload_cancel(job);
		return;
	}
	job->run(job, job->arg);
	if (job->free_arg)
		job->free_arg(job->arg);
	job->ran = true;
	offload_post(job);
}

int conn_offload(struct conn *c, proto_job_fn *run, void *arg,
    proto_free_fn *free_arg)
{
	struct offload *o = conn_config(c)->offload;
	struct conn_env *env = conn_worker(c);
	struct proto_job *job;
	int rc;

	if (!o || !o->wq)
		return -EOPNOTSUPP;
	job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->worker = &o->hub->workers[conn_env_index(env)];
	job->item = conn_queue_item_new(&job->worker->queue);
	if (!job->item) {
		free(job);
		return -ENOMEM;
	}
	job->conn_id = conn_id(c);
	job->run = run;
	job->arg = arg;
	job->free_arg = free_arg;
	rc = conn_job_begin(c, &job->cancelled, &job->seq);
	if (rc == 0) {
		rc = workqueue_try_submit(o->wq, offload_run, job,
		    offload_cancel);
		if (rc)
			conn_job_undo(c, job->seq);
	}
	if (rc == 0)
		return 0;
	conn_queue_item_free(&job->worker->queue, job->item);
	free(job);
	if (rc == -EAGAIN)
		conn_job_wait(c);
	else if (rc == -ESHUTDOWN)
		rc = -EOPNOTSUPP;
	return rc;
}

void proto_job_reply(struct proto_job *job, const void *buf, size_t len)
{
	if (job->failed || len == 0)
		return;
	if (job->cap - job->len < len) {
		size_t cap = job->cap * 2 > job->len + len ? job->cap * 2 :
		    job->len + len;
		char *out = realloc(job->out, cap < 256 ? 256 : cap);

		if (!out) {
			job->failed = true;
			return;
		}
		job->out = out;
		job->cap = cap < 256 ? 256 : cap;
	}
	memcpy(job->out + job->len, buf, len);
	job->len += len;
}

int proto_job_cancelled(const struct proto_job *job)
{
	return atomic_load_explicit(&job->cancelled, memory_order_acquire);
}

uint64_t proto_job_conn(const struct proto_job *job)
{
	return job->conn_id;
}
