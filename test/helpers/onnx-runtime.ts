/**
 * The test-only ONNX engines (test/engines/onnx: onnxruntime-node and @huggingface/transformers, installed by
 * scripts/test.sh, never by setup.sh) and a one-row decoder over an exported model's KV cache.
 */
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ENGINES = fileURLToPath(new URL('../engines/onnx/', import.meta.url));
const requireEngine = createRequire(`${ENGINES}package.json`);

function resolveEngine(name: string): string {
  try {
    return requireEngine.resolve(name);
  } catch {
    throw new Error(
      `${name} is not installed in ${ENGINES}: run ./scripts/test.sh (or: ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix test/engines/onnx)`,
    );
  }
}

/** The parts of onnxruntime-node's API the tests use (its types live in the engines folder, outside tsc's reach). */
export namespace OrtTypes {
  export interface Tensor {
    data: ArrayLike<number | bigint>;
    dims: readonly number[];
  }
  export interface InferenceSession {
    inputMetadata: readonly ValueMeta[];
    outputMetadata: readonly ValueMeta[];
    run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
  }
}
interface ValueMeta {
  name: string;
  shape: (number | string)[];
}
export interface Ort {
  Tensor: new (type: string, data: ArrayLike<number | bigint>, dims: number[]) => OrtTypes.Tensor;
  InferenceSession: { create(path: string, options: Record<string, unknown>): Promise<OrtTypes.InferenceSession> };
}
export const ort = (): Ort => requireEngine(resolveEngine('onnxruntime-node')) as Ort;

/** The parts of transformers.js the tests use. */
export interface TransformersJs {
  env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string };
  AutoTokenizer: { from_pretrained(name: string): Promise<(text: string) => { input_ids: { tolist(): bigint[][] } }> };
  AutoModelForCausalLM: {
    from_pretrained(
      name: string,
      options?: Record<string, unknown>,
    ): Promise<{ generate(o: Record<string, unknown>): Promise<{ tolist(): bigint[][] }> }>;
  };
  pipeline(
    task: string,
    model: string,
    options?: Record<string, unknown>,
  ): Promise<(text: string, o: Record<string, unknown>) => Promise<{ generated_text: string }[]>>;
}

/** transformers.js (its ES module build) from the test engines folder. */
export async function transformersJs(): Promise<TransformersJs> {
  const entry = resolveEngine('@huggingface/transformers'); // the CommonJS build; load its ES module twin
  const esm = entry.replace(/transformers\.node\.cjs$/, 'transformers.node.mjs');
  return (await import(pathToFileURL(esm).href)) as TransformersJs;
}

/** One row decoded through an exported model: each call feeds new tokens after the cached ones. */
export class OrtDecoder {
  private cache = new Map<string, OrtTypes.Tensor>();
  private past = 0;
  readonly vocab: number;

  private constructor(
    private readonly o: Ort,
    readonly session: OrtTypes.InferenceSession,
  ) {
    this.vocab = Number(session.outputMetadata.find((m) => m.name === 'logits')!.shape[2]);
    this.reset();
  }

  static async open(modelFile: string, threads = 1): Promise<OrtDecoder> {
    const o = ort();
    const session = await o.InferenceSession.create(modelFile, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    return new OrtDecoder(o, session);
  }

  /** Empties the KV cache (past_key_values of length 0). */
  reset(): void {
    this.past = 0;
    for (const m of this.session.inputMetadata) {
      if (m.name.startsWith('past_key_values.'))
        this.cache.set(m.name, new this.o.Tensor('float32', new Float32Array(0), [1, Number(m.shape[1]), 0, Number(m.shape[3])]));
    }
  }

  /** Logits (S, V) of `ids` at positions past..past+S−1; the cache then holds them too. */
  async step(ids: number[]): Promise<Float32Array> {
    const S = ids.length,
      T = this.past + S,
      big = (n: number) => BigInt(n);
    const feeds: Record<string, OrtTypes.Tensor> = {
      input_ids: new this.o.Tensor('int64', BigInt64Array.from(ids, big), [1, S]),
      attention_mask: new this.o.Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]),
      position_ids: new this.o.Tensor(
        'int64',
        BigInt64Array.from({ length: S }, (_, k) => big(this.past + k)),
        [1, S],
      ),
    };
    for (const [name, t] of this.cache) feeds[name] = t;
    const out = await this.session.run(feeds);
    for (const name of this.cache.keys()) this.cache.set(name, out[name.replace('past_key_values.', 'present.')]);
    this.past = T;
    return out.logits.data as Float32Array;
  }

  /** Greedy continuation of `prompt` (n tokens, stopping early at an id in `eos`), one token per step after the prompt; `onToken` after each. */
  async greedy(prompt: number[], n: number, eos: number[] = [], onToken?: () => void): Promise<number[]> {
    this.reset();
    let logits = await this.step(prompt);
    const out: number[] = [];
    for (let k = 0; k < n; k++) {
      const last = logits.subarray(logits.length - this.vocab);
      let best = 0;
      for (let v = 1; v < this.vocab; v++) if (last[v] > last[best]) best = v;
      if (eos.includes(best)) break;
      out.push(best);
      onToken?.();
      if (k + 1 < n) logits = await this.step([best]);
    }
    return out;
  }
}
