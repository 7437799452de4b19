// Elementwise kernels: SiLU, SwiGLU, rotary embedding, embedding lookup/scatter-add, AdamW.
//
// Simple float loops in PyTorch's order of operations, written so that -O3 can vectorise them
// (expf stays a scalar glibc call). Large calls are split over the pool (pool.h) in whole runs of 1024
// elements (tokens for rope/embedding, columns for the scatter-add), each element computed as the serial
// loop does: results do not depend on the thread count. Outputs may alias inputs elementwise (each
// element is read before it is written).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common.h"
#include "kernels.h"
#include "pool.h"
#include "vexp.h"

namespace lonas {
namespace {

constexpr int64_t kRun = 1024;  // elements per exp batch and per unit of the split

// Calls body(i, exp(−x[i])) for i < n, the exponentials computed vectorised in runs of kRun (see vexp.h),
// the runs split over the pool.
template <class Body>
void withExpNeg(const float* x, int64_t n, Body body) {
  parallelFor(n, kMinPiece, kRun, [&](int64_t b, int64_t e) {
    float ex[kRun];
    for (int64_t s = b; s < e; s += kRun) {
      const int64_t m = e - s < kRun ? e - s : kRun;
      vexp(ex, x + s, m, -1.0f, 0.0f);
      for (int64_t i = 0; i < m; i++) body(s + i, ex[i]);
    }
  });
}

}  // namespace

// silu(x, y, n): y = x · sigmoid(x) = x / (1 + exp(−x)), n elements.
void Silu(const Napi::CallbackInfo& info) {
  Args args(info, "silu", 3);
  F32 x = args.f32(0, "x"), y = args.f32(1, "y");
  int64_t n = args.index(2, "n");
  args.need("x", x.length, n);
  args.need("y", y.length, n);
  withExpNeg(x.data, n, [&](int64_t i, float e) { y.data[i] = x.data[i] / (1.0f + e); });
}

// siluBackward(x, dy, dx, n): dx = dy · s · (1 + x · (1 − s)), s = sigmoid(x).
void SiluBackward(const Napi::CallbackInfo& info) {
  Args args(info, "siluBackward", 4);
  F32 x = args.f32(0, "x"), dy = args.f32(1, "dy"), dx = args.f32(2, "dx");
  int64_t n = args.index(3, "n");
  args.need("x", x.length, n);
  args.need("dy", dy.length, n);
  args.need("dx", dx.length, n);
  withExpNeg(x.data, n, [&](int64_t i, float e) {
    float xi = x.data[i];
    float s = 1.0f / (1.0f + e);
    dx.data[i] = dy.data[i] * s * (1.0f + xi * (1.0f - s));
  });
}

// swiglu(gate, up, out, n): out = silu(gate) · up.
void Swiglu(const Napi::CallbackInfo& info) {
  Args args(info, "swiglu", 4);
  F32 gate = args.f32(0, "gate"), up = args.f32(1, "up"), out = args.f32(2, "out");
  int64_t n = args.index(3, "n");
  args.need("gate", gate.length, n);
  args.need("up", up.length, n);
  args.need("out", out.length, n);
  withExpNeg(gate.data, n, [&](int64_t i, float e) { out.data[i] = (gate.data[i] / (1.0f + e)) * up.data[i]; });
}

// swigluBackward(gate, up, dout, dgate | null, dup | null, n):
//   dgate = (dout · up) · s · (1 + gate · (1 − s)),  dup = dout · silu(gate),  s = sigmoid(gate).
void SwigluBackward(const Napi::CallbackInfo& info) {
  Args args(info, "swigluBackward", 6);
  F32 gate = args.f32(0, "gate"), up = args.f32(1, "up"), dout = args.f32(2, "dout");
  F32 dgate = args.f32OrNull(3, "dgate"), dup = args.f32OrNull(4, "dup");
  int64_t n = args.index(5, "n");
  args.need("gate", gate.length, n);
  args.need("up", up.length, n);
  args.need("dout", dout.length, n);
  if (dgate.data) args.need("dgate", dgate.length, n);
  if (dup.data) args.need("dup", dup.length, n);
  withExpNeg(gate.data, n, [&](int64_t i, float e) {
    float g = gate.data[i], u = up.data[i], d = dout.data[i];
    float s = 1.0f / (1.0f + e);
    float silu = g / (1.0f + e);
    if (dgate.data) dgate.data[i] = (d * u) * s * (1.0f + g * (1.0f - s));
    if (dup.data) dup.data[i] = d * silu;
  });
}

// rope(x, out, positions, cos, sin, nTok, nHeads, headDim, sign)
// x, out: (nTok, nHeads, headDim), may alias; positions: (nTok); cos, sin: (maxPos, half), half = headDim/2.
// For i < half, c = cos[p, i], s = sign · sin[p, i]:
//   out[i] = x[i]·c − x[i+half]·s,   out[i+half] = x[i+half]·c + x[i]·s.
void Rope(const Napi::CallbackInfo& info) {
  Args args(info, "rope", 9);
  F32 x = args.f32(0, "x"), out = args.f32(1, "out");
  I32 positions = args.i32(2, "positions");
  F32 cosT = args.f32(3, "cos"), sinT = args.f32(4, "sin");
  int64_t nTok = args.index(5, "nTok"), nHeads = args.index(6, "nHeads"), headDim = args.index(7, "headDim");
  float sign = static_cast<float>(args.number(8, "sign"));
  if (headDim % 2 != 0) args.throwRange("headDim = " + std::to_string(headDim) + " must be even");
  int64_t half = headDim / 2;
  int64_t size = args.mul(args.mul(nTok, nHeads), headDim);
  args.need("x", x.length, size);
  args.need("out", out.length, size);
  args.need("positions", positions.length, nTok);
  int64_t tableLength = cosT.length < sinT.length ? cosT.length : sinT.length;
  for (int64_t t = 0; t < nTok; t++) {
    int64_t p = positions.data[t];
    if (p < 0 || (p + 1) * half > tableLength) {
      args.throwRange("positions[" + std::to_string(t) + "] = " + std::to_string(p) +
                      " is outside the cos/sin tables (" + std::to_string(half ? tableLength / half : 0) +
                      " positions of " + std::to_string(half) + ")");
    }
  }

  parallelFor(nTok, kMinPiece / std::max<int64_t>(1, nHeads * headDim), 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const float* cp = cosT.data + positions.data[t] * half;  // (half)
      const float* sp = sinT.data + positions.data[t] * half;  // (half)
      for (int64_t h = 0; h < nHeads; h++) {
        const float* xh = x.data + (t * nHeads + h) * headDim;  // (headDim)
        float* oh = out.data + (t * nHeads + h) * headDim;
        for (int64_t i = 0; i < half; i++) {
          float a = xh[i], b = xh[i + half], c = cp[i], s = sign * sp[i];
          oh[i] = a * c - b * s;
          oh[i + half] = b * c + a * s;
        }
      }
    }
  });
}

namespace {

// Every id must index a row of a (length / dim, dim) table.
void checkIds(const Args& args, const I32& ids, int64_t n, int64_t tableRows, const char* table) {
  for (int64_t t = 0; t < n; t++) {
    int64_t id = ids.data[t];
    if (id < 0 || id >= tableRows) {
      args.throwRange("ids[" + std::to_string(t) + "] = " + std::to_string(id) + " is outside [0, " +
                      std::to_string(tableRows) + ") (rows of '" + table + "')");
    }
  }
}

}  // namespace

// embedding(w, ids, out, n, dim): out[t] = w[ids[t]]; w: (vocab, dim), out: (n, dim).
void Embedding(const Napi::CallbackInfo& info) {
  Args args(info, "embedding", 5);
  F32 w = args.f32(0, "w");
  I32 ids = args.i32(1, "ids");
  F32 out = args.f32(2, "out");
  int64_t n = args.index(3, "n"), dim = args.index(4, "dim");
  if (dim == 0) return;  // nothing to copy
  args.need("ids", ids.length, n);
  args.need("out", out.length, args.mul(n, dim));
  checkIds(args, ids, n, w.length / dim, "w");
  parallelFor(n, kMinPiece / dim, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      std::memcpy(out.data + t * dim, w.data + static_cast<int64_t>(ids.data[t]) * dim, sizeof(float) * dim);
    }
  });
}

// embeddingBackward(dy, ids, dw, n, dim): dw[ids[t]] += dy[t] (scatter-add; ids may repeat).
// dy: (n, dim), dw: (vocab, dim).
void EmbeddingBackward(const Napi::CallbackInfo& info) {
  Args args(info, "embeddingBackward", 5);
  F32 dy = args.f32(0, "dy");
  I32 ids = args.i32(1, "ids");
  F32 dw = args.f32(2, "dw");
  int64_t n = args.index(3, "n"), dim = args.index(4, "dim");
  if (dim == 0) return;
  args.need("dy", dy.length, args.mul(n, dim));
  args.need("ids", ids.length, n);
  checkIds(args, ids, n, dw.length / dim, "dw");
  // split over columns (a token's ids may repeat, so rows cannot be split): each column adds its tokens in order
  parallelFor(dim, kMinPiece / std::max<int64_t>(1, n), 16, [&](int64_t i0, int64_t i1) {
    for (int64_t t = 0; t < n; t++) {
      const float* src = dy.data + t * dim;
      float* dst = dw.data + static_cast<int64_t>(ids.data[t]) * dim;
      for (int64_t i = i0; i < i1; i++) dst[i] += src[i];
    }
  });
}

// adamw(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2) — PyTorch single-tensor AdamW:
//   p ·= (1 − lr·wd); m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g·g;
//   p −= (lr/bc1) · (m / (sqrt(v)/sqrt(bc2) + eps)).
// Scalars are formed in double and rounded to float once, as PyTorch does for float tensors.
void AdamW(const Napi::CallbackInfo& info) {
  Args args(info, "adamw", 12);
  F32 p = args.f32(0, "p"), g = args.f32(1, "g"), m = args.f32(2, "m"), v = args.f32(3, "v");
  int64_t n = args.index(4, "n");
  double lr = args.number(5, "lr"), beta1 = args.number(6, "beta1"), beta2 = args.number(7, "beta2");
  double eps = args.number(8, "eps"), weightDecay = args.number(9, "weightDecay");
  double bc1 = args.number(10, "bc1"), bc2 = args.number(11, "bc2");
  args.need("p", p.length, n);
  args.need("g", g.length, n);
  args.need("m", m.length, n);
  args.need("v", v.length, n);

  const float decay = static_cast<float>(1.0 - lr * weightDecay);
  const float b1 = static_cast<float>(beta1), oneMinusB1 = static_cast<float>(1.0 - beta1);
  const float b2 = static_cast<float>(beta2), oneMinusB2 = static_cast<float>(1.0 - beta2);
  const float stepSize = static_cast<float>(lr / bc1);
  const float bc2Sqrt = static_cast<float>(std::sqrt(bc2));
  const float epsF = static_cast<float>(eps);
  parallelFor(n, kMinPiece, kRun, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      float gi = g.data[i];
      float pi = p.data[i] * decay;
      float mi = b1 * m.data[i] + oneMinusB1 * gi;
      float vi = b2 * v.data[i] + oneMinusB2 * gi * gi;
      m.data[i] = mi;
      v.data[i] = vi;
      p.data[i] = pi - stepSize * (mi / (std::sqrt(vi) / bc2Sqrt + epsF));
    }
  });
}

}  // namespace lonas
