/*
 * sha256: every line back as the lowercase hex SHA-256 of its content
 * (without its ending), followed by the line's own ending, until "quit",
 * with the line handlers' framing and --max-line limit (lines.h).  The
 * digest is libcrypto's (EVP).  It is the server's example of real work:
 * with --offload the complete lines of each read go to the pool as one
 * job, and the worker only frames them; without it they are hashed
 * inline, on the worker.
 *
 * One job per read, not per line: a job costs a few microseconds of
 * allocation, locking and waking, about what hashing a 1 KiB line does,
 * so per-line jobs would spend as much on the hand-off as on the work.
 * A read's lines are copied into the job, since the input is borrowed
 * only until data() returns; their replies come back as one piece, in
 * the connection's reply order (proto.h, "Offloading work").
 */
#include "proto/lines.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SHA256_HEX 64

static EVP_MD *sha256_md;
static pthread_key_t sha256_key;
static int sha256_key_ok;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

/* Fetched once, explicitly: EVP_sha256() would make every
 * EVP_DigestInit_ex() look the implementation up again (OpenSSL 3;
 * docs/design.md, fact X2).  Each
 * thread that hashes keeps one context, freed when the thread exits. */
static void sha256_init_once(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	sha256_key_ok = pthread_key_create(&sha256_key, sha256_ctx_free) == 0;
}

/* This thread's digest context, or NULL if libcrypto or memory failed. */
static EVP_MD_CTX *sha256_ctx(void)
{
	EVP_MD_CTX *ctx;

	pthread_once(&sha256_once, sha256_init_once);
	if (!sha256_md || !sha256_key_ok)
		return NULL;
	ctx = pthread_getspecific(sha256_key);
	if (!ctx && (ctx = EVP_MD_CTX_new()) &&
	    pthread_setspecific(sha256_key, ctx)) {
		EVP_MD_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/* @hex gets the 64 lowercase hex digits of @len bytes at @p, then the
 * @ending bytes at @end.  Returns the reply's length, or 0 if libcrypto
 * failed. */
static size_t sha256_line(const char *p, size_t len, const char *end,
    size_t ending, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	EVP_MD_CTX *ctx = sha256_ctx();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!ctx || !EVP_DigestInit_ex(ctx, sha256_md, NULL) ||
	    !EVP_DigestUpdate(ctx, p, len) ||
	    !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen * 2 != SHA256_HEX)
		return 0;
	for (unsigned int i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	memcpy(hex + SHA256_HEX, end, ending);
	return SHA256_HEX + ending;
}

#define SHA256_ERROR "error: cannot hash\r\n"

/* Inline: the reply for one line, on the worker. */
static void sha256_reply_inline(struct conn *c, const char *line,
    size_t content, size_t ending)
{
	char hex[SHA256_HEX + 2];
	size_t n = sha256_line(line, content, line + content, ending, hex);

	if (n)
		conn_reply(c, hex, n);
	else
		conn_reply(c, SHA256_ERROR, sizeof(SHA256_ERROR) - 1);
}

/* The lines of one read, copied for the pool: each is a 4-byte content
 * length, a 1-byte ending length, then the content. */
struct sha256_batch {
	size_t len, cap;
	char buf[];
};

#define SHA256_ENTRY_HEAD 5

/* Adds a line to *@bp, made on the first line with room for @hint
 * bytes (the read's length, which holds every line of it unless they are
 * very short).  Returns 0 or -1. */
static int sha256_batch_add(struct sha256_batch **bp, const char *line,
    size_t content, size_t ending, size_t hint)
{
	struct sha256_batch *b = *bp;
	size_t need = SHA256_ENTRY_HEAD + content;
	uint32_t n = (uint32_t)content;

	if (!b || b->cap - b->len < need) {
		size_t cap = b ? b->cap * 2 : hint + hint / 32 + 64;
		struct sha256_batch *nb;

		while (cap - (b ? b->len : 0) < need)
			cap *= 2;
		nb = realloc(b, sizeof(*b) + cap);
		if (!nb)
			return -1;
		if (!b)
			nb->len = 0;
		nb->cap = cap;
		*bp = b = nb;
	}
	memcpy(b->buf + b->len, &n, 4);
	b->buf[b->len + 4] = (char)ending;
	memcpy(b->buf + b->len + SHA256_ENTRY_HEAD, line, content);
	b->len += need;
	return 0;
}

/* On a pool thread: every line of the batch, replied in order. */
static void sha256_job(struct proto_job *job, void *arg)
{
	static const char crlf[] = "\r\n";
	struct sha256_batch *b = arg;
	size_t pos = 0;

	while (pos < b->len) {
		char hex[SHA256_HEX + 2];
		uint32_t content;
		size_t ending, n;

		memcpy(&content, b->buf + pos, 4);
		ending = (size_t)b->buf[pos + 4];
		n = sha256_line(b->buf + pos + SHA256_ENTRY_HEAD, content,
		    crlf + 2 - ending, ending, hex);
		if (n)
			proto_job_reply(job, hex, n);
		else
			proto_job_reply(job, SHA256_ERROR,
			    sizeof(SHA256_ERROR) - 1);
		pos += SHA256_ENTRY_HEAD + content;
	}
}

/*
 * Hands the batch to the pool.  Returns 0 if it went, or was hashed
 * inline because the pool could not take it for want of memory, and
 * -EAGAIN if the connection must wait.  Frees @b unless the pool took
 * it.
 */
static int sha256_submit(struct conn *c, struct sha256_batch *b)
{
	int rc = conn_offload(c, sha256_job, b, free);
	size_t pos = 0;

	if (rc == 0 || rc == -EAGAIN) {
		if (rc)
			free(b);
		return rc;
	}
	while (pos < b->len) {	/* no pool, or no memory for the job */
		uint32_t content;
		size_t ending = (size_t)b->buf[pos + 4];
		char *line = b->buf + pos + SHA256_ENTRY_HEAD;

		memcpy(&content, b->buf + pos, 4);
		sha256_reply_inline(c, line, content, 0);
		conn_reply(c, &"\r\n"[2 - ending], ending);
		pos += SHA256_ENTRY_HEAD + content;
	}
	free(b);
	return 0;
}

static ssize_t sha256_data(struct conn *c, void *state, const char *in,
    size_t len)
{
	struct lines_state *st = state;
	struct sha256_batch *b = NULL;
	struct lines_line l;
	size_t pos = 0;
	enum lines_step step;

	if (!conn_config(c)->offload)
		return lines_data(c, st, in, len, sha256_reply_inline);
	while ((step = lines_next(c, st, in, len, &pos, &l)) == LINES_LINE)
		if (sha256_batch_add(&b, l.p, l.content, l.ending, len)) {
			free(b);
			return PROTO_CLOSE;
		}
	if (b && sha256_submit(c, b) == -EAGAIN) {
		/* Nothing consumed: the same lines come again. */
		st->scanned = 0;
		return 0;
	}
	if (step == LINES_LONG)
		conn_reply(c, LINES_TOO_LONG, sizeof(LINES_TOO_LONG) - 1);
	return step == LINES_END ? (ssize_t)pos : PROTO_CLOSE;
}

static void sha256_eof(struct conn *c, void *state, const char *in,
    size_t len)
{
	/* What is left at EOF is at most one partial line, since reading
	 * stops while lines wait for the pool: hashed inline. */
	lines_eof(c, state, in, len, sha256_reply_inline);
}

const struct proto_ops proto_sha256 = {
	.name = "sha256",
	.summary = "each line back as the hex SHA-256 of its content; "
	    "--offload hashes on the pool; quit closes",
	.state_size = sizeof(struct lines_state),
	.max_pending = LINES_MAX_PENDING,
	.open = lines_open,
	.data = sha256_data,
	.eof = sha256_eof,
};
