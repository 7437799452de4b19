/**
 * A checkpoint read one decoder layer at a time, for layer-wise compression of a model larger than memory
 * (lonas sparsify / quantize): the embedding, final norm and LM head are read once (kept in bfloat16 when
 * stored so), each decoder layer is read in float32 when its turn comes and dropped after it. The files stay
 * open until `close`. Counts of live layers make the "one layer at a time" claim testable.
 */
import type { SafetensorsFile } from '../../io/safetensors.ts';
import { openWeights, readConfigJson } from '../../io/hf-dir.ts';
import { Tensor } from '../../tensor/index.ts';
import type { Bf16Matrix } from '../../tensor/index.ts';
import type { LlamaConfig } from './config.ts';
import { parseHfConfig } from './hf-config.ts';
import { LlamaModel } from './model.ts';
import { llamaWeightTable } from './weights.ts';
import type { LlamaTensor, LlamaWeightTable } from './weights.ts';
import { dominantDtype, readWeight, storageDtype, storedNames } from './checkpoint.ts';
import type { WeightDType } from './checkpoint.ts';

export class LayerwiseCheckpoint {
  readonly config: LlamaConfig;
  /** config.json as parsed (unknown fields kept, for the derived model) */
  readonly hfConfig: Record<string, unknown>;
  readonly table: LlamaWeightTable;
  /** storage dtype of most parameters (F64 counts as F32) */
  readonly dtype: WeightDType;
  /** decoder layers read and not yet unloaded; the most there ever were at once */
  live = 0;
  maxLive = 0;
  private readonly files: SafetensorsFile[];
  private readonly where: Map<string, SafetensorsFile>;
  private readonly stored: Map<string, string>;
  /** float32 buffers each loaded layer was read into, and those of unloaded layers waiting to be refilled (by length) */
  private readonly buffers = new Map<number, Float32Array[]>();
  private readonly spare = new Map<number, Float32Array[]>();

  constructor(readonly dir: string) {
    const { configPath, hfConfig } = readConfigJson(dir);
    this.config = parseHfConfig(hfConfig, configPath);
    this.hfConfig = hfConfig as Record<string, unknown>;
    if (this.config.quantization)
      throw new Error(`${configPath}: the model is GPTQ-quantised (quantization_config); compress its float original instead`);
    this.table = llamaWeightTable(this.config);
    ({ files: this.files, where: this.where } = openWeights(dir));
    try {
      this.stored = storedNames(this.config, this.files, this.where);
      const counts: Partial<Record<WeightDType, number>> = {};
      for (const row of this.table.all) {
        const file = this.file(row);
        const d = storageDtype(file, this.inFile(row));
        counts[d] = (counts[d] ?? 0) + row.shape.reduce((a, b) => a * b, 1);
      }
      this.dtype = dominantDtype(counts);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private inFile(row: LlamaTensor): string {
    return this.stored.get(row.name) ?? row.name;
  }

  private file(row: LlamaTensor): SafetensorsFile {
    const f = this.where.get(row.name);
    if (!f) throw new Error(`${this.dir}: the checkpoint has no tensor '${row.name}' (the weights do not match config.json)`);
    return f;
  }

  private read(rows: LlamaTensor[], keepBf16: boolean, spare?: (n: number) => Float32Array | undefined): Map<string, Tensor | Bf16Matrix> {
    return new Map(rows.map((r) => [r.name, readWeight(this.file(r), this.inFile(r), r.name, keepBf16 && r.bf16Capable, spare)]));
  }

  /** The model with its embedding, final norm and head, decoder layers deferred (LlamaModel deferLayers). */
  model(): LlamaModel {
    const { embed, norm, lmHead } = this.table;
    return new LlamaModel(this.config, this.read([embed, norm, ...(lmHead ? [lmHead] : [])], true), { deferLayers: true });
  }

  /** Reads decoder layer i in float32 into `model`, into the buffers of the last layer unloaded where the sizes match. */
  loadLayer(model: LlamaModel, i: number): void {
    const l = this.table.layers[i];
    const rows = [l.inputNorm, l.postAttentionNorm, ...Object.values(l.proj).flatMap((p) => (p.bias ? [p.weight, p.bias] : [p.weight]))];
    const spare = (n: number) => this.spare.get(n)?.pop();
    const weights = this.read(rows, false, spare);
    this.spare.clear();
    this.buffers.set(
      i,
      [...weights.values()].flatMap((t) => (t instanceof Tensor && t.data instanceof Float32Array ? [t.data] : [])),
    );
    model.loadLayer(i, weights);
    this.live++;
    this.maxLive = Math.max(this.maxLive, this.live);
  }

  /**
   * Drops decoder layer i. The caller promises nothing refers to its weights any more (they were written out), so
   * the next loadLayer reads into them: every layer has the same sizes, and fresh ~0.8 GB per Llama-2-7B layer cost
   * ~200 k page faults (3.4 s of kernel time on this VM) where refilling costs none.
   */
  unloadLayer(model: LlamaModel, i: number): void {
    model.unloadLayer(i);
    for (const d of this.buffers.get(i) ?? []) {
      const list = this.spare.get(d.length) ?? [];
      list.push(d);
      this.spare.set(d.length, list);
    }
    this.buffers.delete(i);
    this.live--;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}
