/*
 * systemd integration; see systemd.h.  All of it is libsystemd's: this
 * file only checks what it returns and says what it did.
 */
#include "systemd.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

#ifdef HAVE_LIBSYSTEMD
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

_Static_assert(SYSTEMD_LISTEN_FDS_START == SD_LISTEN_FDS_START,
    "systemd.h's first descriptor must be libsystemd's");

int systemd_listen_fds(void)
{
	int n = sd_listen_fds(1);

	if (n < 0) {
		log_error("cannot read the sockets systemd passed: %s",
		    strerror(-n));
		return -1;
	}
	for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n;
	    fd++) {
		int rc = sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0);

		if (rc <= 0) {
			log_error("descriptor %d that systemd passed is not "
			    "a listening TCP socket%s%s (use ListenStream= "
			    "with an address or a port)", fd,
			    rc < 0 ? ": " : "", rc < 0 ? strerror(-rc) : "");
			return -1;
		}
	}
	if (n)
		log_verbose("systemd passed %d listening socket%s", n,
		    n == 1 ? "" : "s");
	return n;
}

void systemd_notify(const char *state)
{
	static int warned;
	int rc = sd_notify(0, state);

	if (rc < 0 && !warned) {
		warned = 1;
		log_warn("cannot notify systemd ('%s'): %s", getenv(
		    "NOTIFY_SOCKET") ? getenv("NOTIFY_SOCKET") : "",
		    strerror(-rc));
	}
}

const char *systemd_features(void)
{
	return "systemd: socket activation and sd_notify (libsystemd)";
}

#else /* !HAVE_LIBSYSTEMD */

int systemd_listen_fds(void)
{
	const char *n = getenv("LISTEN_FDS");

	if (n)
		log_warn("built without libsystemd: ignoring the sockets "
		    "systemd passed (LISTEN_FDS=%s); listening as the "
		    "options say", n);
	return 0;
}

void systemd_notify(const char *state)
{
	static int warned;

	if (getenv("NOTIFY_SOCKET") && !warned) {
		warned = 1;
		log_warn("built without libsystemd: cannot notify systemd "
		    "(NOTIFY_SOCKET is set); run as Type=simple");
	}
}

const char *systemd_features(void)
{
	return "systemd: off (built without libsystemd)";
}

#endif
