/**
 * The kernel contract. Two implementations exist and must agree:
 *  - `native`    (native/lonas.cc, OpenBLAS sgemm + fused C++ loops, float32 only)
 *  - `reference` (src/kernels/reference.ts, plain TypeScript, float32 or float64)
 * The reference is the oracle in tests and the fallback when the addon is missing.
 *
 * Conventions (shared by both):
 *  - Matrices are row-major. `lda/ldb/ldc` are row strides, `aOff/bOff/cOff` element offsets, so a
 *    row or column slice of a weight is multiplied in place (elastic widths need this).
 *  - Backward kernels OVERWRITE their output gradient buffers, except `embeddingBackward`, which
 *    scatter-ADDS into `dw` (rows may repeat). The autograd engine does accumulation.
 *  - Every array argument is used from index 0 (callers pass `subarray`s) unless an explicit
 *    offset parameter exists.
 */
export type FloatArray = Float32Array | Float64Array;

export interface Kernels {
  readonly name: 'native' | 'reference';

  /** C = alpha · op(A) · op(B) + beta · C, op(X) = Xᵀ when trans. op(A): (m, k), op(B): (k, n), C: (m, n). */
  gemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: FloatArray,
    aOff: number,
    lda: number,
    b: FloatArray,
    bOff: number,
    ldb: number,
    beta: number,
    c: FloatArray,
    cOff: number,
    ldc: number,
  ): void;

  /** `batch` independent gemms; matrix i starts at xOff + i·strideX. */
  gemmBatched(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: FloatArray,
    aOff: number,
    lda: number,
    strideA: number,
    b: FloatArray,
    bOff: number,
    ldb: number,
    strideB: number,
    beta: number,
    c: FloatArray,
    cOff: number,
    ldc: number,
    strideC: number,
    batch: number,
  ): void;

  /**
   * C = alpha · A · op(B) + beta · C with B a bfloat16 weight given as its bit patterns (Uint16Array):
   * op(B) = Bᵀ, B stored (n, k), when transB (x · Wᵀ); else B stored (k, n) (dY · W). A (m, k) and C (m, n) are
   * float (no transpose of A). Each bf16 value is widened exactly to float32 (bits << 16), so the products are
   * those of the upcast weight; sums accumulate in float (native: float32). beta = 0 ignores C's old contents.
   * compute 'bf16-act' (an approximation, default 'exact'): for transB with m ≤ 16, A is first rounded to
   * bfloat16, so the native kernel can use AVX512-BF16 dot products (native/bf16-dot.cc); other calls are exact.
   * compute 'bf16' (an approximation): for m > 16 (prefill, training), A is rounded to bfloat16 and the bf16
   * products accumulate in float32 (native/bf16-gemm.h: AMX, AVX512-BF16 or a generic path; twin:
   * bf16-gemm-twin.ts); m ≤ 16 is exact.
   */
  gemmBf16(
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: FloatArray,
    aOff: number,
    lda: number,
    b: Uint16Array,
    bOff: number,
    ldb: number,
    beta: number,
    c: FloatArray,
    cOff: number,
    ldc: number,
    compute?: 'exact' | 'bf16-act' | 'bf16',
  ): void;

  /**
   * y = softmax(scale · x) over the last axis of (rows, cols).
   * Causal mask when causalRows > 0: row r has query index q = r mod causalRows and keeps columns
   * j ≤ q + causalShift (causalShift = Tk − Tq when a KV cache precedes the queries); masked y = 0.
   */
  softmax(x: FloatArray, y: FloatArray, rows: number, cols: number, scale: number, causalRows: number, causalShift: number): void;
  /**
   * Attention of one new query per batch row against a KV cache (decode), without the weights: q, out
   * (B, Hq, D); k, v: row b starts at b·kvBatchStride, key j of KV head g at j·Hkv·D + g·D; query head h reads
   * KV head ⌊h / (Hq/Hkv)⌋. Row b attends keys [keyStart[b], Tk) (keyStart null: all Tk):
   * out_h = Σ_j softmax(scale · q_h·k_j)_j · v_j, the softmax as `softmax` computes it.
   */
  attentionDecode(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    out: FloatArray,
    B: number,
    Tk: number,
    Hq: number,
    Hkv: number,
    D: number,
    kvBatchStride: number,
    scale: number,
    keyStart: Int32Array | null,
  ): void;
  /** dx = scale · y ⊙ (dy − Σ_j dy·y). (rows, cols). Masked entries (y = 0) get dx = 0. dy and dx may alias. */
  softmaxBackward(y: FloatArray, dy: FloatArray, dx: FloatArray, rows: number, cols: number, scale: number): void;

  /**
   * Cross-entropy of logits (rows, vocab) against integer targets (rows). Rows whose target equals
   * ignoreIndex are skipped. Writes lse[r] = logsumexp(logits[r]) for every row and returns the SUM of
   * −log softmax(logits[r])[target[r]] over kept rows (the caller divides by the kept count).
   */
  crossEntropy(logits: FloatArray, targets: Int32Array, lse: FloatArray, rows: number, vocab: number, ignoreIndex: number): number;
  /** dlogits[r] = gradScale · (softmax(logits[r]) − onehot(target[r])); zero rows for ignored targets. */
  crossEntropyBackward(
    logits: FloatArray,
    targets: Int32Array,
    lse: FloatArray,
    rows: number,
    vocab: number,
    ignoreIndex: number,
    gradScale: number,
    dlogits: FloatArray,
  ): void;

  /** y = x · rstd · w with rstd[r] = 1/sqrt(mean(x[r]²) + eps). x, y: (rows, dim); w: (dim); rstd: (rows). */
  rmsnorm(x: FloatArray, w: FloatArray, y: FloatArray, rstd: FloatArray, rows: number, dim: number, eps: number): void;
  /** Gradients of rmsnorm given the saved rstd; dx (rows, dim) and/or dw (dim) may be null (not wanted). */
  rmsnormBackward(
    x: FloatArray,
    w: FloatArray,
    rstd: FloatArray,
    dy: FloatArray,
    dx: FloatArray | null,
    dw: FloatArray | null,
    rows: number,
    dim: number,
  ): void;

  /** y = x · sigmoid(x), n elements. */
  silu(x: FloatArray, y: FloatArray, n: number): void;
  siluBackward(x: FloatArray, dy: FloatArray, dx: FloatArray, n: number): void;
  /** out = silu(gate) · up, n elements. */
  swiglu(gate: FloatArray, up: FloatArray, out: FloatArray, n: number): void;
  /** dgate/dup may be null (not wanted). */
  swigluBackward(gate: FloatArray, up: FloatArray, dout: FloatArray, dgate: FloatArray | null, dup: FloatArray | null, n: number): void;

  /**
   * Rotary embedding, rotate-half convention (HF Llama). x, out: (nTok, nHeads, headDim), half = headDim/2.
   * For token t at position p = positions[t] and i < half, with c = cos[p·half + i], s = sign · sin[p·half + i]:
   *   out[i]        = x[i]·c − x[i+half]·s
   *   out[i+half]   = x[i+half]·c + x[i]·s
   * sign = +1 forward; sign = −1 is the exact backward (rotation by −θ). x and out may alias.
   */
  rope(
    x: FloatArray,
    out: FloatArray,
    positions: Int32Array,
    cos: FloatArray,
    sin: FloatArray,
    nTok: number,
    nHeads: number,
    headDim: number,
    sign: number,
  ): void;

  /** out[t] = w[ids[t]] for t < n; w: (vocab, dim), out: (n, dim). */
  embedding(w: FloatArray, ids: Int32Array, out: FloatArray, n: number, dim: number): void;
  /** dw[ids[t]] += dy[t] (scatter-add, rows may repeat). */
  embeddingBackward(dy: FloatArray, ids: Int32Array, dw: FloatArray, n: number, dim: number): void;

  /**
   * One AdamW step in place, exactly PyTorch's single-tensor AdamW:
   *   p ·= (1 − lr·wd); m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
   *   p −= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps),   bc1 = 1 − β1^t, bc2 = 1 − β2^t (given).
   */
  adamw(
    p: FloatArray,
    g: FloatArray,
    m: FloatArray,
    v: FloatArray,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    bc1: number,
    bc2: number,
  ): void;

  /**
   * out = a + b · s elementwise (n elements; a null: out = b · s): the product formed in double and rounded to
   * out's precision, then the sum rounded, as add(a, scale(b, s)) stores them. out may alias a or b.
   */
  addScaled(a: FloatArray | null, b: FloatArray, out: FloatArray, n: number, s: number): void;

  /**
   * Inverted dropout of n elements split into `rows` equal consecutive blocks (the rows of a (B, T, …) tensor),
   * block b drawn from the xoshiro128** state states[4b..4b+3] (advanced in place, src/util/xoshiro.ts): one
   * 32-bit draw u per element; kept (keep 1, out = x · scale) when u ≥ threshold, else keep 0 and out 0. The
   * product is formed in double and rounded once (scale = 1/(1 − p) is a double).
   */
  dropout(
    x: FloatArray,
    out: FloatArray,
    keep: Uint8Array,
    n: number,
    states: Uint32Array,
    rows: number,
    threshold: number,
    scale: number,
  ): void;
  /** dx = keep ? dy · scale : 0 (n elements; the product in double, rounded once). */
  dropoutBackward(dy: FloatArray, keep: Uint8Array, dx: FloatArray, n: number, scale: number): void;

  // Compressed-weight kernels (contract: `CompressedKernels` below). Optional here: the native backend
  // has them, while their TypeScript twins live in src/kernels/compressed.ts — call
  // `compressedKernels(k)` from there to get the native ones when present, else the twins.
  int4Linear?: CompressedKernels['int4Linear'];
  int4Dequantize?: CompressedKernels['int4Dequantize'];
  sparseLinear?: CompressedKernels['sparseLinear'];
}

/**
 * Inference kernels on compressed weights (native/int4.cc, native/sparse.cc; twins and the packers in
 * src/kernels/compressed.ts, which also documents the formats). Weights are a logical (outF, inF) matrix
 * W; every product is y (M, outF) = x (M, inF) · Wᵀ, y OVERWRITTEN, x and y must not overlap. Arrays
 * are used from index 0 (pass subarrays).
 */
export interface CompressedKernels {
  /**
   * INT4 group-quantised W in the GPTQ / AutoGPTQ layout: qweight (inF/8, outF) packs input rows
   * 8p..8p+7 of each output column, row 8p+k in bits 4k..4k+3; scales, zeros (nGroups, outF) with the
   * true zero point; gIdx (inF) the group of each input row. W[o, j] = (q − zeros[g, o]) · scales[g, o],
   * g = gIdx[j]. inF must be a multiple of 8. groupSize is a hint: the fast path applies when
   * gIdx[j] = ⌊j / groupSize⌋ (no act-order) and groupSize is a multiple of 8; any other gIdx is still exact.
   * compute: 'exact' (default) or 'int8-act', an approximation that rounds x to int8 per block of 32 and uses
   * integer dot products (src/kernels/int4-int8act.ts; applies at any M with contiguous groups of a multiple of
   * 32, every other call is exact; each row of y depends only on its row of x).
   */
  int4Linear(
    x: FloatArray,
    M: number,
    inF: number,
    outF: number,
    qweight: Int32Array,
    scales: Float32Array,
    zeros: Float32Array,
    gIdx: Int32Array,
    groupSize: number,
    y: FloatArray,
    compute?: 'exact' | 'int8-act',
  ): void;
  /** out (outF, inF) = W, each element exactly fround(fround(q − z) · s) (zero stays exactly zero when q = z). */
  int4Dequantize(
    qweight: Int32Array,
    scales: Float32Array,
    zeros: Float32Array,
    gIdx: Int32Array,
    inF: number,
    outF: number,
    out: FloatArray,
  ): void;
  /**
   * Unstructured-sparse W as bitmask rows: mask (outF, ⌈inF/32⌉) Uint32 — bit b of word w of row o set
   * ⇔ W[o, 32w + b] ≠ 0 —, values the non-zeros row after row in column order, rowPtr (outF + 1) the
   * start of each row in values (float32, or bfloat16 bit patterns in a Uint16Array, widened exactly). A row
   * whose mask (bits below inF) disagrees with rowPtr is a RangeError.
   */
  sparseLinear(
    x: FloatArray,
    M: number,
    inF: number,
    outF: number,
    rowPtr: Int32Array,
    mask: Uint32Array,
    values: Float32Array | Uint16Array,
    y: FloatArray,
  ): void;
}

/** GPTQ's linear algebra (native/linalg.cc, native/gptq.cc); TypeScript twins in src/kernels/linalg.ts and gptq.ts. */
export interface LinalgKernels {
  /**
   * a (n, n) row-major symmetric positive definite → overwritten with the upper factor U of a⁻¹ (Uᵀ U = a⁻¹,
   * strictly lower part 0), float64. A matrix that is not positive definite is a RangeError naming the column
   * where its trailing block that is not starts.
   */
  choleskyInverseUpper(a: Float64Array, n: number): void;
  /** c (n, n) float32: its upper triangle (diagonal included) += alpha · xᵀ x for x (k, n); the strictly lower part is untouched. */
  gramUpper(x: Float32Array, k: number, n: number, alpha: number, c: Float32Array): void;
  /** h (n, n) float64: h[i, j] = h[j, i] = (2 · sum[i, j]) / count for j ≥ i, from sum (n, n) float32's upper triangle. */
  hessianFromGram(sum: Float32Array, n: number, count: number, h: Float64Array): void;
  /** w (out, in) float32 = scales[g, r] · (q[r, j] − zeros[g, r]), g = gIdx[j]; in float64, rounded once. */
  gptqDequantize(
    q: Uint8Array,
    scales: Float32Array,
    zeros: Float32Array,
    gIdx: Int32Array,
    out: number,
    inF: number,
    w: Float32Array,
  ): void;
  /**
   * GPTQ's column loop in float64 (see src/kernels/gptq.ts referenceGptqColumns, whose operations it repeats
   * exactly): w (out, in) in quantisation order (overwritten), u (in, in) the inverse-Hessian factor in that order,
   * mask (out, in) or null (keepZeros) → codes (out, in), scales and zeros (⌈in / groupSize⌉, out).
   */
  gptqColumns(
    w: Float64Array,
    u: Float64Array,
    mask: Uint8Array | null,
    out: number,
    inF: number,
    bits: number,
    groupSize: number,
    blockSize: number,
    codes: Uint8Array,
    scales: Float32Array,
    zeros: Float32Array,
  ): void;
}

/** SIMD level of the native compressed kernels (run-time CPU detection; no -march=native build). */
export type SimdLevel = 'avx512' | 'avx2' | 'scalar';

/** Extra controls only the native backend has. */
export interface NativeInfo {
  /** OpenBLAS core name as it reports itself (e.g. "SkylakeX"). */
  coreName(): string;
  /** OpenBLAS build configuration string. */
  config(): string;
  getThreads(): number;
  setThreads(n: number): void;
  /**
   * The SIMD level the compressed kernels use; with `cap`, first limits it to at most that level (tests
   * run every version on one machine). LONAS_SIMD=avx2|scalar at load time sets the same cap.
   */
  compressedIsa(cap?: SimdLevel): SimdLevel;
  /**
   * Threads of the native kernels' own pool (native/pool.h: matrix-vector paths, element-wise, norms,
   * softmax, cross-entropy, attention, AdamW), any n in [1, 1024], without changing OpenBLAS's (setThreads
   * sets both); returns the setting after applying `n`. Default: LONAS_THREADS, else the machine's cores.
   */
  compressedThreads(n?: number): number;
  /**
   * The path of gemmBf16's compute 'bf16' (native/bf16-gemm.h): the best this CPU and kernel allow ('amx' >
   * 'avx512bf16' > 'generic'); with `path`, forces that one (tests, benchmarks) — a RangeError if unusable.
   */
  bf16GemmPath(path?: Bf16GemmPath): Bf16GemmPath;
  /**
   * From now on large freed blocks stay in the process heap for reuse instead of returning to the kernel (glibc
   * mallopt; native/lonas.cc): for work whose big buffers recur (layer-wise compression). false: not supported.
   */
  retainFreedMemory(): boolean;
}

/** Paths of the native bf16 GEMM. */
export type Bf16GemmPath = 'amx' | 'avx512bf16' | 'generic';

/** What the native adapter hands out: every kernel (compressed ones included) and the controls. */
export type NativeKernels = Kernels & CompressedKernels & LinalgKernels & NativeInfo;
