// The training step's element-wise kernels: inverted dropout and the scaled sum behind add, scale and gradient
// accumulation (contract in src/kernels/api.ts; twins in src/kernels/reference-train.ts).
//
// Each row (a consecutive block of n / rows elements) draws from its own xoshiro128** state, one 32-bit draw
// per element in order, exactly as src/util/xoshiro.ts: the masks equal the twin's bit for bit. Rows are
// independent, so they are split over the pool (pool.h) and the result does not depend on the thread count.
// The backward is an element-wise loop split in runs of 1024.
//
// One stream is a serial chain (each draw needs the previous state: ~3 ns per element here), so a row of
// block ≥ 16·kMinSegment elements is drawn in kLanes segments of L = block / kLanes elements at once: segment
// j starts from the state M^(j·L)·s (M: xoshiro128**'s one-step map, linear over GF(2); M^L is a 128 × 128 bit
// matrix, computed once per L by squaring), the lanes step together in vectors, and the last lane's end state
// continues the row's tail serially. Every element gets the draw it gets in order: the same masks.
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "common.h"
#include "kernels.h"
#include "multiversion.h"
#include "pool.h"

namespace lonas {
namespace {

template <typename U>
inline U rotl(U x, int k) {
  return (x << k) | (x >> (32 - k));
}

// xoshiro128**: the next output of state s[0..3], advanced in place. U is uint32_t (one stream) or a vector of
// uint32_t lanes (independent streams, GCC vector extensions: the same operations lane by lane).
template <typename U>
inline U next(U* s) {
  const U result = rotl<U>(s[1] * 5u, 7) * 9u;
  const U t = s[1] << 9;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl<U>(s[3], 11);
  return result;
}

// ---- the 128-bit state as a GF(2) vector: jumping ahead by L draws ----

struct State {
  uint32_t w[4];
};

// xoshiro's state update alone (next() without its output): linear over GF(2).
inline State step(State s) {
  next<uint32_t>(s.w);
  return s;
}

// A 128 × 128 GF(2) matrix by columns: col[c] = the image of unit vector c (bit c % 32 of word c / 32).
struct Gf2Matrix {
  State col[128];
};

inline State apply(const Gf2Matrix& m, const State& s) {
  State r{{0, 0, 0, 0}};
  for (int c = 0; c < 128; c++) {
    if (!((s.w[c >> 5] >> (c & 31)) & 1u)) continue;
    for (int k = 0; k < 4; k++) r.w[k] ^= m.col[c].w[k];
  }
  return r;
}

Gf2Matrix product(const Gf2Matrix& a, const Gf2Matrix& b) {  // a · b (b first)
  Gf2Matrix r;
  for (int c = 0; c < 128; c++) r.col[c] = apply(a, b.col[c]);
  return r;
}

// M^L, cached per L (a row length is one of a few per model; ~2 M word operations to build one).
const Gf2Matrix& jumpMatrix(int64_t L) {
  static std::mutex mu;
  static std::map<int64_t, Gf2Matrix> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(L);
  if (it != cache.end()) return it->second;
  Gf2Matrix base, acc;
  for (int c = 0; c < 128; c++) {
    State e{{0, 0, 0, 0}};
    e.w[c >> 5] = 1u << (c & 31);
    base.col[c] = step(e);
    acc.col[c] = e;  // identity
  }
  for (int64_t p = L; p > 0; p >>= 1) {
    if (p & 1) acc = product(base, acc);
    if (p > 1) base = product(base, base);
  }
  return cache.emplace(L, acc).first->second;
}

constexpr int kLanes = 16;
constexpr int64_t kMinSegment = 256;  // shorter rows are drawn serially (the jump costs ~16 matrix-vector products)
constexpr int kSteps = 64;            // draws per lane per pass through the buffer

typedef uint32_t u32x8 __attribute__((vector_size(32)));  // 8 lanes: native on AVX2, half a zmm on AVX-512

// kSteps draws of each of the 16 lanes (two halves of 8) into d[t][lane], advancing the lanes' states.
LONAS_MULTIVERSION void drawLanes(u32x8 (&s)[2][4], uint32_t (&d)[kSteps][kLanes]) {
  for (int t = 0; t < kSteps; t++) {
    for (int h = 0; h < 2; h++) {
      const u32x8 result = next<u32x8>(s[h]);
      std::memcpy(&d[t][8 * h], &result, sizeof result);
    }
  }
}

// Elements [e0, e1) of x drawn from state st, in order (the serial path and the tails).
inline void dropSerial(const float* x, float* out, uint8_t* keep, int64_t e0, int64_t e1, uint32_t* st, double threshold, double scale) {
  for (int64_t i = e0; i < e1; i++) {
    const bool kept = static_cast<double>(next<uint32_t>(st)) >= threshold;
    keep[i] = kept ? 1 : 0;
    out[i] = kept ? static_cast<float>(static_cast<double>(x[i]) * scale) : 0.0f;
  }
}

// v when kept (1), else +0: a bit mask rather than a branch, so that the loops around it vectorise (GCC leaves a
// loop with a conditional store scalar).
inline float maskedBits(float v, uint32_t kept) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits &= 0u - kept;
  std::memcpy(&v, &bits, 4);
  return v;
}

// Elements e .. e + steps - 1 of x with draws draw[0], draw[stride], … (one lane's column of the buffer).
LONAS_MULTIVERSION void dropStrided(const uint32_t* draw, int64_t stride, const float* x, float* out, uint8_t* keep, int64_t e,
                                    int64_t steps, double threshold, double scale) {
  for (int64_t t = 0; t < steps; t++) {
    const uint32_t kept = static_cast<double>(draw[t * stride]) >= threshold;
    keep[e + t] = static_cast<uint8_t>(kept);
    out[e + t] = maskedBits(static_cast<float>(static_cast<double>(x[e + t]) * scale), kept);
  }
}

// dx = keep ? dy · scale : 0 over [b, e).
LONAS_MULTIVERSION void dropBackwardRange(const float* dy, const uint8_t* keep, float* dx, int64_t b, int64_t e, double scale) {
  for (int64_t i = b; i < e; i++) dx[i] = maskedBits(static_cast<float>(static_cast<double>(dy[i]) * scale), keep[i] != 0);
}

// One row x[0, block) from state st (advanced to the row's end), kLanes segments at once.
void dropRow(const float* x, float* out, uint8_t* keep, int64_t block, uint32_t* st, double threshold, double scale) {
  const int64_t L = block / kLanes;
  if (L < kMinSegment) return dropSerial(x, out, keep, 0, block, st, threshold, scale);
  const Gf2Matrix& jump = jumpMatrix(L);
  State lane[kLanes];
  std::memcpy(lane[0].w, st, sizeof lane[0].w);
  for (int j = 1; j < kLanes; j++) lane[j] = apply(jump, lane[j - 1]);
  u32x8 s[2][4];
  for (int h = 0; h < 2; h++)
    for (int k = 0; k < 4; k++)
      for (int j = 0; j < 8; j++) s[h][k][j] = lane[8 * h + j].w[k];
  alignas(64) uint32_t d[kSteps][kLanes];
  for (int64_t t0 = 0; t0 < L; t0 += kSteps) {
    drawLanes(s, d);  // past L the draws are not used (the last lane's state is taken at L below)
    const int64_t steps = std::min<int64_t>(kSteps, L - t0);
    for (int j = 0; j < kLanes; j++) dropStrided(&d[0][j], kLanes, x, out, keep, j * L + t0, steps, threshold, scale);
  }
  // the last lane's state after its L draws = the row's state after kLanes · L draws: lane 15 advanced by L
  const State end = apply(jump, lane[kLanes - 1]);
  std::memcpy(st, end.w, sizeof end.w);
  dropSerial(x, out, keep, kLanes * L, block, st, threshold, scale);
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
      dropRow(x.data + b * block, out.data + b * block, keep.data + b * block, block, st, threshold, scale);
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
  parallelFor(n, kMinPiece, 1024, [&](int64_t b, int64_t e) { dropBackwardRange(dy.data, keep.data, dx.data, b, e, scale); });
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
