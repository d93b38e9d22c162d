#ifndef FANOUT_CORE_INTERNAL_LARGE_ARRAY_H_
#define FANOUT_CORE_INTERNAL_LARGE_ARRAY_H_

#include <cstddef>

namespace fanout::internal {

// Arrays at least this large are backed by transparent huge pages where
// the system allows it (PrepareLargeArray).
inline constexpr std::size_t kLargeArrayBytes = std::size_t{4} << 20;

// Asks that the whole 2 MiB pages inside [p, p + bytes), memory the caller
// allocated and is about to fill entirely, be backed by transparent huge
// pages (madvise MADV_HUGEPAGE): filling fresh memory then takes one page
// fault per 2 MiB instead of one per 4 KiB, which in a VM is most of the
// cost of a large result array (8 MB: about 5 ms of faults against 0.4 ms).
// Best effort and harmless where refused (THP "never", other systems);
// does nothing below kLargeArrayBytes.
void PrepareLargeArray(void* p, std::size_t bytes);

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_LARGE_ARRAY_H_
