// The messages a worker sends the caller over its pipe: a task's encoded
// result (for results that are not trivially copyable) or a task's failure.
// Each is a fixed header (kind, body length, task index) and a body; a
// failure's body is core/internal/failure_wire.h's encoding.
// IWYU pragma: private
#ifndef FANOUT_BACKENDS_PROCESS_WIRE_H_
#define FANOUT_BACKENDS_PROCESS_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fanout::process_internal {

enum class MessageKind : std::uint32_t { kResult = 1, kFailure = 2 };

// The worker's side. A message is begun, its body appended to `buf`, and
// then ended; a message begun and then abandoned is cut off with
// buf.resize(at).
std::size_t BeginMessage(std::string& buf, MessageKind kind, std::size_t index);
void EndMessage(std::string& buf, std::size_t at);
// A whole failure message for task `index`.
void AppendFailureMessage(std::string& buf, std::size_t index,
                          std::string_view type, std::string_view message);

// The caller's side: one message read back.
struct Message {
  MessageKind kind;
  std::uint64_t index;
  std::string_view body;  // points into the bytes it was read from
};
// Reads the message that starts at bytes[*pos] and moves *pos past it; false
// (and *pos unchanged) when the bytes do not hold all of it yet.
bool NextMessage(std::string_view bytes, std::size_t* pos, Message* message);

}  // namespace fanout::process_internal

#endif  // FANOUT_BACKENDS_PROCESS_WIRE_H_
