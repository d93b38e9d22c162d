// The end of a traced call on ranks (see exchange.h): each rank's records
// reach rank 0, on rank 0's clock.
#include "core/internal/trace.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "backends/mpi/check.h"
#include "backends/mpi/exchange.h"

namespace fanout::mpi::internal {
namespace {

using fanout::internal::CallTrace;
using fanout::internal::TraceNow;

constexpr int kTagClock = 103;
// Round trips per rank; the fastest one sets the offset.
constexpr int kClockRounds = 8;
// Rank r's pids in the file are r * kPidBase + pid: ranks on other hosts
// may reuse a pid.
constexpr std::int64_t kPidBase = 10000000;

// How far rank r's CLOCK_MONOTONIC is ahead of rank 0's: the midpoint of
// the fastest of kClockRounds round trips (within half of its time).
std::vector<std::int64_t> ClockOffsets(const World& w) {
  std::vector<std::int64_t> offset(w.size, 0);
  for (int r = 1; r < w.size; ++r) {
    std::uint64_t best = UINT64_MAX;
    for (int k = 0; k < kClockRounds; ++k) {
      if (w.rank == 0) {
        const std::uint64_t t1 = TraceNow();
        std::uint64_t theirs = 0;
        Check(MPI_Send(&t1, 1, MPI_UINT64_T, r, kTagClock, w.comm), "MPI_Send");
        Check(MPI_Recv(&theirs, 1, MPI_UINT64_T, r, kTagClock, w.comm,
                       MPI_STATUS_IGNORE),
              "MPI_Recv");
        const std::uint64_t t2 = TraceNow();
        if (t2 - t1 < best) {
          best = t2 - t1;
          offset[r] = static_cast<std::int64_t>(theirs) -
                      static_cast<std::int64_t>(t1 + (t2 - t1) / 2);
        }
      } else if (w.rank == r) {
        std::uint64_t t1 = 0;
        Check(MPI_Recv(&t1, 1, MPI_UINT64_T, 0, kTagClock, w.comm,
                       MPI_STATUS_IGNORE),
              "MPI_Recv");
        const std::uint64_t now = TraceNow();
        Check(MPI_Send(&now, 1, MPI_UINT64_T, 0, kTagClock, w.comm),
              "MPI_Send");
      }
    }
  }
  return offset;
}

}  // namespace

void GatherTrace(const World& w, RankRun& run) {
  CallTrace* trace = run.options.trace;
  const std::vector<std::int64_t> offset = ClockOffsets(w);
  std::string mine;
  if (trace != nullptr && w.rank != 0) {
    trace->EndJob();  // the job's tracks, taken in now to be sent
    mine = trace->Export();
    if (mine.size() > static_cast<std::size_t>(INT_MAX)) mine.clear();
  }
  const int my_size = static_cast<int>(mine.size());
  std::vector<int> sizes(w.size, 0);
  Check(MPI_Gather(&my_size, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, w.comm),
        "MPI_Gather");
  std::vector<int> displs(w.size, 0);
  long long total = 0;
  for (int r = 0; r < w.size; ++r) {
    displs[r] = static_cast<int>(std::min<long long>(total, INT_MAX));
    total += sizes[r];
  }
  if (w.rank == 0 && total > INT_MAX) {
    // Cannot arrive in one gather: every rank still takes part, sending
    // nothing, and rank 0 says what is missing.
    std::fill(sizes.begin(), sizes.end(), 0);
    total = 0;
  }
  std::string all(w.rank == 0 ? static_cast<std::size_t>(total) : 0, '\0');
  Check(MPI_Gatherv(mine.data(), my_size, MPI_CHAR, all.data(), sizes.data(),
                    displs.data(), MPI_CHAR, 0, w.comm),
        "MPI_Gatherv");
  if (w.rank != 0) return;
  for (int r = 1; r < w.size; ++r) {
    if (sizes[r] == 0) {
      const std::uint64_t t = TraceNow();
      trace->Note(nullptr,
                  "rank " + std::to_string(r) +
                      " sent no trace records (it traces nothing: "
                      "Options::trace or FANOUT_TRACE unset there, or "
                      "over 2 GiB of them)",
                  "trace", t, t);
      continue;
    }
    trace->Import(std::string_view(all).substr(displs[r], sizes[r]), offset[r],
                  r * kPidBase);
  }
}

}  // namespace fanout::mpi::internal
