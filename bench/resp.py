#!/usr/bin/python3
"""The RESP benchmark: redis-benchmark against echoserver's resp handler and
against a real redis-server, in the same run, interleaved.

Each round runs every configuration once against each server, in turn, so
that slow drifts of this shared machine hit both alike.  Placements:

- pinned: the server on CPU 1 (echoserver with -t 1), redis-benchmark on
  CPU 0;
- unpinned: echoserver with -t 1 and -t 2 and redis-server, with no
  taskset, and redis-benchmark --threads 2, to show how the workers scale.

Figures: requests/s, p50 and p99 as redis-benchmark reports them, the
server's CPU seconds per million requests (utime + stime from /proc around
the run) and the client's CPU share (a dagger where it passes 90% of its
cores: the client may be the limit).  Writes docs/benchmarks-resp.md and
docs/benchmarks-resp.json, or under tests/tmp/bench/ with --quick.

Usage: bench/resp.py [--quick] [--rounds N] [--out DIR]
Run it through `make bench-resp` (or `make bench`), which holds the
benchmark lock so that nothing else measures at the same time.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import free_port, log, proc_cpu_s  # noqa: E402  (bench/run.py)
from benchlib import fmt, median_min_max, stop, wait_port  # noqa: E402

SERVER_CPU, CLIENT_CPU = '1', '0'
TESTS = 'ping,set,get,incr,mset'
ROWS = ['PING_INLINE', 'PING_MBULK', 'SET', 'GET', 'INCR', 'MSET (10 keys)']

# (key, title, redis-benchmark options, requests per test (full, quick))
CONFIGS = [
    ('p128', '-P 128, 50 clients', ['-P', '128', '-c', '50'],
     (2000000, 200000)),
    ('p16', '-P 16, 50 clients', ['-P', '16', '-c', '50'],
     (1000000, 100000)),
    ('p1', '-P 1, 50 clients', ['-P', '1', '-c', '50'], (200000, 20000)),
]

# Targets from the issue, checked on the pinned runs.
TARGET_RPS_P128 = 1.5		# x redis on PING_MBULK, SET, GET at -P 128
TARGET_CPU_P1 = 0.7		# x redis's CPU per request at -P 1


class Server:
    def __init__(self, key, label, argv_fn, threads=1):
        self.key, self.label, self.argv_fn = key, label, argv_fn
        self.threads = threads


def servers(root, tmp):
    es = os.path.join(root, 'echoserver')
    return [
        Server('echoserver', 'echoserver resp (-t 1)',
               lambda p: [es, '-q', '-t', '1', '-l',
                          'resp@127.0.0.1:%d' % p]),
        Server('echoserver2', 'echoserver resp (-t 2)',
               lambda p: [es, '-q', '-t', '2', '-l',
                          'resp@127.0.0.1:%d' % p], threads=2),
        Server('redis', 'redis-server',
               lambda p: ['redis-server', '--port', str(p), '--bind',
                          '127.0.0.1', '--save', '', '--appendonly', 'no',
                          '--dir', tmp, '--loglevel', 'warning']),
    ]


def start(srv, pin):
    port = free_port()
    argv = (['taskset', '-c', SERVER_CPU] if pin else []) + srv.argv_fn(port)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if not wait_port(port, proc):
        proc.kill()
        proc.wait()
        return None, None
    return proc, port


def bench_once(proc, port, cfg, n, pin, client_threads):
    """One redis-benchmark run of every test; returns rows by test name."""
    argv = (['taskset', '-c', CLIENT_CPU] if pin else []) + [
        'redis-benchmark', '-h', '127.0.0.1', '-p', str(port), '-n', str(n),
        '-t', TESTS, '--csv'] + cfg
    if client_threads > 1:
        argv += ['--threads', str(client_threads)]
    cpu0 = proc_cpu_s(proc.pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = proc_cpu_s(proc.pid)
    if r.returncode != 0:
        return dict(failure=(r.stderr.strip() or r.stdout.strip())[-200:])
    rows = {}
    for line in r.stdout.splitlines():
        f = [x.strip('"') for x in line.split(',')]
        if len(f) < 8 or f[0] == 'test':
            continue
        rows[f[0]] = dict(rps=float(f[1]), p50_ms=float(f[4]),
                          p99_ms=float(f[6]))
    total = n * len(rows)
    client_cpu = ((ru1.ru_utime - ru0.ru_utime) +
                  (ru1.ru_stime - ru0.ru_stime))
    out = dict(rows=rows, wall=wall,
               client_share=client_cpu / wall / max(1, client_threads))
    if cpu0 is not None and cpu1 is not None and total:
        out['server_cpu_per_mreq'] = (cpu1 - cpu0) / (total / 1e6)
    return out


def summarise(results, key, placement, cfg):
    runs = [r for r in results[placement][key][cfg] if 'rows' in r]
    out = {}
    for row in ROWS:
        out[row] = dict(
            rps=median_min_max([r['rows'].get(row, {}).get('rps')
                                for r in runs]),
            p50=median_min_max([r['rows'].get(row, {}).get('p50_ms')
                                for r in runs]),
            p99=median_min_max([r['rows'].get(row, {}).get('p99_ms')
                                for r in runs]))
    out['cpu'] = median_min_max([r.get('server_cpu_per_mreq') for r in runs])
    out['client'] = median_min_max([r.get('client_share') for r in runs])
    out['failures'] = [r['failure'] for r in results[placement][key][cfg]
                       if 'failure' in r]
    return out


def report(args, info, results):
    L = ['# RESP benchmarks', '',
         'Written by `make bench-resp` (bench/resp.py); do not edit by '
         'hand.  redis-benchmark against echoserver\'s resp handler and a '
         'real redis-server in the same run, interleaved, %d rounds; '
         'medians with (min–max).  A † marks a median where '
         'redis-benchmark used over 90%% of its cores: the figure may be '
         'the client\'s limit, not the server\'s.' % args.rounds, '']
    for k, v in info.items():
        L.append('- %s: %s' % (k, v))
    L.append('')
    targets = []
    for placement, title, keys in (
            ('pinned', 'Pinned: server on CPU 1, redis-benchmark on CPU 0',
             ['echoserver', 'redis']),
            ('unpinned', 'Unpinned: no taskset, redis-benchmark --threads 2',
             ['echoserver', 'echoserver2', 'redis'])):
        if placement not in results:
            continue
        L += ['## ' + title, '']
        for cfg, ctitle, _, _ in CONFIGS:
            sums = {k: summarise(results, k, placement, cfg) for k in keys}
            L += ['### ' + ctitle, '',
                  '| test | ' + ' | '.join(
                      '%s req/s | p50 ms | p99 ms' % s for s in
                      [SERVER_LABELS[k] for k in keys]) +
                  ' | echoserver / redis |',
                  '|---|' + '---|---|---|' * len(keys) + '---|']
            for row in ROWS:
                cells = []
                for k in keys:
                    s = sums[k][row]
                    dag = (' †' if sums[k]['client'] and
                           sums[k]['client'][0] > 0.9 else '')
                    cells += [fmt(s['rps']) + dag, fmt(s['p50'], 3),
                              fmt(s['p99'], 3)]
                e, r = sums['echoserver'][row]['rps'], sums['redis'][row]['rps']
                ratio = e[0] / r[0] if e and r and r[0] else None
                L.append('| %s | %s | %s |' % (
                    row, ' | '.join(cells),
                    '%.2f×' % ratio if ratio else 'n/a'))
                if (placement == 'pinned' and cfg == 'p128' and
                        row in ('PING_MBULK', 'SET', 'GET')):
                    targets.append(('%s at -P 128: req/s ≥ %.1f× redis' % (
                        row, TARGET_RPS_P128), ratio,
                        ratio is not None and ratio >= TARGET_RPS_P128))
            cpu_cells = ['%s: %s' % (SERVER_LABELS[k], fmt(sums[k]['cpu'], 2))
                         for k in keys]
            L += ['', 'Server CPU s per million requests, over the '
                  'whole run of every test: ' +
                  '; '.join(cpu_cells) + '.  Client CPU share: ' +
                  '; '.join('%s: %s' % (SERVER_LABELS[k],
                                        fmt(sums[k]['client'], 2))
                            for k in keys) + '.', '']
            fails = ['- failure, %s: %s' % (SERVER_LABELS[k], f)
                     for k in keys for f in sums[k]['failures']]
            L += fails + ([''] if fails else [])
            if placement == 'pinned' and cfg == 'p1':
                e, r = sums['echoserver']['cpu'], sums['redis']['cpu']
                ratio = e[0] / r[0] if e and r and r[0] else None
                targets.append(('server CPU per request at -P 1 ≤ %.1f× '
                                'redis' % TARGET_CPU_P1, ratio,
                                ratio is not None and ratio <= TARGET_CPU_P1))
    if targets:
        L += ['## Targets (pinned)', '', '| target | ratio | met |',
              '|---|---|---|']
        for t, ratio, ok in targets:
            L.append('| %s | %s | %s |' % (
                t, '%.2f×' % ratio if ratio else 'n/a', '✓' if ok else '✗'))
        L.append('')
    return '\n'.join(L) + '\n'


SERVER_LABELS = {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--rounds', type=int, default=None)
    ap.add_argument('--out', default=None)
    ap.add_argument('--placements', default='pinned,unpinned')
    args = ap.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 3)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.out or os.path.join(
        root, 'tests/tmp/bench' if args.quick else 'docs')
    for tool in ('redis-benchmark', 'redis-server', 'taskset'):
        if not shutil.which(tool):
            log('skip: %s is not installed (apt-get install redis-server '
                'redis-tools util-linux)' % tool)
            return 0
    tmp = tempfile.mkdtemp(prefix='echoserver-resp-bench.')
    srvs = servers(root, tmp)
    for s in srvs:
        SERVER_LABELS[s.key] = s.label
    placements = args.placements.split(',')
    results = {p: {s.key: {c[0]: [] for c in CONFIGS} for s in srvs}
               for p in placements}
    t_start = time.monotonic()
    for rnd in range(args.rounds):
        for placement in placements:
            pin = placement == 'pinned'
            for cfg, title, opts, ns in CONFIGS:
                n = ns[1] if args.quick else ns[0]
                for s in srvs:
                    if pin and s.threads > 1:
                        continue	# one core: a second worker only waits
                    proc, port = start(s, pin)
                    if not proc:
                        results[placement][s.key][cfg].append(
                            dict(failure='server did not start'))
                        continue
                    res = bench_once(proc, port, opts, n, pin,
                                     1 if pin else 2)
                    stop(proc)
                    results[placement][s.key][cfg].append(res)
                    rows = res.get('rows', {})
                    log('round %d %-8s %-5s %-24s %s' % (
                        rnd + 1, placement, cfg, s.label,
                        res.get('failure') or ' '.join(
                            '%s=%.0f' % (k.split()[0], v['rps'])
                            for k, v in rows.items())))
    info = {
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        'redis-benchmark': subprocess.run(
            ['redis-benchmark', '--version'], capture_output=True,
            text=True).stdout.strip(),
        'redis-server': subprocess.run(
            ['redis-server', '--version'], capture_output=True,
            text=True).stdout.strip(),
        'tests': '`redis-benchmark -t %s --csv` with -n %s per test' % (
            TESTS, ', '.join('%d (%s)' % (c[3][1 if args.quick else 0],
                                          c[0]) for c in CONFIGS)),
        'load average before': '%.2f' % os.getloadavg()[0],
        'duration': '%.0f s' % (time.monotonic() - t_start),
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'benchmarks-resp.json'), 'w') as f:
        json.dump(dict(info=info, results=results), f, indent=1)
    with open(os.path.join(out, 'benchmarks-resp.md'), 'w') as f:
        f.write(report(args, info, results))
    shutil.rmtree(tmp, ignore_errors=True)
    log('wrote %s/benchmarks-resp.md in %s' % (out, info['duration']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
