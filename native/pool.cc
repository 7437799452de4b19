// See pool.h.
#include "pool.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>
#include <thread>

namespace lonas {

// ---------------------------------------------------------------------------------------------
// Worker pool

namespace {

// Test hook (poolSelfTest): µs to wait at the two steps the claim protocol's races hinge on — a worker between
// reading the ticket and claiming from it, the caller between writing a job's chunk count and publishing it — so
// that a regression shows at once instead of once in millions of jobs. 0 (always, outside that test): no wait.
std::atomic<int> raceDelayUs{0};

void raceDelay() {
  const int us = raceDelayUs.load(std::memory_order_relaxed);
  if (us == 0) return;
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  while (std::chrono::steady_clock::now() < until) _mm_pause();
}

// Persistent workers and work claiming: a job is `chunks` independent pieces; the caller and the workers
// claim pieces from one atomic ticket (job generation << 32 | next piece) until none is left, and the
// caller returns when every piece is done. A worker that is not scheduled in time (another process on
// the core, OpenBLAS's spinning threads) costs nothing: the caller simply claims its pieces too.
// A worker whose claim succeeds knows the job is still running (its piece is not done), so it may use
// the caller's stack-held body. After a job a worker spins for kSpin (decode calls arrive back to back
// and a condition-variable wake-up costs tens of µs on a VM), then sleeps. One job at a time: a caller
// that finds the pool busy (another JS thread) runs its pieces itself.
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();  // never destroyed: detached workers may still be parked at exit
    return *pool;
  }

  void run(int chunks, int threads, const std::function<void(int)>& body) {
    bool expected = false;
    if (threads <= 1 || chunks <= 1 || !busy_.compare_exchange_strong(expected, true)) {
      for (int i = 0; i < chunks; i++) body(i);
      return;
    }
    ensureWorkers(threads - 1);
    // Close the previous job's ticket first: a worker that loaded it (gen − 1, its chunk count) and was
    // delayed before its claim would otherwise check that index against the new chunks_ and claim it, run a
    // piece of the new job under the old generation and count it in done_, which then passed `chunks` and
    // never met it (seen: done 9 of 8, the caller spinning for good). (gen − 1, max) can never be claimed.
    ticket_.store((generation_ << 32) | 0xffffffffu);
    const uint64_t gen = ++generation_;
    job_ = &body;
    chunks_ = static_cast<uint32_t>(chunks);
    done_.store(0);
    raceDelay();
    ticket_.store(gen << 32);  // publishes the job
    if (sleeping_.load() > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
    participate(gen, false);
    while (done_.load() != chunks) _mm_pause();
    busy_.store(false);
  }

 private:
  static constexpr auto kSpin = std::chrono::microseconds(100);

  void participate(uint64_t gen, bool worker) {
    for (;;) {
      uint64_t t = ticket_.load();
      if (worker) raceDelay();
      if ((t >> 32) != gen || static_cast<uint32_t>(t) >= chunks_) return;
      if (ticket_.compare_exchange_weak(t, t + 1)) {
        (*job_)(static_cast<int>(static_cast<uint32_t>(t)));
        done_.fetch_add(1);
      }
    }
  }

  void ensureWorkers(int n) {
    while (workers_ < n) {
      workers_++;
      uint64_t seen = generation_;  // the job about to be published is new to the worker
      std::thread([this, seen] { work(seen); }).detach();
    }
  }

  void work(uint64_t seen) {
    for (;;) {
      auto start = std::chrono::steady_clock::now();
      int spins = 0;
      while ((ticket_.load() >> 32) == seen) {
        _mm_pause();
        if (++spins % 64 == 0 && std::chrono::steady_clock::now() - start > kSpin) {
          std::unique_lock<std::mutex> lock(mu_);
          sleeping_.fetch_add(1);
          cv_.wait(lock, [&] { return (ticket_.load() >> 32) != seen; });
          sleeping_.fetch_sub(1);
          break;
        }
      }
      seen = ticket_.load() >> 32;
      participate(seen, true);
    }
  }

  std::atomic<bool> busy_{false};
  std::atomic<uint64_t> ticket_{0};
  std::atomic<int> done_{0};
  std::atomic<int> sleeping_{0};
  uint64_t generation_ = 0;  // owner-only (under busy_)
  int workers_ = 0;          // owner-only
  const std::function<void(int)>* job_ = nullptr;
  uint32_t chunks_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
};

int initialThreads() {
  const char* env = std::getenv("LONAS_THREADS");
  if (env && *env) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (*end == 0 && n >= 1 && n <= kPoolMaxThreads) return static_cast<int>(n);
    std::fprintf(stderr, "lonas: ignoring LONAS_THREADS=%s (expected an integer in [1, %d])\n", env, kPoolMaxThreads);
  }
  const unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : static_cast<int>(std::min<unsigned>(cores, kPoolMaxThreads));
}

std::atomic<int> threadSetting{initialThreads()};

}  // namespace

int poolThreads() { return threadSetting.load(); }
void setPoolThreads(int n) { threadSetting.store(std::max(1, std::min(n, kPoolMaxThreads))); }

void parallelChunks(int chunks, int threads, const std::function<void(int)>& body) {
  Pool::get().run(chunks, std::max(1, std::min(threads, kPoolMaxThreads)), body);
}

void parallelFor(int64_t n, int64_t minPerPiece, int64_t quantum, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  const int threads = poolThreads();
  const int64_t units = (n + quantum - 1) / quantum;
  const int64_t byWork = std::max<int64_t>(1, n / std::max<int64_t>(1, minPerPiece));
  const int chunks = static_cast<int>(std::min<int64_t>({units, byWork, int64_t{threads} * kChunksPerThread}));
  if (threads <= 1 || chunks <= 1) {
    body(0, n);
    return;
  }
  parallelChunks(chunks, threads, [&](int i) {
    const int64_t b = std::min(n, units * i / chunks * quantum), e = std::min(n, units * (i + 1) / chunks * quantum);
    if (b < e) body(b, e);
  });
}

int64_t poolSelfTest(int jobs, int delayUs) {
  raceDelayUs.store(delayUs);
  const int threads = std::max(2, poolThreads());
  std::vector<std::atomic<int>> hits(64);
  int64_t wrong = 0;
  for (int j = 0; j < jobs; j++) {
    // the chunk counts alternate between small and large, so a stale claim of a finished job would index into
    // the next one's larger range (the bug fixed in 80fb11a)
    const int chunks = j % 2 ? 2 + j % 7 : 16 + j % 48;
    for (int i = 0; i < chunks; i++) hits[i].store(0);
    parallelChunks(chunks, threads, [&](int i) { hits[i].fetch_add(1); });
    for (int i = 0; i < chunks; i++) wrong += hits[i].load() != 1;
  }
  raceDelayUs.store(0);
  return wrong;
}

}  // namespace lonas
