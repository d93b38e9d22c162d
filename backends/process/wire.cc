#include "backends/process/wire.h"

#include <cstring>

#include "core/internal/failure_wire.h"

namespace fanout::process_internal {
namespace {

struct MessageHeader {
  MessageKind kind;
  std::uint32_t length;  // bytes after the header
  std::uint64_t index;   // the task
};

}  // namespace

std::size_t BeginMessage(std::string& buf, MessageKind kind,
                         std::size_t index) {
  const std::size_t at = buf.size();
  const MessageHeader h{kind, 0, index};
  buf.append(reinterpret_cast<const char*>(&h), sizeof(h));
  return at;
}

void EndMessage(std::string& buf, std::size_t at) {
  const std::uint32_t length =
      static_cast<std::uint32_t>(buf.size() - at - sizeof(MessageHeader));
  std::memcpy(&buf[at + offsetof(MessageHeader, length)], &length,
              sizeof(length));
}

void AppendFailureMessage(std::string& buf, std::size_t index,
                          std::string_view type, std::string_view message) {
  const std::size_t at = BeginMessage(buf, MessageKind::kFailure, index);
  internal::AppendFailure(buf, type, message);
  EndMessage(buf, at);
}

bool NextMessage(std::string_view bytes, std::size_t* pos, Message* message) {
  if (bytes.size() - *pos < sizeof(MessageHeader)) return false;
  MessageHeader h;
  std::memcpy(&h, bytes.data() + *pos, sizeof(h));
  if (bytes.size() - *pos - sizeof(h) < h.length) return false;
  message->kind = h.kind;
  message->index = h.index;
  message->body = bytes.substr(*pos + sizeof(h), h.length);
  *pos += sizeof(h) + h.length;
  return true;
}

}  // namespace fanout::process_internal
