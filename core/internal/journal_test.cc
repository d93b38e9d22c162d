// The checkpoint journal on its own: records round-trip; a file cut at any
// byte of its last frames resumes with exactly the records of the whole
// frames; a flipped bit anywhere (header, lengths, records, checksums, the
// last frame too) and a header of another call are refused with their exact
// messages, and the file is left as it is.
#include "core/internal/journal.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fanout::internal {
namespace {

using Records = std::vector<std::pair<std::uint64_t, std::string>>;

const JournalIdentity kId{
    .tasks = 100, .type = "long long", .kind = "map", .key = "a"};

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  unlink(path.c_str());
  return path;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

Records Open(const std::string& path, const JournalIdentity& id = kId,
             bool writable = true) {
  Records got;
  Journal j(path, id, writable, [&](std::uint64_t i, std::string_view b) {
    got.emplace_back(i, b);
  });
  return got;
}

// Writes `records` in frames of `per_frame`, a write() each; returns the
// file size after each frame.
std::vector<std::size_t> Write(const std::string& path, const Records& records,
                               std::size_t per_frame) {
  std::vector<std::size_t> ends;
  Journal j(path, kId, true, [](std::uint64_t, std::string_view) {});
  std::size_t size = Journal::Header(kId).size();
  for (std::size_t first = 0; first < records.size(); first += per_frame) {
    std::string batch;
    const std::size_t frame = Journal::BeginFrame(&batch);
    for (std::size_t k = first; k < std::min(first + per_frame, records.size());
         ++k) {
      const std::size_t at = Journal::BeginRecord(&batch, records[k].first);
      batch += records[k].second;
      Journal::EndRecord(&batch, at);
    }
    EXPECT_TRUE(Journal::EndFrame(&batch, frame));
    j.Append(batch);
    size += batch.size();
    ends.push_back(size);
  }
  return ends;
}

Records Sample() {
  return {{0, "zero"},
          {7, std::string(3, '\0')},
          {3, ""},
          {99, "last one"},
          {7, "repeat"}};
}

TEST(Journal, RoundTripsRecordsInFileOrderRepeatsIncluded) {
  const std::string path = TempPath("round_trip");
  Write(path, Sample(), 2);
  EXPECT_EQ(Open(path), Sample());
  // Reopening appends nothing and changes nothing.
  const std::string before = ReadBytes(path);
  EXPECT_EQ(Open(path), Sample());
  EXPECT_EQ(ReadBytes(path), before);
}

TEST(Journal, NewFileGetsTheHeaderOnly) {
  const std::string path = TempPath("new");
  EXPECT_TRUE(Open(path).empty());
  EXPECT_EQ(ReadBytes(path), Journal::Header(kId));
}

TEST(Journal, ReadOnlyOpenOfAMissingFileIsEmptyAndCreatesNothing) {
  const std::string path = TempPath("missing");
  EXPECT_TRUE(Open(path, kId, /*writable=*/false).empty());
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

TEST(Journal, ARunOfFixedSizeResultsReadsBackTaskByTask) {
  const std::string path = TempPath("run");
  {
    Journal j(path, kId, true, [](std::uint64_t, std::string_view) {});
    const std::uint64_t values[] = {10, 11, 12};
    std::string batch;
    const std::size_t frame = Journal::BeginFrame(&batch);
    Journal::AppendRun(&batch, 5, 3, sizeof(values[0]), values);
    const std::size_t at = Journal::BeginRecord(&batch, 50);
    batch += "x";
    Journal::EndRecord(&batch, at);
    Journal::AppendRun(&batch, 97, 3, 0, nullptr);  // void results
    ASSERT_TRUE(Journal::EndFrame(&batch, frame));
    // Three records of 16 bytes, 24 + 1 bytes of results, head and checksum.
    EXPECT_EQ(batch.size(), 16u + 3 * 16 + 24 + 1 + 8);
    j.Append(batch);
  }
  auto word = [](std::uint64_t v) {
    return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
  };
  EXPECT_EQ(Open(path), (Records{{5, word(10)},
                                 {6, word(11)},
                                 {7, word(12)},
                                 {50, "x"},
                                 {97, ""},
                                 {98, ""},
                                 {99, ""}}));
}

TEST(Journal, ASoundRunPastTheTasksIsDamage) {
  const std::string path = TempPath("run_past");
  {
    Journal j(path, kId, true, [](std::uint64_t, std::string_view) {});
    const char data[4] = {};
    std::string batch;
    const std::size_t frame = Journal::BeginFrame(&batch);
    Journal::AppendRun(&batch, 98, 4, 1, data);  // tasks 98 .. 101 of 100
    Journal::EndFrame(&batch, frame);
    j.Append(batch);
  }
  EXPECT_THROW(Open(path), JournalError);
}

TEST(Journal, AFrameWithoutRecordsIsNotWritten) {
  std::string batch = "x";
  const std::size_t frame = Journal::BeginFrame(&batch);
  EXPECT_FALSE(Journal::EndFrame(&batch, frame));
  EXPECT_EQ(batch, "x");
}

TEST(Journal, CutAtEveryByteOfTheLastFramesKeepsTheWholeOnes) {
  const std::string path = TempPath("cut");
  const Records all = Sample();
  constexpr std::size_t kPerFrame = 2;
  const std::vector<std::size_t> ends = Write(path, all, kPerFrame);
  const std::string full = ReadBytes(path);
  const std::size_t header = Journal::Header(kId).size();
  // Every cut from inside the header to the end of the file.
  for (std::size_t cut = 0; cut <= full.size(); ++cut) {
    WriteBytes(path, full.substr(0, cut));
    std::size_t whole = 0;
    while (whole < ends.size() && ends[whole] <= cut) ++whole;
    const Records expected(all.begin(),
                           all.begin() + static_cast<std::ptrdiff_t>(std::min(
                                             whole * kPerFrame, all.size())));
    SCOPED_TRACE("cut at " + std::to_string(cut));
    ASSERT_EQ(Open(path), expected);
    // The torn tail is gone (a torn header is written anew) ...
    const std::size_t kept =
        cut < header ? header : (whole == 0 ? header : ends[whole - 1]);
    ASSERT_EQ(ReadBytes(path).size(), kept);
    // ... so what is appended next is read back after the whole records.
    {
      Journal j(path, kId, true, [](std::uint64_t, std::string_view) {});
      std::string batch;
      const std::size_t frame = Journal::BeginFrame(&batch);
      const std::size_t at = Journal::BeginRecord(&batch, 42);
      batch += "after";
      Journal::EndRecord(&batch, at);
      Journal::EndFrame(&batch, frame);
      j.Append(batch);
    }
    Records then = expected;
    then.emplace_back(42, "after");
    ASSERT_EQ(Open(path), then);
  }
}

// Writes `records` as Write does, then one frame of a run of fixed-size
// results (AppendRun), as a map of trivial results writes them.
std::string SampleFile(const std::string& path) {
  Write(path, Sample(), 2);
  {
    Journal j(path, kId, true, [](std::uint64_t, std::string_view) {});
    const std::uint64_t values[] = {10, 11, 12};
    std::string batch;
    const std::size_t frame = Journal::BeginFrame(&batch);
    Journal::AppendRun(&batch, 20, 3, sizeof(values[0]), values);
    EXPECT_TRUE(Journal::EndFrame(&batch, frame));
    j.Append(batch);
  }
  return ReadBytes(path);
}

// Every bit of every byte, and every byte inverted, anywhere in the file
// (header, frame heads, records, checksums): the open either reads back
// exactly the records written and leaves the file as it is, or refuses it
// and leaves it as it is. Never fewer records, never a file cut back.
TEST(Journal, EveryFlippedBitReadsBackTheSameRecordsOrIsRefused) {
  const std::string path = TempPath("flip_every");
  const std::string full = SampleFile(path);
  const Records all = Open(path);
  ASSERT_EQ(all.size(), Sample().size() + 3);
  std::size_t refused = 0;
  std::size_t tried = 0;
  for (std::size_t at = 0; at < full.size(); ++at) {
    for (const int mask : {1, 2, 4, 8, 16, 32, 64, 128, 255}) {
      std::string bad = full;
      bad[at] = static_cast<char>(bad[at] ^ mask);
      SCOPED_TRACE("byte " + std::to_string(at) + " ^ " + std::to_string(mask));
      for (const bool writable : {true, false}) {
        WriteBytes(path, bad);
        ++tried;
        try {
          ASSERT_EQ(Open(path, kId, writable), all);
        } catch (const JournalError& e) {
          ASSERT_NE(e.kind(), JournalError::Kind::kIo) << e.what();
          ++refused;
        }
        ASSERT_EQ(ReadBytes(path), bad);
      }
    }
  }
  // Every byte is under a checksum, a magic number or the version: each
  // flip is seen.
  EXPECT_EQ(refused, tried);
}

// The flips the issue found: a high bit of a header length (which read as
// a header cut short: the file was written anew) or of a frame's body
// length (which read as a last frame cut short: it and every frame after it
// were cut off).
TEST(Journal, AFlippedHighBitOfALengthIsRefusedNotCutOff) {
  const std::string path = TempPath("flip_length");
  const std::vector<std::size_t> ends = Write(path, Sample(), 2);
  const std::string full = ReadBytes(path);
  // Header: magic (8), version (4), tasks (8), then the kind's length.
  std::string bad = full;
  bad[23] = static_cast<char>(bad[23] ^ 0x80);
  WriteBytes(path, bad);
  try {
    Open(path);
    FAIL() << "opened a damaged checkpoint";
  } catch (const JournalError& e) {
    EXPECT_EQ(e.kind(), JournalError::Kind::kDamaged);
    EXPECT_EQ(std::string(e.what()),
              "checkpoint " + path +
                  " is damaged: its header's lengths run past the end of the "
                  "file, and it is not this call's header cut short; valid: "
                  "delete " +
                  path + " to start over");
  }
  EXPECT_EQ(ReadBytes(path), bad);
  // The second frame's body length (frame bytes 8..15), its top byte.
  bad = full;
  bad[ends[0] + 15] = static_cast<char>(bad[ends[0] + 15] ^ 0x80);
  WriteBytes(path, bad);
  std::uint64_t body = 0;
  std::memcpy(&body, bad.data() + ends[0] + 8, sizeof(body));
  try {
    Open(path);
    FAIL() << "opened a damaged checkpoint";
  } catch (const JournalError& e) {
    EXPECT_EQ(e.kind(), JournalError::Kind::kDamaged);
    EXPECT_EQ(std::string(e.what()),
              "checkpoint " + path + " is damaged: frame 1 (at byte " +
                  std::to_string(ends[0]) + ") says its body is " +
                  std::to_string(body) +
                  " bytes, past the end of the file, but its 2 records end "
                  "at byte " +
                  std::to_string(ends[1] - 8) +
                  ", so it is not a write cut short; valid: delete " + path +
                  " to start over (its tasks then run again)");
  }
  EXPECT_EQ(ReadBytes(path), bad);
}

// A last frame as long as its head says but failing its checksum was not
// cut short by a kill (that leaves the first bytes of a write): it is
// refused, not dropped with its records.
TEST(Journal, ABadByteInAWholeLastFrameIsRefused) {
  const std::string path = TempPath("flip_last");
  const std::vector<std::size_t> ends = Write(path, Sample(), 3);
  std::string bad = ReadBytes(path);
  bad[ends[0] + 16 + 16] ^= 0x20;  // the payload of the last frame's first
  WriteBytes(path, bad);
  try {
    Open(path);
    FAIL() << "opened a damaged checkpoint";
  } catch (const JournalError& e) {
    EXPECT_EQ(e.kind(), JournalError::Kind::kDamaged);
    EXPECT_EQ(std::string(e.what()),
              "checkpoint " + path + " is damaged: frame 1 (at byte " +
                  std::to_string(ends[0]) +
                  ") is not sound though it is as long as its head says, so "
                  "it is not a write cut short; valid: delete " +
                  path + " to start over (its tasks then run again)");
  }
  EXPECT_EQ(ReadBytes(path), bad);
}

TEST(Journal, ABadByteBeforeTheLastFrameIsRefusedAndLeftAsItIs) {
  const std::string path = TempPath("flip_middle");
  const std::vector<std::size_t> ends = Write(path, Sample(), 2);
  std::string bad = ReadBytes(path);
  bad[ends[0] + 16 + 16] ^= 0x01;  // the payload of the second frame's first
  WriteBytes(path, bad);
  try {
    Open(path);
    FAIL() << "opened a damaged checkpoint";
  } catch (const JournalError& e) {
    EXPECT_EQ(e.kind(), JournalError::Kind::kDamaged);
    EXPECT_EQ(std::string(e.what()),
              "checkpoint " + path + " is damaged: frame 1 (at byte " +
                  std::to_string(ends[0]) + ") is not sound and " +
                  std::to_string(bad.size() - ends[1]) +
                  " bytes follow it, so it is not a write cut short; valid: "
                  "delete " +
                  path + " to start over (its tasks then run again)");
  }
  EXPECT_EQ(ReadBytes(path), bad);
}

TEST(Journal, ASoundFrameWithAnIndexPastTheTasksIsDamage) {
  const std::string path = TempPath("index");
  Write(path, {{1, "y"}, {100, "x"}}, 2);
  try {
    Open(path);
    FAIL();
  } catch (const JournalError& e) {
    EXPECT_EQ(e.kind(), JournalError::Kind::kDamaged);
    EXPECT_EQ(std::string(e.what()),
              "checkpoint " + path + " is damaged: frame 0 (at byte " +
                  std::to_string(Journal::Header(kId).size()) +
                  ") holds records that are not whole, or not of its 100 "
                  "tasks; valid: delete " +
                  path + " to start over (its tasks then run again)");
  }
}

TEST(Journal, AnotherCallsHeaderIsRefusedNamingBoth) {
  const std::string path = TempPath("mismatch");
  Write(path, Sample(), 5);
  const std::string before = ReadBytes(path);
  const std::vector<JournalIdentity> others = {
      {.tasks = 500, .type = "long long", .kind = "map", .key = "a"},
      {.tasks = 100, .type = "int", .kind = "map", .key = "a"},
      {.tasks = 100, .type = "long long", .kind = "imap", .key = "a"},
      {.tasks = 100, .type = "long long", .kind = "map", .key = "b"},
  };
  for (const JournalIdentity& other : others) {
    try {
      Open(path, other);
      FAIL() << other.Describe();
    } catch (const JournalError& e) {
      EXPECT_EQ(e.kind(), JournalError::Kind::kMismatch);
      EXPECT_EQ(std::string(e.what()),
                "checkpoint " + path +
                    " was written for 100 tasks of long long (map, key 'a'); "
                    "this call has " +
                    other.Describe() +
                    "; valid: the same call, or another checkpoint file "
                    "(delete " +
                    path + " to start over)");
    }
  }
  EXPECT_EQ(others[0].Describe(), "500 tasks of long long (map, key 'a')");
  EXPECT_EQ(ReadBytes(path), before);
}

TEST(Journal, AFileThatIsNotACheckpointIsNeverTouched) {
  const std::string path = TempPath("not_mine");
  WriteBytes(path, "precious data\n");
  try {
    Open(path);
    FAIL();
  } catch (const JournalError& e) {
    EXPECT_EQ(e.kind(), JournalError::Kind::kMismatch);
    EXPECT_EQ(std::string(e.what()),
              "checkpoint " + path +
                  " is not a fanout checkpoint (it does not start as one; "
                  "fanout never overwrites such a file); valid: a file "
                  "written by a checkpointed call, or a path that does not "
                  "exist yet");
  }
  EXPECT_EQ(ReadBytes(path), "precious data\n");
}

TEST(Journal, OneWriterAtATime) {
  const std::string path = TempPath("locked");
  Journal first(path, kId, true, [](std::uint64_t, std::string_view) {});
  try {
    Open(path);
    FAIL();
  } catch (const JournalError& e) {
    EXPECT_EQ(std::string(e.what()),
              "checkpoint " + path +
                  " is in use by another call (it holds the file's lock); "
                  "valid: one call at a time per checkpoint file");
  }
  // A reader (an mpi rank that does not write) needs no lock.
  EXPECT_TRUE(Open(path, kId, /*writable=*/false).empty());
}

TEST(Journal, AnUnopenablePathSaysWhy) {
  const std::string dir = TempPath("a_dir");
  mkdir(dir.c_str(), 0755);
  try {
    Open(dir);
    FAIL();
  } catch (const JournalError& e) {
    EXPECT_EQ(e.kind(), JournalError::Kind::kIo);
    EXPECT_EQ(std::string(e.what()),
              "checkpoint " + dir + ": cannot open it: Is a directory");
  }
}

}  // namespace
}  // namespace fanout::internal
