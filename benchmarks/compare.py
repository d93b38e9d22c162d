#!/usr/bin/python3
"""Runs the backend comparison and prints a table and a speedup plot.

  ./bazelw run //benchmarks:compare                 # the full run (~10 min on 2 cores)
  ./bazelw run //benchmarks:compare -- --quick      # a few seconds, for testing

Runs //benchmarks:backends with JSON output and repetitions, takes the median
real time of every benchmark, and writes into the directory it was started
from ($BUILD_WORKING_DIRECTORY under `bazel run`, else --out_dir):

  fanout_benchmarks.json   Google Benchmark's JSON output
  fanout_benchmarks.md     the tables below, in markdown
  fanout_speedup.png       speedup over the sequential loop per runner, and
                           apart from it each runner's 2-task latency (gnuplot)

--markdown=FILE only redraws the plot from a table it printed before (the
first "| runner | jobs |" table in FILE: fanout_benchmarks.md or the README).

The first table gives, for each runner (a fanout backend or a peer library)
and jobs count, the median time of each workload and its ratio to the best
peer with the same jobs count (at jobs 1 the sequential loop is a peer).
Then come the issue's targets with the measured ratios. Standard library only.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

WORKLOADS = ["tiny_1M", "sum_10k", "fib_38_33", "busy_1ms_x1000", "linear_4k",
             "latency_2",
             "reduce_10M", "imap_1M", "imap_unordered_1M",
             "sum_10k_checkpoint", "tiny_1M_checkpoint",
             "sum_10k_trace", "tiny_1M_trace"]
LOOP = "peer:loop"
TBB_PEER = "peer:tbb_parallel_for"
TO_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", default="benchmarks/backends",
                   help="the //benchmarks:backends binary")
    p.add_argument("--out_dir",
                   default=os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd()),
                   help="where the json, markdown and plot go")
    p.add_argument("--quick", action="store_true",
                   help="fib and latency only, one short repetition: tests the tooling")
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--min_time", default="0.5",
                   help="--benchmark_min_time per repetition, in seconds")
    p.add_argument("--filter", default="", help="--benchmark_filter regex")
    p.add_argument("--json", default="",
                   help="render an existing JSON result instead of running")
    p.add_argument("--markdown", default="",
                   help="only plot, from the first table of this markdown "
                   "file (fanout_benchmarks.md, or the README's)")
    p.add_argument("--plot_format", choices=["png", "svg"], default="png")
    return p.parse_args()


def run_suite(args, json_path):
    cmd = [args.binary, "--benchmark_out=" + json_path,
           "--benchmark_out_format=json",
           "--benchmark_enable_random_interleaving=true"]
    if args.quick:
        cmd += ["--benchmark_min_time=0.001", "--benchmark_repetitions=1",
                "--benchmark_filter=" + (args.filter or "^(fib_38_33|latency_2)/")]
    else:
        cmd += ["--benchmark_min_time=" + args.min_time,
                "--benchmark_repetitions=%d" % args.repetitions]
        if args.filter:
            cmd.append("--benchmark_filter=" + args.filter)
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    # Progress on stderr; the console table of each repetition is not needed.
    rc = subprocess.call(cmd, stdout=subprocess.DEVNULL)
    return rc


def load(json_path):
    """{(workload, runner, jobs): median seconds}, and the failed names."""
    with open(json_path) as f:
        data = json.load(f)
    times, failed = {}, []
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = b.get("run_name", b["name"])
        if b.get("error_occurred"):
            failed.append("%s: %s" % (name, b.get("error_message", "")))
            continue
        parts = name.split("/")
        workload, runner, jobs = parts[0], parts[1], int(parts[2].split(":")[1])
        seconds = b["real_time"] * TO_SECONDS[b.get("time_unit", "ns")]
        times.setdefault((workload, runner, jobs), []).append(seconds)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return medians, failed, data.get("context", {})


def fmt_time(s):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return "%.3g %s" % (s / scale, unit)
    return "%.3g ns" % (s / 1e-9)


def runners_in(medians):
    # Fixed-batch variants ("thread@b16") have a table of their own.
    names = sorted({r for (_, r, _) in medians if "@b" not in r})
    # Backends first, then peers; the loop last of all.
    return sorted(names, key=lambda r: (r.startswith("peer:"), r == LOOP, r))


def best_peer(medians, workload, jobs):
    peers = [(t, r) for (w, r, j), t in medians.items()
             if w == workload and j == jobs and r.startswith("peer:")]
    return min(peers) if peers else None


def table(medians):
    workloads = [w for w in WORKLOADS if any(k[0] == w for k in medians)]
    jobs_counts = sorted({j for (_, _, j) in medians})
    lines = ["| runner | jobs | " + " | ".join(workloads) + " |",
             "|---|---:|" + "---:|" * len(workloads)]
    for jobs in jobs_counts:
        for runner in runners_in(medians):
            cells, any_cell = [], False
            for w in workloads:
                t = medians.get((w, runner, jobs))
                best = best_peer(medians, w, jobs)
                if t is None:
                    cells.append("")
                    continue
                any_cell = True
                cells.append("%s (%.2fx)" % (fmt_time(t), t / best[0]) if best
                             else fmt_time(t))
            if any_cell:
                lines.append("| %s | %d | %s |" % (runner, jobs, " | ".join(cells)))
    lines.append("")
    lines.append("Median real time per call; in brackets the ratio to the fastest "
                 "peer (`peer:*`) with the same jobs (lower is better; the "
                 "sequential loop is a peer at jobs 1).")
    best_lines = []
    for jobs in jobs_counts:
        for w in workloads:
            b = best_peer(medians, w, jobs)
            if b:
                best_lines.append("%s@%d: %s" % (w, jobs, b[1]))
    lines.append("Fastest peers: " + ", ".join(best_lines) + ".")
    return "\n".join(lines)


def batch_rows(medians):
    """(workload, backend, jobs, auto seconds, (best fixed seconds, size),
    {size: seconds}) for every backend measured with fixed batch sizes."""
    fixed = {}
    for (w, r, j), t in medians.items():
        if "@b" in r:
            backend, size = r.split("@b")
            fixed.setdefault((w, backend, j), {})[int(size)] = t
    rows = []
    for (w, backend, j), sizes in sorted(fixed.items()):
        auto = medians.get((w, backend, j))
        if auto is None:
            continue
        best = min((t, b) for b, t in sizes.items())
        rows.append((w, backend, j, auto, best, sizes))
    return rows


def batch_table(medians):
    rows = batch_rows(medians)
    if not rows:
        return ""
    all_sizes = sorted({b for r in rows for b in r[5]})
    lines = ["| workload | backend | jobs | auto | " +
             " | ".join("b%d" % b for b in all_sizes) + " | auto / best |",
             "|---|---|---:|---:|" + "---:|" * len(all_sizes) + "---:|"]
    for (w, backend, j, auto, best, sizes) in rows:
        cells = [fmt_time(sizes[b]) if b in sizes else "" for b in all_sizes]
        lines.append("| %s | %s | %d | %s | %s | %.2fx (b%d) |" %
                     (w, backend, j, fmt_time(auto), " | ".join(cells),
                      auto / best[0], best[1]))
    lines.append("")
    lines.append("batch_size = 0 (auto: chunks sized from their measured time "
                 "while the call runs) against fixed batch sizes; the last "
                 "column is auto over the best fixed size.")
    return "\n".join(lines)


def targets(medians):
    """The issue's targets: (description, ratio, limit, ok) rows."""
    jobs_counts = sorted({j for (_, _, j) in medians})
    top = jobs_counts[-1] if jobs_counts else 1
    rows = []

    def get(w, r, j):
        return medians.get((w, r, j))

    def at_most(desc, num, den, limit):
        if num is not None and den is not None:
            rows.append((desc, num / den, "<= %.2f" % limit, num / den <= limit))

    def at_least(desc, num, den, limit):
        if num is not None and den is not None:
            rows.append((desc, num / den, ">= %.2f" % limit, num / den >= limit))

    at_most("thread tiny_1M / tbb_parallel_for (jobs %d)" % top,
            get("tiny_1M", "thread", top), get("tiny_1M", TBB_PEER, top), 1.05)
    at_least("thread tiny_1M speedup over the loop (jobs %d)" % top,
             get("tiny_1M", LOOP, 1), get("tiny_1M", "thread", top), 1.9)
    for jobs in jobs_counts:
        for w in WORKLOADS:
            at_most("tbb %s / tbb_parallel_for (jobs %d)" % (w, jobs),
                    get(w, "tbb", jobs), get(w, TBB_PEER, jobs), 1.05)
    for backend in ("thread", "tbb"):
        for w in ("sum_10k", "fib_38_33"):
            at_least("%s %s speedup over the loop (jobs %d)" % (backend, w, top),
                     get(w, LOOP, 1), get(w, backend, top), 1.9)
    # Results that cross processes: map's result array filled by workers.
    at_most("process tiny_1M / thread (jobs %d)" % top,
            get("tiny_1M", "process", top), get("tiny_1M", "thread", top), 1.5)
    at_most("thread latency_2 / tbb_parallel_for (jobs %d)" % top,
            get("latency_2", "thread", top), get("latency_2", TBB_PEER, top), 2.0)
    # map_reduce beside tbb::parallel_reduce and OpenMP reduction(+).
    for backend in ("thread", "tbb"):
        best = best_peer(medians, "reduce_10M", top)
        at_most("%s reduce_10M / best peer (%s, jobs %d)" %
                (backend, best[1] if best else "-", top),
                get("reduce_10M", backend, top), best[0] if best else None, 1.1)
    # batch_size = 0 (auto, from measured time) against the best fixed size.
    for (w, backend, j, auto, best, _) in batch_rows(medians):
        at_most("%s %s auto batch / best fixed (b%d, jobs %d)" %
                (backend, w, best[1], j), auto, best[0], 1.05)
    for backend in ("thread", "tbb", "process", "mpi"):
        at_most("%s linear_4k / tbb_parallel_for (jobs %d)" % (backend, top),
                get("linear_4k", backend, top), get("linear_4k", TBB_PEER, top),
                1.05)
    # Tracing on (Options::trace, the file written at the end of each call)
    # against off, the same runner otherwise.
    for backend in ("thread", "tbb", "process"):
        for w, limit in (("tiny_1M", 1.05), ("sum_10k", 1.01)):
            at_most("%s %s traced / untraced (jobs %d)" % (backend, w, top),
                    get(w + "_trace", backend, top), get(w, backend, top),
                    limit)
    lines = ["| target | measured | wanted | |", "|---|---:|---:|---|"]
    for desc, ratio, wanted, ok in rows:
        lines.append("| %s | %.3f | %s | %s |" % (desc, ratio, wanted,
                                                   "met" if ok else "MISSED"))
    return "\n".join(lines)


def plot(medians, out_path, fmt):
    """Speedup over the sequential loop per runner at the most jobs; beside
    it, apart, each runner's 2-task latency (a time, not a speedup)."""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        print("gnuplot not found (apt-get install gnuplot-nox): no plot",
              file=sys.stderr)
        return False
    jobs = max(j for (_, _, j) in medians)
    workloads = [w for w in WORKLOADS
                 if w != "latency_2" and (w, LOOP, 1) in medians and
                 any(k[0] == w and k[2] == jobs for k in medians)]
    runners = [r for r in runners_in(medians)
               if r != LOOP and any((w, r, jobs) in medians for w in workloads)]
    latency = [(r, medians[("latency_2", r, jobs)]) for r in runners_in(medians)
               if ("latency_2", r, jobs) in medians]
    if not workloads or not runners:
        print("nothing to plot (the sequential loop is needed)", file=sys.stderr)
        return False
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "speedup.dat")
        with open(data, "w") as f:
            f.write("workload " + " ".join('"%s"' % r for r in runners) + "\n")
            for w in workloads:
                base = medians[(w, LOOP, 1)]
                vals = []
                for r in runners:
                    t = medians.get((w, r, jobs))
                    vals.append("%.4f" % (base / t) if t else "NaN")
                f.write('"%s" %s\n' % (w, " ".join(vals)))
        lat = os.path.join(tmp, "latency.dat")
        with open(lat, "w") as f:
            for i, (r, t) in enumerate(latency):
                f.write('%d "%s" %.6g "%s"\n' %
                        (i, r, t * 1e6, fmt_time(t).replace(" ", "")))
        script = os.path.join(tmp, "plot.gp")
        terminal = ("pngcairo size 1300,600 noenhanced" if fmt == "png"
                    else "svg size 1300,600 noenhanced")
        latency_plot = ""
        if latency:
            latency_plot = """
set origin 0.7,0
set size 0.3,1
unset key
set title 'latency_2 (a call of 2 tiny tasks), jobs %d'
set ylabel 'microseconds per call (log scale; lower is better)'
set logscale y
set yrange [*:*]
set style fill solid 0.8 border -1
set boxwidth 0.7
set xtics rotate by 40 right
set xrange [-0.7:%f]
set rmargin 3
plot '%s' using 1:3:xtic(2) with boxes lc rgb '#5e81ac', \\
     '' using 1:($3*1.3):4 with labels font ',8'
""" % (jobs, len(latency) - 0.3, lat)
        with open(script, "w") as f:
            f.write("""set terminal %s
set output '%s'
set multiplot
set origin 0,0
set size %s,1
set title 'fanout backends and peers: speedup over a sequential loop, jobs = %d'
set ylabel 'speedup (higher is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key outside top center horizontal
set grid ytics
set yrange [0:*]
set xtics nomirror rotate by -30 left
set bmargin 7
plot for [c=2:%d] '%s' using c:xtic(1) title columnheader(c)
%sunset multiplot
""" % (terminal, out_path, "0.7" if latency else "1", jobs, len(runners) + 1,
                    data, latency_plot))
        rc = subprocess.call([gnuplot, script])
    return rc == 0 and os.path.exists(out_path)


def load_markdown(path):
    """{(workload, runner, jobs): seconds} from the first table of a
    fanout_benchmarks.md (or a README holding one): re-plots a run whose
    JSON is gone."""
    medians, workloads = {}, None
    units = dict(TO_SECONDS, **{"µs": 1e-6})
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("|"):
                if workloads and medians:
                    break
                continue
            if cells[:2] == ["runner", "jobs"] and workloads is None:
                workloads = cells[2:]
                continue
            if workloads is None or cells[0].startswith("---"):
                continue
            runner, jobs = cells[0], int(cells[1])
            for w, cell in zip(workloads, cells[2:]):
                if cell:
                    value, unit = cell.split()[:2]
                    medians[(w, runner, jobs)] = float(value) * units[unit]
    return medians


def main():
    args = parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    plot_path = os.path.join(args.out_dir, "fanout_speedup." + args.plot_format)
    if args.markdown:
        medians = load_markdown(args.markdown)
        if not plot(medians, plot_path, args.plot_format):
            return 1
        print("plot: " + plot_path)
        return 0
    json_path = args.json or os.path.join(args.out_dir, "fanout_benchmarks.json")
    rc = 0
    if not args.json:
        rc = run_suite(args, json_path)
    medians, failed, context = load(json_path)
    if not medians:
        print("no benchmark results in " + json_path, file=sys.stderr)
        return 1
    reps = "1 repetition" if args.quick else "%d repetitions" % args.repetitions
    header = ("fanout backends vs peers: %s CPUs at %s MHz, medians of %s" %
              (context.get("num_cpus", "?"), context.get("mhz_per_cpu", "?"), reps))
    parts = ["## " + header, table(medians)]
    batches = batch_table(medians)
    if batches:
        parts += ["### Batch sizes: auto against fixed", batches]
    parts += ["### Targets", targets(medians)]
    text = "\n\n".join(parts)
    print(text)
    with open(os.path.join(args.out_dir, "fanout_benchmarks.md"), "w") as f:
        f.write(text + "\n")
    if plot(medians, plot_path, args.plot_format):
        print("\nplot: " + plot_path)
    else:
        rc = rc or 1
    for f in failed:
        print("FAILED " + f, file=sys.stderr)
    if failed or rc:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
