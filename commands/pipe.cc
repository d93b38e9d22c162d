#include "commands/pipe.h"

#include <cstddef>
#include <string_view>

namespace fanout::commands {

std::size_t NextBlock(std::string_view pending, const BlockRule& rule,
                      bool eof) {
  const std::string_view end = rule.recend;
  if (pending.empty()) return 0;
  if (rule.records > 0) {
    std::size_t at = 0;
    for (std::size_t k = 0; k < rule.records; ++k) {
      const std::size_t found = pending.find(end, at);
      if (found == std::string_view::npos) return eof ? pending.size() : 0;
      at = found + end.size();
    }
    return at;
  }
  if (pending.size() < rule.block_bytes) return eof ? pending.size() : 0;
  // The last record end within the block...
  if (rule.block_bytes >= end.size()) {
    const std::size_t last = pending.rfind(end, rule.block_bytes - end.size());
    if (last != std::string_view::npos) return last + end.size();
  }
  // ... or, one record being longer than the block, the end of that record.
  const std::size_t first = pending.find(end);
  if (first != std::string_view::npos) return first + end.size();
  return eof ? pending.size() : 0;
}

bool RecordTooLong(std::string_view pending, const BlockRule& rule) {
  return pending.size() > kMaxRecordBytes &&
         pending.size() > rule.block_bytes &&
         NextBlock(pending, rule, false) == 0;
}

}  // namespace fanout::commands
