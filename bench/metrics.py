#!/usr/bin/python3
"""What the reply-latency histogram costs the echo path: echoserver with
--metrics (the hook on: two clock reads and a bucket increment per
replied read) against the same binary without it (the hook off: one
untaken branch) and against echoserver built from the commit before the
hook (MAIN_REF, no hook at all), interleaved round by round.

Scenarios: ping-pong 64 B on 1 connection (the cost per message is
largest there, against the least work), ping-pong 64 B on 1000
connections (the headline), and with the full run pipelined 64 B x 50
with 64 in flight (many messages per read, so few observations).  Each
in two placements: pinned (server on CPU 1 with one worker, echobench on
CPU 0) and unpinned.  Figures: msgs/s, p50 and p99 as echobench reports
them, and the server's CPU seconds per million messages.  Each 'on' run
ends with a scrape, whose histogram count is logged, to show that the
hook was counting.

Writes docs/benchmarks-metrics.md (and .json); --quick (about 2 minutes)
runs 3 rounds of the two ping-pong scenarios of 2 s each.

Usage: bench/metrics.py [--quick] [--rounds N] [--out DIR]
Run it through `make bench-metrics`, which holds the benchmark lock.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py)
from benchlib import fmt, median_min_max  # noqa: E402

ROOT = run.ROOT
# The last commit before the histogram hook in src/conn.c.
MAIN_REF = '0d3bca0'

VARIANTS = [
    ('on', 'echoserver --metrics (hook on)'),
    ('off', 'echoserver, no --metrics (hook off)'),
    ('main', 'echoserver at %s (no hook)' % MAIN_REF),
]

SCENARIOS = [
    dict(key='pp64_c1', title='ping-pong 64 B, 1 connection',
         args=['-s', '64', '-c', '1'], quick=True),
    dict(key='pp64_c1000', title='ping-pong 64 B, 1000 connections',
         args=['-s', '64', '-c', '1000'], quick=True),
    dict(key='pipe64_c50_d64', title='pipelined 64 B, 50 connections, '
         '64 in flight', args=['-s', '64', '-c', '50', '-D', '64'],
         quick=False),
]


def start(exe, metrics, pin, tmp):
    """(proc, echo port, metrics port or None), or (None, ...) on failure."""
    pf = os.path.join(tmp, 'port')
    if os.path.exists(pf):
        os.unlink(pf)
    argv = [exe, '-q', '-l', '127.0.0.1', '-p', '0', '--port-file', pf]
    if metrics:
        argv += ['--metrics', '127.0.0.1:0']
    if pin:
        argv = ['taskset', '-c', run.SERVER_CPU] + argv
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, 'server.log'),
                                        'ab'))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(pf):
            with open(pf) as f:
                ports = [int(x) for x in f.read().split()]
            return proc, ports[0], ports[-1] if metrics else None
        time.sleep(0.02)
    stop(proc)
    return None, None, None


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(6)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scrape_count(port):
    """The histogram's count from one scrape, or None."""
    try:
        with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port,
                                    timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith('echoserver_reply_latency_seconds_count '):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def report(args, info, scs, results):
    out = ['# The cost of the reply-latency histogram', '',
           'Written by `bench/metrics.py%s` (`make bench-metrics%s`).  '
           'Medians of %d interleaved rounds, with min–max.  '
           'Machine: %s.' % (' --quick' if args.quick else '',
                             ' BENCH_QUICK=1' if args.quick else '',
                             args.rounds, info['machine']), '',
           '| | |', '|---|---|']
    for k, v in info.items():
        if k != 'machine':
            out.append('| %s | %s |' % (k, v))
    out.append('')
    for pl in args.placements:
        for sc in scs:
            out += ['## %s, %s' % (sc['title'], pl), '',
                    '| server | msgs/s | p50 µs | p99 µs | '
                    'server CPU s per M msgs |', '|---|---|---|---|---|']
            for key, label in VARIANTS:
                runs = results[pl][sc['key']].get(key)
                if runs is None:
                    continue
                ok = [r for r in runs if not r.get('failure')]
                fails = len(runs) - len(ok)
                out.append('| %s%s | %s | %s | %s | %s |' % (
                    label, ' (%d failed)' % fails if fails else '',
                    fmt(median_min_max([r['msgs_per_sec'] for r in ok])),
                    fmt(median_min_max([r['p50_us'] for r in ok])),
                    fmt(median_min_max([r['p99_us'] for r in ok])),
                    fmt(median_min_max([r.get('cpu_per_mmsg')
                                        for r in ok]), 2)))
            out.append('')
    return '\n'.join(out) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--rounds', type=int)
    ap.add_argument('--duration', type=float)
    ap.add_argument('--out')
    ap.add_argument('--placements', default='pinned,unpinned')
    args = ap.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.duration = args.duration or (2.0 if args.quick else 3.0)
    args.placements = [p for p in args.placements.split(',') if p]
    # What run.run_echobench() reads.
    eb = types.SimpleNamespace(duration=args.duration, warmup=0.5,
                               short_duration=args.duration,
                               short_warmup=0.5, open_timeout=15.0)
    out = args.out or os.path.join(ROOT, 'docs')
    scs = [s for s in SCENARIOS if s['quick'] or not args.quick]

    run.BASELINE_REF = MAIN_REF
    main_exe, missing = run.build_baseline()
    exes = {'on': os.path.join(ROOT, 'echoserver'),
            'off': os.path.join(ROOT, 'echoserver'), 'main': main_exe}
    variants = [v for v in VARIANTS if exes[v[0]]]
    if missing:
        run.log('skipping the %s build: %s' % (MAIN_REF, missing))

    tmp = tempfile.mkdtemp(prefix='echoserver-metrics-bench.')
    results = {pl: {sc['key']: {} for sc in scs} for pl in args.placements}
    t0 = time.monotonic()
    load0 = os.getloadavg()[0]
    for rnd in range(args.rounds):
        for pl in args.placements:
            pin = pl == 'pinned'
            for sc in scs:
                for key, label in variants:
                    proc, port, mport = start(exes[key], key == 'on', pin,
                                              tmp)
                    if not proc:
                        res = dict(failure='server did not start')
                    else:
                        r = types.SimpleNamespace(port=port, pid=proc.pid)
                        res = run.run_echobench(eb, sc, r, pin)
                        if mport and not res.get('failure'):
                            res['observations'] = scrape_count(mport)
                        stop(proc)
                    results[pl][sc['key']].setdefault(key, []).append(res)
                    run.log('round %d %-8s %-14s %-5s %s' % (
                        rnd + 1, pl, sc['key'], key,
                        res.get('failure') or
                        '%.0f msgs/s p99 %.0f us cpu/Mmsg %s%s' % (
                            res['msgs_per_sec'], res['p99_us'],
                            '%.2f' % res['cpu_per_mmsg']
                            if res.get('cpu_per_mmsg') is not None
                            else 'n/a',
                            ' observations %s' % res['observations']
                            if 'observations' in res else '')))
    info = {
        'machine': '%d CPUs, load average %.2f before the run (a shared '
                   'machine)' % (os.cpu_count(), load0),
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        'echobench': '`-d %g -w 0.5`, pinned: taskset -c %s (server) '
                     'and -c %s (client)' % (args.duration, run.SERVER_CPU,
                                             run.CLIENT_CPU),
        'duration': '%.0f s' % (time.monotonic() - t0),
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'benchmarks-metrics.json'), 'w') as f:
        json.dump(dict(info=info, results=results), f, indent=1)
    with open(os.path.join(out, 'benchmarks-metrics.md'), 'w') as f:
        f.write(report(args, info, scs, results))
    run.log('wrote %s/benchmarks-metrics.md in %s' % (out, info['duration']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
