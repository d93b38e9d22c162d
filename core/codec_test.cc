#include "core/codec.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
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

// Issue 23 item 12: types without a default constructor.
struct Label {
  explicit Label(std::string t) : text(std::move(t)) {}
  std::string text;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(text);
  }
  template <class Archive>
  static void load_and_construct(Archive& ar,
                                 cereal::construct<Label>& construct) {
    std::string t;
    ar(t);
    construct(std::move(t));
  }
};

// A load_and_construct that forgets to construct.
struct Forgetful {
  explicit Forgetful(int v) : v(v) {}
  int v;
  std::string pad;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(v, pad);
  }
  template <class Archive>
  static void load_and_construct(Archive& ar, cereal::construct<Forgetful>&) {
    int v = 0;
    std::string pad;
    ar(v, pad);
  }
};

// serialize() and no way to build one from bytes: not crossable (refused
// before any task runs where results cross; process_fault_test).
struct Unbuildable {
  explicit Unbuildable(std::string t) : text(std::move(t)) {}
  std::string text;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(text);
  }
};

struct TrivialNoDefault {
  explicit TrivialNoDefault(int v) : v(v) {}
  int v;
};

TEST(Codec, WithoutADefaultConstructor) {
  static_assert(fanout::codec::kCanCross<Label>);
  static_assert(fanout::codec::kLoadsAndConstructs<Label>);
  std::string bytes;
  fanout::codec::encode(Label("a label, longer than a short string's buffer"),
                        bytes);
  EXPECT_EQ(fanout::codec::decode<Label>(bytes).text,
            "a label, longer than a short string's buffer");
  // The same bytes as a default-constructible type with that serialize().
  std::string plain;
  fanout::codec::encode(
      std::string("a label, longer than a short string's buffer"), plain);
  EXPECT_EQ(bytes, plain);
  // Bytes that are not a Label.
  EXPECT_THROW(fanout::codec::decode<Label>("\x09"), fanout::Error);

  bytes.clear();
  fanout::codec::encode(Forgetful(4), bytes);
  EXPECT_THROW(fanout::codec::decode<Forgetful>(bytes), fanout::Error);

  static_assert(!fanout::codec::kCanCross<Unbuildable>);

  bytes.clear();
  fanout::codec::encode(TrivialNoDefault(41), bytes);
  EXPECT_EQ(fanout::codec::decode<TrivialNoDefault>(bytes).v, 41);
}

}  // namespace
