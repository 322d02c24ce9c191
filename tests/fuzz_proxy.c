/*
 * A libFuzzer target for the PROXY protocol parser (src/proxy.c).  Beyond
 * not crashing, each input checks that the parser is consistent about
 * prefixes, as a connection that gets its header a few bytes at a time
 * relies on: a complete header of N bytes is found again in exactly its
 * first N bytes, every shorter prefix asks for more, and once a prefix is
 * refused every longer one is too.  Built and run by `make fuzz`.
 */
#include "proxy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what, size_t at)
{
	fprintf(stderr, "fuzz_proxy: %s (at %zu bytes)\n", what, at);
	abort();
}

/* Prefix lengths checked per input, spread evenly, so a long input
 * stays cheap. */
#define CUTS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_header h;
	const char *why = NULL;
	ssize_t full = proxy_parse(data, size, &h, &why);
	size_t step = size / CUTS + 1;
	int refused = 0;

	if (full < 0 && !why)
		fuzz_fail("refused without a reason", size);
	if (full > 0) {
		if ((size_t)full > size || full > PROXY_HEADER_MAX)
			fuzz_fail("header longer than its input", size);
		if (h.version != 1 && h.version != 2)
			fuzz_fail("no version", size);
		if (h.has_addr && (h.local ||
		    (h.src.sa.sa_family != AF_INET &&
		    h.src.sa.sa_family != AF_INET6) ||
		    h.src.sa.sa_family != h.dst.sa.sa_family))
			fuzz_fail("addresses of no single family", size);
		if (proxy_parse(data, (size_t)full, &h, NULL) != full)
			fuzz_fail("header not found in its own bytes", size);
		if (full > 1 && proxy_parse(data, (size_t)full - 1, &h,
		    NULL) != 0)
			fuzz_fail("header minus a byte did not ask for more",
			    (size_t)full - 1);
	}
	for (size_t i = 0; i < size; i += step) {
		ssize_t r = proxy_parse(data, i, &h, NULL);

		if (refused && r >= 0)
			fuzz_fail("a refused prefix became acceptable", i);
		if (r < 0)
			refused = 1;
		if (r > 0 && r != full)
			fuzz_fail("a prefix gave another header", i);
		if (full == 0 && r != 0)
			fuzz_fail("a prefix of an incomplete input was "
			    "decided", i);
	}
	if (refused && full >= 0)
		fuzz_fail("a refused prefix became acceptable", size);
	return 0;
}
