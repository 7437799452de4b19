// The training step's element-wise kernels: inverted dropout and the scaled sum behind add, scale and gradient
// accumulation (contract in src/kernels/api.ts; twins in src/kernels/reference-train.ts).
//
// Each row (a consecutive block of n / rows elements) draws from its own xoshiro128** state, one 32-bit draw
// per element in order, exactly as src/util/xoshiro.ts: the masks equal the twin's bit for bit. Rows are
// independent, so they are split over the pool (pool.h) and the result does not depend on the thread count.
// The backward is an element-wise loop split in runs of 1024.
#include <cstdint>
#include <string>

#include "common.h"
#include "kernels.h"
#include "pool.h"

namespace lonas {
namespace {

inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

// xoshiro128**: the next output of state s[0..3], advanced in place.
inline uint32_t next(uint32_t* s) {
  const uint32_t result = rotl(s[1] * 5u, 7) * 9u;
  const uint32_t t = s[1] << 9;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 11);
  return result;
}

}  // namespace

// dropout(x, out, keep, n, states, rows, threshold, scale): row b of x (elements b·n/rows …) drawn from
// states[4b..4b+3]; kept (keep 1, out = x · scale) when the draw ≥ threshold, else keep 0, out 0.
void Dropout(const Napi::CallbackInfo& info) {
  Args args(info, "dropout", 8);
  F32 x = args.f32(0, "x"), out = args.f32(1, "out");
  U8 keep = args.u8(2, "keep");
  int64_t n = args.index(3, "n");
  U32 states = args.u32(4, "states");
  int64_t rows = args.index(5, "rows");
  double threshold = args.number(6, "threshold"), scale = args.number(7, "scale");
  if (rows < 1 || n % rows != 0) args.throwRange(std::to_string(n) + " elements do not split into " + std::to_string(rows) + " rows");
  args.need("states", states.length, args.mul(4, rows));
  args.need("x", x.length, n);
  args.need("out", out.length, n);
  args.need("keep", keep.length, n);
  const int64_t block = n / rows;
  const int64_t minRows = (kMinPiece + block - 1) / (block > 0 ? block : 1);  // rows worth a piece of their own
  parallelFor(rows, minRows > 0 ? minRows : 1, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      uint32_t* s = states.data + 4 * b;
      uint32_t st[4] = {s[0], s[1], s[2], s[3]};
      for (int64_t i = b * block; i < (b + 1) * block; i++) {
        const bool kept = static_cast<double>(next(st)) >= threshold;
        keep.data[i] = kept ? 1 : 0;
        out.data[i] = kept ? static_cast<float>(static_cast<double>(x.data[i]) * scale) : 0.0f;
      }
      for (int k = 0; k < 4; k++) s[k] = st[k];
    }
  });
}

// dropoutBackward(dy, keep, dx, n, scale): dx = keep ? dy · scale : 0.
void DropoutBackward(const Napi::CallbackInfo& info) {
  Args args(info, "dropoutBackward", 5);
  F32 dy = args.f32(0, "dy");
  U8 keep = args.u8(1, "keep");
  F32 dx = args.f32(2, "dx");
  int64_t n = args.index(3, "n");
  double scale = args.number(4, "scale");
  args.need("dy", dy.length, n);
  args.need("keep", keep.length, n);
  args.need("dx", dx.length, n);
  parallelFor(n, kMinPiece, 1024, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) dx.data[i] = keep.data[i] ? static_cast<float>(static_cast<double>(dy.data[i]) * scale) : 0.0f;
  });
}

// addScaled(a | null, b, out, n, s): out = a + (float)(b · s), or out = (float)(b · s) without a; out may alias.
void AddScaled(const Napi::CallbackInfo& info) {
  Args args(info, "addScaled", 5);
  F32 a = args.f32OrNull(0, "a"), b = args.f32(1, "b"), out = args.f32(2, "out");
  int64_t n = args.index(3, "n");
  double s = args.number(4, "s");
  if (a.data) args.need("a", a.length, n);
  args.need("b", b.length, n);
  args.need("out", out.length, n);
  parallelFor(n, kMinPiece, 1024, [&](int64_t lo, int64_t hi) {
    if (!a.data) {
      for (int64_t i = lo; i < hi; i++) out.data[i] = static_cast<float>(static_cast<double>(b.data[i]) * s);
    } else if (s == 1.0) {  // b · 1 is b: the plain sum, vectorised
      for (int64_t i = lo; i < hi; i++) out.data[i] = a.data[i] + b.data[i];
    } else {
      for (int64_t i = lo; i < hi; i++) out.data[i] = a.data[i] + static_cast<float>(static_cast<double>(b.data[i]) * s);
    }
  });
}

}  // namespace lonas
