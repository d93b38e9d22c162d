// fanout/core/internal/failure_wire.h — a task's failure (its exception's
// type and message) as bytes, for whatever carries it out of a worker
// process: the one encoding every backend and spawn use.
//
//   std::string bytes;
//   fanout::internal::AppendFailure(bytes, "std::runtime_error", "boom");
//   ... send bytes ...
//   std::size_t used = 0;
//   std::optional<fanout::internal::WireFailure> f =
//       fanout::internal::ParseFailure(bytes, &used);  // type, message
//
// The encoding is self-delimiting (a 32-bit length before each string), so
// failures can stand one after another or among other data, and a reader
// can tell a truncated one. Lengths are in host byte order: both ends are
// the same program on one machine, or on machines of one architecture.
// IWYU pragma: private, include "core/internal/failure_wire.h"
#ifndef FANOUT_CORE_INTERNAL_FAILURE_WIRE_H_
#define FANOUT_CORE_INTERNAL_FAILURE_WIRE_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace fanout::internal {

// A failure read back: the exception's type (demangled, or "" for none) and
// its message.
struct WireFailure {
  std::string type;
  std::string message;
};

// Appends the encoding of one failure to `out`.
void AppendFailure(std::string& out, std::string_view type,
                   std::string_view message);

// Reads the failure at the front of `bytes`; sets *used (when given) to the
// bytes it took. std::nullopt when `bytes` does not start with a whole one.
std::optional<WireFailure> ParseFailure(std::string_view bytes,
                                        std::size_t* used = nullptr);

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_FAILURE_WIRE_H_
