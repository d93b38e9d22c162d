#include "backends/process/shared_block.h"

#include <sys/mman.h>

#include <new>
#include <utility>

namespace fanout::process_internal {

SharedBlock::SharedBlock(int workers, std::size_t result_bytes)
    : header_(HeaderBytes(workers)), bytes_(header_ + kPage + result_bytes) {
  void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  base_ = static_cast<char*>(p);
}

SharedBlock::~SharedBlock() { munmap(base_, bytes_); }

bool SharedBlock::Fits(int workers, std::size_t result_bytes) const {
  return HeaderBytes(workers) <= header_ &&
         header_ + kPage + result_bytes <= bytes_;
}

void SharedBlock::Reset(int workers, const void* mirror) {
  workers_ = workers;
  new (base_) Control;
  for (int w = 0; w < workers; ++w) new (&slot(w)) WorkerSlot;
  results_ = base_ + header_ + reinterpret_cast<std::uintptr_t>(mirror) % kPage;
}

bool SharedBlock::kept() const { return bytes_ <= kMaxCachedBytes; }

void SharedBlock::ReleaseResults(std::size_t offset, std::size_t len) const {
  const auto begin = reinterpret_cast<std::uintptr_t>(results_ + offset);
  const auto end = reinterpret_cast<std::uintptr_t>(results_ + offset + len);
  const std::uintptr_t first = (begin + kPage - 1) / kPage * kPage;
  const std::uintptr_t last = end / kPage * kPage;
  if (last > first) {
    madvise(reinterpret_cast<void*>(first), last - first, MADV_REMOVE);
  }
}

std::size_t SharedBlock::SlotBytes(int workers) {
  return (sizeof(Control) + sizeof(WorkerSlot) * workers + kPage - 1) / kPage *
         kPage;
}

std::size_t SharedBlock::HeaderBytes(int workers) {
  return SlotBytes(workers) + kStageBytes * workers;
}

std::unique_ptr<SharedBlock> BlockCache::Take(int workers,
                                              std::size_t result_bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ != nullptr && cached_->Fits(workers, result_bytes)) {
      return std::move(cached_);
    }
  }
  return std::make_unique<SharedBlock>(workers, result_bytes);
}

void BlockCache::GiveBack(std::unique_ptr<SharedBlock> block) {
  if (block->bytes() > kMaxCachedBytes) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (cached_ == nullptr || cached_->bytes() < block->bytes()) {
    cached_ = std::move(block);
  }
}

}  // namespace fanout::process_internal
