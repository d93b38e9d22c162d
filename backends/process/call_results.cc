// The caller's result array around a call (see call.h): kept out of the
// workers' fork while they write the shared result pages, then filled from
// those pages (adopted into a reserved array, or copied), slice by slice
// for a block too large to keep.
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "backends/process/call.h"

namespace fanout::process_internal {
namespace {

// The results of a block that is not kept are copied back this many bytes
// at a time, the shared pages of each slice freed behind the copy.
constexpr std::size_t kCopySliceBytes = std::size_t{4} << 20;

// Best effort (Linux >= 5.14): fills the page-table entries of the whole
// pages [p, p + len) in one call.
void Populate(const char* p, std::size_t len, int advice) {
  const auto begin = reinterpret_cast<std::uintptr_t>(p) / kPage * kPage;
  madvise(reinterpret_cast<void*>(begin),
          reinterpret_cast<std::uintptr_t>(p) + len - begin, advice);
}

}  // namespace

void Call::KeepResultsOutOfFork() {
  const std::size_t size = job_.trivial_result_size;
  if (size == 0 || job_.n == 0) return;
  const char* first = static_cast<const char*>(job_.result_slot(job_.ctx, 0));
  const char* last =
      static_cast<const char*>(job_.result_slot(job_.ctx, job_.n - 1));
  contiguous_ = last == first + (job_.n - 1) * size;
  if (!contiguous_) return;
  const auto data = reinterpret_cast<std::uintptr_t>(first);
  const std::uintptr_t begin = (data + kPage - 1) / kPage * kPage;
  const std::uintptr_t end = (data + job_.n * size) / kPage * kPage;
  if (end > begin && madvise(reinterpret_cast<void*>(begin), end - begin,
                             MADV_DONTFORK) == 0) {
    dontfork_begin_ = begin;
    dontfork_bytes_ = end - begin;
  }
}

void Call::RestoreFork() {
  if (dontfork_bytes_ == 0) return;
  madvise(reinterpret_cast<void*>(dontfork_begin_), dontfork_bytes_,
          MADV_DOFORK);
  dontfork_bytes_ = 0;
}

void Call::CopyResults(bool kept_out_of_fork) {
  const std::size_t size = job_.trivial_result_size;
  if (!contiguous_) {
    if (job_.construct_results != nullptr) job_.construct_results(job_.ctx);
    for (std::size_t i = 0; i < job_.n; ++i) {
      std::memcpy(job_.result_slot(job_.ctx, i), shared_.results() + i * size,
                  size);
    }
    return;
  }
  char* const to = static_cast<char*>(job_.result_slot(job_.ctx, 0));
  const char* const from = shared_.results();
  const std::size_t bytes = job_.n * size;
  // A block too large to be kept for the next call is copied a slice at a
  // time, and each slice's shared pages are freed once copied: the caller
  // then never holds the results twice (for 10M results, 80 MB rather than
  // 160 MB at its peak). A block that is kept stays whole.
  // Whole results per slice.
  const std::size_t slice =
      shared_.kept() ? bytes
                     : std::max<std::size_t>(1, kCopySliceBytes / size) * size;
  const bool adopt = job_.adopt_results != nullptr;
  for (std::size_t at = 0; at < bytes; at += slice) {
    const std::size_t len = std::min(slice, bytes - at);
    // Maps the shared pages in the caller in one call, not a fault per page
    // (a kept block's are mapped already).
    Populate(from + at, len, MADV_POPULATE_READ);
    // The fork made the caller's result pages copy-on-write, or (reserved,
    // adopted) they were never touched: make them writable in one call too,
    // rather than one fault per page.
    if (!kept_out_of_fork || adopt) {
      Populate(to + at, len, MADV_POPULATE_WRITE);
    }
    if (adopt) {
      // The reserved array is constructed from the shared pages in this one
      // pass (Job::adopt_results), not zero-filled first.
      job_.adopt_results(job_.ctx, from + at, len / size);
    } else {
      std::memcpy(to + at, from + at, len);
    }
    if (!shared_.kept()) shared_.ReleaseResults(at, len);
  }
}

}  // namespace fanout::process_internal
