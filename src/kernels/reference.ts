/**
 * Reference kernels: plain TypeScript, generic over Float32Array | Float64Array.
 *
 * This is the oracle the native kernels are tested against and the fallback when the addon is not
 * built (and the only backend for float64). Every value is computed in JS doubles and rounded only
 * when stored into the given array; row reductions are plain sequential double sums. Where the
 * native code keeps an intermediate in its array (softmax's exp values, AdamW's m and v, rmsnorm's
 * rstd) the reference stores and re-reads it too, so float32 results round the same way.
 *
 * Index errors (gemm extents, targets, token ids, positions) throw RangeErrors like the native
 * kernels; the other size arguments are trusted.
 */
import type { FloatArray, Kernels } from './api.ts';
import { need } from './checks.ts';
import { gemm, gemmBatched, gemmBf16 } from './reference-gemm.ts';
import { addScaled, dropout, dropoutBackward } from './reference-train.ts';
export { bf16Value } from './bf16-bits.ts';

type IndexArray = Int32Array;

// ---------------------------------------------------------------------------------------------
// Argument checks (need: ./checks.ts)

function checkTargets(kernel: string, targets: IndexArray, rows: number, vocab: number, ignoreIndex: number): void {
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t !== ignoreIndex && (t < 0 || t >= vocab)) {
      throw new RangeError(`${kernel}: targets[${r}] = ${t} is outside [0, ${vocab}) and is not ignoreIndex (${ignoreIndex})`);
    }
  }
}

function checkIds(kernel: string, ids: IndexArray, n: number, tableRows: number, table: string): void {
  for (let t = 0; t < n; t++) {
    const id = ids[t];
    if (id < 0 || id >= tableRows) {
      throw new RangeError(`${kernel}: ids[${t}] = ${id} is outside [0, ${tableRows}) (rows of '${table}')`);
    }
  }
}

/** Columns row r keeps under the causal mask: q = r mod causalRows keeps j ≤ q + causalShift. */
function causalKeep(r: number, cols: number, causalRows: number, causalShift: number): number {
  if (causalRows === 0) return cols;
  return Math.min(cols, Math.max(0, (r % causalRows) + causalShift + 1));
}

// ---------------------------------------------------------------------------------------------
// Softmax

/**
 * y = softmax(scale · x) per row; x, y: (rows, cols), may alias. Row r keeps its first
 * `causalKeep(r)` columns; masked columns get exactly 0 (a fully masked row — only possible when
 * causalShift < 0 — is all zeros).
 */
function softmax(x: FloatArray, y: FloatArray, rows: number, cols: number, scale: number, causalRows: number, causalShift: number): void {
  need('softmax', 'x', x, rows * cols);
  need('softmax', 'y', y, rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const keep = causalKeep(r, cols, causalRows, causalShift);
    let max = -Infinity;
    for (let j = 0; j < keep; j++) max = Math.max(max, scale * x[base + j]);
    // y[j] = exp(t_j − max), stored (so float32 rounds it like the native kernel), then · 1/Σ
    let sum = 0;
    for (let j = 0; j < keep; j++) {
      const e = Math.exp(scale * x[base + j] - max);
      y[base + j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let j = 0; j < keep; j++) y[base + j] *= inv;
    for (let j = keep; j < cols; j++) y[base + j] = 0;
  }
}

/** dx = scale · y ⊙ (dy − Σ_j dy·y) per row; all (rows, cols). */
/**
 * One query per row against a KV cache: out_h = Σ_j softmax(scale · q_h·k_j) v_j over keys [keyStart[b], Tk),
 * in double (rounded when stored in out). Layouts in api.ts.
 */
function attentionDecode(
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
): void {
  if (Hkv === 0 || Hq % Hkv !== 0) throw new RangeError(`attentionDecode: Hq = ${Hq} must be a positive multiple of Hkv = ${Hkv}`);
  if (Tk === 0) throw new RangeError('attentionDecode: Tk must be ≥ 1 (a query needs a key)');
  need('attentionDecode', 'q', q, B * Hq * D);
  need('attentionDecode', 'out', out, B * Hq * D);
  if (B > 0) {
    need('attentionDecode', 'k', k, (B - 1) * kvBatchStride + Tk * Hkv * D);
    need('attentionDecode', 'v', v, (B - 1) * kvBatchStride + Tk * Hkv * D);
  }
  const group = Hq / Hkv;
  const p = new Float64Array(Tk);
  for (let b = 0; b < B; b++) {
    const start = keyStart ? keyStart[b] : 0;
    if (!(start >= 0 && start < Tk)) throw new RangeError(`attentionDecode: keyStart[${b}] = ${start} leaves row ${b} no key of ${Tk}`);
    for (let h = 0; h < Hq; h++) {
      const qo = (b * Hq + h) * D,
        kv = b * kvBatchStride + Math.floor(h / group) * D;
      let max = -Infinity;
      for (let j = start; j < Tk; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[qo + d] * k[kv + j * Hkv * D + d];
        p[j] = scale * s;
        max = Math.max(max, p[j]);
      }
      let sum = 0;
      for (let j = start; j < Tk; j++) sum += p[j] = Math.exp(p[j] - max);
      for (let d = 0; d < D; d++) {
        let o = 0;
        for (let j = start; j < Tk; j++) o += p[j] * v[kv + j * Hkv * D + d];
        out[qo + d] = o / sum;
      }
    }
  }
}

function softmaxBackward(y: FloatArray, dy: FloatArray, dx: FloatArray, rows: number, cols: number, scale: number): void {
  need('softmaxBackward', 'y', y, rows * cols);
  need('softmaxBackward', 'dy', dy, rows * cols);
  need('softmaxBackward', 'dx', dx, rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += dy[base + j] * y[base + j];
    for (let j = 0; j < cols; j++) dx[base + j] = (dy[base + j] - dot) * y[base + j] * scale;
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy

/**
 * logits: (rows, vocab); targets, lse: (rows). lse[r] = max + log Σ exp(logits[r] − max) for every row;
 * returns Σ over rows with targets[r] ≠ ignoreIndex of lse[r] − logits[r, targets[r]].
 */
function crossEntropy(logits: FloatArray, targets: IndexArray, lse: FloatArray, rows: number, vocab: number, ignoreIndex: number): number {
  need('crossEntropy', 'logits', logits, rows * vocab);
  need('crossEntropy', 'targets', targets, rows);
  need('crossEntropy', 'lse', lse, rows);
  checkTargets('crossEntropy', targets, rows, vocab, ignoreIndex);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const base = r * vocab;
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) max = Math.max(max, logits[base + j]);
    let sum = 0;
    for (let j = 0; j < vocab; j++) sum += Math.exp(logits[base + j] - max);
    const l = max + Math.log(sum);
    lse[r] = l;
    const t = targets[r];
    if (t !== ignoreIndex) total += l - logits[base + t];
  }
  return total;
}

/** dlogits[r] = gradScale · (exp(logits[r] − lse[r]) − onehot(t)); ignored rows are zero. May alias logits. */
function crossEntropyBackward(
  logits: FloatArray,
  targets: IndexArray,
  lse: FloatArray,
  rows: number,
  vocab: number,
  ignoreIndex: number,
  gradScale: number,
  dlogits: FloatArray,
): void {
  need('crossEntropyBackward', 'logits', logits, rows * vocab);
  need('crossEntropyBackward', 'targets', targets, rows);
  need('crossEntropyBackward', 'lse', lse, rows);
  need('crossEntropyBackward', 'dlogits', dlogits, rows * vocab);
  checkTargets('crossEntropyBackward', targets, rows, vocab, ignoreIndex);
  for (let r = 0; r < rows; r++) {
    const base = r * vocab;
    const t = targets[r];
    if (t === ignoreIndex) {
      dlogits.fill(0, base, base + vocab);
      continue;
    }
    const l = lse[r];
    for (let j = 0; j < vocab; j++) {
      dlogits[base + j] = gradScale * (Math.exp(logits[base + j] - l) - (j === t ? 1 : 0));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

/** x, y: (rows, dim); w: (dim); rstd: (rows). rstd[r] = 1/sqrt(mean(x[r]²) + eps); y = x · rstd · w. */
function rmsnorm(x: FloatArray, w: FloatArray, y: FloatArray, rstd: FloatArray, rows: number, dim: number, eps: number): void {
  need('rmsnorm', 'x', x, rows * dim);
  need('rmsnorm', 'w', w, dim);
  need('rmsnorm', 'y', y, rows * dim);
  need('rmsnorm', 'rstd', rstd, rows);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let sumSq = 0;
    for (let i = 0; i < dim; i++) sumSq += x[base + i] * x[base + i];
    rstd[r] = 1 / Math.sqrt(sumSq / dim + eps);
    const rs = rstd[r]; // the saved (possibly float32-rounded) value, as the backward will see it
    for (let i = 0; i < dim; i++) y[base + i] = x[base + i] * rs * w[i];
  }
}

/**
 * Per row, with g = w ⊙ dy and rs = rstd[r]:
 *   dx = rs · (g − x · rs² · (Σ_j g_j x_j) / dim)     (rows, dim), overwritten unless null
 *   dw = Σ_rows dy ⊙ x · rs                           (dim), overwritten unless null
 */
function rmsnormBackward(
  x: FloatArray,
  w: FloatArray,
  rstd: FloatArray,
  dy: FloatArray,
  dx: FloatArray | null,
  dw: FloatArray | null,
  rows: number,
  dim: number,
): void {
  need('rmsnormBackward', 'x', x, rows * dim);
  need('rmsnormBackward', 'w', w, dim);
  need('rmsnormBackward', 'rstd', rstd, rows);
  need('rmsnormBackward', 'dy', dy, rows * dim);
  if (dx) need('rmsnormBackward', 'dx', dx, rows * dim);
  if (dw) need('rmsnormBackward', 'dw', dw, dim);
  const dwSum = dw ? new Float64Array(dim) : null;
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    const rs = rstd[r];
    if (dx) {
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += w[j] * dy[base + j] * x[base + j];
      const c = (rs * rs * dot) / dim;
      for (let i = 0; i < dim; i++) dx[base + i] = rs * (w[i] * dy[base + i] - x[base + i] * c);
    }
    if (dwSum) {
      for (let i = 0; i < dim; i++) dwSum[i] += dy[base + i] * x[base + i] * rs;
    }
  }
  if (dw && dwSum) for (let i = 0; i < dim; i++) dw[i] = dwSum[i];
}

// ---------------------------------------------------------------------------------------------
// Activations

/** y = x · sigmoid(x) = x / (1 + exp(−x)), n elements. */
function silu(x: FloatArray, y: FloatArray, n: number): void {
  need('silu', 'x', x, n);
  need('silu', 'y', y, n);
  for (let i = 0; i < n; i++) y[i] = x[i] / (1 + Math.exp(-x[i]));
}

/** dx = dy · s · (1 + x · (1 − s)), s = sigmoid(x). */
function siluBackward(x: FloatArray, dy: FloatArray, dx: FloatArray, n: number): void {
  need('siluBackward', 'x', x, n);
  need('siluBackward', 'dy', dy, n);
  need('siluBackward', 'dx', dx, n);
  for (let i = 0; i < n; i++) {
    const xi = x[i];
    const s = 1 / (1 + Math.exp(-xi));
    dx[i] = dy[i] * s * (1 + xi * (1 - s));
  }
}

/** out = silu(gate) · up, n elements. */
function swiglu(gate: FloatArray, up: FloatArray, out: FloatArray, n: number): void {
  need('swiglu', 'gate', gate, n);
  need('swiglu', 'up', up, n);
  need('swiglu', 'out', out, n);
  for (let i = 0; i < n; i++) out[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
}

/** dgate = dout · up · s · (1 + gate · (1 − s)); dup = dout · silu(gate). Either may be null. */
function swigluBackward(
  gate: FloatArray,
  up: FloatArray,
  dout: FloatArray,
  dgate: FloatArray | null,
  dup: FloatArray | null,
  n: number,
): void {
  need('swigluBackward', 'gate', gate, n);
  need('swigluBackward', 'up', up, n);
  need('swigluBackward', 'dout', dout, n);
  if (dgate) need('swigluBackward', 'dgate', dgate, n);
  if (dup) need('swigluBackward', 'dup', dup, n);
  for (let i = 0; i < n; i++) {
    const g = gate[i],
      u = up[i],
      d = dout[i];
    const e = Math.exp(-g);
    const s = 1 / (1 + e);
    const gradGate = d * u * s * (1 + g * (1 - s));
    const gradUp = d * (g / (1 + e));
    if (dgate) dgate[i] = gradGate;
    if (dup) dup[i] = gradUp;
  }
}

// ---------------------------------------------------------------------------------------------
// Rotary embedding

/**
 * x, out: (nTok, nHeads, headDim), may alias; positions: (nTok); cos, sin: (maxPos, half).
 * For i < half, c = cos[p, i], s = sign · sin[p, i]:
 *   out[i] = x[i]·c − x[i+half]·s,   out[i+half] = x[i+half]·c + x[i]·s.
 */
function rope(
  x: FloatArray,
  out: FloatArray,
  positions: IndexArray,
  cos: FloatArray,
  sin: FloatArray,
  nTok: number,
  nHeads: number,
  headDim: number,
  sign: number,
): void {
  if (headDim % 2 !== 0) throw new RangeError(`rope: headDim = ${headDim} must be even`);
  const half = headDim / 2;
  need('rope', 'x', x, nTok * nHeads * headDim);
  need('rope', 'out', out, nTok * nHeads * headDim);
  need('rope', 'positions', positions, nTok);
  const tableLength = Math.min(cos.length, sin.length);
  for (let t = 0; t < nTok; t++) {
    const p = positions[t];
    if (p < 0 || (p + 1) * half > tableLength) {
      throw new RangeError(
        `rope: positions[${t}] = ${p} is outside the cos/sin tables (${half ? Math.floor(tableLength / half) : 0} positions of ${half})`,
      );
    }
  }
  for (let t = 0; t < nTok; t++) {
    const table = positions[t] * half;
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const a = x[base + i],
          b = x[base + i + half];
        const c = cos[table + i],
          s = sign * sin[table + i];
        out[base + i] = a * c - b * s;
        out[base + i + half] = b * c + a * s;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Embedding

/** out[t] = w[ids[t]]; w: (vocab, dim), out: (n, dim). */
function embedding(w: FloatArray, ids: IndexArray, out: FloatArray, n: number, dim: number): void {
  if (dim === 0) return;
  need('embedding', 'ids', ids, n);
  need('embedding', 'out', out, n * dim);
  checkIds('embedding', ids, n, Math.floor(w.length / dim), 'w');
  for (let t = 0; t < n; t++) {
    const src = ids[t] * dim;
    for (let i = 0; i < dim; i++) out[t * dim + i] = w[src + i];
  }
}

/** dw[ids[t]] += dy[t] (scatter-add, ids may repeat); dy: (n, dim), dw: (vocab, dim). */
function embeddingBackward(dy: FloatArray, ids: IndexArray, dw: FloatArray, n: number, dim: number): void {
  if (dim === 0) return;
  need('embeddingBackward', 'dy', dy, n * dim);
  need('embeddingBackward', 'ids', ids, n);
  checkIds('embeddingBackward', ids, n, Math.floor(dw.length / dim), 'dw');
  for (let t = 0; t < n; t++) {
    const dst = ids[t] * dim;
    for (let i = 0; i < dim; i++) dw[dst + i] += dy[t * dim + i];
  }
}

// ---------------------------------------------------------------------------------------------
// AdamW

/**
 * One PyTorch single-tensor AdamW step, in place on p, m, v (n elements):
 *   p ·= (1 − lr·wd); m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
 *   p −= (lr/bc1) · (m / (sqrt(v)/sqrt(bc2) + eps)).
 */
function adamw(
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
): void {
  need('adamw', 'p', p, n);
  need('adamw', 'g', g, n);
  need('adamw', 'm', m, n);
  need('adamw', 'v', v, n);
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const pi = p[i] * decay;
    m[i] = beta1 * m[i] + (1 - beta1) * gi;
    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
    const mi = m[i],
      vi = v[i]; // the stored moments, as the native kernel uses them
    p[i] = pi - stepSize * (mi / (Math.sqrt(vi) / bc2Sqrt + eps));
  }
}

export const referenceKernels: Kernels = {
  name: 'reference',
  gemm,
  gemmBatched,
  gemmBf16,
  attentionDecode,
  softmax,
  softmaxBackward,
  crossEntropy,
  crossEntropyBackward,
  rmsnorm,
  rmsnormBackward,
  silu,
  siluBackward,
  swiglu,
  swigluBackward,
  rope,
  embedding,
  embeddingBackward,
  adamw,
  dropout,
  addScaled,
  dropoutBackward,
};
