// fanout/core/internal/checkpoint.h — what a checkpointed call writes and
// reads: result slots as journal records, window sizes, and the journal
// file of one call (Options::checkpoint).
//
// IWYU pragma: private, include "core/parallel.h"
#ifndef FANOUT_CORE_INTERNAL_CHECKPOINT_H_
#define FANOUT_CORE_INTERNAL_CHECKPOINT_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "core/codec.h"
#include "core/errors.h"
#include "core/executor.h"
#include "core/internal/journal.h"
#include "core/internal/runner.h"
#include "core/internal/trace.h"

namespace fanout::internal {

// True when R's results can be written to a checkpoint: the test the
// process backend applies (Runner::MakeJob).
template <class R>
constexpr bool Journalable() {
  if constexpr (std::is_void_v<R>) {
    return true;
  } else {
    return codec::kIsTrivial<Slot<R>> || codec::kCanCross<R>;
  }
}

// A result slot as a checkpoint record's bytes, and back (as Runner's
// Encode and Decode: the same bytes as cross a process).
template <class R>
void EncodeSlot(const Slot<R>& slot, std::string* out) {
  if constexpr (!codec::kIsTrivial<Slot<R>> &&
                std::is_same_v<Slot<R>, std::optional<R>>) {
    codec::encode(*slot, *out);
  } else {
    codec::encode(slot, *out);
  }
}
template <class R>
void DecodeSlot(std::string_view bytes, Slot<R>* slot) {
  if constexpr (!codec::kIsTrivial<Slot<R>> &&
                std::is_same_v<Slot<R>, std::optional<R>>) {
    slot->emplace(codec::decode<R>(bytes));
  } else {
    *slot = codec::decode<Slot<R>>(bytes);
  }
}

// Appends the records of a window's tasks ids[0 .. count) to *batch (inside
// a frame), but not those `failed(k)` names (called with k rising); task
// ids[k]'s result is slots[k]. Fixed-size results go as runs of
// consecutive tasks, copied as they lie (one memcpy a run); others are
// encoded one by one.
template <class R>
constexpr bool RecordsAsRuns() {
  if constexpr (std::is_void_v<R>) {
    return true;
  } else {
    return codec::kIsTrivial<Slot<R>>;
  }
}
template <class R, class Failed>
void RecordWindow(std::string* batch, const std::size_t* ids, std::size_t count,
                  const void* slots, Failed failed) {
  if constexpr (RecordsAsRuns<R>()) {
    for (std::size_t k = 0; k < count;) {
      if (failed(k)) {
        ++k;
        continue;
      }
      std::size_t end = k + 1;
      while (end < count && ids[end] == ids[end - 1] + 1 && !failed(end)) {
        ++end;
      }
      if constexpr (std::is_void_v<R>) {
        Journal::AppendRun(batch, ids[k], end - k, 0, nullptr);
      } else {
        Journal::AppendRun(batch, ids[k], end - k, sizeof(Slot<R>),
                           static_cast<const Slot<R>*>(slots) + k);
      }
      k = end;
    }
  } else {
    for (std::size_t k = 0; k < count; ++k) {
      if (failed(k)) continue;
      const std::size_t at = Journal::BeginRecord(batch, ids[k]);
      EncodeSlot<R>(static_cast<const Slot<R>*>(slots)[k], batch);
      Journal::EndRecord(batch, at);
    }
  }
}

// About the bytes one result takes in a checkpoint (to reserve a window's).
template <class R>
constexpr std::size_t RecordBytes() {
  if constexpr (std::is_void_v<R>) {
    return 1;
  } else if constexpr (codec::kIsTrivial<Slot<R>>) {
    return sizeof(Slot<R>) + 1;
  } else {
    return 32;
  }
}

// Renames the failures of a window, sorted by index, from the window's task
// k to the call's (ids[k], or begin + k when ids is null), and sorts them
// again. A backend names a worker's death or a task it stopped (type "")
// by the window's task; with `all`, every failure names it so (the window's
// tasks do not name themselves). Others name the call's task already (a
// GroupTaskFailure).
void RenameWindowFailures(std::vector<TaskError>* failures,
                          const std::size_t* ids, std::size_t begin,
                          std::size_t count, bool all);

// The demangled name of a type ("long long"): what a checkpoint records.
std::string TypeName(const std::type_info& type);

// A checkpointed call's journal: opened for writing on the primary rank (or
// the only process), read only elsewhere. Errors become UsageError (another
// call's file, or one in use) or Error (damage, I/O), naming the file.
class Checkpoint {
 public:
  Checkpoint(const std::string& path, const JournalIdentity& id, bool primary,
             const Journal::OnRecord& on_record);
  // Appends one window's records; nothing on a rank that does not write.
  void Append(std::string_view batch);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<Journal> journal_;
};

// The refusals every checkpointed call makes before it opens its file: a
// call made from inside a task, and a result type a checkpoint cannot hold.
template <class R>
void RefuseCheckpoint(const std::string& path) {
  if (in_task()) {
    throw UsageError("checkpoint " + path +
                     " cannot be used by a call made from inside a task (it "
                     "runs inline, as one of the outer call's tasks); valid: "
                     "a checkpoint on the outer call");
  }
  if constexpr (!Journalable<R>()) {
    throw UsageError("checkpoint " + path + ": the result type '" +
                     TypeName(typeid(R)) +
                     "' cannot be written to a checkpoint; valid: a type "
                     "with a cereal serialize() (see core/codec.h) and a "
                     "default constructor or cereal's load_and_construct, "
                     "or no checkpoint");
  }
}

// Opens a checkpointed call's file (after RefuseCheckpoint<R>) and reads it
// back: the first record of task i is decoded into *slot_for(i) (nothing is
// decoded for void results) and (*loaded)[i] set; repeats are skipped.
// `loaded` holds a byte per task of the call, zero on entry.
template <class R, class SlotFor>
std::unique_ptr<Checkpoint> OpenCheckpoint(const std::string& path,
                                           const JournalIdentity& id,
                                           bool primary,
                                           std::vector<unsigned char>* loaded,
                                           SlotFor slot_for) {
  return std::make_unique<Checkpoint>(
      path, id, primary, [&, loaded](std::uint64_t i, std::string_view bytes) {
        if ((*loaded)[i]) return;  // a repeat: the first one wins
        if constexpr (!std::is_void_v<R>) {
          try {
            DecodeSlot<R>(bytes, slot_for(i));
          } catch (const std::exception& e) {
            throw Error("checkpoint " + path + ": the record of task " +
                        std::to_string(i) + " is not a " + id.type + " (" +
                        e.what() + "); valid: delete " + path +
                        " to start over");
          }
        }
        (*loaded)[i] = 1;
      });
}

// Appends the records of a window's tasks ids[0 .. count) (results at
// `results`, as RecordWindow), but not those `failed(k)` names, as one
// frame written with one write(); a traced call notes the write. `batch`
// is scratch space, reused between windows.
template <class R, class Failed>
void AppendWindow(Checkpoint& file, std::string* batch, const std::size_t* ids,
                  std::size_t count, const void* results, Failed failed,
                  CallTrace* trace) {
  batch->clear();
  batch->reserve(64 + count * RecordBytes<R>());
  const std::size_t frame = Journal::BeginFrame(batch);
  RecordWindow<R>(batch, ids, count, results, failed);
  if (!Journal::EndFrame(batch, frame)) return;
  const std::uint64_t t0 = trace != nullptr ? TraceNow() : 0;
  file.Append(*batch);
  if (trace != nullptr) {
    trace->Note(nullptr, "checkpoint write", "checkpoint", t0, TraceNow(),
                "\"bytes\":" + std::to_string(batch->size()) +
                    ",\"tasks\":" + std::to_string(count));
  }
}

// The size of a checkpointed call's next window, in tasks. See parallel.cc.
std::size_t FirstWindow(int jobs, std::size_t left, bool timed);
std::size_t NextWindow(std::size_t window, double seconds, int jobs,
                       std::size_t n, bool timed);

// What a checkpointed call did: the report of its windows (failures by
// task index), which of its tasks were read back from the file, and how many.
struct CheckpointedRun {
  RunReport report;
  std::vector<unsigned char> loaded;  // per task: read back
  std::size_t resumed = 0;
};

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_CHECKPOINT_H_
