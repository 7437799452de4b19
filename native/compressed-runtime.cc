// Run-time support shared by the compressed kernels (int4.cc, sparse.cc): ISA selection with a cap
// (compressedIsa / LONAS_SIMD) and the small worker pool of the matrix-vector paths. See compressed.h.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "compressed.h"

namespace lonas {

// ---------------------------------------------------------------------------------------------
// ISA dispatch

namespace {

Isa detectIsa() {
  __builtin_cpu_init();
  // libgcc also checks that the OS saves the AVX / AVX-512 register state (XCR0).
  if (__builtin_cpu_supports("avx512f")) return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
  return Isa::Scalar;
}

const char* isaName(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "scalar";
  }
}

bool parseIsa(const std::string& s, Isa* out) {
  if (s == "avx512") *out = Isa::Avx512;
  else if (s == "avx2") *out = Isa::Avx2;
  else if (s == "scalar") *out = Isa::Scalar;
  else return false;
  return true;
}

const Isa kDetected = detectIsa();

int initialCap() {
  const char* env = std::getenv("LONAS_SIMD");
  Isa cap = Isa::Avx512;
  if (env && *env && !parseIsa(env, &cap)) {
    std::fprintf(stderr, "lonas: ignoring LONAS_SIMD=%s (valid: avx512, avx2, scalar)\n", env);
  }
  return static_cast<int>(cap);
}

std::atomic<int> isaCap{initialCap()};

}  // namespace

Isa activeIsa() { return static_cast<Isa>(std::min(static_cast<int>(kDetected), isaCap.load())); }

// compressedIsa() → active level; compressedIsa(cap) caps it ("avx512" | "avx2" | "scalar") and returns
// the level now active (the cap cannot raise it above what the CPU supports).
Napi::Value CompressedIsa(const Napi::CallbackInfo& info) {
  if (info.Length() > 1) {
    throw Napi::TypeError::New(info.Env(), "compressedIsa: expected 0 or 1 arguments, got " + std::to_string(info.Length()));
  }
  if (info.Length() == 1 && !info[0].IsUndefined()) {
    if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "compressedIsa: argument 0 'cap' must be a string");
    Isa cap;
    std::string s = info[0].As<Napi::String>().Utf8Value();
    if (!parseIsa(s, &cap)) {
      throw Napi::RangeError::New(info.Env(), "compressedIsa: cap '" + s + "' must be one of avx512, avx2, scalar");
    }
    isaCap.store(static_cast<int>(cap));
  }
  return Napi::String::New(info.Env(), isaName(activeIsa()));
}

// ---------------------------------------------------------------------------------------------
// Worker pool for the matrix-vector paths

namespace {

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
    const uint64_t gen = ++generation_;
    job_ = &body;
    chunks_ = static_cast<uint32_t>(chunks);
    done_.store(0);
    ticket_.store(gen << 32);  // publishes the job
    if (sleeping_.load() > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
    participate(gen);
    while (done_.load() != chunks) _mm_pause();
    busy_.store(false);
  }

 private:
  static constexpr auto kSpin = std::chrono::microseconds(100);

  void participate(uint64_t gen) {
    for (;;) {
      uint64_t t = ticket_.load();
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
      participate(seen);
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

std::atomic<int> gemvThreadSetting{1};

}  // namespace

void parallelChunks(int chunks, int threads, const std::function<void(int)>& body) {
  Pool::get().run(chunks, std::max(1, std::min(threads, kMaxThreads)), body);
}

int gemvThreads(int64_t bytes) {
  // Below ~256 KB of weights the kernel takes ≲ 15 µs and a second thread does not pay for the hand-off.
  if (bytes < (int64_t{256} << 10)) return 1;
  return gemvThreadSetting.load();
}

// compressedThreads() → threads of the compressed matrix-vector paths; compressedThreads(n) sets it (1..kMaxThreads).
Napi::Value CompressedThreads(const Napi::CallbackInfo& info) {
  if (info.Length() > 1) {
    throw Napi::TypeError::New(info.Env(), "compressedThreads: expected 0 or 1 arguments, got " + std::to_string(info.Length()));
  }
  if (info.Length() == 1 && !info[0].IsUndefined()) {
    Args args(info, "compressedThreads", 1);
    int64_t n = args.index(0, "n");
    if (n < 1 || n > kMaxThreads) {
      args.throwRange("n = " + std::to_string(n) + " must be in [1, " + std::to_string(kMaxThreads) + "]");
    }
    gemvThreadSetting.store(static_cast<int>(n));
  }
  return Napi::Number::New(info.Env(), gemvThreadSetting.load());
}


}  // namespace lonas
