/*
 * Bench peer for TLS: the plain single-threaded bufferevent_openssl echo
 * that most libevent users would write first, the TLS twin of
 * peer_bufferevent.c.  One event_base, an evconnlistener, and per
 * connection a server-side bufferevent_openssl whose read callback moves
 * its input to its output; EOF or an error frees it.  The context is set
 * up as echoserver's is (TLS 1.2 and 1.3, OpenSSL's default ciphers, an
 * unexpected EOF taken as a close), so the two differ in their serving,
 * not in their cryptography.  Usage: peer_tls PORT CERT KEY (PORT 0 picks
 * a free one); the bound port is printed as "port N" on stdout.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		bufferevent_free(bev);
}

static void echo_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	SSL_CTX *ctx = arg;
	struct event_base *base = evconnlistener_get_base(l);
	struct bufferevent *bev;
	SSL *ssl = SSL_new(ctx);
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bev = ssl ? bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!bev) {
		SSL_free(ssl);
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
	SSL_CTX *ctx;

	if (argc != 4) {
		fprintf(stderr, "usage: peer_tls PORT CERT KEY\n");
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	base = event_base_new();
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	l = evconnlistener_new_bind(base, echo_accept, ctx,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (!base || !l) {
		perror("peer_tls: listen");
		return 1;
	}
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &len);
	printf("port %d\n", ntohs(sin.sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	evconnlistener_free(l);
	event_base_free(base);
	SSL_CTX_free(ctx);
	return 0;
}
