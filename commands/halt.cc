#include "commands/halt.h"

#include <cstdlib>
#include <string>

#include "core/errors.h"

namespace fanout::commands {
namespace {

[[noreturn]] void Invalid(const std::string& text) {
  throw UsageError("--halt=" + text +
                   " is invalid; valid: never, now,fail=N, soon,fail=N, "
                   "now,success=N, soon,success=N, now,done=N or soon,done=N "
                   "(N a count >= 1 or a percentage such as 20%), 1 "
                   "(soon,fail=1) or 2 (now,fail=1)");
}

}  // namespace

HaltRule ParseHalt(const std::string& text) {
  HaltRule rule;
  if (text.empty() || text == "never" || text == "0") return rule;
  if (text == "1" || text == "2") {
    rule.when = text == "1" ? HaltRule::When::kSoon : HaltRule::When::kNow;
    rule.count = 1;
    return rule;
  }
  const std::size_t comma = text.find(',');
  const std::size_t eq = text.find('=');
  if (comma == std::string::npos || eq == std::string::npos || eq < comma) {
    Invalid(text);
  }
  const std::string when = text.substr(0, comma);
  const std::string on = text.substr(comma + 1, eq - comma - 1);
  std::string n = text.substr(eq + 1);
  if (when == "now") {
    rule.when = HaltRule::When::kNow;
  } else if (when == "soon") {
    rule.when = HaltRule::When::kSoon;
  } else {
    Invalid(text);
  }
  if (on == "fail") {
    rule.on = HaltRule::On::kFail;
  } else if (on == "success") {
    rule.on = HaltRule::On::kSuccess;
  } else if (on == "done") {
    rule.on = HaltRule::On::kDone;
  } else {
    Invalid(text);
  }
  if (!n.empty() && n.back() == '%') {
    rule.percent = true;
    n.pop_back();
  }
  char* end = nullptr;
  rule.count = n.empty() ? 0 : std::strtod(n.c_str(), &end);
  if (n.empty() || *end != '\0' || !(rule.count > 0) ||
      (rule.percent && rule.count > 100) ||
      (!rule.percent &&
       rule.count != static_cast<double>(static_cast<long long>(rule.count)))) {
    Invalid(text);
  }
  return rule;
}

bool ShouldHalt(const HaltRule& rule, const HaltCounts& counts) {
  if (rule.when == HaltRule::When::kNever) return false;
  const std::size_t seen = rule.on == HaltRule::On::kFail ? counts.failed
                           : rule.on == HaltRule::On::kSuccess
                               ? counts.succeeded
                               : counts.failed + counts.succeeded;
  if (rule.percent) {
    return counts.total > 0 &&
           static_cast<double>(seen) * 100.0 >=
               rule.count * static_cast<double>(counts.total);
  }
  return static_cast<double>(seen) >= rule.count;
}

}  // namespace fanout::commands
