/**
 * Key/value cache for incremental decoding. Per layer, k and v are (B, maxLen, Hkv, D) float32 buffers;
 * `length` positions are filled. Rows can be reordered (beam search keeps the cache of the surviving beams).
 */

export class KvCache {
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  length = 0;

  /** kvHeads[l]: key/value heads of layer l as currently active; positions bounded by maxPositions. */
  constructor(
    readonly kvHeads: readonly number[],
    readonly headDim: number,
    readonly batch: number,
    readonly maxLen: number,
    maxPositions: number,
  ) {
    if (maxLen > maxPositions) {
      throw new Error(`KV cache of ${maxLen} positions exceeds the model's ${maxPositions} (max_position_embeddings)`);
    }
    const sizes = kvHeads.map((h) => batch * maxLen * h * headDim);
    this.k = sizes.map((n) => new Float32Array(n));
    this.v = sizes.map((n) => new Float32Array(n));
  }

  /** Elements between batch rows in layer `layer`'s buffers. */
  rowStride(layer: number): number {
    return this.maxLen * this.kvHeads[layer] * this.headDim;
  }

  /** Copies new keys/values (B, T, Hkv, D) into positions [length, length + T) of layer `layer`. */
  append(layer: number, k: Float32Array, v: Float32Array, T: number): void {
    if (this.length + T > this.maxLen) throw new Error(`KV cache full: ${this.length} + ${T} > ${this.maxLen} positions`);
    const row = this.rowStride(layer);
    const chunk = T * this.kvHeads[layer] * this.headDim;
    const at = this.length * this.kvHeads[layer] * this.headDim;
    for (let b = 0; b < this.batch; b++) {
      this.k[layer].set(k.subarray(b * chunk, (b + 1) * chunk), b * row + at);
      this.v[layer].set(v.subarray(b * chunk, (b + 1) * chunk), b * row + at);
    }
  }

  /** New row i = old row `rows[i]` (for every layer). */
  reorder(rows: readonly number[]): void {
    if (rows.length !== this.batch) throw new Error(`KV cache reorder needs ${this.batch} rows, got ${rows.length}`);
    if (rows.every((r, i) => r === i)) return;
    for (let l = 0; l < this.k.length; l++) {
      const row = this.rowStride(l);
      const used = this.length * this.kvHeads[l] * this.headDim;
      for (const buf of [this.k[l], this.v[l]]) {
        const old = buf.slice();
        rows.forEach((src, dst) => buf.set(old.subarray(src * row, src * row + used), dst * row));
      }
    }
  }
}
