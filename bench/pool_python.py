#!/usr/bin/env python3
"""pool_python.py - Python's multiprocessing.Pool doing what bench_pool does,
for the side-by-side rows of bench/run.sh (same machine, same run).

No-op tasks (the argument comes back) through Pool(P):
  apply_one    apply_async(noop, (i,)).get(), one at a time
  apply_bulk   N x apply_async, then .get() on each in order
  map_c1       pool.map(noop, range(N), chunksize=1)
  map_default  pool.map(noop, range(N)) (Python's chunksize: N / (4 P))
Each runs once to warm up, then --runs times; the best counts. Results are
checked. The last line is key=value pairs ending with tasks_per_sec (the
bulk apply_async figure, the one bench_pool's tasks_per_sec compares to).
"""
import argparse
import multiprocessing
import sys
import time


def noop(x):
    return x


def best_of(runs, fn):
    fn(warm=True)
    best = None
    for _ in range(runs):
        t = fn(warm=False)
        best = t if best is None or t < best else best
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=5000, help="apply_async one at a time")
    ap.add_argument("--bulk-tasks", type=int, default=50000, help="apply_async in bulk")
    ap.add_argument("--map-items", type=int, default=50000, help="map, chunksize 1")
    ap.add_argument("--map-default-items", type=int, default=1000000, help="map, default chunksize")
    a = ap.parse_args()
    if min(a.processes, a.runs, a.tasks, a.bulk_tasks, a.map_items, a.map_default_items) < 1:
        ap.error("every number must be >= 1")

    # fork, as bench_pool's workers are forks of the parent.
    ctx = multiprocessing.get_context("fork")
    res = {}
    with ctx.Pool(a.processes) as pool:

        def one(warm):
            n = a.tasks // 10 + 1 if warm else a.tasks
            t0 = time.perf_counter()
            for i in range(n):
                if pool.apply_async(noop, (i,)).get() != i:
                    sys.exit("pool_python: apply_async: wrong result")
            return (time.perf_counter() - t0) / n

        def bulk(warm):
            n = a.bulk_tasks // 10 + 1 if warm else a.bulk_tasks
            t0 = time.perf_counter()
            rs = [pool.apply_async(noop, (i,)) for i in range(n)]
            for i, r in enumerate(rs):
                if r.get() != i:
                    sys.exit("pool_python: apply_async: wrong result")
            return (time.perf_counter() - t0) / n

        def mapper(n_full, chunksize):
            def run(warm):
                n = n_full // 10 + 1 if warm else n_full
                t0 = time.perf_counter()
                out = pool.map(noop, range(n), chunksize=chunksize)
                dt = time.perf_counter() - t0
                if out != list(range(n)):
                    sys.exit("pool_python: map: wrong result")
                return dt / n
            return run

        for key, n, fn in (("apply_one", a.tasks, one),
                           ("apply_bulk", a.bulk_tasks, bulk),
                           ("map_c1", a.map_items, mapper(a.map_items, 1)),
                           ("map_default", a.map_default_items, mapper(a.map_default_items, None))):
            s = best_of(a.runs, fn)
            res[key] = 1.0 / s
            print(f"{key}: processes={a.processes} tasks={n} ns_per_task={s * 1e9:.1f} "
                  f"tasks_per_sec={1.0 / s:.0f}", flush=True)
        pool.close()
        pool.join()

    print(f"processes={a.processes} runs={a.runs} python={sys.version.split()[0]} "
          f"apply_one_tasks_per_sec={res['apply_one']:.0f} "
          f"apply_bulk_tasks_per_sec={res['apply_bulk']:.0f} "
          f"map_c1_tasks_per_sec={res['map_c1']:.0f} "
          f"map_default_tasks_per_sec={res['map_default']:.0f} "
          f"tasks_per_sec={res['apply_bulk']:.0f}")


if __name__ == "__main__":
    main()
