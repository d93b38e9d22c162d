// fanout/backends/mpi/protocol.h — the messages ranks exchange during a call:
// a rank other than 0 sends a Request to rank 0, which replies with a chunk
// {call, begin, end}, "not now" or "done". Every message carries the call
// number and task count, so ranks that make different calls are caught.
// IWYU pragma: private, include "backends/mpi/mpi.h"
#ifndef FANOUT_BACKENDS_MPI_PROTOCOL_H_
#define FANOUT_BACKENDS_MPI_PROTOCOL_H_

#include <climits>
#include <cstdint>

#include "backends/mpi/mpi.h"

namespace fanout::mpi::internal {

constexpr int kTagRequest = 101;
constexpr int kTagReply = 102;
// Replies: {call, begin, end} for a chunk, {call, kNotNow, kNotNow}, or
// {call, kDone, StopReason} when there is nothing more (the reason the call
// stopped, kNone when the tasks simply ran out).
constexpr std::uint64_t kDone = UINT64_MAX;        // reply: no more chunks
constexpr std::uint64_t kNotNow = UINT64_MAX - 1;  // reply: ask when idle

// The request a rank > 0 sends to rank 0.
struct Request {
  std::uint64_t call = 0;
  std::uint64_t n = 0;
  std::uint64_t done = 0;     // tasks finished since the last request
  std::uint64_t idle = 0;     // compute threads waiting for a chunk
  std::uint64_t threads = 0;  // compute threads of the rank
  std::uint64_t stopped = 0;  // StopReason: why this rank stopped, or kNone
};
constexpr int kRequestWords = sizeof(Request) / sizeof(std::uint64_t);

// Ends the job when ranks no longer make the same calls: there is no way to
// pair their messages up again. Prints which calls differ, then MPI_Abort
// with exit code 70.
[[noreturn]] void Diverged(const World& w, std::uint64_t call, std::uint64_t n,
                           int other, std::uint64_t other_call,
                           std::uint64_t other_n);

}  // namespace fanout::mpi::internal

#endif  // FANOUT_BACKENDS_MPI_PROTOCOL_H_
