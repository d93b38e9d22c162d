// Commands mode's --pipe: stdin cut into blocks of whole records, each the
// stdin of one command (GNU parallel's --pipe with --block, --recend, -N).
// The block rule as a function, the reader over a pipe fed in small pieces,
// then the CLI run as a process, its stdin a pipe and a regular file (which
// it cuts without reading): every record reaches exactly one command whole,
// blocks are the sizes the rule says, a command that does not read its
// block does not stop the run, memory stays flat however long the input,
// and flags that would do nothing are refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "commands/pipe.h"
#include "core/internal/fd.h"
#include "tests/subprocess.h"

namespace fanout::testing {
namespace {

using commands::Block;
using commands::BlockReader;
using commands::BlockRule;
using commands::NextBlock;

TEST(NextBlock, WholeRecordsThatFitTheBlock) {
  const BlockRule rule{.block_bytes = 8};
  EXPECT_EQ(NextBlock("aa\nbb\ncc\ndd\n", rule, false), 6u);  // "aa\nbb\n"
  EXPECT_EQ(NextBlock("aa\nbb", rule, false), 0u);  // short: wait for more
  EXPECT_EQ(NextBlock("aa\nbb", rule, true), 5u);   // the last block
  // Exactly a block's worth: cut only once more is there (it may be all).
  EXPECT_EQ(NextBlock("aa\nbb\ncc", rule, false), 0u);
  EXPECT_EQ(NextBlock("aa\nbb\ncc", rule, true), 8u);
  EXPECT_EQ(NextBlock("aa\nbb\ncc\n", rule, false), 6u);
  EXPECT_EQ(NextBlock("", rule, true), 0u);
  // A record longer than the block is a block of its own, never cut.
  EXPECT_EQ(NextBlock("0123456789ab\nc\n", rule, false), 13u);
  EXPECT_EQ(NextBlock("0123456789ab", rule, false), 0u);
  EXPECT_EQ(NextBlock("0123456789ab", rule, true), 12u);
}

TEST(NextBlock, RecordEndOfSeveralBytesAndRecordCounts) {
  const BlockRule by_size{.block_bytes = 6, .recend = "\n\n"};
  EXPECT_EQ(NextBlock("a\nb\n\nc\n\n", by_size, false), 5u);  // "a\nb\n\n"
  // An end across the block's edge is not within it: the record is longer.
  EXPECT_EQ(NextBlock("abcde\n\nf\n\n", by_size, false), 7u);
  const BlockRule by_count{.block_bytes = 1, .records = 2};
  EXPECT_EQ(NextBlock("1\n2\n3\n", by_count, false), 4u);
  EXPECT_EQ(NextBlock("1\n2", by_count, false), 0u);
  EXPECT_EQ(NextBlock("1\n2", by_count, true), 3u);
}

// Lines of several lengths, one of them longer than any block below.
std::string Lines(int n) {
  std::ostringstream s;
  for (int i = 1; i <= n; ++i) {
    s << "line " << i << std::string(static_cast<std::size_t>(i % 37), '.')
      << "\n";
    if (i == n / 2) s << std::string(150000, 'L') << "\n";
  }
  return s.str();
}

// The blocks NextBlock makes of `input`, block after block.
std::vector<std::string> Reference(const std::string& input,
                                   const BlockRule& rule) {
  std::vector<std::string> blocks;
  std::string_view rest = input;
  while (const std::size_t n = NextBlock(rest, rule, true)) {
    blocks.emplace_back(rest.substr(0, n));
    rest.remove_prefix(n);
  }
  return blocks;
}

// The reader over a pipe that a thread fills a few bytes at a time: the
// blocks are the rule's, by size and by records, whatever the reads cut.
TEST(BlockReader, BlocksOfAPipeAreTheRulesWhateverTheReadsCut) {
  const std::string input = Lines(3000);
  for (const BlockRule& rule :
       {BlockRule{.block_bytes = 1000}, BlockRule{.block_bytes = 1},
        BlockRule{.block_bytes = 300, .recend = "1\n"}, BlockRule{.records = 7},
        BlockRule{.recend = "0.", .records = 1}}) {
    internal::Pipe p;
    ASSERT_TRUE(internal::MakePipe(&p));
    std::thread writer([&] {
      for (std::size_t at = 0; at < input.size(); at += 777) {
        internal::WriteAll(p.write, input.data() + at,
                           std::min<std::size_t>(777, input.size() - at));
      }
      internal::CloseFd(&p.write);
    });
    BlockReader reader(p.read, rule);
    EXPECT_FALSE(reader.in_file());
    std::vector<std::string> blocks;
    for (bool eof = false; !eof;) {
      const ssize_t got = reader.Read();
      if (got < 0) {
        ADD_FAILURE() << "read: " << errno;
        break;
      }
      eof = got == 0;
      while (std::optional<Block> block = reader.Next(eof)) {
        blocks.emplace_back(block->bytes.view());
        reader.Recycle(*std::move(block));
      }
    }
    writer.join();
    internal::CloseFd(&p.read);
    EXPECT_EQ(blocks, Reference(input, rule))
        << rule.block_bytes << " " << rule.records;
  }
}

// A file of this test's own, named `name`.
std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp != nullptr ? tmp : "/tmp") + "/pipe_" + name + "_" +
         std::to_string(getpid());
}

// The CLI's stdin: a pipe, or a regular file (cut without being read).
enum class Feed { kPipe, kFile };

class Pipe : public ::testing::TestWithParam<Feed> {
 protected:
  Result RunOn(const std::vector<std::string>& args, const std::string& input) {
    if (GetParam() == Feed::kPipe) return RunProgram(Cli(), args, input);
    const std::string path = TempPath("input");
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << input;
    }
    Result r = RunProgramOnFile(Cli(), args, path);
    std::remove(path.c_str());
    return r;
  }
};

INSTANTIATE_TEST_SUITE_P(Feeds, Pipe,
                         ::testing::Values(Feed::kPipe, Feed::kFile),
                         [](const auto& info) {
                           return info.param == Feed::kPipe ? "FromAPipe"
                                                            : "FromAFile";
                         });

// Each command's block, as the framed output of printf '<'; cat; printf '>'.
std::vector<std::string> Framed(const std::string& out) {
  std::vector<std::string> blocks;
  for (std::size_t at = 0; at < out.size();) {
    EXPECT_EQ(out[at], '<') << "at " << at;
    const std::size_t end = out.find('>', at);
    if (end == std::string::npos) {
      ADD_FAILURE() << "unframed output at " << at;
      break;
    }
    blocks.push_back(out.substr(at + 1, end - at - 1));
    at = end + 1;
  }
  return blocks;
}

TEST_P(Pipe, EveryRecordReachesExactlyOneCommandWhole) {
  const std::string input = Lines(20000);  // ~570 KB, one line of 150 KB
  // Each command prints its block back, framed: in input order (-k) they
  // are exactly the rule's blocks, so each record is in one block, whole.
  const Result r = RunOn(
      {"--pipe", "--block=10k", "-k", "--", "printf '<'; cat; printf '>'"},
      input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> blocks = Framed(r.out);
  const std::vector<std::string> expected =
      Reference(input, {.block_bytes = 10 << 10});
  ASSERT_EQ(blocks.size(), expected.size());
  std::size_t longest = 0;
  for (std::size_t k = 0; k < blocks.size(); ++k) {
    ASSERT_EQ(blocks[k], expected[k]) << "block " << k;
    ASSERT_EQ(blocks[k].back(), '\n') << "block " << k << " cuts a line";
    if (blocks[k].size() > (10 << 10)) {
      // Only the long line, alone in its block.
      EXPECT_EQ(blocks[k], std::string(150000, 'L') + "\n");
      ++longest;
    }
  }
  EXPECT_EQ(longest, 1u);
  EXPECT_GT(blocks.size(), 40u);
  EXPECT_NE(r.err.find(std::to_string(blocks.size()) + " run, " +
                       std::to_string(blocks.size()) + " ok, 0 failed"),
            std::string::npos)
      << r.err;
  // Unordered, each record still reaches exactly one command: the blocks,
  // in whatever order they ended, are the same multiset.
  const Result u = RunOn(
      {"--pipe", "--block=10k", "-j4", "--", "printf '<'; cat; printf '>'"},
      input);
  ASSERT_EQ(u.exit_code, 0) << u.err;
  std::vector<std::string> got = Framed(u.out), want = expected;
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_TRUE(got == want);
}

TEST_P(Pipe, RecordsPerBlockAndTheirEnd) {
  // -N 3: three lines a block, the last one what is left.
  std::string ten;
  for (int i = 1; i <= 10; ++i) ten += "line " + std::to_string(i) + "\n";
  Result r = RunOn({"--pipe", "-N3", "-k", "--", "echo {#}: $(wc -l)"}, ten);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1: 3\n2: 3\n3: 3\n4: 1\n");
  r = RunOn({"--pipe", "-N", "4", "-k", "--", "printf '<'; cat; printf '>'"},
            ten);
  EXPECT_EQ(r.out,
            "<line 1\nline 2\nline 3\nline 4\n><line 5\nline 6\nline 7\n"
            "line 8\n><line 9\nline 10\n>");
  // NUL-ended records, one a command; the last one has no end.
  r = RunOn({"--pipe", "--recend=\\0", "--records=1", "-k", "--",
             "tr '\\0' '|'; echo"},
            std::string("a b\0c\0d", 7));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a b|\nc|\nd\n");
  // A record end of two bytes (paragraphs), by size: a block holds the
  // whole paragraphs that fit in 12 bytes, never cutting one.
  r = RunOn({"--pipe", "--recend=\\n\\n", "--block=12", "-k", "--",
             "printf '<'; cat; printf '>'"},
            "p1 a\np1 b\n\np2\n\np3 long one\n\np4\n\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<p1 a\np1 b\n\n><p2\n\n><p3 long one\n\n><p4\n\n>");
  // --block=1: every record a block of its own.
  r = RunOn({"--pipe", "--block=1", "-k", "--", "printf '<'; cat; printf '>'"},
            "a\nbb\n\nccc");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<a\n><bb\n><\n><ccc>");
  // The largest --block is taken: the whole input in one block.
  r = RunOn({"--pipe", "--block=1G", "--", "wc -l"}, ten);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "10\n");
}

TEST_P(Pipe, ACommandThatDoesNotReadItsBlockIsNoErrorOfTheRun) {
  // head exits after 2 bytes: the rest of its 1 MiB block cannot be
  // written (EPIPE), which must neither kill run (SIGPIPE) nor count.
  std::string lines;
  for (int i = 0; i < 2048; ++i) lines += std::string(4095, 'x') + "\n";
  const Result r = RunOn({"--pipe", "--", "head -c 2; echo"}, lines);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // 8 MiB of 4 KiB lines in blocks of 1 MiB (the default): 256 lines each,
  // 8 blocks, each command printing its first two bytes.
  std::string expected;
  for (int k = 0; k < 8; ++k) expected += "xx\n";
  EXPECT_EQ(r.out, expected);
  EXPECT_NE(r.err.find("8 run, 8 ok, 0 failed"), std::string::npos) << r.err;
}

TEST_P(Pipe, MemoryStaysFlatHoweverLongTheInput) {
  // 16 MiB and 128 MiB of input in blocks of 1 MiB: at most 2 x --jobs
  // blocks are held, so the peak resident memory grows by far less than
  // the input (from a file, no block is in memory at all). The input is
  // written to a file a line at a time and never held here: a forked
  // child's peak counts the pages of the process it was forked from.
  const std::string path = TempPath("flat");
  const std::string line = std::string(99, 'x') + "\n";
  const std::size_t sizes[2] = {16 << 20, 128 << 20};
  std::size_t peak[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    std::size_t size = 0;
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      for (; size + line.size() <= sizes[k]; size += line.size()) f << line;
    }
    const std::vector<std::string> args = {"--pipe", "--block=1M", "-j2", "--",
                                           "wc -c"};
    Result r;
    if (GetParam() == Feed::kFile) {
      r = RunProgramOnFile(Cli(), args, path);
    } else {
      std::vector<std::string> sh = {"-c", "cat \"$0\" | \"$@\"", path, Cli()};
      sh.insert(sh.end(), args.begin(), args.end());
      r = RunProgram("/bin/sh", sh);
    }
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::size_t total = 0;
    for (const std::string& count : testing::Lines(r.out)) {
      total += std::stoull(count);
    }
    EXPECT_EQ(total, size);
    peak[k] = static_cast<std::size_t>(r.max_rss_kb) << 10;
  }
  std::remove(path.c_str());
  EXPECT_LT(peak[1], peak[0] + (16 << 20))
      << "peak RSS " << (peak[0] >> 20) << " MiB for 16 MiB of input, "
      << (peak[1] >> 20) << " MiB for 128 MiB";
}

TEST(PipeFlags, FlagsThatWouldDoNothingAreRefused) {
  const std::string valid_pipe =
      "; valid: cat big.log | run --pipe [--block=SIZE] [--recend=TEXT] "
      "[-N RECORDS] COMMAND\n";
  const std::string without_pipe =
      " shapes --pipe's blocks and does nothing without it; valid: with "
      "--pipe, as in cat big.log | run --pipe --block=10M grep -c ERROR\n";
  const std::string block_range =
      " is out of range; valid: 1 byte to 1G, as --block=10M (GNU "
      "parallel's default: 1M)\n";
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--block=1M", "--", "wc", "-l"}, "run: --block" + without_pipe},
      {{"--recend=\\0", "--", "wc", "-l"}, "run: --recend" + without_pipe},
      {{"-N", "2", "--", "wc", "-l"}, "run: --records" + without_pipe},
      {{"-N2", "--", "wc", "-l"}, "run: --records" + without_pipe},
      {{"--pipe", "--", "wc", "-l", ":::", "a"},
       "run: --pipe feeds blocks of stdin to the commands, so it takes no ::: "
       "or :::: arguments and no --commands" +
           valid_pipe},
      {{"--pipe", "--commands=-"},
       "run: --pipe feeds blocks of stdin to the commands, and no command "
       "was given" +
           valid_pipe},
      {{"--pipe", "-0", "--", "wc"},
       "run: --pipe feeds blocks of stdin to the commands, so --null has no "
       "items to split (for NUL-ended records: --recend='\\0')" +
           valid_pipe},
      {{"--pipe", "--colsep=,", "--", "wc"},
       "run: --pipe feeds blocks of stdin to the commands, so --colsep has no "
       "items to split" +
           valid_pipe},
      {{"--pipe", "--dry-run", "--", "wc"},
       "run: --pipe feeds blocks of stdin to the commands, which --dry-run "
       "would have to run to show" +
           valid_pipe},
      {{"--pipe", "--backend=mpi", "--", "wc"},
       "run: --pipe feeds blocks of stdin to the commands, on this host "
       "only, not over mpi's ranks" +
           valid_pipe},
      {{"--pipe", "--block=0", "--", "wc"}, "run: --block=0" + block_range},
      {{"--pipe", "--block=2G", "--", "wc"}, "run: --block=2G" + block_range},
      {{"--pipe", "--block=1.5G", "--", "wc"},
       "run: --block=1.5G" + block_range},
      {{"--pipe", "--block=ten", "--", "wc"},
       "run: --block='ten' is not a size; valid: bytes (268435456) or a "
       "number with K, M, G or T (binary units: 256M, 1.5G, 2GiB); from 1 "
       "byte to 1G\n"},
      {{"--pipe", "-N", "-1", "--", "wc"},
       "run: --records=-1 is invalid; valid: records a block, 0 (blocks by "
       "--block) to 1073741824\n"},
      {{"--pipe", "--recend=", "--", "wc"},
       "run: --recend is empty, so no record would ever end; valid: the text "
       "that ends a record, as --recend='\\n' (a line, the default) or "
       "--recend='\\0'\n"},
      {{"--pipe", "--recend=\\q", "--", "wc"},
       "run: --recend=\\q: '\\q' is not an escape; valid: \\n, \\t, \\r, \\0, "
       "\\\\ or plain text, as --recend='\\n\\n'\n"},
      {{"--pipe", "--workload=sum"},
       "run: --pipe is for commands mode, not workload mode; valid: with "
       "--commands=FILE or arguments, as in: run --pipe wc -l < items\n"},
  };
  for (const Case& c : cases) {
    const Result r = RunProgram(Cli(), c.args, "a\n");
    std::string args;
    for (const std::string& a : c.args) args += a + " ";
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_EQ(r.err, c.message) << args;
    EXPECT_EQ(r.out, "") << args;
  }
}

}  // namespace
}  // namespace fanout::testing
