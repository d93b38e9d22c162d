#!/usr/bin/python3
"""Draws a fanout trace (Options::trace, run --trace=FILE) as a timeline PNG.

  tools/trace_timeline.py run.json --output=docs/trace_timeline.png
  ./bazelw run //tools:trace_timeline -- $PWD/run.json --output=$PWD/t.png

One row per worker (a thread, a forked process: a replacement is a row of
its own, an mpi rank's thread), the caller's row on top; every span as a box
(successive chunks in two shades of blue, so their edges show; a retried
attempt orange, a span cut by its worker's death or a stop red); the
caller's own spans (the call in grey, forks purple, the copy of results
green, checkpoint writes, stream windows and mpi exchanges teal); instant
events (a death, a replacement, a full buffer) as red triangles with their
names. Time in milliseconds from the first event shown. --call=N draws only
the N-th call of a file that holds several (1 is the first).

chrome://tracing and ui.perfetto.dev open the same file interactively; this
is the picture for a README or a bug report, made with gnuplot (gnuplot-nox)
and the standard library only. Prints one line: rows, spans and events drawn.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SPAN_CATS = ("task", "chunk")
CALLER_COLORS = {"call": "#d9d9d9", "fork": "#8e44ad", "move": "#27ae60"}
OTHER_CALLER_COLOR = "#16a085"
SHADES = ("#2c7fb8", "#7fcdbb")
RETRY_COLOR = "#f39c12"
BROKEN_COLOR = "#e74c3c"


def natural(text):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def load(path):
    with open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    process, thread = {}, {}
    for e in events:
        if e.get("ph") != "M":
            continue
        if e["name"] == "process_name":
            process[e["pid"]] = e["args"]["name"]
        elif e["name"] == "thread_name":
            thread[(e["pid"], e["tid"])] = e["args"]["name"]
    return [e for e in events if e.get("ph") in ("X", "i")], process, thread


def pick_call(events, n):
    """The events inside the n-th call span (1-based), or all when n is 0."""
    if n == 0:
        return events
    calls = sorted((e for e in events if e.get("cat") == "call"),
                   key=lambda e: e["ts"])
    if not 1 <= n <= len(calls):
        sys.exit("trace_timeline: the file holds %d calls, not %d" %
                 (len(calls), n))
    c = calls[n - 1]
    lo, hi = c["ts"], c["ts"] + c["dur"]
    return [e for e in events if lo <= e["ts"] <= hi + 1]


def rows_of(events, process, thread):
    """[(pid, tid)] top to bottom and their labels."""
    keys = {(e["pid"], e["tid"]) for e in events}
    callers = {e["pid"] for e in events if e.get("cat") == "call"}
    first = {}
    for e in events:
        k = (e["pid"], e["tid"])
        first[k] = min(first.get(k, e["ts"]), e["ts"])
    tracks_per_pid = {}
    for pid, _ in keys:
        tracks_per_pid[pid] = tracks_per_pid.get(pid, 0) + 1

    def label(k):
        pid, tid = k
        t = thread.get(k, "tid %d" % tid)
        if pid in callers and tid == 0:
            return "caller (pid %d)" % pid
        if pid in callers:
            return t
        p = process.get(pid, "pid %d" % pid)
        return p if tracks_per_pid[pid] == 1 or t in p else p + ": " + t

    def order(k):
        pid, tid = k
        caller = pid in callers and tid == 0
        return (not caller, natural(thread.get(k, "")), first[k])

    ordered = sorted(keys, key=order)
    return ordered, {k: label(k) for k in ordered}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("trace")
    p.add_argument("--output", required=True, help="the PNG to write")
    p.add_argument("--call", type=int, default=0,
                   help="draw only this call (1 = the first); 0: all")
    p.add_argument("--title", default="")
    p.add_argument("--width", type=int, default=1200)
    args = p.parse_args()
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        sys.exit("trace_timeline: gnuplot not found (apt-get install "
                 "gnuplot-nox)")
    events, process, thread = load(args.trace)
    events = pick_call(events, args.call)
    if not events:
        sys.exit("trace_timeline: no spans or events in " + args.trace)
    rows, labels = rows_of(events, process, thread)
    y = {k: len(rows) - 1 - i for i, k in enumerate(rows)}  # top row first
    t0 = min(e["ts"] for e in events)
    t1 = max(e["ts"] + e.get("dur", 0) for e in events)
    ms = lambda ts: (ts - t0) / 1000.0  # noqa: E731

    spans, marks = [], []
    shade = {}
    for e in sorted(events, key=lambda e: e["ts"]):
        k = (e["pid"], e["tid"])
        if e["ph"] == "i":
            marks.append((ms(e["ts"]), y[k], e["name"]))
            continue
        cat = e.get("cat", "")
        a = e.get("args", {})
        if cat in SPAN_CATS:
            shade[k] = 1 - shade.get(k, 1)
            color = SHADES[shade[k]]
            if a.get("attempt", 1) > 1:
                color = RETRY_COLOR
            if a.get("worker_died") or a.get("unfinished"):
                color = BROKEN_COLOR
            half = 0.35
        else:
            color = CALLER_COLORS.get(cat, OTHER_CALLER_COLOR)
            half = 0.12 if cat == "call" else 0.3
        x0, x1 = ms(e["ts"]), ms(e["ts"] + e.get("dur", 0))
        spans.append((x0, x1, y[k] - half, y[k] + half, color))
    # The call's grey bar goes under the caller's other spans.
    spans.sort(key=lambda s: s[4] != CALLER_COLORS["call"])

    height = 220 + 40 * len(rows)
    with tempfile.TemporaryDirectory() as tmp:
        span_file = os.path.join(tmp, "spans.dat")
        with open(span_file, "w") as f:
            for x0, x1, lo, hi, color in spans:
                f.write("%.6f %.3f %.6f %.6f %.3f %.3f %d\n" %
                        ((x0 + x1) / 2, (lo + hi) / 2, x0, x1, lo, hi,
                         int(color[1:], 16)))
        mark_file = os.path.join(tmp, "marks.dat")
        with open(mark_file, "w") as f:
            for x, row, name in marks:
                text = name if len(name) <= 60 else name[:57] + "..."
                f.write('%.6f %.3f "%s"\n' % (x, row + 0.45,
                                              text.replace('"', "'")))
        calls = [e["name"] for e in events if e.get("cat") == "call"]
        title = args.title or (
            "%s: %s" % (os.path.basename(args.trace),
                        calls[0] if len(calls) == 1 else
                        "%d calls" % len(calls)))
        ytics = ", ".join('"%s" %d' % (labels[k].replace('"', "'"), y[k])
                          for k in rows)
        key = [("chunk of tasks (alternate shades)", SHADES[0]),
               ("a retried attempt", RETRY_COLOR),
               ("cut by a death or a stop", BROKEN_COLOR),
               ("fork", CALLER_COLORS["fork"]),
               ("copy of results", CALLER_COLORS["move"]),
               ("the call", CALLER_COLORS["call"])]
        legend = ", ".join(
            "NaN with boxes fs solid lc rgb '%s' title '%s'" % (c, t)
            for t, c in key)
        plots = ["'%s' using 1:2:3:4:5:6:7 with boxxyerror fs solid 1.0 "
                 "noborder lc rgb variable notitle" % span_file]
        if marks:
            plots.append("'%s' using 1:($2-0.1) with points pt 11 ps 1.6 "
                         "lc rgb '%s' title 'event'" % (mark_file,
                                                        BROKEN_COLOR))
            plots.append("'%s' using 1:2:3 with labels left offset 0.6,0 "
                         "font ',9' notitle" % mark_file)
        plots.append(legend)
        script = os.path.join(tmp, "timeline.gp")
        with open(script, "w") as f:
            f.write("""set terminal pngcairo size %d,%d noenhanced
set output '%s'
set title "%s"
set xlabel 'time (ms)'
set xrange [0:%.6f]
set yrange [-0.7:%.1f]
set ytics (%s)
set ytics nomirror
set grid xtics
set key below horizontal
set style fill solid 1.0 noborder
plot %s
""" % (args.width, height, args.output, title.replace('"', "'"),
                ms(t1) * 1.02, len(rows) - 0.2, ytics, ", ".join(plots)))
        rc = subprocess.call([gnuplot, script])
    if rc != 0 or not os.path.exists(args.output):
        sys.exit("trace_timeline: gnuplot failed")
    print("trace_timeline: %d rows, %d spans, %d events -> %s" %
          (len(rows), len(spans), len(marks), args.output))


if __name__ == "__main__":
    main()
