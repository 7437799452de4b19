/**
 * TypeScript twin of the INT4 compute mode "int8-act" (native/int4-q8.cc for M ≤ 8 rows, int4-q8-gemm.cc
 * above, which compute the same per row) — an APPROXIMATION of the exact
 * product: x is rounded to int8 per block of 32 inputs with a float scale (what llama.cpp does for Q4 × Q8),
 * the products with the 4-bit codes are exact integers, and the float group scales and zeros are applied after.
 *
 * Per row of x, block b (inputs 32b .. 32b + 31, inside one group g):
 *   d_b = amax_b / 127,  xq_j = rint(x_j · (1/d_b)) ∈ [−127, 127]  (0 when amax_b = 0; a non-finite x makes d_b NaN)
 *   A_b[o] = Σ_{j∈b} xq_j · q_j[o],   S_b = Σ_{j∈b} xq_j,   SD_g = Σ_{b∈g} d_b · S_b
 *   y[o] = Σ_g s_g[o] · (Σ_{b∈g} d_b · A_b[o] − z_g[o] · SD_g)
 * with the native kernel's float32 roundings (fused multiply-adds emulated in float64, so the twin may differ
 * from the native kernel by an ulp of a partial sum). It applies only when `int8ActApplies`; int4Linear runs
 * every other call exactly, in both backends.
 */
import type { FloatArray } from './api.ts';

export const INT8_ACT_BLOCK = 32;

/** Whether int8-act applies (any M): gIdx[j] = ⌊j / groupSize⌋ and groupSize a multiple of 32. */
export function int8ActApplies(inF: number, gIdx: Int32Array, groupSize: number): boolean {
  if (groupSize % INT8_ACT_BLOCK !== 0) return false;
  for (let j = 0; j < inF; j++) if (gIdx[j] !== Math.floor(j / groupSize)) return false;
  return true;
}

const f = Math.fround;

/** rint: round half to even, as the native cvtps2dq / nearbyint. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** x (inF) of one row quantised: xq (inF) int8 values, d (blocks) scales, sd (groups) Σ_b d_b·S_b. */
function quantizeRow(x: FloatArray, off: number, inF: number, groupSize: number): { xq: Int8Array; d: Float32Array; sd: Float32Array } {
  const blocks = Math.ceil(inF / INT8_ACT_BLOCK),
    perGroup = groupSize / INT8_ACT_BLOCK;
  const xq = new Int8Array(inF),
    d = new Float32Array(blocks),
    sd = new Float32Array(Math.ceil(blocks / perGroup));
  let groupSum = 0;
  for (let b = 0; b < blocks; b++) {
    const j0 = b * INT8_ACT_BLOCK,
      j1 = Math.min(inF, j0 + INT8_ACT_BLOCK);
    let amax = 0,
      finite = true;
    for (let j = j0; j < j1; j++) {
      const v = x[off + j];
      finite &&= Number.isFinite(v);
      amax = Math.max(amax, Math.abs(f(v)));
    }
    const db = finite ? f(amax / 127) : NaN,
      id = finite && amax > 0 ? f(1 / db) : 0;
    let s = 0;
    for (let j = j0; j < j1; j++) {
      const q = Math.max(-127, Math.min(127, roundHalfEven(f(f(x[off + j]) * id)))) || 0;
      xq[j] = q;
      s += q;
    }
    d[b] = db;
    groupSum += db * s;
    if ((b + 1) % perGroup === 0 || b + 1 === blocks) {
      sd[Math.floor(b / perGroup)] = groupSum;
      groupSum = 0;
    }
  }
  return { xq, d, sd };
}

/** y (M, outF) = x (M, inF) · Wᵀ in the int8-act mode; the caller has checked the arguments and int8ActApplies. */
export function int4LinearInt8Act(
  x: FloatArray,
  M: number,
  inF: number,
  outF: number,
  qweight: Int32Array,
  scales: Float32Array,
  zeros: Float32Array,
  groupSize: number,
  y: FloatArray,
): void {
  const rowsPerGroup = groupSize / 8,
    packedRows = inF / 8,
    rowsPerBlock = INT8_ACT_BLOCK / 8;
  for (let m = 0; m < M; m++) {
    const { xq, d, sd } = quantizeRow(x, m * inF, inF, groupSize);
    for (let o = 0; o < outF; o++) {
      let acc = 0;
      for (let p0 = 0, g = 0; p0 < packedRows; p0 += rowsPerGroup, g++) {
        const p1 = Math.min(packedRows, p0 + rowsPerGroup);
        let G = 0;
        for (let b0 = p0; b0 < p1; b0 += rowsPerBlock) {
          let A = 0;
          for (let p = b0; p < Math.min(p1, b0 + rowsPerBlock); p++) {
            const word = qweight[p * outF + o];
            for (let k = 0; k < 8; k++) A += ((word >>> (4 * k)) & 15) * xq[8 * p + k];
          }
          G = f(A * d[b0 / rowsPerBlock] + G);
        }
        const t = f(G - zeros[g * outF + o] * sd[g]);
        acc = f(scales[g * outF + o] * t + acc);
      }
      y[m * outF + o] = acc;
    }
  }
}
