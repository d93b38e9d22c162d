// fanout/core/internal/pool_core.h — the engine behind fanout::Pool: a graph
// of submitted tasks (nodes), each of which ends exactly once (done, failed
// or cancelled); a node whose inputs have all ended well is queued, and the
// queued nodes run on the backend's workers.
//
// IWYU pragma: private, include "core/pool.h"
//
// How queued nodes run depends on what the backend can do:
//   drained  the backend runs posted work on in-process workers of its own
//            (Executor::Post: thread, tbb). Up to `jobs` drainers take nodes
//            off the ready queue one at a time. A thread that waits for a
//            node helps (runs queued nodes) while fewer than `jobs` threads
//            do, and a task that waits for a node of its own pool always
//            helps, so a wait never deadlocks.
//   driven   any other backend whose calls may come from any thread
//            (process): a driver thread takes every queued node at once as
//            one generation and runs it as a bulk call (Executor::run; the
//            process backend forks that generation's workers from the
//            caller as it is then), on as many workers as there are free
//            places of `jobs`. Generations overlap: a worker that handed in
//            its last task frees its place at once (RunOptions::
//            place_freed), and nodes queued meanwhile start there as the
//            next generation, without waiting for the running one to end.
//   lazy     mpi with several ranks (ranks must make the same calls, from
//            their main threads): generations run on the thread that waits
//            (get, wait, as_completed, wait_all), so the same program makes
//            the same calls on every rank. A wait runs every node queued.
//   inline   sequential (one worker, the caller's thread, no workers of its
//            own): the thread that waits runs queued nodes one at a time,
//            in the order they became ready, until what it waits for ended.
//
// Lifetime: a node is reference counted. Its Future holds one reference;
// the pool holds one until the node ends, or, once the node was queued,
// until whoever popped it is done with it (it did not run, or its run
// returned); a dependent one per edge until the edge was notified.
#ifndef FANOUT_CORE_INTERNAL_POOL_CORE_H_
#define FANOUT_CORE_INTERNAL_POOL_CORE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <typeinfo>
#include <vector>

#include "core/errors.h"
#include "core/executor.h"

namespace fanout {
struct Options;
}  // namespace fanout

namespace fanout::internal {

class PoolCore;
struct NodeBase;

// A word that changes when something happens, for threads to sleep on. A
// notifier that finds nobody asleep pays one load (no write to a line
// other threads read). Waiters say they are about to sleep before they look
// at what they wait for:
//
//   event.Arm();                       // from here on a Notify wakes us
//   std::uint32_t seen = event.Seen();
//   if (!ready()) event.Sleep(seen, deadline);
//   event.Disarm();
class Event {
 public:
  void Arm() { sleepers_.fetch_add(1, std::memory_order_seq_cst); }
  void Disarm() { sleepers_.fetch_sub(1, std::memory_order_seq_cst); }
  std::uint32_t Seen() const { return word_.load(std::memory_order_seq_cst); }
  // Sleeps until the word is no longer `seen` (or spuriously), at most
  // until `deadline`. Armed.
  void Sleep(std::uint32_t seen,
             std::chrono::steady_clock::time_point deadline);
  // After what waiters wait for changed: wakes every one armed. The change
  // must have been made with a seq_cst operation (or before a fence), so
  // that it and this load of the sleepers are ordered as Arm() and the
  // waiter's look are.
  void Notify() {
    if (sleepers_.load(std::memory_order_seq_cst) != 0) Wake();
  }
  // Arm, look, sleep, disarm: the whole wait for one change.
  template <class Pred>
  void WaitFor(const Pred& pred,
               std::chrono::steady_clock::time_point deadline) {
    Arm();
    const std::uint32_t seen = Seen();
    if (!pred()) Sleep(seen, deadline);
    Disarm();
  }

 private:
  void Wake();
  std::atomic<std::uint32_t> word_{0};
  std::atomic<std::uint32_t> sleepers_{0};
};

// Something to tell when a node ends: a dependent's edge, an as_completed
// queue. notify runs once, on the thread that ended the node.
struct Waiter {
  void (*notify)(Waiter* self, NodeBase* ended) = nullptr;
  Waiter* next = nullptr;
};

enum class NodeState : std::uint32_t {
  kWaiting,  // for its inputs
  kQueued,
  kRunning,
  kEnding,  // being ended (the one thread that ends it writes its outcome)
  kDone,
  kFailed,
  kCancelled,
};

// What a node's type knows: how to run it, move its result across
// processes, and free it.
struct NodeOps {
  void (*run)(NodeBase* node);  // runs the task once; throws what it throws
  void (*encode)(const NodeBase* node, std::string* out);  // null: cannot
  void (*decode)(NodeBase* node, std::string_view bytes);  // cross
  // Frees what only a run reads (the callable and its arguments).
  void (*drop_task)(NodeBase* node);
  void (*destroy)(NodeBase* node);
  const char* task_type;  // typeid(F).name(): what mpi ranks compare
};

// A dependent's link to one of its inputs (an argument that is a Future).
struct Edge {
  Waiter waiter;
  NodeBase* dependent = nullptr;
  NodeBase* input = nullptr;
};

// A node's link in the ready queue.
struct QueueLink {
  std::atomic<QueueLink*> next{nullptr};
};

struct NodeBase : QueueLink {
  explicit NodeBase(const NodeOps* o) : ops(o) {}
  NodeBase(const NodeBase&) = delete;
  NodeBase& operator=(const NodeBase&) = delete;

  NodeState state() const { return state_.load(std::memory_order_acquire); }
  bool ended() const { return state() > NodeState::kEnding; }

  const NodeOps* const ops;
  PoolCore* pool = nullptr;
  std::uint64_t id = 0;  // the submission number, from 0
  std::atomic<NodeState> state_{NodeState::kWaiting};
  Event ended_event;
  std::atomic<std::int32_t> refs{1};
  std::atomic<std::int32_t> inputs_left{0};
  // Dependents registered and not yet retired: they read this value.
  std::atomic<std::int32_t> readers{0};
  std::atomic<Waiter*> waiters{nullptr};
  // Cancel requested: what this_task::stop_requested() reads in-process...
  std::atomic<std::uint8_t> stop{0};
  // ... and the generation's byte for it, in memory forked workers share
  // (driven and lazy pools); guarded by the pool's generation lock.
  std::atomic<std::uint8_t>* shared_stop = nullptr;
  std::atomic<bool> retrieved{false};  // get() took the outcome
  std::atomic<bool> retired{false};    // inputs released, task dropped
  Edge* edges = nullptr;
  int n_edges = 0;
  std::exception_ptr error;  // kFailed, kCancelled
  // A node that did not run because an input failed: the first failure up
  // the graph, as its error says it (dependents name it, not a chain).
  std::shared_ptr<const std::string> root_cause;
};

void Retain(NodeBase* node);
void Release(NodeBase* node);

// The node the calling thread runs, for this_task::stop_requested() and for
// waits made from inside a task.
struct CurrentTask {
  const std::atomic<std::uint8_t>* stop = nullptr;
  const std::atomic<bool>* closing = nullptr;
  PoolCore* pool = nullptr;
};
CurrentTask& current_task();

// A FIFO of nodes, intrusive (no allocation). Any thread pushes with one
// exchange and never waits (Vyukov's multi-producer queue); poppers take
// turns under a spin lock held for a few instructions.
class ReadyQueue {
 public:
  ReadyQueue() : tail_(&stub_), head_(&stub_) {}
  void Push(NodeBase* node) { Push(static_cast<QueueLink*>(node)); }
  // The oldest node, or null when none is (or a push is half done).
  NodeBase* Pop();
  // True when nothing is queued: only the stub is left. (head_ is the next
  // node to hand out, so head_ == tail_ may still be one node.)
  bool Empty() const {
    return tail_.load(std::memory_order_seq_cst) == &stub_ &&
           head_.load(std::memory_order_seq_cst) == &stub_;
  }
  // Takes every node queued now, in order; with `upto` queued, only the
  // nodes up to and including it.
  std::vector<NodeBase*> TakeAll(const NodeBase* upto = nullptr);

 private:
  void Push(QueueLink* link);
  NodeBase* PopLocked();
  void Lock();
  void Unlock() { locked_.store(false, std::memory_order_release); }

  alignas(64) std::atomic<QueueLink*> tail_;
  alignas(64) std::atomic<QueueLink*> head_;
  std::atomic<bool> locked_{false};
  QueueLink stub_;
};

// The values of one node's result crossing processes (see NodeOps).
class PoolCore {
 public:
  enum class Mode { kDrained, kDriven, kLazy, kInline };

  PoolCore(std::shared_ptr<Executor> executor, const Options& options);
  ~PoolCore();
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  Executor& executor() const { return *executor_; }
  Mode mode() const { return mode_; }
  int jobs() const { return jobs_; }

  // Refuses a submission before any work: a closed pool, a result type
  // that cannot cross to the workers, an input from another pool or one
  // whose value get() already took. `type` names the result type.
  void CheckSubmit(bool result_crosses, const std::type_info& type,
                   NodeBase* const* inputs, int n_inputs) const;
  // Takes a new node (refs: its future's and the pool's) whose `edges`
  // name its inputs; it runs once they all ended well.
  void Submit(NodeBase* node);

  // Waits until the node ended (helping or driving where that is how work
  // gets done); with a deadline, false when it passed first.
  void Wait(NodeBase* node);
  bool WaitUntil(NodeBase* node, std::chrono::steady_clock::time_point when);
  // Waits until pred() holds, `event` being notified whenever it may start
  // to (deadline: max for none). False when the deadline passed first.
  // pred() is not asked again once it held (it may take what it found).
  template <class Pred>
  bool Block(const Pred& pred, Event& event,
             std::chrono::steady_clock::time_point deadline);
  // Waits until every node submitted so far ended.
  void WaitAll();

  // Cancels the node unless it ended: true when this call ended it.
  bool Cancel(NodeBase* node);

  // Refuses new submissions, cancels every node that has not ended (a
  // running one sees stop_requested(); on process its worker is killed)
  // and waits until nothing of the pool runs. Idempotent.
  void Close();
  bool closed() const { return closing_.load(std::memory_order_acquire); }

  // Event notified whenever a node of this pool ends.
  Event& ended_event() { return ended_; }

  // Ends the node (once: false when it had ended). `error` for kFailed and
  // kCancelled; `root` for a node failed by its input (NodeBase::root_cause).
  bool Finish(NodeBase* node, NodeState to, std::exception_ptr error,
              std::shared_ptr<const std::string> root = nullptr);

 private:
  struct Drainer {
    Work work;
    PoolCore* pool = nullptr;
    int index = 0;
    std::atomic<bool> busy{false};
  };
  struct Generation;

  void MakeReady(NodeBase* node);
  friend void NotifyEdge(Waiter* self, NodeBase* input);
  // Fails `node` because its input `input` failed or was cancelled.
  void FailForInput(NodeBase* node, NodeBase* input);
  // Runs a queued node on this thread. `counted`: in running_ (what Close
  // waits for); a drainer is counted in live_drainers_ instead.
  void Execute(NodeBase* node, const std::string& worker, bool counted = true);
  // Releases the node's inputs and drops its task, once.
  void Retire(NodeBase* node);
  void Notify(NodeBase* node, bool release);

  // Drained pools.
  void MaybePostDrainer();
  static void RunDrainer(Work* work);
  bool TakeSlot();
  void LeaveSlot();
  void Help(NodeBase* node, bool in_own_task);

  // The worker places one generation holds (driven pools): those its call
  // gives back early (RunOptions::place_freed), the rest when it ends.
  struct Places {
    PoolCore* pool = nullptr;
    int reserved = 0;
    int returned = 0;  // under driver_mu_
    static void Freed(void* ctx);
  };
  struct GenerationThread {
    std::thread thread;
    Places places;
    bool done = false;  // under driver_mu_
  };

  // Driven and lazy pools: the queued nodes (every one, or those up to and
  // including `upto` when it is queued), marked running.
  std::vector<NodeBase*> TakeGeneration(const NodeBase* upto);
  // Runs them as one bulk call on `workers` workers; `places` (driven)
  // hears of the places that free up.
  void RunNodes(std::vector<NodeBase*> nodes, int workers, Places* places);
  // Lazy pools: takes and runs a generation on this thread; false when
  // none was queued.
  bool RunGeneration(const NodeBase* upto);
  // Inline pools: runs the next queued node on this thread; false when none.
  bool RunOneInline();
  void DriverLoop();
  void StartDriver();

  static Mode ChooseMode(Executor& executor, int jobs);

  const std::shared_ptr<Executor> executor_;
  const int jobs_;
  const Mode mode_;
  const std::size_t batch_size_;
  const int retries_;
  const std::vector<std::string> retry_on_;
  const std::chrono::milliseconds task_timeout_;
  const std::size_t worker_memory_;

  ReadyQueue ready_;
  // Submitted (the submitters' line) and ended (the workers' line): the
  // nodes pending are their difference.
  alignas(64) std::atomic<std::uint64_t> next_id_{0};
  alignas(64) std::atomic<std::uint64_t> ended_count_{0};
  alignas(64) std::atomic<std::size_t> running_{0};  // runs not yet returned
  std::uint64_t Pending() const {
    return next_id_.load(std::memory_order_acquire) -
           ended_count_.load(std::memory_order_acquire);
  }
  std::atomic<bool> closing_{false};
  // A generation's workers were stopped by SIGINT/SIGTERM (process): the
  // error, set once before the flag.
  std::atomic<bool> interrupted_{false};
  std::exception_ptr interrupted_error_;
  Event ended_;

  // Drained: threads taking nodes off ready_ (posted drainers and helping
  // waiters), at most jobs_.
  std::atomic<int> active_{0};
  // Drainers posted and not yet returned (what Close waits for).
  std::atomic<int> live_drainers_{0};
  std::unique_ptr<Drainer[]> drainers_;
  std::atomic<int> next_drainer_{0};

  // Driven: the driver thread, what wakes it, the worker places free (of
  // jobs_) and the threads of the generations running, each on its own.
  std::mutex driver_mu_;
  std::condition_variable driver_cv_;
  std::thread driver_;
  bool driver_wake_ = false;
  int free_places_ = 0;
  std::list<GenerationThread> generation_threads_;
  // Generations running now, and the shared stop bytes of their nodes
  // (Cancel, Close).
  std::mutex gen_mu_;
  std::vector<Generation*> generations_;
};

// The futures of one as_completed / wait_any: the index of each as its node
// ends, in that order. Reference counted: the range holds one reference,
// each node not yet ended one (a range left early is freed by the last).
class CompletionQueue {
 public:
  // Registers with each node; every node must be of `pool`.
  CompletionQueue(PoolCore* pool, NodeBase* const* nodes, std::size_t n);
  // The next index whose node ended, waiting (and driving the pool where
  // that is how work gets done) until one does; n once every one was given.
  std::size_t Next();
  // Drops the range's reference.
  void Drop();

 private:
  struct Entry {
    Waiter waiter;
    CompletionQueue* queue = nullptr;
    std::size_t index = 0;
  };
  static void Notify(Waiter* self, NodeBase* ended);
  void Unref();

  PoolCore* const pool_;
  const std::size_t n_;
  std::unique_ptr<Entry[]> entries_;
  std::atomic<std::size_t> refs_;
  std::mutex mu_;
  std::vector<std::size_t> ended_;  // not yet given
  std::size_t given_ = 0;
  Event event_;
};

template <class Pred>
bool PoolCore::Block(const Pred& pred, Event& event,
                     std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (pred()) return true;
    if (deadline != std::chrono::steady_clock::time_point::max() &&
        std::chrono::steady_clock::now() >= deadline) {
      return pred();
    }
    if (mode_ == Mode::kLazy || mode_ == Mode::kInline) {
      if (mode_ == Mode::kLazy ? RunGeneration(nullptr) : RunOneInline()) {
        continue;
      }
      if (running_.load(std::memory_order_acquire) == 0) {
        throw Error(
            "internal: a pool waits for tasks that nothing queued or "
            "running can end");
      }
    } else if (mode_ == Mode::kDrained) {
      if (TakeSlot()) {
        // pred() may take what it waits for (as_completed): once true, it
        // is not asked again.
        bool held = false;
        while (!(held = pred())) {
          NodeBase* next = ready_.Pop();
          if (next == nullptr) break;
          Execute(next, "caller");  // counted: the caller may leave
        }
        LeaveSlot();
        if (held) return true;
        continue;
      }
    }
    // pred() may take what it found (as_completed): once true, it is not
    // asked again.
    bool held = false;
    event.WaitFor([&] { return held = pred(); }, deadline);
    if (held) return true;
  }
}

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_POOL_CORE_H_
