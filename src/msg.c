/*
 * Posting messages to workers by index or by connection id; see msg.h.
 * Every post is one queue item and at most one notify-pipe write, the
 * latter only when the destination queue was empty (worker_post()).
 */
#include "msg.h"

#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int msg_hub_workers(const struct msg_hub *hub)
{
	return hub ? hub->n : 0;
}

static struct worker *msg_worker(struct msg_hub *hub, int index)
{
	if (!hub || index < 0 || index >= hub->n)
		return NULL;
	return &hub->workers[index];
}

int msg_call(struct msg_hub *hub, int worker, msg_fn *fn, void *arg)
{
	struct worker *w = msg_worker(hub, worker);
	struct cq_item *it;

	if (!w || !fn)
		return -EINVAL;
	it = conn_queue_item_new(&w->queue);
	if (!it)
		return -ENOMEM;
	it->type = CQ_CALL;
	it->fn = fn;
	it->arg = arg;
	return worker_post(w, it);
}

int msg_reply(struct msg_hub *hub, uint64_t id, const void *buf,
    size_t len)
{
	struct worker *w = msg_worker(hub, conn_id_worker(id));
	struct cq_item *it;
	void *copy;
	int rc;

	if (!w || !id)
		return -EINVAL;
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, len);
	it = conn_queue_item_new(&w->queue);
	if (!it) {
		free(copy);
		return -ENOMEM;
	}
	it->type = CQ_REPLY;
	it->conn_id = id;
	it->data = copy;
	it->len = len;
	rc = worker_post(w, it);
	if (rc)
		free(copy);	/* taken back: worker_post() freed the item */
	return rc;
}

int msg_wake(struct msg_hub *hub, uint64_t id)
{
	struct worker *w = msg_worker(hub, conn_id_worker(id));
	struct cq_item *it;

	if (!w || !id)
		return -EINVAL;
	it = conn_queue_item_new(&w->queue);
	if (!it)
		return -ENOMEM;
	it->type = CQ_WAKE;
	it->conn_id = id;
	return worker_post(w, it);
}
