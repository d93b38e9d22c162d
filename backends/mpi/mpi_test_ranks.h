// fanout/backends/mpi/mpi_test_ranks.h — gtest on ranks, for test programs
// run under mpirun (the SPMD tests and the conformance suite on ranks).
//
// Every rank runs every test; only rank 0 prints gtest's report (and writes
// the files Bazel asks for), other ranks print only their failures, prefixed
// with the rank; every rank returns 1 when any rank failed a test, so
// mpirun's exit code reflects a failure anywhere. Starts MPI through
// fanout::mpi::world() unless the program started it.
//
//   int main(int argc, char** argv) { return RunAllTestsOnRanks(argc, argv); }
#ifndef FANOUT_BACKENDS_MPI_MPI_TEST_RANKS_H_
#define FANOUT_BACKENDS_MPI_MPI_TEST_RANKS_H_

int RunAllTestsOnRanks(int argc, char** argv);

#endif  // FANOUT_BACKENDS_MPI_MPI_TEST_RANKS_H_
