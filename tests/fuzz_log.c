/*
 * A libFuzzer target for the JSON log lines (src/log.c): the fuzzer picks
 * the bytes of a message and of up to four fields (keys, string or
 * integer values), which log messages can carry from clients, and every
 * line written must be exactly one valid JSON object on one line (RFC
 * 8259, UTF-8 throughout) whose first members are "ts", "level" and
 * "msg", at most 8 KiB long.  The validator below is written here, apart
 * from log.c, as plainly as possible.  Built and run by `make fuzz`.
 */
#include "log.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Crashes with @what, so that libFuzzer saves the input. */
static void fuzz_fail(const char *what, const char *line, size_t len)
{
	fprintf(stdout, "fuzz_log: %s: %.*s\n", what, (int)len, line);
	fflush(stdout);
	abort();
}

struct json {
	const unsigned char *p, *end;
};

static void skip_ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t'))
		j->p++;
}

static int lit(struct json *j, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, s, n))
		return 0;
	j->p += n;
	return 1;
}

/* One UTF-8 sequence (RFC 3629) at j->p, or 0. */
static int utf8(struct json *j)
{
	const unsigned char *p = j->p;
	size_t left = (size_t)(j->end - p), n;
	uint32_t cp;

	if (p[0] < 0x80)
		n = 1, cp = p[0];
	else if ((p[0] & 0xe0) == 0xc0)
		n = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	j->p += n;
	return 1;
}

static int string(struct json *j)
{
	if (!lit(j, "\""))
		return 0;
	while (j->p < j->end && *j->p != '"') {
		if (*j->p < 0x20)
			return 0;	/* raw control bytes are not JSON */
		if (*j->p == '\\') {
			j->p++;
			if (j->p >= j->end)
				return 0;
			if (*j->p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (j->p + i >= j->end ||
					    !strchr("0123456789abcdefABCDEF",
					    j->p[i]))
						return 0;
				j->p += 5;
			} else if (strchr("\"\\/bfnrt", *j->p) && *j->p) {
				j->p++;
			} else {
				return 0;
			}
		} else if (!utf8(j)) {
			return 0;
		}
	}
	return lit(j, "\"");
}

static int number(struct json *j)
{
	const unsigned char *start;

	lit(j, "-");
	start = j->p;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	if (j->p == start || (*start == '0' && j->p - start > 1))
		return 0;
	return 1;
}

static int value(struct json *j);

static int object(struct json *j)
{
	if (!lit(j, "{"))
		return 0;
	skip_ws(j);
	if (lit(j, "}"))
		return 1;
	do {
		skip_ws(j);
		if (!string(j))
			return 0;
		skip_ws(j);
		if (!lit(j, ":") || !value(j))
			return 0;
		skip_ws(j);
	} while (lit(j, ","));
	return lit(j, "}");
}

static int value(struct json *j)
{
	skip_ws(j);
	if (j->p >= j->end)
		return 0;
	if (*j->p == '{')
		return object(j);
	if (*j->p == '"')
		return string(j);
	if (lit(j, "true") || lit(j, "false") || lit(j, "null"))
		return 1;
	return number(j);
}

static void check_line(const char *line, size_t len)
{
	static const char head[] = "{\"ts\":\"";
	struct json j = { (const unsigned char *)line,
		(const unsigned char *)line + len - 1 };
	const char *level;

	if (len < 2 || line[len - 1] != '\n')
		fuzz_fail("not one line", line, len);
	if (len > 8192)
		fuzz_fail("longer than 8 KiB", line, len);
	if (strncmp(line, head, sizeof(head) - 1))
		fuzz_fail("does not start with ts", line, len);
	level = line + sizeof(head) - 1 + 24;	/* "2026-...123Z" */
	if (strncmp(level, "\",\"level\":\"info\",\"msg\":\"", 24))
		fuzz_fail("level and msg do not follow ts", line, len);
	if (!object(&j) || j.p != j.end)
		fuzz_fail("not a JSON object", line, len);
}

static int out_fd = -1, saved_stderr = -1;

/* An in-memory file that stands in for stderr during each log call;
 * between calls stderr is libFuzzer's again, for its reports. */
static void setup(void)
{
	out_fd = memfd_create("fuzz_log", 0);
	saved_stderr = dup(STDERR_FILENO);
	if (out_fd < 0 || saved_stderr < 0)
		abort();
	log_set_format(LOG_FORMAT_JSON);
}

/*
 * Input: the first byte's low 3 bits give the number of fields (up to 4),
 * bit 3 makes the last field an integer; the rest is split at NUL bytes
 * into the message, then key, value, key, value...
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[4 * 8192];
	struct log_field f[4];
	const char *part[9];
	char *copy;
	size_t nparts = 0, nf;
	ssize_t n;

	if (out_fd < 0)
		setup();
	if (size < 1)
		return 0;
	nf = (data[0] & 7) % 5;
	copy = malloc(size);
	if (!copy)
		abort();
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	for (char *p = copy; nparts < 9; ) {
		part[nparts++] = p;
		p += strlen(p);
		if (p >= copy + size - 1)
			break;
		p++;
	}
	for (size_t i = nparts; i < 9; i++)
		part[i] = "";
	for (size_t i = 0; i < nf; i++)
		f[i] = LOG_STR(part[1 + 2 * i], part[2 + 2 * i]);
	if (nf && (data[0] & 8))
		f[nf - 1] = LOG_INT(part[2 * nf - 1],
		    (long long)strlen(part[2 * nf]) * 1000003LL - 77);

	if (ftruncate(out_fd, 0) || lseek(out_fd, 0, SEEK_SET) ||
	    dup2(out_fd, STDERR_FILENO) < 0)
		abort();
	log_fields(LL_INFO, f, nf, "%s", part[0]);
	if (dup2(saved_stderr, STDERR_FILENO) < 0)
		abort();
	n = pread(out_fd, buf, sizeof(buf), 0);
	if (n <= 0)
		fuzz_fail("nothing written", "", 0);
	if (memchr(buf, '\n', (size_t)n) != buf + n - 1)
		fuzz_fail("not one line", buf, (size_t)n);
	check_line(buf, (size_t)n);
	free(copy);
	return 0;
}
