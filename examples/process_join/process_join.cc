// Mirrors multiprocessing's Process, in both styles (Python):
//
//   from multiprocessing import Process
//
//   def f(name):
//       print('hello', name)
//
//   class Square(Process):
//       def __init__(self, n, out):
//           super().__init__(); self.n = n; self.out = out
//       def run(self):
//           self.out[self.n] = self.n * self.n
//
//   if __name__ == '__main__':
//       p = Process(target=f, args=('bob',))
//       p.start()
//       p.join()
//       out = Array('i', 4)
//       workers = [Square(n, out) for n in range(4)]
//       for w in workers: w.start()
//       for w in workers: w.join()
//       print(list(out))
//
// fanout::Process takes a target or a subclass's run(); fanout::spawn also
// brings a result back, and join() rethrows a child's error.
//
// Run: ./bazelw run //examples/process_join [-- BACKEND]   (default: process)
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/shared.h"
#include "core/spawn.h"

namespace {

void f(const std::string& name) { std::printf("hello %s\n", name.c_str()); }

// The subclass-with-run() style: each worker writes its square into a shared
// array the parent reads after join().
class Square : public fanout::Process {
 public:
  Square(int n, fanout::SharedArray<int>& out, const std::string& backend)
      : fanout::Process(backend), n_(n), out_(out) {}

 protected:
  void run() override { out_.store(n_, n_ * n_); }

 private:
  int n_;
  fanout::SharedArray<int>& out_;
};

long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

}  // namespace

int main(int argc, char** argv) {
  const std::string backend = argc > 1 ? argv[1] : "process";
  try {
    // Process(target=f, args=('bob',)); start(); join()
    fanout::Process p([] { f("bob"); }, backend);
    p.start();
    p.join();

    // A Process subclass overriding run(), four at once.
    fanout::SharedArray<int> out(4);
    std::vector<std::unique_ptr<Square>> workers;
    for (int n = 0; n < 4; ++n) {
      workers.push_back(std::make_unique<Square>(n, out, backend));
    }
    for (auto& w : workers) w->start();
    for (auto& w : workers) w->join();
    const std::vector<int> squares = out.to_vector();
    std::printf("squares: [%d, %d, %d, %d]\n", squares[0], squares[1],
                squares[2], squares[3]);

    // spawn: the child's return value comes back through join().
    auto h = fanout::spawn(backend, [] { return fib(25); });
    std::printf("fib(25) = %ld\n", h.join());

    // A child's error comes back too, with its type and message.
    auto bad = fanout::spawn(
        backend, []() -> int { throw std::invalid_argument("no such input"); });
    try {
      bad.join();
    } catch (const fanout::TaskError& e) {
      std::printf("join() threw: %s: %s\n", e.type().c_str(),
                  e.message().c_str());
    }
  } catch (const fanout::Error& e) {
    std::fprintf(stderr, "process_join: %s\n", e.what());
    return 1;
  }
  return 0;
}
