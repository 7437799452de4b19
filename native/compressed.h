// Compressed-weight inference kernels (INT4 group-quantised, ≥ 50% unstructured sparse): entry points,
// run-time ISA dispatch and the small worker pool their matrix-vector paths share.
//
//   compressed-runtime.cc  compressedIsa (dispatch level), compressedThreads, the worker pool
//   int4.cc    int4Linear, int4Dequantize
//   sparse.cc  sparseLinear
//
// ISA: the addon is built portable (no -march=native). Kernels that matter for speed exist in three
// versions — AVX-512F, AVX2+FMA, plain C++ — selected at run time with __builtin_cpu_supports and
// compiled with per-function target attributes. `compressedIsa("avx2")` (or LONAS_SIMD=avx2 in the
// environment at load time) caps the level, so tests can run every version on one machine.
#pragma once

#include <napi.h>

#include <cstdint>
#include <functional>

#ifndef LONAS_GEMV_MAX_ROWS
#define LONAS_GEMV_MAX_ROWS 8
#endif

namespace lonas {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// The level the compressed kernels use now: the best the CPU supports, capped by compressedIsa(cap).
Isa activeIsa();

// Runs body(chunk) for chunk = 0..chunks−1 on the calling thread and up to threads − 1 persistent
// workers (spawned once; they spin briefly after a job, then park on a condition variable). Pieces are
// claimed dynamically, so a worker that is not scheduled in time only means the caller does more of
// them. Used by the matrix-vector paths only: OpenBLAS is not involved there (it owns the GEMM threads).
constexpr int kMaxThreads = 2;
constexpr int kChunksPerThread = 4;
void parallelChunks(int chunks, int threads, const std::function<void(int)>& body);

// Products with at most this many rows of x (decode, small batches) run as matrix-vector products that
// read the compressed weights once; more rows dequantise tiles and call sgemm.
constexpr int64_t kGemvMaxRows = LONAS_GEMV_MAX_ROWS;

// Threads for a matrix-vector product streaming `bytes` of weights: compressedThreads(n) (default 1),
// and 1 below a size where the hand-off costs more than it saves.
//
// Why the default is 1 (measured on this 2-core VM, which other jobs shared, load 1.5–4):
//  - back-to-back calls on one shape, second core mostly free: 2 threads 1.3–1.8× faster (INT4 1536×576
//    55 → 40 µs, lm_head 49152×576 1390 → 750 µs; 50%-sparse 168 → 92 µs and 3600 → 2000 µs);
//  - a whole decode pass over the 135M model's 211 linear layers (most too small to split) with other
//    processes running: slower in the median (INT4 8.2 → 13.1 ms per token, sparse 21.7 → 27.9 ms),
//    faster only in the best samples (sparse 20.5 → 11.8 ms). A second thread only pays when the other core
//    is idle. Re-measured after the faster INT4 kernel (int4.cc, ~16 GB/s streamed at one thread): the
//    whole-model INT4 pass ~5% faster on 2 threads with the other core idle, and in real decode (OpenBLAS on 2
//    threads) no better than 1.
// So the split is opt-in (compressedThreads(2)) for machines with a core to spare.
int gemvThreads(int64_t bytes);

// N-API entry points.
void Int4Linear(const Napi::CallbackInfo& info);
void Int4Dequantize(const Napi::CallbackInfo& info);
void SparseLinear(const Napi::CallbackInfo& info);
Napi::Value CompressedIsa(const Napi::CallbackInfo& info);
Napi::Value CompressedThreads(const Napi::CallbackInfo& info);

}  // namespace lonas
