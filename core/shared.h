// fanout/core/shared.h — a value or an array every worker sees, threads and
// forked processes alike: Python's multiprocessing.Value and Array.
//
//   fanout::SharedValue<int> hits(0);                  // Value('i', 0)
//   fanout::SharedArray<double> xs{0.0, 0.0, 0.0};     // Array('d', [0.0]*3)
//
//   fanout::Parallel p({.jobs = -1, .backend = "process"});
//   p.for_each(1000, [&](std::size_t i) {
//     hits.fetch_add(1);                               // atomic, lock-free
//     xs.store(i % 3, 1.5);
//     auto g = xs.lock();                              // compound update
//     g[0] += g[1] * 2;
//   });
//   int total = hits.load();               // 1000, seen by the caller
//
// Both must be made before the workers start (before the call that forks
// them): the memory is an anonymous MAP_SHARED mapping made by the
// constructor, so every thread of the process and every child fork()ed after
// it sees the same bytes. Anonymous mappings have no name: nothing is created
// in /dev/shm or anywhere else, and the kernel frees the memory when the last
// process using it ends, even when every one of them crashed.
//
// Operations:
//   load / store / exchange / compare_exchange   any T the CPU handles
//                                                lock-free (std::atomic_ref
//                                                is_always_lock_free: ints,
//                                                floats, doubles, pointers,
//                                                8-byte structs); others use
//                                                lock() only
//   fetch_add / fetch_sub                        integral and floating T
//   lock()                                       a process-shared, robust
//                                                mutex held by the returned
//                                                guard; read and write the
//                                                value through the guard
// Lock-free atomics work across processes because they are plain CPU
// instructions on the shared bytes; types that are not lock-free would fall
// back to a lock table private to each process, so they are not offered.
//
// A worker that dies while holding the lock does not deadlock the others: the
// mutex is PTHREAD_MUTEX_ROBUST, the next lock() takes it over and its guard
// says so (`g.previous_owner_died()`), since the value may be half-updated.
//
// T must be trivially copyable: the bytes are shared, not the objects (no
// std::string, no pointers into one process's heap). Copying is not allowed
// (two owners of one mapping); moving is.
// On the mpi backend with several ranks, ranks share no memory: using a
// SharedValue or SharedArray inside a task there throws fanout::UsageError
// (each rank would change only its own copy); return values from the tasks
// and combine them with Parallel::map_reduce instead.
#ifndef FANOUT_CORE_SHARED_H_
#define FANOUT_CORE_SHARED_H_

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <new>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/internal/rank_task.h"

namespace fanout {
namespace internal {

// An anonymous MAP_SHARED|MAP_ANONYMOUS mapping, zero-filled, unmapped by the
// destructor. Children fork()ed while it exists share it.
class SharedMapping {
 public:
  SharedMapping() = default;
  // Throws fanout::Error when the kernel refuses the mapping.
  explicit SharedMapping(std::size_t bytes);
  ~SharedMapping();
  SharedMapping(SharedMapping&& other) noexcept;
  SharedMapping& operator=(SharedMapping&& other) noexcept;
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;

  void* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

// A pthread mutex with PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST, to be
// placed in a SharedMapping.
struct RobustMutex {
  pthread_mutex_t mutex;

  // Initializes the mutex in place; done once, by the process that maps it.
  void Init();
  // Blocks until held. Returns true when the previous owner died holding it
  // (the mutex is then made consistent again and held by the caller). Throws
  // fanout::Error when the mutex cannot be recovered.
  bool Lock();
  void Unlock();
};

}  // namespace internal

// The lock of a SharedValue or SharedArray, held until destruction or
// unlock(). Gives access to the value (`*g`, `g->field`) or the elements
// (`g[i]`, range-for).
template <class T>
class SharedLock {
 public:
  SharedLock(internal::RobustMutex* mutex, T* data, std::size_t size)
      : mutex_(mutex), data_(data), size_(size) {
    owner_died_ = mutex_->Lock();
  }
  ~SharedLock() { unlock(); }
  SharedLock(SharedLock&& other) noexcept
      : mutex_(std::exchange(other.mutex_, nullptr)),
        data_(other.data_),
        size_(other.size_),
        owner_died_(other.owner_died_) {}
  SharedLock& operator=(SharedLock&&) = delete;
  SharedLock(const SharedLock&) = delete;
  SharedLock& operator=(const SharedLock&) = delete;

  // Releases the lock early; access afterwards is undefined.
  void unlock() {
    if (mutex_ != nullptr) std::exchange(mutex_, nullptr)->Unlock();
  }
  // True when the previous holder died holding the lock: the data may be
  // half-updated and the caller should repair it.
  bool previous_owner_died() const { return owner_died_; }

  T& operator*() const { return *data_; }
  T* operator->() const { return data_; }
  T& operator[](std::size_t i) const { return data_[i]; }
  T* begin() const { return data_; }
  T* end() const { return data_ + size_; }
  std::size_t size() const { return size_; }

 private:
  internal::RobustMutex* mutex_;
  T* data_;
  std::size_t size_;
  bool owner_died_ = false;
};

namespace internal {

// The mapping behind SharedValue and SharedArray: a robust mutex, then `n`
// elements of T aligned for std::atomic_ref.
template <class T>
class SharedBlock {
 public:
  static_assert(std::is_trivially_copyable_v<T>,
                "fanout::SharedValue/SharedArray need a trivially copyable T: "
                "its bytes are shared between processes");

  static constexpr bool kLockFree = std::atomic_ref<T>::is_always_lock_free;

  SharedBlock() = default;
  explicit SharedBlock(std::size_t n)
      : map_(kDataOffset + (n == 0 ? 1 : n) * sizeof(T)), n_(n) {
    mutex()->Init();
  }

  T* data() const {
    CheckNotAcrossRanks("SharedValue/SharedArray");
    return reinterpret_cast<T*>(static_cast<char*>(map_.data()) + kDataOffset);
  }
  std::size_t size() const { return n_; }
  RobustMutex* mutex() const {
    CheckNotAcrossRanks("SharedValue/SharedArray");
    return static_cast<RobustMutex*>(map_.data());
  }
  // False once moved from.
  bool valid() const { return map_.data() != nullptr; }

 private:
  // atomic_ref's required alignment divides sizeof(T), so every element of a
  // T[] starting at this offset of a page-aligned mapping is aligned for it.
  static constexpr std::size_t kAlign =
      std::atomic_ref<T>::required_alignment > 64
          ? std::atomic_ref<T>::required_alignment
          : 64;
  static constexpr std::size_t kDataOffset =
      (sizeof(RobustMutex) + kAlign - 1) / kAlign * kAlign;

  SharedMapping map_;
  std::size_t n_ = 0;
};

}  // namespace internal

// One T shared by every worker. See the top of this file.
template <class T>
class SharedValue {
 public:
  // Maps the value and sets it to `initial`.
  explicit SharedValue(T initial = T{}) : block_(1) {
    ::new (static_cast<void*>(block_.data())) T(initial);
  }
  SharedValue(SharedValue&&) noexcept = default;
  SharedValue& operator=(SharedValue&&) noexcept = default;

  // Atomic read and write (lock-free T only).
  T load(std::memory_order order = std::memory_order_seq_cst)
      const requires internal::SharedBlock<T>::kLockFree {
    return ref().load(order);
  }
  void store(T value,
             std::memory_order order = std::memory_order_seq_cst) requires
      internal::SharedBlock<T>::kLockFree {
    ref().store(value, order);
  }
  T exchange(T value) requires internal::SharedBlock<T>::kLockFree {
    return ref().exchange(value);
  }
  // Replaces the value with `desired` when it equals `expected`; otherwise
  // loads the current value into `expected`. True when it replaced.
  bool compare_exchange(
      T& expected, T desired) requires internal::SharedBlock<T>::kLockFree {
    return ref().compare_exchange_strong(expected, desired);
  }
  // Adds (subtracts) and returns the value before.
  T fetch_add(T delta) requires internal::SharedBlock<T>::kLockFree &&
      (std::is_integral_v<T> || std::is_floating_point_v<T>) {
    return ref().fetch_add(delta);
  }
  T fetch_sub(T delta) requires internal::SharedBlock<T>::kLockFree &&
      (std::is_integral_v<T> || std::is_floating_point_v<T>) {
    return ref().fetch_sub(delta);
  }

  // Holds the value's lock: `auto g = v.lock(); *g = f(*g);`.
  [[nodiscard]] SharedLock<T> lock() const {
    return SharedLock<T>(block_.mutex(), block_.data(), 1);
  }

  // The shared bytes, for code that synchronizes by other means.
  T* get() const { return block_.data(); }

 private:
  std::atomic_ref<T> ref() const { return std::atomic_ref<T>(*block_.data()); }

  internal::SharedBlock<T> block_;
};

// n Ts shared by every worker. See the top of this file.
template <class T>
class SharedArray {
 public:
  // n elements set to `initial`.
  explicit SharedArray(std::size_t n, T initial = T{}) : block_(n) {
    for (std::size_t i = 0; i < n; ++i) {
      ::new (static_cast<void*>(block_.data() + i)) T(initial);
    }
  }
  // The given elements: SharedArray<double> a{0.0, 0.0, 0.0}.
  SharedArray(std::initializer_list<T> values)
      : SharedArray(std::span<const T>(values.begin(), values.size())) {}
  explicit SharedArray(std::span<const T> values) : block_(values.size()) {
    if (!values.empty()) {
      std::memcpy(static_cast<void*>(block_.data()), values.data(),
                  values.size_bytes());
    }
  }
  SharedArray(SharedArray&&) noexcept = default;
  SharedArray& operator=(SharedArray&&) noexcept = default;

  std::size_t size() const { return block_.size(); }

  // Atomic operations on element i (lock-free T only; i < size()).
  T load(std::size_t i, std::memory_order order = std::memory_order_seq_cst)
      const requires internal::SharedBlock<T>::kLockFree {
    return ref(i).load(order);
  }
  void store(std::size_t i, T value,
             std::memory_order order = std::memory_order_seq_cst) requires
      internal::SharedBlock<T>::kLockFree {
    ref(i).store(value, order);
  }
  T exchange(std::size_t i,
             T value) requires internal::SharedBlock<T>::kLockFree {
    return ref(i).exchange(value);
  }
  bool compare_exchange(std::size_t i, T& expected, T desired) requires
      internal::SharedBlock<T>::kLockFree {
    return ref(i).compare_exchange_strong(expected, desired);
  }
  T fetch_add(std::size_t i,
              T delta) requires internal::SharedBlock<T>::kLockFree &&
      (std::is_integral_v<T> || std::is_floating_point_v<T>) {
    return ref(i).fetch_add(delta);
  }
  T fetch_sub(std::size_t i,
              T delta) requires internal::SharedBlock<T>::kLockFree &&
      (std::is_integral_v<T> || std::is_floating_point_v<T>) {
    return ref(i).fetch_sub(delta);
  }

  // Holds the array's lock: `auto g = a.lock(); g[0] += g[1];`.
  [[nodiscard]] SharedLock<T> lock() const {
    return SharedLock<T>(block_.mutex(), block_.data(), block_.size());
  }

  // A copy of every element, taken under the lock.
  std::vector<T> to_vector() const {
    auto g = lock();
    return std::vector<T>(g.begin(), g.end());
  }

  // The shared elements, for code that synchronizes by other means.
  T* data() const { return block_.data(); }

 private:
  std::atomic_ref<T> ref(std::size_t i) const {
    return std::atomic_ref<T>(block_.data()[i]);
  }

  internal::SharedBlock<T> block_;
};

}  // namespace fanout

#endif  // FANOUT_CORE_SHARED_H_
