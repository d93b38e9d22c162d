// fanout/commands/pipe.h — GNU parallel's --pipe: standard input cut into
// blocks of whole records, each block the stdin of one command.
//
//   // cat big.log | run --pipe --block=10M grep -c ERROR
//   fanout::commands::BlockReader reader(
//       STDIN_FILENO, {.block_bytes = 10 << 20});
//   for (bool eof = false; !eof;) {
//     eof = reader.Read() == 0;
//     while (auto block = reader.Next(eof)) {
//       run(block->view());              // one command's stdin
//       reader.Recycle(*std::move(block));  // its memory, for a later block
//     }
//   }
//
// A record ends with `recend` ("\n": a line), and a block never cuts one:
// it holds the whole records that fit in block_bytes, or, when a single
// record is longer, that one record (GNU parallel grows its block the same
// way). With `records` set (-N), a block is that many records, whatever its
// size. The last block is what is left at end of input, ended or not.
#ifndef FANOUT_COMMANDS_PIPE_H_
#define FANOUT_COMMANDS_PIPE_H_

#include <sys/types.h>

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fanout::commands {

// GNU parallel's default --block.
inline constexpr std::size_t kDefaultBlockBytes = 1 << 20;
// The longest record a block may grow to hold when it has no record end:
// beyond it the input is refused (BlockReader::TooLong), not read without bound.
inline constexpr std::size_t kMaxRecordBytes = std::size_t{1} << 30;

struct BlockRule {
  std::size_t block_bytes = kDefaultBlockBytes;  // --block
  std::string recend = "\n";                     // --recend; never empty
  std::size_t records = 0;                       // -N; 0: by size
};

// The length of the block at the front of `pending` (the input not yet in
// a block), or 0 when more input is needed to end it. At end of input
// (`eof`) whatever is left is the last block.
std::size_t NextBlock(std::string_view pending, const BlockRule& rule,
                      bool eof);

// One block's bytes, in memory of its own: mapped pages that a fork() does
// not share (MADV_DONTFORK), so that filling it while commands start costs
// no copy-on-write faults. Move-only; unmapped when destroyed.
class BlockBuffer {
 public:
  BlockBuffer() = default;
  BlockBuffer(BlockBuffer&& other) noexcept;
  BlockBuffer& operator=(BlockBuffer&& other) noexcept;
  BlockBuffer(const BlockBuffer&) = delete;
  BlockBuffer& operator=(const BlockBuffer&) = delete;
  ~BlockBuffer();

  std::string_view view() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }

 private:
  friend class BlockReader;
  // Room for at least `capacity` bytes, what it holds kept. Throws
  // std::bad_alloc when the memory cannot be had.
  void Reserve(std::size_t capacity);

  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

// One block: its bytes in memory, or, when `in_file`, `length` bytes of
// the input file from `offset`, left in the file (they reach the command
// by splice(2), never through this process's memory).
struct Block {
  BlockBuffer bytes;
  bool in_file = false;
  off_t offset = 0;
  std::size_t length = 0;
};

// Cuts a descriptor into blocks by a BlockRule.
//
// From a pipe (or anything not a regular file, or with -N): the bytes go
// from read(2) straight into the block that will hold them (only a record
// cut by a read is copied, into the next block), and the record end is
// looked for once a block could be full (memrchr for a one-byte --recend).
// Buffers handed back with Recycle are reused, so memory stays that of the
// blocks alive.
//
// From a regular file (`run --pipe ... < big.log`, by --block): nothing is
// read but a window near each block's end, to find the last record end
// before it (GNU parallel's --pipepart, without its -a); a block is a
// range of the file.
//
// Read and Next are called from one thread; Recycle from any.
class BlockReader {
 public:
  BlockReader(int fd, BlockRule rule);

  // Whether blocks are ranges of the file (see above).
  bool in_file() const { return in_file_; }

  // One read(2) into the block being filled, or for a file the next
  // block's end found: the bytes read (or in the block), 0 at end of input,
  // -1 with errno set (EINTR, EAGAIN: try again).
  ssize_t Read();

  // The next whole block, once it can be ended (at end of input, `eof`:
  // what is left), or nothing yet.
  std::optional<Block> Next(bool eof);

  // For a file: the descriptor's offset set to the end of what was cut
  // into blocks, as if it had been read.
  void Finish();

  // Whether the block being filled is past kMaxRecordBytes and still
  // cannot be ended (a record that long, or -N records that long): the
  // input is to be refused rather than read without bound.
  bool TooLong() const { return too_long_; }

  // A block whose command is done: its memory, for a later block.
  void Recycle(Block block);

  // The bytes read so far.
  std::size_t bytes_read() const { return bytes_read_; }

 private:
  BlockBuffer Fresh(std::size_t capacity);
  // For a file: the end of the block that starts at file_next_.
  ssize_t FindFileBlock();
  // -N: where the block being filled ends, or 0 when it cannot end yet.
  std::size_t RecordsEnd(bool eof);

  int fd_;
  BlockRule rule_;
  BlockBuffer filling_;
  // By size: NextBlock is asked again only once the block being filled
  // reaches this size (it doubles after each miss), so that a long record
  // is searched a bounded number of times. By records: the records ended
  // so far in the block being filled, and where the search goes on.
  std::size_t check_at_;
  std::size_t records_seen_ = 0;
  std::size_t scanned_ = 0;
  std::size_t bytes_read_ = 0;
  bool too_long_ = false;
  // A regular file's blocks: where the next one starts, and the one found
  // by Read that Next hands out.
  bool in_file_ = false;
  off_t file_next_ = 0;
  std::optional<Block> file_block_;
  std::string window_;
  std::mutex spare_mu_;
  std::vector<BlockBuffer> spare_;  // guarded by spare_mu_
};

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_PIPE_H_
