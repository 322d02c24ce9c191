/*
 * Bench peer: the thinnest correct echo server, as the "limit" for the
 * others.  One thread, level-triggered epoll, non-blocking sockets, one
 * fixed 64 KiB read buffer, and per event one read() and one write().
 * No libevent and no framing: every other server does at least this much.
 *
 * The only bookkeeping is for a client that does not read fast enough:
 * whatever write() did not take is copied aside for that connection, the
 * connection waits for EPOLLOUT instead of EPOLLIN, and reading resumes
 * once the copy has gone out.  So at most one buffer (64 KiB) is pending
 * per connection, TCP flow control holds back the rest, and no byte is
 * lost.  A read of 0 (EOF) or any error closes the connection.
 *
 * Usage: peer_epoll PORT (0 picks a free port); the bound port is printed
 * as "port N" on stdout, like the other peers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUF (64 * 1024)
#define MAX_EVENTS 512
#define ACCEPTS_PER_EVENT 64

/* Bytes write() did not take, owned by the connection until sent. */
struct pending {
	char *buf;
	size_t off, len;
};

static struct pending *conns;	/* indexed by fd */
static size_t nconns;
static int epfd;
static char rbuf[READ_BUF];

static struct pending *conn_at(int fd)
{
	if ((size_t)fd >= nconns) {
		size_t n = nconns ? nconns : 1024;
		struct pending *p;

		while (n <= (size_t)fd)
			n *= 2;
		p = realloc(conns, n * sizeof(*p));
		if (!p) {
			perror("peer_epoll: realloc");
			exit(1);
		}
		memset(p + nconns, 0, (n - nconns) * sizeof(*p));
		conns = p;
		nconns = n;
	}
	return &conns[fd];
}

static void watch(int fd, int op, unsigned int events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	if (epoll_ctl(epfd, op, fd, &ev) < 0 && op != EPOLL_CTL_DEL)
		perror("peer_epoll: epoll_ctl");
}

static void conn_close(int fd)
{
	struct pending *p = conn_at(fd);

	free(p->buf);
	memset(p, 0, sizeof(*p));
	close(fd);	/* also drops it from the epoll set */
}

static void on_accept(int lfd)
{
	int one = 1;

	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			/* EMFILE and friends: level-triggered, so the
			 * listener comes back once an fd is free. */
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				perror("peer_epoll: accept4");
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_at(fd);
		watch(fd, EPOLL_CTL_ADD, EPOLLIN);
	}
}

/* Readable and nothing pending: one read, one write, keep the rest. */
static void on_readable(int fd)
{
	ssize_t n = read(fd, rbuf, sizeof(rbuf));
	ssize_t w;
	struct pending *p;

	if (n == 0) {
		conn_close(fd);
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(fd);
		return;
	}
	w = write(fd, rbuf, (size_t)n);
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			conn_close(fd);
			return;
		}
		w = 0;
	}
	if (w == n)
		return;
	p = conn_at(fd);
	p->len = (size_t)(n - w);
	p->off = 0;
	p->buf = malloc(p->len);
	if (!p->buf) {
		conn_close(fd);
		return;
	}
	memcpy(p->buf, rbuf + w, p->len);
	watch(fd, EPOLL_CTL_MOD, EPOLLOUT);
}

/* Writable with bytes pending: one write; read again once all are out. */
static void on_writable(int fd)
{
	struct pending *p = conn_at(fd);
	ssize_t w = write(fd, p->buf + p->off, p->len - p->off);

	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(fd);
		return;
	}
	p->off += (size_t)w;
	if (p->off < p->len)
		return;
	free(p->buf);
	memset(p, 0, sizeof(*p));
	watch(fd, EPOLL_CTL_MOD, EPOLLIN);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	struct epoll_event evs[MAX_EVENTS];
	int one = 1, lfd;

	if (argc != 2) {
		fprintf(stderr, "usage: peer_epoll PORT\n");
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (lfd < 0 || epfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) < 0) {
		perror("peer_epoll: listen");
		return 1;
	}
	watch(lfd, EPOLL_CTL_ADD, EPOLLIN);
	printf("port %d\n", ntohs(sin.sin_port));
	fflush(stdout);

	for (;;) {
		int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("peer_epoll: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd)
				on_accept(lfd);
			else if (conn_at(fd)->buf)
				on_writable(fd);	/* or EPOLLERR/HUP */
			else
				on_readable(fd);	/* or EPOLLERR/HUP */
		}
	}
}
