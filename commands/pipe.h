// fanout/commands/pipe.h — GNU parallel's --pipe: standard input cut into
// blocks of whole records, each block the stdin of one command.
//
//   // cat big.log | run --pipe --block=10M grep -c ERROR
//   fanout::commands::BlockRule rule{.block_bytes = 10 << 20};
//   std::size_t n = fanout::commands::NextBlock(pending, rule, /*eof=*/false);
//   if (n > 0) { run(pending.substr(0, n)); pending.erase(0, n); }
//
// A record ends with `recend` ("\n": a line), and a block never cuts one:
// it holds the whole records that fit in block_bytes, or, when a single
// record is longer, that one record (GNU parallel grows its block the same
// way). With `records` set (-N), a block is that many records, whatever its
// size. The last block is what is left at end of input, ended or not.
#ifndef FANOUT_COMMANDS_PIPE_H_
#define FANOUT_COMMANDS_PIPE_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace fanout::commands {

// GNU parallel's default --block.
inline constexpr std::size_t kDefaultBlockBytes = 1 << 20;
// The longest record a block may grow to hold when it has no record end:
// beyond it the input is refused (RecordTooLong), not read without bound.
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

// Whether a block that NextBlock could not end yet is over the bound: a
// record longer than kMaxRecordBytes.
bool RecordTooLong(std::string_view pending, const BlockRule& rule);

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_PIPE_H_
