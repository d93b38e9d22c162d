// fanout/core/testing/types.h — the user types the backend tests send
// through fanout: an exception type whose name must reach the caller, and a
// result type serialized with cereal across processes and ranks.
//
//   throw fanout_conformance::BadInput("bad value 37");
//   // -> TaskError type() == "fanout_conformance::BadInput"
#ifndef FANOUT_CORE_TESTING_TYPES_H_
#define FANOUT_CORE_TESTING_TYPES_H_

#include <stdexcept>
#include <string>
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

}  // namespace fanout_conformance

#endif  // FANOUT_CORE_TESTING_TYPES_H_
