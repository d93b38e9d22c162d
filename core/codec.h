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
//
// A type without a default constructor is built by cereal's
// load_and_construct, which reads what serialize() wrote and calls a
// constructor (nothing else can know which one):
//
//   struct Label {
//     explicit Label(std::string text) : text(std::move(text)) {}
//     std::string text;
//     template <class Archive> void serialize(Archive& ar) { ar(text); }
//     template <class Archive>
//     static void load_and_construct(Archive& ar,
//                                    cereal::construct<Label>& construct) {
//       std::string text;
//       ar(text);
//       construct(std::move(text));
//     }
//   };
#ifndef FANOUT_CORE_CODEC_H_
#define FANOUT_CORE_CODEC_H_

#include <array>
#include <bit>
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
#include <cstring>
#include <new>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/errors.h"

namespace fanout::codec {

namespace internal {

// A streambuf that appends to a std::string: cereal needs a std::ostream,
// and an ostringstream per value (locale set-up, a copy out) costs more than
// encoding a short string.
class AppendBuf final : public std::streambuf {
 public:
  std::string* out = nullptr;

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) out->push_back(static_cast<char>(c));
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out->append(s, static_cast<std::size_t>(n));
    return n;
  }
};

// A streambuf reading a byte range in place.
class ViewBuf final : public std::streambuf {
 public:
  void Reset(std::string_view bytes) {
    char* p = const_cast<char*>(bytes.data());
    setg(p, p, p + bytes.size());
  }
};

// One stream per thread, reused by every value; `busy` guards the rare value
// whose serialize() encodes another value with the codec.
struct Streams {
  AppendBuf append;
  ViewBuf view;
  std::ostream out{&append};
  std::istream in{&view};
  bool busy = false;
};

inline Streams& ThreadStreams() {
  thread_local Streams streams;
  return streams;
}

}  // namespace internal

// True when T is copied byte for byte rather than serialized.
template <class T>
inline constexpr bool kIsTrivial = std::is_trivially_copyable_v<T>;

// True when T has cereal's load_and_construct (a static member, or a
// cereal::LoadAndConstruct<T> specialization): cereal's way to load a type
// without a default constructor. decode<T> then builds the value with it.
template <class T>
inline constexpr bool kLoadsAndConstructs =
    cereal::traits::has_load_and_construct<T,
                                           cereal::BinaryInputArchive>::value;

// True when T can cross a process boundary: copied byte for byte, or
// serialized with cereal (a serialize() member or free function, or one of
// the standard types cereal knows) and decoded into a default-constructed
// value or built by its load_and_construct.
template <class T>
inline constexpr bool kCanCross =
    kIsTrivial<T> ||
    (cereal::traits::is_output_serializable<
         T, cereal::BinaryOutputArchive>::value &&
     ((cereal::traits::is_input_serializable<
           T, cereal::BinaryInputArchive>::value &&
       std::is_default_constructible_v<T>) ||
      (kLoadsAndConstructs<T> && std::is_move_constructible_v<T>)));

// Appends the encoding of `value` to `out`.
template <class T>
void encode(const T& value, std::string& out) {
  if constexpr (kIsTrivial<T>) {
    out.append(reinterpret_cast<const char*>(&value), sizeof(T));
  } else {
    internal::Streams& streams = internal::ThreadStreams();
    if (streams.busy) {
      std::ostringstream stream(std::ios::binary);
      {
        cereal::BinaryOutputArchive archive(stream);
        archive(value);
      }
      out += std::move(stream).str();
      return;
    }
    streams.busy = true;
    streams.append.out = &out;
    streams.out.clear();
    try {
      cereal::BinaryOutputArchive archive(streams.out);
      archive(value);
    } catch (...) {
      streams.busy = false;
      throw;
    }
    streams.busy = false;
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
    if constexpr (std::is_default_constructible_v<T>) {
      T value;
      std::memcpy(static_cast<void*>(&value), bytes.data(), sizeof(T));
      return value;
    } else {  // no constructor to call: the bytes are the value
      std::array<unsigned char, sizeof(T)> raw;
      std::memcpy(raw.data(), bytes.data(), sizeof(T));
      return std::bit_cast<T>(raw);
    }
  } else if constexpr (!std::is_default_constructible_v<T>) {
    static_assert(kLoadsAndConstructs<T>,
                  "fanout::codec::decode needs a default-constructible type "
                  "or cereal's load_and_construct");
    // Built in place by its load_and_construct (through cereal's own
    // wrapper for it), from the same bytes as any value of T: encode()
    // wrote them with its serialize() or save().
    alignas(T) unsigned char storage[sizeof(T)];
    T* const built = reinterpret_cast<T*>(storage);
    internal::Streams& streams = internal::ThreadStreams();
    auto load = [&](std::istream& in) {
      try {
        cereal::BinaryInputArchive archive(in);
        cereal::memory_detail::LoadAndConstructLoadWrapper<
            cereal::BinaryInputArchive, T>
            wrapper(built);
        archive(wrapper);
        // Throws when load_and_construct never called construct(...).
        (void)wrapper.construct.ptr();
      } catch (const cereal::Exception& e) {
        throw Error(std::string("codec: cannot decode value: ") + e.what());
      }
    };
    const auto take = [&] {
      T* const value = std::launder(built);
      T out(std::move(*value));
      value->~T();
      return out;
    };
    if (streams.busy) {
      internal::ViewBuf view;
      view.Reset(bytes);
      std::istream in(&view);
      load(in);
      return take();
    }
    streams.busy = true;
    streams.view.Reset(bytes);
    streams.in.clear();
    try {
      load(streams.in);
    } catch (...) {
      streams.busy = false;
      throw;
    }
    streams.busy = false;
    return take();
  } else {
    T value;
    internal::Streams& streams = internal::ThreadStreams();
    auto load = [&](std::istream& in) {
      try {
        cereal::BinaryInputArchive archive(in);
        archive(value);
      } catch (const cereal::Exception& e) {
        throw Error(std::string("codec: cannot decode value: ") + e.what());
      }
    };
    if (streams.busy) {  // a serialize() decoding from inside a decode
      internal::ViewBuf view;
      view.Reset(bytes);
      std::istream in(&view);
      load(in);
      return value;
    }
    streams.busy = true;
    streams.view.Reset(bytes);
    streams.in.clear();
    try {
      load(streams.in);
    } catch (...) {
      streams.busy = false;
      throw;
    }
    streams.busy = false;
    return value;
  }
}

}  // namespace fanout::codec

#endif  // FANOUT_CORE_CODEC_H_
