#include "core/internal/large_array.h"

#include <sys/mman.h>

#include <cstdint>

namespace fanout::internal {

void PrepareLargeArray(void* p, std::size_t bytes) {
#ifdef MADV_HUGEPAGE
  if (bytes < kLargeArrayBytes) return;
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t first = (begin + kHuge - 1) / kHuge * kHuge;
  const std::uintptr_t last = (begin + bytes) / kHuge * kHuge;
  if (last > first) {
    madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace fanout::internal
