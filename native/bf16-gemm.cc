// The bf16 GEMM's tiled paths (bf16-gemm.h): AMX TDPBF16PS and AVX512-BF16 vdpbf16ps over the same packed
// operands, and the run-time path choice (bf16GemmPath).
//
// Packing (per call, like the exact path's widening in bf16.cc: O((m + n)·k) against the product's O(m·n·k)):
//   pa (mp, kp) bf16 row-major: A rounded, zero-padded to mp = ⌈m/32⌉·32 rows, kp = ⌈k/32⌉·32 columns
//   pb (np/16 panels, kp/2, 16, 2) bf16: panel p, pair r, column j holds op(B)[2r, 16p + j], op(B)[2r + 1, 16p + j]
//      (the VNNI layout both TDPBF16PS's B tile and vdpbf16ps want), np = ⌈n/32⌉·32, zero-padded.
// Blocks: 32 rows × 32 columns of C (2 × 2 AMX tiles, or 4 × (8 rows × 2 zmm)), accumulated over all of k
// (k ascending), written through a (32, 32) buffer. Threads split the column blocks; rows go in chunks of
// kRowChunk so a chunk of pa stays in cache while every thread streams its panels.
#include "bf16-gemm.h"

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cpuid.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "pool.h"

#define LONAS_AMX __attribute__((target("amx-tile,amx-bf16,avx512f")))
#define LONAS_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

namespace lonas {
namespace {

constexpr int64_t kRowChunk = 256;

struct Packed {
  int64_t mp, kp, np;
  const uint16_t* pa;
  const uint16_t* pb;
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

void packA(const Bf16Gemm& g, const Packed& p, uint16_t* pa) {
  parallelFor(p.mp, std::max<int64_t>(1, kMinPiece / std::max<int64_t>(1, p.kp)), 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      uint16_t* d = pa + r * p.kp;
      int64_t j = 0;
      if (r < g.m)
        for (const float* s = g.a + r * g.lda; j < g.k; j++) d[j] = toBf16(s[j]);
      std::memset(d + j, 0, (p.kp - j) * 2);
    }
  });
}

void packB(const Bf16Gemm& g, const Packed& p, uint16_t* pb) {
  const int64_t pairs = p.kp / 2;
  parallelFor(p.np / 16, std::max<int64_t>(1, kMinPiece / (16 * std::max<int64_t>(1, p.kp))), 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; q++) {
      uint16_t* d = pb + q * pairs * 32;
      for (int64_t j = 0; j < 16; j++) {
        const int64_t n = q * 16 + j;
        for (int64_t kk = 0; kk < p.kp; kk++) {
          const bool in = n < g.n && kk < g.k;
          d[(kk / 2) * 32 + j * 2 + (kk & 1)] = !in ? 0 : g.transB ? g.b[n * g.ldb + kk] : g.b[kk * g.ldb + n];
        }
      }
    }
  });
}

// C block (rows m0.., columns n0..) = alpha · t (+ beta · C), t (32, 32), inside (m, n) only.
void writeBlock(const Bf16Gemm& g, const float* t, int64_t m0, int64_t n0) {
  const int64_t rows = std::min<int64_t>(32, g.m - m0), cols = std::min<int64_t>(32, g.n - n0);
  for (int64_t i = 0; i < rows; i++) {
    float* cr = g.c + (m0 + i) * g.ldc + n0;
    for (int64_t j = 0; j < cols; j++) {
      const float s = g.alpha * t[i * 32 + j];
      cr[j] = g.beta == 0.0f ? s : s + g.beta * cr[j];
    }
  }
}

// ---- AMX: tiles 0..3 the 2 × 2 C tiles, 4, 5 A (16 rows × 32 k), 6, 7 B (16 pairs × 16 columns) ----

struct alignas(64) TileConfig {
  uint8_t palette = 1, startRow = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

LONAS_AMX void amxColumns(const Bf16Gemm& g, const Packed& p, int64_t q0, int64_t q1, int64_t r0, int64_t r1) {
  TileConfig cfg;
  for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
  alignas(64) float t[32 * 32];
  const int64_t panel = p.kp / 2 * 32, strideA = p.kp * 2;
  for (int64_t q = q0; q < q1; q++) {
    const uint16_t* b0 = p.pb + 2 * q * panel;
    const uint16_t* b1 = b0 + panel;
    for (int64_t m0 = r0; m0 < r1; m0 += 32) {
      const uint16_t* a0 = p.pa + m0 * p.kp;
      const uint16_t* a1 = a0 + 16 * p.kp;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t kb = 0; kb < p.kp / 32; kb++) {
        _tile_loadd(4, a0 + kb * 32, strideA);
        _tile_loadd(5, a1 + kb * 32, strideA);
        _tile_loadd(6, b0 + kb * 16 * 32, 64);
        _tile_loadd(7, b1 + kb * 16 * 32, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      _tile_stored(0, t, 128);
      _tile_stored(1, t + 16, 128);
      _tile_stored(2, t + 16 * 32, 128);
      _tile_stored(3, t + 16 * 32 + 16, 128);
      writeBlock(g, t, m0, 32 * q);
    }
  }
  _tile_release();
}

// ---- AVX512-BF16: 8 rows × 32 columns per pass (16 accumulators), 4 passes per 32-row block ----

LONAS_AVX512BF16 void avxColumns(const Bf16Gemm& g, const Packed& p, int64_t q0, int64_t q1, int64_t r0, int64_t r1) {
  alignas(64) float t[32 * 32];
  const int64_t pairs = p.kp / 2, panel = pairs * 32;
  for (int64_t q = q0; q < q1; q++) {
    const uint16_t* b0 = p.pb + 2 * q * panel;
    const uint16_t* b1 = b0 + panel;
    for (int64_t m0 = r0; m0 < r1; m0 += 32) {
      for (int64_t s = 0; s < 32; s += 8) {
        __m512 acc[8][2];
        for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        const uint16_t* a = p.pa + (m0 + s) * p.kp;
        for (int64_t r = 0; r < pairs; r++) {
          const __m512bh v0 = (__m512bh)_mm512_loadu_si512(b0 + r * 32), v1 = (__m512bh)_mm512_loadu_si512(b1 + r * 32);
          for (int i = 0; i < 8; i++) {
            int32_t pair;
            std::memcpy(&pair, a + i * p.kp + 2 * r, 4);
            const __m512bh x = (__m512bh)_mm512_set1_epi32(pair);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], x, v0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], x, v1);
          }
        }
        for (int i = 0; i < 8; i++) {
          _mm512_store_ps(t + (s + i) * 32, acc[i][0]);
          _mm512_store_ps(t + (s + i) * 32 + 16, acc[i][1]);
        }
      }
      writeBlock(g, t, m0, 32 * q);
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
  Packed p{(g.m + 31) / 32 * 32, (g.k + 31) / 32 * 32, (g.n + 31) / 32 * 32, nullptr, nullptr};
  thread_local std::vector<uint16_t> paBuf, pbBuf;
  paBuf.resize(p.mp * p.kp);
  pbBuf.resize(p.np * p.kp);
  packA(g, p, paBuf.data());
  packB(g, p, pbBuf.data());
  p.pa = paBuf.data();
  p.pb = pbBuf.data();
  const bool amx = chosen() == Bf16Path::Amx;
  const int64_t blocks = p.np / 32;
  const int t = static_cast<int>(std::min<int64_t>(std::max(1, threads), blocks));
  const int chunks = static_cast<int>(std::min<int64_t>(blocks, t == 1 ? 1 : t * kChunksPerThread));
  for (int64_t r0 = 0; r0 < p.mp; r0 += kRowChunk) {
    const int64_t r1 = std::min(p.mp, r0 + kRowChunk);
    parallelChunks(chunks, t, [&](int i) {
      const int64_t q0 = blocks * i / chunks, q1 = blocks * (i + 1) / chunks;
      if (amx) amxColumns(g, p, q0, q1, r0, r1);
      else avxColumns(g, p, q0, q1, r0, r1);
    });
  }
  if (paBuf.size() > (size_t{1} << 24)) std::vector<uint16_t>().swap(paBuf);  // keep ≤ 32 MB each between calls
  if (pbBuf.size() > (size_t{1} << 24)) std::vector<uint16_t>().swap(pbBuf);
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
