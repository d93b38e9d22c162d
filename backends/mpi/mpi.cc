// The mpi backend: SPMD over Open MPI ranks (see mpi.h for the user's view).
//
// Every rank makes the same sequence of calls. In one call:
// - rank 0 owns the task counter. Its calling thread only schedules: it
//   answers chunk requests from the other ranks (polling MPI: a few dozen
//   polls after each event, then sleeps backing off from 20 µs to 500 µs,
//   so it costs almost no CPU),
//   while `jobs` threads of rank 0 take chunks off the same atomic counter.
// - every other rank runs `jobs` compute threads fed from a local queue; its
//   calling thread asks rank 0 for the next chunk while the current ones run
//   (one chunk of read-ahead, declined by rank 0 near the end of the job so
//   no rank hoards work that an idle rank could do).
// - when the counter is exhausted (or a task failed under fail-fast, or a
//   rank was cancelled) rank 0 answers "done"; then every rank encodes the
//   results of the tasks it ran with the codec (a plain copy for trivially
//   copyable results) plus its failures, and one MPI_Allgatherv hands every
//   rank every other rank's results, which it decodes into place. Every rank
//   returns the same results and the same failures (worker "rank N").
// Only the calling thread talks MPI (MPI_THREAD_SERIALIZED), one call at a
// time per process. MPI errors are returned on fanout's communicator and
// thrown as fanout::Error; a rank that dies is seen by mpirun, which ends the
// job. Ranks that make different calls are caught (call number and task
// count travel with every message) and the job is aborted with a message.
#include "backends/mpi/mpi.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/executor.h"

namespace fanout::mpi {
namespace {

constexpr int kTagRequest = 101;
constexpr int kTagReply = 102;
constexpr std::uint64_t kDone = UINT64_MAX;        // reply: no more chunks
constexpr std::uint64_t kNotNow = UINT64_MAX - 1;  // reply: ask when idle
constexpr std::uint64_t kFlagFailed = 1;  // request: a task failed (fail-fast)
constexpr std::uint64_t kFlagCancelled = 2;  // request: this rank was cancelled

// Set after an MPI call failed: the world is unusable, and the rank must not
// wait in MPI_Finalize for peers that may be gone.
std::atomic<bool> g_broken{false};

World* g_world = nullptr;  // set once by world()

void FinalizeAtExit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized != 0 || g_broken.load()) return;
  if (g_world != nullptr && g_world->comm != MPI_COMM_NULL) {
    MPI_Comm_free(&g_world->comm);
  }
  MPI_Finalize();
}

std::string ErrorString(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) {
    return "MPI error " + std::to_string(rc);
  }
  return std::string(text, len);
}

void Check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  g_broken.store(true);
  throw Error(std::string("mpi backend: ") + what + " failed: " +
              ErrorString(rc) + " (a rank may have died; mpirun ends the job)");
}

World Start() {
  World w;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized != 0) throw Error("mpi backend: MPI was already finalized");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized == 0) {
    if (!under_launcher()) return w;  // a lone process: one rank, no MPI
    int provided = 0;
    const auto start = std::chrono::steady_clock::now();
    const int rc =
        MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) {
      throw Error("mpi backend: MPI_Init_thread failed: " + ErrorString(rc));
    }
    w.init_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    std::atexit(FinalizeAtExit);
  }
  w.active = true;
  Check(MPI_Comm_dup(MPI_COMM_WORLD, &w.comm), "MPI_Comm_dup");
  Check(MPI_Comm_set_errhandler(w.comm, MPI_ERRORS_RETURN),
        "MPI_Comm_set_errhandler");
  Check(MPI_Comm_rank(w.comm, &w.rank), "MPI_Comm_rank");
  Check(MPI_Comm_size(w.comm, &w.size), "MPI_Comm_size");
  return w;
}

// ---------------------------------------------------------------------------
// Bytes: varints, length-prefixed strings.

void PutVarint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutBytes(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out.append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  std::uint64_t Varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const auto byte = static_cast<unsigned char>(Take(1)[0]);
      v |= std::uint64_t(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return v;
    }
    throw Error("mpi backend: corrupt result message (bad varint)");
  }
  std::string_view Bytes() { return Take(Varint()); }
  std::string_view Take(std::size_t n) {
    if (n > s_.size() - pos_) {
      throw Error("mpi backend: corrupt result message (truncated)");
    }
    std::string_view out = s_.substr(pos_, n);
    pos_ += n;
    return out;
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

// ---------------------------------------------------------------------------
// One rank's part of one call.

struct Chunk {
  std::size_t begin = 0;
  std::size_t end = 0;
};

class RankRun {
 public:
  RankRun(const Job& job, const RunOptions& options, int rank)
      : job(job), options(options), worker("rank " + std::to_string(rank)) {}

  // True when this rank should take no new chunk (fail-fast or cancelled).
  bool CheckStop() {
    if (options.stop->stop_requested() &&
        !cancelled.load(std::memory_order_relaxed)) {
      cancelled.store(true);
      stop.store(true);
      std::lock_guard<std::mutex> lock(mu);
      work_cv.notify_all();
      comm_cv.notify_all();
    }
    return stop.load(std::memory_order_relaxed);
  }

  // Runs one chunk on the calling thread and records what ran.
  void RunChunk(Chunk c) {
    TaskFailure failure;
    std::size_t begin = c.begin;
    std::size_t attempted_end = c.end;
    while (begin < c.end) {
      const std::size_t ok = job.run_range(job.ctx, begin, c.end, &failure);
      const std::size_t finished = ok + (begin + ok < c.end ? 1 : 0);
      if (options.progress != nullptr) {
        options.progress->fetch_add(finished, std::memory_order_relaxed);
      }
      done.fetch_add(finished, std::memory_order_relaxed);
      if (begin + ok == c.end) break;
      const std::size_t failed = begin + ok;
      {
        std::lock_guard<std::mutex> lock(mu);
        failures.push_back(
            internal::task_error(failed, "mpi", worker, std::move(failure)));
      }
      failure = TaskFailure();
      if (options.errors == ErrorPolicy::kFailFast) {
        attempted_end = failed + 1;
        failed_fast.store(true);
        stop.store(true);
        std::lock_guard<std::mutex> lock(mu);
        work_cv.notify_all();
        comm_cv.notify_all();
        break;
      }
      begin = failed + 1;
    }
    std::lock_guard<std::mutex> lock(mu);
    ranges.push_back({c.begin, attempted_end});
  }

  // A compute thread: chunks from `take` until it has none or the rank stops.
  template <class Take>
  void ComputeLoop(Take take) {
    {
      internal::InTaskScope in_task;  // nested calls run inline
      Chunk c;
      while (!CheckStop() && take(&c)) RunChunk(c);
    }
    std::lock_guard<std::mutex> lock(mu);
    --running;
    comm_cv.notify_all();
  }

  // The local queue of a rank other than 0.
  bool TakeQueued(Chunk* c) {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      if (stop.load(std::memory_order_relaxed)) return false;
      if (!queue.empty()) {
        *c = queue.front();
        queue.pop_front();
        if (queue.empty()) comm_cv.notify_all();  // time to read ahead
        return true;
      }
      if (no_more) return false;
      ++idle;
      comm_cv.notify_all();
      work_cv.wait(lock);
      --idle;
    }
  }

  const Job& job;
  const RunOptions& options;
  const std::string worker;

  std::atomic<bool> stop{false};
  std::atomic<bool> cancelled{false};
  std::atomic<bool> failed_fast{false};
  std::atomic<std::size_t> done{0};  // tasks finished here, ok or failed

  std::mutex mu;
  std::condition_variable work_cv;  // compute threads wait for chunks
  std::condition_variable comm_cv;  // the calling thread waits for events
  std::vector<Chunk> ranges;        // chunks run here (up to a fail-fast stop)
  std::vector<TaskError> failures;  // tasks failed here
  int running = 0;                  // compute threads not yet finished
  std::deque<Chunk> queue;          // rank > 0: chunks granted, not started
  bool no_more = false;             // rank > 0: rank 0 said done
  int idle = 0;                     // rank > 0: compute threads waiting
};

// Compute threads that are stopped and joined however the call ends.
class Threads {
 public:
  explicit Threads(RankRun& run) : run_(run) {}
  ~Threads() {
    if (!threads_.empty()) {
      run_.stop.store(true);
      {
        std::lock_guard<std::mutex> lock(run_.mu);
        run_.no_more = true;
        run_.work_cv.notify_all();
      }
      for (std::thread& t : threads_) t.join();
    }
  }
  template <class Take>
  void Start(int count, Take take) {
    {
      std::lock_guard<std::mutex> lock(run_.mu);
      run_.running += count;
    }
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this, take] { run_.ComputeLoop(take); });
    }
  }
  void Join() {
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  RankRun& run_;
  std::vector<std::thread> threads_;
};

// Rank 0's task counter.
class Dispenser {
 public:
  Dispenser(std::size_t n, std::size_t batch) : n_(n), batch_(batch) {}
  bool Take(Chunk* c) {
    const std::size_t begin =
        next_.fetch_add(batch_, std::memory_order_relaxed);
    if (begin >= n_) return false;
    *c = {begin, std::min(n_, begin + batch_)};
    return true;
  }
  std::size_t RemainingChunks() const {
    const std::size_t next = next_.load(std::memory_order_relaxed);
    return next >= n_ ? 0 : (n_ - next + batch_ - 1) / batch_;
  }

 private:
  const std::size_t n_;
  const std::size_t batch_;
  std::atomic<std::size_t> next_{0};
};

// Paces the polls of MPI: right after something happened, a few dozen
// polls back to back (a reply or the next request is often microseconds
// away), then sleeps growing from 20 µs to 500 µs while nothing happens.
// Local events (a thread idle, finished or failed) wake the sleeper at once
// through comm_cv.
class Backoff {
 public:
  void Reset() {
    spins_ = 0;
    delay_ = kMin;
  }
  void Wait(RankRun& run) {
    if (spins_ < kSpins) {
      ++spins_;
      std::this_thread::yield();
      return;
    }
    std::unique_lock<std::mutex> lock(run.mu);
    run.comm_cv.wait_for(lock, delay_);
    delay_ = std::min(delay_ * 2, kMax);
  }

 private:
  static constexpr int kSpins = 50;
  static constexpr std::chrono::microseconds kMin{20};
  static constexpr std::chrono::microseconds kMax{500};
  int spins_ = 0;
  std::chrono::microseconds delay_{kMin};
};

// The request a rank > 0 sends to rank 0.
struct Request {
  std::uint64_t call = 0;
  std::uint64_t n = 0;
  std::uint64_t done = 0;     // tasks finished since the last request
  std::uint64_t idle = 0;     // compute threads waiting for a chunk
  std::uint64_t threads = 0;  // compute threads of the rank
  std::uint64_t flags = 0;
};
constexpr int kRequestWords = sizeof(Request) / sizeof(std::uint64_t);

// Ends the job when ranks no longer make the same calls: there is no way to
// pair their messages up again.
[[noreturn]] void Diverged(const World& w, std::uint64_t call, std::uint64_t n,
                           int other, std::uint64_t other_call,
                           std::uint64_t other_n) {
  std::fprintf(stderr,
               "fanout mpi: ranks diverged: rank %d is in parallel call #%llu "
               "(%llu tasks) but rank %d is in call #%llu (%llu tasks); every "
               "rank must make the same parallel calls in the same order. "
               "Aborting the job.\n",
               w.rank, static_cast<unsigned long long>(call),
               static_cast<unsigned long long>(n), other,
               static_cast<unsigned long long>(other_call),
               static_cast<unsigned long long>(other_n));
  std::fflush(stderr);
  MPI_Abort(w.comm, 70);
  std::_Exit(70);
}

// ---------------------------------------------------------------------------
// The result exchange.

// This rank's tasks as bytes: header, ranges, failures, results.
std::string EncodeRank(RankRun& run, std::uint64_t call) {
  const Job& job = run.job;
  std::vector<std::size_t> failed;
  for (const TaskError& e : run.failures) failed.push_back(e.index());
  std::sort(failed.begin(), failed.end());
  auto is_failed = [&](std::size_t i) {
    return !failed.empty() &&
           std::binary_search(failed.begin(), failed.end(), i);
  };

  std::string results;
  std::string value;
  std::vector<TaskError> encode_failures;
  for (const Chunk& c : run.ranges) {
    for (std::size_t i = c.begin; i < c.end; ++i) {
      if (is_failed(i)) continue;
      if (job.trivial_result_size != 0) {
        results.append(static_cast<const char*>(job.result_slot(job.ctx, i)),
                       job.trivial_result_size);
        continue;
      }
      value.clear();
      try {
        job.encode_result(job.ctx, i, &value);
      } catch (...) {
        TaskFailure f = internal::describe_current_exception();
        encode_failures.emplace_back(TaskError::Details{
            i, "mpi", run.worker, std::move(f.type),
            "cannot encode the result to send it to the other ranks: " +
                f.message,
            0, -1, std::move(f.exception)});
        value.clear();
      }
      PutBytes(results, value);  // a failed encoding still takes its place
    }
  }
  for (TaskError& e : encode_failures) run.failures.push_back(std::move(e));

  std::string out;
  PutVarint(out, call);
  PutVarint(out, job.n);
  PutVarint(out, run.cancelled.load() ? 1 : 0);
  PutVarint(out, run.done.load());
  PutVarint(out, run.ranges.size());
  for (const Chunk& c : run.ranges) {
    PutVarint(out, c.begin);
    PutVarint(out, c.end);
  }
  PutVarint(out, failed.size());
  for (const TaskError& e : run.failures) {
    // Encode failures were appended after `failed` was taken: their results
    // are empty stand-ins, and they travel as failures with the others.
    if (!is_failed(e.index())) continue;
    PutVarint(out, e.index());
    PutBytes(out, e.type());
    PutBytes(out, e.message());
  }
  PutVarint(out, encode_failures.size());
  for (const TaskError& e : run.failures) {
    if (is_failed(e.index())) continue;
    PutVarint(out, e.index());
    PutBytes(out, e.type());
    PutBytes(out, e.message());
  }
  out += results;
  return out;
}

struct Decoded {
  bool cancelled = false;
  std::size_t done = 0;
};

// Stores another rank's results into this rank's slots; adds its failures.
Decoded DecodeRank(const World& w, std::string_view bytes, int from,
                   std::uint64_t call, const Job& job,
                   std::vector<TaskError>* failures) {
  Reader in(bytes);
  const std::uint64_t their_call = in.Varint();
  const std::uint64_t their_n = in.Varint();
  if (their_call != call || their_n != job.n) {
    Diverged(w, call, job.n, from, their_call, their_n);
  }
  Decoded d;
  d.cancelled = in.Varint() != 0;
  d.done = in.Varint();
  std::vector<Chunk> ranges(in.Varint());
  for (Chunk& c : ranges) {
    c.begin = in.Varint();
    c.end = in.Varint();
    if (c.begin > c.end || c.end > job.n) {
      throw Error("mpi backend: corrupt result message (bad task range)");
    }
  }
  const std::string worker = "rank " + std::to_string(from);
  // Tasks that threw have no bytes; tasks whose result could not be encoded
  // have empty stand-in bytes.
  std::vector<std::size_t> failed, unencodable;
  for (std::vector<std::size_t>* list : {&failed, &unencodable}) {
    const std::uint64_t count = in.Varint();
    for (std::uint64_t k = 0; k < count; ++k) {
      const std::size_t index = in.Varint();
      std::string type(in.Bytes());
      std::string message(in.Bytes());
      list->push_back(index);
      failures->emplace_back(
          TaskError::Details{index, "mpi", worker, std::move(type),
                             std::move(message), 0, -1, nullptr});
    }
    std::sort(list->begin(), list->end());
  }
  auto in_list = [](const std::vector<std::size_t>& list, std::size_t i) {
    return !list.empty() && std::binary_search(list.begin(), list.end(), i);
  };
  for (const Chunk& c : ranges) {
    for (std::size_t i = c.begin; i < c.end; ++i) {
      if (in_list(failed, i)) continue;
      if (job.trivial_result_size != 0) {
        std::memcpy(job.result_slot(job.ctx, i),
                    in.Take(job.trivial_result_size).data(),
                    job.trivial_result_size);
        continue;
      }
      const std::string_view value = in.Bytes();
      if (!in_list(unencodable, i)) job.decode_result(job.ctx, i, value);
    }
  }
  return d;
}

// Every rank's bytes on every rank.
struct Gathered {
  std::string all;
  std::vector<std::uint64_t> offset;
  std::vector<std::uint64_t> size;
};

Gathered AllGather(const World& w, const std::string& mine) {
  Gathered g;
  g.size.resize(w.size);
  g.offset.resize(w.size);
  std::uint64_t my_size = mine.size();
  Check(MPI_Allgather(&my_size, 1, MPI_UINT64_T, g.size.data(), 1, MPI_UINT64_T,
                      w.comm),
        "MPI_Allgather");
  std::uint64_t total = 0;
  for (int r = 0; r < w.size; ++r) {
    g.offset[r] = total;
    total += g.size[r];
  }
  g.all.resize(total);
  if (total <= static_cast<std::uint64_t>(INT_MAX)) {
    std::vector<int> counts(w.size), displs(w.size);
    for (int r = 0; r < w.size; ++r) {
      counts[r] = static_cast<int>(g.size[r]);
      displs[r] = static_cast<int>(g.offset[r]);
    }
    Check(MPI_Allgatherv(mine.data(), counts[w.rank], MPI_CHAR, g.all.data(),
                         counts.data(), displs.data(), MPI_CHAR, w.comm),
          "MPI_Allgatherv");
    return g;
  }
  // More than 2 GiB in all: one broadcast per rank, in 1 GiB pieces.
  std::memcpy(g.all.data() + g.offset[w.rank], mine.data(), mine.size());
  constexpr std::uint64_t kPiece = std::uint64_t(1) << 30;
  for (int r = 0; r < w.size; ++r) {
    for (std::uint64_t off = 0; off < g.size[r]; off += kPiece) {
      const int len = static_cast<int>(std::min(kPiece, g.size[r] - off));
      Check(
          MPI_Bcast(g.all.data() + g.offset[r] + off, len, MPI_CHAR, r, w.comm),
          "MPI_Bcast");
    }
  }
  return g;
}

RunReport Exchange(const World& w, RankRun& run, std::uint64_t call) {
  const std::string mine = EncodeRank(run, call);
  const Gathered g = AllGather(w, mine);
  RunReport report;
  report.failures = std::move(run.failures);
  bool cancelled = run.cancelled.load();
  std::size_t done = run.done.load();
  for (int r = 0; r < w.size; ++r) {
    if (r == w.rank) continue;
    Decoded d =
        DecodeRank(w, std::string_view(g.all).substr(g.offset[r], g.size[r]), r,
                   call, run.job, &report.failures);
    cancelled = cancelled || d.cancelled;
    done += d.done;
  }
  if (cancelled) report.stopped = StopReason::kCancelled;
  if (run.options.progress != nullptr) {
    const std::size_t seen = run.options.progress->load();
    if (done > seen) run.options.progress->fetch_add(done - seen);
  }
  return report;
}

// ---------------------------------------------------------------------------
// The three roles.

RunReport RunLocal(const Job& job, const RunOptions& options) {
  RankRun run(job, options, 0);
  Dispenser counter(job.n, options.batch_size);
  auto take = [&counter](Chunk* c) { return counter.Take(c); };
  {
    Threads threads(run);
    threads.Start(options.jobs - 1, take);
    {
      std::lock_guard<std::mutex> lock(run.mu);
      ++run.running;
    }
    run.ComputeLoop(take);
    threads.Join();
  }
  RunReport report;
  report.failures = std::move(run.failures);
  if (run.cancelled.load()) report.stopped = options.stop->reason();
  return report;
}

RunReport RunRoot(const World& w, const Job& job, const RunOptions& options,
                  std::uint64_t call) {
  RankRun run(job, options, 0);
  // Chunks sized for every compute thread of the job (ranks start alike).
  const int all_threads = options.jobs * w.size;
  Dispenser counter(job.n, options.batch_size);
  std::vector<int> threads_of(w.size, options.jobs);
  {
    Threads threads(run);
    threads.Start(options.jobs,
                  [&counter](Chunk* c) { return counter.Take(c); });

    std::vector<Request> requests(w.size);
    std::vector<MPI_Request> pending(w.size - 1, MPI_REQUEST_NULL);
    auto post = [&](int r) {
      Check(MPI_Irecv(&requests[r], kRequestWords, MPI_UINT64_T, r, kTagRequest,
                      w.comm, &pending[r - 1]),
            "MPI_Irecv");
    };
    for (int r = 1; r < w.size; ++r) post(r);
    int remotes = w.size - 1;
    std::vector<int> ready(w.size - 1);
    Backoff backoff;
    for (;;) {
      bool activity = false;
      if (remotes > 0) {
        int count = 0;
        Check(MPI_Testsome(w.size - 1, pending.data(), &count, ready.data(),
                           MPI_STATUSES_IGNORE),
              "MPI_Testsome");
        if (count == MPI_UNDEFINED) count = 0;
        for (int k = 0; k < count; ++k) {
          const int r = ready[k] + 1;
          const Request q = requests[r];
          if (q.call != call || q.n != job.n) {
            Diverged(w, call, job.n, r, q.call, q.n);
          }
          if (options.progress != nullptr) {
            options.progress->fetch_add(q.done, std::memory_order_relaxed);
          }
          if ((q.flags & kFlagFailed) != 0) run.stop.store(true);
          if ((q.flags & kFlagCancelled) != 0) {
            run.cancelled.store(true);
            run.stop.store(true);
          }
          threads_of[r] = static_cast<int>(q.threads);
          std::uint64_t reply[3] = {call, kDone, kDone};
          Chunk c;
          if (run.stop.load()) {
            // done
          } else if (q.idle == 0 &&
                     counter.RemainingChunks() <=
                         4 * static_cast<std::size_t>(all_threads)) {
            reply[1] = reply[2] = kNotNow;  // near the end: no read-ahead
          } else if (counter.Take(&c)) {
            reply[1] = c.begin;
            reply[2] = c.end;
          }
          Check(MPI_Send(reply, 3, MPI_UINT64_T, r, kTagReply, w.comm),
                "MPI_Send");
          if (reply[1] == kDone) {
            --remotes;
          } else {
            post(r);
          }
          activity = true;
        }
      }
      if (run.CheckStop()) {
        std::lock_guard<std::mutex> lock(run.mu);
        run.work_cv.notify_all();
      }
      {
        std::lock_guard<std::mutex> lock(run.mu);
        if (remotes == 0 && run.running == 0) break;
      }
      if (activity) {
        backoff.Reset();
      } else {
        backoff.Wait(run);
      }
    }
    threads.Join();
  }
  return Exchange(w, run, call);
}

RunReport RunRemote(const World& w, const Job& job, const RunOptions& options,
                    std::uint64_t call) {
  RankRun run(job, options, w.rank);
  {
    Threads threads(run);
    threads.Start(options.jobs, [&run](Chunk* c) { return run.TakeQueued(c); });

    std::uint64_t reply[3] = {0, 0, 0};
    MPI_Request pending = MPI_REQUEST_NULL;
    bool outstanding = false;
    bool got_done = false;
    bool not_now = false;
    std::size_t reported = 0;
    Backoff backoff;
    for (;;) {
      bool activity = false;
      if (outstanding) {
        int complete = 0;
        Check(MPI_Test(&pending, &complete, MPI_STATUS_IGNORE), "MPI_Test");
        if (complete != 0) {
          outstanding = false;
          activity = true;
          if (reply[0] != call) Diverged(w, call, job.n, 0, reply[0], 0);
          std::lock_guard<std::mutex> lock(run.mu);
          if (reply[1] == kDone) {
            got_done = true;
            run.no_more = true;
            run.work_cv.notify_all();
          } else if (reply[1] == kNotNow) {
            not_now = true;
          } else {
            not_now = false;
            run.queue.push_back({reply[1], reply[2]});
            run.work_cv.notify_one();
          }
        }
      }
      run.CheckStop();
      if (!outstanding && !got_done) {
        bool want;
        int idle;
        {
          std::lock_guard<std::mutex> lock(run.mu);
          idle = run.idle;
          const std::size_t queued = run.queue.size();
          want = run.stop.load() ||
                 queued < static_cast<std::size_t>(idle > 0  ? idle
                                                   : not_now ? 0
                                                             : 1);
        }
        if (want) {
          const std::size_t done = run.done.load();
          Request q;
          q.call = call;
          q.n = job.n;
          q.done = done - reported;
          q.idle = static_cast<std::uint64_t>(idle);
          q.threads = static_cast<std::uint64_t>(options.jobs);
          q.flags = (run.failed_fast.load() ? kFlagFailed : 0) |
                    (run.cancelled.load() ? kFlagCancelled : 0);
          reported = done;
          Check(
              MPI_Irecv(reply, 3, MPI_UINT64_T, 0, kTagReply, w.comm, &pending),
              "MPI_Irecv");
          Check(
              MPI_Send(&q, kRequestWords, MPI_UINT64_T, 0, kTagRequest, w.comm),
              "MPI_Send");
          outstanding = true;
          activity = true;
        }
      }
      if (got_done) {
        std::unique_lock<std::mutex> lock(run.mu);
        run.comm_cv.wait(lock, [&] { return run.running == 0; });
        break;
      }
      if (activity) {
        backoff.Reset();
      } else {
        backoff.Wait(run);
      }
    }
    threads.Join();
  }
  return Exchange(w, run, call);
}

std::mutex& CallMutex() {
  static auto* mu = new std::mutex;
  return *mu;
}

class MpiExecutor final : public Executor {
 public:
  explicit MpiExecutor(int jobs) : jobs_(jobs), world_(world()) {}
  std::string_view name() const override { return "mpi"; }
  bool shares_memory() const override { return false; }
  int jobs() const override { return jobs_; }
  bool is_primary() const override { return world_.rank == 0; }

 protected:
  std::string inline_worker() const override { return "rank 0"; }
  // Every rank takes part in every call of a world of several ranks.
  bool runs_small_calls_inline() const override { return world_.size == 1; }
  int total_workers(int jobs) const override { return jobs * world_.size; }

  RunReport RunParallel(const Job& job, const RunOptions& options) override {
    std::lock_guard<std::mutex> lock(CallMutex());
    static std::uint64_t calls = 0;
    const std::uint64_t call = ++calls;
    if (job.n == 0) return {};
    if (g_broken.load()) {
      throw Error("mpi backend: an earlier MPI call failed; MPI is unusable");
    }
    if (world_.size == 1) return RunLocal(job, options);
    const auto start = std::chrono::steady_clock::now();
    RunReport report = world_.rank == 0 ? RunRoot(world_, job, options, call)
                                        : RunRemote(world_, job, options, call);
    if (report.stopped == StopReason::kCancelled) {
      AwaitOwnTimeout(options, start);
      if (options.stop->stop_requested()) {
        report.stopped = options.stop->reason();
      }
    }
    return report;
  }

 private:
  // When another rank's timeout ended the call, this rank's own deadline is
  // at most the start skew away: wait for it, so that every rank reports a
  // TimeoutError rather than some of them a plain cancellation. A deadline
  // further away means the call was cancelled for another reason: no wait.
  static void AwaitOwnTimeout(const RunOptions& options,
                              std::chrono::steady_clock::time_point start) {
    if (!options.stop->has_deadline()) return;
    const auto own = options.stop->deadline();
    if (own - std::chrono::steady_clock::now() > std::chrono::seconds(1))
      return;
    const auto deadline = own + std::chrono::milliseconds(500);
    while (!options.stop->CheckDeadline() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  int jobs_;
  const World& world_;
};

}  // namespace

bool under_launcher() {
  for (const char* name :
       {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

const World& world() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (g_world == nullptr) g_world = new World(Start());
  return *g_world;
}

std::string processor_name() {
  if (world().active) {
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    if (MPI_Get_processor_name(name, &len) == MPI_SUCCESS) {
      return std::string(name, len);
    }
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

}  // namespace fanout::mpi

FANOUT_REGISTER_BACKEND(
    mpi,
    "Open MPI ranks (SPMD under mpirun): rank 0 hands out chunks, each rank "
    "runs them on `jobs` threads, every rank gets every result",
    [](const fanout::ExecutorOptions& options) {
      return std::make_unique<fanout::mpi::MpiExecutor>(options.jobs);
    })
