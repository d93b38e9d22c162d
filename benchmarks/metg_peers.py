#!/usr/bin/python3
"""METG's Python peers: joblib and concurrent.futures on 2^k ns tasks.

Run by benchmarks/metg.py (which installs python3-joblib from Debian's
packages, as ./bazelw does its packages):

    /usr/bin/python3 benchmarks/metg_peers.py --kernel=metg_kernel_py.so \\
        [--ns_per_iteration=X] [--k=6:20] [--ideal_ms=50] [--repetitions=3]

Each task calls the C++ runners' own busy loop (benchmarks/metg_kernel.cc,
loaded with ctypes: the same machine code), Spin(iterations, i), and every
result is checked against its closed form. Per k, from the largest down: the
same number of tasks as the C++ runners (ideal time x 2 workers / task
time), the median wall time of the repetitions with the workers already
started, and the efficiency. A runner's sweep stops after its first point
under --floor (default 10%) or slower than --budget_s: the points below are
not needed to find its 50% and would take minutes. Runners, 2 workers each:
  joblib               joblib.Parallel(n_jobs=2) over delayed(spin)(...),
                       its default loky process backend and batch_size='auto'
  ProcessPoolExecutor  concurrent.futures, max_workers=2, map() with
                       chunksize = ceil(n / (4 x workers)) (multiprocessing
                       Pool.map's default rule; map's own default of 1 costs
                       a round trip per task)
Prints one JSON object: {"ns_per_iteration": X, "points": [{"runner", "k",
"tasks", "task_ns", "workers", "seconds", "efficiency"}, ...]}. Exits 1 on a
wrong answer.
"""
import argparse
import concurrent.futures
import ctypes
import json
import math
import os
import statistics
import sys
import time

WORKERS = 2
MUL = 6364136223846793005
ADD = 1442695040888963407
MASK = (1 << 64) - 1
MAX_TASKS = 1 << 23  # as metg_benchmark.cc: 64 MiB of results at most

_spin = None


def spin(iterations, seed):
    """Task `seed`: the kernel's Spin, loaded once per worker process."""
    global _spin
    if _spin is None:
        lib = ctypes.CDLL(os.environ["FANOUT_METG_KERNEL"])
        lib.fanout_metg_spin.restype = ctypes.c_uint64
        lib.fanout_metg_spin.argtypes = [ctypes.c_uint64, ctypes.c_uint64]
        _spin = lib.fanout_metg_spin
    return _spin(iterations, seed)


def answer(iterations):
    """(mul, add) with Spin(iterations, i) == (mul * i + add) mod 2^64."""
    mul, add = 1, 0
    step_mul, step_add = MUL, ADD
    n = iterations
    while n:
        if n & 1:
            mul, add = (step_mul * mul) & MASK, (step_mul * add + step_add) & MASK
        step_mul, step_add = (step_mul * step_mul) & MASK, \
            (step_mul * step_add + step_add) & MASK
        n >>= 1
    return mul, add


def check(name, iterations, results, n):
    mul, add = answer(iterations)
    if len(results) != n or any(r != (mul * i + add) & MASK
                                for i, r in enumerate(results)):
        sys.exit(f"metg_peers: wrong answer from {name}")


def run_joblib(iterations, n, state):
    import joblib
    if "joblib" not in state:
        state["joblib"] = joblib.Parallel(n_jobs=WORKERS)
        state["joblib"](joblib.delayed(spin)(1, i) for i in range(4))
    par = state["joblib"]
    start = time.perf_counter()
    results = par(joblib.delayed(spin)(iterations, i) for i in range(n))
    return time.perf_counter() - start, results


def run_process_pool(iterations, n, state):
    if "pool" not in state:
        state["pool"] = concurrent.futures.ProcessPoolExecutor(
            max_workers=WORKERS)
        list(state["pool"].map(spin, [1] * 4, range(4)))  # workers started
    pool = state["pool"]
    chunk = max(1, math.ceil(n / (4 * WORKERS)))
    start = time.perf_counter()
    results = list(pool.map(spin, [iterations] * n, range(n), chunksize=chunk))
    return time.perf_counter() - start, results


RUNNERS = {"joblib": run_joblib, "ProcessPoolExecutor": run_process_pool}


def parse_ks(text):
    if ":" in text:
        lo, hi = (int(x) for x in text.split(":"))
        return list(range(lo, hi + 1))
    return [int(x) for x in text.split(",")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", required=True,
                        help="the //benchmarks:metg_kernel_py.so library")
    parser.add_argument("--ns_per_iteration", type=float, default=0.0,
                        help="the C++ run's calibration (default: calibrate)")
    parser.add_argument("--k", default="6:20")
    parser.add_argument("--ideal_ms", type=float, default=50.0)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--floor", type=float, default=0.10)
    parser.add_argument("--budget_s", type=float, default=20.0)
    parser.add_argument("--runners", default=",".join(RUNNERS))
    args = parser.parse_args()
    # Workers (forked or started by loky) find the library by this name.
    os.environ["FANOUT_METG_KERNEL"] = os.path.abspath(args.kernel)
    ns = args.ns_per_iteration
    if ns <= 0:
        lib = ctypes.CDLL(os.environ["FANOUT_METG_KERNEL"])
        lib.fanout_metg_ns_per_iteration.restype = ctypes.c_double
        ns = lib.fanout_metg_ns_per_iteration()
    points = []
    for name in args.runners.split(","):
        run = RUNNERS[name]
        state = {}
        for k in sorted(parse_ks(args.k), reverse=True):
            iterations = max(1, round(2.0 ** k / ns))
            task_ns = iterations * ns
            n = int(max(WORKERS, min(MAX_TASKS, round(
                args.ideal_ms * 1e6 * WORKERS / task_ns))))
            times = []
            for _ in range(args.repetitions):
                seconds, results = run(iterations, n, state)
                check(name, iterations, results, n)
                del results
                times.append(seconds)
            seconds = statistics.median(times)
            efficiency = n * task_ns * 1e-9 / WORKERS / seconds
            points.append({"runner": name, "k": k, "tasks": n,
                           "task_ns": task_ns, "workers": WORKERS,
                           "seconds": seconds, "efficiency": efficiency})
            print(f"metg_peers: {name} k={k} {n} tasks: {seconds * 1e3:.1f} ms,"
                  f" efficiency {efficiency:.3f}", file=sys.stderr, flush=True)
            if efficiency < args.floor or seconds > args.budget_s:
                break
        if "pool" in state:
            state["pool"].shutdown()
    json.dump({"ns_per_iteration": ns, "points": points}, sys.stdout)
    print()


if __name__ == "__main__":
    # Tasks must name this file as a module, not __main__: loky's workers
    # (fresh interpreters) then import it rather than unpickle a copy of
    # spin() by value, and keep the library loaded between batches.
    sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
    import metg_peers  # noqa: E402  pylint: disable=import-self
    metg_peers.main()
