#include "core/shared.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace fanout::internal {

SharedMapping::SharedMapping(std::size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    throw Error("shared memory: mmap of " + std::to_string(bytes) +
                " bytes failed: " + strerror(err));
  }
  data_ = p;
  size_ = bytes;
}

SharedMapping::~SharedMapping() {
  if (data_ != nullptr) munmap(data_, size_);
}

SharedMapping::SharedMapping(SharedMapping&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

SharedMapping& SharedMapping::operator=(SharedMapping&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void RobustMutex::Init() {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  const int rc = pthread_mutex_init(&mutex, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) {
    throw Error(std::string("shared memory: pthread_mutex_init failed: ") +
                strerror(rc));
  }
}

bool RobustMutex::Lock() {
  const int rc = pthread_mutex_lock(&mutex);
  if (rc == 0) return false;
  if (rc == EOWNERDEAD) {
    // The owner died holding it; we hold it now. Mark it usable again.
    pthread_mutex_consistent(&mutex);
    return true;
  }
  throw Error(std::string("shared memory: cannot lock: ") + strerror(rc));
}

void RobustMutex::Unlock() { pthread_mutex_unlock(&mutex); }

}  // namespace fanout::internal
