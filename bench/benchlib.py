"""Helpers that the feature benchmarks (bench/resp.py, offload.py,
pubsub.py, tls.py, udp.py, metrics.py) share: the median with the range
of a few rounds and its one way of printing, and starting and stopping a
server subprocess on a loopback port.  free_port(), log() and proc_cpu_s()
stay in bench/run.py, where those scripts already import them from.

Nothing here measures; it only has to behave the same for every script.
"""
import socket
import statistics
import subprocess
import time


def median_min_max(xs):
    """(median, min, max) of the values of @xs that are not None, or None
    if there are none (every round failed)."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return (statistics.median(xs), min(xs), max(xs))


def fmt(a, digits=0):
    """A median_min_max() triple as 'median (min–max)' with thousands
    separators and @digits decimals; 'n/a' for None."""
    if a is None:
        return 'n/a'
    f = '{:,.%df}' % digits
    return '%s (%s–%s)' % (f.format(a[0]), f.format(a[1]), f.format(a[2]))


def wait_port(port, proc, deadline=10.0):
    """True once 127.0.0.1:@port accepts a connection; False if @proc (a
    Popen) exits first or @deadline seconds pass."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(('127.0.0.1', port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def stop(proc):
    """SIGTERM to @proc (a Popen), SIGKILL if it has not exited within
    10 s; reaps it either way."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
