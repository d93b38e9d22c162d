#include "cli/report.h"

namespace fanout::cli {
namespace {

double Speedup(const Timed& baseline, const Timed& t) {
  return t.wall > 0 ? baseline.wall / t.wall : 0.0;
}

double TasksPerSecond(const Request& r, const Timed& t) {
  return t.wall > 0 ? double(r.tasks) / t.wall : 0.0;
}

void PrintComparisonJson(std::FILE* out, const Request& r,
                         const std::vector<std::string>& backends,
                         const std::vector<Timed>& rows, bool agree) {
  const Timed& seq = rows.front();
  std::fprintf(out,
               "{\"workload\": %s, \"answer\": %s, \"tasks\": %zu, "
               "\"agree\": %s, \"rows\": [",
               JsonString(r.workload).c_str(), JsonString(seq.answer).c_str(),
               r.tasks, agree ? "true" : "false");
  for (std::size_t k = 0; k < rows.size(); ++k) {
    std::fprintf(
        out,
        "%s{\"backend\": %s, \"jobs\": %d, \"wall_seconds\": %.6f, "
        "\"speedup\": %.4f, \"tasks_per_second\": %.1f, \"answer\": %s}",
        k ? ", " : "", JsonString(backends[k]).c_str(), rows[k].jobs,
        rows[k].wall, Speedup(seq, rows[k]), TasksPerSecond(r, rows[k]),
        JsonString(rows[k].answer).c_str());
  }
  std::fprintf(out, "]}\n");
}

void PrintComparisonTable(std::FILE* out, const Request& r,
                          const std::vector<std::string>& backends,
                          const std::vector<Timed>& rows) {
  const Timed& seq = rows.front();
  std::fprintf(out, "%s\n", seq.answer.c_str());
  std::fprintf(out, "%-12s %5s %12s %9s %14s\n", "backend", "jobs", "wall (s)",
               "speedup", "tasks/s");
  for (std::size_t k = 0; k < rows.size(); ++k) {
    std::fprintf(out, "%-12s %5d %12.3f %8.2fx %14.0f\n", backends[k].c_str(),
                 rows[k].jobs, rows[k].wall, Speedup(seq, rows[k]),
                 TasksPerSecond(r, rows[k]));
  }
}

}  // namespace

std::string JsonString(const std::string& v) {
  std::string s = "\"";
  for (char c : v) {
    switch (c) {
      case '"':
        s += "\\\"";
        break;
      case '\\':
        s += "\\\\";
        break;
      case '\n':
        s += "\\n";
        break;
      case '\t':
        s += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          s += buf;
        } else {
          s += c;
        }
    }
  }
  return s + "\"";
}

void PrintRun(std::FILE* out, const Request& r, const Timed& t,
              const Timed* sequential) {
  if (r.json) {
    std::fprintf(
        out,
        "{\"answer\": %s, \"backend\": %s, \"workload\": %s, \"jobs\": %d, "
        "\"tasks\": %zu, \"failed_tasks\": %zu, \"wall_seconds\": %.6f",
        JsonString(t.answer).c_str(), JsonString(r.backend).c_str(),
        JsonString(r.workload).c_str(), t.jobs, t.tasks, t.failed_tasks,
        t.wall);
    if (sequential != nullptr) {
      std::fprintf(out, ", \"sequential_seconds\": %.6f, \"speedup\": %.4f",
                   sequential->wall, Speedup(*sequential, t));
    }
    std::fprintf(out, "}\n");
  } else {
    std::fprintf(out, "%s\n", t.answer.c_str());
    std::fprintf(out, "backend: %s\njobs: %d\ntasks: %zu\nwall: %.3f s\n",
                 r.backend.c_str(), t.jobs, t.tasks, t.wall);
    if (sequential != nullptr) {
      std::fprintf(out, "sequential: %.3f s\nspeedup: %.2fx\n",
                   sequential->wall, Speedup(*sequential, t));
    }
  }
  std::fflush(out);
}

void PrintComparison(std::FILE* out, const Request& r,
                     const std::vector<std::string>& backends,
                     const std::vector<Timed>& rows, bool agree) {
  if (r.json) {
    PrintComparisonJson(out, r, backends, rows, agree);
  } else {
    PrintComparisonTable(out, r, backends, rows);
  }
  std::fflush(out);
}

}  // namespace fanout::cli
