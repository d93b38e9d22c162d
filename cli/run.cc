// fanout's command-line driver: runs a reference workload on a backend picked
// by name, and reports the answer, the backend, jobs, tasks and wall time.
//
//   ./bazelw run //cli:run -- --backend=thread
//   ./bazelw run //cli:run -- --backend=process --workload=fib --speedup
//   ./bazelw run //cli:run -- --list-backends
//
// Exit codes: 0 ok, 1 a task failed (or timed out), 2 bad usage,
// 130 interrupted (Ctrl+C / SIGTERM); in commands mode the number of
// commands that failed (101 for more than 100), as GNU parallel's.
//
// The flags and the main live here: --help lists the flags defined in this
// file, and cli/args.h parses the command line into them.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "cli/args.h"
#include "cli/driver.h"
#include "core/errors.h"

ABSL_FLAG(
    std::string, backend, "thread",
    "engine to run on: one of --list-backends. Example: --backend=process");
ABSL_FLAG(std::string, jobs, "-1",
          "workers, as joblib's n_jobs: -1 every usable CPU, -2 all but one, "
          "N exactly N; 0 is invalid. Example: --jobs=2");
ABSL_FLAG(
    std::string, workload, "sum",
    "sum (10000 tasks, task n = sum of i*n for i < 100000), fib (naive "
    "fib of 38..33), sleep (tasks that sleep, like I/O), noop (overhead only), "
    "pi (Monte Carlo: 1000 tasks of 100000 points, see --seed), dag (a "
    "fixed random graph of 2000 tasks, each waiting for up to 3 earlier "
    "ones, run on a pool; prints one checksum). Example: --workload=fib");
ABSL_FLAG(
    std::string, tasks, "",
    "number of tasks (default: sum 10000, fib 6, sleep 100, noop 1000000). "
    "Example: --tasks=500");
ABSL_FLAG(std::string, sleep_ms, "10",
          "milliseconds each sleep task sleeps, 0 to 2147483647. Example: "
          "--workload=sleep --sleep-ms=50");
ABSL_FLAG(
    std::string, batch_size, "0",
    "tasks handed to a worker at a time; 0 picks one from tasks and jobs. "
    "Example: --batch-size=1");
ABSL_FLAG(
    std::string, timeout_ms, "0",
    "fail the call if it runs longer than this many milliseconds (at most "
    "2147483647, about 24.8 days); 0 = none. "
    "Example: --timeout-ms=5000");
ABSL_FLAG(
    std::string, verbose, "0",
    "joblib-style progress lines on stderr: 0 none, 1 few ... 10 many, 50 all; "
    "in commands mode, 1 or more: a line saying what holds the commands (the "
    "run's cgroup, or why there is none). Example: --verbose=10");
ABSL_FLAG(
    bool, speedup, false,
    "also run the workload on the sequential backend and print the speedup. "
    "Example: --backend=thread --speedup");
ABSL_FLAG(std::string, seed, "1",
          "the seed of --workload=pi: task i draws from task_rng(seed, i), so "
          "the answer is the same on every backend and --jobs. Example: "
          "--workload=pi --seed=7");
ABSL_FLAG(bool, reduce, false,
          "compute the sum workload with map_reduce (no vector of results; "
          "the same answer). Example: --workload=sum --reduce");
ABSL_FLAG(std::string, stream, "",
          "print each task's result on its own line as it comes: ordered "
          "(task order, through imap) or unordered (index and result, "
          "through imap_unordered), then the answer as usual. Example: "
          "--workload=fib --stream=unordered");
ABSL_FLAG(std::string, inputs, "",
          "a file whose lines are the tasks' inputs, one integer n a line "
          "(- for stdin), read as they arrive and run through imap over the "
          "lines; with --workload=sum, fib or noop. Example: seq 0 9999 | "
          "run --workload=sum --inputs=-");
ABSL_FLAG(std::string, checkpoint, "",
          "append each finished task's result to this file (about once a "
          "second); run the same command again after Ctrl+C, a crash or "
          "kill -9 and only the tasks not in it run. The file is tied to the "
          "workload, --tasks and --seed; delete it to start over. "
          "Example: --workload=sum --checkpoint=sum.ckpt");
ABSL_FLAG(std::string, trace, "",
          "write a timeline of the run to this file, in Chrome's trace-event "
          "JSON (open it in chrome://tracing or ui.perfetto.dev): a row per "
          "worker (thread, forked pid, mpi rank; in commands mode a row per "
          "slot), a span per chunk of tasks (per task when tasks take 100 "
          "us or more), forks, deaths, retries, the copy of results. Written "
          "when a run ends, Ctrl+C included. Example: --backend=process "
          "--trace=run.json");
ABSL_FLAG(bool, trace_summary, false,
          "after each run, print on stderr where its time went: each "
          "worker's busy fraction, the time to start, running tasks, "
          "waiting for the last task and moving results, the five slowest "
          "tasks and the overhead per task. Example: --workload=fib "
          "--trace-summary");
ABSL_FLAG(std::string, compare, "",
          "run the workload on each of these backends in turn (all, or a list "
          "such as thread,process), check the answers agree, and print a table "
          "of wall time, speedup against sequential and tasks/s. "
          "Example: --compare=all --workload=fib");
ABSL_FLAG(std::string, format, "text",
          "text, or json: one JSON object on stdout (answer, backend, jobs, "
          "tasks, failed_tasks, wall_seconds; rows for --compare) and nothing "
          "else there. "
          "Example: --format=json");
ABSL_FLAG(bool, progress, false,
          "draw a progress bar with rate and ETA on stderr when it is a "
          "terminal (nothing otherwise); in commands mode a line of commands "
          "done, failed and the ETA. Example: --workload=sleep --progress");
ABSL_FLAG(
    std::string, commands, "",
    "run each line of this file (- for stdin) as a shell command, --jobs "
    "at a time; each command's output is kept together, a summary of exit "
    "codes goes to stderr, and the exit code is the number of commands that "
    "failed (101 for more than 100; 0 when all succeeded), as GNU "
    "parallel's. Example: --commands=jobs.txt --jobs=4");
// Commands mode, as GNU parallel spells it (README: "GNU parallel → fanout").
ABSL_FLAG(bool, keep_order, false,
          "commands mode (-k): print each command's output in input order, "
          "not as they finish. Example: -k echo ::: a b c");
ABSL_FLAG(bool, line_buffer, false,
          "commands mode: print whole lines of output as they come, "
          "interleaved between commands. Example: --line-buffer "
          "--commands=jobs.txt");
ABSL_FLAG(bool, tag, false,
          "commands mode: prefix each output line with the command's "
          "arguments and a tab. Example: --tag wc -l ::: a.txt b.txt");
ABSL_FLAG(std::string, results, "",
          "commands mode: keep each command's cmd, stdout, stderr and exitval "
          "in DIR/<job number>/. Example: --results=out");
ABSL_FLAG(std::string, joblog, "",
          "commands mode: GNU parallel's job log, a row per finished command "
          "(Seq Host Starttime JobRuntime Send Receive Exitval Signal "
          "Command). Example: --joblog=run.log");
ABSL_FLAG(bool, resume, false,
          "commands mode: skip the commands already in --joblog. "
          "Example: --joblog=run.log --resume");
ABSL_FLAG(bool, resume_failed, false,
          "commands mode: skip the commands that succeeded in --joblog, rerun "
          "the ones that failed. Example: --joblog=run.log --resume-failed");
ABSL_FLAG(
    std::string, retries, "0",
    "two meanings, by mode. Workload mode: a task that throws runs "
    "again up to N more times (N+1 attempts in all), 0 to 1000000; a "
    "worker that dies is not retried; not with --reduce. Commands mode, as "
    "GNU parallel: "
    "a failing command runs up to N times in all (0 and 1: once), 0 "
    "to 1000. Example: --retries=3");
ABSL_FLAG(std::string, halt, "never",
          "commands mode: stop early, as GNU parallel's --halt: now|soon,"
          "fail|success|done=N or N%; now kills running commands, soon lets "
          "them finish. Example: --halt=now,fail=1");
ABSL_FLAG(std::string, timeout, "0",
          "commands mode: kill a command (its whole process group) after this "
          "many seconds; 0 = none. Example: --timeout=2.5");
ABSL_FLAG(std::string, delay, "0",
          "commands mode: seconds between the starts of two commands. "
          "Example: --delay=0.5");
ABSL_FLAG(std::string, colsep, "",
          "commands mode: split each input line into columns at this regular "
          "expression (ECMAScript), {1} {2} ... for the columns. Example: "
          "--colsep=, echo {2} {1} :::: pairs.csv");
ABSL_FLAG(bool, null, false,
          "commands mode (-0): items of stdin end with a NUL byte, not a "
          "newline. Example: find . -print0 | run -0 wc -c");
ABSL_FLAG(bool, pipe, false,
          "commands mode: cut stdin into blocks of whole records (--block, "
          "--recend, -N), each the stdin of one command. Example: "
          "cat big.log | run --pipe --block=10M grep -c ERROR");
ABSL_FLAG(std::string, block, "1M",
          "commands mode, with --pipe: a block's size in bytes, or with K, "
          "M, G (binary units); a record longer than it is a block of its "
          "own. Example: --pipe --block=10M");
ABSL_FLAG(std::string, recend, "\\n",
          "commands mode, with --pipe: what ends a record (\\n, \\t, \\0 "
          "and \\\\ spell a newline, tab, NUL and backslash); no block "
          "cuts one. Example: --pipe --recend='\\0'");
ABSL_FLAG(
    std::string, records, "0",
    "commands mode, with --pipe (-N): this many records a block, "
    "whatever their size; 0 = blocks by --block. Example: --pipe -N 1000");
ABSL_FLAG(bool, dry_run, false,
          "commands mode: print the commands that would run, run none. "
          "Example: --dry-run gzip ::: a b");
ABSL_FLAG(bool, list_backends, false,
          "list the backends this build has, one line on each, and exit. "
          "Example: --list-backends");
ABSL_FLAG(std::string, fail_task, "",
          "fault injection: make this task fail (see --fail-mode). Example: "
          "--fail-task=17 --fail-mode=segv");
ABSL_FLAG(std::string, fail_attempts, "0",
          "fault injection: only the first K attempts of --fail-task fail "
          "and later ones succeed (attempts are counted across worker "
          "processes); 0 = every attempt fails. Example: --fail-task=17 "
          "--fail-attempts=1 --retries=1");
ABSL_FLAG(std::string, errors, "fail-fast",
          "workload mode: fail-fast stops at the first failed task and "
          "prints no answer; collect runs every task, prints one line per "
          "failed task on stderr and an answer from the tasks that "
          "succeeded, marked '(partial: N of M tasks failed)' (a failed "
          "fib is '-'), and exits 1 if any failed. Not with --reduce, "
          "--stream, --compare or --speedup. Example: --errors=collect "
          "--fail-task=17");
ABSL_FLAG(
    std::string, fail_mode, "throw",
    "how --fail-task fails: throw (an exception), segv (SIGSEGV), abort "
    "(SIGABRT), exit (_exit(3)), hang (sleeps until killed or timed out), "
    "oom (allocates and touches memory without bound; needs "
    "--worker-memory). "
    "On in-process backends segv/abort/exit end the whole program, as they "
    "would in your own code: surviving them is what --backend=process is for. "
    "Example: --backend=process --fail-task=3 --fail-mode=abort");
ABSL_FLAG(std::string, task_timeout_ms, "0",
          "process backend: a task running longer than this many milliseconds "
          "(0 to 2147483647) has its worker killed and fails; the call goes "
          "on with a new worker; 0 = none. Example: --backend=process "
          "--task-timeout-ms=2000");
ABSL_FLAG(std::string, worker_memory, "0",
          "process backend: memory each worker may allocate beyond what it "
          "starts with: bytes, or a number with K, M, G or T (256M, 1.5G); a "
          "task that needs more fails; 0 = no limit. Example: "
          "--backend=process --worker-memory=256M");

namespace {

constexpr char kUsage[] =
    "fanout: run many independent tasks on every core, on a backend picked by "
    "name.\n"
    "\n"
    "Usage: run [--backend=NAME] [--jobs=N] "
    "[--workload=sum|fib|sleep|noop|pi|dag] "
    "[flags]\n"
    "       run [flags] [--] [COMMAND TEMPLATE] {::: ARGS | :::: FILES}...\n"
    "\n"
    "Examples:\n"
    "  run --backend=thread                     # the reference sum on all "
    "cores\n"
    "  run --backend=process --workload=fib     # fib 38..33 in forked "
    "workers\n"
    "  run --workload=sum --jobs=2 --speedup    # also run sequentially, print "
    "speedup\n"
    "  run --workload=sleep --tasks=40 --verbose=10\n"
    "  run --backend=process --fail-task=17 --fail-mode=segv   # see a crash "
    "reported\n"
    "  run --fail-task=17 --fail-attempts=1 --retries=1   # a flaky task, "
    "retried\n"
    "  run --compare=all --workload=fib         # every backend side by side\n"
    "  run --workload=dag --backend=process     # a graph of dependent tasks\n"
    "  seq 0 9999 | run --workload=sum --inputs=-   # inputs as they arrive\n"
    "  run --format=json                        # one JSON object, for "
    "scripts\n"
    "  run --commands=jobs.txt --jobs=4         # shell commands, 4 at a time\n"
    "  run -k gzip -9 {} ::: *.txt              # GNU parallel's forms\n"
    "  ls *.txt | run -- wc -l {}               # arguments from stdin lines\n"
    "  run --list-backends\n"
    "\n"
    "Output: the answer alone on the first line of stdout, then backend, "
    "jobs,\n"
    "tasks and wall time. Exit codes: 0 ok, 1 a task failed or timed out,\n"
    "2 bad usage, 130 interrupted; commands mode: the number of commands\n"
    "that failed (101 for more than 100).";

// Every usage error: one `run:` line on stderr and exit 2.
[[noreturn]] void UsageFail(const std::string& message) {
  std::fprintf(stderr, "run: %s\n", message.c_str());
  std::exit(2);
}

// The flags, checked; exits 2 on a usage error.
fanout::cli::Request CheckedRequest(const fanout::cli::Args& args) {
  try {
    return fanout::cli::ParseRequest({
        .backend = absl::GetFlag(FLAGS_backend),
        .jobs = absl::GetFlag(FLAGS_jobs),
        .workload = absl::GetFlag(FLAGS_workload),
        .tasks = absl::GetFlag(FLAGS_tasks),
        .sleep_ms = absl::GetFlag(FLAGS_sleep_ms),
        .batch_size = absl::GetFlag(FLAGS_batch_size),
        .timeout_ms = absl::GetFlag(FLAGS_timeout_ms),
        .verbose = absl::GetFlag(FLAGS_verbose),
        .speedup = absl::GetFlag(FLAGS_speedup),
        .reduce = absl::GetFlag(FLAGS_reduce),
        .stream = absl::GetFlag(FLAGS_stream),
        .checkpoint = absl::GetFlag(FLAGS_checkpoint),
        .trace = absl::GetFlag(FLAGS_trace),
        .trace_summary = absl::GetFlag(FLAGS_trace_summary),
        .inputs = absl::GetFlag(FLAGS_inputs),
        .seed = absl::GetFlag(FLAGS_seed),
        .fail_task = absl::GetFlag(FLAGS_fail_task),
        .fail_mode = absl::GetFlag(FLAGS_fail_mode),
        .task_timeout_ms = absl::GetFlag(FLAGS_task_timeout_ms),
        .worker_memory = absl::GetFlag(FLAGS_worker_memory),
        .fail_attempts = absl::GetFlag(FLAGS_fail_attempts),
        .errors = absl::GetFlag(FLAGS_errors),
        .compare = absl::GetFlag(FLAGS_compare),
        .format = absl::GetFlag(FLAGS_format),
        .progress = absl::GetFlag(FLAGS_progress),
        .commands = absl::GetFlag(FLAGS_commands),
        .keep_order = absl::GetFlag(FLAGS_keep_order),
        .line_buffer = absl::GetFlag(FLAGS_line_buffer),
        .tag = absl::GetFlag(FLAGS_tag),
        .results = absl::GetFlag(FLAGS_results),
        .joblog = absl::GetFlag(FLAGS_joblog),
        .resume = absl::GetFlag(FLAGS_resume),
        .resume_failed = absl::GetFlag(FLAGS_resume_failed),
        .retries = absl::GetFlag(FLAGS_retries),
        .halt = absl::GetFlag(FLAGS_halt),
        .timeout = absl::GetFlag(FLAGS_timeout),
        .delay = absl::GetFlag(FLAGS_delay),
        .dry_run = absl::GetFlag(FLAGS_dry_run),
        .colsep = absl::GetFlag(FLAGS_colsep),
        .null = absl::GetFlag(FLAGS_null),
        .pipe = absl::GetFlag(FLAGS_pipe),
        .block = absl::GetFlag(FLAGS_block),
        .recend = absl::GetFlag(FLAGS_recend),
        .records = absl::GetFlag(FLAGS_records),
        .positional = args.positional,
        .dashes = args.dashes,
        .stdin_is_terminal = isatty(STDIN_FILENO) != 0,
        .given = args.given,
    });
  } catch (const fanout::UsageError& e) {
    UsageFail(e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Our own parser, not absl::ParseCommandLine, which prints `ERROR:` and
  // exits 1 by itself; help exits 0, as scripts expect.
  fanout::cli::Args args;
  try {
    args = fanout::cli::ParseArgs(
        std::vector<std::string>(argv + 1, argv + argc), "cli/run.cc");
  } catch (const fanout::UsageError& e) {
    UsageFail(e.what());
  }
  if (args.help) {
    fanout::cli::PrintHelp(stdout, "run", kUsage, "cli/run.cc");
    return 0;
  }
  if (args.version) {
    std::printf("run (fanout)\n");
    return 0;
  }
  if (absl::GetFlag(FLAGS_list_backends)) {
    fanout::cli::ListBackends(stdout);
    return 0;
  }
  const fanout::cli::Request request = CheckedRequest(args);
  if (args.only_check_args) return 0;
  return fanout::cli::Run(request, stdout, stderr, isatty(STDERR_FILENO) != 0);
}
