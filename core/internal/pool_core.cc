#include "core/internal/pool_core.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

#include "core/internal/futex.h"
#include "core/internal/rank_task.h"
#include "core/internal/spin.h"
#include "core/parallel.h"

namespace fanout::internal {
namespace {

using Clock = std::chrono::steady_clock;

Waiter* const kSealed = reinterpret_cast<Waiter*>(std::uintptr_t{1});

// How long a drainer that found the queue empty waits for more before it
// gives its worker back.
constexpr std::chrono::microseconds kDrainerSpin{50};

// Nodes whose waiters are to be told, on this thread: ending a node may end
// its dependents (a failed input), and a long chain must not recurse.
struct Cascade {
  bool active = false;
  // Each node, and whether the pool's reference is to be dropped now (only
  // for one never queued: a queued one's popper drops it).
  std::vector<std::pair<NodeBase*, bool>> pending;
};
thread_local Cascade t_cascade;

thread_local CurrentTask t_current;

class PoolTaskScope {
 public:
  PoolTaskScope(const std::atomic<std::uint8_t>* stop,
                const std::atomic<bool>* closing, PoolCore* pool)
      : previous_(t_current) {
    t_current = CurrentTask{stop, closing, pool};
  }
  ~PoolTaskScope() { t_current = previous_; }
  PoolTaskScope(const PoolTaskScope&) = delete;
  PoolTaskScope& operator=(const PoolTaskScope&) = delete;

 private:
  CurrentTask previous_;
};

std::exception_ptr CancelledFor(const NodeBase* node, std::string_view why) {
  return std::make_exception_ptr(
      CancelledError("task " + std::to_string(node->id) + " was cancelled" +
                     std::string(why)));
}

// What an ended node's error says.
std::string WhatOf(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an unknown error";
  }
}

// The error of a node that did not run because `input` failed or was
// cancelled: a TaskError naming the input and the first failure up the
// graph (the input's own, or what failed it).
std::exception_ptr InputFailed(const NodeBase* node, const NodeBase* input,
                               std::string_view backend,
                               std::shared_ptr<const std::string>* root) {
  *root = input->root_cause != nullptr
              ? input->root_cause
              : std::make_shared<const std::string>(WhatOf(input->error));
  const bool cancelled = input->state() == NodeState::kCancelled;
  TaskError::Details d;
  d.index = node->id;
  d.backend = std::string(backend);
  d.message =
      "not run: its input, task " + std::to_string(input->id) +
      (cancelled ? ", was cancelled" : ", failed") +
      (input->root_cause != nullptr ? " (first failure upstream: " : " (") +
      **root + ")";
  return std::make_exception_ptr(TaskError(std::move(d)));
}

// A generation's per-node bytes: MAP_SHARED where workers are forked, so a
// cancel in the caller reaches them.
class StopBytes {
 public:
  StopBytes(std::size_t n, bool shared) : n_(n), shared_(shared) {
    const std::size_t bytes = std::max<std::size_t>(n, 1);
    if (shared_) {
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw Error("pool: cannot map shared memory");
      bytes_ = static_cast<std::atomic<std::uint8_t>*>(p);
    } else {
      bytes_ = new std::atomic<std::uint8_t>[bytes];
    }
    for (std::size_t k = 0; k < n; ++k) bytes_[k].store(0);
  }
  ~StopBytes() {
    if (shared_) {
      munmap(bytes_, std::max<std::size_t>(n_, 1));
    } else {
      delete[] bytes_;
    }
  }
  StopBytes(const StopBytes&) = delete;
  StopBytes& operator=(const StopBytes&) = delete;
  std::atomic<std::uint8_t>* data() { return bytes_; }

 private:
  std::size_t n_;
  bool shared_;
  std::atomic<std::uint8_t>* bytes_ = nullptr;
};

std::uint64_t Mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

std::uint64_t HashString(const char* s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (; *s != '\0'; ++s) {
    h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ULL;
  }
  return h;
}

}  // namespace

// ---------------------------------------------------------------------------
// Events, references, the queue.

void Event::Wake() {
  word_.fetch_add(1, std::memory_order_seq_cst);
  FutexWake(&word_, INT_MAX, FutexScope::kPrivate);
}

void Event::Sleep(std::uint32_t seen, Clock::time_point deadline) {
  if (word_.load(std::memory_order_seq_cst) != seen) return;
  if (deadline == Clock::time_point::max()) {
    FutexWait(&word_, seen, FutexScope::kPrivate);
    return;
  }
  const auto left = deadline - Clock::now();
  if (left > Clock::duration::zero()) {
    FutexWaitFor(FutexWord(&word_), seen, FutexScope::kPrivate,
                 std::chrono::duration_cast<std::chrono::nanoseconds>(left));
  }
}

void Retain(NodeBase* node) {
  node->refs.fetch_add(1, std::memory_order_relaxed);
}

void Release(NodeBase* node) {
  if (node->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    node->ops->destroy(node);
  }
}

CurrentTask& current_task() { return t_current; }

void ReadyQueue::Push(QueueLink* link) {
  link->next.store(nullptr, std::memory_order_relaxed);
  QueueLink* prev = tail_.exchange(link, std::memory_order_seq_cst);
  prev->next.store(link, std::memory_order_release);
}

void ReadyQueue::Lock() {
  for (int spins = 0;; ++spins) {
    if (!locked_.load(std::memory_order_relaxed) &&
        !locked_.exchange(true, std::memory_order_acquire)) {
      return;
    }
    if (spins < 64) {
      CpuRelax();
    } else {
      sched_yield();  // the holder may have lost its CPU
    }
  }
}

NodeBase* ReadyQueue::PopLocked() {
  QueueLink* head = head_.load(std::memory_order_relaxed);
  QueueLink* next = head->next.load(std::memory_order_acquire);
  if (head == &stub_) {
    if (next == nullptr) return nullptr;
    head_.store(next, std::memory_order_seq_cst);
    head = next;
    next = next->next.load(std::memory_order_acquire);
  }
  if (next != nullptr) {
    head_.store(next, std::memory_order_seq_cst);
    return static_cast<NodeBase*>(head);
  }
  if (tail_.load(std::memory_order_acquire) != head)
    return nullptr;  // mid-push
  Push(&stub_);
  next = head->next.load(std::memory_order_acquire);
  if (next == nullptr) return nullptr;
  head_.store(next, std::memory_order_seq_cst);
  return static_cast<NodeBase*>(head);
}

NodeBase* ReadyQueue::Pop() {
  if (Empty()) return nullptr;
  Lock();
  NodeBase* node = PopLocked();
  Unlock();
  return node;
}

std::vector<NodeBase*> ReadyQueue::TakeAll(const NodeBase* upto) {
  std::vector<NodeBase*> out;
  Lock();
  while (NodeBase* node = PopLocked()) {
    out.push_back(node);
    if (node == upto) {
      Unlock();
      return out;
    }
  }
  Unlock();
  // `upto` was not queued (or a push was half done): what was, in order.
  return out;
}

// ---------------------------------------------------------------------------
// The pool.

PoolCore::Mode PoolCore::ChooseMode(Executor& executor, int jobs) {
  // Every call from one thread (mpi ranks): generations run where the
  // caller waits.
  if (!executor.calls_from_any_thread()) return Mode::kLazy;
  if (executor.shares_memory()) {
    // Workers of its own for posted work: they drain the queue.
    if (executor.Post(nullptr, jobs)) return Mode::kDrained;
    // One worker that is the caller (sequential): it runs them as it waits.
    if (executor.jobs() <= 1) return Mode::kInline;
  }
  return Mode::kDriven;
}

PoolCore::PoolCore(std::shared_ptr<Executor> executor, const Options& options)
    : executor_(std::move(executor)),
      jobs_(std::max(executor_->jobs(), 1)),
      mode_(ChooseMode(*executor_, jobs_)),
      batch_size_(options.batch_size),
      retries_(options.retries),
      retry_on_(options.retry_on),
      task_timeout_(options.task_timeout),
      worker_memory_(options.worker_memory) {
  if (mode_ == Mode::kDrained) {
    drainers_ = std::make_unique<Drainer[]>(static_cast<std::size_t>(jobs_));
    for (int k = 0; k < jobs_; ++k) {
      drainers_[k].pool = this;
      drainers_[k].index = k;
      drainers_[k].work.run = &RunDrainer;
    }
  }
}

PoolCore::~PoolCore() { Close(); }

void PoolCore::CheckSubmit(bool result_crosses, const std::type_info& type,
                           NodeBase* const* inputs, int n_inputs) const {
  if (interrupted_.load(std::memory_order_acquire)) {
    std::rethrow_exception(interrupted_error_);
  }
  if (closing_.load(std::memory_order_acquire)) {
    throw UsageError(
        "submit() on a pool that is closed (close() was called, or it is "
        "being destroyed); valid: submit before close(), or make a new Pool");
  }
  if (!result_crosses && !executor_->shares_memory()) {
    throw UsageError(
        "submit(): the result type '" + TypeName(type) +
        "' cannot cross a process boundary, as backend '" +
        std::string(executor_->name()) +
        "' needs: give it a cereal serialize() (see core/codec.h) and a "
        "default constructor or cereal's load_and_construct, or use a "
        "backend that shares memory (thread, "
        "tbb, sequential)");
  }
  for (int k = 0; k < n_inputs; ++k) {
    const NodeBase* input = inputs[k];
    if (input == nullptr) {
      throw UsageError(
          "submit(): argument is an empty Future (default-constructed or "
          "moved from); valid: a Future returned by submit()");
    }
    if (input->pool != this) {
      throw UsageError(
          "submit(): argument is a Future of task " +
          std::to_string(input->id) +
          " of another pool; valid: futures of this pool (get() the value "
          "and pass it instead)");
    }
  }
}

void NotifyEdge(Waiter* self, NodeBase* input) {
  Edge* edge = reinterpret_cast<Edge*>(self);
  NodeBase* dependent = edge->dependent;
  PoolCore* pool = dependent->pool;
  if (input->state() == NodeState::kDone) {
    if (dependent->inputs_left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      pool->MakeReady(dependent);
    }
  } else {
    pool->FailForInput(dependent, input);
  }
  Release(dependent);  // the edge's reference
}

void PoolCore::Submit(NodeBase* node) {
  // Readers first: a get() of an input from now on copies its value (or
  // waits for this node to read it); one that took it already refuses.
  for (int k = 0; k < node->n_edges; ++k) {
    node->edges[k].input->readers.fetch_add(1, std::memory_order_seq_cst);
  }
  for (int k = 0; k < node->n_edges; ++k) {
    const NodeBase* input = node->edges[k].input;
    if (input->retrieved.load(std::memory_order_seq_cst)) {
      for (int j = 0; j < node->n_edges; ++j) {
        node->edges[j].input->readers.fetch_sub(1, std::memory_order_seq_cst);
      }
      throw UsageError("submit(): the Future of task " +
                       std::to_string(input->id) +
                       " passed as an argument was already taken by get(); "
                       "valid: pass a future before get(), or pass the value");
    }
  }
  node->pool = this;
  node->id = next_id_.fetch_add(1, std::memory_order_relaxed);
  node->inputs_left.store(node->n_edges + 1, std::memory_order_relaxed);
  // Every reference first: the first input found failed below may end the
  // node (and retire it, releasing every input) before the rest register.
  for (int k = 0; k < node->n_edges; ++k) {
    Edge& edge = node->edges[k];
    edge.dependent = node;
    edge.waiter.notify = &NotifyEdge;
    Retain(edge.input);  // released (with its reader) when the node retires
    Retain(node);        // the edge's, released once it was notified
  }
  for (int k = 0; k < node->n_edges; ++k) {
    Edge& edge = node->edges[k];
    Waiter* head = edge.input->waiters.load(std::memory_order_acquire);
    bool added = false;
    while (head != kSealed) {
      edge.waiter.next = head;
      if (edge.input->waiters.compare_exchange_weak(
              head, &edge.waiter, std::memory_order_acq_rel,
              std::memory_order_acquire)) {
        added = true;
        break;
      }
    }
    if (!added) NotifyEdge(&edge.waiter, edge.input);  // it had ended
  }
  if (node->n_edges == 0 ||
      node->inputs_left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    MakeReady(node);
  }
}

void PoolCore::MakeReady(NodeBase* node) {
  // Ended here before it is queued (Close waits for what is queued after).
  if (closing_.load(std::memory_order_acquire)) {
    Finish(node, NodeState::kCancelled,
           CancelledFor(node, " (its pool was closed before it ran)"));
    return;
  }
  if (interrupted_.load(std::memory_order_acquire)) {
    Finish(node, NodeState::kFailed, interrupted_error_);
    return;
  }
  NodeState expected = NodeState::kWaiting;
  if (!node->state_.compare_exchange_strong(expected, NodeState::kQueued,
                                            std::memory_order_acq_rel)) {
    return;  // it ended (an input failed)
  }
  // The queue holds the pool's reference: a node ended once queued keeps it
  // until its popper is done with it (Finish leaves it; the popper drops it
  // once the node did not run, or its run returned).
  ready_.Push(node);
  switch (mode_) {
    case Mode::kDrained:
      MaybePostDrainer();
      break;
    case Mode::kDriven: {
      StartDriver();
      {
        std::lock_guard<std::mutex> lock(driver_mu_);
        driver_wake_ = true;
      }
      driver_cv_.notify_one();
      break;
    }
    case Mode::kLazy:
    case Mode::kInline:
      ended_.Notify();  // a waiter may now run it
      break;
  }
}

void PoolCore::FailForInput(NodeBase* node, NodeBase* input) {
  if (node->ended()) return;
  std::shared_ptr<const std::string> root;
  std::exception_ptr error = InputFailed(node, input, executor_->name(), &root);
  Finish(node, NodeState::kFailed, std::move(error), std::move(root));
}

bool PoolCore::Finish(NodeBase* node, NodeState to, std::exception_ptr error,
                      std::shared_ptr<const std::string> root) {
  NodeState s = node->state_.load(std::memory_order_acquire);
  do {
    if (s >= NodeState::kEnding) return false;
  } while (!node->state_.compare_exchange_weak(s, NodeState::kEnding,
                                               std::memory_order_acq_rel,
                                               std::memory_order_acquire));
  const bool never_ran = s == NodeState::kWaiting || s == NodeState::kQueued;
  node->error = std::move(error);
  node->root_cause = std::move(root);
  node->state_.store(to, std::memory_order_seq_cst);
  if (never_ran) Retire(node);
  const bool release = s == NodeState::kWaiting;
  // Its waiters, and those of the nodes that ends in turn, iteratively.
  if (!t_cascade.active) {
    t_cascade.active = true;
    Notify(node, release);
    while (!t_cascade.pending.empty()) {
      const auto [n, r] = t_cascade.pending.back();
      t_cascade.pending.pop_back();
      Notify(n, r);
    }
    t_cascade.active = false;
  } else {
    t_cascade.pending.emplace_back(node, release);
  }
  return true;
}

void PoolCore::Notify(NodeBase* node, bool release) {
  node->ended_event.Notify();
  Waiter* w = node->waiters.exchange(kSealed, std::memory_order_acq_rel);
  while (w != nullptr) {
    Waiter* next = w->next;  // w may be freed by its notify
    w->notify(w, node);
    w = next;
  }
  ended_count_.fetch_add(1, std::memory_order_seq_cst);
  ended_.Notify();
  if (release) Release(node);  // the pool's
}

void PoolCore::Retire(NodeBase* node) {
  // Never twice at once: a node retires where it ends without running
  // (Finish), or where its run returned (Execute, a generation).
  if (node->retired.load(std::memory_order_relaxed)) return;
  node->retired.store(true, std::memory_order_relaxed);
  node->ops->drop_task(node);
  for (int k = 0; k < node->n_edges; ++k) {
    NodeBase* input = node->edges[k].input;
    input->readers.fetch_sub(1, std::memory_order_acq_rel);
    Release(input);
  }
  if (node->n_edges != 0) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    ended_.Notify();  // a get() may wait for readers
  }
}

bool PoolCore::Cancel(NodeBase* node) {
  if (mode_ == Mode::kLazy) {
    node->stop.store(1, std::memory_order_seq_cst);
    // mpi ranks: a node whose generation runs ends as the rank running it
    // says, on every rank alike (cancelled if this request reached it in
    // time); only one not yet running is ended here, as every rank does.
    std::lock_guard<std::mutex> lock(gen_mu_);
    if (node->shared_stop != nullptr) {
      node->shared_stop->store(1, std::memory_order_seq_cst);
      return !node->ended();
    }
  }
  // Ended first, then told to stop: a task that sees the stop and returns
  // cannot end its node as done before the cancel does.
  if (!Finish(node, NodeState::kCancelled, CancelledFor(node, ""))) {
    return false;
  }
  node->stop.store(1, std::memory_order_seq_cst);
  std::lock_guard<std::mutex> lock(gen_mu_);
  if (node->shared_stop != nullptr) {
    node->shared_stop->store(1, std::memory_order_seq_cst);
  }
  return true;
}

void PoolCore::Execute(NodeBase* node, const std::string& worker,
                       bool counted) {
  NodeState expected = NodeState::kQueued;
  if (!node->state_.compare_exchange_strong(expected, NodeState::kRunning,
                                            std::memory_order_acq_rel)) {
    Release(node);  // the pool's, left by the Finish of a queued node
    return;
  }
  if (counted) running_.fetch_add(1, std::memory_order_acq_rel);
  TaskFailure failure;
  bool ok = false;
  {
    InTaskScope in_task;
    PoolTaskScope current(&node->stop, &closing_, this);
    for (int attempt = 1;; ++attempt) {
      try {
        node->ops->run(node);
        ok = true;
        break;
      } catch (...) {
        failure = describe_current_exception();
      }
      bool retry = attempt <= retries_ &&
                   node->stop.load(std::memory_order_relaxed) == 0;
      if (retry && !retry_on_.empty()) {
        retry = std::find(retry_on_.begin(), retry_on_.end(), failure.type) !=
                retry_on_.end();
      }
      if (!retry) {
        if (attempt > 1) {
          failure.message +=
              " (failed " + std::to_string(attempt) + " attempts)";
        }
        break;
      }
    }
  }
  Retire(node);
  if (ok) {
    Finish(node, NodeState::kDone, nullptr);
  } else {
    Finish(node, NodeState::kFailed,
           std::make_exception_ptr(task_error(node->id, executor_->name(),
                                              worker, std::move(failure))));
  }
  // The last touch of the pool: Close() may end it once nothing runs.
  if (counted) running_.fetch_sub(1, std::memory_order_acq_rel);
  Release(node);  // the pool's, held while it ran
}

// ---------------------------------------------------------------------------
// Drained pools: drainers on the backend's workers, helping waiters.

bool PoolCore::TakeSlot() {
  int a = active_.load(std::memory_order_seq_cst);
  while (a < jobs_) {
    if (active_.compare_exchange_weak(a, a + 1, std::memory_order_seq_cst)) {
      return true;
    }
  }
  return false;
}

void PoolCore::LeaveSlot() {
  active_.fetch_sub(1, std::memory_order_seq_cst);
  // A node queued while this thread still held the slot found every slot
  // taken and posted nobody: see to it now.
  if (!ready_.Empty()) MaybePostDrainer();
  ended_.Notify();
}

void PoolCore::MaybePostDrainer() {
  if (!TakeSlot()) return;
  // jobs - 1 drainers at most, as the thread that waits takes part (as in
  // a map, whose caller is one of its jobs workers): so no more threads run
  // tasks than jobs while the caller waits, and the caller keeps a CPU for
  // itself while it submits. With jobs = 1, one drainer.
  const int drainers = jobs_ > 1 ? jobs_ - 1 : 1;
  const int start = next_drainer_.fetch_add(1, std::memory_order_relaxed);
  for (int i = 0; i < drainers; ++i) {
    Drainer& d = drainers_[static_cast<std::size_t>((start + i) % drainers)];
    bool idle = false;
    if (d.busy.compare_exchange_strong(idle, true, std::memory_order_acq_rel)) {
      live_drainers_.fetch_add(1, std::memory_order_acq_rel);
      if (!executor_->Post(&d.work, jobs_)) {
        // The backend's workers are gone (a forked child): run it here.
        RunDrainer(&d.work);
      }
      return;
    }
  }
  // Every drainer is busy (and the slot is a waiter's to take).
  active_.fetch_sub(1, std::memory_order_seq_cst);
}

void PoolCore::RunDrainer(Work* work) {
  Drainer* d = reinterpret_cast<Drainer*>(work);
  PoolCore* pool = d->pool;
  const std::string worker = std::string(pool->executor_->name()) +
                             " pool worker " + std::to_string(d->index + 1);
  for (;;) {
    if (NodeBase* node = pool->ready_.Pop()) {
      pool->Execute(node, worker, /*counted=*/false);
      continue;
    }
    if (SpinUntil([&] { return !pool->ready_.Empty(); }, kDrainerSpin)) {
      continue;
    }
    d->busy.store(false, std::memory_order_release);
    pool->active_.fetch_sub(1, std::memory_order_seq_cst);
    // A node queued after the last look, while this drainer still held its
    // slot, posted nobody; and the pool may wait for the last drainer.
    if (!pool->ready_.Empty()) pool->MaybePostDrainer();
    pool->ended_.Notify();
    // The last touch of the pool: Close() may end it once no drainer lives.
    pool->live_drainers_.fetch_sub(1, std::memory_order_acq_rel);
    return;
  }
}

void PoolCore::Help(NodeBase* node, bool in_own_task) {
  if (in_own_task) {
    // A task waiting for a node of its own pool runs queued nodes meanwhile
    // (it holds a slot already): the node it waits for may be among them.
    const std::string worker = "helping task";
    while (!node->ended()) {
      if (NodeBase* next = ready_.Pop()) {
        Execute(next, worker);
        continue;
      }
      node->ended_event.WaitFor([node] { return node->ended(); },
                                Clock::now() + std::chrono::milliseconds(1));
    }
    return;
  }
  Block([node] { return node->ended(); }, node->ended_event,
        Clock::time_point::max());
}

// ---------------------------------------------------------------------------
// Waiting.

void PoolCore::Wait(NodeBase* node) {
  if (node->ended()) return;
  const bool own = t_current.pool == this;
  if (own && mode_ != Mode::kDrained && mode_ != Mode::kInline) {
    throw UsageError(
        "Future::get() or wait() inside a task of the same pool, on backend "
        "'" +
        std::string(executor_->name()) +
        "', whose tasks run in generations of workers that cannot see the "
        "pool's later results; valid: pass the future as an argument to "
        "submit() (the task then runs once it is ready)");
  }
  if (mode_ == Mode::kDrained) {
    Help(node, own);
    return;
  }
  if (own) {
    // sequential, from inside one of its tasks: what is queued runs here.
    while (!node->ended()) {
      if (!RunOneInline()) {
        throw UsageError(
            "Future::get() inside a task on backend '" +
            std::string(executor_->name()) + "' waits for task " +
            std::to_string(node->id) +
            ", which waits for this very task (it is this task, one that "
            "waits for it, or depends on one): the one thread would wait "
            "for itself; valid: pass the future as an argument to submit()");
      }
    }
    return;
  }
  Block([node] { return node->ended(); }, node->ended_event,
        Clock::time_point::max());
}

bool PoolCore::WaitUntil(NodeBase* node, Clock::time_point when) {
  if (node->ended()) return true;
  if (t_current.pool == this && mode_ != Mode::kDrained &&
      mode_ != Mode::kInline) {
    throw UsageError(
        "Future::wait_for() inside a task of the same pool on backend '" +
        std::string(executor_->name()) +
        "'; valid: pass the future as an argument to submit()");
  }
  return Block([node] { return node->ended(); }, node->ended_event, when);
}

void PoolCore::WaitAll() {
  Block([this] { return Pending() == 0; }, ended_, Clock::time_point::max());
}

// ---------------------------------------------------------------------------
// Generations (driven and lazy pools).

struct PoolCore::Generation {
  std::vector<NodeBase*> nodes;
  std::atomic<std::uint8_t>* stop = nullptr;
  std::vector<unsigned char> got;  // a result arrived (or was stored)
  const std::atomic<bool>* closing = nullptr;
  PoolCore* pool = nullptr;
  pid_t pid = 0;

  static std::size_t RunRange(void* ctx, std::size_t begin, std::size_t end,
                              TaskFailure* failure) {
    auto* g = static_cast<Generation*>(ctx);
    for (std::size_t k = begin; k < end; ++k) {
      if (g->stop[k].load(std::memory_order_acquire) != 0) {
        failure->type = "fanout::CancelledError";
        failure->message = "cancelled";
        return k - begin;
      }
      PoolTaskScope current(&g->stop[k], g->closing, g->pool);
      try {
        g->nodes[k]->ops->run(g->nodes[k]);
      } catch (...) {
        *failure = describe_current_exception();
        return k - begin;
      }
      // Cancelled while it ran: its result is dropped, on every process
      // alike (mpi ranks learn it from the one that ran it).
      if (g->stop[k].load(std::memory_order_acquire) != 0) {
        failure->type = "fanout::CancelledError";
        failure->message = "cancelled while it ran";
        return k - begin;
      }
      g->got[k] = 1;
    }
    return end - begin;
  }
  // Where tasks ran in this process's memory (the caller's, or an mpi
  // rank's own): their futures are done as their chunk ends, not when the
  // whole generation does. Nothing in a forked worker.
  static void ChunkDone(void* ctx, std::size_t begin, std::size_t end) {
    auto* g = static_cast<Generation*>(ctx);
    if (getpid() != g->pid || g->pool->mode_ == Mode::kLazy) return;
    for (std::size_t k = begin; k < end; ++k) {
      if (g->got[k] == 0) continue;
      g->pool->Retire(g->nodes[k]);
      g->pool->Finish(g->nodes[k], NodeState::kDone, nullptr);
    }
  }
  static void Encode(void* ctx, std::size_t k, std::string* out) {
    auto* g = static_cast<Generation*>(ctx);
    g->nodes[k]->ops->encode(g->nodes[k], out);
  }
  static void Decode(void* ctx, std::size_t k, std::string_view bytes) {
    auto* g = static_cast<Generation*>(ctx);
    NodeBase* node = g->nodes[k];
    if (node->state() != NodeState::kRunning) return;  // cancelled
    node->ops->decode(node, bytes);
    g->got[k] = 1;
    // Its future is done now, not when the whole generation is; but on mpi
    // ranks at the end, in task order, so every rank queues the next
    // generation's tasks alike.
    if (g->pool->mode_ == Mode::kLazy) return;
    g->pool->Retire(node);
    g->pool->Finish(node, NodeState::kDone, nullptr);
  }
};

bool PoolCore::RunOneInline() {
  NodeBase* node = ready_.Pop();
  if (node == nullptr) return false;
  Execute(node, executor_->name() == "sequential" ? "main thread" : "caller");
  return true;
}

std::vector<NodeBase*> PoolCore::TakeGeneration(const NodeBase* upto) {
  std::vector<NodeBase*> nodes;
  for (NodeBase* node : ready_.TakeAll(upto)) {
    NodeState expected = NodeState::kQueued;
    if (node->state_.compare_exchange_strong(expected, NodeState::kRunning,
                                             std::memory_order_acq_rel)) {
      nodes.push_back(node);
    } else {
      Release(node);  // the pool's: ended while queued
    }
  }
  return nodes;
}

bool PoolCore::RunGeneration(const NodeBase* upto) {
  std::vector<NodeBase*> nodes = TakeGeneration(upto);
  if (nodes.empty()) return false;
  RunNodes(std::move(nodes), jobs_, nullptr);
  return true;
}

void PoolCore::RunNodes(std::vector<NodeBase*> nodes, int workers,
                        Places* places) {
  Generation g;
  g.nodes = std::move(nodes);
  const std::size_t n = g.nodes.size();
  StopBytes stop(n, !executor_->shares_memory());
  g.stop = stop.data();
  g.got.assign(n, 0);
  g.closing = &closing_;
  g.pool = this;
  g.pid = getpid();
  std::uint64_t fingerprint = Mix(0, n);
  {
    std::lock_guard<std::mutex> lock(gen_mu_);
    generations_.push_back(&g);
    for (std::size_t k = 0; k < n; ++k) {
      NodeBase* node = g.nodes[k];
      node->shared_stop = &g.stop[k];
      if (node->ended() || closing_.load(std::memory_order_acquire)) {
        g.stop[k].store(1, std::memory_order_relaxed);
      }
      fingerprint =
          Mix(Mix(fingerprint, node->id), HashString(node->ops->task_type));
    }
  }
  running_.fetch_add(n, std::memory_order_acq_rel);
  Job job;
  job.n = n;
  job.ctx = &g;
  job.run_range = &Generation::RunRange;
  job.encode_result = &Generation::Encode;
  job.decode_result = &Generation::Decode;
  job.chunk_done = &Generation::ChunkDone;
  job.cancelled = g.stop;
  job.fingerprint = fingerprint == 0 ? 1 : fingerprint;
  RunOptions ro;
  ro.jobs = workers;
  ro.batch_size = batch_size_;
  ro.errors = ErrorPolicy::kCollectAll;
  ro.retries = retries_;
  ro.retry_on = &retry_on_;
  ro.task_timeout = task_timeout_;
  ro.worker_memory = worker_memory_;
  ro.in_workers = true;
  if (places != nullptr) {
    ro.place_freed = &Places::Freed;
    ro.place_ctx = places;
  }
  RunReport report;
  std::exception_ptr fatal;
  try {
    report = executor_->run(job, ro);
  } catch (...) {
    fatal = std::current_exception();
  }
  // Ctrl+C or SIGTERM stopped the generation's workers (process): the pool
  // stops too. What is queued, or becomes ready later, fails with the same
  // error, and submit() throws it.
  if (fatal != nullptr) {
    try {
      std::rethrow_exception(fatal);
    } catch (const InterruptedError&) {
      interrupted_error_ = fatal;
      interrupted_.store(true, std::memory_order_release);
    } catch (...) {
    }
  }
  {
    std::lock_guard<std::mutex> lock(gen_mu_);
    for (NodeBase* node : g.nodes) node->shared_stop = nullptr;
    generations_.erase(std::find(generations_.begin(), generations_.end(), &g));
  }
  std::vector<unsigned char> failed(n, 0);
  for (TaskError& e : report.failures) {
    const std::size_t k = e.index();
    if (k >= n) continue;
    failed[k] = 1;
    NodeBase* node = g.nodes[k];
    if (e.type() == "fanout::CancelledError") {
      Finish(node, NodeState::kCancelled,
             CancelledFor(
                 node, node->stop.load() != 0 ? "" : " (its pool was closed)"));
      continue;
    }
    TaskError::Details d = e.details();
    d.index = node->id;
    Finish(node, NodeState::kFailed,
           std::make_exception_ptr(TaskError(std::move(d))));
  }
  for (std::size_t k = 0; k < n; ++k) {
    NodeBase* node = g.nodes[k];
    Retire(node);
    if (failed[k]) continue;
    if (g.got[k] != 0) {
      Finish(node, NodeState::kDone, nullptr);
    } else if (fatal != nullptr) {
      Finish(node, NodeState::kFailed, fatal);
    } else {
      Finish(node, NodeState::kCancelled,
             CancelledFor(node, " (its pool was closed)"));
    }
  }
  running_.fetch_sub(n, std::memory_order_seq_cst);
  for (NodeBase* node : g.nodes) Release(node);  // the pool's, held as it ran
  if (interrupted_.load(std::memory_order_acquire)) {
    for (NodeBase* node : ready_.TakeAll()) {
      Finish(node, NodeState::kFailed, interrupted_error_);
      Release(node);
    }
  }
  ended_.Notify();
}

void PoolCore::Places::Freed(void* ctx) {
  auto* places = static_cast<Places*>(ctx);
  PoolCore* pool = places->pool;
  {
    std::lock_guard<std::mutex> lock(pool->driver_mu_);
    ++places->returned;
    ++pool->free_places_;
  }
  pool->driver_cv_.notify_one();
}

void PoolCore::StartDriver() {
  std::lock_guard<std::mutex> lock(driver_mu_);
  if (driver_.joinable() || closing_.load(std::memory_order_acquire)) return;
  free_places_ = jobs_;
  driver_ = std::thread([this] { DriverLoop(); });
}

void PoolCore::DriverLoop() {
  std::unique_lock<std::mutex> lock(driver_mu_);
  for (;;) {
    driver_cv_.wait(lock, [this] {
      if (driver_wake_) return true;
      // Closing: only a generation's end matters now.
      if (closing_.load(std::memory_order_acquire)) {
        return generation_threads_.empty();
      }
      return free_places_ > 0 && !ready_.Empty();
    });
    driver_wake_ = false;
    // Generations that ended: their threads are joined.
    for (auto it = generation_threads_.begin();
         it != generation_threads_.end();) {
      if (it->done) {
        it->thread.join();
        it = generation_threads_.erase(it);
      } else {
        ++it;
      }
    }
    if (closing_.load(std::memory_order_acquire)) {
      if (generation_threads_.empty()) return;
      continue;  // Close stopped them; they end soon
    }
    // Every place free is used: the queued nodes go as one generation on
    // as many workers as there are free places (and nodes), beside the
    // generations still running.
    if (free_places_ == 0 || ready_.Empty()) continue;
    lock.unlock();
    std::vector<NodeBase*> nodes = TakeGeneration(nullptr);
    lock.lock();
    if (nodes.empty()) continue;
    const int workers = static_cast<int>(std::min<std::size_t>(
        static_cast<std::size_t>(free_places_), nodes.size()));
    free_places_ -= workers;
    generation_threads_.emplace_back();
    GenerationThread& t = generation_threads_.back();
    t.places.pool = this;
    t.places.reserved = workers;
    t.thread =
        std::thread([this, &t, nodes = std::move(nodes), workers]() mutable {
          RunNodes(std::move(nodes), workers, &t.places);
          {
            std::lock_guard<std::mutex> done(driver_mu_);
            free_places_ += t.places.reserved - t.places.returned;
            t.done = true;
            driver_wake_ = true;
          }
          driver_cv_.notify_one();
        });
  }
}

// ---------------------------------------------------------------------------
// Closing.

void PoolCore::Close() {
  closing_.store(true, std::memory_order_seq_cst);
  // Queued nodes never run; nodes waiting for inputs end when those do.
  for (NodeBase* node : ready_.TakeAll()) {
    Cancel(node);
    Release(node);  // the pool's, left by the Finish of a queued node
  }
  // A generation running now: each of its nodes not yet ended is
  // cancelled; a backend that kills (process) kills the workers running
  // them, and the others are not started.
  {
    std::lock_guard<std::mutex> lock(gen_mu_);
    for (Generation* g : generations_) {
      for (std::size_t k = 0; k < g->nodes.size(); ++k) {
        g->nodes[k]->stop.store(1, std::memory_order_seq_cst);
        g->stop[k].store(1, std::memory_order_seq_cst);
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(driver_mu_);
    driver_wake_ = true;
  }
  driver_cv_.notify_one();
  std::thread driver;
  {
    std::lock_guard<std::mutex> lock(driver_mu_);
    driver = std::move(driver_);
  }
  if (driver.joinable()) driver.join();
  // Wait until nothing of this pool runs, no drainer is posted and every
  // node ended.
  for (;;) {
    for (NodeBase* node : ready_.TakeAll()) {
      Cancel(node);
      Release(node);
    }
    if (running_.load(std::memory_order_acquire) == 0 &&
        live_drainers_.load(std::memory_order_acquire) == 0 && Pending() == 0) {
      break;
    }
    // Timed: the last drainer and the last run touch nothing of the pool
    // after they say they are gone, so they cannot wake this wait.
    ended_.WaitFor(
        [&] {
          return running_.load(std::memory_order_acquire) == 0 &&
                 live_drainers_.load(std::memory_order_acquire) == 0 &&
                 Pending() == 0;
        },
        Clock::now() + std::chrono::milliseconds(1));
  }
}

// ---------------------------------------------------------------------------
// as_completed.

CompletionQueue::CompletionQueue(PoolCore* pool, NodeBase* const* nodes,
                                 std::size_t n)
    : pool_(pool), n_(n), entries_(new Entry[n == 0 ? 1 : n]), refs_(n + 1) {
  ended_.reserve(n);
  for (std::size_t k = 0; k < n; ++k) {
    Entry& e = entries_[k];
    e.queue = this;
    e.index = k;
    e.waiter.notify = &Notify;
    NodeBase* node = nodes[k];
    Waiter* head = node->waiters.load(std::memory_order_acquire);
    bool added = false;
    while (head != kSealed) {
      e.waiter.next = head;
      if (node->waiters.compare_exchange_weak(head, &e.waiter,
                                              std::memory_order_acq_rel,
                                              std::memory_order_acquire)) {
        added = true;
        break;
      }
    }
    if (!added) Notify(&e.waiter, node);
  }
}

void CompletionQueue::Notify(Waiter* self, NodeBase*) {
  Entry* e = reinterpret_cast<Entry*>(self);
  CompletionQueue* q = e->queue;
  {
    std::lock_guard<std::mutex> lock(q->mu_);
    q->ended_.push_back(e->index);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);  // see Event::Notify
  q->event_.Notify();
  q->Unref();
}

std::size_t CompletionQueue::Next() {
  if (given_ == n_) return n_;
  std::size_t index = n_;
  const auto take = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    if (given_ >= ended_.size()) return false;
    index = ended_[given_++];
    return true;
  };
  pool_->Block(take, event_, Clock::time_point::max());
  return index;
}

void CompletionQueue::Drop() { Unref(); }

void CompletionQueue::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

}  // namespace fanout::internal
