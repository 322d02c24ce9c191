/*
 * Bench peer: the plain single-threaded libevent echo server that most
 * users would write first, kept deliberately ordinary as the baseline.
 * One event_base, an evconnlistener, and per connection a socket
 * bufferevent whose read callback moves its input to its output; EOF or an
 * error frees it.  Usage: peer_bufferevent PORT (0 picks a free port); the
 * bound port is printed as "port N" on stdout.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

static void echo_read(struct bufferevent *bev, void *arg)
{
	bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void echo_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
}

static void echo_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	struct event_base *base = arg;
	struct bufferevent *bev;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, echo_read, NULL, echo_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	struct evconnlistener *l;
	struct event_base *base;

	if (argc != 2) {
		fprintf(stderr, "usage: peer_bufferevent PORT\n");
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	l = evconnlistener_new_bind(base, echo_accept, base,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (!base || !l) {
		perror("peer_bufferevent: listen");
		return 1;
	}
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &len);
	printf("port %d\n", ntohs(sin.sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	evconnlistener_free(l);
	event_base_free(base);
	return 0;
}
