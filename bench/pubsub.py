#!/usr/bin/python3
"""The pub/sub benchmark: one publisher and 1,000 subscribers on one channel,
64-byte messages, against echoserver's resp handler and a real
redis-server 7, in the same run, interleaved, driven by the same client
(bench/pubsub_client.c, one epoll thread).

Each round runs every server in every placement once, in turn, so that slow
drifts of this shared machine hit both alike:

- unpinned: no taskset; echoserver with its default workers (one per CPU,
  so the subscribers spread over both workers);
- pinned: the server on CPU 1 (echoserver then has one worker), the client
  on CPU 0.

Figures: messages delivered per second (counted at the subscribers, over
the measured seconds after a warm-up), the server's CPU per delivered
message (utime + stime of /proc/PID/stat around the measured seconds), and
the client's CPU share (a dagger where it passes 90%: the client may be the
limit).  Medians with (min-max).  The publisher is paced by deliveries, at
most --window messages ahead of the average subscriber, in bursts of
--burst PUBLISHes per write (see the client).

Writes docs/benchmarks-pubsub.md and docs/benchmarks-pubsub.json (or under
--out).  Usage: bench/pubsub.py [--quick] [--rounds N] [--seconds S]
[--subs N] [--size B] [--placements unpinned,pinned] [--out DIR].  Run it
through `make bench-pubsub`, which holds the benchmark lock.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import free_port, log  # noqa: E402  (bench/run.py)
from benchlib import fmt, median_min_max as mmm, stop, wait_port  # noqa: E402

SERVER_CPU, CLIENT_CPU = '1', '0'
TARGET = 1.0		# x redis's delivered messages/s


def server_argv(key, root, tmp, port):
    if key == 'echoserver':
        return [os.path.join(root, 'echoserver'), '-q', '-l',
                'resp@127.0.0.1:%d' % port]
    return ['redis-server', '--port', str(port), '--bind', '127.0.0.1',
            '--save', '', '--appendonly', 'no', '--dir', tmp,
            '--loglevel', 'warning']


def run_once(key, placement, args, root, tmp):
    port = free_port()
    pin = placement == 'pinned'
    argv = (['taskset', '-c', SERVER_CPU] if pin else []) + \
        server_argv(key, root, tmp, port)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port, proc):
            return dict(failure='server did not start')
        client = (['taskset', '-c', CLIENT_CPU] if pin else []) + [
            os.path.join(root, 'bench', 'pubsub_client'),
            '--port', str(port), '--subs', str(args.subs),
            '--size', str(args.size), '--seconds', str(args.seconds),
            '--warmup', str(args.warmup), '--burst', str(args.burst),
            '--window', str(args.window), '--pid', str(proc.pid)]
        r = subprocess.run(client, capture_output=True, text=True,
                           timeout=120 + args.seconds * 2)
        if r.returncode != 0:
            return dict(failure=(r.stderr.strip() or 'exit %d' %
                                 r.returncode)[-200:])
        return json.loads(r.stdout)
    finally:
        stop(proc)


def summarise(runs):
    ok = [r for r in runs if 'failure' not in r]
    return dict(
        rate=mmm([r['delivered_per_s'] for r in ok]),
        cpu=mmm([r['server_cpu_ns_per_msg'] for r in ok]),
        client=mmm([r['client_cpu_share'] for r in ok]),
        failures=[r['failure'] for r in runs if 'failure' in r])


def report(args, info, results):
    L = ['# Pub/sub benchmark', '',
         'Written by `make bench-pubsub` (bench/pubsub.py); do not edit by '
         'hand.  One publisher and %d subscribers on one channel, %d-byte '
         'messages, against echoserver\'s resp handler and redis-server in '
         'the same run, interleaved, %d rounds of %g s (after %g s of '
         'warm-up), driven by the same client (bench/pubsub_client.c).  '
         'Medians with (min–max).  A † marks a median where the client '
         'used over 90%% of its core: the figure may be the client\'s '
         'limit.' % (args.subs, args.size, args.rounds, args.seconds,
                     args.warmup), '']
    for k, v in info.items():
        L.append('- %s: %s' % (k, v))
    L += ['', '| placement | server | delivered msgs/s | server CPU ns '
          'per delivered msg | client CPU share | msgs/s vs redis | CPU '
          'vs redis |', '|---|---|---|---|---|---|---|']
    targets = []
    for placement, title in (('unpinned', 'unpinned'),
                             ('pinned', 'pinned: server CPU 1, client '
                              'CPU 0')):
        if placement not in results:
            continue
        s = {k: summarise(results[placement][k]) for k in
             ('echoserver', 'redis')}
        e, r = s['echoserver'], s['redis']
        rate = (e['rate'][0] / r['rate'][0]
                if e['rate'] and r['rate'] else None)
        cpu = (e['cpu'][0] / r['cpu'][0] if e['cpu'] and r['cpu'] else None)
        for k, label in (('echoserver', 'echoserver'),
                         ('redis', 'redis-server')):
            dag = ' †' if s[k]['client'] and s[k]['client'][0] > 0.9 else ''
            L.append('| %s | %s | %s%s | %s | %s | %s | %s |' % (
                title, label, fmt(s[k]['rate']), dag, fmt(s[k]['cpu'], 1),
                fmt(s[k]['client'], 2),
                ('%.2f×' % rate if rate else 'n/a') if k == 'echoserver'
                else '', ('%.2f×' % cpu if cpu else 'n/a')
                if k == 'echoserver' else ''))
        targets.append((placement, rate))
        for k in s:
            for f in s[k]['failures']:
                L.append('')
                L.append('- failure, %s %s: %s' % (placement, k, f))
    L += ['', '## Target', '', 'Delivered messages/s at least %.1f× '
          'redis-server\'s:' % TARGET, '', '| placement | echoserver / '
          'redis | met |', '|---|---|---|']
    for placement, ratio in targets:
        L.append('| %s | %s | %s |' % (
            placement, '%.2f×' % ratio if ratio else 'n/a',
            '✓' if ratio and ratio >= TARGET else '✗'))
    return '\n'.join(L) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--report-only', metavar='JSON',
                    help='rewrite the table from a saved JSON, no runs')
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--rounds', type=int, default=None)
    ap.add_argument('--seconds', type=float, default=None)
    ap.add_argument('--warmup', type=float, default=1.0)
    ap.add_argument('--subs', type=int, default=1000)
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--burst', type=int, default=16)
    ap.add_argument('--window', type=int, default=256)
    ap.add_argument('--placements', default='unpinned,pinned')
    ap.add_argument('--out', default=None)
    args = ap.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.seconds = args.seconds or (3.0 if args.quick else 5.0)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.out or os.path.join(root, 'docs')
    if args.report_only:
        with open(args.report_only) as f:
            saved = json.load(f)
        with open(os.path.join(out, 'benchmarks-pubsub.md'), 'w') as f:
            f.write(report(args, saved['info'], saved['results']))
        return
    placements = args.placements.split(',')
    results = {p: {'echoserver': [], 'redis': []} for p in placements}
    rv = subprocess.run(['redis-server', '--version'], capture_output=True,
                        text=True).stdout.strip()
    commit = subprocess.run(['git', '-C', root, 'rev-parse', '--short',
                             'HEAD'], capture_output=True,
                            text=True).stdout.strip()
    info = {
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        'commit': commit or 'unknown',
        'mode': 'quick' if args.quick else 'full',
        'machine': '%d CPUs, %s' % (os.cpu_count(), os.uname().release),
        'redis-server': rv,
        'echoserver': '-l resp@...; default workers (2 unpinned, 1 pinned)',
        'client': 'bench/pubsub_client --burst %d --window %d' % (
            args.burst, args.window),
    }
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for placement in placements:
                for key in ('echoserver', 'redis'):
                    r = run_once(key, placement, args, root, tmp)
                    results[placement][key].append(r)
                    log('round %d %s %s: %s' % (
                        rnd + 1, placement, key,
                        r.get('failure') or '%.0f msgs/s, %.1f ns/msg, '
                        'client %.2f' % (r['delivered_per_s'],
                                         r['server_cpu_ns_per_msg'],
                                         r['client_cpu_share'])))
    info['duration'] = '%.0f s' % (time.monotonic() - t0)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'benchmarks-pubsub.md'), 'w') as f:
        f.write(report(args, info, results))
    with open(os.path.join(out, 'benchmarks-pubsub.json'), 'w') as f:
        json.dump(dict(info=info, results=results), f, indent=1)
    log('wrote %s' % os.path.join(out, 'benchmarks-pubsub.md'))


if __name__ == '__main__':
    main()
