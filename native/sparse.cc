// Unstructured-sparse linear layer (≥ 50% zeros): y (M, outF) = x (M, inF) · Wᵀ, W (outF, inF).
//
// Format ("bitmask rows", packed by packSparse in src/kernels/compressed.ts):
//   mask   Uint32Array (outF, ⌈inF/32⌉) — bit b of word w of row o set ⇔ W[o, 32w + b] ≠ 0
//   values Float32Array (nnz)            — the non-zeros of every row, rows one after another, in column order;
//          or Uint16Array (nnz) of bfloat16 bit patterns (a bf16 weight's non-zeros: packSparseBf16), widened
//          exactly in registers (bits << 16) — the same products and sums as its float32 upcast, half the bytes
//   rowPtr Int32Array (outF + 1)         — row o's values are values[rowPtr[o] .. rowPtr[o+1])
// Bytes per weight at 50%: 0.5·4 + 1/8 = 2.125 (dense f32: 4; CSR with uint16 columns: 3); bf16 values
// 0.5·2 + 1/8 = 1.125 (dense bf16: 2; with float32 values a sparse bf16 model read MORE than dense bf16). Why this
// format: a prototype of both on this CPU (AMD EPYC Zen 4; M = 1 on the 135M shapes, weights streamed
// from DRAM) ran bitmask rows 2.2–2.9× faster than dense sgemv and CSR-uint16 only 1.4–1.9× (scalar
// loop; AVX-512 gathers were slower still). Bitmask rows are also cheap to decode: with AVX-512 a 16-bit
// slice of the mask expands the next popcount(slice) values into their 16 column slots in one
// instruction (vexpandps), so the inner loop is load, expand, FMA — about dense speed when the weights
// are cache-resident (~4 cycles per 16 columns), and 2–2.5× dense when they stream from memory, as in
// decode. AVX2 has no expand: a 256-entry table of vpermps indices per 8-bit slice does the same.
// A row whose mask (bits below inF) disagrees with rowPtr is a RangeError; nothing is read out of bounds.
//
// Paths: M ≤ kGemvMaxRows = 8 → row-wise dot products over the compressed rows, the M rows of x sharing
// each expanded chunk (outputs split over compressedThreads() threads); M > 8 → expand tiles of rows to dense
// float and cblas_sgemm (x · tileᵀ).

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_*() (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "compressed.h"

#define LONAS_AVX512 __attribute__((target("avx512f,popcnt")))
#define LONAS_AVX2 __attribute__((target("avx2,fma,popcnt")))
#define LONAS_INLINE inline __attribute__((always_inline))

namespace lonas {
namespace {

struct Values {
  const void* data;
  bool bf16;
  int64_t length;
};

// A Float32Array, or a Uint16Array of bfloat16 bits.
Values valuesArg(const Napi::CallbackInfo& info, const Args& args, size_t i, const char* name) {
  bool is = false;
  napi_env env = info.Env();
  if (napi_is_typedarray(env, info[i], &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(env, info[i], &type, &length, &data, nullptr, nullptr) == napi_ok &&
        (type == napi_float32_array || type == napi_uint16_array)) {
      return Values{data, type == napi_uint16_array, static_cast<int64_t>(length)};
    }
  }
  args.throwType("argument " + std::to_string(i) + " '" + name + "' must be a Float32Array or a Uint16Array (bfloat16 bits)");
}

struct SparseCall {
  const float* x;  // (M, inF)
  int64_t M, inF, outF;
  int64_t wordsPerRow;      // ⌈inF / 32⌉
  const int32_t* rowPtr;    // (outF + 1), validated: 0 ≤ rowPtr[0] ≤ … ≤ rowPtr[outF] ≤ nValues
  const uint32_t* mask;     // (outF, wordsPerRow)
  const void* values;       // (nValues): float, or uint16_t bfloat16 bits when bf16
  bool bf16;
  int64_t nValues;
  float* y;  // (M, outF)
};

constexpr int64_t kNoError = -1;

template <typename VT>
LONAS_INLINE const VT* valuesOf(const SparseCall& c) {
  return static_cast<const VT*>(c.values);
}

// bfloat16 bits → float32, exactly (the bf16 value is the top half of the float32).
LONAS_INLINE float widen(float v) { return v; }
LONAS_INLINE float widen(uint16_t v) {
  const uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Software prefetch into L2 this far ahead along `values` (and 1/16 as far along `mask`, which streams at 1/16
// the rate at 50% sparsity). The addresses come from rowPtr (row o's own values shifted by kPrefetchBytes),
// never from the running value pointer: vp depends on the popcounts of just-loaded mask words, and a prefetch
// at vp + 16 KB (once per mask word) was ~35% SLOWER on magnitude-pruned (random) masks. The value lines are
// spread over the row's word loop, one line per 32-column word (= the 64 bytes a word consumes at 50%
// sparsity; lines a denser row has beyond that are issued after its loop). History, 135M model's 210
// projections, M = 1, 1 thread, cold: no prefetch ~13.2–14.8 → all of a row's lines in a burst at its start
// ~11.4–12.4 ms per token; that burst → spread over the loop, a standalone copy of the kernel on the shared
// 2-core VM (load ~10, medians of 21 interleaved rounds, two runs): 61–63 → 52 ms (1.18×; f32 small-gemm
// 88–93 ms in the same process, read-only stream of the f32 bytes 85 ms). 8, 16, 32 KB alike; _MM_HINT_T0
// slower. AVX-512 path only: the AVX2 one (a table permute per 8 columns) is compute-bound here, and
// prefetches made it ~8% slower.
constexpr int64_t kPrefetchBytes = 16384;

// The prefetch stream of row o: mask lines at once, value lines one per word (prefetchValueLine), the rest
// after the loop (prefetchValueTail).
struct RowPrefetch {
  const char* first;  // first value line of row o, kPrefetchBytes ahead
  const char* end;    // its end
};

template <typename VT>
LONAS_INLINE RowPrefetch prefetchRowStart(const SparseCall& c, int64_t o) {
  const uintptr_t v0 = reinterpret_cast<uintptr_t>(valuesOf<VT>(c) + c.rowPtr[o]) + kPrefetchBytes;
  const uintptr_t v1 = reinterpret_cast<uintptr_t>(valuesOf<VT>(c) + c.rowPtr[o + 1]) + kPrefetchBytes;
  const char* m = reinterpret_cast<const char*>(c.mask + o * c.wordsPerRow) + kPrefetchBytes / 16;
  for (int64_t b = 0; b < c.wordsPerRow * 4; b += 64) _mm_prefetch(m + b, _MM_HINT_T1);
  return RowPrefetch{reinterpret_cast<const char*>(v0 & ~uintptr_t{63}), reinterpret_cast<const char*>(v1)};
}

// Word w's line (past the row's end when the row is sparser than 50%, or has bf16 values: the next rows'
// lines, needed soon).
LONAS_INLINE void prefetchValueLine(const RowPrefetch& p, int64_t w) { _mm_prefetch(p.first + 64 * w, _MM_HINT_T1); }

// The lines past `words` words' worth (rows denser than 50%).
LONAS_INLINE void prefetchValueTail(const RowPrefetch& p, int64_t words) {
  for (const char* q = p.first + 64 * words; q < p.end; q += 64) _mm_prefetch(q, _MM_HINT_T1);
}

// ---- scalar ---------------------------------------------------------------------------------------

// Calls emit(column, value) for the non-zeros of row o in column order; returns false when the row's
// mask (bits ≥ inF ignored) disagrees with rowPtr.
template <typename VT, typename Emit>
LONAS_INLINE bool visitRowScalar(const SparseCall& c, int64_t o, Emit emit) {
  const VT* vp = valuesOf<VT>(c) + c.rowPtr[o];
  const VT* rowEnd = valuesOf<VT>(c) + c.rowPtr[o + 1];
  const uint32_t* mr = c.mask + o * c.wordsPerRow;
  for (int64_t w = 0; w < c.wordsPerRow; w++) {
    uint32_t bits = mr[w];
    int64_t rem = c.inF - 32 * w;
    if (rem < 32) bits &= (1u << rem) - 1;
    while (bits) {
      if (vp == rowEnd) return false;
      emit(32 * w + __builtin_ctz(bits), widen(*vp++));
      bits &= bits - 1;
    }
  }
  return vp == rowEnd;
}

template <typename VT>
int64_t sparseRowsScalar(const SparseCall& c, int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; o++) {
    float acc[kGemvMaxRows] = {};
    const int64_t M = c.M;
    bool ok = visitRowScalar<VT>(c, o, [&](int64_t j, float v) {
      for (int64_t m = 0; m < M; m++) acc[m] += v * c.x[m * c.inF + j];
    });
    if (!ok) return o;
    for (int64_t m = 0; m < M; m++) c.y[m * c.outF + o] = acc[m];
  }
  return kNoError;
}

template <typename VT>
bool densifyRowScalar(const SparseCall& c, int64_t o, float* dst) {
  std::fill(dst, dst + c.inF, 0.0f);
  return visitRowScalar<VT>(c, o, [&](int64_t j, float v) { dst[j] = v; });
}

// ---- AVX-512 --------------------------------------------------------------------------------------

// Expands the values of the 32 columns of word w (bits already restricted to < inF) into v0 (columns
// 0..15) and v1 (16..31), advancing vp. Reads past vp + popcount only when ≥ 32 values remain in the
// array; returns false if the row would run past rowEnd's array end.
LONAS_AVX512 LONAS_INLINE __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
LONAS_AVX512 LONAS_INLINE __m512 load16(const uint16_t* p) {
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}

template <typename VT>
LONAS_AVX512 LONAS_INLINE bool expandWord512(uint32_t bits, const VT*& vp, const VT* vEnd, __m512* v0, __m512* v1) {
  const __mmask16 lo = static_cast<__mmask16>(bits), hi = static_cast<__mmask16>(bits >> 16);
  const int nLo = __builtin_popcount(lo), nAll = __builtin_popcount(bits);
  if (vEnd - vp >= 32) {
    *v0 = _mm512_maskz_expand_ps(lo, load16(vp));
    *v1 = _mm512_maskz_expand_ps(hi, load16(vp + nLo));
  } else {
    if (vEnd - vp < nAll) return false;
    VT tmp[32] = {};  // near the array's end: exactly popcount(bits) values copied, the rest zero
    std::memcpy(tmp, vp, sizeof(VT) * nAll);
    *v0 = _mm512_maskz_expand_ps(lo, load16(tmp));
    *v1 = _mm512_maskz_expand_ps(hi, load16(tmp + nLo));
  }
  vp += nAll;
  return true;
}

template <int M, typename VT>
LONAS_AVX512 int64_t sparseRows512(const SparseCall& c, int64_t o0, int64_t o1) {
  const VT* const vEnd = valuesOf<VT>(c) + c.nValues;
  const int64_t fullWords = c.inF / 32, rem = c.inF % 32;
  const float* xr[M];
  for (int m = 0; m < M; m++) xr[m] = c.x + m * c.inF;
  for (int64_t o = o0; o < o1; o++) {
    const VT* vp = valuesOf<VT>(c) + c.rowPtr[o];
    const uint32_t* mr = c.mask + o * c.wordsPerRow;
    const RowPrefetch pf = prefetchRowStart<VT>(c, o);
    __m512 a0[M], a1[M];
    for (int m = 0; m < M; m++) a0[m] = a1[m] = _mm512_setzero_ps();
    __m512 v0, v1;
    for (int64_t w = 0; w < fullWords; w++) {
      prefetchValueLine(pf, w);
      if (!expandWord512(mr[w], vp, vEnd, &v0, &v1)) return o;
      for (int m = 0; m < M; m++) {
        a0[m] = _mm512_fmadd_ps(v0, _mm512_loadu_ps(xr[m] + 32 * w), a0[m]);
        a1[m] = _mm512_fmadd_ps(v1, _mm512_loadu_ps(xr[m] + 32 * w + 16), a1[m]);
      }
    }
    prefetchValueTail(pf, fullWords);
    if (rem) {
      const uint32_t keep = (1u << rem) - 1;
      if (!expandWord512(mr[fullWords] & keep, vp, vEnd, &v0, &v1)) return o;
      const __mmask16 xLo = static_cast<__mmask16>(keep), xHi = static_cast<__mmask16>(keep >> 16);
      for (int m = 0; m < M; m++) {  // x is read only below inF (it may hold anything, even NaN, after)
        a0[m] = _mm512_fmadd_ps(v0, _mm512_maskz_loadu_ps(xLo, xr[m] + 32 * fullWords), a0[m]);
        a1[m] = _mm512_fmadd_ps(v1, _mm512_maskz_loadu_ps(xHi, xr[m] + 32 * fullWords + 16), a1[m]);
      }
    }
    if (vp != valuesOf<VT>(c) + c.rowPtr[o + 1]) return o;
    for (int m = 0; m < M; m++) c.y[m * c.outF + o] = _mm512_reduce_add_ps(_mm512_add_ps(a0[m], a1[m]));
  }
  return kNoError;
}

template <typename VT>
LONAS_AVX512 bool densifyRow512(const SparseCall& c, int64_t o, float* dst) {
  const VT* const vEnd = valuesOf<VT>(c) + c.nValues;
  const VT* vp = valuesOf<VT>(c) + c.rowPtr[o];
  const uint32_t* mr = c.mask + o * c.wordsPerRow;
  __m512 v0, v1;
  for (int64_t w = 0; w < c.wordsPerRow; w++) {
    const int64_t rem = std::min<int64_t>(32, c.inF - 32 * w);
    const uint32_t keep = rem == 32 ? 0xFFFFFFFFu : (1u << rem) - 1;
    if (!expandWord512(mr[w] & keep, vp, vEnd, &v0, &v1)) return false;
    _mm512_mask_storeu_ps(dst + 32 * w, static_cast<__mmask16>(keep), v0);
    _mm512_mask_storeu_ps(dst + 32 * w + 16, static_cast<__mmask16>(keep >> 16), v1);
  }
  return vp == valuesOf<VT>(c) + c.rowPtr[o + 1];
}

// ---- AVX2 -----------------------------------------------------------------------------------------

// kPerm[b]: lane i takes value number (rank of bit i among the set bits of b), −1 for a clear bit.
struct PermTable {
  alignas(32) int32_t idx[256][8];
  PermTable() {
    for (int b = 0; b < 256; b++) {
      int n = 0;
      for (int i = 0; i < 8; i++) idx[b][i] = (b >> i) & 1 ? n++ : -1;
    }
  }
};
const PermTable kPerm;

// The 8 values of an 8-column slice with mask byte b, advancing vp; false past the array end.
LONAS_AVX2 LONAS_INLINE __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
LONAS_AVX2 LONAS_INLINE __m256 load8(const uint16_t* p) {
  const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

template <typename VT>
LONAS_AVX2 LONAS_INLINE bool expandByte256(unsigned b, const VT*& vp, const VT* vEnd, __m256* v) {
  const int n = __builtin_popcount(b);
  const __m256i idx = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPerm.idx[b]));
  __m256 raw;
  if (vEnd - vp >= 8) {
    raw = load8(vp);
  } else {
    if (vEnd - vp < n) return false;
    VT tmp[8] = {};
    std::memcpy(tmp, vp, sizeof(VT) * n);
    raw = load8(tmp);
  }
  const __m256 used = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(-1)));
  *v = _mm256_and_ps(_mm256_permutevar8x32_ps(raw, idx), used);
  vp += n;
  return true;
}

// 8-column slices up to ⌊inF/8⌋·8 vectorised, the last inF mod 8 columns scalar.
template <int M, typename VT>
LONAS_AVX2 int64_t sparseRows256(const SparseCall& c, int64_t o0, int64_t o1) {
  const VT* const vEnd = valuesOf<VT>(c) + c.nValues;
  const int64_t slices = c.inF / 8;
  const float* xr[M];
  for (int m = 0; m < M; m++) xr[m] = c.x + m * c.inF;
  for (int64_t o = o0; o < o1; o++) {
    const VT* vp = valuesOf<VT>(c) + c.rowPtr[o];
    const uint32_t* mr = c.mask + o * c.wordsPerRow;
    __m256 a0[M], a1[M];
    for (int m = 0; m < M; m++) a0[m] = a1[m] = _mm256_setzero_ps();
    __m256 v;
    int64_t s = 0;
    for (; s + 2 <= slices; s += 2) {
      const uint32_t word = mr[s >> 2];
      if (!expandByte256((word >> (8 * (s & 3))) & 255u, vp, vEnd, &v)) return o;
      for (int m = 0; m < M; m++) a0[m] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr[m] + 8 * s), a0[m]);
      if (!expandByte256((word >> (8 * ((s + 1) & 3))) & 255u, vp, vEnd, &v)) return o;
      for (int m = 0; m < M; m++) a1[m] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr[m] + 8 * s + 8), a1[m]);
    }
    for (; s < slices; s++) {
      if (!expandByte256((mr[s >> 2] >> (8 * (s & 3))) & 255u, vp, vEnd, &v)) return o;
      for (int m = 0; m < M; m++) a0[m] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr[m] + 8 * s), a0[m]);
    }
    float tail[M];
    for (int m = 0; m < M; m++) tail[m] = 0.0f;
    const int64_t rem = c.inF - 8 * slices;
    if (rem) {
      unsigned bits = (mr[slices >> 2] >> (8 * (slices & 3))) & ((1u << rem) - 1);
      while (bits) {
        if (vp >= valuesOf<VT>(c) + c.rowPtr[o + 1]) return o;
        const int64_t j = 8 * slices + __builtin_ctz(bits);
        for (int m = 0; m < M; m++) tail[m] += widen(*vp) * xr[m][j];
        vp++;
        bits &= bits - 1;
      }
    }
    if (vp != valuesOf<VT>(c) + c.rowPtr[o + 1]) return o;
    for (int m = 0; m < M; m++) {
      alignas(32) float t[8];
      _mm256_store_ps(t, _mm256_add_ps(a0[m], a1[m]));
      c.y[m * c.outF + o] = (((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]))) + tail[m];
    }
  }
  return kNoError;
}

// ---- dispatch ---------------------------------------------------------------------------------------

template <int M, typename VT>
int64_t sparseRowsTyped(const SparseCall& c, Isa isa, int64_t o0, int64_t o1) {
  if (isa == Isa::Avx512) return sparseRows512<M, VT>(c, o0, o1);
  if (isa == Isa::Avx2) return sparseRows256<M, VT>(c, o0, o1);
  return sparseRowsScalar<VT>(c, o0, o1);
}

template <int M>
int64_t sparseRowsRange(const SparseCall& c, Isa isa, int64_t o0, int64_t o1) {
  return c.bf16 ? sparseRowsTyped<M, uint16_t>(c, isa, o0, o1) : sparseRowsTyped<M, float>(c, isa, o0, o1);
}

// Returns the first row whose mask disagrees with rowPtr, or kNoError.
int64_t sparseGemv(const SparseCall& c) {
  const Isa isa = activeIsa();
  const int threads = gemvThreads(c.nValues * (c.bf16 ? 2 : 4) + c.outF * c.wordsPerRow * 4);
  const int chunks = static_cast<int>(std::min<int64_t>(c.outF, threads == 1 ? 1 : threads * kChunksPerThread));
  std::atomic<int64_t> bad{kNoError};
  parallelChunks(chunks, threads, [&](int chunk) {
    const int64_t o0 = c.outF * chunk / chunks, o1 = c.outF * (chunk + 1) / chunks;
    int64_t r;
    switch (c.M) {
      case 1: r = sparseRowsRange<1>(c, isa, o0, o1); break;
      case 2: r = sparseRowsRange<2>(c, isa, o0, o1); break;
      case 3: r = sparseRowsRange<3>(c, isa, o0, o1); break;
      case 4: r = sparseRowsRange<4>(c, isa, o0, o1); break;
      case 5: r = sparseRowsRange<5>(c, isa, o0, o1); break;
      case 6: r = sparseRowsRange<6>(c, isa, o0, o1); break;
      case 7: r = sparseRowsRange<7>(c, isa, o0, o1); break;
      default: r = sparseRowsRange<8>(c, isa, o0, o1); break;
    }
    if (r != kNoError) {
      int64_t cur = bad.load();
      while ((cur == kNoError || r < cur) && !bad.compare_exchange_weak(cur, r)) {
      }
    }
  });
  return bad.load();
}

int64_t sparseGemm(const SparseCall& c) {
  constexpr int64_t kTileFloats = int64_t{1} << 19;  // 2 MB dense tile per sgemm call
  const int64_t rows = std::min<int64_t>(c.outF, std::max<int64_t>(16, kTileFloats / std::max<int64_t>(1, c.inF)));
  thread_local std::vector<float> tileBuf;
  if (static_cast<int64_t>(tileBuf.size()) < rows * c.inF) tileBuf.resize(rows * c.inF);
  float* tile = tileBuf.data();
  const Isa isa = activeIsa();
  for (int64_t o0 = 0; o0 < c.outF; o0 += rows) {
    const int64_t n = std::min(rows, c.outF - o0);
    for (int64_t r = 0; r < n; r++) {
      float* dst = tile + r * c.inF;
      const bool ok = isa == Isa::Avx512 ? (c.bf16 ? densifyRow512<uint16_t>(c, o0 + r, dst) : densifyRow512<float>(c, o0 + r, dst))
                                         : (c.bf16 ? densifyRowScalar<uint16_t>(c, o0 + r, dst) : densifyRowScalar<float>(c, o0 + r, dst));
      if (!ok) return o0 + r;
    }
    // y[:, o0:o0+n] = x · tileᵀ
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(c.M), static_cast<int>(n),
                static_cast<int>(c.inF), 1.0f, c.x, static_cast<int>(c.inF), tile, static_cast<int>(c.inF), 0.0f,
                c.y + o0, static_cast<int>(c.outF));
  }
  return kNoError;
}

}  // namespace

// sparseLinear(x, M, inF, outF, rowPtr, mask, values, y): y (M, outF) = x (M, inF) · Wᵀ.
void SparseLinear(const Napi::CallbackInfo& info) {
  Args args(info, "sparseLinear", 8);
  F32 x = args.f32(0, "x");
  int64_t M = args.blasInt(1, "M"), inF = args.blasInt(2, "inF"), outF = args.blasInt(3, "outF");
  I32 rowPtr = args.i32(4, "rowPtr");
  U32 mask = args.u32(5, "mask");
  const Values values = valuesArg(info, args, 6, "values");
  F32 y = args.f32(7, "y");
  const int64_t wordsPerRow = (inF + 31) / 32;
  args.need("rowPtr", rowPtr.length, outF + 1);
  args.need("mask", mask.length, args.mul(outF, wordsPerRow));
  args.need("x", x.length, args.mul(M, inF));
  args.need("y", y.length, args.mul(M, outF));
  if (rowPtr.data[0] < 0) args.throwRange("rowPtr[0] = " + std::to_string(rowPtr.data[0]) + " is negative");
  for (int64_t o = 0; o < outF; o++) {
    if (rowPtr.data[o + 1] < rowPtr.data[o]) {
      args.throwRange("rowPtr[" + std::to_string(o + 1) + "] = " + std::to_string(rowPtr.data[o + 1]) + " < rowPtr[" +
                      std::to_string(o) + "] = " + std::to_string(rowPtr.data[o]) + " (must be non-decreasing)");
    }
  }
  if (rowPtr.data[outF] > values.length) {
    args.throwRange("rowPtr[" + std::to_string(outF) + "] = " + std::to_string(rowPtr.data[outF]) +
                    " exceeds the length of 'values' (" + std::to_string(values.length) + ")");
  }
  if (M == 0 || outF == 0) return;
  SparseCall c{x.data, M, inF, outF, wordsPerRow, rowPtr.data, mask.data, values.data, values.bf16, values.length, y.data};
  int64_t bad = M <= kGemvMaxRows ? sparseGemv(c) : sparseGemm(c);
  if (bad != kNoError) {
    args.throwRange("row " + std::to_string(bad) + ": the mask bits set below inF = " + std::to_string(inF) +
                    " do not match rowPtr[" + std::to_string(bad + 1) + "] − rowPtr[" + std::to_string(bad) +
                    "] = " + std::to_string(rowPtr.data[bad + 1] - rowPtr.data[bad]) + " values");
  }
}

}  // namespace lonas
