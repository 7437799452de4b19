// attentionDecode: one new query per batch row against a KV cache, fused (decode steps of generation).
//
// q, out: (B, Hq, D). k, v: row b starts at b·kvBatchStride; key j of KV head g sits at j·Hkv·D + g·D. Query
// head h reads KV head g = ⌊h / (Hq/Hkv)⌋. Row b attends keys [keyStart[b], Tk) (keyStart null: all).
// Per row b, and per KV head g with its query heads as `group` rows:
//   scores (group, n) = q_g · K_gᵀ        small-M kernel (float32 dot products, one add tree per output); with
//                                          ≤ 4 KV heads all heads at once against whole cache rows (see below)
//   p = softmax(scale · scores)            as the softmax kernel: t = scale·s in float, e = vexp(t − max t),
//                                          1/Σe in double, p = e · float(1/Σe)
//   out_g (group, D) = p · V_g             float32, keys in order
// It replaces, per layer and step, 2·B·Hkv gemm calls, a softmax call and the padding mask written in JS: the
// eval bench's batch-8 decode spent ~24% of its step there at ~250 cached keys, mostly call overhead and
// OpenBLAS packing of K and V for 3-row products. Masked (padding) keys are skipped, not given −1e30: the same
// result (their weight is exactly 0 either way) without touching them.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "compressed.h"
#include "multiversion.h"
#include "kernels.h"
#include "pool.h"
#include "small-gemm.h"
#include "vexp.h"

namespace lonas {
namespace {

// out (rows, D) = p (rows, n, row stride ldp) · V (n, D, row stride ldv), float32, keys in order.
// Register-blocked: RN ≤ 4 rows × 64 outputs are accumulated over all keys (accumulating into memory cost ~2× the
// K/V streaming at 250 keys). Generic vectors, of 16 floats (zmm) where AVX-512 is on and of 8 (ymm) otherwise: a
// 64-byte vector in the AVX2 clone is split through the stack (3/4 of its instructions moved data to and from it;
// 32 heads × 1024 keys × D 128, GQA group 4, Zen 3: 3.3–5.2 → 0.95–1.4 ms; group 1 within the noise). Each output sums its
// keys in the same order whatever the width.
typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));

template <typename V>
inline V loadv(const float* p) {
  V x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

template <typename V, int RN, int DN>
LONAS_MULTIVERSION void weightedBlock(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t n, float* out, int64_t ldo) {
  constexpr int L = sizeof(V) / sizeof(float);
  V acc[RN][DN] = {};
  for (int64_t j = 0; j < n; j++) {
    V vj[DN];
    for (int c = 0; c < DN; c++) __builtin_prefetch(v + (j + 16) * ldv + L * c, 0, 2);
    for (int c = 0; c < DN; c++) vj[c] = loadv<V>(v + j * ldv + L * c);
    for (int r = 0; r < RN; r++) {
      const float pj = p[r * ldp + j];
      for (int c = 0; c < DN; c++) acc[r][c] += pj * vj[c];
    }
  }
  for (int r = 0; r < RN; r++)
    for (int c = 0; c < DN; c++) std::memcpy(out + r * ldo + L * c, &acc[r][c], sizeof(V));
}

template <typename V, int RN>
void weightedRows(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t n, int64_t dv, float* out, int64_t ldo) {
  // vectors in this chunk of D: ≤ 4 of 16 floats, ≤ 8 of 8 (only the widths a chunk of 64 can need are built)
  if constexpr (sizeof(V) == 32) {
    switch (dv) {
      case 5: return weightedBlock<V, RN, 5>(p, ldp, v, ldv, n, out, ldo);
      case 6: return weightedBlock<V, RN, 6>(p, ldp, v, ldv, n, out, ldo);
      case 7: return weightedBlock<V, RN, 7>(p, ldp, v, ldv, n, out, ldo);
      case 8: return weightedBlock<V, RN, 8>(p, ldp, v, ldv, n, out, ldo);
    }
  }
  switch (dv) {
    case 1: weightedBlock<V, RN, 1>(p, ldp, v, ldv, n, out, ldo); break;
    case 2: weightedBlock<V, RN, 2>(p, ldp, v, ldv, n, out, ldo); break;
    case 3: weightedBlock<V, RN, 3>(p, ldp, v, ldv, n, out, ldo); break;
    default: weightedBlock<V, RN, 4>(p, ldp, v, ldv, n, out, ldo); break;
  }
}

// D in chunks of 64 floats (4 zmm or 8 ymm per row), 4 rows at a time.
template <typename V>
void weightedChunks(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t rows, int64_t n, int64_t D, float* out,
                    int64_t ldo) {
  constexpr int64_t L = sizeof(V) / sizeof(float);
  for (int64_t d0 = 0; d0 < D; d0 += 64) {
    const int64_t dv = std::min<int64_t>(64, D - d0) / L;
    for (int64_t r0 = 0; r0 < rows; r0 += 4) {
      const float* pr = p + r0 * ldp;
      float* o = out + r0 * ldo + d0;
      switch (std::min<int64_t>(4, rows - r0)) {
        case 1: weightedRows<V, 1>(pr, ldp, v + d0, ldv, n, dv, o, ldo); break;
        case 2: weightedRows<V, 2>(pr, ldp, v + d0, ldv, n, dv, o, ldo); break;
        case 3: weightedRows<V, 3>(pr, ldp, v + d0, ldv, n, dv, o, ldo); break;
        default: weightedRows<V, 4>(pr, ldp, v + d0, ldv, n, dv, o, ldo); break;
      }
    }
  }
}

LONAS_MULTIVERSION
void weightedSumPlain(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t rows, int64_t n, int64_t D, float* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; r++) std::fill(out + r * ldo, out + r * ldo + D, 0.0f);
  for (int64_t j = 0; j < n; j++) {
    const float* vj = v + j * ldv;
    for (int64_t r = 0; r < rows; r++) {
      const float pj = p[r * ldp + j];
      float* o = out + r * ldo;
      for (int64_t d = 0; d < D; d++) o[d] += pj * vj[d];
    }
  }
}

void weightedSum(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t rows, int64_t n, int64_t D, float* out, int64_t ldo) {
  if (D % 16 != 0) return weightedSumPlain(p, ldp, v, ldv, rows, n, D, out, ldo);
  if (activeIsa() == Isa::Avx512) weightedChunks<v16>(p, ldp, v, ldv, rows, n, D, out, ldo);
  else weightedChunks<v8>(p, ldp, v, ldv, rows, n, D, out, ldo);
}

}  // namespace

// attentionDecode(q, k, v, out, B, Tk, Hq, Hkv, D, kvBatchStride, scale, keyStart)
void AttentionDecode(const Napi::CallbackInfo& info) {
  Args args(info, "attentionDecode", 12);
  F32 q = args.f32(0, "q"), k = args.f32(1, "k"), v = args.f32(2, "v"), out = args.f32(3, "out");
  int64_t B = args.index(4, "B"), Tk = args.index(5, "Tk"), Hq = args.index(6, "Hq"), Hkv = args.index(7, "Hkv");
  int64_t D = args.index(8, "D"), stride = args.index(9, "kvBatchStride");
  float scale = static_cast<float>(args.number(10, "scale"));
  I32 keyStart = args.i32OrNull(11, "keyStart");
  if (Hkv == 0 || Hq % Hkv != 0) args.throwRange("Hq = " + std::to_string(Hq) + " must be a positive multiple of Hkv = " + std::to_string(Hkv));
  if (Tk == 0) args.throwRange("Tk must be ≥ 1 (a query needs a key)");
  const int64_t group = Hq / Hkv;
  args.need("q", q.length, args.mul(B, args.mul(Hq, D)));
  args.need("out", out.length, args.mul(B, args.mul(Hq, D)));
  if (B > 0) {
    const int64_t end = args.add(args.mul(B - 1, stride), args.mul(Tk, args.mul(Hkv, D)));
    args.need("k", k.length, end);
    args.need("v", v.length, end);
  }
  if (keyStart.data) {
    args.need("keyStart", keyStart.length, B);
    for (int64_t b = 0; b < B; b++) {
      if (keyStart.data[b] < 0 || keyStart.data[b] >= Tk) {
        args.throwRange("keyStart[" + std::to_string(b) + "] = " + std::to_string(keyStart.data[b]) + " leaves row " +
                        std::to_string(b) + " no key of " + std::to_string(Tk));
      }
    }
  }
  // With few KV heads, every query head is dotted with whole cache rows (Hkv·D floats, contiguous) through a
  // block-diagonal copy of q (zeros outside its own KV head): K streams sequentially once instead of Hkv
  // strided passes (measured 1.3–1.5× faster per call at 3 KV heads, 256–512 keys). For finite keys the
  // result is bitwise the same: lane i accumulates the same products in the same order (a head's slice
  // starts at a multiple of 16), plus exact zeros.
  const bool blockDiagonal = Hkv <= 4 && Hkv * D <= 1024 && D % 16 == 0 && Hq <= kSmallGemmMaxRows;
  // Threads (pool.h): batch rows split over the pool; a single row splits its score product over the keys
  // and its KV heads over the pool instead. Every output is computed as the serial loop does.
  const int64_t rowFloats = 2 * Tk * Hkv * D;  // K and V floats a row reads
  auto attendRow = [&](int64_t b, bool split) {
    thread_local std::vector<float> scores, qbd;
    scores.resize(static_cast<size_t>(Hq * Tk));
    const int64_t start = keyStart.data ? keyStart.data[b] : 0, n = Tk - start;
    const float* kb = k.data + b * stride + start * Hkv * D;  // (n, Hkv·D)
    float* sc = scores.data();
    if (blockDiagonal) {
      qbd.assign(static_cast<size_t>(Hq * Hkv * D), 0.0f);
      for (int64_t h = 0; h < Hq; h++) std::memcpy(qbd.data() + h * Hkv * D + (h / group) * D, q.data + (b * Hq + h) * D, D * sizeof(float));
      smallGemmNT(SmallGemm{Hq, n, Hkv * D, 1.0f, 0.0f, qbd.data(), Hkv * D, kb, Hkv * D, false, sc, n}, split ? poolThreads() : 1);
    }
    auto heads = [&](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; g++) {
        const float* qg = q.data + (b * Hq + g * group) * D;  // (group, D)
        const float* vg = v.data + b * stride + start * Hkv * D + g * D;  // (n, D), row stride Hkv·D
        float* sg = sc + g * group * n;  // (group, n)
        if (!blockDiagonal) smallGemmNT(SmallGemm{group, n, D, 1.0f, 0.0f, qg, D, kb + g * D, Hkv * D, false, sg, n}, 1);
        for (int64_t r = 0; r < group; r++) {
          float* s = sg + r * n;
          for (int64_t j = 0; j < n; j++) s[j] *= scale;
          vexp(s, s, n, 1.0f, maxF32(s, n));
          const float inv = static_cast<float>(1.0 / sumF64(s, n));
          for (int64_t j = 0; j < n; j++) s[j] *= inv;
        }
        weightedSum(sg, n, vg, Hkv * D, group, n, D, out.data + (b * Hq + g * group) * D, D);
      }
    };
    if (split) parallelFor(Hkv, std::max<int64_t>(1, kMinPiece / (2 * n * D)), 1, heads);
    else heads(0, Hkv);
  };
  if (B == 1) {
    attendRow(0, rowFloats >= 2 * kMinPiece);
  } else {
    parallelFor(B, std::max<int64_t>(1, kMinPiece / std::max<int64_t>(1, rowFloats)), 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++) attendRow(b, false);
    });
  }
}

}  // namespace lonas
