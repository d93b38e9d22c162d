#!/usr/bin/python3
"""METG(50%) of every fanout backend beside its peers: a table, targets, a plot.

  ./bazelw run //benchmarks:metg                 # ~10 min on 2 cores
  ./bazelw run //benchmarks:metg -- --quick      # a few seconds, for testing

METG(50%) (Task Bench, Slaughter et al., SC20) is the smallest task duration
at which a runner keeps at least 50% efficiency, efficiency being the ideal
time (tasks x task time / workers) over the measured time. Runs
//benchmarks:metg_benchmark (the fanout backends, raw tbb::parallel_for,
OpenMP, thread_pool::ThreadPool, a plain loop), the same binary's mpi rows
under fanout-mpirun -np 2 (2 ranks of one thread), and
benchmarks/metg_peers.py (joblib, concurrent.futures.ProcessPoolExecutor), on
tasks of 2^k ns of calibrated busy work, all at 2 workers. Then prints:

  - the METG table: per runner the METG, interpolated in log2 between the two
    task sizes around 50% (from the largest task down: the first one under
    50% and the one above it), and its efficiency at the largest task;
  - every runner's efficiency at every k;
  - the issue's targets, PASS or FAIL each (UNRESOLVED when a METG lies
    outside the sweep and the bound does not decide it);

and writes the plot of efficiency against task size (gnuplot) to --plot
(default docs/metg.png under the directory it was started from) and, with
--out_dir, metg.json (every point) and metg.md (the tables). Installs
gnuplot-nox and python3-joblib from Debian's packages when missing
(benchmarks/debian_packages.py, shared with pool_compare.py). Exits 1 when a
runner gave a wrong answer or failed; a missed target is printed, not an
error.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import debian_packages  # noqa: E402

PYTHON = "/usr/bin/python3"
PACKAGES = ["gnuplot-nox", "python3-joblib"]
JOBS = 2
TO_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
SKIPPED = "skipped:"  # metg_benchmark.cc's message for a point not run
# The fanout backends measured with JOBS workers (sequential has one).
PARALLEL_BACKENDS = ["thread", "tbb", "process", "mpi"]
# Rows in this order; anything else after them.
ORDER = ["thread", "tbb", "process", "mpi", "sequential", "peer:tbb_parallel_for",
         "peer:openmp", "peer:thread_pool", "peer:loop",
         "python:ProcessPoolExecutor", "python:joblib"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd())
    p.add_argument("--benchmark", required=True,
                   help="the //benchmarks:metg_benchmark binary")
    p.add_argument("--peers", required=True, help="benchmarks/metg_peers.py")
    p.add_argument("--kernel", required=True,
                   help="the //benchmarks:metg_kernel_py.so library")
    p.add_argument("--mpirun", default="",
                   help="fanout-mpirun, for the mpi rows (none: no mpi rows)")
    p.add_argument("--k", default="0:20",
                   help="the k swept, lo:hi (the issue's 6..20 and 0..5 below)")
    p.add_argument("--mpi_k", default="6:20",
                   help="mpi's k (its 50%% is far above 64 ns)")
    p.add_argument("--ideal_ms", type=float, default=50.0,
                   help="ideal time of every point at 2 workers")
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--min_time", default="0.2",
                   help="--benchmark_min_time per repetition, in seconds")
    p.add_argument("--quick", action="store_true",
                   help="k 10 and 16, 2 ms points, 1 repetition: tests the tooling")
    p.add_argument("--plot", default=os.path.join(here, "docs", "metg.png"))
    p.add_argument("--out_dir", default="",
                   help="also write metg.json and metg.md here")
    p.add_argument("--no_install", action="store_true",
                   help="do not apt-get install what is missing")
    a = p.parse_args()
    for name in ("benchmark", "peers", "kernel", "mpirun"):
        if getattr(a, name):
            setattr(a, name, os.path.abspath(getattr(a, name)))
    if a.quick:
        a.k, a.mpi_k, a.ideal_ms, a.repetitions = "10,16", "10,16", 2.0, 1
        a.min_time = "0.001"
    return a


def run_benchmark(args, json_path, extra, under=()):
    cmd = list(under) + [
        args.benchmark, "--benchmark_out=" + json_path,
        "--benchmark_out_format=json", "--benchmark_min_time=" + args.min_time,
        "--benchmark_repetitions=%d" % args.repetitions,
        "--metg_ideal_ms=%g" % args.ideal_ms, "--metg_jobs=%d" % JOBS] + extra
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    # Progress on stderr; the console table of each point is not needed.
    return subprocess.call(cmd, stdout=subprocess.DEVNULL)


def load_benchmark(json_path):
    """[(runner, k, tasks, task_ns, workers, seconds)], failures, context."""
    with open(json_path) as f:
        data = json.load(f)
    runs, failed = {}, []
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = b.get("run_name", b["name"])
        if b.get("error_occurred"):
            if not b.get("error_message", "").startswith(SKIPPED):
                failed.append("%s: %s" % (name, b.get("error_message", "")))
            continue
        _, runner, k = name.split("/")[:3]
        key = (runner, int(k.split(":")[1]))
        seconds = b["real_time"] * TO_SECONDS[b.get("time_unit", "ns")]
        entry = runs.setdefault(key, {"tasks": int(b["tasks"]),
                                      "task_ns": b["task_ns"],
                                      "workers": int(b["workers"]),
                                      "times": []})
        entry["times"].append(seconds)
    points = [(r, k, e["tasks"], e["task_ns"], e["workers"],
               statistics.median(e["times"])) for (r, k), e in runs.items()]
    return points, failed, data.get("context", {})


def run_peers(args, ns_per_iteration):
    cmd = [PYTHON, args.peers, "--kernel=" + args.kernel,
           "--ns_per_iteration=%.9g" % ns_per_iteration, "--k=" + args.k,
           "--ideal_ms=%g" % args.ideal_ms,
           "--repetitions=%d" % args.repetitions]
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        return [], ["metg_peers.py exited %d" % out.returncode]
    points = [("python:" + p["runner"], p["k"], p["tasks"], p["task_ns"],
               p["workers"], p["seconds"])
              for p in json.loads(out.stdout)["points"]]
    return points, []


def efficiency(point):
    _, _, tasks, task_ns, workers, seconds = point
    return tasks * task_ns * 1e-9 / workers / seconds


def metg(points):
    """(lo_ns, hi_ns, between) of one runner's METG(50%): lo == hi when it
    is interpolated, (0, smallest) when every task measured kept 50%,
    (largest, inf) when none did. `between` names the two k around 50%."""
    pts = sorted(points, key=lambda p: -p[1])  # the largest task first
    if efficiency(pts[0]) < 0.5:
        return pts[0][3], math.inf, "above k=%d" % pts[0][1]
    for above, below in zip(pts, pts[1:]):
        e_hi, e_lo = efficiency(above), efficiency(below)
        if e_lo < 0.5:
            x_hi, x_lo = math.log2(above[3]), math.log2(below[3])
            x = x_lo + (0.5 - e_lo) / (e_hi - e_lo) * (x_hi - x_lo)
            return 2 ** x, 2 ** x, "k=%d..%d" % (below[1], above[1])
    return 0.0, pts[-1][3], "below k=%d" % pts[-1][1]


def fmt_ns(ns):
    if math.isinf(ns):
        return "inf"
    for unit, scale in (("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return "%.3g %s" % (ns / scale, unit)
    return "%.3g ns" % ns


def fmt_metg(m):
    lo, hi, _ = m
    if lo == hi:
        return fmt_ns(lo)
    return "< " + fmt_ns(hi) if lo == 0 else "> " + fmt_ns(lo)


def ordered(runners):
    return sorted(runners, key=lambda r: (ORDER.index(r) if r in ORDER
                                          else len(ORDER), r))


def metg_table(by_runner, metgs):
    lines = ["| runner | workers | METG(50%) | between | efficiency at the "
             "largest task |", "|---|---:|---:|---|---:|"]
    for r in ordered(by_runner):
        pts = by_runner[r]
        top = max(pts, key=lambda p: p[1])
        lines.append("| %s | %d | %s | %s | %.0f%% (%s) |" % (
            r, pts[0][4], fmt_metg(metgs[r]), metgs[r][2],
            100 * efficiency(top), fmt_ns(top[3])))
    return "\n".join(lines)


def efficiency_table(by_runner):
    ks = sorted({p[1] for pts in by_runner.values() for p in pts})
    lines = ["| runner | " + " | ".join("2^%d" % k for k in ks) + " |",
             "|---|" + "---:|" * len(ks)]
    for r in ordered(by_runner):
        cells = {p[1]: "%.0f%%" % (100 * efficiency(p)) for p in by_runner[r]}
        lines.append("| %s | %s |" % (r, " | ".join(cells.get(k, "")
                                                     for k in ks)))
    return "\n".join(lines)


def targets(metgs):
    """The issue's targets: (description, measured, wanted, verdict)."""
    rows = []

    def at_most(desc, a, b, factor, wanted):
        # a <= factor * b, with a and b intervals [lo, hi].
        if a is None or b is None:
            rows.append((desc, "not measured", wanted, "UNRESOLVED"))
            return
        if a[1] <= factor * b[0]:
            verdict = "PASS"
        elif a[0] > factor * b[1]:
            verdict = "FAIL"
        else:
            verdict = "UNRESOLVED"
        if a[0] == a[1] and b[0] == b[1] and b[0] > 0:
            measured = "%.2fx" % (a[0] / b[0])
        else:
            measured = "%s vs %s" % (fmt_metg(a + ("",)), fmt_metg(b + ("",)))
        rows.append((desc, measured, wanted, verdict))

    def get(r):
        m = metgs.get(r)
        return (m[0], m[1]) if m else None

    peers = [get(r) for r in ("peer:tbb_parallel_for", "peer:openmp") if get(r)]
    best = (min(p[0] for p in peers), min(p[1] for p in peers)) if peers else None
    for backend in ("thread", "tbb"):
        at_most("%s METG / best of raw TBB and OpenMP" % backend,
                get(backend), best, 1.1, "<= 1.1x")
    at_most("process METG / thread METG", get("process"), get("thread"), 10,
            "<= 10x")
    joblib = get("python:joblib")
    for backend in PARALLEL_BACKENDS:
        desc = "joblib METG / %s METG" % backend
        a = get(backend)
        if a is None or joblib is None:
            rows.append((desc, "not measured", ">= 100x", "UNRESOLVED"))
            continue
        # backend <= joblib / 100, said as joblib's multiple of it.
        at_most(desc, a, joblib, 0.01, ">= 100x")
        d, m, w, v = rows[-1]
        if a[0] == a[1] and joblib[0] == joblib[1]:
            m = "%.0fx" % (joblib[0] / a[0])
        rows[-1] = (d, m, w, v)
    lines = ["| target | measured | wanted | |", "|---|---:|---:|---|"]
    lines += ["| %s | %s | %s | %s |" % row for row in rows]
    return "\n".join(lines), rows


# Line styles: fanout's backends solid, C++ peers dashed, Python dotted.
STYLES = {
    "thread": ("#7b2cbf", 1, 3), "tbb": ("#009e73", 1, 3),
    "process": ("#0072b2", 1, 3), "mpi": ("#e69f00", 1, 3),
    "sequential": ("#999999", 1, 2),
    "peer:tbb_parallel_for": ("#006d4f", 2, 2), "peer:openmp": ("#d55e00", 2, 2),
    "peer:thread_pool": ("#8b4513", 2, 2), "peer:loop": ("#555555", 2, 2),
    "python:ProcessPoolExecutor": ("#cc79a7", 3, 3),
    "python:joblib": ("#000000", 3, 3),
}


def plot(by_runner, metgs, out_path):
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        print("gnuplot not found (apt-get install gnuplot-nox): no plot",
              file=sys.stderr)
        return False
    runners = ordered(by_runner)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "metg.dat")
        clauses = []
        with open(data, "w") as f:
            for i, r in enumerate(runners):
                for p in sorted(by_runner[r], key=lambda p: p[1]):
                    f.write("%.6g %.6g\n" % (p[3], efficiency(p)))
                f.write("\n\n")
                color, dash, width = STYLES.get(r, ("#777777", 4, 2))
                clauses.append(
                    "'%s' index %d using 1:2 with linespoints lw %d dt %d "
                    "lc rgb '%s' pt 7 ps 0.7 title '%s: %s'" %
                    (data, i, width, dash, color, r, fmt_metg(metgs[r])))
        xtics = ", ".join('"%s" %d' % (fmt_ns(2 ** k).replace(" ", ""), 2 ** k)
                          for k in range(0, 21, 2))
        script = os.path.join(tmp, "plot.gp")
        with open(script, "w") as f:
            # A tic label is a format: "%%" in it prints one "%".
            f.write("""set terminal pngcairo size 1200,650 noenhanced
set output '%s'
set title "Efficiency against task size, 2 workers: METG(50%%) is where a line falls under the dashed 50%% line\\n(ideal time = tasks x task time / workers, over the measured time; higher is better)"
set xlabel 'task duration: 2^k ns of busy work'
set ylabel 'efficiency'
set logscale x 2
set xtics (%s)
set yrange [0:1.1]
set ytics ("0%%%%" 0, "25%%%%" 0.25, "50%%%%" 0.5, "75%%%%" 0.75, "100%%%%" 1)
set grid xtics ytics
set key outside right top title 'runner: METG(50%%)'
set arrow from graph 0, first 0.5 to graph 1, first 0.5 nohead dt 2 lw 2 lc rgb 'black'
plot %s
""" % (out_path, xtics, ", \\\n     ".join(clauses)))
        rc = subprocess.call([gnuplot, script])
    return rc == 0 and os.path.exists(out_path)


def main():
    args = parse_args()
    if not args.no_install:
        debian_packages.ensure(PACKAGES, "metg")
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        json_path = os.path.join(tmp, "metg_benchmark.json")
        rc = run_benchmark(args, json_path, ["--metg_k=" + args.k])
        if not os.path.exists(json_path):
            print("metg_benchmark wrote no results (exit %d)" % rc,
                  file=sys.stderr)
            return 1
        points, bad, context = load_benchmark(json_path)
        failed += bad + (["metg_benchmark exited %d" % rc] if rc else [])
        ns = float(context["metg_ns_per_iteration"])
        mpi_note = ""
        if args.mpirun:
            mpi_json = os.path.join(tmp, "metg_mpi.json")
            rc = run_benchmark(
                args, mpi_json,
                ["--metg_k=" + args.mpi_k, "--metg_ns_per_iteration=%.9g" % ns],
                under=[args.mpirun, "-np", str(JOBS)])
            if os.path.exists(mpi_json):
                mpi_points, bad, _ = load_benchmark(mpi_json)
                points += mpi_points
                failed += bad + (["mpi run exited %d" % rc] if rc else [])
            else:
                mpi_note = "mpi: not run (mpirun exited %d)" % rc
                failed.append(mpi_note)
        peer_points, bad = run_peers(args, ns)
        points += peer_points
        failed += bad
    by_runner = {}
    for p in points:
        by_runner.setdefault(p[0], []).append(p)
    metgs = {r: metg(pts) for r, pts in by_runner.items()}
    header = ("## METG(50%%): %s CPUs, %d workers, one step of the busy loop "
              "%.3f ns, %g ms ideal per point, medians of %d repetitions" %
              (context.get("num_cpus", "?"), JOBS, ns, args.ideal_ms,
               args.repetitions))
    target_text, _ = targets(metgs)
    parts = [header, metg_table(by_runner, metgs),
             "### Efficiency at each task size (2^k ns)",
             efficiency_table(by_runner), "### Targets", target_text]
    if mpi_note:
        parts.append(mpi_note)
    text = "\n\n".join(parts)
    print(text)
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        with open(os.path.join(args.out_dir, "metg.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(args.out_dir, "metg.json"), "w") as f:
            json.dump({"ns_per_iteration": ns, "context": context,
                       "points": [dict(zip(("runner", "k", "tasks", "task_ns",
                                            "workers", "seconds"), p))
                                  for p in points]}, f, indent=1)
    rc = 0
    if plot(by_runner, metgs, args.plot):
        print("\nplot: " + args.plot)
    else:
        rc = 1
    for f in failed:
        print("FAILED " + f, file=sys.stderr)
    return 1 if failed else rc


if __name__ == "__main__":
    sys.exit(main())
