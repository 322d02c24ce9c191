/*
 * The server's TLS context and the OpenSSL side of a TLS connection; see
 * tls.h for the threads and the reload.  The facts about libevent 2.1.12
 * with OpenSSL 3 that shape this file are docs/design.md, facts T1-T4.
 */
#include "tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_ctx {
	pthread_mutex_t lock;	/* guards ctx */
	SSL_CTX *ctx;		/* the current one; we hold a reference */
	const char *cert, *key;	/* borrowed paths */
};

/* The oldest queued OpenSSL error as "@what '@path': reason"; clears the
 * queue, which is per thread. */
static void tls_fail(char *err, size_t errlen, const char *what,
    const char *path)
{
	unsigned long e = ERR_peek_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	/* A missing or unreadable file is a system error, without text. */
	if (e && ERR_SYSTEM_ERROR(e))
		reason = strerror(ERR_GET_REASON(e));
	snprintf(err, errlen, "%s '%s': %s", what, path,
	    reason ? reason : "unknown error");
	ERR_clear_error();
}

/* @t as "Mon DD HH:MM:SS YYYY GMT", OpenSSL's usual form. */
static void tls_time_text(const ASN1_TIME *t, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n = 0;

	if (b && ASN1_TIME_print(b, t))
		n = BIO_read(b, buf, (int)len - 1);
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(b);
}

/* Refuses a certificate outside its validity period: a server that
 * starts with one would fail every handshake with a verifying client. */
static int tls_check_dates(SSL_CTX *ctx, const char *cert, char *err,
    size_t errlen)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	char when[64];

	if (!x) {
		snprintf(err, errlen, "no certificate in '%s'", cert);
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
		tls_time_text(X509_get0_notAfter(x), when, sizeof(when));
		snprintf(err, errlen, "tls certificate '%s' expired on %s",
		    cert, when);
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
		tls_time_text(X509_get0_notBefore(x), when, sizeof(when));
		snprintf(err, errlen, "tls certificate '%s' is not valid "
		    "until %s", cert, when);
		return -1;
	}
	return 0;
}

/* A new server context from the files; NULL with @err filled. */
static SSL_CTX *tls_load(const char *cert, const char *key, char *err,
    size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		tls_fail(err, errlen, "cannot create a tls context for", cert);
		return NULL;
	}
	/*
	 * TLS 1.2 and 1.3 only, with OpenSSL's default ciphers.  An
	 * unexpected EOF is an ordinary close (fact T1).  No
	 * renegotiation: TLS 1.2 clients could use it to make the server
	 * redo handshakes, and libevent would see it mid-stream.  Idle
	 * connections give back OpenSSL's 16 KiB record buffers.
	 */
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
		tls_fail(err, errlen, "cannot set the tls versions for", cert);
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_fail(err, errlen, "cannot load tls certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_fail(err, errlen, "cannot load tls key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_fail(err, errlen, "tls key does not match certificate",
		    cert);
		goto fail;
	}
	if (tls_check_dates(ctx, cert, err, errlen))
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_ctx *tls_ctx_new(const char *cert, const char *key, char *err,
    size_t errlen)
{
	struct tls_ctx *t = calloc(1, sizeof(*t));

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->cert = cert;
	t->key = key;
	t->ctx = tls_load(cert, key, err, errlen);
	if (!t->ctx || pthread_mutex_init(&t->lock, NULL)) {
		if (t->ctx) {
			snprintf(err, errlen, "cannot create a lock");
			SSL_CTX_free(t->ctx);
		}
		free(t);
		return NULL;
	}
	return t;
}

int tls_ctx_reload(struct tls_ctx *t, char *err, size_t errlen)
{
	SSL_CTX *fresh = tls_load(t->cert, t->key, err, errlen), *old;

	if (!fresh)
		return -1;
	pthread_mutex_lock(&t->lock);
	old = t->ctx;
	t->ctx = fresh;
	pthread_mutex_unlock(&t->lock);
	/* Our reference only: each SSL made from it holds its own. */
	SSL_CTX_free(old);
	return 0;
}

void tls_ctx_describe(struct tls_ctx *t, char *buf, size_t len)
{
	X509 *x;
	BIGNUM *bn = NULL;
	char *hex = NULL, subject[256] = "?";

	pthread_mutex_lock(&t->lock);
	x = SSL_CTX_get0_certificate(t->ctx);
	if (x) {
		X509_NAME_oneline(X509_get_subject_name(x), subject,
		    sizeof(subject));
		bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
		hex = bn ? BN_bn2hex(bn) : NULL;
	}
	pthread_mutex_unlock(&t->lock);
	snprintf(buf, len, "subject '%s', serial %s", subject,
	    hex ? hex : "?");
	OPENSSL_free(hex);
	BN_free(bn);
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct bufferevent *tls_bufferevent_new(struct tls_ctx *t,
    struct event_base *base, int fd)
{
	struct bufferevent *bev;
	SSL *ssl;

	pthread_mutex_lock(&t->lock);
	ssl = SSL_new(t->ctx);
	pthread_mutex_unlock(&t->lock);
	if (!ssl)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		/* libevent gives the SSL back on failure; the fd stays the
		 * caller's (the socket BIO does not close it). */
		SSL_free(ssl);
		ERR_clear_error();
	}
	return bev;
}

void tls_close_notify(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (!ssl || !SSL_is_init_finished(ssl) ||
	    (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
		return;
	/* The socket is non-blocking and the output empty, so this writes
	 * the alert or gives up at once; a peer that reset is no error. */
	SSL_shutdown(ssl);
	ERR_clear_error();
}

const char *tls_error(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e = bufferevent_get_openssl_error(bev);
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, len, "%s", reason ? reason : "connection error");
	return buf;
}
