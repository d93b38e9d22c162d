#include "commands/joblog.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/internal/fd.h"

namespace fanout::commands {

std::string JoblogHeader() {
  return "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\t"
         "Command\n";
}

std::string FormatJoblogRow(const JoblogRow& row) {
  char numbers[160];
  std::snprintf(numbers, sizeof(numbers),
                "%zu\t%s\t%.3f\t%10.3f\t%llu\t%llu\t%d\t%d\t", row.seq,
                row.host.c_str(), row.start, row.runtime, row.send, row.receive,
                row.exitval, row.signal);
  std::string command = row.command;
  for (char& c : command) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return numbers + command + "\n";
}

std::map<std::size_t, JoblogRow> ParseJoblog(const std::string& text) {
  std::map<std::size_t, JoblogRow> rows;
  std::string::size_type start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    std::vector<std::string> f;
    std::string::size_type from = 0;
    while (f.size() < 8) {
      const auto tab = line.find('\t', from);
      if (tab == std::string::npos) break;
      f.push_back(line.substr(from, tab - from));
      from = tab + 1;
    }
    if (f.size() < 8) continue;
    char* endp = nullptr;
    const unsigned long long seq = std::strtoull(f[0].c_str(), &endp, 10);
    if (f[0].empty() || *endp != '\0' || seq == 0) continue;  // the header
    JoblogRow row;
    row.seq = seq;
    row.host = f[1];
    row.start = std::strtod(f[2].c_str(), nullptr);
    row.runtime = std::strtod(f[3].c_str(), nullptr);
    row.send = std::strtoull(f[4].c_str(), nullptr, 10);
    row.receive = std::strtoull(f[5].c_str(), nullptr, 10);
    row.exitval = std::atoi(f[6].c_str());
    row.signal = std::atoi(f[7].c_str());
    row.command = line.substr(from);
    rows[row.seq] = row;
  }
  return rows;
}

JoblogFile::~JoblogFile() { internal::CloseFd(&fd_); }

void JoblogFile::Open(const std::string& path, bool resume) {
  if (path.empty()) return;
  const std::string valid =
      "; valid: a file path on a file system with room for the log";
  fd_ = open(path.c_str(),
             O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | (resume ? 0 : O_TRUNC),
             0666);
  if (fd_ < 0) {
    throw UsageError("--joblog=" + path + ": cannot open for writing: " +
                     std::strerror(errno) + valid);
  }
  std::string old;
  if (resume && !internal::ReadAll(fd_, &old)) {
    throw UsageError("--joblog=" + path +
                     ": cannot read: " + std::strerror(errno) + valid);
  }
  // A last line without its newline is a row cut short: cut it off, so
  // that the next row starts a line of its own and its command runs again.
  const std::size_t whole = old.rfind('\n') + 1;  // 0 when there is none
  if (whole < old.size()) {
    if (ftruncate(fd_, static_cast<off_t>(whole)) != 0) {
      throw UsageError("--joblog=" + path + ": cannot cut its torn last row (" +
                       std::to_string(old.size() - whole) +
                       " bytes): " + std::strerror(errno) + valid);
    }
    torn_bytes_ = old.size() - whole;
    old.resize(whole);
  }
  done_ = ParseJoblog(old);
  if (old.empty()) {
    const std::string error = Append(JoblogHeader());
    if (!error.empty()) {
      throw UsageError("--joblog=" + path + ": cannot write: " + error + valid);
    }
  }
}

bool JoblogFile::Skip(std::size_t seq, bool resume_failed) const {
  const auto it = done_.find(seq);
  if (it == done_.end()) return false;
  return !resume_failed || it->second.ok();
}

std::string JoblogFile::Append(const std::string& row) {
  if (fd_ < 0) return "";
  std::size_t written = 0;
  while (written < row.size()) {
    // One write() in all but the rarest case; a short one is finished.
    const ssize_t n = write(fd_, row.data() + written, row.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string error = std::strerror(n < 0 ? errno : ENOSPC);
      struct stat st;
      if (written > 0 &&
          (fstat(fd_, &st) != 0 ||
           ftruncate(fd_, st.st_size - static_cast<off_t>(written)) != 0)) {
        error += std::string(" (and the part written could not be cut: ") +
                 std::strerror(errno) + ")";
      }
      return error;
    }
    written += static_cast<std::size_t>(n);
  }
  return "";
}

}  // namespace fanout::commands
