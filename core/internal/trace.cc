// The recording behind Options::trace (see core/trace.h, trace.h).
#include "core/internal/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <utility>

#include "core/errors.h"

namespace fanout::internal {
namespace {

constexpr std::size_t kTrackBytes =
    sizeof(TraceTrack) + kTraceRecords * sizeof(TraceRecord);
// Records of a freed track beyond this many pages are given back to the
// system before the track is kept for the next call.
constexpr std::size_t kKeptRecordBytes = std::size_t{64} * 1024;

// Freed tracks, kept for the next call (mapping 40 MiB is cheap, but a call
// of two tiny tasks should not pay for it).
std::mutex& FreeMutex() {
  static auto* mu = new std::mutex;
  return *mu;
}
std::vector<TraceTrack*>& FreeTracks() {
  static auto* tracks = new std::vector<TraceTrack*>;
  return *tracks;
}

TraceTrack* MapTrack() {
  {
    std::lock_guard<std::mutex> lock(FreeMutex());
    if (!FreeTracks().empty()) {
      TraceTrack* t = FreeTracks().back();
      FreeTracks().pop_back();
      return new (t) TraceTrack;
    }
  }
  // MAP_SHARED: a forked worker writes its track where the caller reads it.
  void* p = mmap(nullptr, kTrackBytes, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return new (p) TraceTrack;
}

void FreeTrack(TraceTrack* t) {
  const std::size_t used =
      static_cast<std::size_t>(t->count.load() + 1) * sizeof(TraceRecord);
  if (used > kKeptRecordBytes) {
    auto* from = reinterpret_cast<char*>(t->records()) + kKeptRecordBytes;
    const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    auto* aligned = reinterpret_cast<char*>(
        (reinterpret_cast<std::uintptr_t>(from) + page - 1) / page * page);
    madvise(aligned,
            static_cast<std::size_t>(reinterpret_cast<char*>(t) + kTrackBytes -
                                     aligned),
            MADV_REMOVE);
  }
  std::lock_guard<std::mutex> lock(FreeMutex());
  if (FreeTracks().size() < 64) {
    FreeTracks().push_back(t);
  } else {
    munmap(t, kTrackBytes);
  }
}

// ---------------------------------------------------------------------------
// JSON text, without a library.

void Escaped(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void Number(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}
void Number(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

// Nanoseconds as microseconds with three decimals ("12.345").
void Micros(std::string& out, std::int64_t ns) {
  if (ns < 0) {
    out += '-';
    ns = -ns;
  }
  Number(out, static_cast<std::uint64_t>(ns / 1000));
  const int frac = static_cast<int>(ns % 1000);
  out += '.';
  out += static_cast<char>('0' + frac / 100);
  out += static_cast<char>('0' + frac / 10 % 10);
  out += static_cast<char>('0' + frac % 10);
}

// One event's opening: {"name":...,"cat":...,"ph":...,"pid":..,"tid":..
void Head(std::string& out, std::string_view name, std::string_view cat,
          char ph, std::int64_t pid, std::int64_t tid) {
  if (!out.empty()) out += ",\n";
  out += "{\"name\":";
  Escaped(out, name);
  out += ",\"cat\":";
  Escaped(out, cat);
  out += ",\"ph\":\"";
  out += ph;
  out += "\",\"pid\":";
  Number(out, pid);
  out += ",\"tid\":";
  Number(out, tid);
}

std::string TaskName(const TraceRecord& r) {
  std::string name = r.end - r.first == 1
                         ? "task " + std::to_string(r.first)
                         : "tasks " + std::to_string(r.first) + "-" +
                               std::to_string(r.end == 0 ? 0 : r.end - 1);
  if (r.attempt > 1) name += " (attempt " + std::to_string(r.attempt) + ")";
  if ((r.flags & kTraceDied) != 0) name += " (its worker died)";
  if ((r.flags & kTraceUnfinished) != 0) name += " (unfinished)";
  return name;
}

// Little-endian words and length-prefixed strings, for Export/Import.
void PutU64(std::string& out, std::uint64_t v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void PutStr(std::string& out, std::string_view s) {
  PutU64(out, s.size());
  out.append(s.data(), s.size());
}
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::uint64_t U64() {
    std::uint64_t v = 0;
    Need(sizeof(v));
    std::memcpy(&v, in_.data() + pos_, sizeof(v));
    pos_ += sizeof(v);
    return v;
  }
  std::string Str() {
    const std::uint64_t len = U64();
    Need(len);
    std::string s(in_.substr(pos_, len));
    pos_ += len;
    return s;
  }
  void Raw(void* to, std::size_t len) {
    Need(len);
    if (len == 0) return;  // `to` may be an empty vector's null data()
    std::memcpy(to, in_.data() + pos_, len);
    pos_ += len;
  }

 private:
  void Need(std::uint64_t len) const {
    if (len > in_.size() - pos_) {
      throw Error("trace: a rank's trace records are cut short");
    }
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

double Seconds(std::uint64_t ns) { return static_cast<double>(ns) * 1e-9; }

std::string TimeText(double seconds) {
  char buf[32];
  if (seconds >= 1) {
    std::snprintf(buf, sizeof(buf), "%.3f s", seconds);
  } else if (seconds >= 1e-3) {
    std::snprintf(buf, sizeof(buf), "%.1f ms", seconds * 1e3);
  } else if (seconds >= 1e-6) {
    std::snprintf(buf, sizeof(buf), "%.1f us", seconds * 1e6);
  } else {
    std::snprintf(buf, sizeof(buf), "%.0f ns", seconds * 1e9);
  }
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------
// CallTrace.

CallTrace::CallTrace(std::shared_ptr<TraceFile> file, std::string label)
    : file_(std::move(file)),
      label_(std::move(label)),
      pid_(getpid()),
      begin_ns_(TraceNow()),
      workers_(new std::atomic<TraceTrack*>[kMaxWorkers]) {
  for (std::size_t k = 0; k < kMaxWorkers; ++k) workers_[k] = nullptr;
  process_name_ = "fanout (pid " + std::to_string(pid_) + ")";
  Track call;
  call.pid = pid_;
  call.tid = 0;
  call.name = "call";
  tracks_.push_back(std::move(call));
  index_of_.push_back(0);  // id 0: the call's own track
}

CallTrace::~CallTrace() {
  // A job that threw before EndJob (EndJob is run from a guard) leaves
  // nothing; tracks still held are freed.
  for (std::size_t k = 0; k < kMaxWorkers; ++k) {
    if (TraceTrack* t = workers_[k].load()) FreeTrack(t);
  }
  for (TraceTrack* t : forked_) FreeTrack(t);
}

void CallTrace::BeginJob(std::string_view backend, std::size_t n, int workers,
                         std::size_t batch, bool batch_auto) {
  backend_ = std::string(backend);
  n_ += n;
  jobs_ = std::max(jobs_, workers);
  batch_ = batch;
  batch_auto_ = batch_auto;
  ++job_count_;
  job_begin_ns_ = TraceNow();
  job_open_ = true;
}

TraceTrack* CallTrace::Allocate() {
  TraceTrack* t = MapTrack();
  t->capacity = kTraceRecords;
  t->id = next_id_++;
  t->pid.store(pid_, std::memory_order_relaxed);
  index_of_.resize(next_id_, ~std::uint32_t{0});
  return t;
}

TraceTrack* CallTrace::MakeWorker(int k) {
  std::lock_guard<std::mutex> lock(mu_);
  TraceTrack* t = workers_[k].load(std::memory_order_acquire);
  if (t != nullptr) return t;
  t = Allocate();
  workers_[k].store(t, std::memory_order_release);
  return t;
}

TraceTrack* CallTrace::NewProcessTrack(int slot, std::string name) {
  std::lock_guard<std::mutex> lock(mu_);
  TraceTrack* t = Allocate();
  t->pid.store(0, std::memory_order_relaxed);
  t->NameOnce([&] { return name; });
  t->slot = slot;
  forked_.push_back(t);
  return t;
}

void CallTrace::SetPid(TraceTrack* track, std::int64_t pid) {
  if (track != nullptr) track->pid.store(pid, std::memory_order_relaxed);
}

void CallTrace::Harvest(TraceTrack* t, int slot, std::int64_t pid,
                        std::int64_t tid, const std::string& process) {
  Track track;
  track.pid = pid;
  track.tid = tid;
  track.process = process;
  track.name = t->name;
  track.slot = slot;
  track.job = job_count_;
  track.dropped = t->dropped.load();
  const std::uint64_t count = t->count.load(std::memory_order_acquire);
  track.records.assign(t->records(), t->records() + count);
  // A record a stopped worker counted before it wrote it has no start: it
  // is no span (seen as "tasks 0-0" at time 0 under asan, after a SIGINT).
  std::erase_if(track.records, [](const TraceRecord& r) { return r.t0 == 0; });
  // An open span the worker had begun (its start time written): it ran
  // until the worker was stopped. One without a start was never begun (a
  // worker stopped between its flag and its record): nothing to show.
  if (t->open.load(std::memory_order_acquire) != 0 && count < t->capacity &&
      t->records()[count].t0 != 0) {
    TraceRecord r = t->records()[count];
    r.t1 = std::max(r.t0, TraceNow());
    r.flags |= kTraceUnfinished;
    track.records.push_back(r);
  }
  const auto index = static_cast<std::uint32_t>(tracks_.size());
  tracks_.push_back(std::move(track));
  index_of_[t->id] = index;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->first == t->id) {
      it->second.track = index;
      notes_.push_back(std::move(it->second));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
}

void CallTrace::EndJob() {
  const std::uint64_t end = TraceNow();
  std::lock_guard<std::mutex> lock(mu_);
  if (!job_open_) return;
  job_open_ = false;
  for (std::size_t k = 0; k < kMaxWorkers; ++k) {
    TraceTrack* t = workers_[k].exchange(nullptr);
    if (t == nullptr) continue;
    Harvest(t, static_cast<int>(k), pid_, static_cast<std::int64_t>(k) + 1,
            process_name_);
    FreeTrack(t);
  }
  for (TraceTrack* t : forked_) {
    const std::int64_t pid = t->pid.load();
    Harvest(t, t->slot, pid, 1,
            std::string(t->name) + " (pid " + std::to_string(pid) + ")");
    FreeTrack(t);
  }
  forked_.clear();
  jobs_times_.push_back({job_begin_ns_, end});
}

void CallTrace::Note(const TraceTrack* track, std::string name, std::string cat,
                     std::uint64_t t0, std::uint64_t t1, std::string args) {
  NoteEvent note{0,  std::move(name),  std::move(cat),
                 t0, std::max(t0, t1), std::move(args)};
  std::lock_guard<std::mutex> lock(mu_);
  if (track == nullptr) {
    notes_.push_back(std::move(note));
  } else if (track->id < index_of_.size() &&
             index_of_[track->id] != ~std::uint32_t{0}) {
    note.track = index_of_[track->id];
    notes_.push_back(std::move(note));
  } else {
    pending_.emplace_back(track->id, std::move(note));
  }
}

void CallTrace::CloseOpen(TraceTrack* track, std::uint64_t t, std::uint64_t end,
                          std::uint32_t flags) {
  if (track == nullptr || track->open.load(std::memory_order_acquire) == 0) {
    return;
  }
  const std::uint64_t k = track->count.load(std::memory_order_relaxed);
  if (k >= track->capacity) return;
  TraceRecord& r = track->records()[k];
  r.t1 = std::max(r.t0, t);
  r.end = std::max(r.first, std::min(end, r.end));
  r.flags |= flags;
  track->open.store(0, std::memory_order_relaxed);
  track->count.store(k + 1, std::memory_order_release);
}

std::string CallTrace::Export() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  PutU64(out, tracks_.size());
  for (const Track& t : tracks_) {
    PutU64(out, static_cast<std::uint64_t>(t.pid));
    PutU64(out, static_cast<std::uint64_t>(t.tid));
    PutStr(out, t.process.empty() ? process_name_ : t.process);
    PutStr(out, t.name);
    PutU64(out, static_cast<std::uint64_t>(static_cast<std::int64_t>(t.slot)));
    PutU64(out, t.dropped);
    PutU64(out, t.records.size());
    out.append(reinterpret_cast<const char*>(t.records.data()),
               t.records.size() * sizeof(TraceRecord));
  }
  PutU64(out, notes_.size());
  for (const NoteEvent& n : notes_) {
    PutU64(out, n.track);
    PutStr(out, n.name);
    PutStr(out, n.cat);
    PutU64(out, n.t0);
    PutU64(out, n.t1);
    PutStr(out, n.args);
  }
  return out;
}

void CallTrace::Import(std::string_view bytes, std::int64_t offset_ns,
                       std::int64_t pid_base) {
  Reader in(bytes);
  const auto shift = [offset_ns](std::uint64_t t) {
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(t) - offset_ns);
  };
  std::lock_guard<std::mutex> lock(mu_);
  const auto base = static_cast<std::uint32_t>(tracks_.size());
  const std::uint64_t count = in.U64();
  for (std::uint64_t k = 0; k < count; ++k) {
    Track t;
    t.pid = pid_base + static_cast<std::int64_t>(in.U64());
    t.tid = static_cast<std::int64_t>(in.U64());
    t.process = in.Str();
    t.name = in.Str();
    const auto slot = static_cast<std::int64_t>(in.U64());
    t.slot = slot < 0 ? -1 : static_cast<int>(pid_base + slot);
    t.dropped = in.U64();
    t.records.resize(in.U64());
    in.Raw(t.records.data(), t.records.size() * sizeof(TraceRecord));
    for (TraceRecord& r : t.records) {
      r.t0 = shift(r.t0);
      r.t1 = shift(r.t1);
    }
    t.job = job_count_;
    t.remote = true;
    tracks_.push_back(std::move(t));
  }
  const std::uint64_t notes = in.U64();
  for (std::uint64_t k = 0; k < notes; ++k) {
    NoteEvent n;
    n.track = base + static_cast<std::uint32_t>(in.U64());
    n.name = in.Str();
    n.cat = in.Str();
    n.t0 = shift(in.U64());
    n.t1 = shift(in.U64());
    n.args = in.Str();
    if (n.track >= tracks_.size()) n.track = 0;
    notes_.push_back(std::move(n));
  }
}

TraceSummary CallTrace::Finish(bool ok) {
  finished_ = true;
  end_ns_ = TraceNow();
  ok_ = ok;
  TraceSummary summary = Summarize();
  if (file_ != nullptr) file_->Append(Json());
  return summary;
}

std::string CallTrace::Json() const {
  std::lock_guard<std::mutex> lock(mu_);
  const std::int64_t origin = static_cast<std::int64_t>(file_->origin_ns());
  const auto ts = [origin](std::uint64_t t) {
    return static_cast<std::int64_t>(t) - origin;
  };
  std::string out;
  out.reserve(256 + 160 * (notes_.size() + tracks_.size() * 8));
  // Names of processes and threads, once per file.
  for (const Track& t : tracks_) {
    const std::string& process = t.process.empty() ? process_name_ : t.process;
    if (file_->First("p" + std::to_string(t.pid) + ":" + process)) {
      Head(out, "process_name", "__metadata", 'M', t.pid, 0);
      out += ",\"args\":{\"name\":";
      Escaped(out, process);
      out += "}}";
    }
    if (file_->First("t" + std::to_string(t.pid) + "/" + std::to_string(t.tid) +
                     ":" + t.name)) {
      Head(out, "thread_name", "__metadata", 'M', t.pid, t.tid);
      out += ",\"args\":{\"name\":";
      Escaped(out, t.name);
      out += "}}";
      Head(out, "thread_sort_index", "__metadata", 'M', t.pid, t.tid);
      out += ",\"args\":{\"sort_index\":";
      Number(out, t.tid);
      out += "}}";
    }
  }
  // The call.
  const std::string batch =
      batch_auto_ ? std::string("auto") : std::to_string(batch_);
  Head(out,
       label_ + " (" + std::to_string(n_) + " tasks on " + backend_ +
           ", jobs " + std::to_string(jobs_) + ")",
       "call", 'X', pid_, 0);
  out += ",\"ts\":";
  Micros(out, ts(begin_ns_));
  out += ",\"dur\":";
  Micros(out, static_cast<std::int64_t>(end_ns_ - begin_ns_));
  out += ",\"args\":{\"backend\":";
  Escaped(out, backend_);
  out += ",\"tasks\":";
  Number(out, static_cast<std::uint64_t>(n_));
  out += ",\"jobs\":";
  Number(out, static_cast<std::int64_t>(jobs_));
  out += ",\"batch_size\":";
  Escaped(out, batch);
  out += ",\"ok\":";
  out += ok_ ? "true" : "false";
  out += "}}";
  if (jobs_times_.size() > 1) {
    for (std::size_t j = 0; j < jobs_times_.size(); ++j) {
      Head(out, "job " + std::to_string(j + 1), "job", 'X', pid_, 0);
      out += ",\"ts\":";
      Micros(out, ts(jobs_times_[j].first));
      out += ",\"dur\":";
      Micros(out, static_cast<std::int64_t>(jobs_times_[j].second -
                                            jobs_times_[j].first));
      out += "}";
    }
  }
  if (lost_.load() > 0) {
    Head(out,
         std::to_string(lost_.load()) +
             " chunks ran on workers past the trace's " +
             std::to_string(kMaxWorkers) + " tracks: not recorded",
         "trace", 'i', pid_, 0);
    out += ",\"s\":\"t\",\"ts\":";
    Micros(out, ts(end_ns_));
    out += "}";
  }
  // Each worker's spans.
  for (const Track& t : tracks_) {
    for (const TraceRecord& r : t.records) {
      Head(out, TaskName(r), r.end - r.first == 1 ? "task" : "chunk", 'X',
           t.pid, t.tid);
      out += ",\"ts\":";
      Micros(out, ts(r.t0));
      out += ",\"dur\":";
      Micros(out, static_cast<std::int64_t>(r.t1 - r.t0));
      out += ",\"args\":{\"first\":";
      Number(out, r.first);
      out += ",\"end\":";
      Number(out, r.end);
      out += ",\"attempt\":";
      Number(out, static_cast<std::uint64_t>(r.attempt));
      if ((r.flags & kTraceDied) != 0) out += ",\"worker_died\":true";
      if ((r.flags & kTraceUnfinished) != 0) out += ",\"unfinished\":true";
      out += "}}";
    }
    if (t.dropped > 0) {
      Head(out,
           "trace buffer full: " + std::to_string(t.dropped) + " spans dropped",
           "trace", 'i', t.pid, t.tid);
      out += ",\"s\":\"t\",\"ts\":";
      Micros(out, ts(t.records.empty() ? end_ns_ : t.records.back().t1));
      out += "}";
    }
  }
  // The caller's events.
  for (const NoteEvent& n : notes_) {
    const Track& t = tracks_[n.track];
    const bool instant = n.t1 == n.t0;
    Head(out, n.name, n.cat, instant ? 'i' : 'X', t.pid, t.tid);
    if (instant) out += ",\"s\":\"t\"";
    out += ",\"ts\":";
    Micros(out, ts(n.t0));
    if (!instant) {
      out += ",\"dur\":";
      Micros(out, static_cast<std::int64_t>(n.t1 - n.t0));
    }
    if (!n.args.empty()) {
      out += ",\"args\":{";
      out += n.args;
      out += "}";
    }
    out += "}";
  }
  return out;
}

TraceSummary CallTrace::Summarize() const {
  std::lock_guard<std::mutex> lock(mu_);
  TraceSummary s;
  s.label = label_;
  s.backend = backend_;
  s.tasks = n_;
  s.jobs = jobs_;
  const std::uint64_t wall = end_ns_ - begin_ns_;
  s.wall_seconds = Seconds(wall);

  // Rows: one per worker index, however many processes it was.
  struct Row {
    std::string name;
    std::vector<std::int64_t> pids;
    std::uint64_t busy = 0;
    std::size_t tasks = 0;
  };
  std::map<int, Row> rows;
  std::uint64_t busy_total = 0;
  std::size_t runs = 0;
  std::vector<std::pair<std::uint64_t, const TraceRecord*>> spans;
  std::vector<const Track*> owners;
  bool chunks = false;
  for (const Track& t : tracks_) {
    if (t.slot < 0) continue;
    Row& row = rows[t.slot];
    if (row.name.empty()) row.name = t.name;
    if (t.pid != pid_ && t.tid == 1 && !t.remote &&
        std::find(row.pids.begin(), row.pids.end(), t.pid) == row.pids.end()) {
      row.pids.push_back(t.pid);
    }
    s.dropped_spans += t.dropped;
    for (const TraceRecord& r : t.records) {
      const std::uint64_t d = r.t1 - r.t0;
      row.busy += d;
      row.tasks += r.end - r.first;
      busy_total += d;
      runs += r.end - r.first;
      if (r.attempt > 1) ++s.retries;
      if (r.end - r.first > 1) chunks = true;
      spans.emplace_back(d, &r);
      owners.push_back(&t);
    }
  }
  for (const auto& [slot, row] : rows) {
    TraceSummary::Worker w;
    w.name = row.name;
    if (!row.pids.empty()) {
      w.name += row.pids.size() == 1 ? " (pid " : " (pids ";
      for (std::size_t k = 0; k < row.pids.size(); ++k) {
        w.name += (k == 0 ? "" : ", ") + std::to_string(row.pids[k]);
      }
      w.name += ")";
    }
    w.busy_seconds = Seconds(row.busy);
    w.busy_fraction =
        wall > 0 ? static_cast<double>(row.busy) / static_cast<double>(wall)
                 : 0;
    w.tasks = row.tasks;
    s.workers.push_back(std::move(w));
  }

  // The wall time in parts, job by job; what is outside every job is other.
  std::uint64_t in_jobs = 0;
  for (std::size_t j = 0; j < jobs_times_.size(); ++j) {
    const std::uint64_t jb = jobs_times_[j].first;
    const std::uint64_t je = std::max(jb, jobs_times_[j].second);
    in_jobs += je - jb;
    std::uint64_t first = ~std::uint64_t{0};
    std::map<int, std::uint64_t> last_end;
    for (const Track& t : tracks_) {
      if (t.slot < 0 || t.job != j + 1) continue;
      for (const TraceRecord& r : t.records) {
        first = std::min(first, r.t0);
        std::uint64_t& e = last_end[t.slot];
        e = std::max(e, r.t1);
      }
    }
    if (last_end.empty()) {
      s.other_seconds += Seconds(je - jb);
      continue;
    }
    first = std::clamp(first, jb, je);
    std::uint64_t min_last = ~std::uint64_t{0};
    std::uint64_t max_last = 0;
    for (const auto& [slot, e] : last_end) {
      min_last = std::min(min_last, e);
      max_last = std::max(max_last, e);
    }
    min_last = std::clamp(min_last, first, je);
    max_last = std::clamp(max_last, min_last, je);
    std::uint64_t moving = 0;
    for (const NoteEvent& n : notes_) {
      if (n.cat != "move" || tracks_[n.track].remote) continue;
      const std::uint64_t a = std::max(n.t0, max_last);
      const std::uint64_t b = std::min(n.t1, je);
      if (b > a) moving += b - a;
    }
    moving = std::min(moving, je - max_last);
    s.start_seconds += Seconds(first - jb);
    s.running_seconds += Seconds(min_last - first);
    s.waiting_seconds += Seconds(max_last - min_last);
    s.moving_seconds += Seconds(moving);
    s.other_seconds += Seconds(je - max_last - moving);
  }
  s.other_seconds += Seconds(wall > in_jobs ? wall - in_jobs : 0);
  for (const NoteEvent& n : notes_) {
    if (tracks_[n.track].remote) continue;
    if (n.cat == "fork") {
      s.fork_seconds += Seconds(n.t1 - n.t0);
      ++s.forks;
    } else if (n.cat == "death") {
      ++s.deaths;
    }
  }

  // The slowest.
  s.slowest_are_chunks = chunks;
  std::vector<std::size_t> order(spans.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  const std::size_t top = std::min<std::size_t>(5, order.size());
  std::partial_sort(order.begin(),
                    order.begin() + static_cast<std::ptrdiff_t>(top),
                    order.end(), [&](std::size_t a, std::size_t b) {
                      return spans[a].first > spans[b].first;
                    });
  for (std::size_t k = 0; k < top; ++k) {
    const TraceRecord& r = *spans[order[k]].second;
    TraceSummary::Task task;
    task.first = r.first;
    task.end = r.end;
    task.seconds = Seconds(spans[order[k]].first);
    const Track& t = *owners[order[k]];
    task.worker = t.name + (t.tid == 1 && t.pid != pid_ && !t.remote
                                ? " (pid " + std::to_string(t.pid) + ")"
                                : "");
    task.attempt = static_cast<int>(r.attempt);
    s.slowest.push_back(std::move(task));
  }

  s.task_seconds = Seconds(busy_total);
  if (runs > 0) {
    const double workers =
        static_cast<double>(std::max<std::size_t>(rows.size(), jobs_));
    s.mean_task_seconds = s.task_seconds / static_cast<double>(runs);
    s.overhead_per_task_seconds =
        std::max(0.0, s.wall_seconds * workers - s.task_seconds) /
        static_cast<double>(runs);
  }
  return s;
}

// ---------------------------------------------------------------------------
// TraceFile.

namespace {

constexpr std::string_view kHead =
    "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"generator\":\"fanout\","
    "\"clock\":\"CLOCK_MONOTONIC; ts in microseconds from the file's "
    "start\"},\"traceEvents\":[\n";
constexpr std::string_view kTail = "\n]}\n";

struct Registry {
  std::mutex mu;
  // Kept for the life of the process: a later Parallel tracing to the same
  // path appends, never empties what an earlier one wrote.
  std::map<std::string, std::shared_ptr<TraceFile>> files;
};
Registry& Files() {
  static auto* r = new Registry;
  return *r;
}

std::string Example(std::string_view what) {
  if (what.substr(0, 2) == "--") return std::string(what) + "=run.json";
  if (what == "FANOUT_TRACE") return "FANOUT_TRACE=run.json";
  return std::string(what) + " = \"run.json\"";
}

[[noreturn]] void Refuse(std::string_view what, const std::string& path,
                         const std::string& why) {
  throw UsageError(std::string(what) + " '" + path +
                   "': cannot write the trace there: " + why +
                   "; valid: a regular file that can be written, or a new "
                   "file's path in a directory that exists and can be "
                   "written, as in " +
                   Example(what));
}

}  // namespace

void CheckTracePath(const std::string& path, std::string_view what) {
  if (path.empty()) Refuse(what, path, "the path is empty");
  if (path.size() >= PATH_MAX) {
    Refuse(what, path.substr(0, 60) + "...",
           "the path is too long (" + std::to_string(path.size()) +
               " characters)");
  }
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      Refuse(what, path,
             S_ISDIR(st.st_mode)    ? "it is a directory"
             : S_ISFIFO(st.st_mode) ? "it is a FIFO"
             : S_ISCHR(st.st_mode)  ? "it is a character device"
             : S_ISBLK(st.st_mode)  ? "it is a block device"
                                    : "it is not a regular file");
    }
    if (access(path.c_str(), W_OK) != 0)
      Refuse(what, path, std::strerror(errno));
    return;
  }
  if (errno != ENOENT) Refuse(what, path, std::strerror(errno));
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    Refuse(what, path,
           "its directory " + dir +
               (errno == ENOENT ? " does not exist" : " is not a directory"));
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    Refuse(what, path,
           "a file cannot be made in " + dir + ": " + std::strerror(errno));
  }
}

namespace {

bool WriteAt(int fd, std::string_view data, std::uint64_t at) {
  while (!data.empty()) {
    const ssize_t w =
        pwrite(fd, data.data(), data.size(), static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(w));
    at += static_cast<std::uint64_t>(w);
  }
  return true;
}

}  // namespace

TraceFile::TraceFile(std::string path, int fd)
    : path_(std::move(path)),
      fd_(fd),
      origin_ns_(TraceNow()),
      owner_(getpid()) {}

TraceFile::~TraceFile() { close(fd_); }

std::shared_ptr<TraceFile> TraceFile::Open(const std::string& path,
                                           std::string_view what) {
  CheckTracePath(path, what);
  Registry& r = Files();
  std::lock_guard<std::mutex> lock(r.mu);
  struct stat now;
  const bool exists = stat(path.c_str(), &now) == 0;
  if (auto it = r.files.find(path); it != r.files.end()) {
    if (std::shared_ptr<TraceFile> open = it->second) {
      struct stat held;
      if (exists && fstat(open->fd_, &held) == 0 && held.st_dev == now.st_dev &&
          held.st_ino == now.st_ino) {
        if (open->owner_ != getpid()) {
          Refuse(what, path,
                 "process " + std::to_string(open->owner_) +
                     " (this process's parent) writes it");
        }
        return open;
      }
    }
  }
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
           0644);
  if (fd < 0) Refuse(what, path, std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    Refuse(what, path, "it is not a regular file");
  }
  std::shared_ptr<TraceFile> file(new TraceFile(path, fd));
  std::string start(kHead);
  start += kTail;
  if (ftruncate(fd, 0) != 0 || !WriteAt(fd, start, 0)) {
    Refuse(what, path, std::strerror(errno));
  }
  file->size_ = kHead.size();
  r.files[path] = file;
  return file;
}

void TraceFile::Append(const std::string& events) {
  if (events.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::string data;
  data.reserve(events.size() + kTail.size() + 2);
  if (!empty_) data += ",\n";
  data += events;
  const std::uint64_t body = data.size();
  data += kTail;
  if (!WriteAt(fd_, data, size_)) {
    throw Error("trace file '" + path_ +
                "': cannot write: " + std::strerror(errno != 0 ? errno : EIO) +
                " (the file holds the calls before this one)");
  }
  size_ += body;
  empty_ = false;
}

bool TraceFile::First(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (std::find(seen_.begin(), seen_.end(), key) != seen_.end()) return false;
  seen_.push_back(key);
  return true;
}

std::string TracePath(const std::string& option, std::string* what) {
  if (!option.empty()) {
    *what = "Options::trace";
    return option;
  }
  const char* env = std::getenv("FANOUT_TRACE");
  if (env != nullptr && *env != '\0') {
    *what = "FANOUT_TRACE";
    return env;
  }
  return {};
}

}  // namespace fanout::internal

// ---------------------------------------------------------------------------
// The summary as text.

namespace fanout {

std::string to_string(const TraceSummary& s) {
  using internal::TimeText;
  std::string out;
  char line[256];
  std::snprintf(line, sizeof(line),
                "trace summary: %s of %zu tasks on %s, jobs %d: wall %s\n",
                s.label.c_str(), s.tasks, s.backend.c_str(), s.jobs,
                TimeText(s.wall_seconds).c_str());
  out += line;
  for (const TraceSummary::Worker& w : s.workers) {
    std::snprintf(line, sizeof(line), "  %-28s busy %5.1f%%  (%s, %zu tasks)\n",
                  w.name.c_str(), 100 * w.busy_fraction,
                  TimeText(w.busy_seconds).c_str(), w.tasks);
    out += line;
  }
  const double wall = s.wall_seconds > 0 ? s.wall_seconds : 1;
  const auto part = [&](const char* name, double seconds, const char* what) {
    std::snprintf(line, sizeof(line), "  %-28s %10s %5.1f%%  %s\n", name,
                  TimeText(seconds).c_str(), 100 * seconds / wall, what);
    out += line;
  };
  out += "  where the wall time went:\n";
  part("start", s.start_seconds, "to the first task (forks, waking workers)");
  part("running tasks", s.running_seconds, "every worker busy");
  part("waiting for the last task", s.waiting_seconds,
       "workers out of tasks, one still running");
  part("moving results", s.moving_seconds,
       "results crossing to the caller after the last task");
  part("other", s.other_seconds, "reaping workers, checkpoint writes, ...");
  if (s.forks > 0) {
    std::snprintf(line, sizeof(line),
                  "  fork(): %d in the caller, %s in all (in start, and in "
                  "running for replacements)\n",
                  s.forks, TimeText(s.fork_seconds).c_str());
    out += line;
  }
  if (s.deaths > 0 || s.retries > 0) {
    std::snprintf(line, sizeof(line),
                  "  %d worker deaths, %d task attempts after a first\n",
                  s.deaths, s.retries);
    out += line;
  }
  out += s.slowest_are_chunks
             ? "  slowest chunks (tasks under 100 us get no span of their "
               "own):\n"
             : "  slowest tasks:\n";
  for (const TraceSummary::Task& t : s.slowest) {
    const std::string what = t.end - t.first == 1
                                 ? "task " + std::to_string(t.first)
                                 : "tasks " + std::to_string(t.first) + "-" +
                                       std::to_string(t.end - 1);
    std::snprintf(line, sizeof(line), "    %-24s %10s  on %s%s\n", what.c_str(),
                  TimeText(t.seconds).c_str(), t.worker.c_str(),
                  t.attempt > 1
                      ? (" (attempt " + std::to_string(t.attempt) + ")").c_str()
                      : "");
    out += line;
  }
  std::snprintf(line, sizeof(line),
                "  overhead per task: %s (worker time not in tasks / task "
                "runs), against a task's own %s\n",
                TimeText(s.overhead_per_task_seconds).c_str(),
                TimeText(s.mean_task_seconds).c_str());
  out += line;
  if (s.dropped_spans > 0) {
    std::snprintf(line, sizeof(line),
                  "  WARNING: %llu spans dropped (a worker's trace buffer was "
                  "full): the numbers above miss them\n",
                  static_cast<unsigned long long>(s.dropped_spans));
    out += line;
  }
  return out;
}

}  // namespace fanout
