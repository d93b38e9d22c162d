// main() for gtest programs run under mpirun (see mpi_test_ranks.h).
#include "backends/mpi/mpi_test_ranks.h"

int main(int argc, char** argv) { return RunAllTestsOnRanks(argc, argv); }
