#!/usr/bin/python3
"""Python's pools beside fanout's process pool: what one submitted task costs.

Run by benchmarks/pool_compare.sh (which installs python3-distributed and
python3-joblib from Debian's packages, as ./bazelw does its packages):

    /usr/bin/python3 benchmarks/pool_peers.py [--repetitions=5] [--quick]

Each case submits N empty tasks (task i returns i) one by one on 2 worker
processes, then takes every result; the sum is checked. Prints one line per
case: `name median_seconds_per_task tasks`, the median of the repetitions.
  ProcessPoolExecutor  concurrent.futures, max_workers=2 (fork)
  dask_local_cluster   distributed.LocalCluster(n_workers=2,
                       threads_per_worker=1, processes=True), client.submit
                       with pure=False, then client.gather
"""
import argparse
import concurrent.futures
import logging
import statistics
import sys
import time


def ident(i):
    return i


def process_pool(n):
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as ex:
        ex.submit(ident, 0).result()  # workers started before the clock
        start = time.perf_counter()
        fs = [ex.submit(ident, i) for i in range(n)]
        total = sum(f.result() for f in fs)
        seconds = time.perf_counter() - start
    if total != n * (n - 1) // 2:
        sys.exit(f"pool_peers: wrong answer from ProcessPoolExecutor: {total}")
    return seconds / n


def dask_cluster(n):
    from distributed import Client, LocalCluster
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.submit(ident, 0, pure=False).result()
        start = time.perf_counter()
        fs = [client.submit(ident, i, pure=False) for i in range(n)]
        total = sum(client.gather(fs))
        seconds = time.perf_counter() - start
    if total != n * (n - 1) // 2:
        sys.exit(f"pool_peers: wrong answer from dask: {total}")
    return seconds / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    cases = [("ProcessPoolExecutor", process_pool, 2000 if args.quick else 20000),
             ("dask_local_cluster", dask_cluster, 200 if args.quick else 2000)]
    for name, run, n in cases:
        per_task = statistics.median(run(n) for _ in range(args.repetitions))
        print(f"{name} {per_task:.9f} {n}", flush=True)


if __name__ == "__main__":
    main()
