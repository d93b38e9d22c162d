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
