// A real checkpoint (`run --workload=sum --tasks=20000 --checkpoint=F`) with
// one byte damaged: in the header, in each frame's head, its first record's
// head, its first result byte and its checksum. The next run either reads
// back every task and prints the reference answer, or refuses the file with
// one line and leaves it as it is: never fewer tasks read back without a
// word, never a file cut back over whole records.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/subprocess.h"

namespace fanout::testing {
namespace {

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

template <class T>
T Get(const std::string& in, std::size_t at) {
  T v;
  std::memcpy(&v, in.data() + at, sizeof(v));
  return v;
}

// The byte offsets to damage, read from the format journal.h documents:
// the whole header; per frame its head (magic, count, body length), its
// first record's head, the first byte after that and its checksum.
std::vector<std::size_t> Targets(const std::string& file) {
  std::vector<std::size_t> at;
  std::size_t p = 8 + 4 + 8;  // magic, version, tasks
  for (int s = 0; s < 3; ++s) p += 4 + Get<std::uint32_t>(file, p);
  p += 8;  // the header's checksum
  for (std::size_t k = 0; k < p; ++k) at.push_back(k);
  while (p < file.size()) {
    const auto body = Get<std::uint64_t>(file, p + 8);
    for (std::size_t k = 0; k < 16 + 16 + 1; ++k) at.push_back(p + k);
    const std::size_t end = p + 16 + body + 8;
    for (std::size_t k = end - 8; k < end; ++k) at.push_back(k);
    p = end;
  }
  EXPECT_EQ(p, file.size());
  return at;
}

TEST(CheckpointDamage, AnyDamagedByteIsRefusedOrEveryTaskReadBack) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(dir != nullptr ? dir : "/tmp") + "/sum.ckpt";
  unlink(path.c_str());
  const std::vector<std::string> args = {"--workload=sum", "--tasks=20000",
                                         "--backend=sequential",
                                         "--checkpoint=" + path};
  const std::string answer = "999940000500000000";
  Result r = RunProgram(Cli(), args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).at(0), answer);
  const std::string full = ReadBytes(path);
  const std::vector<std::size_t> targets = Targets(full);
  ASSERT_GT(targets.size(), 84u + 2 * 41u) << "a header and 2 frames or more";
  const std::string damaged =
      "run: error: checkpoint " + path + " is damaged: ";
  const std::string resumed =
      "run: resumed from " + path + ": 20000 of 20000 tasks already done\n";
  std::size_t refused = 0;
  for (const std::size_t at : targets) {
    for (const int mask : {0x80, 0x01}) {
      std::string bad = full;
      bad[at] = static_cast<char>(bad[at] ^ mask);
      WriteBytes(path, bad);
      SCOPED_TRACE("byte " + std::to_string(at) + " ^ " + std::to_string(mask));
      r = RunProgram(Cli(), args);
      if (r.exit_code == 0) {
        ASSERT_EQ(Lines(r.out).at(0), answer);
        ASSERT_EQ(r.err, resumed);
      } else if (r.err.rfind(damaged, 0) == 0) {
        // One line, naming the file and how to start over.
        ASSERT_EQ(r.exit_code, 1) << r.err;
        ASSERT_EQ(Lines(r.err).size(), 1u) << r.err;
        ASSERT_NE(r.err.find("; valid: delete " + path + " to start over"),
                  std::string::npos)
            << r.err;
        ++refused;
      } else {
        // The magic number or the version: not a checkpoint of this fanout.
        ASSERT_EQ(r.exit_code, 2) << r.err;
        ASSERT_LT(at, 12u) << r.err;
        ASSERT_EQ(Lines(r.err).size(), 1u) << r.err;
        ++refused;
      }
      ASSERT_EQ(ReadBytes(path), bad) << "the file was changed";
    }
  }
  // Every byte damaged here is under a checksum, the magic or the version.
  EXPECT_EQ(refused, 2 * targets.size());
}

}  // namespace
}  // namespace fanout::testing
