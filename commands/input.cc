#include "commands/input.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/internal/fd.h"

namespace fanout::commands {
namespace {

// The forms of a replacement string after its optional argument number.
enum class Form { kWhole, kNoExt, kBase, kDir, kBaseNoExt };

// GNU parallel's {.}: s:\.[^/.]+$::
std::string NoExtension(const std::string& s) {
  const std::size_t dot = s.rfind('.');
  if (dot == std::string::npos || dot + 1 == s.size()) return s;
  if (s.find('/', dot) != std::string::npos) return s;
  return s.substr(0, dot);
}

// {/}: s:^.*/::
std::string Basename(const std::string& s) {
  const std::size_t slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

// {//}: Perl's dirname, as GNU parallel uses it.
std::string Dirname(const std::string& s) {
  const std::size_t slash = s.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return s.substr(0, slash);
}

std::string Apply(Form form, const std::string& arg) {
  switch (form) {
    case Form::kWhole:
      return arg;
    case Form::kNoExt:
      return NoExtension(arg);
    case Form::kBase:
      return Basename(arg);
    case Form::kDir:
      return Dirname(arg);
    case Form::kBaseNoExt:
      return NoExtension(Basename(arg));
  }
  return arg;
}

// A replacement string starting at tmpl[at] == '{'.
struct Replacement {
  std::size_t length = 0;  // 0: none here
  char special = 0;        // '#' or '%', else 0
  std::size_t index = 0;   // 1-based argument, 0 = all
  Form form = Form::kWhole;
};

Replacement Match(const std::string& tmpl, std::size_t at) {
  Replacement r;
  std::size_t i = at + 1;
  if (i + 1 < tmpl.size() && (tmpl[i] == '#' || tmpl[i] == '%') &&
      tmpl[i + 1] == '}') {
    r.special = tmpl[i];
    r.length = 3;
    return r;
  }
  std::size_t index = 0;
  const std::size_t digits_at = i;
  while (i < tmpl.size() && tmpl[i] >= '0' && tmpl[i] <= '9' &&
         i - digits_at < 9) {
    index = index * 10 + static_cast<std::size_t>(tmpl[i] - '0');
    ++i;
  }
  if (i > digits_at && index == 0) return r;  // {0} is not one
  static const struct {
    const char* text;
    Form form;
  } kForms[] = {{"}", Form::kWhole},
                {".}", Form::kNoExt},
                {"/}", Form::kBase},
                {"//}", Form::kDir},
                {"/.}", Form::kBaseNoExt}};
  for (const auto& f : kForms) {
    const std::size_t n = std::strlen(f.text);
    if (tmpl.compare(i, n, f.text) == 0) {
      r.index = index;
      r.form = f.form;
      r.length = i + n - at;
      return r;
    }
  }
  return r;
}

std::string Expand(const Replacement& r, const Job& job, int slot) {
  if (r.special == '#') return std::to_string(job.seq);
  if (r.special == '%') return std::to_string(slot);
  if (r.index > 0) {
    return r.index <= job.args.size()
               ? ShellQuote(Apply(r.form, job.args[r.index - 1]))
               : "";
  }
  std::string all;
  for (const std::string& a : job.args) {
    all += (all.empty() ? "" : " ") + ShellQuote(Apply(r.form, a));
  }
  return all;
}

}  // namespace

std::string CommandInput::tmpl_text() const {
  std::string text;
  for (const std::string& w : tmpl) text += (text.empty() ? "" : " ") + w;
  return text;
}

std::vector<Job> BuildJobs(const CommandInput& input) {
  std::vector<Job> jobs;
  if (input.groups.empty()) return jobs;
  // Units of groups that advance together: a group and those linked to it.
  std::vector<std::vector<std::size_t>> units;
  for (std::size_t g = 0; g < input.groups.size(); ++g) {
    const bool linked = g > 0 && g < input.linked.size() && input.linked[g];
    if (!linked) {
      units.push_back({g});
      continue;
    }
    const std::size_t first = units.back().front();
    if (input.groups[g].size() != input.groups[first].size()) {
      throw UsageError(
          ":::+ group " + std::to_string(g + 1) + " has " +
          std::to_string(input.groups[g].size()) +
          " arguments and the group it links to " +
          std::to_string(input.groups[first].size()) +
          "; valid: linked groups of the same length (::: a b :::+ 1 2)");
    }
    units.back().push_back(g);
  }
  std::size_t total = 1;
  for (const auto& u : units) total *= input.groups[u.front()].size();
  jobs.reserve(total);
  std::vector<std::size_t> pick(units.size(), 0);
  for (std::size_t n = 0; n < total; ++n) {
    Job job{.seq = n + 1};
    job.args.resize(input.groups.size());
    for (std::size_t u = 0; u < units.size(); ++u) {
      for (const std::size_t g : units[u]) {
        job.args[g] = input.groups[g][pick[u]];
      }
    }
    jobs.push_back(std::move(job));
    // The last unit varies fastest.
    for (std::size_t u = pick.size(); u-- > 0;) {
      if (++pick[u] < input.groups[units[u].front()].size()) break;
      pick[u] = 0;
    }
  }
  return jobs;
}

void SplitColumns(const std::regex& sep, Job* job) {
  std::vector<std::string> columns;
  for (const std::string& arg : job->args) {
    std::sregex_token_iterator it(arg.begin(), arg.end(), sep, -1), end;
    for (; it != end; ++it) columns.push_back(*it);
  }
  job->args = std::move(columns);
}

std::string ShellQuote(const std::string& text) {
  if (text.empty()) return "''";
  bool safe = true;
  for (const char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || std::strchr("@%+=:,./-_", c);
    if (!ok) {
      safe = false;
      break;
    }
  }
  if (safe) return text;
  std::string q = "'";
  for (const char c : text) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

bool HasReplacement(const std::string& tmpl) {
  for (std::size_t at = tmpl.find('{'); at != std::string::npos;
       at = tmpl.find('{', at + 1)) {
    if (Match(tmpl, at).length > 0) return true;
  }
  return false;
}

std::string CommandLine(const std::string& tmpl, const Job& job, int slot) {
  if (tmpl.empty()) {
    // No template: the arguments are the command, as shell text.
    std::string line;
    for (const std::string& a : job.args) line += (line.empty() ? "" : " ") + a;
    return line;
  }
  std::string line;
  bool replaced = false;
  std::size_t from = 0;
  for (std::size_t at = tmpl.find('{'); at != std::string::npos;
       at = tmpl.find('{', at + 1)) {
    const Replacement r = Match(tmpl, at);
    if (r.length == 0) continue;
    line.append(tmpl, from, at - from);
    line += Expand(r, job, slot);
    replaced = true;
    from = at + r.length;
    at = from - 1;
  }
  line.append(tmpl, from, std::string::npos);
  if (!replaced) {
    for (const std::string& a : job.args) line += " " + ShellQuote(a);
  }
  return line;
}

std::vector<std::string> SplitLines(const std::string& text,
                                    bool skip_comments) {
  std::vector<std::string> lines;
  std::string::size_type start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (skip_comments) {
      const auto first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] == '#') continue;
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

std::string LineTooLong(std::size_t line) {
  return "line " + std::to_string(line) + " is longer than " +
         std::to_string(kMaxLineBytes) +
         " bytes, the most one command may hold (Linux's limit on one "
         "argument of exec, MAX_ARG_STRLEN)";
}

std::string ReadTextInput(const std::string& path, const std::string& flag) {
  const std::string valid = "; valid: a text file with one item a line" +
                            std::string(path == "-" ? "" : ", or - for stdin");
  int fd = path == "-" ? 0 : open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw UsageError(flag + ": cannot open: " + std::strerror(errno) + valid);
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    if (fd != 0) close(fd);
    throw UsageError(flag + ": is a directory" + valid);
  }
  std::string text;
  std::string problem;         // why reading stopped early
  std::size_t line = 1;        // the line being read
  std::size_t line_start = 0;  // where it starts in text
  char buf[65536];
  for (;;) {
    const ssize_t got = read(fd, buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      problem = std::string("cannot read: ") + std::strerror(errno);
      break;
    }
    if (got == 0) break;
    const std::size_t n = static_cast<std::size_t>(got);
    if (const void* nul = std::memchr(buf, '\0', n)) {
      problem = "is not text (a NUL byte at offset " +
                std::to_string(text.size() +
                               static_cast<std::size_t>(
                                   static_cast<const char*>(nul) - buf)) +
                ")";
      break;
    }
    const std::size_t from = text.size();
    text.append(buf, n);
    for (std::size_t at = from;; ++line) {
      const std::size_t nl = text.find('\n', at);
      const std::size_t end = nl == std::string::npos ? text.size() : nl;
      if (end - line_start > kMaxLineBytes) {
        problem = LineTooLong(line);
        break;
      }
      if (nl == std::string::npos) break;
      at = line_start = nl + 1;
    }
    if (!problem.empty()) break;
  }
  if (fd != 0) close(fd);
  if (!problem.empty()) throw UsageError(flag + ": " + problem + valid);
  return text;
}

}  // namespace fanout::commands
