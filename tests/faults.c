/*
 * Fault injection for tests/echoserver-faults: the server's own objects,
 * linked with -Wl,--wrap so that chosen calls fail, with no test code in
 * the real server.  ECHOSERVER_FAULTS lists "kind=N" pairs, comma
 * separated; every Nth call of that kind fails:
 *
 *   bev=N     bufferevent_socket_new() returns NULL (worker side)
 *   item=N    conn_queue_item_new() returns NULL (allocation in dispatch)
 *   notify=N  the 1-byte notify write to a worker's pipe fails with EIO
 */
#include "conn_queue.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct bufferevent *__real_bufferevent_socket_new(struct event_base *base,
    evutil_socket_t fd, int options);
struct bufferevent *__wrap_bufferevent_socket_new(struct event_base *base,
    evutil_socket_t fd, int options);
struct cq_item *__real_conn_queue_item_new(struct conn_queue *q);
struct cq_item *__wrap_conn_queue_item_new(struct conn_queue *q);
ssize_t __real_write(int fd, const void *buf, size_t len);
ssize_t __wrap_write(int fd, const void *buf, size_t len);

enum fault_kind { FAULT_BEV, FAULT_ITEM, FAULT_NOTIFY, FAULT_KINDS };

static const char *const fault_names[FAULT_KINDS] = { "bev", "item",
	"notify" };
static atomic_ulong calls[FAULT_KINDS];

/* True if this call of @kind is one the environment says should fail. */
static int fault_now(enum fault_kind kind)
{
	const char *spec = getenv("ECHOSERVER_FAULTS");
	const char *p;
	size_t len = strlen(fault_names[kind]);
	unsigned long every, n;

	if (!spec)
		return 0;
	for (p = spec; (p = strstr(p, fault_names[kind])); p += len)
		if ((p == spec || p[-1] == ',') && p[len] == '=')
			break;
	if (!p)
		return 0;
	every = strtoul(p + len + 1, NULL, 10);
	n = atomic_fetch_add(&calls[kind], 1) + 1;
	return every > 0 && n % every == 0;
}

struct bufferevent *__wrap_bufferevent_socket_new(struct event_base *base,
    evutil_socket_t fd, int options)
{
	if (fault_now(FAULT_BEV))
		return NULL;
	return __real_bufferevent_socket_new(base, fd, options);
}

struct cq_item *__wrap_conn_queue_item_new(struct conn_queue *q)
{
	if (fault_now(FAULT_ITEM))
		return NULL;
	return __real_conn_queue_item_new(q);
}

/* Only a worker's notify write is one byte to a pipe. */
ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
	struct stat st;

	if (len == 1 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) &&
	    fault_now(FAULT_NOTIFY)) {
		errno = EIO;
		return -1;
	}
	return __real_write(fd, buf, len);
}
