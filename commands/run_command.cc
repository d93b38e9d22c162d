#include "commands/run_command.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

#include "commands/input.h"
#include "core/errors.h"
#include "core/internal/fd.h"
#include "core/internal/fork.h"
#include "core/internal/wait_status.h"

namespace fanout::commands {
namespace {

// How long a command's group has after SIGTERM before SIGKILL.
constexpr auto kKillGrace = std::chrono::milliseconds(500);
// How long its output is read after its shell exits and its group is killed,
// when something outside the group still holds the pipes.
constexpr auto kDrainLimit = std::chrono::seconds(2);
// How long a shell that closed its output may take to become a process that
// can be waited for, before it is stopped as one still running.
constexpr int kExitingGraceMs = 200;

double EpochNow() {
  return std::chrono::duration<double>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Feeds the non-blocking pipe `fd` what it takes now of `input` from *fed
// on (written, or spliced from the file). True while more is to come;
// false once all is in or the command closed its stdin (EPIPE: it did not
// want the rest). The SIGPIPE is blocked on this thread and taken back, so
// it never ends the run.
bool FeedInput(int fd, const CommandStdin& input, std::size_t* fed) {
  sigset_t pipe_only, old;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  const std::size_t size = input.fd >= 0 ? input.length : input.bytes.size();
  bool more = true;
  while (*fed < size) {
    ssize_t n = 0;
    if (input.fd >= 0) {
      loff_t from = input.offset + static_cast<off_t>(*fed);
      n = splice(input.fd, &from, fd, nullptr, size - *fed,
                 SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (n == 0) {
        errno = EPIPE;  // the file ended early (truncated meanwhile)
        n = -1;
      }
    } else {
      n = write(fd, input.bytes.data() + *fed, size - *fed);
    }
    if (n > 0) {
      *fed += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0 && errno == EPIPE) {
      // The SIGPIPE it raised is pending on this thread: taken back here.
      const timespec now = {0, 0};
      while (sigtimedwait(&pipe_only, nullptr, &now) < 0 && errno == EINTR) {
      }
    }
    more = false;
    break;
  }
  if (*fed >= size) more = false;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return more;
}

}  // namespace

Stopped StopState::Now() {
  if (cancel != nullptr && cancel->load()) return Stopped::kCancel;
  if (run_deadline != Clock::time_point::max() &&
      Clock::now() >= run_deadline) {
    run_timed_out = true;
    return Stopped::kCancel;
  }
  if (halt_now.load()) return Stopped::kHalt;
  return Stopped::kNo;
}

// Runs one command, collecting its output into out / err (calling `drain`
// after each read when set); kills its process group at its deadline or
// when `stop` says so; kills what it left in the background once its shell
// exits.
Outcome RunOne(const std::string& command, double timeout_s, StopState& stop,
               ProcessGuard& guard, std::string& out, std::string& err,
               const std::function<void()>& drain, const CommandStdin* input) {
  if (command.size() > kMaxLineBytes) {
    // exec() would fail with E2BIG, and the shell's 127 say nothing.
    throw Error("the command is " + std::to_string(command.size()) +
                " bytes long, more than the " + std::to_string(kMaxLineBytes) +
                " one argument of sh -c may hold (Linux's MAX_ARG_STRLEN)");
  }
  Outcome outcome;
  outcome.start = EpochNow();
  const auto started = Clock::now();
  internal::Pipe po, pe, pi;
  if (!internal::MakePipe(&po) || !internal::MakePipe(&pe) ||
      (input != nullptr && !internal::MakePipe(&pi))) {
    const int e = errno;
    for (int* fd :
         {&po.read, &po.write, &pe.read, &pe.write, &pi.read, &pi.write}) {
      internal::CloseFd(fd);
    }
    throw Error(std::string("cannot create a pipe: ") + std::strerror(e));
  }
  // The command leads its own process group (so a kill reaches what it
  // starts) and dies with this thread.
  const pid_t pid =
      internal::ForkChild({.new_process_group = true, .flush_stdio = false});
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    dup2(po.write, 1);
    dup2(pe.write, 2);
    if (input != nullptr) {
      dup2(pi.read, 0);
    } else {
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, 0);
    }
    if (!guard.JoinCgroup()) {
      static constexpr char kMessage[] =
          "run: cannot move this command into the run's cgroup (see "
          "--verbose)\n";
      internal::WriteAll(2, kMessage, sizeof(kMessage) - 1);
      _exit(126);
    }
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const int fork_errno = errno;
  internal::CloseFd(&po.write);
  internal::CloseFd(&pe.write);
  internal::CloseFd(&pi.read);
  if (pid < 0) {
    internal::CloseFd(&po.read);
    internal::CloseFd(&pe.read);
    internal::CloseFd(&pi.write);
    throw Error(std::string("cannot fork: ") + std::strerror(fork_errno));
  }
  guard.Add(pid);
  int pidfd = internal::PidfdOpen(pid);
  internal::SetNonBlocking(po.read);
  internal::SetNonBlocking(pe.read);
  // --pipe: the block goes in as the command takes it, beside reading its
  // output (a command that writes before it has read all would otherwise
  // wait on us as we wait on it).
  std::size_t fed = 0;
  if (pi.write >= 0) {
    internal::SetNonBlocking(pi.write);
    // A pipe that takes up to 1 MiB at once (the most an unprivileged
    // process may ask; 64 KiB by default): a sixteenth of the wake-ups.
    const std::size_t want = std::min<std::size_t>(
        input->fd >= 0 ? input->length : input->bytes.size(),
        std::size_t{1} << 20);
    if (want > (64 << 10))
      fcntl(pi.write, F_SETPIPE_SZ, static_cast<int>(want));
  }
  pollfd fds[4] = {{po.read, POLLIN, 0},
                   {pe.read, POLLIN, 0},
                   {pidfd, POLLIN, 0},
                   {pi.write, POLLOUT, 0}};
  const auto deadline =
      timeout_s > 0 ? started + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(timeout_s))
                    : Clock::time_point::max();
  bool reaped = false;
  int status = 0;
  bool termed = false;        // SIGTERM sent to the group
  bool killed = false;        // SIGKILL sent
  bool exit_awaited = false;  // waited once for a shell whose output closed
  auto kill_at = Clock::time_point::max();
  auto give_up_at = Clock::time_point::max();
  auto terminate = [&](Stopped why) {
    if (termed) return;
    if (outcome.stopped == Stopped::kNo) outcome.stopped = why;
    kill(-pid, SIGTERM);
    termed = true;
    kill_at = Clock::now() + kKillGrace;
  };
  while (fds[0].fd >= 0 || fds[1].fd >= 0 || !reaped) {
    int wait_ms = 50;
    const auto now = Clock::now();
    for (const auto t : {deadline, kill_at, give_up_at}) {
      if (t == Clock::time_point::max()) continue;
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(t - now)
              .count() +
          1;
      wait_ms = static_cast<int>(std::clamp<long long>(ms, 0, wait_ms));
    }
    if (reaped || pidfd < 0) fds[2].fd = -1;
    // Once it is being stopped, what it has not read is of no use.
    if (termed) internal::CloseFd(&fds[3].fd);
    const int ready = poll(fds, 4, wait_ms);
    if (ready > 0 && fds[3].fd >= 0 && fds[3].revents != 0) {
      if (!FeedInput(fds[3].fd, *input, &fed)) internal::CloseFd(&fds[3].fd);
    }
    if (ready > 0) {
      for (int k = 0; k < 2; ++k) {
        if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
          continue;
        if (!internal::ReadAvailable(fds[k].fd, k == 0 ? &out : &err)) {
          internal::CloseFd(&fds[k].fd);
        }
      }
      if (drain) drain();
    }
    const auto try_reap = [&] {
      if (reaped || internal::WaitPid(pid, &status, WNOHANG) != pid) return;
      reaped = true;
      outcome.runtime =
          std::chrono::duration<double>(Clock::now() - started).count();
      // The command is done; what it left in the background goes with it.
      if (!termed) {
        kill(-pid, SIGTERM);
        termed = true;
        kill_at = Clock::now() + std::chrono::milliseconds(100);
      }
    };
    try_reap();
    Stopped why = reaped || termed ? Stopped::kNo : stop.Now();
    if (why == Stopped::kNo && !reaped && !termed && Clock::now() >= deadline) {
      why = Stopped::kTimeout;
    }
    if (why != Stopped::kNo && !exit_awaited && pidfd >= 0 &&
        (fds[0].fd < 0 || fds[1].fd < 0)) {
      // Its output closed: the shell is most likely exiting by itself (a
      // process closes its descriptors before it can be waited for). A
      // command that ended by itself is not one stopped by us: it keeps its
      // status and its job log row, and --resume does not run it again.
      exit_awaited = true;
      pollfd exited = {pidfd, POLLIN, 0};
      while (poll(&exited, 1, kExitingGraceMs) < 0 && errno == EINTR) {
      }
      try_reap();
    }
    if (why != Stopped::kNo && !reaped) terminate(why);
    if (termed && !killed && Clock::now() >= kill_at) {
      kill(-pid, SIGKILL);
      killed = true;
      if (reaped) give_up_at = Clock::now() + kDrainLimit;
    }
    if (reaped && killed && give_up_at == Clock::time_point::max()) {
      give_up_at = Clock::now() + kDrainLimit;
    }
    if (Clock::now() >= give_up_at) break;  // held open outside the group
  }
  internal::CloseFd(&fds[0].fd);
  internal::CloseFd(&fds[1].fd);
  internal::CloseFd(&fds[3].fd);
  if (pidfd >= 0) close(pidfd);
  kill(-pid, SIGKILL);  // anything of its group still around
  // Adopted members of the group (we are their subreaper) that are gone.
  while (internal::WaitPid(-pid, nullptr, WNOHANG) > 0) {
  }
  guard.Remove(pid);
  const internal::WaitOutcome w = internal::DecodeWaitStatus(status);
  if (reaped && w.signal == 0 && w.exit_status == 0 &&
      (outcome.stopped == Stopped::kCancel ||
       outcome.stopped == Stopped::kHalt)) {
    // Success after all: the stop's SIGTERM came as it was exiting (too
    // late for a shell to run its trap), or it finished on the signal. Its
    // exit 0 says it is done, so it keeps its row and --resume skips it.
    outcome.stopped = Stopped::kNo;
  }
  outcome.exit_code = internal::ShellExitCode(status);
  outcome.signal = w.signal;
  outcome.exit_status = w.signal != 0 ? 0 : w.exit_status;
  return outcome;
}

}  // namespace fanout::commands
