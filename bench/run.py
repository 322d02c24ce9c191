#!/usr/bin/python3
"""The echoserver benchmark suite, run by `make bench`.

Starts echoserver and every bench peer (a plain libevent bufferevent echo,
the seed's thread-per-connection design, Go net, Node net, Python asyncio
on uvloop) one at a time on a free loopback port, drives each with
echobench through every scenario, and repeats the whole round several
times so that the servers are interleaved rather than run in blocks.
iperf3 --bidir gives the loopback ceiling for bulk, and redis-benchmark
(ECHO) is a second, independent client.  Writes a Markdown report and two
gnuplot PNGs; prints the issue-2 comparison and the issue-4 targets.

Server and client are pinned to different cores with taskset (server on
CPU 1, client on CPU 0) unless --no-pin is given: on a 2-core machine this
keeps the client from stealing the server's core, and gives every server
the same single core, multi-threaded or not.

Take /tmp/echoserver-bench.lock around it (the Makefile does) so that only
one benchmark runs on the machine at a time.
"""

import argparse
import datetime
import json
import os
import platform
import select
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT_CPU, SERVER_CPU = '0', '1'

# The old code as a peer: the last commit before the protocol-handler
# redesign (src/proto/ exists there but conn.c does not use it yet), so
# that the report shows what the redesign costs.  Built from
# `git archive` into bench/.baseline/<commit>/ once and reused.
BASELINE_REF = '858c549'

# What each server is for in the report.  'peer's compete for "best peer";
# the limit and the old code are shown beside it, never as the best peer.
ROLES = {'echoserver': 'self', 'epoll': 'limit', 'baseline': 'baseline'}


def role(key):
    return ROLES.get(key, 'peer')




def log(msg):
    print(msg, flush=True)


def have(cmd):
    return shutil.which(cmd) is not None


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu_s(pid):
    """utime + stime of every thread of pid, in seconds; None if gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return None


def run_out(argv, **kw):
    try:
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=20, **kw).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ''


# --- servers ---------------------------------------------------------------

class Server:
    """A server under test: how to build its argv, where its port appears."""

    def __init__(self, key, label, argv, port_file=False, missing=None):
        self.key, self.label, self.argv = key, label, argv
        self.port_file, self.missing = port_file, missing


def make_servers(args, tmp):
    # By default echoserver picks its own worker count: the CPUs it may
    # run on, so one worker when pinned to one core.
    es_t = (['-t', str(args.echoserver_threads)]
            if args.echoserver_threads else [])
    servers = [
        Server('echoserver', 'echoserver' + (' (-t %d)' %
                                             args.echoserver_threads
                                             if es_t else ''),
               lambda pf: ['./echoserver', '-l', '127.0.0.1', '-p', '0']
               + es_t + ['--port-file', pf],
               port_file=True,
               missing=None if os.access(os.path.join(ROOT, 'echoserver'),
                                         os.X_OK)
               else 'not built'),
        Server('bufferevent', 'plain bufferevent echo',
               lambda pf: ['bench/peer_bufferevent', '0']),
        Server('seed', 'seed design (thread + base per conn)',
               lambda pf: ['bench/peer_seed', '0']),
        Server('epoll', 'thin epoll echo (limit)',
               lambda pf: ['bench/peer_epoll', '0'],
               missing=None if os.access(os.path.join(
                   ROOT, 'bench/peer_epoll'), os.X_OK)
               else 'not built (make bench/peer_epoll)'),
    ]
    base_exe, missing = build_baseline()
    servers.append(Server('baseline', 'echoserver (before handlers)',
                          lambda pf: [base_exe, '-l', '127.0.0.1', '-p', '0']
                          + es_t + ['--port-file', pf],
                          port_file=True, missing=missing))
    gobin = os.path.join(tmp, 'peer_go')
    missing = None
    if not have('go'):
        missing = 'go not installed (apt-get install golang-go)'
    else:
        env = dict(os.environ, GO111MODULE='off', GOFLAGS='',
                   GOPROXY='off', GOCACHE=os.path.join(tmp, 'gocache'))
        r = subprocess.run(['go', 'build', '-o', gobin, 'bench/peer_go.go'],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            missing = 'go build failed: ' + r.stderr.strip()[:200]
    servers.append(Server('go', 'Go net', lambda pf: [gobin, '0'],
                          missing=missing))
    servers.append(Server('node', 'Node net',
                          lambda pf: ['node', 'bench/peer_node.js', '0'],
                          missing=None if have('node') else
                          'node not installed (apt-get install nodejs)'))
    r = subprocess.run(['/usr/bin/python3', '-c', 'import uvloop'],
                       capture_output=True)
    servers.append(Server('uvloop', 'Python asyncio + uvloop',
                          lambda pf: ['/usr/bin/python3',
                                      'bench/peer_uvloop.py', '0'],
                          missing=None if r.returncode == 0 else
                          'uvloop not installed (apt-get install '
                          'python3-uvloop)'))
    if args.servers:
        keep = args.servers.split(',')
        servers = [s for s in servers if s.key in keep]
    return servers


def build_baseline():
    """(path of echoserver built at BASELINE_REF, None) or (None, why not).

    `git archive REF | tar -x` into a fresh directory and `make echoserver`
    there, with the Makefile's default flags; the result is kept in
    bench/.baseline/<commit>/ and reused by later runs.
    """
    if not have('git'):
        return None, 'git not installed'
    r = subprocess.run(['git', 'rev-parse', '--verify', '--quiet',
                        BASELINE_REF + '^{commit}'], cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, ('commit %s is not in this repository (it needs the '
                      'git history; a shallow clone or an exported tree '
                      'has none)' % BASELINE_REF)
    sha = r.stdout.strip()
    top = os.path.join(ROOT, 'bench', '.baseline')
    cache = os.path.join(top, sha)
    exe = os.path.join(cache, 'echoserver')
    if os.access(exe, os.X_OK):
        return exe, None
    log('building echoserver at %s into %s' % (BASELINE_REF,
                                               os.path.relpath(cache, ROOT)))
    os.makedirs(top, exist_ok=True)
    work = tempfile.mkdtemp(prefix='build.', dir=top)
    # Not the outer make's flags or jobserver: a plain default build.
    env = {k: v for k, v in os.environ.items()
           if k not in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES')}
    r = subprocess.run('git archive %s | tar -x -C %s && make -C %s '
                       'echoserver' % (sha, shlex.quote(work),
                                       shlex.quote(work)),
                       shell=True, cwd=ROOT, env=env, capture_output=True,
                       text=True)
    if r.returncode != 0 or not os.access(os.path.join(work, 'echoserver'),
                                          os.X_OK):
        shutil.rmtree(work, ignore_errors=True)
        lines = (r.stderr.strip() or r.stdout.strip()).splitlines()
        return None, 'build at %s failed: %s' % (
            BASELINE_REF, lines[-1] if lines else 'exit %d' % r.returncode)
    try:
        os.rename(work, cache)
    except OSError:             # someone else's build got there first
        shutil.rmtree(work, ignore_errors=True)
    return exe, None


class Running:
    def __init__(self, proc, port):
        self.proc, self.port, self.pid = proc, port, proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(6)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def start_server(srv, tmp, pin):
    pf = os.path.join(tmp, 'port')
    if os.path.exists(pf):
        os.unlink(pf)
    argv = srv.argv(pf)
    if pin:
        argv = ['taskset', '-c', SERVER_CPU] + argv
    with open(os.path.join(tmp, srv.key + '.log'), 'ab') as errlog:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=errlog, stdin=subprocess.DEVNULL)
    try:
        port = wait_port(srv, proc, pf)
    except BaseException:
        Running(proc, 0).stop()
        raise
    if port is None:
        Running(proc, 0).stop()
        raise RuntimeError('did not start (see %s.log)' % srv.key)
    return Running(proc, port)


def wait_port(srv, proc, pf):
    """The port srv's proc prints or writes to pf; None if it does not."""
    deadline = time.monotonic() + 15
    port = None
    buf = b''
    while port is None and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if srv.port_file:
            if os.path.exists(pf):
                with open(pf) as f:
                    text = f.read().strip()
                if text:
                    port = int(text)
                    break
            time.sleep(0.02)
            continue
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            # Only whole lines: the number may still be on its way.
            for line in buf.decode(errors='replace').split('\n')[:-1]:
                words = line.split()
                if len(words) == 2 and words[0] == 'port' and \
                        words[1].isdigit():
                    port = int(words[1])
    return port


# --- scenarios -------------------------------------------------------------

def scenarios(quick):
    s = [
        dict(key='pp64_c1', title='ping-pong 64 B, 1 connection',
             args=['-s', '64', '-c', '1'], conns=1),
        dict(key='pp64_c100', title='ping-pong 64 B, 100 connections',
             args=['-s', '64', '-c', '100'], conns=100),
        dict(key='pp64_c1000', title='ping-pong 64 B, 1000 connections',
             args=['-s', '64', '-c', '1000'], conns=1000),
        dict(key='pp64_c10000', title='ping-pong 64 B, 10000 connections',
             args=['-s', '64', '-c', '10000'], conns=10000),
        dict(key='pp1k_c10', title='ping-pong 1 KiB, 10 connections',
             args=['-s', '1024', '-c', '10']),
        dict(key='bulk64k_c10',
             title='bulk 64 KiB, 10 connections (256 KiB in flight each)',
             args=['-m', 'bulk', '-s', '64k', '-c', '10'], iperf=True),
        dict(key='pipe64_d64',
             title='pipelined 64 B, depth 64, 10 connections',
             args=['-s', '64', '-D', '64', '-c', '10']),
        dict(key='churn',
             title='churn: connect, echo 64 B, close; 16 at a time',
             args=['-m', 'churn', '-s', '64', '-c', '16']),
        dict(key='hold19000', title='hold 19,000 idle connections',
             args=['-m', 'hold', '-s', '64', '-c', '19000'], hold=True),
        dict(key='redis', title='redis-benchmark -c 50 ECHO payload',
             redis=True),
    ]
    if quick:
        keep = {'pp64_c1000', 'bulk64k_c10', 'hold19000'}
        s = [x for x in s if x['key'] in keep]
        for x in s:
            if x['key'] == 'hold19000':
                x.update(key='hold2000', title='hold 2,000 idle connections',
                         args=['-m', 'hold', '-s', '64', '-c', '2000'],
                         reps=1)
    return s


def run_echobench(args, sc, run, pin):
    dur, warm = args.duration, args.warmup
    extra = []
    if sc.get('hold'):
        dur, warm = 0.5, 1.0
    cmd = (['taskset', '-c', CLIENT_CPU] if pin else []) + [
        './echobench', '-a', '127.0.0.1', '-p', str(run.port),
        '--pid', str(run.pid), '--json', '-q', '-d', str(dur),
        '-w', str(warm), '--open-timeout', str(args.open_timeout)] + \
        sc['args'] + extra
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                           timeout=dur + warm + args.open_timeout + 30)
    except subprocess.TimeoutExpired:
        return dict(failure='echobench timed out')
    d = None
    lines = r.stdout.strip().splitlines()
    if lines:
        try:
            d = json.loads(lines[-1])
        except ValueError:
            d = None
    if d is None:
        return dict(failure='echobench exit %d: %s' % (
            r.returncode, r.stderr.strip().splitlines()[0]
            if r.stderr.strip() else 'no output'))
    res = dict(msgs_per_sec=d['msgs_per_sec'], mb_per_sec=d['mb_per_sec'],
               p50_us=d['latency_us']['p50'], p99_us=d['latency_us']['p99'],
               cpu_per_mmsg=d.get('server_cpu_s_per_mmsg'),
               client_cpu=d['client_cpu_s'] / max(d['duration'], 1e-9),
               rss_per_conn=d.get('rss_per_conn_bytes'),
               opened=d['opened'], open_s=d['open_seconds'],
               errors=d['errors'])
    if r.returncode != 0:
        first = r.stderr.strip().splitlines()
        res['failure'] = '%d errors: %s' % (
            d['errors'], first[0].replace('echobench: ', '') if first
            else 'exit %d' % r.returncode)
    return res


def run_redis(args, run, pin):
    n = '20000' if args.quick else '200000'
    cmd = (['taskset', '-c', CLIENT_CPU] if pin else []) + [
        'redis-benchmark', '-h', '127.0.0.1', '-p', str(run.port),
        '-c', '50', '-n', n, '--csv', 'ECHO', 'payload']
    cpu0, t0 = proc_cpu_s(run.pid), time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return dict(failure='redis-benchmark timed out')
    cpu1 = proc_cpu_s(run.pid)
    rows = [l for l in r.stdout.splitlines() if l.startswith('"ECHO')]
    if r.returncode != 0 or not rows:
        return dict(failure='redis-benchmark: ' + (
            r.stderr.strip() or r.stdout.strip())[-120:])
    f = [x.strip('"') for x in rows[-1].split(',')]
    rps = float(f[1])
    res = dict(msgs_per_sec=rps, mb_per_sec=None, p50_us=float(f[4]) * 1000,
               p99_us=float(f[6]) * 1000, errors=0)
    if cpu0 is not None and cpu1 is not None:
        msgs = int(n)
        res['cpu_per_mmsg'] = (cpu1 - cpu0) / (msgs / 1e6)
    return res


def run_iperf(args, pin):
    port = free_port()
    srv = (['taskset', '-c', SERVER_CPU] if pin else []) + [
        'iperf3', '-s', '-1', '-p', str(port)]
    proc = subprocess.Popen(srv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        # A probe connection would use up the one-off (-1) server, and its
        # banner is block-buffered: wait until the port cannot be bound.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            probe = socket.socket()
            try:
                probe.bind(('127.0.0.1', port))
            except OSError:
                break
            finally:
                probe.close()
            time.sleep(0.02)
        cli = (['taskset', '-c', CLIENT_CPU] if pin else []) + [
            'iperf3', '-c', '127.0.0.1', '-p', str(port), '--bidir', '-J',
            '-t', str(max(1, round(args.duration))),
            '-O', str(int(round(args.warmup)))]
        r = subprocess.run(cli, capture_output=True, text=True, timeout=60)
        d = json.loads(r.stdout)
        e = d['end']
        fwd = e['sum_received']['bits_per_second'] / 8e6
        rev = e['sum_received_bidir_reverse']['bits_per_second'] / 8e6
        return dict(msgs_per_sec=None, mb_per_sec=(fwd + rev) / 2,
                    p99_us=None, errors=0)
    except (OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
        return dict(failure='iperf3: %s' % e)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# --- statistics and report -------------------------------------------------

def agg(runs, field):
    """(median, min, max) of field over successful runs, or None."""
    vals = [r[field] for r in runs
            if not r.get('failure') and r.get(field) is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def med(runs, field):
    a = agg(runs, field)
    return a[0] if a else None


def fmt_num(v, digits=0):
    if v is None:
        return '–'
    if digits == 0:
        return '{:,.0f}'.format(v)
    return '{:,.{d}f}'.format(v, d=digits)


def fmt_agg(a, digits=0):
    if a is None:
        return '–'
    m, lo, hi = a
    if lo == hi:
        return fmt_num(m, digits)
    return '%s (%s–%s)' % (fmt_num(m, digits), fmt_num(lo, digits),
                           fmt_num(hi, digits))


def failures(runs):
    fs = [r['failure'] for r in runs if r.get('failure')]
    if not fs:
        return ''
    return '%d of %d runs failed: %s' % (len(fs), len(runs), fs[0])


def machine_info(args):
    def first_line(s):
        return s.splitlines()[0] if s else 'unknown'
    cpu = 'unknown'
    for line in run_out(['lscpu']).splitlines():
        if line.startswith('Model name:'):
            cpu = line.split(':', 1)[1].strip()
    try:
        with open('/etc/debian_version') as f:
            debian = 'Debian ' + f.read().strip()
    except OSError:
        debian = platform.platform()
    try:
        with open('/proc/meminfo') as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        mem = 0
    uv = run_out(['/usr/bin/python3', '-c',
                  'import sys, uvloop; print("Python %s, uvloop %s" % '
                  '(sys.version.split()[0], uvloop.__version__))'])
    return [
        ('date', datetime.datetime.now(datetime.timezone.utc)
         .strftime('%Y-%m-%d %H:%M UTC')),
        ('machine', '%s, %d cores, %d MiB, %s, Linux %s' % (
            cpu, os.cpu_count(), mem, debian, platform.release())),
        ('echoserver', first_line(run_out(['./echoserver', '-V'],
                                          cwd=ROOT)) + ', commit ' +
         run_out(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT)),
        ('libevent', run_out(['pkg-config', '--modversion', 'libevent'])),
        ('compiler', first_line(run_out(['cc', '--version']))),
        ('Go', run_out(['go', 'version'])),
        ('Node', run_out(['node', '--version'])),
        ('Python', uv),
        ('iperf3', first_line(run_out(['iperf3', '--version']))),
        ('redis-benchmark', run_out(['redis-benchmark', '--version'])),
        ('echoserver (before handlers)', 'commit %s (BASELINE_REF in '
         'bench/run.py), built with the Makefile defaults' % BASELINE_REF),
        ('pinning', 'server on CPU %s, client on CPU %s (taskset)' % (
            SERVER_CPU, CLIENT_CPU) if not args.no_pin else 'none'),
        ('runs', '%d repetitions, %g s measured after %g s warm-up' % (
            args.reps, args.duration, args.warmup)),
    ]


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    # Three decimals, so that 1.247× is not shown as a met 1.25×.
    return '–' if r is None else '%.3f×' % r


def report(args, info, scs, servers, results, load):
    out = []
    w = out.append
    labels = {s.key: s.label for s in servers}
    labels['iperf3'] = 'iperf3 --bidir (ceiling)'
    # The limit and the old code are shown, never taken as the best peer.
    peers = [s.key for s in servers if role(s.key) == 'peer']

    def R(sc, key):
        return results.get(sc, {}).get(key, [])

    w('# Benchmarks\n')
    w('Written by `make bench%s` (bench/run.py); do not edit by hand. '
      'See the end for what the figures mean.\n' %
      (' BENCH_QUICK=1' if args.quick else ''))
    if args.quick:
        w('**Quick run**: few scenarios, short runs; indicative only.\n')
    for k, v in info:
        w('- %s: %s' % (k, v))
    w('- load average before / after: %s / %s (other work on the machine '
      'makes every figure noisier)\n' % load)

    # The issue-2 first benchmark.
    w('## echoserver against the plain bufferevent echo\n')
    w('| scenario | echoserver | plain bufferevent | ratio | target |')
    w('|---|---|---|---|---|')
    pp, bk = 'pp64_c1000', 'bulk64k_c10'
    for sc, name, target in ((pp, 'ping-pong 64 B × 1000', '≥ 1.6×'),
                             (bk, 'bulk 64 KiB × 10', '≥ 15×')):
        for field, unit, digits in (('msgs_per_sec', 'msgs/s', 0),
                                    ('mb_per_sec', 'MB/s', 1)):
            es = med(R(sc, 'echoserver'), field)
            be = med(R(sc, 'bufferevent'), field)
            w('| %s, %s | %s | %s | %s | %s |' % (
                name, unit, fmt_num(es, digits), fmt_num(be, digits),
                fmt_ratio(ratio(es, be)), target))
    hk = [s['key'] for s in scs if s.get('hold')]
    if hk:
        es = med(R(hk[0], 'echoserver'), 'rss_per_conn')
        be = med(R(hk[0], 'bufferevent'), 'rss_per_conn')
        w('| RSS per idle connection (%s), bytes | %s | %s | %s | '
          'echoserver ≤ 1024 |' % (hk[0].replace('hold', 'hold '),
                                  fmt_num(es), fmt_num(be),
                                  fmt_ratio(ratio(es, be))))
    w('')

    # The issue-4 targets, against the best peer.
    w('## Targets against the best peer in the same run\n')
    w('| target | echoserver | best peer | ratio | met |')
    w('|---|---|---|---|---|')

    def best(sc, field, low=False):
        cands = [(med(R(sc, p), field), p) for p in peers]
        cands = [c for c in cands if c[0] is not None]
        if not cands:
            return None, None
        return (min if low else max)(cands)

    def row(name, es_v, peer, ok_fn, digits=0):
        bv, bk_ = peer
        r = ratio(es_v, bv)
        met = '–' if r is None else ('yes' if ok_fn(r) else '**no**')
        w('| %s | %s | %s | %s | %s |' % (
            name, fmt_num(es_v, digits),
            '%s (%s)' % (fmt_num(bv, digits), labels.get(bk_, bk_))
            if bv is not None else '–', fmt_ratio(r), met))

    row('ping-pong 64 B × 1000: msgs/s ≥ 1.25× best peer',
        med(R(pp, 'echoserver'), 'msgs_per_sec'),
        best(pp, 'msgs_per_sec'), lambda r: r >= 1.25)
    row('bulk 64 KiB: MB/s ≥ 1.0× best peer',
        med(R(bk, 'echoserver'), 'mb_per_sec'),
        best(bk, 'mb_per_sec'), lambda r: r >= 1.0, 1)
    ip = med(R(bk, 'iperf3'), 'mb_per_sec')
    row('bulk 64 KiB: MB/s ≥ 0.7× iperf3 --bidir per direction',
        med(R(bk, 'echoserver'), 'mb_per_sec'), (ip, 'iperf3'),
        lambda r: r >= 0.7, 1)
    row('server CPU s per million msgs (ping-pong × 1000) ≤ 0.8× plain '
        'bufferevent', med(R(pp, 'echoserver'), 'cpu_per_mmsg'),
        (med(R(pp, 'bufferevent'), 'cpu_per_mmsg'), 'bufferevent'),
        lambda r: r <= 0.8, 2)
    row('p99 latency µs at 1000 connections ≤ best peer',
        med(R(pp, 'echoserver'), 'p99_us'), best(pp, 'p99_us', low=True),
        lambda r: r <= 1.0)
    w('')

    # Per-server overview.
    w('## Overview (medians)\n')
    cols = [('pp64_c1000', 'msgs_per_sec', 'ping-pong ×1000 msgs/s', 0),
            ('pp64_c1000', 'p99_us', 'p99 µs', 0),
            ('pp64_c1000', 'cpu_per_mmsg', 'CPU s/M msgs', 2),
            ('bulk64k_c10', 'mb_per_sec', 'bulk MB/s', 1)]
    if hk:
        cols.append((hk[0], 'rss_per_conn', 'RSS B/conn (%s)' % hk[0], 0))
    cols = [c for c in cols if c[0] in {s['key'] for s in scs}]
    w('| server | ' + ' | '.join(c[2] for c in cols) + ' |')
    w('|---' * (len(cols) + 1) + '|')
    for s in servers:
        w('| %s | ' % s.label + ' | '.join(
            fmt_num(med(R(c[0], s.key), c[1]), c[3]) for c in cols) + ' |')
    w('')

    # Every scenario in detail.
    w('## Every scenario\n')
    w('Median over the repetitions, with (min–max). A † marks runs where '
      'the client used over 90% of its core: the figure may be the '
      'client\'s limit, not the server\'s.\n')
    for sc in scs:
        rows = results.get(sc['key'], {})
        w('### %s\n' % sc['title'])
        if sc.get('hold'):
            w('| server | RSS per connection, bytes | opened | open time s |'
              ' notes |')
            w('|---|---|---|---|---|')
            for key, runs in rows.items():
                w('| %s | %s | %s | %s | %s |' % (
                    labels.get(key, key), fmt_agg(agg(runs, 'rss_per_conn')),
                    fmt_num(med(runs, 'opened')),
                    fmt_num(med(runs, 'open_s'), 2), failures(runs)))
            w('')
            continue
        unit = 'conns/s' if sc['key'] == 'churn' else 'msgs/s'
        w('| server | %s | MB/s | p50 µs | p99 µs | server CPU s/M | notes |'
          % unit)
        w('|---|---|---|---|---|---|---|')
        for key, runs in rows.items():
            cb = med(runs, 'client_cpu')
            w('| %s | %s%s | %s | %s | %s | %s | %s |' % (
                labels.get(key, key), fmt_agg(agg(runs, 'msgs_per_sec')),
                ' †' if cb is not None and cb > 0.9 else '',
                fmt_agg(agg(runs, 'mb_per_sec'), 1),
                fmt_num(med(runs, 'p50_us')),
                fmt_agg(agg(runs, 'p99_us')),
                fmt_num(med(runs, 'cpu_per_mmsg'), 2), failures(runs)))
        w('')
    return '\n'.join(out) + '\n'


def plots(args, scs, servers, results, outdir):
    """Throughput and p99 latency against connection count, as PNGs."""
    if not have('gnuplot'):
        log('gnuplot not installed; no PNGs')
        return []
    conn_scs = [s for s in scs if s.get('conns')]
    if len(conn_scs) < 2:
        return []
    tmp = tempfile.mkdtemp(prefix='echobench-plot.')
    series = []
    for s in servers:
        path = os.path.join(tmp, s.key + '.dat')
        with open(path, 'w') as f:
            for sc in conn_scs:
                runs = results.get(sc['key'], {}).get(s.key, [])
                t, p = med(runs, 'msgs_per_sec'), med(runs, 'p99_us')
                if t is not None:
                    f.write('%d %f %f\n' % (sc['conns'], t,
                                            (p or 0) / 1000.0))
        series.append((path, s.label))
    made = []
    for name, col, ylabel, logy in (
            ('throughput', 2, 'messages per second (64 B ping-pong)', False),
            ('latency', 3, 'p99 latency, ms (64 B ping-pong)', True)):
        png = os.path.join(outdir, 'benchmarks-%s.png' % name)
        plot = ', '.join("'%s' using 1:%d with linespoints lw 2 title '%s'" %
                         (p, col, t.replace("'", '')) for p, t in series)
        script = '\n'.join([
            "set terminal pngcairo size 900,560 font 'sans,11'",
            "set output '%s'" % png,
            "set logscale x", "set logscale y" if logy else "",
            "set xlabel 'concurrent connections'",
            "set ylabel '%s'" % ylabel, "set grid",
            "set key outside right top",
            "set format y '%.0s%c'" if not logy else "",
            "set title 'echo servers on 2 shared cores%s'" % (
                ', pinned' if not args.no_pin else ''),
            'plot ' + plot, ''])
        r = subprocess.run(['gnuplot'], input=script, text=True,
                           capture_output=True)
        if r.returncode == 0:
            made.append(png)
        else:
            log('gnuplot failed: ' + r.stderr.strip()[:300])
    shutil.rmtree(tmp, ignore_errors=True)
    return made


EXPLAIN = """## What the figures mean

- **msgs/s**: messages echoed back in full per second, over the measured
  window only (after the warm-up); for churn, connect-echo-close cycles.
- **MB/s**: echoed bytes per second in one direction, in 10^6 bytes; the
  server moves as much in the other. For iperf3 it is the mean of the two
  directions' received rates.
- **latency**: from the moment the client queues a message to the moment
  its last byte is back, from echobench's log-linear histogram (within
  1/128). With many connections and one message in flight each, latency
  is mostly the time to serve every other connection once (Little's law),
  so p99 measures how evenly a server takes turns.
- **server CPU s/M**: the server's utime + stime (all threads, from
  /proc/PID/stat) over the measured window, per million messages.
- **RSS per connection**: the growth of the server's VmRSS from before
  the first connection to after every held connection has echoed one
  64-byte message and settled for a second, divided by the connections.
- Every byte echoed is checked against what was sent; a run with any
  mismatch, early close or missing echo is listed as failed.

## The servers

- **echoserver**: this project, `./echoserver -l 127.0.0.1 -p 0`, with
  its default worker count: one per CPU it may run on, so one worker when
  pinned to one core (`--echoserver-threads N` passes `-t N` instead).
- **echoserver (before handlers)**: the same server at commit
  @BASELINE_REF@, the last one before the protocol-handler redesign, so
  the report can show what the redesign costs. run.py builds it with
  `git archive @BASELINE_REF@ | tar -x` and `make echoserver` into
  bench/.baseline/ (once; `make clean` removes it), and skips it, saying
  why, when git or the commit is not there. Not counted as a peer.
- **thin epoll echo (limit)** (`bench/peer_epoll.c`): the least an echo
  server can do: one thread, level-triggered epoll, non-blocking sockets,
  a fixed 64 KiB read buffer, one `read()` and one `write()` per event.
  What `write()` does not take is kept for the connection, which waits
  for EPOLLOUT before it reads again, so no byte is lost. It shows how
  far the others are from the bare system calls; not counted as a peer.
- **plain bufferevent echo** (`bench/peer_bufferevent.c`): one thread,
  one event_base, a socket bufferevent per connection whose read callback
  moves input to output: what most libevent users write first.
- **seed design** (`bench/peer_seed.c`): the seed project's original
  shape, a thread with its own event_base and a blocking dispatch per
  connection. Each connection costs four fds (the socket, the base's
  epoll set and libevent's signal socketpair), so near 5,000 connections
  the fds run out, libevent's `evsig_init_` fails with `[err]`, and the
  whole process exits: every connection is lost. Its accepting thread
  also competes with every connection thread for the core.
- **Go net** (`bench/peer_go.go`): a goroutine per connection copying
  through a 32 KiB buffer; built with `go build` into a temporary
  directory. Not `io.Copy(c, c)`: on Linux that splices through a pipe
  held for the connection's life, three fds per connection, which stops
  it near 6,600 connections under the 20,000-fd limit.
- **Node net** (`bench/peer_node.js`): `socket.pipe(socket)`.
- **Python asyncio + uvloop** (`bench/peer_uvloop.py`): a Protocol whose
  `data_received` writes straight back, as in uvloop's own benchmarks.
- **iperf3 --bidir**: `iperf3 -c 127.0.0.1 --bidir`, one stream each way,
  as the loopback reference for bulk. On this machine it is not a
  ceiling: iperf3 serves both directions from one thread with 128 KiB
  writes, and the fast echo servers move more per direction.

## redis-benchmark as a second client

`redis-benchmark -h 127.0.0.1 -p PORT -c 50 -n 200000 --csv ECHO payload`
works against any echo server: it sends
`*2\\r\\n$4\\r\\nECHO\\r\\n$7\\r\\npayload\\r\\n`, gets the same
bytes back, and these parse as a valid RESP reply (an array of two bulk
strings), so the request counts as answered. It does not check the
content. Its start-up `CONFIG GET save` comes back as an array too, which
it takes for the setting (it prints `host configuration "save": GET`).
`-t set,get,ping_mbulk` work the same way, but `-t ping`
stops at once: the inline `PING\\r\\n` comes back as `PING\\r\\n`, which
is not RESP (`Error: Protocol error, got "P" as reply type byte`).

## echobench

`echobench` is built and installed with the server. It drives any TCP
echo server over plain epoll and checks every byte that comes back:

    echobench -p 5555 -c 1000                  # ping-pong, 64 B, 1 in flight
    echobench -p 5555 -c 10 -s 64 -D 64        # pipelined, depth 64
    echobench -p 5555 -m bulk -c 10            # 64 KiB, 256 KiB in flight
    echobench -p 5555 -m churn -c 16           # connect, echo, close
    echobench -p 5555 -m hold -c 19000 --pid $(pidof echoserver)

`--pid` adds the server's CPU per message and RSS per connection from
/proc; `--json` prints the summary as one JSON object; `-t N` spreads the
connections over N client threads. It raises its fd limit to the hard
limit, and when one source address runs out of ports it moves on to
127.0.0.2 and up (`--sources N` spreads over N from the start). The exit
status is 0 when every byte came back, 1 on any error, 64 on a bad option.

## Reproducing

`make bench` runs everything (about 13 minutes) and rewrites this file;
`make bench BENCH_QUICK=1` runs three scenarios in under 2 minutes and
writes to tests/tmp/bench/ instead. `make bench BENCH_ARGS='--servers
echoserver,uvloop --scenarios pp64_c1000 --reps 5'` runs a subset;
`BENCH_ARGS=--no-pin` lets the scheduler place client and server. Both
take /tmp/echoserver-bench.lock, so only one benchmark runs at a time.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true',
                    help='the small version: under 2 minutes')
    ap.add_argument('--reps', type=int, help='repetitions (default 3)')
    ap.add_argument('--duration', type=float, help='seconds measured')
    ap.add_argument('--warmup', type=float, help='seconds of warm-up')
    ap.add_argument('--open-timeout', type=float, default=15.0)
    ap.add_argument('--servers', help='comma-separated keys to run')
    ap.add_argument('--scenarios', help='comma-separated keys to run')
    ap.add_argument('--no-pin', action='store_true',
                    help='do not pin server and client to cores')
    ap.add_argument('--echoserver-threads', type=int, default=0,
                    help="echoserver's -t (default: its own default)")
    ap.add_argument('--out', help='directory for benchmarks.md and PNGs '
                    '(default docs/, or tests/tmp/bench/ with --quick)')
    ap.add_argument('--render', metavar='JSON',
                    help='only rewrite the report from a saved '
                    'benchmarks.json')
    args = ap.parse_args()
    if args.render:
        render(args)
        return
    if args.reps is None:
        args.reps = 3
    if args.duration is None:
        args.duration = 1.0 if args.quick else 3.0
    if args.warmup is None:
        args.warmup = 0.3 if args.quick else 1.0
    if args.quick and args.open_timeout == 15.0:
        args.open_timeout = 5.0
    outdir = args.out or os.path.join(
        ROOT, 'tests/tmp/bench' if args.quick else 'docs')
    os.makedirs(outdir, exist_ok=True)
    pin = not args.no_pin and os.cpu_count() >= 2 and have('taskset')
    if not pin:
        args.no_pin = True

    tmp = tempfile.mkdtemp(prefix='echoserver-bench.')
    started = time.monotonic()
    load0 = os.getloadavg()[0]
    try:
        servers = make_servers(args, tmp)
        scs = scenarios(args.quick)
        if args.scenarios:
            keep = args.scenarios.split(',')
            scs = [s for s in scs if s['key'] in keep]
        for s in servers:
            if s.missing:
                log('skipping %s: %s' % (s.label, s.missing))
        live = [s for s in servers if not s.missing]
        if not have('redis-benchmark'):
            scs = [s for s in scs if not s.get('redis')]
        results = {}
        total = sum(min(args.reps, s.get('reps', args.reps)) *
                    (len(live) + (1 if s.get('iperf') else 0)) for s in scs)
        done = 0
        for rep in range(args.reps):
            # Rotate the order each round, so no server always goes first.
            order = live[rep % len(live):] + live[:rep % len(live)]
            for sc in scs:
                if rep >= sc.get('reps', args.reps):
                    continue
                entries = [(s.key, s) for s in order]
                if sc.get('iperf') and have('iperf3'):
                    entries.append(('iperf3', None))
                for key, srv in entries:
                    done += 1
                    if srv is None:
                        res = run_iperf(args, pin)
                    else:
                        try:
                            run = start_server(srv, tmp, pin)
                        except Exception as e:  # one bad run, not all
                            res = dict(failure='start: %s' % e)
                        else:
                            try:
                                res = (run_redis(args, run, pin)
                                       if sc.get('redis') else
                                       run_echobench(args, sc, run, pin))
                            except Exception as e:
                                res = dict(failure='%s: %s' % (
                                    type(e).__name__, e))
                            finally:
                                run.stop()
                    results.setdefault(sc['key'], {}).setdefault(
                        key, []).append(res)
                    log('[%3d/%d %4.0fs] %-12s %-12s %s' % (
                        done, total, time.monotonic() - started, sc['key'],
                        key, res.get('failure') or
                        'msgs/s %s  MB/s %s  p99 %s us%s' % (
                            fmt_num(res.get('msgs_per_sec')),
                            fmt_num(res.get('mb_per_sec'), 1),
                            fmt_num(res.get('p99_us')),
                            '  rss/conn %s' % fmt_num(res['rss_per_conn'])
                            if sc.get('hold') else '')))
        load = ('%.2f' % load0, '%.2f' % os.getloadavg()[0])
        info = machine_info(args)
        saved = dict(info=info, results=results, load=load,
                     servers=[[s.key, s.label] for s in live], scenarios=scs,
                     args=dict(quick=args.quick, reps=args.reps,
                               duration=args.duration, warmup=args.warmup,
                               no_pin=args.no_pin))
        with open(os.path.join(outdir, 'benchmarks.json'), 'w') as f:
            json.dump(saved, f, indent=1)
        write_report(args, saved, outdir)
        log('in %.0f s' % (time.monotonic() - started))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_report(args, saved, outdir):
    """benchmarks.md and the PNGs in outdir, from saved results."""
    os.makedirs(outdir, exist_ok=True)
    servers = [Server(k, label, None) for k, label in saved['servers']]
    scs, results = saved['scenarios'], saved['results']
    md = report(args, saved['info'], scs, servers, results,
                tuple(saved['load']))
    pngs = plots(args, scs, servers, results, outdir)
    if pngs:
        md += '\n## Figures\n\n' + ''.join(
            '![%s](%s)\n\n' % (os.path.basename(p), os.path.basename(p))
            for p in pngs)
    md += '\n' + EXPLAIN.replace('@BASELINE_REF@', BASELINE_REF)
    path = os.path.join(outdir, 'benchmarks.md')
    with open(path, 'w') as f:
        f.write(md)
    # Print the two headline tables.
    head = md.split('## Overview')[0]
    log('\n## echoserver against' +
        head.split('## echoserver against', 1)[1])
    log('wrote %s%s' % (path, ''.join(' and ' + p for p in pngs)))


DEFAULT_LABELS = [
    ['echoserver', 'echoserver'],
    ['bufferevent', 'plain bufferevent echo'],
    ['seed', 'seed design (thread + base per conn)'],
    ['go', 'Go net'], ['node', 'Node net'],
    ['uvloop', 'Python asyncio + uvloop'],
    ['epoll', 'thin epoll echo (limit)'],
    ['baseline', 'echoserver (before handlers)']]


def render(args):
    with open(args.render) as f:
        saved = json.load(f)
    res = saved['results']
    present = {k for runs in res.values() for k in runs}
    saved.setdefault('servers', [l for l in DEFAULT_LABELS
                                 if l[0] in present])
    saved.setdefault('scenarios', [sc for sc in scenarios(args.quick)
                                   if sc['key'] in res])
    saved.setdefault('load', ['?', '?'])
    for k, v in saved.get('args', {}).items():
        setattr(args, k, v)
    write_report(args, saved, args.out or
                 os.path.dirname(os.path.abspath(args.render)))


if __name__ == '__main__':
    main()
