// Run-time support shared by the compressed kernels (int4.cc, sparse.cc): ISA selection with a cap
// (compressedIsa / LONAS_SIMD) and their thread setting (the pool itself is pool.cc). See compressed.h.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

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

int gemvThreads(int64_t bytes) {
  if (bytes < kGemvSplitBytes) return 1;
  return poolThreads();
}

// compressedThreads() → the pool's threads (pool.h); compressedThreads(n) sets them (1..kPoolMaxThreads)
// without changing OpenBLAS's (setThreads sets both).
Napi::Value CompressedThreads(const Napi::CallbackInfo& info) {
  if (info.Length() > 1) {
    throw Napi::TypeError::New(info.Env(), "compressedThreads: expected 0 or 1 arguments, got " + std::to_string(info.Length()));
  }
  if (info.Length() == 1 && !info[0].IsUndefined()) {
    Args args(info, "compressedThreads", 1);
    int64_t n = args.index(0, "n");
    if (n < 1 || n > kPoolMaxThreads) {
      args.throwRange("n = " + std::to_string(n) + " must be in [1, " + std::to_string(kPoolMaxThreads) + "]");
    }
    setPoolThreads(static_cast<int>(n));
  }
  return Napi::Number::New(info.Env(), poolThreads());
}

}  // namespace lonas
