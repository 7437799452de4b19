// lonas native addon: module registration and OpenBLAS controls.
//
// Kernels (contract in src/kernels/api.ts, adapted by src/kernels/native.ts):
//   gemm.cc        gemm, gemmBatched                      (OpenBLAS cblas_sgemm / sgemv, row-major; few-row
//                  x·Wᵀ products on small-gemm.cc's kernel)
//   bf16.cc        gemmBf16                               (bfloat16 weight: small-M kernel or widened sgemm;
//                  compute "bf16": bf16-gemm.cc's AMX / AVX512-BF16 kernels, bf16GemmPath)
//   attention.cc   attentionDecode                        (one query per row against a KV cache, fused)
//   fused.cc       softmax(+Backward), crossEntropy(+Backward), rmsnorm(+Backward)
//   elementwise.cc silu(+Backward), swiglu(+Backward), rope, embedding(+Backward), adamw
//   dropout.cc     dropout(+Backward), addScaled          (per-row xoshiro128** streams, the twin's draws)
//   int4.cc        int4Linear, int4Dequantize, compressedIsa, compressedThreads (see compressed.h)
//   sparse.cc      sparseLinear
//   linalg.cc      choleskyInverseUpper, gramUpper,       (LAPACK dpotrf/dtrtri, float64; ssyrk;
//                  hessianFromGram                        the Hessian widened and mirrored)
//   gptq.cc        gptqColumns, gptqDequantize            (GPTQ's column loop, float64; scale · (q − zero))
// Controls: coreName(), config(), getThreads(), setThreads(n) (OpenBLAS and the pool of pool.h).
//
// OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS are read by OpenBLAS when this library is loaded, so the
// JS loader must set them before requiring the addon.
#include <cblas.h>
#include <malloc.h>

#include "common.h"
#include "compressed.h"
#include "kernels.h"
#include "pool.h"

namespace lonas {
namespace {

Napi::Value CoreName(const Napi::CallbackInfo& info) {
  Args args(info, "coreName", 0);
  const char* name = openblas_get_corename();
  return Napi::String::New(info.Env(), name ? name : "");
}

Napi::Value Config(const Napi::CallbackInfo& info) {
  Args args(info, "config", 0);
  const char* config = openblas_get_config();
  return Napi::String::New(info.Env(), config ? config : "");
}

Napi::Value GetThreads(const Napi::CallbackInfo& info) {
  Args args(info, "getThreads", 0);
  return Napi::Number::New(info.Env(), openblas_get_num_threads());
}

void SetThreads(const Napi::CallbackInfo& info) {
  Args args(info, "setThreads", 1);
  int64_t n = args.index(0, "n");
  if (n < 1 || n > 1024) args.throwRange("n = " + std::to_string(n) + " must be in [1, 1024]");
  openblas_set_num_threads(static_cast<int>(n));
  setPoolThreads(static_cast<int>(n));  // the native kernels' own pool (pool.h) follows
}

// poolSelfTest(jobs, delayUs) → pieces that did not run exactly once (pool.h); for tests.
Napi::Value PoolSelfTest(const Napi::CallbackInfo& info) {
  Args args(info, "poolSelfTest", 2);
  const int64_t jobs = args.index(0, "jobs"), delayUs = args.index(1, "delayUs");
  if (jobs > 1000000 || delayUs > 100000) args.throwRange("jobs ≤ 1e6 and delayUs ≤ 1e5");
  return Napi::Number::New(info.Env(), static_cast<double>(poolSelfTest(static_cast<int>(jobs), static_cast<int>(delayUs))));
}

// retainFreedMemory(): large freed blocks stay in the heap for the next allocation of their size instead of going
// back to the kernel (glibc: mmap threshold and trim threshold raised, which also ends their dynamic adjustment).
// For layer-wise compression, whose buffers (weights, Hessians, activations) recur layer after layer: on this VM a
// fresh page costs a fault (~10 µs). Returns false where the C library has no mallopt controls.
Napi::Value RetainFreedMemory(const Napi::CallbackInfo& info) {
  Args args(info, "retainFreedMemory", 0);
#if defined(__GLIBC__)
  const bool ok = mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  return Napi::Boolean::New(info.Env(), ok);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto add = [&](const char* name, auto fn) { exports.Set(name, Napi::Function::New(env, fn, name)); };
  add("gemm", Gemm);
  add("gemmBatched", GemmBatched);
  add("gemmBf16", GemmBf16);
  add("bf16GemmPath", Bf16GemmPath);
  add("retainFreedMemory", RetainFreedMemory);
  add("attentionDecode", AttentionDecode);
  add("softmax", Softmax);
  add("softmaxBackward", SoftmaxBackward);
  add("crossEntropy", CrossEntropy);
  add("crossEntropyBackward", CrossEntropyBackward);
  add("rmsnorm", RmsNorm);
  add("rmsnormBackward", RmsNormBackward);
  add("silu", Silu);
  add("siluBackward", SiluBackward);
  add("swiglu", Swiglu);
  add("swigluBackward", SwigluBackward);
  add("rope", Rope);
  add("embedding", Embedding);
  add("embeddingBackward", EmbeddingBackward);
  add("adamw", AdamW);
  add("dropout", Dropout);
  add("dropoutBackward", DropoutBackward);
  add("addScaled", AddScaled);
  add("int4Linear", Int4Linear);
  add("int4Dequantize", Int4Dequantize);
  add("sparseLinear", SparseLinear);
  add("choleskyInverseUpper", CholeskyInverseUpper);
  add("gramUpper", GramUpper);
  add("hessianFromGram", HessianFromGram);
  add("gptqDequantize", GptqDequantize);
  add("gptqColumns", GptqColumns);
  add("compressedIsa", CompressedIsa);
  add("compressedThreads", CompressedThreads);
  add("coreName", CoreName);
  add("config", Config);
  add("getThreads", GetThreads);
  add("setThreads", SetThreads);
  add("poolSelfTest", PoolSelfTest);
  return exports;
}

}  // namespace
}  // namespace lonas

// NODE_API_MODULE pastes the init name into an identifier, so it must be unqualified.
static Napi::Object InitLonas(Napi::Env env, Napi::Object exports) { return lonas::Init(env, exports); }
NODE_API_MODULE(lonas, InitLonas)
