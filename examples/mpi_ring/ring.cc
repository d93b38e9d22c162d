// The PyPar ring, in C++: the reference program that takes parallel Python
// past one machine. Each rank says who it is; rank 0 starts a message that
// goes around the ring of ranks, each rank appending its name, and comes
// back to rank 0, which prints it. PyPar's version:
//
//   import pypar
//   myid, numproc = pypar.rank(), pypar.size()
//   print("I am proc %d of %d on node %s" % (myid, numproc, pypar.get_processor_name()))
//   if myid == 0:
//       pypar.send("P0", 1)
//       msg = pypar.receive(numproc - 1)
//       print('Processor 0 received message "%s" from processor %d' % (msg, numproc - 1))
//   else:
//       msg = pypar.receive(myid - 1) + "P" + str(myid)
//       pypar.send(msg, (myid + 1) % numproc)
//   pypar.finalize()
//
// Here fanout::mpi::world() starts MPI (and finalizes it at exit) and the
// messages are plain MPI calls on its communicator. Run it with:
//
//   ./bazelw build //examples/mpi_ring
//   ./bazelw run //backends/mpi:mpirun -- -np 3 $PWD/bazel-bin/examples/mpi_ring/ring
//
// Without mpirun it is a ring of one: rank 0's message comes straight back.
#include <cstdio>
#include <string>

#include "backends/mpi/mpi.h"

namespace {

constexpr int kTag = 0;

// fanout's communicator returns MPI errors instead of aborting: on one, say
// which call failed and end the whole job.
void Check(int rc, const char* what, MPI_Comm comm) {
  if (rc == MPI_SUCCESS) return;
  std::fprintf(stderr, "ring: %s failed (MPI error %d)\n", what, rc);
  MPI_Abort(comm, 1);
}

void Send(const std::string& msg, int to, MPI_Comm comm) {
  Check(MPI_Send(msg.data(), static_cast<int>(msg.size()), MPI_CHAR, to, kTag,
                 comm),
        "MPI_Send", comm);
}

std::string Receive(int from, MPI_Comm comm) {
  MPI_Status status;
  Check(MPI_Probe(from, kTag, comm, &status), "MPI_Probe", comm);
  int len = 0;
  Check(MPI_Get_count(&status, MPI_CHAR, &len), "MPI_Get_count", comm);
  std::string msg(len, '\0');
  Check(
      MPI_Recv(msg.data(), len, MPI_CHAR, from, kTag, comm, MPI_STATUS_IGNORE),
      "MPI_Recv", comm);
  return msg;
}

}  // namespace

int main() {
  const fanout::mpi::World& w = fanout::mpi::world();
  const int myid = w.rank;
  const int numproc = w.size;
  std::printf("I am proc %d of %d on node %s\n", myid, numproc,
              fanout::mpi::processor_name().c_str());
  std::fflush(stdout);

  if (numproc == 1) {  // a ring of one: the message never leaves rank 0
    std::printf("Processor 0 received message \"P0\" from processor 0\n");
    return 0;
  }
  if (myid == 0) {
    Send("P0", 1, w.comm);
    const std::string msg = Receive(numproc - 1, w.comm);
    std::printf("Processor 0 received message \"%s\" from processor %d\n",
                msg.c_str(), numproc - 1);
  } else {
    const std::string msg =
        Receive(myid - 1, w.comm) + "P" + std::to_string(myid);
    Send(msg, (myid + 1) % numproc, w.comm);
  }
  return 0;
}
