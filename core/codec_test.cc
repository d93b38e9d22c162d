#include "core/codec.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

struct User {
  std::string name;
  std::map<std::string, int> scores;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, scores);
  }
  bool operator==(const User&) const = default;
};

struct Trivial {
  int a;
  double b;
  bool operator==(const Trivial&) const = default;
};

template <class T>
T RoundTrip(const T& v) {
  std::string bytes;
  fanout::codec::encode(v, bytes);
  return fanout::codec::decode<T>(bytes);
}

TEST(Codec, TriviallyCopyableIsPlainCopy) {
  static_assert(fanout::codec::kIsTrivial<Trivial>);
  std::string bytes;
  fanout::codec::encode(Trivial{7, 2.5}, bytes);
  EXPECT_EQ(bytes.size(), sizeof(Trivial));
  EXPECT_EQ(fanout::codec::decode<Trivial>(bytes), (Trivial{7, 2.5}));
  EXPECT_EQ(RoundTrip(249972500250000000LL), 249972500250000000LL);
}

TEST(Codec, StandardTypesThroughCereal) {
  EXPECT_EQ(RoundTrip(std::string("hello\0world", 11)),
            std::string("hello\0world", 11));
  EXPECT_EQ(RoundTrip(std::vector<std::string>{"a", "", "ccc"}),
            (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(RoundTrip(std::optional<int>()), std::optional<int>());
  EXPECT_EQ(RoundTrip(std::make_pair(std::string("k"), 3)),
            std::make_pair(std::string("k"), 3));
}

TEST(Codec, UserSerialize) {
  User u{"ada", {{"x", 1}, {"y", 2}}};
  EXPECT_EQ(RoundTrip(u), u);
}

TEST(Codec, BadBytesThrow) {
  EXPECT_THROW(fanout::codec::decode<int>("abc"), fanout::Error);
  EXPECT_THROW(fanout::codec::decode<std::string>("\x05"), fanout::Error);
}

}  // namespace
