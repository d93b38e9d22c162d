#include "commands/pipe.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace fanout::commands {
namespace {

// The first room a block of -N records is read into.
constexpr std::size_t kFirstRecordsCheck = 64 << 10;

// The end of the last `end` that lies wholly within pending[0, limit), or
// npos.
std::size_t LastEndWithin(std::string_view pending, std::string_view end,
                          std::size_t limit) {
  if (limit < end.size()) return std::string_view::npos;
  if (end.size() == 1) {
    const void* at = memrchr(pending.data(), end[0], limit);
    if (at == nullptr) return std::string_view::npos;
    return static_cast<std::size_t>(static_cast<const char*>(at) -
                                    pending.data()) +
           1;
  }
  const std::size_t at = pending.rfind(end, limit - end.size());
  return at == std::string_view::npos ? at : at + end.size();
}

// The end of the first `end` that starts at `from` or later, or npos.
std::size_t FirstEndFrom(std::string_view pending, std::string_view end,
                         std::size_t from) {
  if (from >= pending.size()) return std::string_view::npos;
  if (end.size() == 1) {
    const void* at =
        std::memchr(pending.data() + from, end[0], pending.size() - from);
    if (at == nullptr) return std::string_view::npos;
    return static_cast<std::size_t>(static_cast<const char*>(at) -
                                    pending.data()) +
           1;
  }
  const std::size_t at = pending.find(end, from);
  return at == std::string_view::npos ? at : at + end.size();
}

}  // namespace

std::size_t NextBlock(std::string_view pending, const BlockRule& rule,
                      bool eof) {
  const std::string_view end = rule.recend;
  if (pending.empty()) return 0;
  if (rule.records > 0) {
    std::size_t at = 0;
    for (std::size_t k = 0; k < rule.records; ++k) {
      const std::size_t found = FirstEndFrom(pending, end, at);
      if (found == std::string_view::npos) return eof ? pending.size() : 0;
      at = found;
    }
    return at;
  }
  // A block is cut only when more than it holds is there: what is left at
  // the end, if it fits, is one block.
  if (pending.size() <= rule.block_bytes) return eof ? pending.size() : 0;
  // The last record end within the block...
  const std::size_t last = LastEndWithin(pending, end, rule.block_bytes);
  if (last != std::string_view::npos) return last;
  // ... or, one record being longer than the block, the end of that record
  // (none ends within the block, so none starts before its last bytes).
  const std::size_t first = FirstEndFrom(
      pending, end,
      rule.block_bytes >= end.size() ? rule.block_bytes - end.size() + 1 : 0);
  if (first != std::string_view::npos) return first;
  return eof ? pending.size() : 0;
}

BlockBuffer::BlockBuffer(BlockBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)) {}

BlockBuffer& BlockBuffer::operator=(BlockBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, capacity_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

BlockBuffer::~BlockBuffer() {
  if (data_ != nullptr) munmap(data_, capacity_);
}

void BlockBuffer::Reserve(std::size_t capacity) {
  if (capacity <= capacity_) return;
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t bytes = (capacity + page - 1) / page * page;
  void* got = data_ == nullptr
                  ? mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                  : mremap(data_, capacity_, bytes, MREMAP_MAYMOVE);
  if (got == MAP_FAILED) throw std::bad_alloc();
  // A command's fork() leaves these pages out of the child (which only
  // execs), so it does not make them copy-on-write for the next fill. The
  // flag moves with the mapping on mremap.
  if (data_ == nullptr) madvise(got, bytes, MADV_DONTFORK);
  data_ = static_cast<char*>(got);
  capacity_ = bytes;
}

BlockReader::BlockReader(int fd, BlockRule rule)
    : fd_(fd), rule_(std::move(rule)), check_at_(rule_.block_bytes + 1) {
  // A regular file, by size, with a first byte that splice(2) can move
  // (not every file system's files can be): blocks are ranges of it.
  struct stat st {};
  const off_t at = lseek(fd_, 0, SEEK_CUR);
  if (rule_.records > 0 || fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) ||
      at < 0 || st.st_size <= at) {
    return;
  }
  int probe[2];
  if (pipe2(probe, O_CLOEXEC | O_NONBLOCK) != 0) return;
  loff_t from = at;
  in_file_ = splice(fd_, &from, probe[1], nullptr, 1, SPLICE_F_NONBLOCK) == 1;
  close(probe[0]);
  close(probe[1]);
  file_next_ = at;
}

ssize_t BlockReader::FindFileBlock() {
  struct stat st {};
  if (fstat(fd_, &st) != 0) return -1;
  const off_t s = file_next_;
  const off_t size = st.st_size;
  if (size <= s) return 0;
  const auto block = static_cast<off_t>(rule_.block_bytes);
  const std::string_view end = rule_.recend;
  const auto fill = [&](off_t lo, off_t hi) -> std::string_view {
    window_.resize(static_cast<std::size_t>(hi - lo));
    std::size_t got = 0;
    while (got < window_.size()) {
      const ssize_t n = pread(fd_, window_.data() + got, window_.size() - got,
                              lo + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    return {window_.data(), got};
  };
  off_t stop = size;  // the block's end: what is left at end of input...
  if (size - s > block) {
    // ... or after the last record end in the block's last bytes, looked
    // for a window at a time from its end back to its start...
    constexpr off_t kWindow = 64 << 10;
    stop = -1;
    for (off_t hi = s + block; stop < 0;) {
      const off_t lo = std::max(s, hi - kWindow);
      const std::string_view w = fill(lo, hi);
      const std::size_t last = LastEndWithin(w, end, w.size());
      if (last != std::string_view::npos) {
        stop = lo + static_cast<off_t>(last);
      } else if (lo == s || w.size() < static_cast<std::size_t>(hi - lo)) {
        break;
      } else {
        // Overlapping, so that an end across the windows is seen.
        hi = lo + static_cast<off_t>(end.size()) - 1;
      }
    }
    // ... or, one record being longer than the block, after its end.
    for (off_t lo = s + block - static_cast<off_t>(end.size()) + 1;
         stop < 0 && lo < size;) {
      if (lo - s > static_cast<off_t>(kMaxRecordBytes)) {
        too_long_ = true;
        return 0;
      }
      const std::string_view w = fill(lo, std::min(size, lo + kWindow));
      const std::size_t first = FirstEndFrom(w, end, 0);
      if (first != std::string_view::npos) {
        stop = lo + static_cast<off_t>(first);
      } else if (w.size() < end.size()) {
        break;
      } else {
        lo += static_cast<off_t>(w.size() - end.size() + 1);
      }
    }
    if (stop < 0) stop = size;
  }
  file_block_ = Block{.in_file = true,
                      .offset = s,
                      .length = static_cast<std::size_t>(stop - s)};
  file_next_ = stop;
  return stop - s;
}

void BlockReader::Finish() {
  if (in_file_) lseek(fd_, file_next_, SEEK_SET);
}

BlockBuffer BlockReader::Fresh(std::size_t capacity) {
  BlockBuffer b;
  {
    std::lock_guard<std::mutex> lock(spare_mu_);
    if (!spare_.empty()) {
      b = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  b.size_ = 0;
  b.Reserve(capacity);
  return b;
}

ssize_t BlockReader::Read() {
  if (in_file_) return file_block_ ? 1 : FindFileBlock();
  // By size: up to where the block is looked at next (from a file, one
  // read fills the block). By records: into what room there is, doubled
  // when full.
  std::size_t room = check_at_;
  if (rule_.records > 0) {
    room = filling_.capacity_ > filling_.size_
               ? filling_.capacity_
               : std::max(kFirstRecordsCheck, 2 * filling_.capacity_);
  }
  room = std::max(room, filling_.size_ + 1);
  filling_.Reserve(room);
  const ssize_t got =
      read(fd_, filling_.data_ + filling_.size_, room - filling_.size_);
  if (got > 0) {
    filling_.size_ += static_cast<std::size_t>(got);
    bytes_read_ += static_cast<std::size_t>(got);
  }
  return got;
}

std::size_t BlockReader::RecordsEnd(bool eof) {
  const std::string_view pending = filling_.view();
  const std::string_view end = rule_.recend;
  // Only the bytes not searched yet: a long run of records is searched
  // once, however many reads bring it.
  while (records_seen_ < rule_.records) {
    const std::size_t found = FirstEndFrom(pending, end, scanned_);
    if (found == std::string_view::npos) {
      if (pending.size() >= end.size()) {
        scanned_ = std::max(scanned_, pending.size() - end.size() + 1);
      }
      too_long_ = !eof && pending.size() > kMaxRecordBytes;
      return eof ? pending.size() : 0;
    }
    scanned_ = found;
    ++records_seen_;
  }
  return scanned_;
}

std::optional<Block> BlockReader::Next(bool eof) {
  if (in_file_) return std::exchange(file_block_, std::nullopt);
  if (filling_.size_ == 0) return std::nullopt;
  std::size_t n = 0;
  if (rule_.records > 0) {
    n = RecordsEnd(eof);
    if (n == 0) return std::nullopt;
  } else {
    if (!eof && filling_.size_ < check_at_) return std::nullopt;
    n = NextBlock(filling_.view(), rule_, eof);
    if (n == 0) {
      // No end yet: look again at twice the size, and stop at the bound.
      too_long_ = filling_.size_ > kMaxRecordBytes &&
                  filling_.size_ > rule_.block_bytes;
      check_at_ = std::max(std::min(2 * filling_.size_, kMaxRecordBytes + 1),
                           filling_.size_ + 1);
      return std::nullopt;
    }
    check_at_ = rule_.block_bytes + 1;
  }
  const std::size_t carry = filling_.size_ - n;
  BlockBuffer block = std::move(filling_);
  filling_ =
      Fresh(std::max(rule_.records > 0 ? block.capacity_ : check_at_, carry));
  // The record a read cut in two: the only bytes copied.
  if (carry > 0) std::memcpy(filling_.data_, block.data_ + n, carry);
  filling_.size_ = carry;
  block.size_ = n;
  records_seen_ = 0;
  scanned_ = 0;
  return Block{.bytes = std::move(block)};
}

void BlockReader::Recycle(Block block) {
  // A buffer grown for a long record is let go: the next blocks are the
  // usual size.
  BlockBuffer& b = block.bytes;
  if (b.data_ == nullptr ||
      (rule_.records == 0 && b.capacity_ > 2 * rule_.block_bytes)) {
    return;
  }
  std::lock_guard<std::mutex> lock(spare_mu_);
  spare_.push_back(std::move(b));
}

}  // namespace fanout::commands
