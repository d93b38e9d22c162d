#include "core/internal/failure_wire.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

namespace fanout::internal {
namespace {

using Length = std::uint32_t;
constexpr std::size_t kMaxLength = std::numeric_limits<Length>::max();

void AppendString(std::string& out, std::string_view s) {
  // Longer than 4 GiB cannot be sent: keep what fits.
  if (s.size() > kMaxLength) s = s.substr(0, kMaxLength);
  const Length length = static_cast<Length>(s.size());
  out.append(reinterpret_cast<const char*>(&length), sizeof(length));
  out.append(s);
}

// Takes one length-prefixed string off the front of *in.
std::optional<std::string> TakeString(std::string_view* in) {
  Length length = 0;
  if (in->size() < sizeof(length)) return std::nullopt;
  std::memcpy(&length, in->data(), sizeof(length));
  in->remove_prefix(sizeof(length));
  if (in->size() < length) return std::nullopt;
  std::string s(in->substr(0, length));
  in->remove_prefix(length);
  return s;
}

}  // namespace

void AppendFailure(std::string& out, std::string_view type,
                   std::string_view message) {
  AppendString(out, type);
  AppendString(out, message);
}

std::optional<WireFailure> ParseFailure(std::string_view bytes,
                                        std::size_t* used) {
  std::string_view in = bytes;
  std::optional<std::string> type = TakeString(&in);
  if (!type) return std::nullopt;
  std::optional<std::string> message = TakeString(&in);
  if (!message) return std::nullopt;
  if (used != nullptr) *used = bytes.size() - in.size();
  return WireFailure{std::move(*type), std::move(*message)};
}

}  // namespace fanout::internal
