/*
 * The connection-item queue; see conn_queue.h.  The freelist is per queue,
 * not global as in memcached, so queues share nothing and need no second
 * lock.
 */
#include "conn_queue.h"

#include <stdlib.h>

int conn_queue_init(struct conn_queue *q)
{
	int rc = pthread_mutex_init(&q->lock, NULL);

	if (rc)
		return -rc;
	q->head = q->tail = q->freelist = NULL;
	q->allocated = 0;
	return 0;
}

static void free_list(struct cq_item *it)
{
	while (it) {
		struct cq_item *next = it->next;

		free(it);
		it = next;
	}
}

void conn_queue_release(struct conn_queue *q)
{
	free_list(q->head);
	free_list(q->freelist);
	q->head = q->tail = q->freelist = NULL;
	pthread_mutex_destroy(&q->lock);
}

struct cq_item *conn_queue_item_new(struct conn_queue *q)
{
	struct cq_item *it;

	pthread_mutex_lock(&q->lock);
	it = q->freelist;
	if (it)
		q->freelist = it->next;
	else if ((it = malloc(sizeof(*it))))
		q->allocated++;
	pthread_mutex_unlock(&q->lock);
	if (it) {
		it->fd = -1;
		it->listen = NULL;
		it->conn_id = 0;
		it->data = NULL;
		it->len = 0;
		it->fn = NULL;
		it->arg = NULL;
		it->next = NULL;
	}
	return it;
}

void conn_queue_item_free(struct conn_queue *q, struct cq_item *item)
{
	pthread_mutex_lock(&q->lock);
	item->next = q->freelist;
	q->freelist = item;
	pthread_mutex_unlock(&q->lock);
}

bool conn_queue_push(struct conn_queue *q, struct cq_item *item)
{
	bool was_empty;

	item->next = NULL;
	pthread_mutex_lock(&q->lock);
	was_empty = q->head == NULL;
	if (q->tail)
		q->tail->next = item;
	else
		q->head = item;
	q->tail = item;
	pthread_mutex_unlock(&q->lock);
	return was_empty;
}

struct cq_item *conn_queue_pop(struct conn_queue *q)
{
	struct cq_item *it;

	pthread_mutex_lock(&q->lock);
	it = q->head;
	if (it) {
		q->head = it->next;
		if (!q->head)
			q->tail = NULL;
		it->next = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	return it;
}

bool conn_queue_remove(struct conn_queue *q, struct cq_item *item)
{
	struct cq_item **p, *prev = NULL;
	bool found = false;

	pthread_mutex_lock(&q->lock);
	for (p = &q->head; *p; prev = *p, p = &(*p)->next) {
		if (*p != item)
			continue;
		*p = item->next;
		if (q->tail == item)
			q->tail = prev;
		item->next = NULL;
		found = true;
		break;
	}
	pthread_mutex_unlock(&q->lock);
	return found;
}
