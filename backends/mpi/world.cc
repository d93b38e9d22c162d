// The MPI world: started once, under a launcher only; finalized at exit when
// fanout started it; every MPI error returned and thrown (check.h).
#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>

#include "backends/mpi/check.h"
#include "backends/mpi/mpi.h"
#include "core/errors.h"

namespace fanout::mpi {
namespace internal {
namespace {

// Set after an MPI call failed: the world is unusable, and the rank must not
// wait in MPI_Finalize for peers that may be gone.
std::atomic<bool> g_broken{false};

}  // namespace

std::string ErrorString(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) {
    return "MPI error " + std::to_string(rc);
  }
  return std::string(text, len);
}

void Check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  g_broken.store(true);
  throw Error(std::string("mpi backend: ") + what + " failed: " +
              ErrorString(rc) + " (a rank may have died; mpirun ends the job)");
}

bool Broken() { return g_broken.load(); }

void MarkBroken() { g_broken.store(true); }

}  // namespace internal

namespace {

using internal::Check;
using internal::ErrorString;

World* g_world = nullptr;  // set once by world()

void FinalizeAtExit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized != 0 || internal::Broken()) return;
  if (g_world != nullptr && g_world->comm != MPI_COMM_NULL) {
    MPI_Comm_free(&g_world->comm);
  }
  MPI_Finalize();
}

World Start() {
  World w;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized != 0) throw Error("mpi backend: MPI was already finalized");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized == 0) {
    if (!under_launcher()) return w;  // a lone process: one rank, no MPI
    int provided = 0;
    const auto start = std::chrono::steady_clock::now();
    const int rc =
        MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) {
      throw Error("mpi backend: MPI_Init_thread failed: " + ErrorString(rc));
    }
    w.init_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    std::atexit(FinalizeAtExit);
  }
  w.active = true;
  Check(MPI_Comm_dup(MPI_COMM_WORLD, &w.comm), "MPI_Comm_dup");
  Check(MPI_Comm_set_errhandler(w.comm, MPI_ERRORS_RETURN),
        "MPI_Comm_set_errhandler");
  Check(MPI_Comm_rank(w.comm, &w.rank), "MPI_Comm_rank");
  Check(MPI_Comm_size(w.comm, &w.size), "MPI_Comm_size");
  return w;
}

}  // namespace

bool under_launcher() {
  for (const char* name :
       {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

const World& world() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (g_world == nullptr) g_world = new World(Start());
  return *g_world;
}

std::string processor_name() {
  if (world().active) {
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    if (MPI_Get_processor_name(name, &len) == MPI_SUCCESS) {
      return std::string(name, len);
    }
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

}  // namespace fanout::mpi
