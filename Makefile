# echoserver: a multi-reactor libevent echo server and a reusable work queue.
#
# Hand-written in the style of git's Makefile: the defaults below work
# straight after a clone.  ./configure (made by `make configure`, which runs
# autoreconf) writes config.mak.autogen to change them, and a hand-written
# config.mak, if present, overrides both.  Every variable can also be given on
# the command line: `make CC=clang SANITIZE=thread check`.
#
# Useful variables:
#   PREFIX, DESTDIR     where `make install` puts things
#   CC, CFLAGS, LDFLAGS the usual
#   WERROR=             build without -Werror (default is -Werror)
#   SANITIZE=address,undefined or SANITIZE=thread
#   V=1                 show the full commands
#   TEST_WRAPPER="valgrind ..."  run the server under a wrapper in tests
#   STRESS_CHURN, STRESS_FLOOD, ...  sizes for `make stress` (see below)
#   BENCH_QUICK=1       short `make bench` and `make bench-workqueue` runs

VERSION = 0.1.0
WQ_SOVERSION = 0

PREFIX = /usr/local
DESTDIR =
CC = cc
CFLAGS = -O2 -g
LDFLAGS =
PKG_CONFIG = pkg-config
WERROR = -Werror
SANITIZE =

-include config.mak.autogen
-include config.mak

bindir = $(PREFIX)/bin
libdir = $(PREFIX)/lib
includedir = $(PREFIX)/include
mandir = $(PREFIX)/share/man
pkgconfigdir = $(libdir)/pkgconfig
# systemd reads units from PREFIX/lib/systemd/system for /usr and
# /usr/local alike (`systemd-analyze unit-paths`).
systemdsystemunitdir = $(PREFIX)/lib/systemd/system

ifneq ($(V),1)
QUIET_CC = @echo '   ' CC $@;
QUIET_LINK = @echo '   ' LINK $@;
QUIET_AR = @echo '   ' AR $@;
QUIET_GEN = @echo '   ' GEN $@;
endif

LIBEVENT_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libevent 2>/dev/null)
LIBEVENT_LIBS ?= $(shell $(PKG_CONFIG) --libs libevent 2>/dev/null)
CHECK_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS ?= $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
# TLS listeners: libevent's bufferevent_openssl and OpenSSL 3 (libssl).
TLS_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libevent_openssl openssl 2>/dev/null)
TLS_LIBS ?= $(shell $(PKG_CONFIG) --libs libevent_openssl openssl 2>/dev/null)
GLIB_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags glib-2.0 2>/dev/null)
GLIB_LIBS ?= $(shell $(PKG_CONFIG) --libs glib-2.0 2>/dev/null)
# libsystemd is optional (src/systemd.h): found, it brings socket
# activation and sd_notify; HAVE_LIBSYSTEMD= builds without it anyway.
HAVE_LIBSYSTEMD ?= $(shell $(PKG_CONFIG) --exists libsystemd 2>/dev/null \
	&& echo 1)
LIBSYSTEMD_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libsystemd 2>/dev/null)
LIBSYSTEMD_LIBS ?= $(shell $(PKG_CONFIG) --libs libsystemd 2>/dev/null)
# Expanded late, so that a libsystemd-dev that `make check` has just
# installed is seen in the same run.
SYSTEMD_CFLAGS = $(if $(HAVE_LIBSYSTEMD),-DHAVE_LIBSYSTEMD $(LIBSYSTEMD_CFLAGS))
SYSTEMD_LIBS = $(if $(HAVE_LIBSYSTEMD),$(LIBSYSTEMD_LIBS))
# libcrypto's EVP digests, for the sha256 handler.
LIBCRYPTO_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libcrypto 2>/dev/null)
LIBCRYPTO_LIBS ?= $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null)

WARNINGS = -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wno-unused-parameter
ALL_CFLAGS = -std=gnu11 -pthread -D_GNU_SOURCE -DVERSION='"$(VERSION)"' \
	-Isrc $(WARNINGS) $(CFLAGS)
ALL_LDFLAGS = -pthread $(LDFLAGS)
ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
ALL_LDFLAGS += -fsanitize=$(SANITIZE)
endif

# --- what gets built ---------------------------------------------------------

SERVER_OBJS = src/main.o src/options.o src/log.o src/common/xalloc.o \
	src/conn_queue.o src/worker.o src/conn.o src/conn_proxy.o \
	src/conn_tls.o src/conn_jobs.o src/listener.o src/server.o \
	src/stats.o src/netaddr.o src/common/parse.o src/common/fdlimit.o \
	src/udp.o src/proxy.o src/systemd.o src/metrics.o src/tls.o \
	src/idmap.o src/msg.o src/offload.o src/ticker.o

# The protocol handlers (src/proto/proto.h; docs/protocols.md).  They see
# no libevent type, so the unit tests link them with a fake connection.
PROTO_OBJS = src/proto/proto.o src/proto/echo.o src/proto/lines.o \
	src/proto/line.o src/proto/reverse.o src/proto/resp.o \
	src/proto/resp_parse.o src/proto/resp_reply.o src/proto/resp_cmd.o \
	src/proto/resp_server.o src/proto/resp_pubsub.o src/proto/sha256.o
# The shared state the resp handler serves: the key-value store
# (src/store.h), and pub/sub (src/pubsub.h) with its glob matcher.
STORE_OBJS = src/store.o src/pubsub.o src/common/glob.o
# The worked example of docs/protocols.md: built, and tested through the
# harness, but not registered.
PROTO_EXAMPLE_OBJS = docs/examples/proto_counter.o docs/examples/proto_clock.o

# The load generator; see docs/benchmarks.md.
ECHOBENCH_OBJS = src/echobench/echobench.o src/echobench/loadgen.o \
	src/echobench/udpgen.o \
	src/echobench/histogram.o src/common/xalloc.o src/common/procstat.o \
	src/common/parse.o src/common/fdlimit.o

# The work-queue library; see docs/workqueue.md.
WQ_OBJS = src/workqueue/workqueue.o
WQ_SO = libworkqueue.so.$(WQ_SOVERSION)

PROGRAMS = echoserver echobench
LIBS = libworkqueue.a $(WQ_SO) libworkqueue.so workqueue.pc
EXAMPLES = src/workqueue/wq_example
# Installed by `make install`; tests/check_ops.c holds them to --help.
MAN1 = src/echoserver.1 src/echobench/echobench.1
# The systemd units (src/systemd.h); the service is written for bindir.
SYSTEMD_UNITS = echoserver.service src/echoserver.socket
TESTS = tests/check_conn_queue tests/check_options tests/check_echoserver \
	tests/check_hardening tests/check_histogram tests/check_echobench \
	tests/check_workqueue tests/check_common tests/check_proto \
	tests/check_protocols tests/check_store tests/check_resp \
	tests/check_resp_cli tests/check_udp tests/check_proxy \
	tests/check_proxy_server tests/check_log tests/check_systemd \
	tests/check_ops tests/check_metrics tests/check_tls \
	tests/check_idmap tests/check_msg tests/check_offload \
	tests/check_glob tests/check_pubsub tests/check_pubsub_core
TEST_OBJS = tests/testutil.o tests/faults.o tests/proto_harness.o
# What every test binary links: the helpers and the /proc readers.
TESTUTIL = tests/testutil.o src/common/procstat.o
TEST_PROGRAMS = tests/echoserver-faults
STRESS_TESTS = tests/stress_echoserver
# Needs haproxy; run by `make test-haproxy`, not `make check`.
HAPROXY_TESTS = tests/check_haproxy
BENCH_PEERS = bench/peer_bufferevent bench/peer_seed bench/peer_udp \
	bench/peer_epoll bench/peer_tls

ALL_OBJS = $(SERVER_OBJS) $(PROTO_OBJS) $(PROTO_EXAMPLE_OBJS) \
	$(STORE_OBJS) $(ECHOBENCH_OBJS) $(WQ_OBJS) $(TEST_OBJS) \
	$(TESTS:%=%.o) $(STRESS_TESTS:%=%.o) $(HAPROXY_TESTS:%=%.o) \
	$(BENCH_PEERS:%=%.o) \
	$(EXAMPLES:%=%.o) bench/bench_workqueue.o bench/offload_client.o \
	bench/pubsub_client.o

all: $(PROGRAMS) $(LIBS) $(EXAMPLES) $(PROTO_OBJS) $(PROTO_EXAMPLE_OBJS) \
	echoserver.service

src/tls.o src/echobench/loadgen.o src/echobench/echobench.o: \
	ALL_CFLAGS += $(TLS_CFLAGS)
echoserver: $(SERVER_OBJS) $(PROTO_OBJS) $(STORE_OBJS) libworkqueue.a
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBEVENT_LIBS) \
		$(SYSTEMD_LIBS) $(TLS_LIBS) $(LIBCRYPTO_LIBS)
src/systemd.o: ALL_CFLAGS += $(SYSTEMD_CFLAGS)

echobench: $(ECHOBENCH_OBJS)
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lm $(TLS_LIBS)

# The work-queue library needs pthreads only, so its rules skip libevent.
# One -fPIC object serves both the archive and the shared library.
src/workqueue/workqueue.o: src/workqueue/workqueue.c BUILD-FLAGS
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) -fPIC -MMD -MP -c -o $@ $<
libworkqueue.a: $(WQ_OBJS)
	$(QUIET_AR)rm -f $@ && $(AR) rcs $@ $^
$(WQ_SO): $(WQ_OBJS)
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,$@ -o $@ $^
libworkqueue.so: $(WQ_SO)
	$(QUIET_GEN)ln -sf $< $@

# BUILD-PREFIX changes with the install paths, so workqueue.pc follows a new
# PREFIX (the BUILD-FLAGS trick again).
BUILD-PREFIX: FORCE
	@p='$(PREFIX):$(libdir):$(includedir):$(bindir)'; \
	if test x"$$p" != x"`cat $@ 2>/dev/null`"; then echo "$$p" >$@; fi
workqueue.pc: src/workqueue/workqueue.pc.in BUILD-PREFIX
	$(QUIET_GEN)sed -e 's|@prefix@|$(PREFIX)|' -e 's|@libdir@|$(libdir)|' \
		-e 's|@includedir@|$(includedir)|' -e 's|@VERSION@|$(VERSION)|' \
		$< >$@+ && mv $@+ $@

echoserver.service: src/echoserver.service.in BUILD-PREFIX
	$(QUIET_GEN)sed -e 's|@bindir@|$(bindir)|' $< >$@+ && mv $@+ $@

# The example includes <workqueue.h> as an installed program would.
src/workqueue/wq_example.o: ALL_CFLAGS += -Isrc/workqueue
src/workqueue/wq_example: src/workqueue/wq_example.o libworkqueue.a
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^

# --- packages ----------------------------------------------------------------

# The Debian packages the build needs: a feature that brings a build
# dependency appends it here.  When one is missing, `make run` and `make
# check` install them themselves if they can (as root, or where `sudo -n`
# works), showing the apt-get line they run, and go on; otherwise, or for
# other targets, make stops with one line naming the command (see
# docs/operations.md, "Set-up").  The optional ones come along with that
# install, but their absence alone installs nothing: the build goes on
# without their features (`echoserver --version` says).  Tools that only
# tests use are not here: such a test says skip and why.
DEBIAN_PACKAGES = build-essential pkg-config libevent-dev check libssl-dev
DEBIAN_PACKAGES_OPTIONAL = libsystemd-dev
# 1: install what is missing; 0: only name it.  Default: 1 for run, check.
INSTALL_DEPS = $(if $(filter run check,$(MAKECMDGOALS)),1,0)
APT_GET = apt-get

# Which packages are missing is dpkg's answer, so a half-installed or
# removed package counts; without dpkg (not Debian) this step is skipped
# and the pkg-config checks below still name what the build lacks.  The
# lock timeout makes a second make (another terminal) wait for the first
# one's apt-get rather than fail.
DPKG_MISSING = for p in $(1); do \
	dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | \
	grep -qx installed || printf ' %s' $$p; done
need-packages:
	@command -v dpkg-query >/dev/null 2>&1 || exit 0; \
	missing=$$($(call DPKG_MISSING,$(DEBIAN_PACKAGES))); \
	test -n "$$missing" || exit 0; \
	opt=$$($(call DPKG_MISSING,$(DEBIAN_PACKAGES_OPTIONAL))); \
	if test "$(INSTALL_DEPS)" = 1 && test "$$(id -u)" = 0; then sudo=; \
	elif test "$(INSTALL_DEPS)" = 1 && sudo -n true 2>/dev/null; then \
		sudo='sudo -n '; \
	else echo "echoserver: missing packages:$$missing; install them" \
		"with: sudo apt-get install -y$$missing$$opt (or run" \
		"'make deps')" >&2; exit 1; fi; \
	cmd="$${sudo}env DEBIAN_FRONTEND=noninteractive $(APT_GET) install" \
	cmd="$$cmd -y -q -o DPkg::Lock::Timeout=300"; \
	cmd="$$cmd --no-install-recommends$$missing$$opt"; \
	echo "echoserver: installing the missing packages:$$missing$$opt"; \
	echo "  $$cmd"; \
	$$cmd </dev/null || { \
		echo "  $${sudo}$(APT_GET) update -q (the package lists may" \
			"be stale), then again"; \
		$${sudo}$(APT_GET) update -q </dev/null && $$cmd </dev/null; \
	} || { echo "echoserver: could not install$$missing$$opt; see" \
		"apt-get's output above" >&2; exit 1; }

# One clear line naming what is missing, instead of a wall of compiler errors.
# `make deps` installs the packages on Debian.
need-libevent: need-packages
	@$(PKG_CONFIG) --exists 'libevent >= 2.1' 2>/dev/null || { echo \
	"echoserver: libevent 2.1 not found; install it with: sudo apt-get install -y pkg-config libevent-dev (or run 'make deps')" >&2; \
	exit 1; }
	@$(PKG_CONFIG) --exists libevent_openssl openssl 2>/dev/null || { echo \
	"echoserver: OpenSSL (for tls+ listeners) not found; install it with: sudo apt-get install -y libssl-dev (or run 'make deps')" >&2; \
	exit 1; }
need-check: need-libevent
	@$(PKG_CONFIG) --exists check 2>/dev/null || { echo \
	"echoserver: the Check test library not found; install it with: sudo apt-get install -y check (or run 'make deps')" >&2; \
	exit 1; }
deps:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y \
		--no-install-recommends $(DEBIAN_PACKAGES) \
		$(DEBIAN_PACKAGES_OPTIONAL)

# --- compiling ---------------------------------------------------------------

# BUILD-FLAGS changes whenever the compile or link flags do, so switching
# SANITIZE or CC rebuilds everything instead of mixing objects (git's
# GIT-CFLAGS trick).
TRACK_FLAGS = $(CC) $(ALL_CFLAGS) $(LIBEVENT_CFLAGS) $(CHECK_CFLAGS) \
	$(ALL_LDFLAGS) $(SYSTEMD_CFLAGS) $(TLS_CFLAGS)
BUILD-FLAGS: FORCE | need-packages
	@flags='$(subst ','\'',$(TRACK_FLAGS))'; \
	if test x"$$flags" != x"`cat $@ 2>/dev/null`"; then \
		echo "$$flags" >$@; fi

%.o: %.c BUILD-FLAGS | need-libevent
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) $(LIBEVENT_CFLAGS) $(LIBCRYPTO_CFLAGS) \
		-MMD -MP -c -o $@ $<

tests/%.o: tests/%.c BUILD-FLAGS | need-check
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) $(LIBEVENT_CFLAGS) $(CHECK_CFLAGS) \
		-MMD -MP -c -o $@ $<

-include $(ALL_OBJS:.o=.d)

# --- tests -------------------------------------------------------------------

tests/check_conn_queue: tests/check_conn_queue.o $(TESTUTIL) \
		src/conn_queue.o src/common/xalloc.o
tests/check_options: tests/check_options.o $(TESTUTIL) src/options.o src/udp.o \
		src/log.o src/common/xalloc.o src/netaddr.o src/common/parse.o \
		src/conn.o src/conn_proxy.o src/conn_tls.o src/conn_jobs.o \
		src/proxy.o src/tls.o src/idmap.o src/offload.o \
		src/worker.o src/conn_queue.o src/msg.o src/udp.o \
		$(PROTO_OBJS) $(STORE_OBJS) libworkqueue.a
tests/check_idmap: tests/check_idmap.o $(TESTUTIL) src/idmap.o
# Real worker threads and connections, with a test handler.
tests/check_msg: tests/check_msg.o $(TESTUTIL) src/worker.o src/conn.o \
		src/conn_proxy.o src/conn_tls.o src/conn_jobs.o \
		src/conn_queue.o src/msg.o src/idmap.o src/log.o \
		src/offload.o src/ticker.o docs/examples/proto_clock.o \
		src/proxy.o src/tls.o src/udp.o src/netaddr.o libworkqueue.a
tests/check_common: tests/check_common.o $(TESTUTIL) src/common/parse.o \
		src/common/fdlimit.o
tests/check_echoserver: tests/check_echoserver.o $(TESTUTIL)
tests/check_glob: tests/check_glob.o $(TESTUTIL) src/common/glob.o
tests/check_pubsub_core: tests/check_pubsub_core.o $(TESTUTIL) src/pubsub.o \
		src/common/glob.o
tests/check_hardening: tests/check_hardening.o $(TESTUTIL)
tests/check_protocols: tests/check_protocols.o $(TESTUTIL)
tests/check_resp_cli: tests/check_resp_cli.o $(TESTUTIL)
# The guard classifier is called directly, so udp.o links in too.
tests/check_udp: tests/check_udp.o $(TESTUTIL) src/udp.o src/log.o src/netaddr.o \
		| echobench
tests/check_proxy: tests/check_proxy.o $(TESTUTIL) src/proxy.o
tests/check_proxy_server: tests/check_proxy_server.o $(TESTUTIL)
tests/check_log: tests/check_log.o $(TESTUTIL) src/log.o
tests/check_systemd: tests/check_systemd.o $(TESTUTIL)
tests/check_ops: tests/check_ops.o $(TESTUTIL) | echoserver echobench
tests/check_metrics: tests/check_metrics.o $(TESTUTIL)
tests/check_tls: tests/check_tls.o $(TESTUTIL) | echobench
tests/check_offload: tests/check_offload.o $(TESTUTIL)
tests/check_pubsub: tests/check_pubsub.o $(TESTUTIL)
tests/check_store: tests/check_store.o $(TESTUTIL) $(STORE_OBJS)
tests/stress_echoserver: tests/stress_echoserver.o $(TESTUTIL)
tests/check_haproxy: tests/check_haproxy.o $(TESTUTIL)
tests/check_histogram: tests/check_histogram.o $(TESTUTIL) \
		src/echobench/histogram.o
tests/check_echobench: tests/check_echobench.o $(TESTUTIL) | echobench
# The wraps let the suite fail pthread_create and count joins.
tests/check_workqueue: tests/check_workqueue.o $(TESTUTIL) \
		libworkqueue.a
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -Wl,--wrap=pthread_create \
		-Wl,--wrap=pthread_join -o $@ $^ $(CHECK_LIBS)
# The handlers against the fake connection of tests/proto_harness.c: no
# server objects and no libevent.
tests/check_proto: tests/check_proto.o tests/proto_harness.o $(PROTO_OBJS) \
		$(STORE_OBJS) $(PROTO_EXAMPLE_OBJS) $(TESTUTIL)
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) \
		$(LIBCRYPTO_LIBS)
# resp through the same harness, on a real store (or the test-only one).
tests/check_resp: tests/check_resp.o tests/proto_harness.o $(PROTO_OBJS) \
		$(STORE_OBJS) $(TESTUTIL)
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) \
		$(LIBCRYPTO_LIBS)
OWN_LINK_TESTS = tests/check_workqueue tests/check_proto tests/check_resp
$(filter-out $(OWN_LINK_TESTS),$(TESTS)) $(STRESS_TESTS) $(HAPROXY_TESTS):
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) \
		$(LIBEVENT_LIBS) $(TLS_LIBS) $(LIBCRYPTO_LIBS) -lm

# The server's own objects with chosen calls made to fail (tests/faults.c).
FAULT_WRAPS = -Wl,--wrap=bufferevent_socket_new \
	-Wl,--wrap=conn_queue_item_new -Wl,--wrap=write
tests/echoserver-faults: $(SERVER_OBJS) $(PROTO_OBJS) $(STORE_OBJS) \
		tests/faults.o libworkqueue.a
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) $(FAULT_WRAPS) -o $@ $^ \
		$(LIBEVENT_LIBS) $(SYSTEMD_LIBS) $(TLS_LIBS) $(LIBCRYPTO_LIBS)

# libFuzzer runs through the harness: tests/fuzz_proto.c over the line
# handlers and the example, tests/fuzz_resp.c over resp and its parser.
# Built with clang straight from the sources, so their flags never mix
# with the objects of the normal build; not part of `make check`.  Each
# harness runs for FUZZ_SECONDS (CI: 30), or for FUZZ_RUNS executions
# when that is set, which takes precedence.  The committed seeds in
# tests/fuzz/corpus/NAME/ are copied into the scratch corpus
# tests/tmp/fuzz/NAME/, which the run grows, so the seeds stay as they
# are; found crashes are written to tests/tmp/fuzz/.
FUZZ_CC = clang
FUZZ_SECONDS = 60
FUZZ_RUNS =
FUZZ_HARNESSES = proto resp proxy log glob
FUZZ_CFLAGS = -O1 -g -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all
FUZZ_COMMON_SRCS = tests/proto_harness.c $(PROTO_OBJS:.o=.c) \
	$(patsubst %.o,%.c,$(STORE_OBJS))
FUZZ_HEADERS = src/common/glob.h src/proto/proto.h src/proto/lines.h src/proto/resp_parse.h \
	src/proto/resp_cmd.h src/proto/resp_reply.h src/store.h \
	tests/proto_harness.h
FUZZ_LIMIT = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),\
	-max_total_time=$(FUZZ_SECONDS))
tests/fuzz_proto: tests/fuzz_proto.c $(FUZZ_COMMON_SRCS) \
		$(PROTO_EXAMPLE_OBJS:.o=.c) $(FUZZ_HEADERS)
	$(QUIET_LINK)$(FUZZ_CC) -std=gnu11 -D_GNU_SOURCE -pthread -Isrc \
		$(WARNINGS) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) \
		$(LIBCRYPTO_LIBS)
tests/fuzz_resp: tests/fuzz_resp.c $(FUZZ_COMMON_SRCS) $(FUZZ_HEADERS)
	$(QUIET_LINK)$(FUZZ_CC) -std=gnu11 -D_GNU_SOURCE -pthread -Isrc \
		$(WARNINGS) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) \
		$(LIBCRYPTO_LIBS)
# The PROXY protocol parser alone: it needs nothing else.
tests/fuzz_proxy: tests/fuzz_proxy.c src/proxy.c src/proxy.h src/netaddr.h
	$(QUIET_LINK)$(FUZZ_CC) -std=gnu11 -D_GNU_SOURCE -Isrc \
		$(WARNINGS) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^)
# tests/fuzz_log.c: every JSON log line must be valid JSON, whatever the
# message and fields hold.
tests/fuzz_log: tests/fuzz_log.c src/log.c src/log.h
	$(QUIET_LINK)$(FUZZ_CC) -std=gnu11 -D_GNU_SOURCE -pthread -Isrc \
		$(WARNINGS) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) \
		$(LIBEVENT_LIBS)
# The glob matcher alone: no harness, no handler.
tests/fuzz_glob: tests/fuzz_glob.c src/common/glob.c src/common/glob.h
	$(QUIET_LINK)$(FUZZ_CC) -std=gnu11 -D_GNU_SOURCE -Isrc $(WARNINGS) \
		$(FUZZ_CFLAGS) -o $@ $(filter %.c,$^)
fuzz: $(FUZZ_HARNESSES:%=tests/fuzz_%)
	@set -e; for h in $(FUZZ_HARNESSES); do \
		mkdir -p tests/tmp/fuzz/$$h; \
		if [ -d tests/fuzz/corpus/$$h ]; then \
			cp -n tests/fuzz/corpus/$$h/* tests/tmp/fuzz/$$h/; fi; \
		echo "== fuzz_$$h"; \
		./tests/fuzz_$$h $(FUZZ_LIMIT) \
			-artifact_prefix=tests/tmp/fuzz/ tests/tmp/fuzz/$$h; \
	done

# `make check` runs every suite; CK_RUN_SUITE / CK_RUN_CASE pick one, and
# TEST_WRAPPER runs the spawned server under valgrind or similar.
INTEGRATION_TESTS = tests/check_echoserver tests/check_hardening \
	tests/check_protocols tests/check_resp_cli tests/check_udp \
	tests/check_proxy_server tests/check_systemd tests/check_metrics \
	tests/check_tls tests/check_offload \
	tests/check_pubsub

# Tests hold the benchmark lock shared and `make bench` holds it alone, so
# a benchmark never runs beside a test suite (docs/benchmarks.md).
BENCH_LOCK = /tmp/echoserver-bench.lock
TEST_LOCK = exec 9>>$(BENCH_LOCK) && flock -s 9;

check: all $(TESTS) $(TEST_PROGRAMS)
	@$(TEST_LOCK) failed=0; for t in $(TESTS); do \
		echo "== $$t"; \
		ECHOSERVER=./echoserver ./$$t || failed=1; \
	done; exit $$failed

# Integration suite only, with the server under valgrind memcheck.  Any
# error makes the server exit 99, which the tests see as a failure.
VALGRIND_SCALE = 0.1
VALGRIND = valgrind -q --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
check-valgrind: all $(INTEGRATION_TESTS) $(TEST_PROGRAMS)
	@$(TEST_LOCK) failed=0; for t in $(INTEGRATION_TESTS); do \
		echo "== $$t under valgrind"; \
		TEST_SCALE=$(VALGRIND_SCALE) TEST_WRAPPER="$(VALGRIND)" \
		CK_TIMEOUT_MULTIPLIER=10 ECHOSERVER=./echoserver ./$$t || \
		failed=1; \
	done; exit $$failed

# echoserver behind a real HAProxy (tests/check_haproxy.c, docs/scale-out.md):
# three instances, leastconn, send-proxy-v2, health checks, one stopped and
# brought back mid-run.  About 15 s; reports a skip without haproxy.
test-haproxy: echoserver echobench $(HAPROXY_TESTS)
	@$(TEST_LOCK) echo "== $(HAPROXY_TESTS)"; \
		ECHOSERVER=./echoserver ECHOBENCH=./echobench ./$(HAPROXY_TESTS)

# The long runs of issue 5 (docs/operations.md, "Stress"): churn, a flood
# past the fd limit, trickling clients, a client that never reads, SIGTERM
# under load.  An empty size means the full size of the issue, or with
# STRESS_SMALL=1 a size that runs in about a minute.  For example:
#   make stress STRESS_CHURN=1000000 STRESS_FLOOD=25000 STRESS_TRICKLE=1000 \
#       STRESS_HOG_MIB=1024 STRESS_SIGTERM_CLIENTS=1000
# STRESS_FLOOD_NOFILE sets the server's fd limit for the flood (empty: the
# hard limit this shell passes on).  CK_RUN_CASE=churn and friends pick one.
STRESS_SMALL =
STRESS_CHURN =
STRESS_FLOOD =
STRESS_FLOOD_NOFILE =
STRESS_TRICKLE =
STRESS_HOG_MIB =
STRESS_SIGTERM_CLIENTS =
STRESS_VARS = STRESS_SMALL STRESS_CHURN STRESS_FLOOD STRESS_FLOOD_NOFILE \
	STRESS_TRICKLE STRESS_HOG_MIB STRESS_SIGTERM_CLIENTS
STRESS_TSAN_TIMEOUT = 4

stress: all $(STRESS_TESTS)
	@echo "== $(STRESS_TESTS)"
	@$(TEST_LOCK) ECHOSERVER=./echoserver $(foreach v,$(STRESS_VARS),$(v)='$($(v))') \
		./$(STRESS_TESTS)

stress-small:
	@$(MAKE) --no-print-directory stress STRESS_SMALL=1

# Race checking: the small sizes with server and tests under TSan.  A later
# plain `make` rebuilds without it (BUILD-FLAGS).
stress-tsan:
	@CK_TIMEOUT_MULTIPLIER=$(STRESS_TSAN_TIMEOUT) $(MAKE) \
		--no-print-directory stress SANITIZE=thread STRESS_SMALL=1

# Shutdown under load with leak checking: the SIGTERM scenario with the
# server under valgrind memcheck, then under ASan's LeakSanitizer.
STRESS_LEAK_CLIENTS = 200
stress-leaks: all $(STRESS_TESTS)
	@CK_RUN_CASE=sigterm TEST_WRAPPER="$(VALGRIND)" CK_TIMEOUT_MULTIPLIER=10 \
		$(MAKE) --no-print-directory stress \
		STRESS_SIGTERM_CLIENTS=$(STRESS_LEAK_CLIENTS)
	@CK_RUN_CASE=sigterm $(MAKE) --no-print-directory stress \
		SANITIZE=address,undefined \
		STRESS_SIGTERM_CLIENTS=$(STRESS_LEAK_CLIENTS)

# --- running and benchmarking ------------------------------------------------

run: echoserver
	./echoserver

bench/peer_%: bench/peer_%.o
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBEVENT_LIBS)
bench/peer_tls.o: ALL_CFLAGS += $(TLS_CFLAGS)
bench/peer_tls: bench/peer_tls.o
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBEVENT_LIBS) $(TLS_LIBS)

# The suite (bench/run.py): echoserver beside the peers (BENCH_PEERS: the
# plain bufferevent echo, the seed design and the thin epoll echo, the
# limit; plus Go, Node and uvloop) and beside itself before the handler
# redesign (built from git at BASELINE_REF into bench/.baseline/),
# interleaved, written to docs/benchmarks.md and docs/benchmarks-*.png.
# Bulk (10 conns, 4 x 64 KiB in flight), pipelined (50 conns, 64 x 64 B in
# flight) and ping-pong (1000 conns, 64 B) run unpinned and pinned (server
# on CPU 1, client on CPU 0), 3 rounds of 3 s; the other scenarios pinned
# only.  About 15 minutes; BENCH_QUICK=1 is the two-minute version, and
# BENCH_ARGS passes more options to bench/run.py (--placements, --servers,
# --scenarios, --reps).  It takes /tmp/echoserver-bench.lock so that only
# one benchmark runs at once.
BENCH_QUICK =
BENCH_ARGS =
BENCH_RESP_ARGS =
bench: echoserver echobench $(BENCH_PEERS)
	flock $(BENCH_LOCK) /usr/bin/python3 bench/run.py \
		$(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)
	@$(MAKE) --no-print-directory bench-resp

# The resp handler against redis-server with redis-benchmark
# (bench/resp.py): docs/benchmarks-resp.md, under the same lock.
bench-resp: echoserver
	flock $(BENCH_LOCK) /usr/bin/python3 bench/resp.py \
		$(if $(BENCH_QUICK),--quick) $(BENCH_RESP_ARGS)

# UDP echo (echobench --udp) against the thin recvmmsg echo bench/peer_udp
# (bench/udp.py), both placements, interleaved: docs/benchmarks-udp.md,
# under the same lock.  About 7 minutes (5 rounds of 5 s, estimated from
# the quick run); BENCH_QUICK=1 took 93 s (into
# tests/tmp/bench/ unless BENCH_UDP_ARGS has --out).
BENCH_UDP_ARGS =
bench-udp: echoserver echobench bench/peer_udp
	flock $(BENCH_LOCK) /usr/bin/python3 bench/udp.py \
		$(if $(BENCH_QUICK),--quick) $(BENCH_UDP_ARGS)
# What the reply-latency histogram of --metrics costs the echo path
# (bench/metrics.py): docs/benchmarks-metrics.md, under the same lock.
bench-metrics: echoserver echobench
	flock $(BENCH_LOCK) /usr/bin/python3 bench/metrics.py \
		$(if $(BENCH_QUICK),--quick)
# TLS (bench/tls.py): echoserver's tls+echo listener against the plain
# bufferevent_openssl echo (bench/peer_tls.c), both through echobench
# --tls: handshakes/s (churn), bulk MB/s and ping-pong msgs/s, unpinned
# and pinned, interleaved rounds, medians with min-max and the ratio.
# Writes docs/benchmarks-tls.md; BENCH_QUICK=1 is the under-3-minute run.
BENCH_TLS_ARGS =
bench-tls: echoserver echobench bench/peer_tls
	flock $(BENCH_LOCK) /usr/bin/python3 bench/tls.py \
		$(if $(BENCH_QUICK),--quick) $(BENCH_TLS_ARGS)
# The sha256 handler inline and offloaded, with a PING probe beside it
# (bench/offload.py): docs/benchmarks-offload.md, under the same lock.
# BENCH_OFFLOAD_ARGS passes more options (--rounds, --conns, --depth,
# --line, --duration, --out).
BENCH_OFFLOAD_ARGS =
bench/offload_client: bench/offload_client.o
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBCRYPTO_LIBS)
bench-offload: echoserver bench/offload_client
	flock $(BENCH_LOCK) /usr/bin/python3 bench/offload.py \
		$(if $(BENCH_QUICK),--quick) $(BENCH_OFFLOAD_ARGS)
# Pub/sub: 1 publisher, 1,000 subscribers, 64 B messages, echoserver
# against redis-server 7, interleaved (bench/pubsub.py, driving the C
# client bench/pubsub_client): docs/benchmarks-pubsub.md, under the same
# lock.  BENCH_QUICK=1 is the three-minute version.
BENCH_PUBSUB_ARGS =
bench/pubsub_client: bench/pubsub_client.o src/common/procstat.o \
		src/common/fdlimit.o
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^
bench-pubsub: echoserver bench/pubsub_client
	flock -w 900 $(BENCH_LOCK) /usr/bin/python3 bench/pubsub.py \
		$(if $(BENCH_QUICK),--quick) $(BENCH_PUBSUB_ARGS)

# The library against GThreadPool, interleaved, under the same lock.
bench/bench_workqueue.o: bench/bench_workqueue.c BUILD-FLAGS
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) $(GLIB_CFLAGS) -MMD -MP -c -o $@ $<
bench/bench_workqueue: bench/bench_workqueue.o libworkqueue.a
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(GLIB_LIBS)
bench-workqueue: bench/bench_workqueue
	flock $(BENCH_LOCK) ./bench/bench_workqueue \
		$(if $(BENCH_QUICK),--quick)

# --- installing --------------------------------------------------------------

# The units only with libsystemd: without it the service could not
# report ready nor take the socket's connections.
install: all install-workqueue
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(mandir)/man1
	install -m 755 $(PROGRAMS) $(DESTDIR)$(bindir)
	install -m 644 $(MAN1) $(DESTDIR)$(mandir)/man1
	$(if $(HAVE_LIBSYSTEMD),install -d $(DESTDIR)$(systemdsystemunitdir) && \
		install -m 644 $(SYSTEMD_UNITS) $(DESTDIR)$(systemdsystemunitdir))

install-workqueue: $(LIBS)
	install -d $(DESTDIR)$(libdir) $(DESTDIR)$(includedir) \
		$(DESTDIR)$(pkgconfigdir) $(DESTDIR)$(mandir)/man3
	install -m 644 libworkqueue.a $(DESTDIR)$(libdir)
	install -m 644 src/workqueue/workqueue.h $(DESTDIR)$(includedir)
	install -m 755 $(WQ_SO) $(DESTDIR)$(libdir)
	ln -sf $(WQ_SO) $(DESTDIR)$(libdir)/libworkqueue.so
	install -m 644 workqueue.pc $(DESTDIR)$(pkgconfigdir)
	install -m 644 src/workqueue/workqueue.3 $(DESTDIR)$(mandir)/man3

uninstall: uninstall-workqueue
	rm -f $(PROGRAMS:%=$(DESTDIR)$(bindir)/%) \
		$(patsubst %,$(DESTDIR)$(mandir)/man1/%,$(notdir $(MAN1))) \
		$(patsubst %,$(DESTDIR)$(systemdsystemunitdir)/%,$(notdir \
		$(SYSTEMD_UNITS)))

uninstall-workqueue:
	rm -f $(DESTDIR)$(libdir)/libworkqueue.a $(DESTDIR)$(libdir)/$(WQ_SO) \
		$(DESTDIR)$(libdir)/libworkqueue.so \
		$(DESTDIR)$(includedir)/workqueue.h \
		$(DESTDIR)$(pkgconfigdir)/workqueue.pc \
		$(DESTDIR)$(mandir)/man3/workqueue.3

# --- configure and cleaning --------------------------------------------------

configure: configure.ac
	$(QUIET_GEN)autoreconf -fi && rm -rf autom4te.cache

clean:
	rm -f $(PROGRAMS) $(LIBS) $(TESTS) $(TEST_PROGRAMS) $(BENCH_PEERS) \
		$(FUZZ_HARNESSES:%=tests/fuzz_%) \
		$(STRESS_TESTS) $(HAPROXY_TESTS) $(EXAMPLES) \
		bench/bench_workqueue bench/offload_client \
		BUILD-FLAGS BUILD-PREFIX $(ALL_OBJS) $(ALL_OBJS:.o=.d) \
		echoserver.service
	rm -rf tests/tmp bench/.baseline

distclean: clean
	rm -rf config.mak.autogen config.log config.status configure \
		autom4te.cache aclocal.m4

.PHONY: all check check-valgrind test-haproxy fuzz stress stress-small \
	stress-tsan stress-leaks run bench bench-resp bench-udp \
	bench-metrics bench-tls bench-offload bench-workqueue install \
	uninstall install-workqueue uninstall-workqueue clean distclean deps \
	need-packages need-libevent need-check FORCE

