#!/usr/bin/env python3
"""mpi_python.py - mpi4py.futures.MPIPoolExecutor doing what bench_mpi's
pool measures do, for the side-by-side rows of bench/run.sh (same machine,
same run). Run in mpi4py.futures' static mode, rank 0 the caller and the
other ranks its workers, as bench_mpi is:

    mpirun --oversubscribe -np 3 python3 -m mpi4py.futures bench/mpi_python.py

No-op tasks (the argument comes back):
  one          executor.submit(noop, i).result(), one at a time
  bulk         N x executor.submit, then .result() on each in order
  map_c1000    list(executor.map(noop, range(N), chunksize=1000))
Each runs once to warm up, then --runs times; the best counts. Results are
checked. The last line is key=value pairs ending with tasks_per_sec (the
bulk figure, the one bench_mpi's tasks_per_sec compares to).
"""
import argparse
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor


def noop(x):
    return x


def best_of(runs, fn):
    fn(warm=True)
    return min(fn(warm=False) for _ in range(runs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--one", type=int, default=2000, help="submit + result, one at a time")
    ap.add_argument("--tasks", type=int, default=5000, help="submitted, then awaited")
    ap.add_argument("--map-items", type=int, default=1000000, help="map, chunksize 1000")
    a = ap.parse_args()
    if min(a.runs, a.one, a.tasks, a.map_items) < 1:
        ap.error("every number must be >= 1")

    res = {}
    # Static mode (-m mpi4py.futures): the pool is the other ranks. Run
    # as a plain script on one rank, it spawns 2 workers instead.
    with MPIPoolExecutor(max_workers=2) as ex:
        workers = ex.num_workers if hasattr(ex, "num_workers") else MPI.COMM_WORLD.Get_size() - 1

        def one(warm):
            n = a.one // 10 + 1 if warm else a.one
            t0 = time.perf_counter()
            for i in range(n):
                if ex.submit(noop, i).result() != i:
                    sys.exit("mpi_python: submit: wrong result")
            return (time.perf_counter() - t0) / n

        def bulk(warm):
            n = a.tasks // 10 + 1 if warm else a.tasks
            t0 = time.perf_counter()
            fs = [ex.submit(noop, i) for i in range(n)]
            for i, f in enumerate(fs):
                if f.result() != i:
                    sys.exit("mpi_python: submit: wrong result")
            return (time.perf_counter() - t0) / n

        def mapper(warm):
            n = a.map_items // 10 + 1 if warm else a.map_items
            t0 = time.perf_counter()
            out = list(ex.map(noop, range(n), chunksize=1000))
            dt = time.perf_counter() - t0
            if out != list(range(n)):
                sys.exit("mpi_python: map: wrong result")
            return dt / n

        for key, n, fn in (("one", a.one, one), ("bulk", a.tasks, bulk),
                           ("map_c1000", a.map_items, mapper)):
            s = best_of(a.runs, fn)
            res[key] = 1.0 / s
            print(f"{key}: workers={workers} tasks={n} us_per_task={s * 1e6:.2f} "
                  f"tasks_per_sec={1.0 / s:.0f}", flush=True)

    import mpi4py
    print(f"ranks={MPI.COMM_WORLD.Get_size()} runs={a.runs} python={sys.version.split()[0]} "
          f"mpi4py={mpi4py.__version__} one_tasks_per_sec={res['one']:.0f} "
          f"map_c1000_tasks_per_sec={res['map_c1000']:.0f} tasks_per_sec={res['bulk']:.0f}")


if __name__ == "__main__":
    main()
