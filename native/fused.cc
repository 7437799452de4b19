// Row-wise fused kernels: softmax (+ causal mask), cross-entropy, RMSNorm — forward and backward.
//
// Rows are split over the pool (pool.h); each row is computed as the serial loop would, so results do not
// depend on the thread count (cross-entropy's total is summed after the split, in row order; RMSNorm's
// weight gradient is split over its columns instead). Elementwise work is in float like PyTorch's CPU
// kernels; row reductions (sums, dot products) accumulate in double, which only makes them more
// accurate. expf/logf are glibc's scalar functions (correctly rounded in practice).
#include <cmath>
#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "pool.h"
#include "vexp.h"

namespace lonas {
namespace {

// Number of leading columns row r keeps under the causal mask (all of them without a mask):
// q = r mod causalRows keeps j ≤ q + causalShift.
inline int64_t causalKeep(int64_t r, int64_t cols, int64_t causalRows, int64_t causalShift) {
  if (causalRows == 0) return cols;
  int64_t keep = r % causalRows + causalShift + 1;
  return keep < 0 ? 0 : keep > cols ? cols : keep;
}

// Every target must be ignoreIndex or a valid class in [0, vocab).
void checkTargets(const Args& args, const I32& targets, int64_t rows, int64_t vocab, int64_t ignoreIndex) {
  for (int64_t r = 0; r < rows; r++) {
    int64_t t = targets.data[r];
    if (t != ignoreIndex && (t < 0 || t >= vocab)) {
      args.throwRange("targets[" + std::to_string(r) + "] = " + std::to_string(t) + " is outside [0, " +
                      std::to_string(vocab) + ") and is not ignoreIndex (" + std::to_string(ignoreIndex) + ")");
    }
  }
}

// Rows per piece so that a piece touches at least kMinPiece floats.
inline int64_t minRows(int64_t cols) { return std::max<int64_t>(1, kMinPiece / std::max<int64_t>(1, cols)); }

}  // namespace

// softmax(x, y, rows, cols, scale, causalRows, causalShift)
// x, y: (rows, cols), may alias. y[r, j] = exp(t_j − max t) / Σ exp(t − max t), t = scale·x[r, :keep];
// masked columns j ≥ keep get exactly 0 (a fully masked row, possible only if causalShift < 0, is all 0).
void Softmax(const Napi::CallbackInfo& info) {
  Args args(info, "softmax", 7);
  F32 x = args.f32(0, "x"), y = args.f32(1, "y");
  int64_t rows = args.index(2, "rows"), cols = args.index(3, "cols");
  float scale = static_cast<float>(args.number(4, "scale"));
  int64_t causalRows = args.index(5, "causalRows");
  int64_t causalShift = args.integer(6, "causalShift");
  int64_t size = args.mul(rows, cols);
  args.need("x", x.length, size);
  args.need("y", y.length, size);

  parallelFor(rows, minRows(cols), 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x.data + r * cols;  // (cols)
      float* yr = y.data + r * cols;        // (cols), used as scratch for t and exp(t − max)
      int64_t keep = causalKeep(r, cols, causalRows, causalShift);
      for (int64_t j = 0; j < keep; j++) yr[j] = scale * xr[j];
      float m = maxF32(yr, keep);
      vexp(yr, yr, keep, 1.0f, m);
      float inv = static_cast<float>(1.0 / sumF64(yr, keep));  // PyTorch also multiplies by 1/Σ
      for (int64_t j = 0; j < keep; j++) yr[j] *= inv;
      for (int64_t j = keep; j < cols; j++) yr[j] = 0.0f;
    }
  });
}

// softmaxBackward(y, dy, dx, rows, cols, scale): dx = scale · y ⊙ (dy − Σ_j dy·y), all (rows, cols).
void SoftmaxBackward(const Napi::CallbackInfo& info) {
  Args args(info, "softmaxBackward", 6);
  F32 y = args.f32(0, "y"), dy = args.f32(1, "dy"), dx = args.f32(2, "dx");
  int64_t rows = args.index(3, "rows"), cols = args.index(4, "cols");
  float scale = static_cast<float>(args.number(5, "scale"));
  int64_t size = args.mul(rows, cols);
  args.need("y", y.length, size);
  args.need("dy", dy.length, size);
  args.need("dx", dx.length, size);

  parallelFor(rows, minRows(cols), 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* yr = y.data + r * cols;
      const float* dyr = dy.data + r * cols;
      float* dxr = dx.data + r * cols;
      float dot = static_cast<float>(dotF64(dyr, yr, cols));
      for (int64_t j = 0; j < cols; j++) dxr[j] = ((dyr[j] - dot) * yr[j]) * scale;
    }
  });
}

// crossEntropy(logits, targets, lse, rows, vocab, ignoreIndex) → Σ over kept rows of lse[r] − logits[r, t].
// logits: (rows, vocab); targets, lse: (rows). lse is written for every row (ignored ones too).
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Args args(info, "crossEntropy", 6);
  F32 logits = args.f32(0, "logits");
  I32 targets = args.i32(1, "targets");
  F32 lse = args.f32(2, "lse");
  int64_t rows = args.index(3, "rows"), vocab = args.index(4, "vocab");
  int64_t ignoreIndex = args.integer(5, "ignoreIndex");
  args.need("logits", logits.length, args.mul(rows, vocab));
  args.need("targets", targets.length, rows);
  args.need("lse", lse.length, rows);
  checkTargets(args, targets, rows, vocab, ignoreIndex);

  std::vector<double> loss(rows, 0.0);  // (rows): lse[r] − logits[r, t] in double, 0 for ignored rows
  std::vector<char> kept(rows, 0);
  parallelFor(rows, minRows(vocab), 1, [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> scratch;  // exp(logits − max) of one row
    scratch.resize(vocab);
    for (int64_t r = r0; r < r1; r++) {
      const float* lr = logits.data + r * vocab;  // (vocab)
      float m = maxF32(lr, vocab);
      vexp(scratch.data(), lr, vocab, 1.0f, m);
      double sum = 0;
      for (int64_t j = 0; j < vocab; j++) sum += scratch[j];
      double l = static_cast<double>(m) + std::log(sum);  // logsumexp in double, stored as float
      lse.data[r] = static_cast<float>(l);
      int64_t t = targets.data[r];
      if (t != ignoreIndex) {
        loss[r] = l - lr[t];
        kept[r] = 1;
      }
    }
  });
  double total = 0;  // in row order, as a serial loop sums it
  for (int64_t r = 0; r < rows; r++) {
    if (kept[r]) total += loss[r];
  }
  return Napi::Number::New(info.Env(), total);
}

// crossEntropyBackward(logits, targets, lse, rows, vocab, ignoreIndex, gradScale, dlogits)
// dlogits[r] = gradScale · (exp(logits[r] − lse[r]) − onehot(t)); ignored rows are zeroed.
// dlogits may alias logits.
void CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Args args(info, "crossEntropyBackward", 8);
  F32 logits = args.f32(0, "logits");
  I32 targets = args.i32(1, "targets");
  F32 lse = args.f32(2, "lse");
  int64_t rows = args.index(3, "rows"), vocab = args.index(4, "vocab");
  int64_t ignoreIndex = args.integer(5, "ignoreIndex");
  float g = static_cast<float>(args.number(6, "gradScale"));
  F32 dlogits = args.f32(7, "dlogits");
  int64_t size = args.mul(rows, vocab);
  args.need("logits", logits.length, size);
  args.need("targets", targets.length, rows);
  args.need("lse", lse.length, rows);
  args.need("dlogits", dlogits.length, size);
  checkTargets(args, targets, rows, vocab, ignoreIndex);

  parallelFor(rows, minRows(vocab), 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* lr = logits.data + r * vocab;
      float* dr = dlogits.data + r * vocab;
      int64_t t = targets.data[r];
      if (t == ignoreIndex) {
        std::memset(dr, 0, sizeof(float) * vocab);
        continue;
      }
      float L = lse.data[r];
      float pt = expf(lr[t] - L);  // read before dr may overwrite it (aliasing)
      vexp(dr, lr, vocab, 1.0f, L);
      for (int64_t j = 0; j < vocab; j++) dr[j] *= g;
      dr[t] = g * (pt - 1.0f);
    }
  });
}

// rmsnorm(x, w, y, rstd, rows, dim, eps): rstd[r] = 1/sqrt(mean(x[r]²) + eps); y = (x · rstd) · w.
// x, y: (rows, dim); w: (dim); rstd: (rows).
void RmsNorm(const Napi::CallbackInfo& info) {
  Args args(info, "rmsnorm", 7);
  F32 x = args.f32(0, "x"), w = args.f32(1, "w"), y = args.f32(2, "y"), rstd = args.f32(3, "rstd");
  int64_t rows = args.index(4, "rows"), dim = args.index(5, "dim");
  double eps = args.number(6, "eps");
  int64_t size = args.mul(rows, dim);
  args.need("x", x.length, size);
  args.need("w", w.length, dim);
  args.need("y", y.length, size);
  args.need("rstd", rstd.length, rows);

  parallelFor(rows, minRows(dim), 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x.data + r * dim;
      float* yr = y.data + r * dim;
      double meanSq = dotF64(xr, xr, dim) / static_cast<double>(dim);
      float rs = static_cast<float>(1.0 / std::sqrt(meanSq + eps));
      rstd.data[r] = rs;
      for (int64_t i = 0; i < dim; i++) yr[i] = (xr[i] * rs) * w.data[i];
    }
  });
}

// rmsnormBackward(x, w, rstd, dy, dx | null, dw | null, rows, dim)
// With x̂ = x·rs and g = w ⊙ dy (per row):
//   dx = rs · (g − x · rs² · (Σ_j g_j x_j) / dim)        (rows, dim), overwritten
//   dw = Σ_rows dy ⊙ x̂                                  (dim), overwritten, accumulated in double
void RmsNormBackward(const Napi::CallbackInfo& info) {
  Args args(info, "rmsnormBackward", 8);
  F32 x = args.f32(0, "x"), w = args.f32(1, "w"), rstd = args.f32(2, "rstd"), dy = args.f32(3, "dy");
  F32 dx = args.f32OrNull(4, "dx"), dw = args.f32OrNull(5, "dw");
  int64_t rows = args.index(6, "rows"), dim = args.index(7, "dim");
  int64_t size = args.mul(rows, dim);
  args.need("x", x.length, size);
  args.need("w", w.length, dim);
  args.need("rstd", rstd.length, rows);
  args.need("dy", dy.length, size);
  if (dx.data) args.need("dx", dx.length, size);
  if (dw.data) args.need("dw", dw.length, dim);

  if (dx.data) {  // split over rows
    parallelFor(rows, minRows(dim), 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        const float* xr = x.data + r * dim;
        const float* dyr = dy.data + r * dim;
        float rs = rstd.data[r];
        double dot = 0;  // Σ_j w_j·dy_j·x_j
        for (int64_t j = 0; j < dim; j++) dot += static_cast<double>(w.data[j] * dyr[j]) * xr[j];
        float c = static_cast<float>(static_cast<double>(rs) * rs * dot / static_cast<double>(dim));
        float* dxr = dx.data + r * dim;
        for (int64_t i = 0; i < dim; i++) dxr[i] = rs * (w.data[i] * dyr[i] - xr[i] * c);
      }
    });
  }
  if (dw.data) {  // split over columns: each column still sums its rows in order
    parallelFor(dim, minRows(rows), 16, [&](int64_t i0, int64_t i1) {
      thread_local std::vector<double> acc;
      acc.assign(i1 - i0, 0.0);
      for (int64_t r = 0; r < rows; r++) {
        const float* xr = x.data + r * dim;
        const float* dyr = dy.data + r * dim;
        const float rs = rstd.data[r];
        for (int64_t i = i0; i < i1; i++) acc[i - i0] += static_cast<double>(dyr[i]) * (xr[i] * rs);
      }
      for (int64_t i = i0; i < i1; i++) dw.data[i] = static_cast<float>(acc[i - i0]);
    });
  }
}

}  // namespace lonas
