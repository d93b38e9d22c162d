// fanout/core/codec.h — values as bytes, for results that cross a process
// (process backend) or a machine (mpi backend).
//
//   std::string bytes;
//   fanout::codec::encode(std::vector<int>{1, 2, 3}, bytes);
//   auto v = fanout::codec::decode<std::vector<int>>(bytes);
//
// Trivially copyable types are copied as they are. Everything else goes
// through cereal's binary archive: the standard containers, strings, pairs,
// tuples, optionals and variants work out of the box, and a user type works
// once it has a `serialize` member (or free function) in cereal's style:
//
//   struct Point {
//     std::string name; double x, y;
//     template <class Archive> void serialize(Archive& ar) { ar(name, x, y); }
//   };
#ifndef FANOUT_CORE_CODEC_H_
#define FANOUT_CORE_CODEC_H_

#include <cstring>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include "core/errors.h"

namespace fanout::codec {

// True when T is copied byte for byte rather than serialized.
template <class T>
inline constexpr bool kIsTrivial = std::is_trivially_copyable_v<T>;

// Appends the encoding of `value` to `out`.
template <class T>
void encode(const T& value, std::string& out) {
  if constexpr (kIsTrivial<T>) {
    out.append(reinterpret_cast<const char*>(&value), sizeof(T));
  } else {
    std::ostringstream stream(std::ios::binary);
    {
      cereal::BinaryOutputArchive archive(stream);
      archive(value);
    }
    out += std::move(stream).str();
  }
}

// Decodes a value encoded by encode<T>. Throws fanout::Error on bytes that
// are not a T's encoding.
template <class T>
T decode(std::string_view bytes) {
  if constexpr (kIsTrivial<T>) {
    if (bytes.size() != sizeof(T)) {
      throw Error("codec: expected " + std::to_string(sizeof(T)) +
                  " bytes, got " + std::to_string(bytes.size()));
    }
    T value;
    std::memcpy(static_cast<void*>(&value), bytes.data(), sizeof(T));
    return value;
  } else {
    static_assert(std::is_default_constructible_v<T>,
                  "fanout::codec::decode needs a default-constructible type");
    std::istringstream stream(std::string(bytes), std::ios::binary);
    T value;
    try {
      cereal::BinaryInputArchive archive(stream);
      archive(value);
    } catch (const cereal::Exception& e) {
      throw Error(std::string("codec: cannot decode value: ") + e.what());
    }
    return value;
  }
}

}  // namespace fanout::codec

#endif  // FANOUT_CORE_CODEC_H_
