// fanout/core/internal/journal.h — the checkpoint file of a long call: one
// record per finished task, appended in batches, read back on resume.
//
// IWYU pragma: private, include "core/parallel.h"
//
//   fanout::internal::JournalIdentity id{.tasks = 10000, .type = "long long",
//                                        .kind = "map", .key = "sum"};
//   fanout::internal::Journal j("/tmp/sum.ckpt", id, /*writable=*/true,
//       [&](std::uint64_t index, std::string_view bytes) { ... });
//   std::string batch;
//   std::size_t frame = fanout::internal::Journal::BeginFrame(&batch);
//   std::size_t at = fanout::internal::Journal::BeginRecord(&batch, 17);
//   batch += encoded_result;                 // the codec's bytes, in place
//   fanout::internal::Journal::EndRecord(&batch, at);
//   ...                                      // a window's other results
//   fanout::internal::Journal::EndFrame(&batch, frame);
//   j.Append(batch);                         // one write()
//
// The file: a header (magic, format version, then what the journal is for:
// task count, result type, call kind and the user's key, and a checksum),
// then frames, one per window of the call: a frame magic (u32), its record
// count (u32) and body length (u64), the records, and a 64-bit checksum of
// the frame. A record is `count` consecutive tasks from `index`, each
// `size` bytes: index (u64), count (u32), size (u32), then count x size
// bytes — one task of any size (a serialized result), or a run of
// fixed-size results copied as they lie in memory (AppendRun), so that a
// window of tiny results costs one memcpy and 16 bytes. One checksum per
// frame, not per record, keeps the cost per result low too. Little-endian,
// as the machine writes it (a checkpoint is read back on the machine, or
// the cluster of one architecture, that wrote it).
//
// Opening keeps every whole frame and never rewrites one: the file is
// appended to only (O_APPEND). A process killed mid-write leaves the first
// bytes of what it wrote: this call's header cut short (written anew), or a
// last frame that ends before its head says, whose records are the start of
// whole records of this call's tasks (dropped: that window's tasks run
// again; the file is cut back to the last whole frame before anything is
// appended). Anything else is damage and refused, the file left as it is:
// a frame that fails its checksum (the last one too), a header or a frame
// head whose length runs past the end while what follows shows it is not a
// write cut short (a flipped bit in a length must not make whole frames
// look torn), a header for another call.
//
// Depends on nothing of fanout: errors are JournalError, which the front
// end turns into UsageError (another call's file) or Error (damage, I/O).
#ifndef FANOUT_CORE_INTERNAL_JOURNAL_H_
#define FANOUT_CORE_INTERNAL_JOURNAL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fanout::internal {

// What a journal was written for. A journal is resumed only by a call with
// the same identity.
struct JournalIdentity {
  std::uint64_t tasks = 0;  // the call's task count
  std::string type;         // the result type, e.g. "long long"
  std::string kind;         // "map", "map_reduce", "imap", "for_each"
  std::string key;          // the user's name for the job

  // "10000 tasks of long long (map, key 'sum')"
  std::string Describe() const;
};

class JournalError : public std::runtime_error {
 public:
  enum class Kind {
    kMismatch,  // written for another call, or not a checkpoint at all
    kDamaged,   // a bad record with whole records after it
    kIo,        // open, read, write or lock failed
  };
  JournalError(Kind kind, const std::string& what)
      : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

class Journal {
 public:
  // Called once per task of each record of a whole frame, in file order; an index may repeat (the
  // first one wins: the caller keeps it).
  using OnRecord = std::function<void(std::uint64_t index, std::string_view)>;

  // Opens `path` for `id` and reads its records. `writable`: creates the
  // file (writing the header) when it is missing or holds only a torn
  // header, cuts a torn last record off, and takes an exclusive lock so
  // that two calls never append to one file at once. Read-only (an mpi rank
  // other than the primary one): a missing file reads as empty and nothing
  // is changed. Throws JournalError.
  Journal(const std::string& path, const JournalIdentity& id, bool writable,
          const OnRecord& on_record);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends frames made with BeginFrame / EndFrame in one write(). Throws
  // JournalError (kIo) when the write fails.
  void Append(std::string_view batch);

  // Starts a frame at the end of *batch; returns its offset for EndFrame.
  static std::size_t BeginFrame(std::string* batch);
  // Starts a record for task `index` at the end of *batch (inside a frame);
  // append its bytes, then call EndRecord with the returned offset.
  static std::size_t BeginRecord(std::string* batch, std::uint64_t index);
  // Fills in the length of the record begun at `at`.
  static void EndRecord(std::string* batch, std::size_t at);
  // Appends a record of tasks [first, first + count), each `size` bytes of
  // `data` in turn (inside a frame).
  static void AppendRun(std::string* batch, std::uint64_t first,
                        std::size_t count, std::size_t size, const void* data);
  // Fills in the frame's count and length and appends its checksum; false
  // (and the frame removed from *batch) when it holds no record.
  static bool EndFrame(std::string* batch, std::size_t frame);

  // The number of tasks read at open (repeats included).
  std::size_t records_read() const { return records_read_; }
  // Bytes of a torn tail dropped at open (0 when the file was whole).
  std::size_t bytes_dropped() const { return bytes_dropped_; }
  const std::string& path() const { return path_; }

  // The header bytes for `id` (for tests).
  static std::string Header(const JournalIdentity& id);

 private:
  std::string path_;
  int fd_ = -1;
  std::size_t records_read_ = 0;
  std::size_t bytes_dropped_ = 0;
};

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_JOURNAL_H_
