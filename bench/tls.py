#!/usr/bin/python3
"""The TLS benchmark: echoserver's tls+echo listener against the plain
bufferevent_openssl echo (bench/peer_tls.c), both driven by echobench
--tls, interleaved.

Scenarios (sizes are the variables below):

- handshakes: churn, 8 connections at a time each doing connect, TLS
  handshake, one 64 B echo, close: cycles/s is handshakes/s;
- bulk: 10 connections, 4 x 64 KiB in flight each: MB/s one way;
- pingpong: 100 connections, one 64 B message each in flight: msgs/s;
- hold: 1,000 connections held idle after one echo: the server's RSS
  per connection.

Placements: unpinned (echoserver with its default workers, one per CPU),
and pinned (the server on CPU 1, so echoserver runs one worker; echobench
on CPU 0).  The peer is single-threaded in both.  Each round runs every
scenario against each server in turn, alternating which goes first, so
that the drifts of this shared machine hit both alike.  Medians with
min-max over the rounds, the ratio echoserver / peer of the medians, and
the server's CPU seconds per thousand handshakes or per GB (from /proc,
through echobench --pid).

The certificate is a throwaway P-256 one made with the openssl command.

Writes docs/benchmarks-tls.md and docs/benchmarks-tls.json (--out DIR to
change).  --quick: 3 rounds of 1.5 s, under 3 minutes.
Run it through `make bench-tls`, which holds the benchmark lock.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import free_port, log  # noqa: E402  (bench/run.py)
from benchlib import median_min_max as agg, stop, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_CPU, CLIENT_CPU = '1', '0'

# key, title, echobench arguments, the figure, its unit
SCENARIOS = [
    ('handshakes', 'handshakes (churn, 8 at a time, 64 B echo each)',
     ['-m', 'churn', '-c', '8', '-s', '64'], 'msgs_per_sec', 'handshakes/s'),
    ('bulk', 'bulk (10 conns, 4 x 64 KiB in flight)',
     ['-m', 'bulk', '-c', '10', '-s', '64k', '-D', '4'], 'mb_per_sec',
     'MB/s'),
    ('pingpong', 'ping-pong (100 conns, 64 B)',
     ['-m', 'pingpong', '-c', '100', '-s', '64'], 'msgs_per_sec', 'msgs/s'),
    ('hold', 'idle (1,000 conns held after one echo)',
     ['-m', 'hold', '-c', '1000'], 'rss_per_conn_bytes',
     'server RSS B per conn, lower is better'),
]
PLACEMENTS = ['unpinned', 'pinned']


def make_cert(tmp):
    crt, key = os.path.join(tmp, 'bench.crt'), os.path.join(tmp, 'bench.key')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key,
                    '-out', crt, '-days', '1', '-subj', '/CN=bench'],
                   check=True, capture_output=True)
    return crt, key


def servers(crt, key):
    es = os.path.join(ROOT, 'echoserver')
    peer = os.path.join(ROOT, 'bench', 'peer_tls')
    return [
        ('echoserver', 'echoserver tls+echo',
         lambda p: [es, '-q', '-l', 'tls+echo@127.0.0.1:%d' % p,
                    '--tls-cert', crt, '--tls-key', key]),
        ('peer_tls', 'bufferevent_openssl echo (peer_tls)',
         lambda p: [peer, str(p), crt, key]),
    ]


def run_one(argv_fn, sc, pin, args):
    port = free_port()
    argv = (['taskset', '-c', SERVER_CPU] if pin else []) + argv_fn(port)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port, proc):
            return {'failure': 'server did not start'}
        bench = (['taskset', '-c', CLIENT_CPU] if pin else []) + [
            os.path.join(ROOT, 'echobench'), '--tls', '-p', str(port),
            '-d', str(args.duration), '-w', str(args.warmup), '--json',
            '-q', '--pid', str(proc.pid)] + sc[2]
        out = subprocess.run(bench, capture_output=True, text=True,
                             timeout=args.duration + args.warmup + 60)
        try:
            r = json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {'failure': 'echobench: %s' % out.stderr.strip()[:200]}
        if out.returncode != 0 or r.get('errors'):
            r['failure'] = 'echobench exit %d, %s errors: %s' % (
                out.returncode, r.get('errors'), out.stderr.strip()[:200])
        return r
    finally:
        stop(proc)


def fmt(a, digits=0):
    if a is None:
        return '–'
    f = '{:,.%df}' % digits
    m, lo, hi = a
    return '%s (%s–%s)' % (f.format(m), f.format(lo), f.format(hi))


def cpu_per_unit(r, sc):
    """Server CPU seconds per 1,000 handshakes or msgs, or per GB."""
    cpu = r.get('server_cpu_s')
    if cpu is None or sc[0] == 'hold':
        return None
    if sc[3] == 'mb_per_sec':
        gb = r.get('bytes', 0) / 1e9
        return cpu / gb if gb else None
    n = r.get('msgs', 0)
    return cpu / (n / 1000.0) if n else None


def report(args, results, started, took):
    lines = []
    w = lines.append
    w('# TLS benchmarks')
    w('')
    w('Generated by `bench/tls.py%s` (`make bench-tls%s`) on %s UTC, '
      'in %.0f s.' % (' --quick' if args.quick else '',
                      ' BENCH_QUICK=1' if args.quick else '',
                      started.strftime('%Y-%m-%d %H:%M'), took))
    w('Machine: %s, %d CPUs; %s.  A shared machine: other '
      'engineers\' builds may run beside it, so read medians and ranges, '
      'not single figures.' % (
          platform.platform(), os.cpu_count(),
          subprocess.run(['openssl', 'version'], capture_output=True,
                         text=True).stdout.strip()))
    w('')
    w('Both servers use the same context settings (TLS 1.2 and 1.3, '
      'OpenSSL\'s default ciphers: TLS 1.3 with TLS_AES_256_GCM_SHA384 '
      'here, as `openssl s_client -brief` reports) and a P-256 '
      'certificate.  echobench --tls is the '
      'client.  %d rounds of %.1f s (+%.1f s warm-up) per scenario and '
      'server, interleaved.  Ratio: echoserver / peer, of the medians.  '
      'Server CPU: seconds per 1,000 handshakes or messages, or per GB '
      'for bulk.' % (args.rounds, args.duration, args.warmup))
    w('')
    for pl in PLACEMENTS:
        w('## %s' % (pl if pl == 'unpinned' else
                     'pinned (server CPU %s, client CPU %s)' % (SERVER_CPU,
                                                                CLIENT_CPU)))
        w('')
        w('| scenario | echoserver | peer_tls | ratio | server CPU, '
          'echoserver / peer |')
        w('|---|---|---|---|---|')
        for sc in SCENARIOS:
            es = results[pl][sc[0]]['echoserver']
            pe = results[pl][sc[0]]['peer_tls']
            a = agg([r.get(sc[3]) for r in es if not r.get('failure')])
            b = agg([r.get(sc[3]) for r in pe if not r.get('failure')])
            ca = agg([cpu_per_unit(r, sc) for r in es
                      if not r.get('failure')])
            cb = agg([cpu_per_unit(r, sc) for r in pe
                      if not r.get('failure')])
            ratio = '%.2f×' % (a[0] / b[0]) if a and b and b[0] else '–'
            cpu = '%s / %s' % ('%.3f' % ca[0] if ca else '–',
                               '%.3f' % cb[0] if cb else '–')
            w('| %s, %s | %s | %s | %s | %s |' % (
                sc[1], sc[4], fmt(a), fmt(b), ratio, cpu))
            fails = [r['failure'] for r in es + pe if r.get('failure')]
            if fails:
                w('| | %d runs failed: %s | | | |' % (len(fails), fails[0]))
        w('')
    w('## Reading the figures')
    w('')
    w('- echoserver serves TLS through the same bufferevent_openssl as '
      'the peer (docs/design.md, "TLS"), so the two should be close: '
      'the cipher and OpenSSL\'s record handling set the pace, and '
      'bufferevent_openssl reads about one record per event (fact T8).  '
      'echoserver\'s own fast path does not apply to TLS.')
    w('- Unpinned, echoserver runs a worker per CPU beside its accepting '
      'thread and echobench on the same two cores; the peer is one '
      'thread.  Pinned, both servers have one core.')
    w('- echoserver sets `SSL_MODE_RELEASE_BUFFERS`, which gives '
      'OpenSSL\'s record buffers (about 2 x 16 KiB) back while a '
      'connection is idle, and the peer does not; that is the expected '
      'cause of the difference in idle memory per connection, though '
      'neither it nor its CPU cost per record was measured apart from '
      'the rest.')
    w('- Plain (non-TLS) echo connections cost about 1.1 KB each '
      '(docs/design.md, "Memory per connection"); a TLS one costs an '
      'OpenSSL `SSL` on top.')
    w('')
    return '\n'.join(lines) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--rounds', type=int)
    ap.add_argument('--duration', type=float)
    ap.add_argument('--warmup', type=float)
    ap.add_argument('--out', default=os.path.join(ROOT, 'docs'))
    ap.add_argument('--render', action='store_true',
                    help='rewrite the .md from the saved .json only')
    args = ap.parse_args()
    if args.render:
        with open(os.path.join(args.out, 'benchmarks-tls.json')) as f:
            saved = json.load(f)
        for k in ('quick', 'rounds', 'duration', 'warmup'):
            setattr(args, k, saved[k])
        md = report(args, saved['results'],
                    datetime.datetime.fromisoformat(saved['started']),
                    saved['took'])
        with open(os.path.join(args.out, 'benchmarks-tls.md'), 'w') as f:
            f.write(md)
        return
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    if args.duration is None:
        args.duration = 1.5 if args.quick else 4.0
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 1.0

    started = datetime.datetime.utcnow()
    t0 = time.monotonic()
    results = {pl: {sc[0]: {'echoserver': [], 'peer_tls': []}
                    for sc in SCENARIOS} for pl in PLACEMENTS}
    with tempfile.TemporaryDirectory(prefix='echoserver-bench-tls.') as tmp:
        crt, key = make_cert(tmp)
        srvs = servers(crt, key)
        for rnd in range(args.rounds):
            for pl in PLACEMENTS:
                for sc in SCENARIOS:
                    order = srvs if rnd % 2 == 0 else list(reversed(srvs))
                    for skey, label, argv_fn in order:
                        r = run_one(argv_fn, sc, pl == 'pinned', args)
                        results[pl][sc[0]][skey].append(r)
                        log('round %d %-8s %-10s %-10s %s' % (
                            rnd + 1, pl, sc[0], skey,
                            r.get('failure') or '%.1f %s' % (
                                r.get(sc[3], 0), sc[4])))
    took = time.monotonic() - t0
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'benchmarks-tls.json'), 'w') as f:
        json.dump({'started': started.isoformat(), 'quick': args.quick,
                   'rounds': args.rounds, 'duration': args.duration,
                   'warmup': args.warmup, 'took': took,
                   'results': results}, f, indent=1)
    md = report(args, results, started, took)
    with open(os.path.join(args.out, 'benchmarks-tls.md'), 'w') as f:
        f.write(md)
    print(md)


if __name__ == '__main__':
    main()
