#!/usr/bin/python3
"""The README's pool table: what one submitted task costs on each fanout pool
beside its peers, in one run, medians of several repetitions.

    ./bazelw run -c opt //benchmarks:pool_compare [-- --quick]

Runs //benchmarks:pool (Google Benchmark: fanout's pools, tbb::task_group,
thread_pool::ThreadPool, std::async, tbb::flow::graph) and
benchmarks/pool_peers.py (Python's ProcessPoolExecutor and Dask's
LocalCluster), then prints a Markdown table: per-task cost and the ratio the
issue asks about for each. Installs python3-distributed and python3-joblib
from Debian's packages when they are missing (benchmarks/debian_packages.py,
shared with metg.py), as ./bazelw does.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import debian_packages  # noqa: E402

PYTHON = "/usr/bin/python3"
PACKAGES = ["python3-distributed", "python3-joblib"]


def fanout_medians(binary, repetitions):
    out = subprocess.run(
        [binary, f"--benchmark_repetitions={repetitions}",
         "--benchmark_report_aggregates_only=true",
         "--benchmark_format=json"],
        check=True, capture_output=True, text=True).stdout
    medians = {}
    for b in json.loads(out)["benchmarks"]:
        # One repetition has no aggregates: its one run is the median.
        wanted = "median" if repetitions > 1 else None
        if b.get("aggregate_name") != wanted:
            continue
        name = b["run_name"].removesuffix("/real_time")
        # Seconds per task: items_per_second counts tasks.
        medians[name] = 1.0 / b["items_per_second"]
    return medians


def peer_medians(script, repetitions, quick):
    args = [PYTHON, script, f"--repetitions={repetitions}"]
    if quick:
        args.append("--quick")
    out = subprocess.run(args, check=True, capture_output=True,
                         text=True).stdout
    medians = {}
    for line in out.splitlines():
        name, seconds, _ = line.split()
        medians[name] = float(seconds)
    return medians


def us(seconds):
    return f"{seconds * 1e6:.3g} µs"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--peers", required=True)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 1 if args.quick else args.repetitions
    debian_packages.ensure(PACKAGES, "pool_compare")
    f = fanout_medians(args.binary, reps)
    p = peer_medians(args.peers, reps, args.quick)

    def get(case, runner):
        return f[f"{case}/{runner}/jobs:2"]

    rows = []
    sg = "submit_get_1M"
    for runner in ["thread", "tbb", "sequential"]:
        t = get(sg, runner)
        rows.append((f"{sg} fanout {runner}", us(t),
                     f"costs {t / get(sg, 'peer:tbb_task_group'):.2f}× "
                     f"tbb::task_group's; thread_pool costs "
                     f"{get(sg, 'peer:thread_pool') / t:.1f}× this"))
    for runner in ["peer:tbb_task_group", "peer:thread_pool", "peer:std_async"]:
        rows.append((f"{sg} {runner.removeprefix('peer:')}", us(get(sg, runner)), ""))
    proc = get("submit_get_100k", "process")
    rows.append(("submit_get fanout process", us(proc), ""))
    for name in ["ProcessPoolExecutor", "dask_local_cluster"]:
        rows.append((f"submit_get {name} (Python)", us(p[name]),
                     f"fanout process is {p[name] / proc:.0f}× cheaper"))
    for case in ["dag_tree_64k", "dag_wave_64k"]:
        flow = get(case, "peer:tbb_flow_graph")
        for runner in ["thread", "tbb", "sequential", "process"]:
            t = get(case, runner)
            rows.append((f"{case} fanout {runner}", us(t),
                         f"takes {t / flow:.2f}× tbb::flow::graph's time"))
        rows.append((f"{case} tbb::flow::graph", us(flow), ""))
    for runner in ["thread", "tbb", "peer:tbb"]:
        t = get("nested_4x4000", runner)
        flat = get("flat_4000", runner) if runner != "peer:tbb" else None
        note = (f"{flat / t:.2f}× the speed of the same tasks flat"
                if flat else "")
        label = ("raw TBB, parallel_for in parallel_for"
                 if runner == "peer:tbb" else f"fanout {runner}")
        rows.append((f"nested_4x4000 {label}", us(t), note))
    print(f"Per task, median of {reps} repetitions, jobs 2 "
          f"(`./bazelw run -c opt //benchmarks:pool_compare`):\n")
    print("| case | per task | ratio |")
    print("|---|---|---|")
    for name, cost, note in rows:
        print(f"| {name} | {cost} | {note} |")


if __name__ == "__main__":
    main()
