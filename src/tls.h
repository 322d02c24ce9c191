/*
 * TLS for listeners written tls+PROTO@ADDR: the server's certificate and
 * key as an OpenSSL context that SIGHUP can replace, and the OpenSSL side
 * of a TLS connection (a bufferevent_openssl on the worker's base).
 * conn.c drives the connection; it sees only this header, never OpenSSL.
 *
 * DESIGN
 * Threads.  One struct tls_ctx serves every tls+ listener.  The main
 * thread creates it, reloads it on SIGHUP and frees it after the workers
 * are joined.  Workers call tls_bufferevent_new() on accepted sockets,
 * which creates the connection's SSL from the current SSL_CTX.
 *
 * Reload.  tls_ctx_reload() builds a whole new SSL_CTX from the files
 * first; only if that succeeds does it take the lock, swap the pointer
 * and drop its reference to the old one.  A worker takes the same lock
 * around SSL_new(), which takes a reference of its own on the SSL_CTX it
 * was given (OpenSSL counts them).  So a connection keeps the context it
 * started with for its whole life, however many reloads follow, and the
 * old context is freed by OpenSSL when its last connection goes.  The
 * lock is held for one SSL_new() at a time and is contended only by the
 * workers' accepts and a reload, so a mutex is simpler than an atomic
 * pointer, which would need a hazard scheme to stop the main thread
 * freeing a context a worker has loaded but not yet referenced.
 */
#ifndef TLS_H
#define TLS_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct event_base;
struct tls_ctx;

/*
 * Loads the PEM certificate chain @cert and key @key (paths borrowed for
 * the life of the context: SIGHUP reads them again) into a server
 * context for TLS 1.2 and 1.3.  A certificate that has expired or is not
 * valid yet is refused.  Returns the context (free it with
 * tls_ctx_free()), or NULL with one lowercase line in @err naming the
 * file and the reason.
 */
struct tls_ctx *tls_ctx_new(const char *cert, const char *key, char *err,
    size_t errlen);

/*
 * Main thread.  Loads the files again and, if they are good, serves new
 * connections with them; existing ones keep theirs.  Returns 0, or -1
 * with @err saying why, the old certificate still in use.
 */
int tls_ctx_reload(struct tls_ctx *t, char *err, size_t errlen);

/* The current certificate's subject and serial, for the log. */
void tls_ctx_describe(struct tls_ctx *t, char *buf, size_t len);

/* Frees @t; connections still open keep their own reference. */
void tls_ctx_free(struct tls_ctx *t);

/*
 * Any thread, on a socket its own base serves.  A server-side TLS
 * bufferevent on @base for the connected socket @fd, with a new SSL from
 * @t's current context.  The bufferevent owns @fd and the SSL
 * (bufferevent_free() closes and frees them).  Returns NULL on failure,
 * when @fd is still the caller's.
 */
struct bufferevent *tls_bufferevent_new(struct tls_ctx *t,
    struct event_base *base, int fd);

/*
 * Sends close_notify on @bev's connection if its handshake finished and
 * none has been sent yet; best effort, never blocks.  libevent never
 * sends it (docs/design.md, fact T2).
 */
void tls_close_notify(struct bufferevent *bev);

/* The last OpenSSL error of @bev, as text in @buf, for the log. */
const char *tls_error(struct bufferevent *bev, char *buf, size_t len);

#endif
