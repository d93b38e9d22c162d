#include "cli/command_output.h"

#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

namespace fanout::cli {

void Printer::Expect(std::size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (keep_order_) held_.resize(n);
}

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

}  // namespace fanout::cli
