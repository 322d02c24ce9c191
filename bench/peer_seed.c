/*
 * Bench peer: the seed project's original design, rebuilt here so that the
 * suite can show what the multi-reactor rewrite is measured against.  The
 * main thread accepts with a blocking accept(); every connection then gets
 * its own thread with its own event_base, one bufferevent and one blocking
 * event_base_dispatch() until the client goes away: a thread, an epoll set
 * and a stack per connection.  Usage: peer_seed PORT (0 picks a free
 * port); the bound port is printed as "port N" on stdout.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void seed_read(struct bufferevent *bev, void *arg)
{
	bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void seed_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		event_base_loopexit(bufferevent_get_base(bev), NULL);
}

/* One connection's whole life, on its own thread and base. */
static void *seed_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct event_base *base = event_base_new();
	struct bufferevent *bev = base ? bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE) : NULL;

	if (!bev) {
		close(fd);
	} else {
		bufferevent_setcb(bev, seed_read, NULL, seed_event, NULL);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		event_base_dispatch(base);
		bufferevent_free(bev);
	}
	if (base)
		event_base_free(base);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	pthread_attr_t attr;
	int lfd, one = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: peer_seed PORT\n");
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(lfd, 4096) < 0) {
		perror("peer_seed: listen");
		return 1;
	}
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	printf("port %d\n", ntohs(sin.sin_port));
	fflush(stdout);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t tid;

		if (fd < 0) {
			/* Out of fds or threads: back off, as the seed did
			 * not, so the suite can still stop it. */
			usleep(10000);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (pthread_create(&tid, &attr, seed_conn,
		    (void *)(intptr_t)fd) != 0)
			close(fd);
	}
}
