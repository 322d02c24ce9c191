#!/usr/bin/python3
"""The UDP echo benchmark: echoserver -u against bench/peer_udp, the thinnest
recvmmsg/sendmmsg echo, driven by echobench --udp.

Each round runs every datagram size once against each server, in turn, so
that slow drifts of this shared machine hit all alike.  Servers:

- echoserver with the rate limit off (--udp-rate 0 --udp-rate-bytes 0):
  echobench sends from one address, which the default limit of 1000
  datagrams/s would cap; the port guard stays on (echobench uses
  ephemeral ports);
- echoserver with the rate limit on but set too high to bite, to show
  what the per-source table costs;
- peer_udp, one SO_REUSEPORT socket per thread, no guards.

Placements: unpinned (no taskset; every server with one worker or thread
per CPU) and pinned (server on CPU 1 with one worker or thread, echobench
on CPU 0).  Figures: datagrams/s echoed, the share lost (not echoed within
echobench's loss timeout), p50/p99 round trip, and the server's CPU
seconds per million datagrams (utime + stime from /proc); medians with
min and max over the rounds, and echoserver / peer on the medians.

Writes benchmarks-udp.md and .json into docs/, or tests/tmp/bench/ with
--quick (--out picks another directory).

Usage: bench/udp.py [--quick] [--rounds N] [--duration S] [--out DIR]
Run it through `make bench-udp`, which holds the benchmark lock so that
nothing else measures at the same time.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import log, proc_cpu_s  # noqa: E402  (bench/run.py)
from benchlib import stop  # noqa: E402  (bench/benchlib.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_CPU, CLIENT_CPU = '1', '0'
PLACEMENTS = ('unpinned', 'pinned')

# (key, title, echobench options): 16 flows, so that SO_REUSEPORT has
# 4-tuples to spread over the workers, each keeping a window in flight
# that fits the default socket buffers.
SIZES = [
    ('64', '64 B datagrams, 16 flows x 16 in flight',
     ['-s', '64', '-c', '16', '-D', '16']),
    ('1400', '1400 B datagrams, 16 flows x 4 in flight',
     ['-s', '1400', '-c', '16', '-D', '4']),
]


class Server:
    def __init__(self, key, label, argv_fn):
        self.key, self.label, self.argv_fn = key, label, argv_fn


def servers(tmp):
    es = os.path.join(ROOT, 'echoserver')
    peer = os.path.join(ROOT, 'bench', 'peer_udp')
    pf = os.path.join(tmp, 'port')

    def es_argv(extra):
        def argv(pin):
            return ([es, '-q', '-l', '127.0.0.1', '-p', '0', '-u',
                     '127.0.0.1:0', '--port-file', pf] +
                    (['-t', '1'] if pin else []) + extra)
        return argv
    return [
        Server('echoserver', 'echoserver -u, rate limit off',
               es_argv(['--udp-rate', '0', '--udp-rate-bytes', '0'])),
        Server('echoserver-rl', 'echoserver -u, rate limit on (not biting)',
               es_argv(['--udp-rate', '1000000000',
                        '--udp-rate-bytes', '1000g'])),
        Server('peer', 'peer_udp (recvmmsg/sendmmsg)',
               lambda pin: [peer, '0'] + (['1'] if pin else [])),
    ]


def start(srv, pin, tmp):
    """Starts @srv; returns (proc, udp port) or (None, why)."""
    pf = os.path.join(tmp, 'port')
    if os.path.exists(pf):
        os.unlink(pf)
    argv = (['taskset', '-c', SERVER_CPU] if pin else []) + srv.argv_fn(pin)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    end = time.monotonic() + 10
    if srv.key == 'peer':
        line = proc.stdout.readline().split()
        if len(line) == 2 and line[0] == 'port':
            return proc, int(line[1])
    else:
        while time.monotonic() < end and proc.poll() is None:
            if os.path.exists(pf):
                with open(pf) as f:
                    for ln in f:
                        if ln.startswith('udp '):
                            return proc, int(ln.split()[1])
            time.sleep(0.02)
    stop(proc)
    return None, 'server did not start'


def bench_once(args, proc, port, opts, pin):
    argv = (['taskset', '-c', CLIENT_CPU] if pin else []) + [
        os.path.join(ROOT, 'echobench'), '--udp', '-q', '--json',
        '-p', str(port), '-d', str(args.duration), '-w', str(args.warmup),
        '--pid', str(proc.pid)] + opts
    cpu0 = proc_cpu_s(proc.pid)
    try:
        r = subprocess.run(argv, capture_output=True, text=True,
                           timeout=args.duration + args.warmup + 60)
    except subprocess.TimeoutExpired:
        return dict(failure='echobench timed out')
    cpu1 = proc_cpu_s(proc.pid)
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return dict(failure='echobench exit %d: %s' % (
            r.returncode, r.stderr.strip()[:200]))
    if r.returncode != 0 or res.get('errors'):
        res['failure'] = 'echobench exit %d, %s errors' % (
            r.returncode, res.get('errors'))
    echoed = res.get('echoed') or 0
    if 'server_cpu_s' in res and echoed:
        res['cpu_per_m'] = res['server_cpu_s'] / (echoed / 1e6)
    res['server_cpu_run_s'] = (cpu1 - cpu0) if cpu0 is not None and \
        cpu1 is not None else None
    return res


def agg(runs, get):
    vals = [get(r) for r in runs if 'failure' not in r and get(r) is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def fmt(a, digits=0, scale=1.0, unit=''):
    if not a:
        return 'n/a'
    m, lo, hi = (v * scale for v in a)
    return '%.*f%s (%.*f–%.*f)' % (digits, m, unit, digits, lo, digits, hi)


def report(args, info, srvs, results):
    L = ['# UDP echo benchmark', '',
         'Generated by `make bench-udp` (bench/udp.py)%s on %s.  Do not '
         'edit; rerun it.' % (' in quick mode' if args.quick else '',
                              info['date']), '',
         'echobench --udp keeps a window of datagrams in flight on each '
         'flow and counts a datagram lost when its echo has not come back '
         'within %g s.  UDP has no backpressure: a server (or the kernel '
         'beneath it) that cannot keep up drops datagrams, so the rate is '
         'only meaningful beside the loss.  Medians over %d interleaved '
         'rounds of %g s (after %g s of warm-up), with min–max.' % (
             args.loss_timeout, args.rounds, args.duration, args.warmup), '',
         '- unpinned: no taskset; echoserver with one worker per CPU, '
         'peer_udp with one thread per CPU;',
         '- pinned: the server on CPU %s with one worker or thread, '
         'echobench on CPU %s.' % (SERVER_CPU, CLIENT_CPU), '']
    for k, v in info.items():
        L.append('- %s: %s' % (k, v))
    L.append('')
    for placement in args.placements:
        for size, title, _ in SIZES:
            L += ['## %s, %s' % (placement, title), '',
                  '| server | datagrams/s | lost | p50 us | p99 us | '
                  'server CPU s per M datagrams |',
                  '|---|---|---|---|---|---|']
            for s in srvs:
                runs = results[placement][s.key][size]
                L.append('| %s | %s | %s | %s | %s | %s |' % (
                    s.label,
                    fmt(agg(runs, lambda r: r.get('pkts_per_sec'))),
                    fmt(agg(runs, lambda r: r.get('loss')), 3, 100, '%'),
                    fmt(agg(runs, lambda r: r['latency_us']['p50']), 1),
                    fmt(agg(runs, lambda r: r['latency_us']['p99']), 1),
                    fmt(agg(runs, lambda r: r.get('cpu_per_m')), 2)))
            peer = agg(results[placement]['peer'][size],
                       lambda r: r.get('pkts_per_sec'))
            for key in ('echoserver', 'echoserver-rl'):
                es = agg(results[placement][key][size],
                         lambda r: r.get('pkts_per_sec'))
                if es and peer and peer[0]:
                    L.append('')
                    L.append('%s / peer_udp, datagrams/s (medians): '
                             '**%.2f×**' % (key, es[0] / peer[0]))
            fails = ['- failure, %s: %s' % (s.label, r['failure'])
                     for s in srvs
                     for r in results[placement][s.key][size]
                     if 'failure' in r]
            L += [''] + fails + ([''] if fails else [])
    return '\n'.join(L) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--rounds', type=int, default=None)
    ap.add_argument('--duration', type=float, default=None)
    ap.add_argument('--warmup', type=float, default=None)
    ap.add_argument('--loss-timeout', type=float, default=0.2)
    ap.add_argument('--placements', default=','.join(PLACEMENTS))
    ap.add_argument('--out', default=None)
    args = ap.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else \
        (0.5 if args.quick else 1.0)
    args.placements = args.placements.split(',')
    if 'pinned' in args.placements and (not shutil.which('taskset') or
                                        os.cpu_count() < 2):
        log('skipping the pinned placement: it needs 2 CPUs and taskset')
        args.placements.remove('pinned')
    out = args.out or os.path.join(
        ROOT, 'tests/tmp/bench' if args.quick else 'docs')
    for prog in ('echoserver', 'echobench', 'bench/peer_udp'):
        if not os.access(os.path.join(ROOT, prog), os.X_OK):
            log('error: %s is not built (run make bench-udp)' % prog)
            return 1
    tmp = tempfile.mkdtemp(prefix='echoserver-udp-bench.')
    srvs = servers(tmp)
    results = {p: {s.key: {z[0]: [] for z in SIZES} for s in srvs}
               for p in args.placements}
    load = os.getloadavg()[0]
    t_start = time.monotonic()
    for rnd in range(args.rounds):
        for placement in args.placements:
            pin = placement == 'pinned'
            for size, _, opts in SIZES:
                for s in srvs:
                    proc, port = start(s, pin, tmp)
                    if not proc:
                        res = dict(failure=port)
                    else:
                        res = bench_once(args, proc, port,
                                         opts + ['--loss-timeout',
                                                 str(args.loss_timeout)],
                                         pin)
                        stop(proc)
                    results[placement][s.key][size].append(res)
                    log('round %d %-8s %5s B %-14s %s' % (
                        rnd + 1, placement, size, s.key,
                        res.get('failure') or '%.0f/s lost %.3f%%' % (
                            res['pkts_per_sec'], res['loss'] * 100)))
    info = {
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        'kernel': os.uname().release,
        'CPUs': os.cpu_count(),
        'load average before': '%.2f' % load,
        'duration': '%.0f s' % (time.monotonic() - t_start),
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'benchmarks-udp.json'), 'w') as f:
        json.dump(dict(info=info, results=results), f, indent=1)
    with open(os.path.join(out, 'benchmarks-udp.md'), 'w') as f:
        f.write(report(args, info, srvs, results))
    shutil.rmtree(tmp, ignore_errors=True)
    log('wrote %s/benchmarks-udp.md in %s' % (out, info['duration']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
