#!/usr/bin/python3
"""The echoserver benchmark suite, run by `make bench`.

Starts echoserver and every bench peer (a plain libevent bufferevent echo,
the seed's thread-per-connection design, Go net, Node net, Python asyncio
on uvloop), a thin epoll echo as the limit, echoserver behind HAProxy
(bench/peer_haproxy.py: the cost of a balancer's hop; its server CPU is
echoserver's alone), and echoserver as it was before the protocol-handler
redesign (built from git, BASELINE_REF), one at a time
on a free loopback port, drives each with echobench through every
scenario, and repeats the whole round several times so that the servers
are interleaved rather than run in blocks.  iperf3 --bidir gives a
loopback reference for bulk, and redis-benchmark (ECHO) is a second,
independent client.  Writes a Markdown report and two gnuplot PNGs; prints
the targets per placement.

The three headline scenarios (bulk, pipelined, ping-pong x 1000) run in
two placements: unpinned, as a user runs it (no taskset, the scheduler
places everything on both cores), and pinned (server on CPU 1, client on
CPU 0 with taskset: the client cannot steal the server's core, and every
server gets the same single core, multi-threaded or not).  The other
scenarios run pinned only, shorter, to keep the full run near 15 minutes.

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
PLACEMENTS = ('unpinned', 'pinned')

# The old code as a peer: the last commit before the protocol-handler
# redesign (src/proto/ exists there but conn.c does not use it yet), so
# that the report shows what the redesign costs.  Built from
# `git archive` into bench/.baseline/<commit>/ once and reused.
BASELINE_REF = '858c549'

# What each server is for in the report.  'peer's compete for "best peer";
# the limit and the old code are shown beside it, never as the best peer.
ROLES = {'echoserver': 'self', 'epoll': 'limit', 'baseline': 'baseline',
         'haproxy': 'proxied'}


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

    def __init__(self, key, label, argv, port_file=False, missing=None,
                 skip=()):
        self.key, self.label, self.argv = key, label, argv
        self.port_file, self.missing = port_file, missing
        self.skip = skip        # scenario keys it does not run


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
    # echoserver behind HAProxy (docs/scale-out.md): what the balancer's
    # hop costs.  Not in the 10,000- and 19,000-connection scenarios:
    # the tested configuration's maxconn is 8000.
    servers.append(Server('haproxy', 'echoserver behind HAProxy',
                          lambda pf: ['/usr/bin/python3',
                                      'bench/peer_haproxy.py'] + es_t,
                          missing=None if have('haproxy') else
                          'haproxy not installed (apt-get install haproxy)',
                          skip=('pp64_c10000', 'hold19000')))
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
        port, pid = wait_port(srv, proc, pf)
    except BaseException:
        Running(proc, 0).stop()
        raise
    if port is None:
        Running(proc, 0).stop()
        raise RuntimeError('did not start (see %s.log)' % srv.key)
    run = Running(proc, port)
    if pid:                     # a wrapper names the server it runs
        run.pid = pid
    return run


def wait_port(srv, proc, pf):
    """(port, pid): the port srv's proc prints ("port N", or "port N pid
    P" from a wrapper such as peer_haproxy.py) or writes to pf, and P or
    None; the port is None if it does not."""
    deadline = time.monotonic() + 15
    port = pid = None
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
                if len(words) in (2, 4) and words[0] == 'port' and \
                        words[1].isdigit():
                    port = int(words[1])
                    if len(words) == 4 and words[2] == 'pid' and \
                            words[3].isdigit():
                        pid = int(words[3])
    return port, pid


# --- scenarios -------------------------------------------------------------

# The headline scenarios run in both placements, 3 s each; the others
# pinned only and shorter (args.short_duration).  metric/target: what the
# per-placement targets table compares against the best peer.
BOTH = list(PLACEMENTS)
PINNED = ['pinned']


def scenarios(quick):
    s = [
        dict(key='bulk64k_c10', headline=True, placements=BOTH,
             title='bulk 64 KiB, 10 connections, 4 in flight each',
             name='bulk 64 KiB × 10, 4 in flight',
             args=['-m', 'bulk', '-c', '10', '-s', '64k', '-D', '4'],
             metric='mb_per_sec', target=1.0, iperf=True),
        dict(key='pipe64_c50_d64', headline=True, placements=BOTH,
             title='pipelined 64 B, 50 connections, 64 in flight each',
             name='pipelined 64 B × 50, 64 in flight',
             args=['-c', '50', '-D', '64', '-s', '64'],
             metric='msgs_per_sec', target=1.0),
        dict(key='pp64_c1000', headline=True, placements=BOTH,
             title='ping-pong 64 B, 1000 connections',
             name='ping-pong 64 B × 1000',
             args=['-c', '1000', '-s', '64'], conns=1000,
             metric='msgs_per_sec', target=1.25),
        dict(key='pp64_c1', title='ping-pong 64 B, 1 connection',
             args=['-s', '64', '-c', '1'], conns=1),
        dict(key='pp64_c100', title='ping-pong 64 B, 100 connections',
             args=['-s', '64', '-c', '100'], conns=100),
        dict(key='pp64_c10000', title='ping-pong 64 B, 10000 connections',
             args=['-s', '64', '-c', '10000'], conns=10000),
        dict(key='pp1k_c10', title='ping-pong 1 KiB, 10 connections',
             args=['-s', '1024', '-c', '10']),
        dict(key='churn',
             title='churn: connect, echo 64 B, close; 16 at a time',
             args=['-m', 'churn', '-s', '64', '-c', '16']),
        # One round: RSS per connection varies by well under 1% between
        # rounds, and each round takes some 6 s per server.
        dict(key='hold19000', title='hold 19,000 idle connections',
             args=['-m', 'hold', '-s', '64', '-c', '19000'], hold=True,
             reps=1),
        dict(key='redis', title='redis-benchmark -c 50 ECHO payload',
             redis=True),
    ]
    for x in s:
        x.setdefault('placements', PINNED)
        if not x.get('headline') and not x.get('hold') and \
                not x.get('redis'):
            x['short'] = True
    if quick:
        keep = {'bulk64k_c10', 'pipe64_c50_d64', 'pp64_c1000', 'hold19000'}
        s = [x for x in s if x['key'] in keep]
        for x in s:
            if x['key'] == 'hold19000':
                x.update(key='hold2000', title='hold 2,000 idle connections',
                         args=['-m', 'hold', '-s', '64', '-c', '2000'],
                         reps=1)
    return s


def expand(scs, placements):
    """One entry per scenario and placement, keyed SCENARIO@PLACEMENT."""
    out = []
    for sc in scs:
        for pl in PLACEMENTS:
            if pl in sc['placements'] and pl in placements:
                out.append(dict(sc, base=sc['key'], placement=pl,
                                key='%s@%s' % (sc['key'], pl)))
    return out


def run_echobench(args, sc, run, pin):
    dur, warm = args.duration, args.warmup
    extra = []
    if sc.get('hold'):
        dur, warm = 0.5, 1.0
    elif sc.get('short'):
        dur, warm = args.short_duration, args.short_warmup
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
    n = '20000' if args.quick else '100000'
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
        ('placements', placement_text(args)),
        ('runs', runs_text(args)),
    ]


PLACEMENT_TEXT = {
    'unpinned': 'unpinned (no taskset, as a user runs it; echoserver '
                'starts a worker per CPU)',
    'pinned': 'pinned (taskset: server on CPU %s, client on CPU %s)' % (
        SERVER_CPU, CLIENT_CPU),
}


def placement_text(args):
    return ' and '.join(PLACEMENT_TEXT[p] for p in args.placements)


def runs_text(args):
    t = '%d interleaved rounds; %g s measured after %g s warm-up' % (
        args.reps, args.duration, args.warmup)
    if getattr(args, 'short_duration', None) is None:
        return t
    return t + (' in the headline scenarios; %g s after %g s in the other '
                'ping-pong and churn scenarios (pinned only); hold in the '
                'first round only' % (args.short_duration,
                                      args.short_warmup))


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    # Three decimals, so that 1.247× is not shown as a met 1.25×.
    return '–' if r is None else '%.3f×' % r


def fmt_target(t):
    # 1.0 and 1.25, as the issue writes them.
    return '%.1f' % t if t == round(t, 1) else '%.2f' % t


def report(args, info, scs, servers, results, load):
    out = []
    w = out.append
    labels = {s.key: s.label for s in servers}
    labels['iperf3'] = 'iperf3 --bidir (reference)'
    peers = [s.key for s in servers if role(s.key) == 'peer']
    default_pl = args.placements[0]
    heads = [x for x in scenarios(False) if x.get('headline')]

    def pl(sc):
        return sc.get('placement', default_pl)

    def find(base, placement):
        for sc in scs:
            if sc.get('base', sc['key']) == base and pl(sc) == placement:
                return sc['key']
        return None

    def R(key, srv):
        return results.get(key, {}).get(srv, []) if key else []

    def best(key, field, low=False):
        """(median, server key) of the best peer, or (None, None)."""
        cands = [(med(R(key, p), field), p) for p in peers]
        cands = [c for c in cands if c[0] is not None]
        if not cands:
            return None, None
        return (min if low else max)(cands, key=lambda c: c[0])

    def dagger(runs):
        cb = med(runs, 'client_cpu')
        return ' †' if cb is not None and cb > 0.9 else ''

    placements = [p for p in PLACEMENTS if any(pl(sc) == p for sc in scs)]

    w('# Benchmarks\n')
    w('Written by `make bench%s` (bench/run.py); do not edit by hand. '
      'See the end for what the figures mean.\n' %
      (' BENCH_QUICK=1' if args.quick else ''))
    if args.quick:
        w('**Quick run**: short runs, few rounds; indicative only.\n')
    for k, v in info:
        w('- %s: %s' % (k, v))
    w('- load average before / after: %s / %s (other work on the machine '
      'makes every figure noisier)\n' % load)

    # The targets, per placement, against the best peer.
    w('## Targets\n')
    w('Medians over the rounds, with (min–max). **Best peer** is the '
      'fastest of %s in the same run and placement; the thin epoll echo '
      '(the limit: what one read and one write per event give) and '
      'echoserver before the handler redesign (commit %s) are shown '
      'beside it and never count as the best peer. A † marks a median '
      'where the client used over 90%% of its core: the figure may be the '
      'client\'s limit, not the server\'s.\n' % (
          ', '.join(labels[p] for p in peers) or 'the peers',
          BASELINE_REF))
    for p in placements:
        w('### %s\n' % {'unpinned': 'Unpinned: as a user runs it '
                        '(no taskset)',
                        'pinned': 'Pinned: server on CPU %s, client on '
                        'CPU %s' % (SERVER_CPU, CLIENT_CPU)}[p])
        w('| scenario | echoserver | best peer | ratio | target | met | '
          'thin epoll (limit) | vs before handlers |')
        w('|---|---|---|---|---|---|---|---|')
        for h in heads:
            key = find(h['key'], p)
            if key is None:
                continue
            f, d = h['metric'], 1 if h['metric'] == 'mb_per_sec' else 0
            unit = 'MB/s' if f == 'mb_per_sec' else 'msgs/s'
            es_runs = R(key, 'echoserver')
            es = med(es_runs, f)
            bv, bk = best(key, f)
            r = ratio(es, bv)
            lim = med(R(key, 'epoll'), f)
            old = med(R(key, 'baseline'), f)
            w('| %s, %s | %s%s | %s | %s | ≥ %s× | %s | %s | %s |' % (
                h['name'], unit, fmt_agg(agg(es_runs, f), d),
                dagger(es_runs),
                '%s%s: %s' % (fmt_num(bv, d), dagger(R(key, bk)),
                              labels.get(bk, bk)) if bk else '–',
                fmt_ratio(r), fmt_target(h['target']),
                '–' if r is None else ('✓' if r >= h['target'] else '✗'),
                '%s%s (echoserver %s)' % (fmt_num(lim, d),
                                          dagger(R(key, 'epoll')),
                                          fmt_ratio(ratio(es, lim)))
                if lim is not None else '–',
                '%s (%s)' % (fmt_ratio(ratio(es, old)), fmt_num(old, d))
                if old is not None else '–'))
        w('')

    # The issue-2 first benchmark, pinned as it was set.
    pp, bk = find('pp64_c1000', 'pinned'), find('bulk64k_c10', 'pinned')
    if pp or bk:
        w('## echoserver against the plain bufferevent echo (pinned)\n')
        w('| scenario | echoserver | plain bufferevent | ratio | target |')
        w('|---|---|---|---|---|')
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
              'echoserver ≤ 1024 |' % (
                  hk[0].split('@')[0].replace('hold', 'hold '),
                  fmt_num(es), fmt_num(be), fmt_ratio(ratio(es, be))))
        w('')

    # The other issue-4 targets, pinned.
    if pp or bk:
        w('## Other targets (pinned)\n')
        w('| target | echoserver | reference | ratio | met |')
        w('|---|---|---|---|---|')

        def row(name, es_v, ref, ok_fn, digits=0):
            bv, bk_ = ref
            r = ratio(es_v, bv)
            met = '–' if r is None else ('✓' if ok_fn(r) else '✗')
            w('| %s | %s | %s | %s | %s |' % (
                name, fmt_num(es_v, digits),
                '%s (%s)' % (fmt_num(bv, digits), labels.get(bk_, bk_))
                if bv is not None else '–', fmt_ratio(r), met))

        ip = med(R(bk, 'iperf3'), 'mb_per_sec')
        row('bulk 64 KiB: MB/s ≥ 0.7× iperf3 --bidir per direction',
            med(R(bk, 'echoserver'), 'mb_per_sec'), (ip, 'iperf3'),
            lambda r: r >= 0.7, 1)
        row('server CPU s per million msgs (ping-pong × 1000) ≤ 0.8× '
            'plain bufferevent', med(R(pp, 'echoserver'), 'cpu_per_mmsg'),
            (med(R(pp, 'bufferevent'), 'cpu_per_mmsg'), 'bufferevent'),
            lambda r: r <= 0.8, 2)
        row('p99 latency µs at 1000 connections ≤ best peer',
            med(R(pp, 'echoserver'), 'p99_us'), best(pp, 'p99_us', low=True),
            lambda r: r <= 1.0)
        w('')

    # Per-server overview.
    w('## Overview (medians)\n')
    cols = []
    for h in heads:
        for p in placements:
            key = find(h['key'], p)
            if key:
                cols.append((key, h['metric'], '%s %s, %s' % (
                    h['name'].split(',')[0].split(' ')[0],
                    'MB/s' if h['metric'] == 'mb_per_sec' else 'msgs/s', p),
                    1 if h['metric'] == 'mb_per_sec' else 0))
    if pp:
        cols += [(pp, 'p99_us', 'ping-pong p99 µs, pinned', 0),
                 (pp, 'cpu_per_mmsg', 'ping-pong CPU s/M msgs, pinned', 2)]
    hk = [s['key'] for s in scs if s.get('hold')]
    if hk:
        cols.append((hk[0], 'rss_per_conn', 'RSS B/conn (%s)' %
                     hk[0].split('@')[0], 0))
    w('| server | ' + ' | '.join(c[2] for c in cols) + ' |')
    w('|---' * (len(cols) + 1) + '|')
    for s in servers:
        w('| %s | ' % s.label + ' | '.join(
            fmt_num(med(R(c[0], s.key), c[1]), c[3]) for c in cols) + ' |')
    w('')

    # Every scenario in detail.
    w('## Every scenario\n')
    w('Median over the rounds, with (min–max). A † marks runs where '
      'the client used over 90% of its core: the figure may be the '
      'client\'s limit, not the server\'s. **best peer** marks the best '
      'of the peers by the scenario\'s measure (MB/s for bulk, msgs/s '
      'otherwise).\n')
    for sc in scs:
        rows = results.get(sc['key'], {})
        w('### %s (%s)\n' % (sc['title'], pl(sc)))
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
        base = sc.get('base', sc['key'])
        metric = 'mb_per_sec' if base.startswith('bulk') else 'msgs_per_sec'
        top = best(sc['key'], metric)[1]
        unit = 'conns/s' if base == 'churn' else 'msgs/s'
        w('| server | %s | MB/s | p50 µs | p99 µs | server CPU s/M | notes |'
          % unit)
        w('|---|---|---|---|---|---|---|')
        for key, runs in rows.items():
            notes = [n for n in ('**best peer**' if key == top else '',
                                 failures(runs)) if n]
            w('| %s | %s%s | %s | %s | %s | %s | %s |' % (
                labels.get(key, key), fmt_agg(agg(runs, 'msgs_per_sec')),
                dagger(runs),
                fmt_agg(agg(runs, 'mb_per_sec'), 1),
                fmt_num(med(runs, 'p50_us')),
                fmt_agg(agg(runs, 'p99_us')),
                fmt_num(med(runs, 'cpu_per_mmsg'), 2), '; '.join(notes)))
        w('')
    return '\n'.join(out) + '\n'


def plots(args, scs, servers, results, outdir):
    """Throughput and p99 latency against connection count, as PNGs."""
    if not have('gnuplot'):
        log('gnuplot not installed; no PNGs')
        return []
    # One placement only: pinned when it ran (the secondary scenarios
    # are pinned only), else unpinned.
    pl = 'pinned' if 'pinned' in args.placements else 'unpinned'
    conn_scs = sorted((s for s in scs if s.get('conns') and
                       s.get('placement', args.placements[0]) == pl),
                      key=lambda s: s['conns'])
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
            "set title 'echo servers on 2 shared cores, %s'" % pl,
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

## Scenarios and placements

The three headline scenarios, each in both placements:

    echobench -m bulk -c 10 -s 64k -D 4     # bulk: 4 x 64 KiB in flight each
    echobench -c 50 -D 64 -s 64             # pipelined: 64 in flight each
    echobench -c 1000 -s 64                 # ping-pong: 1 in flight each

(run.py adds `-a 127.0.0.1 -p PORT --pid PID --json -q -d 3 -w 1
--open-timeout 15`). The
targets: bulk and pipelined at least 1.0× the best peer, ping-pong at
least 1.25×, in both placements.

- **unpinned**: no taskset, as a user runs it. Client and server share
  both cores as the scheduler decides, and echoserver starts its default
  two workers.
- **pinned**: `taskset -c 1` for the server and `taskset -c 0` for the
  client, so the client cannot take the server's core and every server,
  multi-threaded or not, gets the same single core (echoserver then
  starts one worker).

The other scenarios (ping-pong at 1, 100 and 10,000 connections, 1 KiB
ping-pong, churn, hold, redis-benchmark) run pinned only: the ping-pong
and churn ones for 1 s after 0.3 s of warm-up, the hold in the first
round only (its RSS per connection varies by well under 1%), which keeps
the full run near 15 minutes. Every round runs every scenario against
every server once, in a rotated order.

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
  as the loopback reference for bulk, in both placements. On this
  machine it is not a ceiling: iperf3 serves both directions from one
  thread with 128 KiB writes, and the fast echo servers move more per
  direction.

"Best peer" is the best of the plain bufferevent echo, the seed design,
Go, Node and uvloop in the same placement of the same run.

## redis-benchmark as a second client

`redis-benchmark -h 127.0.0.1 -p PORT -c 50 -n 100000 --csv ECHO payload`
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
    echobench -p 5555 -c 50 -s 64 -D 64        # pipelined, depth 64
    echobench -p 5555 -m bulk -c 10            # 64 KiB, 256 KiB in flight
    echobench -p 5555 -m churn -c 16           # connect, echo, close
    echobench -p 5555 -m hold -c 19000 --pid $(pidof echoserver)

`--pid` adds the server's CPU per message and RSS per connection from
/proc; `--json` prints the summary as one JSON object; `--reconnect`
reopens, and counts, a connection the server closes between messages
(a server stopped behind a balancer, docs/scale-out.md); `-t N` spreads the
connections over N client threads. It raises its fd limit to the hard
limit, and when one source address runs out of ports it moves on to
127.0.0.2 and up (`--sources N` spreads over N from the start). The exit
status is 0 when every byte came back, 1 on any error, 64 on a bad option.

## Reproducing

`make bench` runs everything (about 15 minutes) and rewrites this file;
`make bench BENCH_QUICK=1` runs the three headline scenarios in both
placements (2 rounds of 0.5 s) and a 2,000-connection hold in about 2
minutes, and writes to tests/tmp/bench/ instead. `make bench
BENCH_ARGS='--servers echoserver,uvloop --scenarios pp64_c1000 --reps 5'`
runs a subset; `BENCH_ARGS=--placements=pinned` (or `--no-pin` for
unpinned only) runs one placement. `python3 bench/run.py --render
docs/benchmarks.json` rewrites this file from the saved figures. Both
take /tmp/echoserver-bench.lock, so only one benchmark runs at a time.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true',
                    help='the small version: about 2 minutes')
    ap.add_argument('--reps', type=int,
                    help='repetitions (default 3, quick 2)')
    ap.add_argument('--duration', type=float,
                    help='seconds measured in the headline scenarios')
    ap.add_argument('--warmup', type=float, help='seconds of warm-up')
    ap.add_argument('--short-duration', type=float,
                    help='seconds measured in the other scenarios')
    ap.add_argument('--short-warmup', type=float,
                    help='seconds of warm-up in the other scenarios')
    ap.add_argument('--open-timeout', type=float, default=15.0)
    ap.add_argument('--servers', help='comma-separated keys to run')
    ap.add_argument('--scenarios', help='comma-separated keys to run '
                    '(SCENARIO or SCENARIO@PLACEMENT)')
    ap.add_argument('--placements', default=','.join(PLACEMENTS),
                    help='comma-separated, of: %s (default both)' %
                    ', '.join(PLACEMENTS))
    ap.add_argument('--no-pin', action='store_true',
                    help='the same as --placements unpinned')
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
        args.reps = 2 if args.quick else 3
    if args.duration is None:
        args.duration = 0.5 if args.quick else 3.0
    if args.warmup is None:
        args.warmup = 0.3 if args.quick else 1.0
    if args.short_duration is None:
        args.short_duration = args.duration if args.quick else 1.0
    if args.short_warmup is None:
        args.short_warmup = args.warmup if args.quick else 0.3
    if args.quick and args.open_timeout == 15.0:
        args.open_timeout = 5.0
    outdir = args.out or os.path.join(
        ROOT, 'tests/tmp/bench' if args.quick else 'docs')
    os.makedirs(outdir, exist_ok=True)
    placements = ['unpinned'] if args.no_pin else \
        [p for p in args.placements.split(',') if p]
    bad = [p for p in placements if p not in PLACEMENTS]
    if bad or not placements:
        ap.error('--placements: unknown %s' % ','.join(bad or ['(none)']))
    if 'pinned' in placements and not (os.cpu_count() >= 2 and
                                       have('taskset')):
        log('skipping the pinned placement: it needs 2 CPUs and taskset')
        placements.remove('pinned')
        if not placements:
            sys.exit('bench/run.py: no placement left to run')
    args.placements = placements
    args.no_pin = 'pinned' not in placements

    tmp = tempfile.mkdtemp(prefix='echoserver-bench.')
    started = time.monotonic()
    load0 = os.getloadavg()[0]
    try:
        servers = make_servers(args, tmp)
        scs = expand(scenarios(args.quick), placements)
        if args.scenarios:
            keep = args.scenarios.split(',')
            scs = [s for s in scs if s['key'] in keep or s['base'] in keep]
        for s in servers:
            if s.missing:
                log('skipping %s: %s' % (s.label, s.missing))
        live = [s for s in servers if not s.missing]
        if not have('redis-benchmark'):
            scs = [s for s in scs if not s.get('redis')]
        results = {}
        total = sum(min(args.reps, s.get('reps', args.reps)) *
                    (len([v for v in live if s['base'] not in v.skip]) +
                     (1 if s.get('iperf') and have('iperf3') else 0))
                    for s in scs)
        done = 0
        for rep in range(args.reps):
            # Rotate the order each round, so no server always goes first.
            order = live[rep % len(live):] + live[:rep % len(live)]
            for sc in scs:
                if rep >= sc.get('reps', args.reps):
                    continue
                pin = sc['placement'] == 'pinned'
                entries = [(s.key, s) for s in order
                           if sc['base'] not in s.skip]
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
                    log('[%3d/%d %4.0fs] %-24s %-11s %s' % (
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
                               short_duration=args.short_duration,
                               short_warmup=args.short_warmup,
                               placements=placements, no_pin=args.no_pin),
                     seconds=round(time.monotonic() - started))
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
    # Print the targets tables.
    head = md.split('## Overview')[0]
    if '## Targets' in head:
        log('\n## Targets' + head.split('## Targets', 1)[1])
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
    # Files from before the two placements ran one, pinned unless no_pin.
    if not saved.get('args', {}).get('placements'):
        args.placements = ['unpinned'] if args.no_pin else ['pinned']
    write_report(args, saved, args.out or
                 os.path.dirname(os.path.abspath(args.render)))


if __name__ == '__main__':
    main()
