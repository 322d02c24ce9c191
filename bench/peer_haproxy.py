#!/usr/bin/python3
"""echoserver behind HAProxy, as one bench peer (bench/run.py).

Starts ./echoserver on a proxy+ listener and HAProxy in front of it with
docs/examples/haproxy.cfg as it stands (the configuration that
`make test-haproxy` tests and docs/scale-out.md shows): its three server
lines all point at the one echoserver, so every connection pays exactly
one HAProxy hop and its PROXY v2 header.  The frontend socket is bound
here on a free port and handed over to HAProxy (bind fd@N).  Once
HAProxy reports the backend UP this prints "port N pid P", P being
echoserver's pid (so run.py's CPU per message is echoserver's; HAProxy's
own CPU is not in it), then runs until SIGTERM and stops both.

Arguments after the script are passed to echoserver (run.py's -t).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def backend_up(stats):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(stats)
        s.sendall(b'show stat\n')
        out = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
    except OSError:
        return False
    for line in out.decode(errors='replace').splitlines():
        if line.startswith('echoservers,BACKEND,'):
            return ',UP,' in line
    return False


def main():
    tmp = tempfile.mkdtemp(prefix='peer-haproxy.')
    pf = os.path.join(tmp, 'port')
    stats = os.path.join(tmp, 'stats.sock')
    es = subprocess.Popen([os.path.join(ROOT, 'echoserver'), '-q', '-p', '0',
                           '-l', 'proxy+echo@127.0.0.1', '--port-file', pf]
                          + sys.argv[1:], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not os.path.exists(pf) and time.monotonic() < deadline:
        if es.poll() is not None:
            sys.exit('peer_haproxy: echoserver exited')
        time.sleep(0.02)
    with open(pf) as f:
        es_port = int(f.read().split()[0])
    front = socket.socket()
    front.bind(('127.0.0.1', 0))
    front.listen(4096)
    front_port = front.getsockname()[1]
    env = dict(os.environ, ECHO_FRONTEND='fd@%d' % front.fileno(),
               ECHO_STATS=stats)
    for i in (1, 2, 3):
        env['ECHO_SERVER%d' % i] = '127.0.0.1:%d' % es_port
    hap = subprocess.Popen(['haproxy', '-db', '-q', '-f',
                            os.path.join(ROOT, 'docs/examples/haproxy.cfg')],
                           env=env, stdin=subprocess.DEVNULL,
                           pass_fds=(front.fileno(),))
    front.close()

    def stop(*_):
        for p in (hap, es):
            if p.poll() is None:
                p.terminate()
        for p in (hap, es):
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not backend_up(stats):
        if time.monotonic() > deadline or hap.poll() is not None:
            stop()
        time.sleep(0.05)
    print('port %d pid %d' % (front_port, es.pid), flush=True)
    while hap.poll() is None and es.poll() is None:
        time.sleep(0.2)
    stop()


if __name__ == '__main__':
    main()
