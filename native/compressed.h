// Compressed-weight inference kernels (INT4 group-quantised, ≥ 50% unstructured sparse): entry points,
// run-time ISA dispatch and how their matrix-vector paths use the worker pool (pool.h).
//
//   compressed-runtime.cc  compressedIsa (dispatch level), compressedThreads (the pool is pool.h)
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

#include "pool.h"

#ifndef LONAS_GEMV_MAX_ROWS
#define LONAS_GEMV_MAX_ROWS 8
#endif

namespace lonas {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// The level the compressed kernels use now: the best the CPU supports, capped by compressedIsa(cap).
Isa activeIsa();

// Products with at most this many rows of x (decode, small batches) run as matrix-vector products that
// read the compressed weights once; more rows dequantise tiles and call sgemm.
constexpr int64_t kGemvMaxRows = LONAS_GEMV_MAX_ROWS;

// Threads for a matrix-vector product streaming `bytes` of weights: poolThreads() (pool.h), and 1 below a
// size where the hand-off costs more than it saves.
//
// History: until this change the split was capped at 2 threads and off by default, from measurements on
// this shared 2-core VM (load 1.5–4) where a second thread paid only with the other core idle. The issue
// (18) asks for every core by default, and one pool for every kernel; `npm run bench -- kernel-threads` measures
// the 1 → 2 thread scaling (bench/README.md: on this VM, shared at load 4–20, a second thread did not pay for
// any kernel — the process got ~0.6 of one core — so the figures say nothing about an idle machine).
int gemvThreads(int64_t bytes);

// Bytes of weights below which a matrix-vector product runs on one thread (gemvThreads): ≲ 15 µs of work, where
// a second thread does not pay for the hand-off.
constexpr int64_t kGemvSplitBytes = int64_t{256} << 10;

// N-API entry points.
void Int4Linear(const Napi::CallbackInfo& info);
void Int4Dequantize(const Napi::CallbackInfo& info);
void SparseLinear(const Napi::CallbackInfo& info);
Napi::Value CompressedIsa(const Napi::CallbackInfo& info);
Napi::Value CompressedThreads(const Napi::CallbackInfo& info);

}  // namespace lonas
