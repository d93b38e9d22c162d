// fanout/commands/joblog.h — GNU parallel's job log: a header line, then one
// tab-separated row per finished command, so that a run can be resumed.
//
//   std::string log = fanout::commands::JoblogHeader();
//   log += fanout::commands::FormatJoblogRow({.seq = 1, .host = ":",
//                                        .start = 1700000000.5,
//                                        .runtime = 0.25, .command = "true"});
//   // Seq Host Starttime JobRuntime Send Receive Exitval Signal Command
//   // 1   :    1700000000.500 0.250  0    0       0       0      true
//   std::map<std::size_t, fanout::commands::JoblogRow> done =
//       fanout::commands::ParseJoblog(log);
#ifndef FANOUT_COMMANDS_JOBLOG_H_
#define FANOUT_COMMANDS_JOBLOG_H_

#include <cstddef>
#include <map>
#include <string>

namespace fanout::commands {

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
// appended to; a row written as each command finishes, with one write(), so
// that the log holds whole rows only. A row cut short (a full disk, a kill
// in the middle of a write) is cut off again: at once when the write fails,
// or by the next Open to resume.
class JoblogFile {
 public:
  JoblogFile() = default;
  JoblogFile(const JoblogFile&) = delete;
  JoblogFile& operator=(const JoblogFile&) = delete;
  ~JoblogFile();

  // Nothing for an empty `path`. Throws UsageError when it cannot be read
  // (resuming), written or its torn last row cut.
  void Open(const std::string& path, bool resume);
  // Whether job `seq` is to be skipped: in the log (--resume), or in it
  // and successful (--resume-failed).
  bool Skip(std::size_t seq, bool resume_failed) const;
  // Appends `row` (a whole line). Returns "" when it is in the log, else
  // why not (strerror's text); the log then ends with the row before.
  std::string Append(const std::string& row);
  // Bytes of a torn last row that Open cut off (0: none).
  std::size_t torn_bytes() const { return torn_bytes_; }

 private:
  int fd_ = -1;
  std::map<std::size_t, JoblogRow> done_;
  std::size_t torn_bytes_ = 0;
};

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_JOBLOG_H_
