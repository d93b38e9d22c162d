#include "cli/memory_room.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace fanout::cli {
namespace {

using Bytes = unsigned long long;

// v1 writes "no limit" as a page-aligned LONG_MAX; anything this large is
// no limit.
constexpr Bytes kUnlimited = Bytes{1} << 62;

std::string ToText(Bytes v) { return std::to_string(v); }

// The first word of `path` as a count of bytes; nullopt when the file is
// missing, says "max" (v2: none) or holds no number.
std::optional<Bytes> ReadBytes(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return std::nullopt;
  Bytes v = 0;
  for (const char c : word) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<Bytes>(c - '0');
  }
  return v;
}

// The value of `key` in a "key value" file (memory.stat), or 0.
Bytes ReadStat(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string name;
  Bytes value = 0;
  while (in >> name >> value) {
    if (name == key) return value;
  }
  return 0;
}

// A "Key:   value kB" line of /proc/meminfo or /proc/self/status, in bytes.
std::optional<Bytes> ReadKib(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(key.size() + 1));
    Bytes kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return std::nullopt;
}

// One cgroup hierarchy this process is in: where it is mounted, and this
// process's cgroup in it.
struct Hierarchy {
  bool v2 = false;
  std::string mount;  // "/sys/fs/cgroup/memory"
  std::string dir;    // mount + this process's cgroup
};

// Splits mountinfo's fields: "36 35 0:30 / /sys/fs/cgroup/memory rw - cgroup
// cgroup rw,memory".
struct Mount {
  std::string root, point, type, options;
};

std::vector<Mount> CgroupMounts(const std::string& proc) {
  std::vector<Mount> mounts;
  std::ifstream in(proc + "/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, field;
    Mount m;
    if (!(fields >> id >> parent >> dev >> m.root >> m.point)) continue;
    while (fields >> field && field != "-") {
    }
    if (!(fields >> m.type >> field >> m.options)) continue;
    if (m.type == "cgroup2" || m.type == "cgroup") mounts.push_back(m);
  }
  return mounts;
}

// Where `path` (a cgroup, as /proc/self/cgroup names it) is under mount `m`;
// "" when the mount does not show it.
std::string UnderMount(const Mount& m, const std::string& path) {
  if (m.root == "/") return m.point + (path == "/" ? "" : path);
  if (path == m.root) return m.point;
  if (path.rfind(m.root + "/", 0) == 0) {
    return m.point + path.substr(m.root.size());
  }
  return "";
}

// The memory hierarchies of this process: v2 and v1's memory controller.
std::vector<Hierarchy> MemoryHierarchies(const std::string& proc) {
  const std::vector<Mount> mounts = CgroupMounts(proc);
  std::vector<Hierarchy> found;
  std::ifstream in(proc + "/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    // "0::/a/b" (v2) or "4:memory:/a/b" (v1; controllers may be a list).
    const auto first = line.find(':');
    const auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    const bool v2 = controllers.empty();
    if (!v2) {
      std::istringstream list(controllers);
      bool memory = false;
      for (std::string c; std::getline(list, c, ',');) memory |= c == "memory";
      if (!memory) continue;
    }
    for (const Mount& m : mounts) {
      const bool memory_mount =
          v2 ? m.type == "cgroup2"
             : m.type == "cgroup" && ("," + m.options + ",").find(",memory,") !=
                                         std::string::npos;
      if (!memory_mount) continue;
      const std::string dir = UnderMount(m, path);
      if (!dir.empty()) found.push_back({v2, m.point, dir});
    }
  }
  return found;
}

// The room under one hierarchy's limits: the tightest of this cgroup and
// its parents up to the mount, each limit less what the cgroup holds beyond
// its page cache (which the kernel reclaims before it kills).
void AddCgroupRoom(const Hierarchy& h, MemoryRoom* room) {
  const char* limit_file = h.v2 ? "memory.max" : "memory.limit_in_bytes";
  const char* usage_file = h.v2 ? "memory.current" : "memory.usage_in_bytes";
  for (std::string dir = h.dir;;) {
    const std::optional<Bytes> limit = ReadBytes(dir + "/" + limit_file);
    if (limit && *limit < kUnlimited) {
      const Bytes usage = ReadBytes(dir + "/" + usage_file).value_or(0);
      const Bytes cache =
          ReadStat(dir + "/memory.stat", h.v2 ? "file" : "total_cache");
      const Bytes held = usage > cache ? usage - cache : 0;
      const Bytes left = held < *limit ? *limit - held : 0;
      if (!room->known || left < room->bytes) {
        room->known = true;
        room->bytes = left;
        room->source = std::string("its cgroup's ") + limit_file + " is " +
                       ToText(*limit) + " bytes (" + HumanBytes(*limit) +
                       "), " + ToText(held) + " of them in use (cgroup " +
                       (h.v2 ? "v2 " : "v1 ") + dir + ")";
      }
    }
    if (dir.size() <= h.mount.size()) break;
    dir.erase(dir.rfind('/'));
  }
}

}  // namespace

std::string HumanBytes(unsigned __int128 bytes) {
  static const char* const kUnits[] = {"bytes", "KiB", "MiB", "GiB",
                                       "TiB",   "PiB", "EiB"};
  long double value = static_cast<long double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), "%.1Lf %s", value, kUnits[unit]);
  return text;
}

MemoryRoom MemoryRoomFrom(const std::string& proc, rlim_t address_space) {
  MemoryRoom room;
  const auto consider = [&room](Bytes left, std::string source) {
    if (room.known && left >= room.bytes) return;
    room.known = true;
    room.bytes = left;
    room.source = std::move(source);
  };
  if (const std::optional<Bytes> available =
          ReadKib(proc + "/meminfo", "MemAvailable")) {
    consider(*available, "the machine's MemAvailable (" + proc + "/meminfo)");
  }
  for (const Hierarchy& h : MemoryHierarchies(proc)) AddCgroupRoom(h, &room);
  if (address_space != RLIM_INFINITY) {
    const Bytes limit = address_space;
    const Bytes mapped = ReadKib(proc + "/self/status", "VmSize").value_or(0);
    consider(mapped < limit ? limit - mapped : 0,
             "ulimit -v (RLIMIT_AS) is " + ToText(limit) + " bytes (" +
                 HumanBytes(limit) + "), " + ToText(mapped) +
                 " of them mapped already");
  }
  return room;
}

MemoryRoom MemoryThisProcessMayUse() {
  rlimit as{};
  const rlim_t address_space =
      getrlimit(RLIMIT_AS, &as) == 0 ? as.rlim_cur : RLIM_INFINITY;
  return MemoryRoomFrom("/proc", address_space);
}

}  // namespace fanout::cli
