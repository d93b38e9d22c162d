// Issue 23 item 9: the task-count refusal compares with the memory this
// process may use, not the machine's total: its cgroup's limit (v2 and v1,
// the tightest of its cgroup and their parents, less what they hold beyond
// page cache), ulimit -v and MemAvailable; the refusal names the limit.
// Made-up /proc and cgroup trees hold each source to its numbers; the CLI
// runs under a real ulimit -v. (A real cgroup is not made: this test's own
// cgroup belongs to whatever runs it.)
#include "cli/memory_room.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/subprocess.h"

namespace fanout::cli {
namespace {

constexpr unsigned long long kGiB = 1ULL << 30;
constexpr unsigned long long kMiB = 1ULL << 20;

// A made-up /proc (meminfo, self/{cgroup,mountinfo,status}) and the cgroup
// file systems it names, under TEST_TMPDIR.
class Tree {
 public:
  explicit Tree(const std::string& name) {
    const char* dir = std::getenv("TEST_TMPDIR");
    root_ = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
    std::filesystem::remove_all(root_);
    Write("proc/meminfo",
          "MemTotal:       24683664 kB\n"
          "MemAvailable:   20971520 kB\n");  // 20 GiB
    Write("proc/self/status", "Name:\trun\nVmSize:\t  102400 kB\n");
  }
  std::string proc() const { return root_ + "/proc"; }
  std::string path(const std::string& p) const { return root_ + "/" + p; }
  void Write(const std::string& p, const std::string& text) const {
    std::filesystem::create_directories(
        std::filesystem::path(path(p)).parent_path());
    std::ofstream(path(p)) << text;
  }
  // A mountinfo line for a cgroup file system mounted at `point`.
  std::string Mount(const std::string& root, const std::string& point,
                    const std::string& type, const std::string& options) const {
    return "40 31 0:33 " + root + " " + path(point) + " rw,nosuid - " + type +
           " cgroup " + options + "\n";
  }

 private:
  std::string root_;
};

TEST(MemoryRoom, WithoutLimitsItIsMemAvailable) {
  const Tree t("none");
  const MemoryRoom room = MemoryRoomFrom(t.proc(), RLIM_INFINITY);
  EXPECT_TRUE(room.known);
  EXPECT_EQ(room.bytes, 20 * kGiB);
  EXPECT_EQ(room.source,
            "the machine's MemAvailable (" + t.proc() + "/meminfo)");
}

TEST(MemoryRoom, NothingReadableIsUnknown) {
  const MemoryRoom room = MemoryRoomFrom("/nonexistent", RLIM_INFINITY);
  EXPECT_FALSE(room.known);
}

// cgroup v2 mounted beside v1 (the hybrid layout): the parent's memory.max
// is the limit; what it holds beyond page cache ("file") is taken off.
TEST(MemoryRoom, CgroupV2TheTightestOfItsCgroupAndParents) {
  const Tree t("v2");
  t.Write("proc/self/cgroup", "4:memory:/elsewhere\n0::/job/step\n");
  t.Write("proc/self/mountinfo",
          t.Mount("/", "cg/unified", "cgroup2", "rw,nsdelegate"));
  t.Write("cg/unified/job/step/memory.max", "max\n");
  t.Write("cg/unified/job/memory.max", std::to_string(3 * kGiB) + "\n");
  t.Write("cg/unified/job/memory.current", std::to_string(kGiB) + "\n");
  t.Write("cg/unified/job/memory.stat",
          "anon 100\nfile " + std::to_string(512 * kMiB) + "\n");
  const MemoryRoom room = MemoryRoomFrom(t.proc(), RLIM_INFINITY);
  EXPECT_EQ(room.bytes, 3 * kGiB - 512 * kMiB);
  EXPECT_EQ(room.source,
            "its cgroup's memory.max is 3221225472 bytes (3.0 GiB), "
            "536870912 of them in use (cgroup v2 " +
                t.path("cg/unified/job") + ")");
}

// cgroup v1's memory controller, mounted with a root of its own (as in a
// container): its limit_in_bytes less its usage beyond total_cache. "No
// limit" is written as a huge number.
TEST(MemoryRoom, CgroupV1UnderAMountWithItsOwnRoot) {
  const Tree t("v1");
  t.Write("proc/self/cgroup", "5:cpu,cpuacct:/ctr/x\n4:memory:/ctr/x\n0::/\n");
  t.Write("proc/self/mountinfo",
          t.Mount("/ctr", "cg/memory", "cgroup", "rw,memory") +
              t.Mount("/ctr", "cg/cpu", "cgroup", "rw,cpu,cpuacct"));
  t.Write("cg/memory/memory.limit_in_bytes", "9223372036854771712\n");
  t.Write("cg/memory/x/memory.limit_in_bytes", std::to_string(kGiB) + "\n");
  t.Write("cg/memory/x/memory.usage_in_bytes",
          std::to_string(100 * kMiB) + "\n");
  t.Write("cg/memory/x/memory.stat",
          "cache 1\ntotal_cache " + std::to_string(40 * kMiB) + "\n");
  const MemoryRoom room = MemoryRoomFrom(t.proc(), RLIM_INFINITY);
  EXPECT_EQ(room.bytes, kGiB - 60 * kMiB);
  EXPECT_EQ(room.source,
            "its cgroup's memory.limit_in_bytes is 1073741824 bytes (1.0 "
            "GiB), 62914560 of them in use (cgroup v1 " +
                t.path("cg/memory/x") + ")");
}

// ulimit -v: the limit less what is mapped already (VmSize), when it is the
// tightest; a cgroup with more room does not hide it.
TEST(MemoryRoom, UlimitVLessWhatIsMapped) {
  const Tree t("rlimit");
  t.Write("proc/self/cgroup", "0::/job\n");
  t.Write("proc/self/mountinfo", t.Mount("/", "cg", "cgroup2", "rw"));
  t.Write("cg/job/memory.max", std::to_string(8 * kGiB) + "\n");
  const MemoryRoom room = MemoryRoomFrom(t.proc(), 2 * kGiB);
  EXPECT_EQ(room.bytes, 2 * kGiB - 100 * kMiB);
  EXPECT_EQ(room.source,
            "ulimit -v (RLIMIT_AS) is 2147483648 bytes (2.0 GiB), 104857600 "
            "of them mapped already");
}

// The case on a real process: results that fit the machine but not
// ulimit -v were accepted and then could not be allocated; now one line
// names the limit, exit 2, and a count that fits still runs.
TEST(MemoryRoomCli, UlimitVRefusesWithOneLineNamingIt) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers reserve more address space than ulimit -v "
                  "leaves";
#endif
  const std::string& cli = testing::Cli();
  // 2000000 KiB; 300M tasks of 8 bytes need 2.4 GB.
  testing::Result r = testing::RunProgram(
      "/bin/sh", {"-c", "ulimit -v 2000000 && exec " + cli +
                            " --workload=noop --tasks=300000000"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.out, "");
  const std::string head =
      "run: --tasks=300000000 is too many: their results need 2400000000 "
      "bytes (2.2 GiB) and this process may use ";
  const std::string limit =
      " more: ulimit -v (RLIMIT_AS) is 2048000000 bytes (1.9 GiB), ";
  EXPECT_EQ(r.err.rfind(head, 0), 0u) << r.err;
  EXPECT_NE(r.err.find(limit), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" of them mapped already; valid: a count from 0 to "),
            std::string::npos)
      << r.err;
  EXPECT_EQ(testing::Lines(r.err).size(), 1u) << r.err;
  r = testing::RunProgram("/bin/sh",
                          {"-c", "ulimit -v 2000000 && exec " + cli +
                                     " --workload=noop --tasks=1000"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(testing::Lines(r.out).at(0), "499500");
}

}  // namespace
}  // namespace fanout::cli
