// The bf16 GEMM's tiled paths (bf16-gemm.h): AMX TDPBF16PS and AVX512-BF16 vdpbf16ps, and the run-time path
// choice (bf16GemmPath).
//
// Both instructions multiply a "row side" R (rows × k, the two values of each k pair adjacent: row-major bf16)
// by a "column side" in the VNNI layout P (panels of 16 columns: (kp/2, 16, 2), panel p, pair r, column j
// holding column 16p + j's values at k = 2r, 2r + 1). Per product:
//   x · Wᵀ (transB):  R = W itself (its rows, read in place: no copy of the weight), P = x rounded and packed;
//                     the result block is Cᵀ's, written transposed
//   dY · W:           R = dY rounded (row-major, zero-padded), P = W packed (pairs of its rows interleaved)
// so each call rounds and packs x or dY (O(m·k)) and, for dY · W only, repacks W (O(n·k), the same order of
// work as the exact path's widening in bf16.cc) against the product's O(m·n·k).
// Blocks: 32 R rows × 32 P columns (2 × 2 AMX tiles, or 4 × (8 rows × 2 zmm)) summed over all of k in order,
// written through a (32, 32) buffer. A k longer than kKChunk is summed chunk by chunk (all blocks of one chunk,
// then the next), each block's float32 sums kept in a per-block buffer between chunks: stored and reloaded
// exactly, so the sums are those of one pass, while a chunk of both sides stays in cache (a pass over all of
// the head's k = 49152 streamed 6 MB per block from memory). R's rows past its end and k past its end read as 0 (tail tiles are
// copied into a zero-padded tile; nothing past the operands is read). Threads split the R blocks (x · Wᵀ:
// the weight's rows; each thread's block stays in cache while the packed x streams) or the P panels (dY · W).
#include "bf16-gemm.h"

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cpuid.h>

#include <algorithm>
#include <functional>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "pool.h"

#define LONAS_AMX __attribute__((target("amx-tile,amx-bf16,avx512f")))
#define LONAS_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define LONAS_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

namespace lonas {
namespace {

constexpr int64_t kRowChunk = 256;  // dY · W: rows of R per pass over the panels (a chunk of R stays in cache)
constexpr int64_t kKChunk = 1024;   // k per pass: 256 R rows (or 512 packed x columns) of it fit in L2

// The two sides of one product (see the header) and where its result goes.
struct Sides {
  const uint16_t* r;  // R rows, row stride ldr; rows [0, rows) and k [0, k) are data, the rest reads as 0
  int64_t ldr, rows, k;
  const uint16_t* p;  // P panels, (np / 16) × (kp / 2) × 32, zero-padded
  int64_t kp, np;
  bool transposed;    // C[j][i] gets block element (i, j) (x · Wᵀ), else C[i][j]
};

// cpuid(7, 0).EDX bits 22 (AMX-BF16) and 24 (AMX-TILE), the OS saving the tile state (XCR0 bits 17, 18),
// and the kernel granting this process XTILEDATA (Linux ≥ 5.16: arch_prctl(ARCH_REQ_XCOMP_PERM, 18)).
bool amxUsable() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24))) return false;
  if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return false;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

bool avx512Bf16Usable() { return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw"); }

const char* const kPathNames[] = {"generic", "avx512bf16", "amx"};

bool usable(Bf16Path p) {
  static const bool amx = amxUsable(), avx = avx512Bf16Usable();
  return p == Bf16Path::Generic || (p == Bf16Path::Avx512Bf16 && avx) || (p == Bf16Path::Amx && amx);
}

std::string usableNames() {
  std::string s;
  for (int p = 2; p >= 0; p--)
    if (usable(static_cast<Bf16Path>(p))) s += std::string(s.empty() ? "" : ", ") + kPathNames[p];
  return s;
}

Bf16Path best() { return usable(Bf16Path::Amx) ? Bf16Path::Amx : usable(Bf16Path::Avx512Bf16) ? Bf16Path::Avx512Bf16 : Bf16Path::Generic; }

// The best usable path unless bf16GemmPath(name) forced another.
Bf16Path& chosen() {
  static Bf16Path p = best();
  return p;
}

// ---- packing ----

// r[0..15] (16 × 16 floats) transposed in place: the unpack / shuffle network.
LONAS_AVX512 void transpose16(__m512* r) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
  }
}

// 16 floats → their bf16 bits (toBf16's rounding: nearest even, NaN a quiet NaN), one per 32-bit lane.
LONAS_AVX512 inline __m512i roundLanes(__m512 v) {
  const __m512i b = _mm512_castps_si512(v), hi = _mm512_srli_epi32(b, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  return _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
}

// 16 floats of src (n ≤ 16 of them are data, the rest 0) rounded to bf16 bits.
LONAS_AVX512 inline __m256i round16(const float* src, int64_t n) {
  const __mmask16 m = n >= 16 ? 0xffff : static_cast<__mmask16>((1u << std::max<int64_t>(0, n)) - 1);
  return _mm512_cvtepi32_epi16(roundLanes(_mm512_maskz_loadu_ps(m, src)));
}

// rows (rows, k) of float32 (row stride ld) rounded into R form (mp, kp) bf16, zero-padded.
// (lambdas do not inherit a target attribute: each packer's loop body is a function of its own)
LONAS_AVX512 void packRowsRange(const float* a, int64_t ld, int64_t rows, int64_t k, int64_t kp, uint16_t* out, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    uint16_t* d = out + r * kp;
    for (int64_t j = 0; j < kp; j += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + j), r < rows ? round16(a + r * ld + j, k - j) : _mm256_setzero_si256());
  }
}
void packRows(const float* a, int64_t ld, int64_t rows, int64_t k, int64_t mp, int64_t kp, uint16_t* out) {
  parallelFor(mp, std::max<int64_t>(1, kMinPiece / kp), 1, [&](int64_t r0, int64_t r1) { packRowsRange(a, ld, rows, k, kp, out, r0, r1); });
}

// x (cols, k) float32 (row stride ld) rounded into P form: column c of P is row c of x. Per 16 rows × 32 k:
// each row's 16 pairs as one vector of 32-bit words, transposed so that a vector holds one pair of all 16 rows.
LONAS_AVX512 void panelsFromRowsRange(const float* x, int64_t ld, int64_t cols, int64_t k, int64_t kp, uint16_t* out, int64_t q0, int64_t q1) {
  const int64_t pairs = kp / 2;
  for (int64_t q = q0; q < q1; q++) {
    uint16_t* d = out + q * pairs * 32;
    for (int64_t k0 = 0; k0 < kp; k0 += 32) {
      __m512 v[16];
      for (int64_t j = 0; j < 16; j++) {
        const int64_t c = q * 16 + j;
        if (c >= cols) {
          v[j] = _mm512_setzero_ps();
          continue;
        }
        const float* s = x + c * ld + k0;
        const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(round16(s, k - k0)), round16(s + 16, k - k0 - 16), 1);
        v[j] = _mm512_castsi512_ps(w);
      }
      transpose16(v);
      for (int r = 0; r < 16; r++) _mm512_storeu_ps(reinterpret_cast<float*>(d + (k0 / 2 + r) * 32), v[r]);
    }
  }
}
void packPanelsFromRows(const float* x, int64_t ld, int64_t cols, int64_t k, int64_t np, int64_t kp, uint16_t* out) {
  parallelFor(np / 16, std::max<int64_t>(1, kMinPiece / (16 * kp)), 1,
              [&](int64_t q0, int64_t q1) { panelsFromRowsRange(x, ld, cols, k, kp, out, q0, q1); });
}

// W (k, cols) bf16 (row stride ld) into P form: pair r of column c = W[2r][c], W[2r + 1][c].
LONAS_AVX512 void panelsFromPairsRange(const uint16_t* w, int64_t ld, int64_t cols, int64_t k, int64_t np, int64_t kp, uint16_t* out,
                                       int64_t r0, int64_t r1) {
  const int64_t pairs = kp / 2, panels = np / 16;
  for (int64_t r = r0; r < r1; r++) {
    const uint16_t* w0 = 2 * r < k ? w + 2 * r * ld : nullptr;
    const uint16_t* w1 = 2 * r + 1 < k ? w + (2 * r + 1) * ld : nullptr;
    for (int64_t q = 0; q < panels; q++) {
      const int64_t n = std::max<int64_t>(0, std::min<int64_t>(16, cols - 16 * q));
      const __mmask16 m = n == 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1);
      const __m512i lo = w0 ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w0 + 16 * q)) : _mm512_setzero_si512();
      const __m512i hi = w1 ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w1 + 16 * q)) : _mm512_setzero_si512();
      _mm512_storeu_si512(out + (q * pairs + r) * 32, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}
void packPanelsFromPairs(const uint16_t* w, int64_t ld, int64_t cols, int64_t k, int64_t np, int64_t kp, uint16_t* out) {
  parallelFor(kp / 2, std::max<int64_t>(1, kMinPiece / (2 * np)), 1,
              [&](int64_t r0, int64_t r1) { panelsFromPairsRange(w, ld, cols, k, np, kp, out, r0, r1); });
}

// 16 values of C at c = alpha · v (+ beta · c), rounded as the scalar expression is (no fused multiply-add).
LONAS_AVX512 inline void store16(const Bf16Gemm& g, float* c, __m512 v) {
  const __m512 s = _mm512_mul_ps(_mm512_set1_ps(g.alpha), v);
  _mm512_storeu_ps(c, g.beta == 0.0f ? s : _mm512_add_ps(s, _mm512_mul_ps(_mm512_set1_ps(g.beta), _mm512_loadu_ps(c))));
}

// C block (R rows i0.., P columns j0..) = alpha · t (+ beta · C), t (32, 32), inside C only.
LONAS_AVX512 void writeBlock(const Bf16Gemm& g, const Sides& s, float* t, int64_t i0, int64_t j0) {
  const int64_t rows = std::min<int64_t>(32, (s.transposed ? g.n : g.m) - i0), cols = std::min<int64_t>(32, (s.transposed ? g.m : g.n) - j0);
  if (rows == 32 && cols == 32) {
    for (int q = 0; q < 4; q++) {
      const int qi = q >> 1, qj = q & 1;  // the 16 × 16 quadrant (rows 16·qi.., columns 16·qj..)
      __m512 r[16];
      for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(t + (16 * qi + i) * 32 + 16 * qj);  // t: local or a sums block (unaligned)
      if (s.transposed) transpose16(r);  // r[j] = column j of the quadrant: a piece of C's row j0 + 16·qj + j
      for (int i = 0; i < 16; i++) {
        float* c = s.transposed ? g.c + (j0 + 16 * qj + i) * g.ldc + i0 + 16 * qi : g.c + (i0 + 16 * qi + i) * g.ldc + j0 + 16 * qj;
        store16(g, c, r[i]);
      }
    }
    return;
  }
  for (int64_t a = 0; a < (s.transposed ? cols : rows); a++) {  // along C's rows, then contiguously within one
    for (int64_t b = 0; b < (s.transposed ? rows : cols); b++) {
      const float v = g.alpha * (s.transposed ? t[b * 32 + a] : t[a * 32 + b]);
      float* c = s.transposed ? g.c + (j0 + a) * g.ldc + i0 + b : g.c + (i0 + a) * g.ldc + j0 + b;
      *c = g.beta == 0.0f ? v : v + g.beta * *c;
    }
  }
}

// 16 R rows from row i0 at k [32·kb, 32·kb + 32): in place when all of it is data, else copied zero-padded into
// `tile` (16 × 32); returns the pointer and sets its row stride in bytes.
const uint16_t* rTile(const Sides& s, int64_t i0, int64_t kb, uint16_t* tile, int64_t* strideBytes) {
  const int64_t k0 = kb * 32;
  if (i0 + 16 <= s.rows && k0 + 32 <= s.k) {
    *strideBytes = s.ldr * 2;
    return s.r + i0 * s.ldr + k0;
  }
  std::memset(tile, 0, 16 * 32 * 2);
  const int64_t n = std::max<int64_t>(0, std::min<int64_t>(32, s.k - k0));
  for (int64_t i = 0; i < 16 && i0 + i < s.rows; i++) std::memcpy(tile + i * 32, s.r + (i0 + i) * s.ldr + k0, n * 2);
  *strideBytes = 64;
  return tile;
}

// ---- AMX: tiles 0..3 the 2 × 2 result tiles, 4, 5 R (16 rows × 32 k), 6, 7 P (16 pairs × 16 columns) ----

struct alignas(64) TileConfig {
  uint8_t palette = 1, startRow = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Which blocks and which part of k one call sums: R blocks [a0, a1) × P column blocks [b0, b1) (32 each; aOuter:
// R blocks in the outer loop) over the 32-wide k blocks [kb0, kb1). sums: null when [kb0, kb1) is all of k (the
// block sums live in a local buffer), else the (32, 32) float32 sums of block (a, b) at sums + (a·bBlocks + b)·1024,
// started at 0 when kb0 = 0 and written to C when kb1 is k's end.
struct BlockRange {
  int64_t a0, a1, b0, b1;
  bool aOuter;
  int64_t kb0, kb1;
  float* sums;
  int64_t bBlocks;
};

LONAS_AMX void amxBlocks(const Bf16Gemm& g, const Sides& s, const BlockRange& br) {
  TileConfig cfg;
  for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
  alignas(64) float local[32 * 32];
  alignas(64) uint16_t tail0[16 * 32], tail1[16 * 32];
  const int64_t panel = s.kp / 2 * 32;
  const bool first = br.kb0 == 0, last = br.kb1 == s.kp / 32;
  for (int64_t x = br.aOuter ? br.a0 : br.b0; x < (br.aOuter ? br.a1 : br.b1); x++) {
    for (int64_t y = br.aOuter ? br.b0 : br.a0; y < (br.aOuter ? br.b1 : br.a1); y++) {
      const int64_t a = br.aOuter ? x : y, b = br.aOuter ? y : x;
      const uint16_t* p0 = s.p + 2 * b * panel;
      const uint16_t* p1 = p0 + panel;
      float* t = br.sums ? br.sums + (a * br.bBlocks + b) * 1024 : local;
      if (first) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
      } else {
        _tile_loadd(0, t, 128);
        _tile_loadd(1, t + 16, 128);
        _tile_loadd(2, t + 16 * 32, 128);
        _tile_loadd(3, t + 16 * 32 + 16, 128);
      }
      for (int64_t kb = br.kb0; kb < br.kb1; kb++) {
        int64_t st0, st1;
        const uint16_t* r0 = rTile(s, 32 * a, kb, tail0, &st0);
        const uint16_t* r1 = rTile(s, 32 * a + 16, kb, tail1, &st1);
        _tile_loadd(4, r0, st0);
        _tile_loadd(5, r1, st1);
        _tile_loadd(6, p0 + kb * 16 * 32, 64);
        _tile_loadd(7, p1 + kb * 16 * 32, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      _tile_stored(0, t, 128);
      _tile_stored(1, t + 16, 128);
      _tile_stored(2, t + 16 * 32, 128);
      _tile_stored(3, t + 16 * 32 + 16, 128);
      if (last) writeBlock(g, s, t, 32 * a, 32 * b);
    }
  }
  _tile_release();
}

// ---- AVX512-BF16: 8 R rows × 32 columns per pass (16 accumulators), 4 passes per 32-row block ----

LONAS_AVX512BF16 void avxBlocks(const Bf16Gemm& g, const Sides& s, const BlockRange& br) {
  alignas(64) float local[32 * 32];
  const int64_t panel = s.kp / 2 * 32, pairs = (s.k + 1) / 2;  // pairs past k are 0 on both sides
  const int64_t r0 = br.kb0 * 16, r1 = std::min(pairs, br.kb1 * 16);  // this call's pairs
  const bool first = br.kb0 == 0, last = br.kb1 == s.kp / 32;
  static const uint16_t zeros[2] = {0, 0};
  for (int64_t x = br.aOuter ? br.a0 : br.b0; x < (br.aOuter ? br.a1 : br.b1); x++) {
    for (int64_t y = br.aOuter ? br.b0 : br.a0; y < (br.aOuter ? br.b1 : br.a1); y++) {
      const int64_t a = br.aOuter ? x : y, b = br.aOuter ? y : x;
      const uint16_t* p0 = s.p + 2 * b * panel;
      const uint16_t* p1 = p0 + panel;
      float* t = br.sums ? br.sums + (a * br.bBlocks + b) * 1024 : local;
      for (int64_t h = 0; h < 32; h += 8) {
        const uint16_t* row[8];
        int64_t step[8];  // 2 along a data row, 0 on the zero pair past R's rows
        for (int i = 0; i < 8; i++) {
          const int64_t ri = 32 * a + h + i;
          row[i] = ri < s.rows ? s.r + ri * s.ldr : zeros;
          step[i] = ri < s.rows ? 2 : 0;
        }
        __m512 acc[8][2];
        for (int i = 0; i < 8; i++) {
          acc[i][0] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(t + (h + i) * 32);
          acc[i][1] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(t + (h + i) * 32 + 16);
        }
        for (int64_t r = r0; r < r1; r++) {
          const __m512bh v0 = (__m512bh)_mm512_loadu_si512(p0 + r * 32), v1 = (__m512bh)_mm512_loadu_si512(p1 + r * 32);
          const bool half = 2 * r + 1 == s.k;  // the last pair of an odd k: its second value is past R's row
          for (int i = 0; i < 8; i++) {
            uint32_t pair = row[i][step[i] * r];
            if (!half) pair |= static_cast<uint32_t>(row[i][step[i] * r + (step[i] >> 1)]) << 16;
            const __m512bh xv = (__m512bh)_mm512_set1_epi32(static_cast<int32_t>(pair));
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], xv, v0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], xv, v1);
          }
        }
        for (int i = 0; i < 8; i++) {
          _mm512_storeu_ps(t + (h + i) * 32, acc[i][0]);
          _mm512_storeu_ps(t + (h + i) * 32 + 16, acc[i][1]);
        }
      }
      if (last) writeBlock(g, s, t, 32 * a, 32 * b);
    }
  }
}

}  // namespace

uint16_t toBf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x40);
  return static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

Bf16Path bf16Path() { return chosen(); }

void bf16GemmTiles(const Bf16Gemm& g, int threads) {
  if (g.m <= 0 || g.n <= 0) return;
  const int64_t kp = (g.k + 31) / 32 * 32;
  thread_local std::vector<uint16_t> rBuf, pBuf;
  Sides s;
  if (g.transB) {  // Cᵀ = W · xᵀ: R = W in place, P = x
    const int64_t np = (g.m + 31) / 32 * 32;
    pBuf.resize(np * kp);
    packPanelsFromRows(g.a, g.lda, g.m, g.k, np, kp, pBuf.data());
    s = Sides{g.b, g.ldb, g.n, g.k, pBuf.data(), kp, np, true};
  } else {  // C = dY · W: R = dY, P = W
    const int64_t mp = (g.m + 31) / 32 * 32, np = (g.n + 31) / 32 * 32;
    rBuf.resize(mp * kp);
    pBuf.resize(np * kp);
    packRows(g.a, g.lda, g.m, g.k, mp, kp, rBuf.data());
    packPanelsFromPairs(g.b, g.ldb, g.n, g.k, np, kp, pBuf.data());
    s = Sides{rBuf.data(), kp, mp, kp, pBuf.data(), kp, np, false};
  }
  const bool amx = chosen() == Bf16Path::Amx;
  const int64_t aBlocks = (s.rows + 31) / 32, bBlocks = s.np / 32, kBlocks = kp / 32, kStep = kKChunk / 32;
  thread_local std::vector<float> sumsBuf;  // per-block sums between k chunks (only when k is chunked)
  float* sums = nullptr;
  if (kBlocks > kStep) {
    sumsBuf.resize(aBlocks * bBlocks * 1024);
    sums = sumsBuf.data();
  }
  const auto split = [&](int64_t blocks, const std::function<void(int64_t, int64_t)>& body) {
    const int t = static_cast<int>(std::min<int64_t>(std::max(1, threads), blocks));
    const int chunks = static_cast<int>(std::min<int64_t>(blocks, t == 1 ? 1 : t * kChunksPerThread));
    parallelChunks(chunks, t, [&](int i) { body(blocks * i / chunks, blocks * (i + 1) / chunks); });
  };
  for (int64_t kb0 = 0; kb0 < kBlocks; kb0 += kStep) {
    const int64_t kb1 = std::min(kBlocks, kb0 + kStep);
    const auto run = [&](int64_t a0, int64_t a1, int64_t b0, int64_t b1, bool aOuter) {
      const BlockRange br{a0, a1, b0, b1, aOuter, kb0, kb1, sums, bBlocks};
      if (amx) amxBlocks(g, s, br);
      else avxBlocks(g, s, br);
    };
    if (g.transB) {
      split(aBlocks, [&](int64_t a0, int64_t a1) { run(a0, a1, 0, bBlocks, true); });
    } else {
      for (int64_t r0 = 0; r0 < aBlocks; r0 += kRowChunk / 32) {
        const int64_t r1 = std::min(aBlocks, r0 + kRowChunk / 32);
        split(bBlocks, [&](int64_t b0, int64_t b1) { run(r0, r1, b0, b1, false); });
      }
    }
  }
  if (rBuf.size() > (size_t{1} << 24)) std::vector<uint16_t>().swap(rBuf);  // keep ≤ 32 MB each between calls
  if (pBuf.size() > (size_t{1} << 24)) std::vector<uint16_t>().swap(pBuf);
  if (sumsBuf.size() > (size_t{1} << 23)) std::vector<float>().swap(sumsBuf);
}

// bf16GemmPath() → the path in use ("amx" | "avx512bf16" | "generic"); bf16GemmPath(name) forces one (for
// tests and benchmarks) and returns it. A path this CPU or kernel cannot run is a RangeError naming those it can.
Napi::Value Bf16GemmPath(const Napi::CallbackInfo& info) {
  Args args(info, "bf16GemmPath", info.Length() == 1 ? 1 : 0);
  if (info.Length() == 1 && !info[0].IsUndefined()) {
    const int i = args.mode(0, "path", {"generic", "avx512bf16", "amx"});
    if (!usable(static_cast<Bf16Path>(i)))
      args.throwRange(std::string("path '") + kPathNames[i] + "' is not usable on this CPU/kernel; usable: " + usableNames());
    chosen() = static_cast<Bf16Path>(i);
  }
  return Napi::String::New(info.Env(), kPathNames[static_cast<int>(chosen())]);
}

}  // namespace lonas
