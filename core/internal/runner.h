// fanout/core/internal/runner.h — the typed job behind a call: where each
// task's result is stored while tasks run (Slot), and the Runner that turns
// a callable into the type-erased fanout::Job a backend runs.
//
// IWYU pragma: private, include "core/parallel.h"
#ifndef FANOUT_CORE_INTERNAL_RUNNER_H_
#define FANOUT_CORE_INTERNAL_RUNNER_H_

#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "core/codec.h"
#include "core/errors.h"
#include "core/executor.h"
#include "core/internal/large_array.h"

namespace fanout::internal {

// How results are stored while tasks run: in place when R allows it.
// bool gets a byte (std::vector<bool> packs bits: workers would race), types
// without a default constructor an optional.
template <class R>
using Slot =
    std::conditional_t<std::is_same_v<R, bool>, unsigned char,
                       std::conditional_t<std::is_default_constructible_v<R>, R,
                                          std::optional<R>>>;

template <class R>
R TakeSlot(Slot<R>& s) {
  if constexpr (std::is_same_v<Slot<R>, std::optional<R>>) {
    return std::move(*s);
  } else if constexpr (std::is_same_v<R, bool>) {
    return s != 0;
  } else {
    return std::move(s);
  }
}

// A backend handed back `got` results for a call of `n` tasks (results it
// adopts, Job::adopt_results): an internal error, never a short answer.
[[noreturn]] void ThrowBadResultCount(std::size_t got, std::size_t n,
                                      std::string_view backend = {});

// The typed job behind the type-erased fanout::Job.
template <class R, class F>
class Runner {
 public:
  // `reserve_only`: the slots are reserved, not constructed, for a backend
  // that adopts results (Job::construct_results); trivial results only.
  Runner(std::size_t n, F& f, bool reserve_only = false) : f_(f) {
    if constexpr (!std::is_void_v<R>) {
      reserved_ = codec::kIsTrivial<Slot<R>> && reserve_only ? n : 0;
      const bool large = n >= kLargeArrayBytes / sizeof(Slot<R>);
      if (large || reserved_ != 0) slots_.reserve(n);
      if (large) PrepareLargeArray(slots_.data(), n * sizeof(Slot<R>));
      if (reserved_ == 0) slots_.resize(n);
    }
  }

  // `indices_are_tasks`: see Job::indices_are_tasks.
  Job MakeJob(std::size_t n, bool indices_are_tasks = false) {
    Job job;
    job.n = n;
    job.indices_are_tasks = indices_are_tasks;
    job.ctx = this;
    job.run_range = &RunRange;
    if (order_ != nullptr) job.chunk_done = &ChunkDone;
    if constexpr (!std::is_void_v<R>) {
      if constexpr (codec::kIsTrivial<Slot<R>>) {
        job.encode_result = &Encode;
        job.decode_result = &Decode;
        job.trivial_result_size = sizeof(Slot<R>);
        job.result_slot = &ResultSlot;
        if (reserved_ != 0) {
          job.construct_results = &Construct;
          job.adopt_results = &Adopt;
        }
      } else if constexpr (codec::kCanCross<R>) {
        job.encode_result = &Encode;
        job.decode_result = &Decode;
      } else {
        // Fine where tasks share the caller's memory; refused before any
        // task runs where results cross processes (Executor::run).
        job.uncrossable_result = &typeid(R);
      }
    } else {
      job.encode_result = [](void*, std::size_t, std::string*) {};
      job.decode_result = [](void*, std::size_t, std::string_view) {};
    }
    return job;
  }

  std::vector<Slot<R>>& slots() { return slots_; }

  // Records each chunk [begin, end) as it ends, in that order (a stream's
  // completion order), under `mu`. Before MakeJob.
  void RecordChunks(std::vector<std::pair<std::size_t, std::size_t>>* order,
                    std::mutex* mu) {
    order_ = order;
    order_mu_ = mu;
  }

 private:
  static void ChunkDone(void* ctx, std::size_t begin, std::size_t end) {
    auto* self = static_cast<Runner*>(ctx);
    std::lock_guard<std::mutex> lock(*self->order_mu_);
    self->order_->emplace_back(begin, end);
  }

  static std::size_t RunRange(void* ctx, std::size_t begin, std::size_t end,
                              TaskFailure* failure) {
    auto* self = static_cast<Runner*>(ctx);
    std::size_t i = begin;
    const auto run = [self](std::size_t k) {
      if constexpr (std::is_void_v<R>) {
        std::invoke(self->f_, k);
      } else {
        // data(), not operator[]: a worker of a backend that adopts results
        // stores into reserved slots (trivial results; see MakeJob).
        self->slots_.data()[k] = std::invoke(self->f_, k);
      }
    };
    // A call that can be stopped records which task runs (one relaxed store
    // per task), so that one that never returns can be named.
    std::atomic<std::size_t>* const watch = current_task_slot();
    try {
      if (watch == nullptr) {
        for (; i < end; ++i) run(i);
      } else {
        for (; i < end; ++i) {
          watch->store(i, std::memory_order_relaxed);
          run(i);
        }
      }
    } catch (...) {
      *failure = describe_current_exception();
    }
    return i - begin;
  }

  static void Encode(void* ctx, std::size_t index, std::string* out) {
    auto* self = static_cast<Runner*>(ctx);
    if constexpr (std::is_same_v<Slot<R>, std::optional<R>>) {
      codec::encode(*self->slots_[index], *out);
    } else {
      codec::encode(self->slots_[index], *out);
    }
  }

  static void Decode(void* ctx, std::size_t index, std::string_view bytes) {
    auto* self = static_cast<Runner*>(ctx);
    if constexpr (std::is_same_v<Slot<R>, std::optional<R>>) {
      // No default constructor: built by its load_and_construct.
      self->slots_[index].emplace(codec::decode<R>(bytes));
    } else {
      self->slots_[index] = codec::decode<Slot<R>>(bytes);
    }
  }

  static void* ResultSlot(void* ctx, std::size_t index) {
    return static_cast<Runner*>(ctx)->slots_.data() + index;
  }

  static void Construct(void* ctx) {
    if constexpr (!std::is_void_v<R>) {
      auto* self = static_cast<Runner*>(ctx);
      self->slots_.resize(self->reserved_);
    }
  }

  static void Adopt(void* ctx, const void* src, std::size_t count) {
    if constexpr (!std::is_void_v<R>) {
      auto* self = static_cast<Runner*>(ctx);
      if (count > self->reserved_ - self->slots_.size()) {
        ThrowBadResultCount(self->slots_.size() + count, self->reserved_);
      }
      const auto* first = static_cast<const Slot<R>*>(src);
      self->slots_.insert(self->slots_.end(), first, first + count);
    }
  }

  F& f_;
  std::conditional_t<std::is_void_v<R>, char, std::vector<Slot<R>>> slots_{};
  std::size_t reserved_ = 0;  // slots reserved, not constructed (reserve_only)
  std::vector<std::pair<std::size_t, std::size_t>>* order_ = nullptr;
  std::mutex* order_mu_ = nullptr;
};

// The result slots of a job (none for void).
template <class R>
struct SlotsOf {
  using type = std::vector<Slot<R>>;
};
template <>
struct SlotsOf<void> {
  using type = std::vector<char>;
};

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_RUNNER_H_
