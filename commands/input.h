// fanout/commands/input.h — what commands mode runs: GNU parallel's input
// forms turned into numbered jobs, and a job's command line built from a
// template with replacement strings and shell quoting.
//
//   // run -- gzip -9 {} ::: 'a b.txt' c.txt
//   fanout::commands::CommandInput in{.tmpl = {"gzip", "-9", "{}"},
//                                .groups = {{"a b.txt", "c.txt"}}};
//   std::vector<fanout::commands::Job> jobs = fanout::commands::BuildJobs(in);
//   fanout::commands::CommandLine(in.tmpl_text(), jobs[0], /*slot=*/1);
//   // "gzip -9 'a b.txt'"
//
// Several groups give their cross product, the first group varying slowest,
// as GNU parallel does. A template with no replacement string gets the
// arguments appended, each quoted; arguments are always quoted, the template
// never is (it is shell text).
#ifndef FANOUT_COMMANDS_INPUT_H_
#define FANOUT_COMMANDS_INPUT_H_

#include <cstddef>
#include <regex>
#include <string>
#include <vector>

namespace fanout::commands {

// The longest line of input (a command, or an argument): the most one
// argument of exec() may hold on Linux (MAX_ARG_STRLEN, 128 KiB with its
// NUL), which every command line is, as `sh -c`'s argument. A longer line
// could never run; reading stops there rather than without bound.
inline constexpr std::size_t kMaxLineBytes = 128 * 1024 - 1;

// "line 3 is longer than 131071 bytes, the most one command may hold
// (Linux's limit on one argument of exec, MAX_ARG_STRLEN)".
std::string LineTooLong(std::size_t line);

// One command to run: its number (1-based, GNU parallel's {#} and the
// joblog's Seq) and its arguments, one from each input group.
struct Job {
  std::size_t seq = 0;
  std::vector<std::string> args;
};

struct CommandInput {
  // The command template, as words (joined with spaces, not quoted: the
  // template is shell text). Empty: each job's arguments are the command.
  std::vector<std::string> tmpl;
  // The argument groups (`:::` words, `::::` file lines, stdin lines).
  std::vector<std::vector<std::string>> groups;
  // linked[g]: group g pairs with group g - 1 element by element (GNU
  // parallel's :::+) instead of multiplying; missing entries are false.
  std::vector<bool> linked;
  std::string tmpl_text() const;
};

// The jobs of `input`: the cross product of its groups, linked groups
// taken side by side. Throws UsageError when linked groups differ in length.
std::vector<Job> BuildJobs(const CommandInput& input);

// --colsep: `job`'s arguments each split into columns at `sep`, so that {1}
// {2} ... name the columns.
void SplitColumns(const std::regex& sep, Job* job);

// `text` quoted for /bin/sh so that it stays one word, as itself: unchanged
// when it has only safe characters, else in single quotes.
std::string ShellQuote(const std::string& text);

// Whether `tmpl` holds a replacement string ({}, {.}, {/}, {//}, {/.}, {#},
// {%}, or {N} and its forms for the N-th argument).
bool HasReplacement(const std::string& tmpl);

// The shell command line of `job` in slot `slot` (GNU parallel's {%}).
std::string CommandLine(const std::string& tmpl, const Job& job, int slot);

// The lines of `text`, without their newlines (and a \r before one);
// `skip_comments` also drops blank lines and lines starting with #.
std::vector<std::string> SplitLines(const std::string& text,
                                    bool skip_comments);

// The contents of the text file `path` ("-" for standard input). Throws
// UsageError, worded for `flag` (as in "--commands=x"), when it cannot be
// read, is a directory, holds a NUL byte (not text) or a line longer than
// kMaxLineBytes; reading stops at the first of them, so /dev/zero and
// endless lines are refused, not read without bound.
std::string ReadTextInput(const std::string& path, const std::string& flag);

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_INPUT_H_
