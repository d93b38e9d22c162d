// fanout/core/testing/types.h — the user types the backend tests send
// through fanout: an exception type whose name must reach the caller, and
// result types serialized with cereal across processes and ranks (one with
// no default constructor).
//
//   throw fanout_conformance::BadInput("bad value 37");
//   // -> TaskError type() == "fanout_conformance::BadInput"
#ifndef FANOUT_CORE_TESTING_TYPES_H_
#define FANOUT_CORE_TESTING_TYPES_H_

#include <cereal/access.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fanout_conformance {

// A user exception type, to check the type name reaches the caller.
struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A user result type, serialized by cereal across process boundaries.
struct Point {
  std::string name;
  std::vector<double> xy;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, xy);
  }
  bool operator==(const Point&) const = default;
};

// A user result type without a default constructor (issue 23 item 12): it
// crosses processes and ranks, and checkpoints, built on the other side by
// cereal's load_and_construct from what serialize() wrote.
class Label {
 public:
  explicit Label(std::string text) : text_(std::move(text)) {}
  const std::string& text() const { return text_; }
  bool operator==(const Label&) const = default;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(text_);
  }
  template <class Archive>
  static void load_and_construct(Archive& ar,
                                 cereal::construct<Label>& construct) {
    std::string text;
    ar(text);
    construct(std::move(text));
  }

 private:
  std::string text_;
};

}  // namespace fanout_conformance

#endif  // FANOUT_CORE_TESTING_TYPES_H_
