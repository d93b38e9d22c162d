// fanout/cli/memory_room.h — how much more memory this process may use, and
// which limit says so: the memory limit of its cgroup (v2 memory.max or v1
// memory.limit_in_bytes, the tightest of its cgroup and their parents, less
// what they hold beyond page cache), `ulimit -v` (RLIMIT_AS, less what is
// mapped already) and the machine's MemAvailable. The CLI refuses a task
// count whose results could not fit, naming the limit, rather than being
// OOM-killed later without a word.
//
//   const fanout::cli::MemoryRoom room = fanout::cli::MemoryThisProcessMayUse();
//   if (room.known && need > room.bytes) refuse(room.source);
//   // room.source: "ulimit -v (RLIMIT_AS) is 2147483648 bytes (2.0 GiB),
//   //               41943040 of them mapped already"
#ifndef FANOUT_CLI_MEMORY_ROOM_H_
#define FANOUT_CLI_MEMORY_ROOM_H_

#include <sys/resource.h>

#include <string>

namespace fanout::cli {

struct MemoryRoom {
  bool known = false;            // false: no limit could be read at all
  unsigned long long bytes = 0;  // the room left under the tightest limit
  std::string source;            // that limit, in words
};

// The room under the limits of this process now.
MemoryRoom MemoryThisProcessMayUse();

// The same, read from `proc` (for /proc: self/cgroup, self/mountinfo,
// self/status, meminfo; the cgroup files where mountinfo says they are
// mounted), with `address_space` as RLIMIT_AS (RLIM_INFINITY: none). For
// tests, with a made-up tree.
MemoryRoom MemoryRoomFrom(const std::string& proc, rlim_t address_space);

// "7.3 TiB": `bytes` in the largest binary unit it reaches, one decimal.
std::string HumanBytes(unsigned __int128 bytes);

}  // namespace fanout::cli

#endif  // FANOUT_CLI_MEMORY_ROOM_H_
