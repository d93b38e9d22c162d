// Mirrors two producers and two consumers over a multiprocessing.Queue
// (Python):
//
//   from multiprocessing import Process, Queue
//
//   def producer(q, name):
//       for i in range(10):
//           q.put(f'{name}-{i}')
//
//   def consumer(q, results):
//       while (item := q.get()) is not None:
//           results.put(item)
//
//   q, results = Queue(), Queue()
//   producers = [Process(target=producer, args=(q, n)) for n in ('a', 'b')]
//   consumers = [Process(target=consumer, args=(q, results)) for _ in range(2)]
//   for p in producers + consumers: p.start()
//   for p in producers: p.join()
//   for _ in consumers: q.put(None)     # fanout: q.close()
//   for c in consumers: c.join()
//
// Each producer and consumer is its own process (fanout::spawn); the queue
// carries strings (encoded through the codec) in shared memory. The consumers
// return what they took; the parent checks every item was consumed exactly
// once and prints them sorted (which consumer took which item varies).
//
// Run: ./bazelw run //examples/producer_consumer [-- BACKEND]
// (default: process)
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/queue.h"
#include "core/spawn.h"

int main(int argc, char** argv) {
  const std::string backend = argc > 1 ? argv[1] : "process";
  try {
    fanout::Queue<std::string> q(4, /*max_item_bytes=*/64);

    std::vector<fanout::SpawnHandle<int>> producers;
    for (const char* name : {"a", "b"}) {
      producers.push_back(
          fanout::spawn(backend, [&q, name = std::string(name)] {
            for (int i = 0; i < 10; ++i) q.push(name + "-" + std::to_string(i));
            return 10;
          }));
    }
    std::vector<fanout::SpawnHandle<std::vector<std::string>>> consumers;
    for (int c = 0; c < 2; ++c) {
      consumers.push_back(fanout::spawn(backend, [&q] {
        std::vector<std::string> taken;
        while (std::optional<std::string> item = q.pop())
          taken.push_back(*item);
        return taken;
      }));
    }

    int produced = 0;
    for (auto& p : producers) produced += p.join();
    q.close();  // the consumers take what is left, then pop() ends them

    std::map<std::string, int> times_consumed;
    int consumed = 0;
    for (auto& c : consumers) {
      for (const std::string& item : c.join()) {
        ++times_consumed[item];
        ++consumed;
      }
    }
    bool once = static_cast<int>(times_consumed.size()) == produced;
    for (const auto& [item, times] : times_consumed) once = once && times == 1;

    for (const char* name : {"a", "b"}) {
      std::printf("producer %s:", name);
      for (const auto& [item, times] : times_consumed) {
        if (item[0] == name[0]) std::printf(" %s", item.c_str());
      }
      std::printf("\n");
    }
    std::printf("produced %d, consumed %d, each exactly once: %s\n", produced,
                consumed, once ? "yes" : "no");
    return once ? 0 : 1;
  } catch (const fanout::Error& e) {
    std::fprintf(stderr, "producer_consumer: %s\n", e.what());
    return 1;
  }
}
