#include "commands/output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <mutex>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/internal/fd.h"
#include "core/internal/wait_status.h"

namespace fanout::commands {

void Printer::Write(std::FILE* f, const char* data, std::size_t size,
                    const std::string& tag) {
  if (size == 0) return;
  if (!tag_ || tag.empty()) {
    std::fwrite(data, 1, size, f);
  } else {
    std::size_t from = 0;
    while (from < size) {
      const void* nl = std::memchr(data + from, '\n', size - from);
      const std::size_t end =
          nl == nullptr ? size : static_cast<const char*>(nl) - data + 1;
      std::fwrite(tag.data(), 1, tag.size(), f);
      std::fwrite(data + from, 1, end - from, f);
      from = end;
    }
  }
  std::fflush(f);
}

void Printer::Done(std::size_t i, const std::string& out,
                   const std::string& err, const std::string& tag) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!keep_order_) {
    Write(out_, out.data(), out.size(), tag);
    Write(err_, err.data(), err.size(), tag);
    return;
  }
  if (i >= held_.size()) held_.resize(i + 1);
  held_[i] = {true, out, err, tag};
  while (next_ < held_.size() && held_[next_].done) Flush(next_++);
}

void Printer::Flush(std::size_t i) {
  Held& h = held_[i];
  Write(out_, h.out.data(), h.out.size(), h.tag);
  Write(err_, h.err.data(), h.err.size(), h.tag);
  h = Held{.done = true};
}

void Printer::Live(const std::string& out, const std::string& err,
                   const std::string& tag, StreamState* state, bool final) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string* text[2] = {&out, &err};
  std::FILE* files[2] = {out_, err_};
  for (int k = 0; k < 2; ++k) {
    const std::string& t = *text[k];
    std::size_t upto = t.size();
    if (!final) {
      const std::size_t nl = t.rfind('\n');
      if (nl == std::string::npos || nl < state->printed[k]) continue;
      upto = nl + 1;
    }
    if (upto <= state->printed[k]) continue;
    Write(files[k], t.data() + state->printed[k], upto - state->printed[k],
          tag);
    state->printed[k] = upto;
  }
}

void Printer::Line(const std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  Write(out_, text.data(), text.size(), "");
}

void Printer::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  for (; next_ < held_.size(); ++next_) {
    if (held_[next_].done) Flush(next_);
  }
}

std::string TagOf(const std::vector<std::string>& args,
                  const std::string& command) {
  std::string tag;
  for (const std::string& a : args) tag += (tag.empty() ? "" : " ") + a;
  return (args.empty() ? command : tag) + "\t";
}

namespace {

// Writes `text` to a new file at `path`; "" when it is all there, else why
// not (the file is then removed).
std::string WriteFile(const std::string& path, const std::string& text) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return std::strerror(errno);
  const bool wrote = internal::WriteAll(fd, text.data(), text.size());
  int e = errno;
  // close() reports what a file system delays (NFS, quotas).
  const bool closed = close(fd) == 0;
  if (wrote && !closed) e = errno;
  if (wrote && closed) return "";
  unlink(path.c_str());
  return std::strerror(e);
}

constexpr const char* kResultFiles[] = {"cmd", "stdout", "stderr", "exitval"};

}  // namespace

std::string WriteResults(const std::string& dir, std::size_t seq,
                         const std::string& command, const std::string& out,
                         const std::string& err, int exit_code) {
  const std::string d = dir + "/" + std::to_string(seq);
  if (mkdir(d.c_str(), 0777) != 0 && errno != EEXIST) {
    return "cannot create " + d + ": " + std::strerror(errno);
  }
  const std::string texts[] = {command + "\n", out, err,
                               std::to_string(exit_code) + "\n"};
  for (std::size_t k = 0; k < std::size(kResultFiles); ++k) {
    const std::string path = d + "/" + kResultFiles[k];
    const std::string error = WriteFile(path, texts[k]);
    if (error.empty()) continue;
    for (const char* name : kResultFiles) unlink((d + "/" + name).c_str());
    rmdir(d.c_str());
    return "cannot write " + path + ": " + error;
  }
  return "";
}

void CheckResultsDir(const std::string& dir) {
  const std::string flag = "--results=" + dir;
  const std::string valid =
      "; valid: a directory that can be written (made "
      "when missing), as in --results=out";
  if (mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) {
    throw UsageError(flag + ": cannot create: " + std::strerror(errno) + valid);
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    throw UsageError(flag + ": " + std::strerror(errno) + valid);
  }
  if (!S_ISDIR(st.st_mode)) {
    throw UsageError(flag + ": exists and is not a directory" + valid);
  }
  // What each job does there, tried once: a read-only or immutable
  // directory, or one of another user's, refuses it.
  const std::string probe =
      dir + "/.fanout-results-probe." + std::to_string(getpid());
  if (mkdir(probe.c_str(), 0700) != 0) {
    throw UsageError(flag + ": cannot create directories in it: " +
                     std::strerror(errno) + valid);
  }
  rmdir(probe.c_str());
}

void PrintFailure(std::FILE* err, std::size_t seq, const std::string& command,
                  int exit_code, int signal, double timed_out_after,
                  const std::string& lost) {
  char what[128];
  if (timed_out_after > 0) {
    std::snprintf(what, sizeof(what), "timed out after %gs (--timeout)",
                  timed_out_after);
  } else if (signal != 0) {
    std::snprintf(what, sizeof(what), "killed by signal %d (%s)", signal,
                  internal::SignalDescription(signal).c_str());
  } else {
    std::snprintf(what, sizeof(what), "exit %d", exit_code);
  }
  std::fprintf(err, "  [%zu] %s%s%s: %s\n", seq, what,
               lost.empty() ? "" : ", but ", lost.c_str(), command.c_str());
}

}  // namespace fanout::commands
