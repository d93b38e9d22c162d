#include "cli/args.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "core/errors.h"

namespace fanout::cli {
namespace {

constexpr char kLookLike[] = "flags look like --backend=thread";
constexpr int kMaxFlagfileDepth = 8;

std::string Underscored(std::string name) {
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

std::string Dashed(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

// This program's flags by name (underscores), sorted.
std::map<std::string, absl::CommandLineFlag*> OurFlags(
    const std::string& flags_file) {
  std::map<std::string, absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (flag->Filename().find(flags_file) != std::string::npos) {
      flags.emplace(std::string(name), flag);
    }
  }
  return flags;
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

// GNU parallel's short names of flags (--jl FILE, --dr, --lb) as ours.
std::string Unaliased(const std::string& arg) {
  static const std::pair<const char*, const char*> kAliases[] = {
      {"--jl", "--joblog"}, {"--dr", "--dry-run"}, {"--lb", "--line-buffer"}};
  const std::string name = arg.substr(0, arg.find('='));
  for (const auto& [alias, flag] : kAliases) {
    if (name == alias) return flag + arg.substr(name.size());
  }
  return arg;
}

// One pass over the arguments, with what the flags seen so far asked for.
class Parser {
 public:
  explicit Parser(const std::string& flags_file)
      : flags_(OurFlags(flags_file)) {}

  // Parses `args`; `depth` counts the --flagfile files we are inside.
  void Parse(const std::vector<std::string>& args, int depth) {
    for (std::size_t i = 0; i < args.size() && !result_.help; ++i) {
      const std::string& arg = args[i];
      if (after_dashes_ || arg.size() < 2 || arg[0] != '-') {
        // The first argument that is not a flag starts a command template:
        // what follows it is the command's, as in GNU parallel (run echo -n
        // ::: a). Not inside a --flagfile.
        result_.positional.push_back(arg);
        if (depth == 0) after_dashes_ = true;
      } else if (arg == "--") {
        after_dashes_ = true;
        if (depth == 0) result_.dashes = true;
      } else if (arg == "-0") {
        ParseFlag("--null", nullptr, depth);
      } else if (arg.rfind("-N", 0) == 0 &&
                 arg.find('=') == std::string::npos) {
        // GNU parallel's -N N (with --pipe: records a block): --records.
        const std::string* next = i + 1 < args.size() ? &args[i + 1] : nullptr;
        if (arg.size() > 2) {
          ParseFlag("--records=" + arg.substr(2), nullptr, depth);
        } else if (ParseFlag("--records", next, depth)) {
          ++i;
        }
      } else if (arg == "-k") {
        ParseFlag("--keep-order", nullptr, depth);
      } else if ((arg.rfind("-j", 0) == 0 || arg.rfind("-P", 0) == 0) &&
                 arg.find('=') == std::string::npos) {
        // GNU parallel's -j N and -jN (and xargs' -P N): --jobs.
        const std::string* next = i + 1 < args.size() ? &args[i + 1] : nullptr;
        if (arg.size() > 2) {
          ParseFlag("--jobs=" + arg.substr(2), nullptr, depth);
        } else if (ParseFlag("--jobs", next, depth)) {
          ++i;
        }
      } else if (arg.rfind("---", 0) == 0) {
        throw UsageError("'" + arg + "' is not a flag: too many dashes; " +
                         kLookLike);
      } else {
        const std::string* next = i + 1 < args.size() ? &args[i + 1] : nullptr;
        if (ParseFlag(Unaliased(arg), next, depth)) ++i;
      }
    }
  }

  // Throws for the first unknown flag that --undefok does not excuse.
  Args Finish() {
    for (const std::string& name : unknown_) {
      if (undefok_.count(Underscored(name)) == 0) ThrowUnknown(name);
    }
    return result_;
  }

 private:
  // Parses one flag; returns whether it took `next` as its value.
  bool ParseFlag(const std::string& arg, const std::string* next, int depth) {
    const std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    const std::size_t eq = body.find('=');
    const std::string typed = body.substr(0, eq);  // as the user spelled it
    const std::string name = Underscored(typed);
    const bool has_value = eq != std::string::npos;
    std::string value = has_value ? body.substr(eq + 1) : "";
    if (name.empty())
      throw UsageError("'" + arg + "' names no flag; " + kLookLike);
    if (IsHelp(name, arg)) {
      result_.help = true;
      return false;
    }
    if (name == "version" || name == "only_check_args") {
      bool& target =
          name == "version" ? result_.version : result_.only_check_args;
      target = BoolValue(typed, has_value ? value : "true");
      return false;
    }
    if (name == "flagfile" || name == "fromenv" || name == "tryfromenv" ||
        name == "undefok") {
      const bool took = !has_value && next != nullptr;
      if (!has_value && next == nullptr) {
        throw UsageError("--" + typed + " needs a value, as in --" + typed +
                         "=" + (name == "flagfile" ? "FILE" : "jobs,tasks"));
      }
      Special(name, typed, took ? *next : value, depth);
      return took;
    }
    return ParseOurs(typed, name, has_value, value, next);
  }

  // --help, -h and their absl variants.
  static bool IsHelp(const std::string& name, const std::string& arg) {
    return arg == "-h" || name == "help" || name == "helpfull" ||
           name == "helpshort" || name == "helppackage" || name == "helpon" ||
           name == "helpmatch";
  }

  // --flagfile, --fromenv, --tryfromenv, --undefok.
  void Special(const std::string& name, const std::string& typed,
               const std::string& value, int depth) {
    if (name == "flagfile") return Flagfile(typed, value, depth);
    for (const std::string& item : SplitList(value)) {
      if (name == "undefok") {
        undefok_.insert(Underscored(item));
        continue;
      }
      const auto it = flags_.find(Underscored(item));
      if (it == flags_.end()) {
        throw UsageError("--" + typed + "=" + value + ": unknown flag '" +
                         item + "'; valid flags: " + ValidFlags());
      }
      const std::string variable = "FLAGS_" + item;
      const char* env = std::getenv(variable.c_str());
      if (env == nullptr && name == "fromenv") {
        throw UsageError("--" + typed + "=" + value + ": " + variable +
                         " is not set; valid: names of flags whose values are "
                         "in FLAGS_<name> environment variables");
      }
      if (env != nullptr) Set(it->second, item, env);
    }
  }

  // Reads FILE's flags, one a line, skipping blank lines and # comments.
  void Flagfile(const std::string& typed, const std::string& path, int depth) {
    if (depth >= kMaxFlagfileDepth) {
      throw UsageError("--" + typed + "=" + path +
                       ": flag files nest more "
                       "than " +
                       std::to_string(kMaxFlagfileDepth) +
                       " deep; valid: a file with one --flag=value a line");
    }
    std::ifstream in(path);
    if (!in) {
      throw UsageError("--" + typed + "=" + path +
                       ": cannot open: " + std::strerror(errno) +
                       "; valid: a file with one --flag=value a line");
    }
    std::vector<std::string> args;
    for (std::string line; std::getline(in, line);) {
      const std::size_t first = line.find_first_not_of(" \t\r");
      if (first == std::string::npos || line[first] == '#') continue;
      const std::size_t last = line.find_last_not_of(" \t\r");
      args.push_back(line.substr(first, last - first + 1));
    }
    Parse(args, depth + 1);
  }

  // One of this program's flags (or an unknown one, kept for Finish).
  bool ParseOurs(const std::string& typed, const std::string& name,
                 bool has_value, const std::string& value,
                 const std::string* next) {
    auto it = flags_.find(name);
    if (it == flags_.end() && name.rfind("no", 0) == 0 &&
        flags_.count(name.substr(2))) {
      const std::string base = typed.substr(2);
      absl::CommandLineFlag* flag = flags_.at(name.substr(2));
      if (!flag->IsOfType<bool>()) {
        throw UsageError("--" + typed + " is invalid: --" + base +
                         " is not a true/false flag; give it a value, as in " +
                         Example(*flag));
      }
      if (has_value) throw UsageError(BoolError(base, typed + "=" + value));
      Set(flag, base, "false");
      return false;
    }
    if (it == flags_.end()) {
      unknown_.push_back(typed);
      return false;
    }
    absl::CommandLineFlag* flag = it->second;
    if (flag->IsOfType<bool>()) {
      Set(flag, typed,
          BoolValue(typed, has_value ? value : "true") ? "true" : "false");
      return false;
    }
    if (has_value) {
      Set(flag, typed, value);
      return false;
    }
    // absl takes the next argument as the value; one that starts with "--"
    // is taken to be the next flag instead, so the value is missing.
    if (next == nullptr || next->rfind("--", 0) == 0) {
      throw UsageError("--" + typed + " needs a value, as in " +
                       Example(*flag));
    }
    Set(flag, typed, *next);
    return true;
  }

  // The text a true/false flag's value means, or a UsageError.
  static bool BoolValue(const std::string& typed, const std::string& value) {
    std::string v = value;
    for (char& c : v) c = static_cast<char>(std::tolower(c));
    if (v == "true" || v == "t" || v == "yes" || v == "y" || v == "1") {
      return true;
    }
    if (v == "false" || v == "f" || v == "no" || v == "n" || v == "0") {
      return false;
    }
    throw UsageError(BoolError(typed, typed + "=" + value));
  }

  static std::string BoolError(const std::string& typed,
                               const std::string& given) {
    return "--" + given + " is invalid; valid: --" + typed + ", --no" + typed +
           ", --" + typed + "=true or --" + typed + "=false";
  }

  void Set(absl::CommandLineFlag* flag, const std::string& typed,
           const std::string& value) {
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      throw UsageError("--" + typed + "=" + value + " is invalid: " + error);
    }
    result_.given.insert(std::string(flag->Name()));
  }

  // The example in a flag's help text ("Example: --jobs=2").
  static std::string Example(const absl::CommandLineFlag& flag) {
    const std::string help = flag.Help();
    const std::size_t at = help.rfind("Example: ");
    if (at == std::string::npos)
      return "--" + Dashed(std::string(flag.Name())) + "=VALUE";
    return help.substr(at + 9);
  }

  std::string ValidFlags() const {
    std::vector<std::string> names;
    for (const auto& [name, flag] : flags_)
      names.push_back("--" + Dashed(name));
    std::sort(names.begin(), names.end());
    names.push_back("--help");
    std::string joined;
    for (const std::string& n : names)
      joined += (joined.empty() ? "" : ", ") + n;
    return joined;
  }

  [[noreturn]] void ThrowUnknown(const std::string& typed) const {
    throw UsageError("unknown flag '--" + typed +
                     "'; valid flags: " + ValidFlags());
  }

  const std::map<std::string, absl::CommandLineFlag*> flags_;
  Args result_;
  bool after_dashes_ = false;
  std::vector<std::string> unknown_;  // as typed
  std::set<std::string> undefok_;     // underscored
};

// Appends `text` to `out` as words wrapped at 80 columns; continuation lines
// are indented by six spaces, as absl's help does.
void Wrap(const std::string& text, std::size_t first_indent, std::string* out) {
  constexpr std::size_t kColumns = 80;
  std::istringstream words(text);
  std::string line(first_indent, ' ');
  bool empty = true;
  for (std::string word; words >> word;) {
    if (!empty && line.size() + 1 + word.size() > kColumns) {
      *out += line + "\n";
      line = std::string(6, ' ');
      empty = true;
    }
    line += (empty ? "" : " ") + word;
    empty = false;
  }
  *out += line + "\n";
}

}  // namespace

Args ParseArgs(const std::vector<std::string>& args,
               const std::string& flags_file) {
  Parser parser(flags_file);
  parser.Parse(args, 0);
  return parser.Finish();
}

void PrintHelp(std::FILE* out, const std::string& program,
               const std::string& usage, const std::string& flags_file) {
  std::string page =
      program + ": " + usage + "\n\n  Flags from " + flags_file + ":\n";
  for (const auto& [name, flag] : OurFlags(flags_file)) {
    const std::string value = flag->DefaultValue();
    const std::string shown =
        flag->IsOfType<std::string>() ? "\"" + value + "\"" : value;
    Wrap("--" + name + " (" + flag->Help() + "); default: " + shown + ";", 4,
         &page);
  }
  std::fputs(page.c_str(), out);
  std::fflush(out);
}

}  // namespace fanout::cli
