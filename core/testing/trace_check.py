#!/usr/bin/python3
"""Checks a fanout trace file (Options::trace) the way a test needs it.

  trace_check.py FILE --tasks=N [--attempts=7:2,9:3] [--min-workers=K]
                 [--workers=K] [--deaths=D] [--replacements=R] [--calls=C]
                 [--unfinished] [--notes=CAT,...]

The file must parse with Python's json module (so chrome://tracing and
Perfetto can read it). Then, over every call in it:
  - each task index in [0, N) is covered by exactly as many task/chunk spans
    as it had attempts (1 unless --attempts says otherwise), and every span's
    attempt numbers its first task's run;
  - the rows holding spans (a row: pid and tid) number at least --min-workers
    (or exactly --workers), each named by a thread_name metadata event;
  - --deaths / --replacements: that many "death" events and forks replacing
    a pid; --unfinished: some span was cut short by a stop (Ctrl+C);
  - --calls: that many call spans (each task then once per attempt in each); --notes: an event of each category.
--partial (a stopped call ran some tasks): each task is covered at most as
often as wanted, and some are covered. --unfinished: and a span was cut
short by the stop (a killed worker's).
Prints one line saying what it found; exits 1 naming the first mismatch.
"""

import argparse
import collections
import json
import sys


def fail(why):
    print("trace_check: " + why, file=sys.stderr)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--tasks", type=int, required=True)
    p.add_argument("--attempts", default="")
    p.add_argument("--min-workers", type=int, default=1)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--deaths", type=int, default=-1)
    p.add_argument("--replacements", type=int, default=-1)
    p.add_argument("--calls", type=int, default=1)
    p.add_argument("--unfinished", action="store_true")
    p.add_argument("--partial", action="store_true")
    p.add_argument("--notes", default="")
    p.add_argument("--per-task-after-first", action="store_true")
    a = p.parse_args()

    with open(a.file) as f:
        try:
            data = json.load(f)
        except ValueError as e:
            fail("%s is not JSON: %s" % (a.file, e))
    events = data.get("traceEvents")
    if not isinstance(events, list):
        fail("no traceEvents list")

    want = collections.Counter()
    for i in range(a.tasks):
        want[i] = 1
    for item in filter(None, a.attempts.split(",")):
        i, n = item.split(":")
        want[int(i)] = int(n)

    names = {}
    covered = collections.Counter()
    runs = collections.defaultdict(list)  # task -> attempts seen
    rows = set()
    spans_of = collections.defaultdict(list)  # row -> (ts, tasks)
    calls = 0
    cats = collections.Counter()
    unfinished = 0
    replacements = 0
    for e in events:
        ph = e.get("ph")
        cat = e.get("cat", "")
        cats[cat] += 1
        if ph == "M" and e.get("name") == "thread_name":
            names[(e["pid"], e["tid"])] = e["args"]["name"]
            continue
        if cat == "call":
            calls += 1
            continue
        if cat == "fork" and "replaces_pid" in e.get("args", {}):
            replacements += 1
        if cat not in ("task", "chunk"):
            continue
        if ph != "X" or "dur" not in e or e["dur"] < 0:
            fail("span %r is not a complete event with a duration" % e)
        args = e["args"]
        first, end, attempt = args["first"], args["end"], args["attempt"]
        if not 0 <= first < end <= a.tasks:
            fail("span %r: tasks outside [0, %d)" % (e, a.tasks))
        if args.get("unfinished"):
            unfinished += 1
        rows.add((e["pid"], e["tid"]))
        spans_of[(e["pid"], e["tid"])].append((e["ts"], end - first))
        runs[first].append(attempt)
        for i in range(first, end):
            covered[i] += 1
            if i != first:
                runs[i].append(1)

    if calls != a.calls:
        fail("%d call spans, wanted %d" % (calls, a.calls))
    if a.partial:
        for i in range(a.tasks):
            if covered[i] > want[i]:
                fail("task %d is covered by %d spans, wanted at most %d" %
                     (i, covered[i], want[i]))
        if not covered:
            fail("no span covers any task")
    else:
        for i in range(a.tasks):
            if covered[i] != want[i] * a.calls:
                fail("task %d is covered by %d spans, wanted %d (one per "
                     "attempt of each call)" %
                     (i, covered[i], want[i] * a.calls))
            if sorted(runs[i]) != sorted(list(range(1, want[i] + 1)) * a.calls):
                fail("task %d: attempts %s, wanted 1..%d" %
                     (i, sorted(runs[i]), want[i]))
    if a.unfinished and unfinished == 0:
        fail("no span was cut short by the stop")
    for row in rows:
        if row not in names:
            fail("row %s holds spans but has no thread_name" % (row,))
    if len(rows) < a.min_workers:
        fail("%d rows with spans, wanted at least %d" % (len(rows), a.min_workers))
    if a.workers and len(rows) != a.workers:
        fail("%d rows with spans, wanted %d" % (len(rows), a.workers))
    if a.deaths >= 0 and cats["death"] != a.deaths:
        fail("%d death events, wanted %d" % (cats["death"], a.deaths))
    if a.replacements >= 0 and replacements != a.replacements:
        fail("%d replacement forks, wanted %d" % (replacements, a.replacements))
    if a.per_task_after_first:
        for row, spans in spans_of.items():
            later = [n for _, n in sorted(spans)[1:] if n != 1]
            if later:
                fail("row %s: a span of %d tasks after its first chunk" %
                     (names.get(row, row), later[0]))
    for cat in filter(None, a.notes.split(",")):
        if cats[cat] == 0:
            fail("no %r event" % cat)
    print("trace_check: ok: %d events, %d rows (%s), %d tasks" %
          (len(events), len(rows),
           ", ".join(sorted(names[r] for r in rows)), a.tasks))


if __name__ == "__main__":
    main()
