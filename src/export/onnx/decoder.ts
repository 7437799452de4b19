/**
 * The Llama-family decoder as an ONNX graph with the inputs and outputs transformers.js and Optimum use:
 *   input_ids (B, S) int64, attention_mask (B, T) int64, position_ids (B, S) int64,
 *   past_key_values.N.key / .value (B, Hkv_N, P, hd) float32      (T = P + S)
 *   → logits (B, S, V) float32, present.N.key / .value (B, Hkv_N, T, hd) float32.
 * Every layer has its own sizes (MLP width, query and key/value heads), so extracted sub-networks export
 * as they are. Plain ONNX ops throughout (exact float32 arithmetic, no fused kernels): RMSNorm as
 * x · 1/√(mean(x²)+ε) · γ; RoPE (rotate-half) from position_ids with lonas's inverse frequencies (linear and
 * llama3 scaling included); GQA attention without repeating K/V: queries are grouped (B, Hkv, g, S, hd)
 * against keys (B, Hkv, 1, hd, T); the causal + padding mask sets excluded scores to float32's lowest
 * value before the softmax; SwiGLU MLP; tied or untied head. With `int4`, GPTQ projections become
 * com.microsoft MatMulNBits (int4.ts); otherwise they are the checkpoint's dequantised float weights.
 */
import { inverseFrequencies } from '../../nn/rope.ts';
import { f32ToF16 } from '../../io/safetensors.ts';
import { DType, GraphBuilder } from './graph.ts';
import { matMulNBits } from './int4.ts';
import { MS_DOMAIN } from './proto.ts';
import type { ModelSource } from './source.ts';

export interface DecoderOptions {
  /** storage type of the float weights; f16 weights are cast to float32 in the graph (computation stays float32) */
  dtype: 'f32' | 'f16';
  /** GPTQ projections (and a GPTQ head) as MatMulNBits instead of dequantised float weights */
  int4: boolean;
}

const LOWEST_F32 = -3.4028234663852886e38;

/** Transposes a row-major (rows, cols) matrix into (cols, rows). */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

class DecoderGraph {
  readonly g = new GraphBuilder();

  constructor(
    private readonly src: ModelSource,
    private readonly o: DecoderOptions,
  ) {}

  /** A float weight initializer (f16 storage: stored as FLOAT16 and cast to float32). */
  weight(name: string, data: Float32Array, dims: number[]): string {
    if (this.o.dtype === 'f32') return this.g.initializer(name, DType.FLOAT, dims, data);
    const half = new Uint16Array(data.length);
    f32ToF16(data, half);
    return this.g.op1('Cast', [this.g.initializer(name, DType.FLOAT16, dims, half)], { to: DType.FLOAT });
  }

  /** y = x · Wᵀ (+ b) for the module `module` with (out, in) weights; x (…, in) → (…, out). */
  linear(x: string, module: string, out: number, inF: number): string {
    const qw = this.o.int4 ? this.src.quantized(module) : undefined;
    let y: string;
    if (qw) {
      const m = matMulNBits(this.g, module, qw);
      const a = m.inputOrder ? this.g.op1('Gather', [x, m.inputOrder], { axis: -1 }) : x;
      y = this.g.op1('MatMulNBits', [a, m.b, m.scales, m.zeroPoints], m.attrs, { domain: MS_DOMAIN });
    } else {
      const w = this.src.tensor(`${module}.weight`);
      if (w.shape[0] !== out || w.shape[1] !== inF)
        throw new Error(`${this.src.dir}: '${module}.weight' is [${w.shape}], the config needs [${out}, ${inF}]`);
      y = this.g.op1('MatMul', [x, this.weight(`${module}.weight_T`, transpose(w.data, out, inF), [inF, out])]);
    }
    if (this.src.has(`${module}.bias`))
      y = this.g.op1('Add', [y, this.g.initializer(`${module}.bias`, DType.FLOAT, [out], this.src.tensor(`${module}.bias`).data)]);
    return y;
  }

  rmsNorm(x: string, weightName: string): string {
    const g = this.g,
      w = this.src.tensor(weightName);
    const meanSquare = g.op1('ReduceMean', [g.op1('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    const inv = g.op1('Reciprocal', [g.op1('Sqrt', [g.op1('Add', [meanSquare, g.float([this.src.config.rmsNormEps])])])]);
    return g.op1('Mul', [g.op1('Mul', [x, inv]), g.initializer(weightName, DType.FLOAT, [w.data.length], w.data)]);
  }

  /** cos, sin (B, S, 1, hd) of position_ids · inv_freq, halves repeated (rotate-half layout). */
  ropeTables(positionIds: string): { cos: string; sin: string } {
    const g = this.g,
      c = this.src.config;
    const inv = inverseFrequencies({ headDim: c.headDim, maxPositions: c.maxPositions, theta: c.ropeTheta, scaling: c.ropeScaling });
    const pos = g.op1('Unsqueeze', [g.op1('Cast', [positionIds], { to: DType.FLOAT }), g.int64([2])]); // (B, S, 1)
    const freqs = g.op1('Mul', [pos, g.float(inv, [inv.length])]); // (B, S, hd/2)
    const angles = g.op1('Unsqueeze', [g.op1('Concat', [freqs, freqs], { axis: -1 }), g.int64([2])]); // (B, S, 1, hd)
    return { cos: g.op1('Cos', [angles]), sin: g.op1('Sin', [angles]) };
  }

  /** x·cos + rotate_half(x)·sin for x (B, S, H, hd), rotate_half(x) = [−x₂, x₁]. */
  rope(x: string, t: { cos: string; sin: string }): string {
    const g = this.g,
      half = this.src.config.headDim / 2;
    const x1 = g.op1('Slice', [x, g.int64([0]), g.int64([half]), g.int64([-1])]);
    const x2 = g.op1('Slice', [x, g.int64([half]), g.int64([2 * half]), g.int64([-1])]);
    const rotated = g.op1('Concat', [g.op1('Neg', [x2]), x1], { axis: -1 });
    return g.op1('Add', [g.op1('Mul', [x, t.cos]), g.op1('Mul', [rotated, t.sin])]);
  }

  /** Whether query i of row b may attend to key j: j ≤ P + i and attention_mask[b, j] = 1; (B, 1, 1, S, T) bool. */
  attentionAllowed(inputIds: string, attentionMask: string): string {
    const g = this.g;
    const total = g.op1('Gather', [g.op1('Shape', [attentionMask]), g.int64([1], true)]);
    const seq = g.op1('Gather', [g.op1('Shape', [inputIds]), g.int64([1], true)]);
    const one = g.int64([1], true),
      zero = g.int64([0], true);
    const queryPos = g.op1('Range', [g.op1('Sub', [total, seq]), total, one]); // (S) absolute positions P..T-1
    const keyPos = g.op1('Range', [zero, total, one]); // (T)
    const causal = g.op1('LessOrEqual', [g.op1('Unsqueeze', [keyPos, g.int64([0])]), g.op1('Unsqueeze', [queryPos, g.int64([1])])]); // (S, T)
    const keep = g.op1('Unsqueeze', [g.op1('Cast', [attentionMask], { to: DType.BOOL }), g.int64([1, 2, 3])]); // (B, 1, 1, 1, T)
    return g.op1('And', [causal, keep]);
  }

  layer(i: number, h: string, rope: { cos: string; sin: string }, allowed: string): string {
    const g = this.g,
      c = this.src.config,
      sizes = c.layers[i],
      hd = c.headDim,
      D = c.hiddenSize;
    const { numHeads: Hq, numKvHeads: Hkv, intermediateSize: I } = sizes;
    const groups = Hq / Hkv;
    const p = `model.layers.${i}`;
    g.scope = `model/layers.${i}/self_attn`;
    const x = this.rmsNorm(h, `${p}.input_layernorm.weight`);
    const q = this.rope(g.op1('Reshape', [this.linear(x, `${p}.self_attn.q_proj`, Hq * hd, D), g.int64([0, 0, Hq, hd])]), rope);
    const qGrouped = g.op1('Transpose', [g.op1('Reshape', [q, g.int64([0, 0, Hkv, groups, hd])])], { perm: [0, 2, 3, 1, 4] }); // (B, Hkv, g, S, hd)
    const k = this.rope(g.op1('Reshape', [this.linear(x, `${p}.self_attn.k_proj`, Hkv * hd, D), g.int64([0, 0, Hkv, hd])]), rope);
    const v = g.op1('Reshape', [this.linear(x, `${p}.self_attn.v_proj`, Hkv * hd, D), g.int64([0, 0, Hkv, hd])]);
    const past = (kind: string) => g.input(`past_key_values.${i}.${kind}`, DType.FLOAT, ['batch_size', Hkv, 'past_sequence_length', hd]);
    const present = (kind: string, now: string) => {
      const name = `present.${i}.${kind}`;
      g.output(name, DType.FLOAT, ['batch_size', Hkv, 'total_sequence_length', hd]);
      return g.op1('Concat', [past(kind), g.op1('Transpose', [now], { perm: [0, 2, 1, 3] })], { axis: 2 }, { output: name }); // (B, Hkv, T, hd)
    };
    const keys = present('key', k),
      values = present('value', v);
    const keysT = g.op1('Unsqueeze', [g.op1('Transpose', [keys], { perm: [0, 1, 3, 2] }), g.int64([2])]); // (B, Hkv, 1, hd, T)
    const scores = g.op1('Mul', [g.op1('MatMul', [qGrouped, keysT]), g.float([1 / Math.sqrt(hd)])]); // (B, Hkv, g, S, T)
    const probs = g.op1('Softmax', [g.op1('Where', [allowed, scores, g.float([LOWEST_F32])])], { axis: -1 });
    const context = g.op1('MatMul', [probs, g.op1('Unsqueeze', [values, g.int64([2])])]); // (B, Hkv, g, S, hd)
    const merged = g.op1('Reshape', [g.op1('Transpose', [context], { perm: [0, 3, 1, 2, 4] }), g.int64([0, 0, Hq * hd])]);
    const h2 = g.op1('Add', [h, this.linear(merged, `${p}.self_attn.o_proj`, D, Hq * hd)]);
    g.scope = `model/layers.${i}/mlp`;
    const y = this.rmsNorm(h2, `${p}.post_attention_layernorm.weight`);
    const gate = this.linear(y, `${p}.mlp.gate_proj`, I, D);
    const act = g.op1('Mul', [g.op1('Mul', [gate, g.op1('Sigmoid', [gate])]), this.linear(y, `${p}.mlp.up_proj`, I, D)]);
    return g.op1('Add', [h2, this.linear(act, `${p}.mlp.down_proj`, D, I)]);
  }

  /** logits (B, S, V) = x · Wᵀ: a Gemm with transB on (B·S, D), so a tied head shares the embedding table. */
  head(x: string, embedding: string): string {
    const g = this.g,
      c = this.src.config,
      V = c.vocabSize,
      D = c.hiddenSize;
    if (this.o.int4 && this.src.quantized('lm_head')) return this.linear(x, 'lm_head', V, D);
    const w = c.tieWordEmbeddings ? embedding : this.weight('lm_head.weight', this.src.tensor('lm_head.weight').data, [V, D]);
    const flat = g.op1('Gemm', [g.op1('Reshape', [x, g.int64([-1, D])]), w], { transB: 1 });
    const shape = g.op1('Concat', [g.op1('Slice', [g.op1('Shape', [x]), g.int64([0]), g.int64([2])]), g.int64([V])], { axis: 0 });
    return g.op1('Reshape', [flat, shape], {}, { output: 'logits' });
  }

  build(): GraphBuilder {
    const g = this.g,
      c = this.src.config,
      V = c.vocabSize,
      D = c.hiddenSize;
    const inputIds = g.input('input_ids', DType.INT64, ['batch_size', 'sequence_length']);
    const mask = g.input('attention_mask', DType.INT64, ['batch_size', 'total_sequence_length']);
    const positions = g.input('position_ids', DType.INT64, ['batch_size', 'sequence_length']);
    g.output('logits', DType.FLOAT, ['batch_size', 'sequence_length', V]);
    const embedding = this.weight('model.embed_tokens.weight', this.src.tensor('model.embed_tokens.weight').data, [V, D]);
    let h = g.op1('Gather', [embedding, inputIds]); // (B, S, D)
    const rope = this.ropeTables(positions);
    const allowed = this.attentionAllowed(inputIds, mask);
    c.layers.forEach((_, i) => (h = this.layer(i, h, rope, allowed)));
    g.scope = 'model';
    const logits = this.head(this.rmsNorm(h, 'model.norm.weight'), embedding);
    if (logits !== 'logits') g.op1('Identity', [logits], {}, { output: 'logits' });
    return g;
  }
}

/** The decoder graph of the model in `src`. */
export function buildDecoder(src: ModelSource, o: DecoderOptions): GraphBuilder {
  return new DecoderGraph(src, o).build();
}
