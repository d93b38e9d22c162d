#include "core/internal/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "core/internal/fd.h"

namespace fanout::internal {
namespace {

constexpr char kMagic[8] = {'f', 'a', 'n', 'o', 'u', 't', 'C', 'K'};
constexpr std::uint32_t kVersion = 1;
// A frame: magic (4), record count (4), body length (8), the records,
// checksum (8). A record: index (8), count (4), size (4), count x size bytes.
constexpr std::uint32_t kFrameMagic = 0x314d5246;  // "FRM1"
constexpr std::size_t kFrameHead = 16;
constexpr std::size_t kFrameTail = 8;
constexpr std::size_t kRecordHead = 16;

std::uint64_t Mix(std::uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// A 64-bit checksum, a word at a time: it finds torn writes and flipped
// bits, cheaply (a few cycles per 8 bytes); it is not meant to resist
// someone forging a frame.
std::uint64_t Checksum(const char* p, std::size_t n) {
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = ((h ^ (w * 0x87c37b91114253d5ULL)) << 31 |
         (h ^ (w * 0x87c37b91114253d5ULL)) >> 33) *
        0x4cf5ad432745937fULL;
  }
  std::uint64_t w = 0;
  std::memcpy(&w, p, n);
  return Mix(h ^ w ^ (n << 56));
}

template <class T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

template <class T>
T Get(const std::string& in, std::size_t at) {
  T v;
  std::memcpy(&v, in.data() + at, sizeof(v));
  return v;
}

void PutString(std::string* out, const std::string& s) {
  Put(out, static_cast<std::uint32_t>(s.size()));
  *out += s;
}

std::string Errno(const std::string& what, const std::string& path) {
  return "checkpoint " + path + ": cannot " + what + ": " +
         std::strerror(errno);
}

// The file's bytes (it is read once, at open).
std::string ReadFile(int fd, const std::string& path) {
  std::string bytes;
  if (lseek(fd, 0, SEEK_SET) < 0 || !ReadAll(fd, &bytes)) {
    throw JournalError(JournalError::Kind::kIo, Errno("read it", path));
  }
  return bytes;
}

// The parsed header: where records begin, or 0 when the file is empty or
// holds this call's header cut short (no record can follow it).
std::size_t ParseHeader(const std::string& bytes, const std::string& path,
                        const JournalIdentity& id) {
  const std::size_t prefix = std::min(bytes.size(), sizeof(kMagic));
  if (std::memcmp(bytes.data(), kMagic, prefix) != 0) {
    throw JournalError(
        JournalError::Kind::kMismatch,
        "checkpoint " + path +
            " is not a fanout checkpoint (it does not start as one; fanout "
            "never overwrites such a file); valid: a file written by a "
            "checkpointed call, or a path that does not exist yet");
  }
  // A header cut short by a kill is a prefix of the one this call writes
  // (the header is written in one piece before any frame). Anything else
  // that ends inside its header, or whose lengths run past the end of the
  // file, is damage: a length field with a flipped bit must not make whole
  // records look like a header cut short and be thrown away.
  const std::string expected = Journal::Header(id);
  if (bytes.size() < expected.size() &&
      expected.compare(0, bytes.size(), bytes) == 0) {
    return 0;
  }
  const auto cut = [&] {
    return JournalError(
        JournalError::Kind::kDamaged,
        "checkpoint " + path +
            " is damaged: its header's lengths run past the end of the "
            "file, and it is not this call's header cut short; valid: "
            "delete " +
            path + " to start over");
  };
  std::size_t at = sizeof(kMagic);
  if (bytes.size() < at + 4) throw cut();
  const auto version = Get<std::uint32_t>(bytes, at);
  at += 4;
  if (version != kVersion) {
    throw JournalError(JournalError::Kind::kMismatch,
                       "checkpoint " + path + " is in format version " +
                           std::to_string(version) +
                           "; this fanout reads version " +
                           std::to_string(kVersion) +
                           "; valid: a checkpoint of this version, or delete " +
                           path + " to start over");
  }
  JournalIdentity found;
  if (bytes.size() < at + 8) throw cut();
  found.tasks = Get<std::uint64_t>(bytes, at);
  at += 8;
  for (std::string* s : {&found.kind, &found.type, &found.key}) {
    if (bytes.size() < at + 4) throw cut();
    const auto len = Get<std::uint32_t>(bytes, at);
    at += 4;
    if (bytes.size() - at < len) throw cut();
    s->assign(bytes, at, len);
    at += len;
  }
  if (bytes.size() < at + 8) throw cut();
  if (Get<std::uint64_t>(bytes, at) != Checksum(bytes.data(), at)) {
    throw JournalError(JournalError::Kind::kDamaged,
                       "checkpoint " + path +
                           " is damaged: its header fails its checksum; "
                           "valid: delete " +
                           path + " to start over");
  }
  at += 8;
  if (found.tasks != id.tasks || found.type != id.type ||
      found.kind != id.kind || found.key != id.key) {
    throw JournalError(JournalError::Kind::kMismatch,
                       "checkpoint " + path + " was written for " +
                           found.Describe() + "; this call has " +
                           id.Describe() +
                           "; valid: the same call, or another checkpoint "
                           "file (delete " +
                           path + " to start over)");
  }
  return at;
}

// A frame at `at` whose head says it runs past the end of `bytes`: "" when
// what is there is the start of such a frame (a write cut short: records
// of this call's tasks, the last one or the checksum cut off); otherwise
// what shows that its head is damaged instead.
std::string NotACut(const std::string& bytes, std::size_t at,
                    std::uint32_t count, std::uint64_t body,
                    const JournalIdentity& id) {
  const std::size_t begin = at + kFrameHead;
  std::size_t p = begin;
  for (std::uint32_t r = 0; r < count; ++r) {
    if (bytes.size() - p < kRecordHead) return "";  // cut in a record's head
    const auto index = Get<std::uint64_t>(bytes, p);
    const std::uint64_t tasks = Get<std::uint32_t>(bytes, p + 8);
    const std::uint64_t size = Get<std::uint32_t>(bytes, p + 12);
    const std::uint64_t length = kRecordHead + tasks * size;  // < 2^64
    if (tasks == 0 || index >= id.tasks || id.tasks - index < tasks ||
        body - (p - begin) < length) {
      return "says it runs past the end of the file, but its record " +
             std::to_string(r) + " (at byte " + std::to_string(p) +
             ") is not one of its " + std::to_string(id.tasks) +
             " tasks within its " + std::to_string(body) + " bytes";
    }
    if (bytes.size() - p < length) return "";  // cut in a record's bytes
    p += length;
  }
  // Every record is whole: a frame cut in its checksum ends its records
  // where its head says.
  if (p - begin == body) return "";
  return "says its body is " + std::to_string(body) +
         " bytes, past the end of the file, but its " + std::to_string(count) +
         " records end at byte " + std::to_string(p);
}

}  // namespace

std::string JournalIdentity::Describe() const {
  return std::to_string(tasks) + " tasks of " + type + " (" + kind + ", key '" +
         key + "')";
}

std::string Journal::Header(const JournalIdentity& id) {
  std::string h(kMagic, sizeof(kMagic));
  Put(&h, kVersion);
  Put(&h, id.tasks);
  PutString(&h, id.kind);
  PutString(&h, id.type);
  PutString(&h, id.key);
  Put(&h, Checksum(h.data(), h.size()));
  return h;
}

Journal::Journal(const std::string& path, const JournalIdentity& id,
                 bool writable, const OnRecord& on_record)
    : path_(path) {
  fd_ = writable
            ? open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644)
            : open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    if (!writable && errno == ENOENT) return;  // nothing written yet
    throw JournalError(JournalError::Kind::kIo, Errno("open it", path));
  }
  try {
    if (writable && flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      throw JournalError(
          errno == EWOULDBLOCK ? JournalError::Kind::kMismatch
                               : JournalError::Kind::kIo,
          errno == EWOULDBLOCK
              ? "checkpoint " + path +
                    " is in use by another call (it holds the file's lock); "
                    "valid: one call at a time per checkpoint file"
              : Errno("lock it", path));
    }
    const std::string bytes = ReadFile(fd_, path);
    const std::size_t begin = ParseHeader(bytes, path, id);
    if (begin == 0) {  // new, or a header cut short: no record is lost
      if (writable) {
        const std::string header = Header(id);
        if (ftruncate(fd_, 0) != 0 ||
            !WriteAll(fd_, header.data(), header.size())) {
          throw JournalError(JournalError::Kind::kIo,
                             Errno("write its header", path));
        }
      }
      return;
    }
    std::size_t at = begin;
    std::size_t frame = 0;
    std::size_t records = 0;
    const auto damaged = [&](const std::string& what) {
      return JournalError(JournalError::Kind::kDamaged,
                          "checkpoint " + path + " is damaged: frame " +
                              std::to_string(frame) + " (at byte " +
                              std::to_string(at) + ") " + what +
                              "; valid: delete " + path +
                              " to start over (its tasks then run again)");
    };
    while (at < bytes.size()) {
      const std::size_t left = bytes.size() - at;
      // Too short for a frame's head: a write cut short (no record fits).
      if (left < kFrameHead) break;
      const auto magic = Get<std::uint32_t>(bytes, at);
      const auto count = Get<std::uint32_t>(bytes, at + 4);
      const auto body = Get<std::uint64_t>(bytes, at + 8);
      if (magic != kFrameMagic) {
        throw damaged(
            "does not start with a frame's mark, so it is not a "
            "write cut short");
      }
      if (left < kFrameHead + kFrameTail ||
          left - kFrameHead - kFrameTail < body) {
        // It runs past the end of the file: a write cut short, or a length
        // field that is damaged. Its records tell them apart.
        const std::string why = NotACut(bytes, at, count, body, id);
        if (why.empty()) break;  // cut short: its tasks run again
        throw damaged(why + ", so it is not a write cut short");
      }
      const std::size_t end = at + kFrameHead + body + kFrameTail;
      if (Get<std::uint64_t>(bytes, end - kFrameTail) !=
          Checksum(bytes.data() + at, kFrameHead + body)) {
        // A write cut short leaves the first bytes of what it wrote, never
        // a frame as long as its head says with other bytes in it.
        throw damaged(
            end == bytes.size()
                ? std::string(
                      "is not sound though it is as long as its head says, "
                      "so it is not a write cut short")
                : "is not sound and " + std::to_string(bytes.size() - end) +
                      " bytes follow it, so it is not a write cut short");
      }
      // A sound frame holds whole records of this call's tasks.
      std::size_t p = at + kFrameHead;
      const std::size_t body_end = p + body;
      std::size_t n = 0;
      std::size_t tasks = 0;
      while (p < body_end) {
        if (body_end - p < kRecordHead) break;
        const auto index = Get<std::uint64_t>(bytes, p);
        const std::uint64_t count = Get<std::uint32_t>(bytes, p + 8);
        const std::uint64_t size = Get<std::uint32_t>(bytes, p + 12);
        if (count == 0 || (body_end - p - kRecordHead) / count < size ||
            index >= id.tasks || id.tasks - index < count) {
          break;
        }
        const char* data = bytes.data() + p + kRecordHead;
        for (std::uint64_t k = 0; k < count; ++k, data += size) {
          on_record(index + k, std::string_view(data, size));
        }
        p += kRecordHead + count * size;
        tasks += count;
        ++n;
      }
      if (p != body_end || n != count) {
        throw damaged("holds records that are not whole, or not of its " +
                      std::to_string(id.tasks) + " tasks");
      }
      records += tasks;
      ++frame;
      at = end;
    }
    records_read_ = records;
    bytes_dropped_ = bytes.size() - at;
    if (writable && bytes_dropped_ != 0 &&
        ftruncate(fd_, static_cast<off_t>(at)) != 0) {
      throw JournalError(JournalError::Kind::kIo,
                         Errno("cut its torn last record off", path));
    }
  } catch (...) {
    CloseFd(&fd_);
    throw;
  }
}

Journal::~Journal() { CloseFd(&fd_); }

void Journal::Append(std::string_view batch) {
  if (batch.empty()) return;
  if (fd_ < 0 || !WriteAll(fd_, batch.data(), batch.size())) {
    throw JournalError(JournalError::Kind::kIo, Errno("append to it", path_));
  }
}

std::size_t Journal::BeginFrame(std::string* batch) {
  const std::size_t at = batch->size();
  Put(batch, kFrameMagic);
  Put(batch, std::uint32_t{0});
  Put(batch, std::uint64_t{0});
  return at;
}

std::size_t Journal::BeginRecord(std::string* batch, std::uint64_t index) {
  const std::size_t at = batch->size();
  Put(batch, index);
  Put(batch, std::uint32_t{1});
  Put(batch, std::uint32_t{0});
  return at;
}

void Journal::EndRecord(std::string* batch, std::size_t at) {
  const std::size_t size = batch->size() - at - kRecordHead;
  if (size > UINT32_MAX) {
    throw JournalError(JournalError::Kind::kMismatch,
                       "a result of " + std::to_string(size) +
                           " bytes is too large for a checkpoint record; "
                           "valid: results under 4 GiB each");
  }
  const auto len = static_cast<std::uint32_t>(size);
  std::memcpy(batch->data() + at + 12, &len, sizeof(len));
}

void Journal::AppendRun(std::string* batch, std::uint64_t first,
                        std::size_t count, std::size_t size, const void* data) {
  if (count == 0) return;
  // A count or size that does not fit its field: records of fewer tasks.
  const std::size_t most = std::min<std::size_t>(
      UINT32_MAX, size == 0 ? UINT32_MAX : (std::size_t{1} << 30) / size + 1);
  for (std::size_t done = 0; done < count;) {
    const std::size_t take = std::min(most, count - done);
    if (size > UINT32_MAX) {
      throw JournalError(JournalError::Kind::kMismatch,
                         "a result of " + std::to_string(size) +
                             " bytes is too large for a checkpoint record; "
                             "valid: results under 4 GiB each");
    }
    Put(batch, first + done);
    Put(batch, static_cast<std::uint32_t>(take));
    Put(batch, static_cast<std::uint32_t>(size));
    batch->append(static_cast<const char*>(data) + done * size, take * size);
    done += take;
  }
}

bool Journal::EndFrame(std::string* batch, std::size_t frame) {
  const std::uint64_t body = batch->size() - frame - kFrameHead;
  if (body == 0) {
    batch->resize(frame);
    return false;
  }
  // Count the records: cheaper here than a counter passed around.
  std::uint32_t count = 0;
  for (std::size_t p = frame + kFrameHead; p < batch->size(); ++count) {
    p += kRecordHead + std::size_t{Get<std::uint32_t>(*batch, p + 8)} *
                           Get<std::uint32_t>(*batch, p + 12);
  }
  std::memcpy(batch->data() + frame + 4, &count, sizeof(count));
  std::memcpy(batch->data() + frame + 8, &body, sizeof(body));
  Put(batch, Checksum(batch->data() + frame, batch->size() - frame));
  return true;
}

}  // namespace fanout::internal
