#include "cli/commands_mode.h"

#include <regex>
#include <string>

#include "commands/commands.h"
#include "commands/input.h"
#include "commands/options.h"
#include "core/errors.h"

namespace fanout::cli {

using commands::CommandInput;
using commands::CommandsOptions;

bool IsCommandsMode(const Request& r) {
  return !r.commands.empty() || !r.command_template.empty() ||
         !r.arg_groups.empty();
}

int RunCommandsMode(const Request& r, std::FILE* out, std::FILE* err,
                    const std::atomic<bool>* cancel) {
  CommandInput input;
  input.tmpl = r.command_template;
  CommandsOptions o = r.commands_options;
  const bool from_stdin =
      r.commands == "-" || (r.commands.empty() && r.arg_groups.empty());
  if (o.null_separated && !(from_stdin && !o.dry_run && r.backend != "mpi")) {
    throw UsageError(
        "--null reads NUL-ended items from stdin as they come; valid: with "
        "stdin as the input (no :::, ::::, --commands=FILE), without "
        "--dry-run and --backend=mpi");
  }
  if (from_stdin && !o.dry_run && r.backend != "mpi") {
    // Lines of stdin, run as they come (find ... | run, tail -f ... | run).
    o.stream_stdin = true;
    o.pipe = r.commands_options.pipe;
    o.stdin_is_commands = r.commands == "-";
    o.stdin_name = o.stdin_is_commands ? "--commands=-" : "stdin";
  } else if (!r.commands.empty()) {
    input.groups.push_back(commands::ParseCommands(
        commands::ReadTextInput(r.commands, "--commands=" + r.commands)));
  } else if (r.arg_groups.empty()) {
    // A template and no ::: or ::::: the lines of stdin are its arguments.
    input.groups.push_back(
        commands::SplitLines(commands::ReadTextInput("-", "stdin"), false));
  }
  for (const ArgGroup& g : r.arg_groups) {
    if (!g.from_file) {
      input.groups.push_back(g.words);
      input.linked.resize(input.groups.size());
      input.linked.back() = g.linked;
      continue;
    }
    for (const std::string& path : g.words) {
      input.linked.resize(input.groups.size() + 1);
      input.linked.back() = g.linked && &path == &g.words.front();
      input.groups.push_back(commands::SplitLines(
          commands::ReadTextInput(path, ":::: " + path), false));
    }
  }
  o.jobs = r.jobs;
  o.backend = r.backend;
  o.tmpl = input.tmpl_text();
  o.run_timeout = r.timeout;
  o.progress = r.progress;
  o.verbose = r.verbose;
  o.jobs_list = commands::BuildJobs(input);
  if (!o.colsep.empty()) {
    const std::regex sep(o.colsep);
    for (commands::Job& job : o.jobs_list) commands::SplitColumns(sep, &job);
  }
  return commands::RunJobs(o, out, err, cancel);
}

}  // namespace fanout::cli
