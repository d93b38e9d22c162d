// The result exchange at the end of a call on ranks (see exchange.h).
#include "backends/mpi/exchange.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/mpi/check.h"
#include "backends/mpi/protocol.h"
#include "backends/mpi/varint.h"
#include "core/errors.h"

namespace fanout::mpi::internal {
namespace {

bool Contains(const std::vector<std::size_t>& sorted, std::size_t i) {
  return !sorted.empty() && std::binary_search(sorted.begin(), sorted.end(), i);
}

// The results of the chunks this rank ran, in order, skipping tasks that
// threw (`failed`, sorted). A result the codec cannot encode becomes empty
// stand-in bytes and a failure in *encode_failures.
std::string EncodeResults(const RankRun& run,
                          const std::vector<std::size_t>& failed,
                          std::vector<TaskError>* encode_failures) {
  const Job& job = run.job;
  std::string results;
  std::string value;
  for (const Chunk& c : run.ranges) {
    for (std::size_t i = c.begin; i < c.end; ++i) {
      if (Contains(failed, i)) continue;
      if (job.trivial_result_size != 0) {
        results.append(static_cast<const char*>(job.result_slot(job.ctx, i)),
                       job.trivial_result_size);
        continue;
      }
      value.clear();
      try {
        job.encode_result(job.ctx, i, &value);
      } catch (...) {
        TaskFailure f = fanout::internal::describe_current_exception();
        encode_failures->emplace_back(TaskError::Details{
            i, "mpi", run.worker, std::move(f.type),
            "cannot encode the result to send it to the other ranks: " +
                f.message,
            0, -1, std::move(f.exception)});
        value.clear();
      }
      PutBytes(results, value);  // a failed encoding still takes its place
    }
  }
  return results;
}

// A list of failures: a count, then index, type and message each.
void PutFailures(std::string& out, const std::vector<TaskError>& failures) {
  PutVarint(out, failures.size());
  for (const TaskError& e : failures) {
    PutVarint(out, e.index());
    PutBytes(out, e.type());
    PutBytes(out, e.message());
  }
}

// This rank's tasks as bytes: header, ranges, the job indices of the tasks
// that threw (they have no result bytes), those failures (named as the
// user's tasks), the results that could not be encoded (stand-ins), results.
std::string EncodeRank(RankRun& run, std::uint64_t call) {
  std::vector<std::size_t> failed = run.failed_jobs;
  std::sort(failed.begin(), failed.end());
  std::vector<TaskError> encode_failures;
  const std::string results = EncodeResults(run, failed, &encode_failures);

  std::string out;
  PutVarint(out, call);
  PutVarint(out, run.job.n);
  PutVarint(out, static_cast<std::uint64_t>(run.stopped()));
  PutVarint(out, run.done.load());
  PutVarint(out, run.options.trace != nullptr ? 1 : 0);  // traced here
  PutVarint(out, run.ranges.size());
  for (const Chunk& c : run.ranges) {
    PutVarint(out, c.begin);
    PutVarint(out, c.end);
  }
  PutVarint(out, failed.size());
  for (std::size_t i : failed) PutVarint(out, i);
  PutFailures(out, run.failures);
  PutFailures(out, encode_failures);
  for (TaskError& e : encode_failures) run.failures.push_back(std::move(e));
  out += results;
  return out;
}

struct Decoded {
  StopReason stopped = StopReason::kNone;
  std::size_t done = 0;
  bool traced = false;  // the rank records a trace of the call
};

std::vector<Chunk> ReadRanges(Reader& in, const Job& job) {
  std::vector<Chunk> ranges(in.Varint());
  for (Chunk& c : ranges) {
    c.begin = in.Varint();
    c.end = in.Varint();
    if (c.begin > c.end || c.end > job.n) {
      throw Error("mpi backend: corrupt result message (bad task range)");
    }
  }
  return ranges;
}

// One list of failures of rank `worker`: appended to *failures, their task
// indices returned sorted.
std::vector<std::size_t> ReadFailures(Reader& in, const std::string& worker,
                                      std::vector<TaskError>* failures) {
  std::vector<std::size_t> list;
  const std::uint64_t count = in.Varint();
  for (std::uint64_t k = 0; k < count; ++k) {
    const std::size_t index = in.Varint();
    std::string type(in.Bytes());
    std::string message(in.Bytes());
    list.push_back(index);
    failures->emplace_back(
        TaskError::Details{index, "mpi", worker, std::move(type),
                           std::move(message), 0, -1, nullptr});
  }
  std::sort(list.begin(), list.end());
  return list;
}

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
  d.stopped = static_cast<StopReason>(in.Varint());
  d.done = in.Varint();
  d.traced = in.Varint() != 0;
  const std::vector<Chunk> ranges = ReadRanges(in, job);
  const std::string worker = "rank " + std::to_string(from);
  // Tasks that threw have no bytes; tasks whose result could not be encoded
  // have empty stand-in bytes.
  std::vector<std::size_t> failed(in.Varint());
  for (std::size_t& i : failed) {
    i = in.Varint();
    if (i >= job.n) {
      throw Error("mpi backend: corrupt result message (bad failed task)");
    }
  }
  std::sort(failed.begin(), failed.end());
  ReadFailures(in, worker, failures);
  const std::vector<std::size_t> unencodable =
      ReadFailures(in, worker, failures);
  for (const Chunk& c : ranges) {
    for (std::size_t i = c.begin; i < c.end; ++i) {
      if (Contains(failed, i)) continue;
      if (job.trivial_result_size != 0) {
        std::memcpy(job.result_slot(job.ctx, i),
                    in.Take(job.trivial_result_size).data(),
                    job.trivial_result_size);
        continue;
      }
      const std::string_view value = in.Bytes();
      if (!Contains(unencodable, i)) job.decode_result(job.ctx, i, value);
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

// More than 2 GiB in all (beyond MPI_Allgatherv's int counts): one broadcast
// per rank, in 1 GiB pieces.
void BroadcastInPieces(const World& w, const std::string& mine, Gathered& g) {
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
}

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
  if (total > static_cast<std::uint64_t>(INT_MAX)) {
    BroadcastInPieces(w, mine, g);
    return g;
  }
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

}  // namespace

RunReport Exchange(const World& w, RankRun& run, std::uint64_t call) {
  const std::uint64_t t0 =
      run.options.trace != nullptr ? fanout::internal::TraceNow() : 0;
  const std::string mine = EncodeRank(run, call);
  const Gathered g = AllGather(w, mine);
  bool root_traces = w.rank == 0 && run.options.trace != nullptr;
  RunReport report;
  report.failures = std::move(run.failures);
  // Every rank reports the same stop: the first rank's reason, in rank
  // order, that came from outside the tasks (a failure under fail-fast is
  // reported by the failures themselves).
  const auto outside = [](StopReason r) {
    return r != StopReason::kNone && r != StopReason::kFailed;
  };
  std::size_t done = run.done.load();
  for (int r = 0; r < w.size; ++r) {
    StopReason stopped = run.stopped();
    if (r != w.rank) {
      Decoded d =
          DecodeRank(w, std::string_view(g.all).substr(g.offset[r], g.size[r]),
                     r, call, run.job, &report.failures);
      stopped = d.stopped;
      done += d.done;
      if (r == 0) root_traces = d.traced;
    }
    if (!outside(report.stopped) && outside(stopped)) report.stopped = stopped;
  }
  if (run.options.progress != nullptr) {
    const std::size_t seen = run.options.progress->load();
    if (done > seen) run.options.progress->fetch_add(done - seen);
  }
  if (run.options.trace != nullptr) {
    run.options.trace->Note(nullptr, "exchange results", "move", t0,
                            fanout::internal::TraceNow(),
                            "\"bytes_sent\":" + std::to_string(mine.size()) +
                                ",\"bytes_received\":" +
                                std::to_string(g.all.size() - mine.size()));
  }
  // Every rank knows now whether rank 0 traces: then each sends it its
  // records (collective, so decided alike on every rank).
  if (root_traces) GatherTrace(w, run);
  return report;
}

}  // namespace fanout::mpi::internal
