// fanout/core/internal/fd.h — file descriptors: pipes, full reads and writes
// that survive EINTR and partial transfers, and pidfds.
//
//   fanout::internal::Pipe p;
//   if (!fanout::internal::MakePipe(&p)) Throw(errno);
//   fanout::internal::WriteAll(p.write, bytes.data(), bytes.size());
//   fanout::internal::CloseFd(&p.write);
//   std::string got;
//   fanout::internal::ReadAll(p.read, &got);  // up to end of file
//
// Every function reports failure through its return value and errno, never
// by throwing, so that each is safe in a forked child and the caller words
// its own error.
// IWYU pragma: private, include "core/internal/fd.h"
#ifndef FANOUT_CORE_INTERNAL_FD_H_
#define FANOUT_CORE_INTERNAL_FD_H_

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace fanout::internal {

// Both ends of a pipe; -1 for an end that is closed.
struct Pipe {
  int read = -1;
  int write = -1;
};

// pipe2() with O_CLOEXEC and `flags` (such as O_NONBLOCK) on both ends.
// False, with errno set, when it fails.
bool MakePipe(Pipe* pipe, int flags = 0);

// Closes *fd when it is open and marks it closed (-1).
void CloseFd(int* fd);

// Makes reads of `fd` return at once when nothing is there (O_NONBLOCK).
bool SetNonBlocking(int fd);

// Writes all `size` bytes, retrying after EINTR and partial writes. False,
// with errno set, when a write fails (EPIPE, EBADF, ...). Async-signal-safe.
bool WriteAll(int fd, const void* data, std::size_t size);

// Appends everything `fd` gives until end of file to *out, retrying after
// EINTR. False, with errno set, when a read fails (what was read is kept).
bool ReadAll(int fd, std::string* out);

// Appends what the non-blocking `fd` holds now to *out, retrying after
// EINTR. True while the pipe may bring more; false at end of file (every
// writer is gone) or on an error other than EAGAIN.
bool ReadAvailable(int fd, std::string* out);

// A pidfd for `pid` (readable once the process has ended), or -1 with errno
// set (ENOSYS before Linux 5.3).
int PidfdOpen(pid_t pid);

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_FD_H_
