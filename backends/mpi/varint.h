// fanout/backends/mpi/varint.h — the bytes of the result exchange: base-128
// varints and length-prefixed strings, read back with bounds checks.
// IWYU pragma: private, include "backends/mpi/mpi.h"
//
//   std::string out;
//   PutVarint(out, 300);
//   PutBytes(out, "abc");
//   Reader in(out);
//   in.Varint();  // 300
//   in.Bytes();   // "abc"; a truncated message throws fanout::Error
#ifndef FANOUT_BACKENDS_MPI_VARINT_H_
#define FANOUT_BACKENDS_MPI_VARINT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/errors.h"

namespace fanout::mpi::internal {

inline void PutVarint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

inline void PutBytes(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out.append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  std::uint64_t Varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const auto byte = static_cast<unsigned char>(Take(1)[0]);
      v |= std::uint64_t(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return v;
    }
    throw Error("mpi backend: corrupt result message (bad varint)");
  }
  std::string_view Bytes() { return Take(Varint()); }
  std::string_view Take(std::size_t n) {
    if (n > s_.size() - pos_) {
      throw Error("mpi backend: corrupt result message (truncated)");
    }
    std::string_view out = s_.substr(pos_, n);
    pos_ += n;
    return out;
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

}  // namespace fanout::mpi::internal

#endif  // FANOUT_BACKENDS_MPI_VARINT_H_
