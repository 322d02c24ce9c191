#!/usr/bin/python3
"""The offload benchmark: the sha256 handler hashing 1 KiB lines inline on
its workers, and on the offload pool, in the same run, interleaved.

The server runs 2 workers (-t 2), and, offloaded, 2 pool threads
(--offload --offload-threads 2), with two listeners: sha256 for the load
and resp for the probe.  bench/offload_client (built by the Makefile)
keeps CONNS connections each with DEPTH lines of LINE bytes in flight on
sha256, and meanwhile sends a resp PING every millisecond on one more
connection and times each round trip.  Connections are dealt to workers
round-robin whatever their listener, and the load connections cover both
workers, so the probe's worker is always one running the slow work: its
PING waits for whatever that worker does between two reads.  PING on the
resp listener is the cheap request because resp answers it on the worker
in either mode; a short sha256 line would itself go to the pool when
offloaded, and time the pool's queue instead of the worker.

Figures: sha256 replies/s (each checked against libcrypto's digest), the
probe's p50 and p99 round trip, and the server's CPU seconds per million
lines (utime + stime from /proc around the run).  Placements: unpinned,
and pinned (the whole server on CPU 1, the client on CPU 0).  Medians over
the rounds, with (min–max).  Writes docs/benchmarks-offload.md and .json,
or with --quick (which makes the runs short) wherever --out says,
tests/tmp/bench/ by default.

Usage: bench/offload.py [--quick] [--rounds N] [--out DIR]
       [--conns N] [--depth N] [--line BYTES] [--duration S]
Run it through `make bench-offload`, which holds the benchmark lock.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import free_port, log, proc_cpu_s  # noqa: E402  (bench/run.py)
from benchlib import fmt, median_min_max as mmm, stop, wait_port  # noqa: E402

SERVER_CPU, CLIENT_CPU = '1', '0'
MODES = [
    ('inline', 'inline (-t 2)', ['-t', '2']),
    ('offload', 'offloaded (-t 2, --offload --offload-threads 2)',
     ['-t', '2', '--offload', '--offload-threads', '2']),
]
PLACEMENTS = [
    ('unpinned', 'Unpinned: no taskset'),
    ('pinned', 'Pinned: server on CPU %s, client on CPU %s' % (
        SERVER_CPU, CLIENT_CPU)),
]


def run_once(root, args, mode_opts, pin):
    sha, resp = free_port(), free_port()
    argv = ((['taskset', '-c', SERVER_CPU] if pin else []) +
            [os.path.join(root, 'echoserver'), '-q',
             '-l', 'sha256@127.0.0.1:%d' % sha,
             '-l', 'resp@127.0.0.1:%d' % resp] + mode_opts)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        if not wait_port(sha, proc) or not wait_port(resp, proc):
            return dict(failure='server did not start')
        client = ((['taskset', '-c', CLIENT_CPU] if pin else []) +
                  [os.path.join(root, 'bench/offload_client'), str(sha),
                   str(resp), str(args.conns), str(args.depth),
                   str(args.line), str(args.warmup), str(args.duration)])
        cpu0 = proc_cpu_s(proc.pid)
        t0 = time.monotonic()
        r = subprocess.run(client, capture_output=True, text=True,
                           timeout=120 + args.duration)
        wall = time.monotonic() - t0
        cpu1 = proc_cpu_s(proc.pid)
        if r.returncode != 0:
            return dict(failure=(r.stderr.strip() or 'client failed')[-200:])
        out = json.loads(r.stdout)
        # CPU over warm-up and measurement; lines over the same span, at
        # the measured rate.
        if cpu0 is not None and cpu1 is not None and out['rps'] > 0:
            out['cpu_per_mline'] = (cpu1 - cpu0) / (out['rps'] * wall / 1e6)
        return out
    finally:
        stop(proc)


def sha256_us_per_kib():
    """What hashing one 1 KiB block costs here, from openssl speed (one
    thread, 1 s), in microseconds; None if openssl is missing."""
    try:
        r = subprocess.run(['openssl', 'speed', '-evp', 'sha256', '-bytes',
                            '1024', '-seconds', '1'], capture_output=True,
                           text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in r.stdout.splitlines():
        f = line.split()
        if f and f[0].lower() == 'sha256' and f[-1].endswith('k'):
            kbs = float(f[-1][:-1])	# thousands of bytes per second
            return 1024 / (kbs * 1000) * 1e6 if kbs else None
    return None


def report(args, info, results):
    L = ['# Offload benchmark', '',
         'Written by `make bench-offload` (bench/offload.py); do not edit '
         'by hand.  The sha256 handler hashing %d-byte lines inline on its '
         'workers and on the offload pool, interleaved, %d round%s; '
         'medians with (min–max).  The probe is a resp PING every '
         'millisecond on another connection of a worker that runs the '
         'load (bench/offload.py says why PING, and why that worker).' % (
             args.line, args.rounds, '' if args.rounds == 1 else 's'), '']
    for k, v in info.items():
        L.append('- %s: %s' % (k, v))
    L.append('')
    for placement, title in PLACEMENTS:
        if placement not in results:
            continue
        L += ['## ' + title, '',
              '| mode | sha256 lines/s | PING p50 µs | PING p99 µs | '
              'server CPU s per M lines |', '|---|---|---|---|---|']
        sums = {}
        for key, label, _ in MODES:
            runs = [r for r in results[placement][key] if 'rps' in r]
            s = sums[key] = dict(
                rps=mmm([r['rps'] for r in runs]),
                p50=mmm([r['ping_p50_us'] for r in runs]),
                p99=mmm([r['ping_p99_us'] for r in runs]),
                cpu=mmm([r.get('cpu_per_mline') for r in runs]))
            L.append('| %s | %s | %s | %s | %s |' % (
                label, fmt(s['rps']), fmt(s['p50']), fmt(s['p99']),
                fmt(s['cpu'], 2)))
        i, o = sums['inline'], sums['offload']
        if i['rps'] and o['rps'] and i['p99'] and o['p99']:
            L += ['', 'Offloaded / inline: lines/s %.2f×, PING p99 %.2f×.'
                  % (o['rps'][0] / i['rps'][0], o['p99'][0] / i['p99'][0])]
        fails = ['- failure, %s: %s' % (key, r['failure'])
                 for key, _, _ in MODES
                 for r in results[placement][key] if 'failure' in r]
        L += [''] + fails + ([''] if fails else [])
    return '\n'.join(L) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--rounds', type=int, default=None)
    ap.add_argument('--out', default=None)
    ap.add_argument('--placements', default='unpinned,pinned')
    ap.add_argument('--conns', type=int, default=4)
    ap.add_argument('--depth', type=int, default=64)
    ap.add_argument('--line', type=int, default=1024)
    ap.add_argument('--duration', type=float, default=None)
    ap.add_argument('--warmup', type=float, default=None)
    args = ap.parse_args()
    args.rounds = args.rounds or 3 if args.quick else args.rounds or 5
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup or (0.5 if args.quick else 1.0)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.out or os.path.join(
        root, 'tests/tmp/bench' if args.quick else 'docs')
    if not shutil.which('taskset'):
        log('skip: taskset is not installed (apt-get install util-linux)')
        return 0
    placements = args.placements.split(',')
    results = {p: {m[0]: [] for m in MODES} for p in placements}
    t_start = time.monotonic()
    load = os.getloadavg()[0]
    hash_us = sha256_us_per_kib()
    for rnd in range(args.rounds):
        for placement in placements:
            for key, label, opts in MODES:
                res = run_once(root, args, opts, placement == 'pinned')
                results[placement][key].append(res)
                log('round %d %-8s %-8s %s' % (
                    rnd + 1, placement, key, res.get('failure') or
                    'lines/s=%.0f ping p50=%.0f p99=%.0f us' % (
                        res['rps'], res['ping_p50_us'],
                        res['ping_p99_us'])))
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                            cwd=root, capture_output=True,
                            text=True).stdout.strip()
    info = {
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        'echoserver': 'commit %s' % (commit or 'unknown'),
        'load': '%d connections × %d lines of %d B in flight; the probe: '
                'one connection, PING every 1 ms' % (
                    args.conns, args.depth, args.line),
        'runs': '%s%g s measured after %g s warm-up, each mode in turn '
                'per round' % ('quick mode: ' if args.quick else '',
                                args.duration, args.warmup),
        'SHA-256 of 1 KiB': ('%.2f µs (`openssl speed -evp sha256 -bytes '
                             '1024`, one thread)' % hash_us
                             if hash_us else 'n/a'),
        'load average before': '%.2f' % load,
        'duration': '%.0f s' % (time.monotonic() - t_start),
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'benchmarks-offload.json'), 'w') as f:
        json.dump(dict(info=info, results=results), f, indent=1)
    with open(os.path.join(out, 'benchmarks-offload.md'), 'w') as f:
        f.write(report(args, info, results))
    log('wrote %s/benchmarks-offload.md in %s' % (out, info['duration']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
