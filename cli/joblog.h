// fanout/cli/joblog.h — GNU parallel's job log: a header line, then one
// tab-separated row per finished command, so that a run can be resumed.
//
//   std::string log = fanout::cli::JoblogHeader();
//   log += fanout::cli::FormatJoblogRow({.seq = 1, .host = ":",
//                                        .start = 1700000000.5,
//                                        .runtime = 0.25, .command = "true"});
//   // Seq Host Starttime JobRuntime Send Receive Exitval Signal Command
//   // 1   :    1700000000.500 0.250  0    0       0       0      true
//   std::map<std::size_t, fanout::cli::JoblogRow> done =
//       fanout::cli::ParseJoblog(log);
#ifndef FANOUT_CLI_JOBLOG_H_
#define FANOUT_CLI_JOBLOG_H_

#include <cstddef>
#include <cstdio>
#include <map>
#include <string>

namespace fanout::cli {

struct JoblogRow {
  std::size_t seq = 0;
  std::string host = ":";  // ":" is this machine, as in GNU parallel
  double start = 0;        // seconds since the epoch
  double runtime = 0;      // seconds
  unsigned long long send = 0;
  unsigned long long receive = 0;  // bytes of output
  int exitval = 0;
  int signal = 0;
  std::string command;
  bool ok() const { return exitval == 0 && signal == 0; }
};

// "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
std::string JoblogHeader();

// One row, ending in a newline; a newline inside the command is written as
// a space, so that a row stays one line.
std::string FormatJoblogRow(const JoblogRow& row);

// The rows of a job log by Seq (a later row for a Seq replaces an earlier
// one); the header and lines that do not parse are skipped.
std::map<std::size_t, JoblogRow> ParseJoblog(const std::string& text);

// The job log of a run: truncated and headed, or (resuming) read and
// appended to; a row written and flushed as each command finishes.
class JoblogFile {
 public:
  JoblogFile() = default;
  JoblogFile(const JoblogFile&) = delete;
  JoblogFile& operator=(const JoblogFile&) = delete;
  ~JoblogFile();

  // Nothing for an empty `path`. Throws UsageError when it cannot be
  // written.
  void Open(const std::string& path, bool resume);
  // Whether job `seq` is to be skipped: in the log (--resume), or in it
  // and successful (--resume-failed).
  bool Skip(std::size_t seq, bool resume_failed) const;
  void Write(const std::string& text);

 private:
  std::FILE* file_ = nullptr;
  std::map<std::size_t, JoblogRow> done_;
};

}  // namespace fanout::cli

#endif  // FANOUT_CLI_JOBLOG_H_
