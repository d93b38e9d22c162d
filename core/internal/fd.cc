#include "core/internal/fd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace fanout::internal {

bool MakePipe(Pipe* pipe, int flags) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | flags) != 0) return false;
  pipe->read = fds[0];
  pipe->write = fds[1];
  return true;
}

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

bool SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

bool WriteAll(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t w = write(fd, p, size);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    size -= static_cast<std::size_t>(w);
  }
  return true;
}

namespace {

constexpr std::size_t kReadBytes = 1 << 16;

// One read of up to kReadBytes appended to *out: its result, EINTR retried.
ssize_t ReadOnce(int fd, std::string* out) {
  char buf[kReadBytes];
  for (;;) {
    const ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r > 0) out->append(buf, static_cast<std::size_t>(r));
    return r;
  }
}

}  // namespace

bool ReadAll(int fd, std::string* out) {
  for (;;) {
    const ssize_t r = ReadOnce(fd, out);
    if (r == 0) return true;
    if (r < 0) return false;
  }
}

bool ReadAvailable(int fd, std::string* out) {
  for (;;) {
    const ssize_t r = ReadOnce(fd, out);
    if (r == 0) return false;  // every writer is gone
    if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    // A short read emptied the pipe: no need to ask again just to hear
    // EAGAIN.
    if (static_cast<std::size_t>(r) < kReadBytes) return true;
  }
}

int PidfdOpen(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}

}  // namespace fanout::internal
