#include "backends/process/memory_limit.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace fanout::process_internal {
namespace {

// The process's private data size (VmData of /proc/self/status) in bytes, or
// 0 when it cannot be read. No allocation: it runs right after fork.
std::size_t DataBytes() {
  const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[4096];
  std::size_t len = 0;
  for (ssize_t r; len < sizeof(buf) - 1 &&
                  (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0;) {
    len += static_cast<std::size_t>(r);
  }
  close(fd);
  buf[len] = '\0';
  const char* at = std::strstr(buf, "\nVmData:");
  if (at == nullptr) return 0;
  std::size_t kib = 0;
  for (at += 8; *at == ' ' || *at == '\t'; ++at) {
  }
  for (; *at >= '0' && *at <= '9'; ++at) kib = kib * 10 + (*at - '0');
  return kib * 1024;
}

}  // namespace

void LimitWorkerMemory(std::size_t bytes) {
  const std::size_t limit = DataBytes() + bytes;
  const rlimit r{limit, limit};
  setrlimit(RLIMIT_DATA, &r);
  const int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    [[maybe_unused]] const ssize_t w = write(fd, "1000", 4);
    close(fd);
  }
}

std::string MemoryLimitMessage(std::size_t bytes) {
  return "exceeded the worker memory limit of " + FormatBytes(bytes);
}

std::string FormatBytes(std::size_t bytes) {
  static const char* const kUnits[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  double value = static_cast<double>(bytes);
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  if (unit == 0 ||
      value == static_cast<double>(static_cast<long long>(value))) {
    std::snprintf(text, sizeof(text), "%lld %s", static_cast<long long>(value),
                  kUnits[unit]);
  } else {
    std::snprintf(text, sizeof(text), "%.1f %s", value, kUnits[unit]);
  }
  return text;
}

}  // namespace fanout::process_internal
