// fanout/cli/args.h — the command line parsed into this program's absl flags
// by our own parser, so that every mistake is one fanout::UsageError (the
// CLI's exit 2 and one `run:` line) and asking for help exits 0. absl's own
// ParseCommandLine prints `ERROR: ...` and exits 1 by itself instead.
//
//   fanout::cli::Args args = fanout::cli::ParseArgs(
//       std::vector<std::string>(argv + 1, argv + argc), "cli/run.cc");
//   if (args.help) {
//     fanout::cli::PrintHelp(stdout, "run", kUsage, "cli/run.cc");
//     return 0;
//   }
//
// What absl accepts is accepted: --name=value, -name=value, --name value,
// --flag, --noflag and --flag=true|false (also 1/0, yes/no, t/f, y/n) for
// true/false flags, dashes or underscores inside names, "--" ending the
// flags, --flagfile=FILE (one flag a line, # comments), --fromenv=a,b and
// --tryfromenv=a,b (values from the variables FLAGS_a, FLAGS_b),
// --undefok=a,b (unknown flags to ignore) and --only_check_args. The first
// argument that is not a flag ends the flags, as in GNU parallel (a command
// template and its `:::` arguments follow); -k is --keep-order, -j N and
// -jN are --jobs=N. --help, -h,
// --helpfull, --helpshort, --helppackage, --help=X, --helpon=X and
// --helpmatch=X all ask for the one help page.
#ifndef FANOUT_CLI_ARGS_H_
#define FANOUT_CLI_ARGS_H_

#include <cstdio>
#include <set>
#include <string>
#include <vector>

namespace fanout::cli {

struct Args {
  bool help = false;                    // one of the help flags was given
  bool version = false;                 // --version
  bool only_check_args = false;         // validate, then exit 0
  std::vector<std::string> positional;  // arguments that are not flags
  bool dashes = false;                  // "--" came before them
  // The flags given a value (names with underscores), however: on the
  // command line, in a --flagfile, from the environment.
  std::set<std::string> given;
};

// Sets the absl flags defined in a file whose path contains `flags_file`
// from `args` (argv without the program name). Throws fanout::UsageError
// naming what is wrong and what is valid; stops at the first help flag.
Args ParseArgs(const std::vector<std::string>& args,
               const std::string& flags_file);

// Prints "`program`: `usage`" and every flag defined in `flags_file` with
// its help and default, wrapped at 80 columns.
void PrintHelp(std::FILE* out, const std::string& program,
               const std::string& usage, const std::string& flags_file);

}  // namespace fanout::cli

#endif  // FANOUT_CLI_ARGS_H_
