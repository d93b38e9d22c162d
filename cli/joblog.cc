#include "cli/joblog.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/errors.h"

namespace fanout::cli {

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

JoblogFile::~JoblogFile() {
  if (file_ != nullptr) std::fclose(file_);
}

void JoblogFile::Open(const std::string& path, bool resume) {
  if (path.empty()) return;
  std::string old;
  if (resume) {
    std::ifstream in(path, std::ios::binary);
    old.assign(std::istreambuf_iterator<char>(in),
               std::istreambuf_iterator<char>());
    done_ = ParseJoblog(old);
  }
  const bool append = !old.empty();
  file_ = std::fopen(path.c_str(), append ? "a" : "w");
  if (file_ == nullptr) {
    throw UsageError("--joblog=" + path + ": cannot open for writing: " +
                     std::strerror(errno) + "; valid: a file path");
  }
  if (!append) Write(JoblogHeader());
}

bool JoblogFile::Skip(std::size_t seq, bool resume_failed) const {
  const auto it = done_.find(seq);
  if (it == done_.end()) return false;
  return !resume_failed || it->second.ok();
}

void JoblogFile::Write(const std::string& text) {
  if (file_ == nullptr) return;
  std::fwrite(text.data(), 1, text.size(), file_);
  std::fflush(file_);
}

}  // namespace fanout::cli
