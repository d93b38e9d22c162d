#include "cli/command_output.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "core/internal/wait_status.h"

namespace fanout::cli {

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

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(text.data(), static_cast<std::streamsize>(text.size()));
}

}  // namespace

void WriteResults(const std::string& dir, std::size_t seq,
                  const std::string& command, const std::string& out,
                  const std::string& err, int exit_code) {
  const std::string d = dir + "/" + std::to_string(seq);
  mkdir(d.c_str(), 0777);
  WriteFile(d + "/cmd", command + "\n");
  WriteFile(d + "/stdout", out);
  WriteFile(d + "/stderr", err);
  WriteFile(d + "/exitval", std::to_string(exit_code) + "\n");
}

void PrintFailure(std::FILE* err, std::size_t seq, const std::string& command,
                  int exit_code, int signal, double timed_out_after) {
  if (timed_out_after > 0) {
    std::fprintf(err, "  [%zu] timed out after %gs (--timeout): %s\n", seq,
                 timed_out_after, command.c_str());
  } else if (signal != 0) {
    std::fprintf(err, "  [%zu] killed by signal %d (%s): %s\n", seq, signal,
                 internal::SignalDescription(signal).c_str(), command.c_str());
  } else {
    std::fprintf(err, "  [%zu] exit %d: %s\n", seq, exit_code, command.c_str());
  }
}

}  // namespace fanout::cli
