/**
 * llama.cpp, through node-llama-cpp 3.21.1 (installed in this folder by scripts/test.sh, not a dependency of
 * lonas), for tests and benchmarks of GGUF exports. CPU only, prebuilt binaries only: `build: 'never'`
 * and `skipDownload` make a missing binary an error instead of a download or a compile.
 */
import { readFileSync } from 'node:fs';
import type { Llama, LlamaContext, LlamaModel, Token } from 'node-llama-cpp';

const { getLlama, LlamaLogLevel, readGgufFileInfo } = await import('node-llama-cpp').catch((e: Error) => {
  throw new Error(
    `node-llama-cpp is not installed in test/engines/llama-cpp (${e.message}); run scripts/test.sh, or: npm ci --prefix test/engines/llama-cpp --omit=optional --ignore-scripts`,
  );
});

let llama: Promise<Llama> | null = null;

/** The shared CPU llama.cpp instance. */
export function cpuLlama(): Promise<Llama> {
  llama ??= getLlama({
    gpu: false,
    build: 'never',
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    maxThreads: 2,
  });
  return llama;
}

export interface GgufSession {
  model: LlamaModel;
  context: LlamaContext;
  tokenize(text: string): number[];
  /** greedy (argmax) continuation of `prompt` ids, `n` new tokens; `onToken` is called as each one arrives */
  greedy(prompt: number[], n: number, onToken?: () => void): Promise<number[]>;
  /** log-probabilities of the next token after each prefix prompt[..=i], shape (prompt.length, vocab) */
  logProbs(prompt: number[]): Promise<Float64Array[]>;
  dispose(): Promise<void>;
}

/** `kvCache`: F32 (default: float32 end to end, for exactness tests) or F16 (llama.cpp's default, for speed). */
export async function openGguf(
  path: string,
  opts: { contextSize?: number; threads?: number; kvCache?: 'F32' | 'F16' } = {},
): Promise<GgufSession> {
  const l = await cpuLlama();
  const model = await l.loadModel({ modelPath: path, gpuLayers: 0 });
  // F32 KV cache (llama.cpp's default F16 rounds every cached key and value) and no flash attention, so an
  // F32 export computes in float32 end to end like lonas
  const kv = opts.kvCache ?? 'F32';
  const context = await model.createContext({
    contextSize: opts.contextSize ?? 256,
    threads: opts.threads ?? 1,
    sequences: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: kv,
    experimentalKvCacheValueType: kv,
  });
  const vocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  const seq = context.getSequence(); // one sequence, emptied before each evaluation
  return {
    model,
    context,
    tokenize: (text) => model.tokenize(text, false).map(Number),
    async greedy(prompt, n, onToken) {
      await seq.clearHistory();
      const out: number[] = [];
      for await (const t of seq.evaluate(prompt as Token[], { temperature: 0 })) {
        onToken?.();
        out.push(Number(t));
        if (out.length >= n) break;
      }
      return out;
    },
    async logProbs(prompt) {
      await seq.clearHistory();
      const res = await seq.controlledEvaluate(prompt.map((t) => [t as Token, { generateNext: { probabilities: true } }] as const));
      return res.map((r) => {
        const lp = new Float64Array(vocab).fill(-Infinity);
        for (const [tok, p] of r!.next!.probabilities!) lp[Number(tok)] = Math.log(p);
        return lp;
      });
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
}

/** One tensor of a GGUF file as stored: its name, dimensions (ne[0] first), ggml type and data bytes. */
export interface StoredGgufTensor {
  name: string;
  dims: number[];
  type: number;
  /** from its offset to the next tensor's (or the file's end): the data plus its alignment padding */
  bytes: Buffer;
}

/** The tensors of a GGUF file in file order, read by node-llama-cpp's GGUF parser (not lonas's writer). */
export async function readGgufTensors(path: string): Promise<StoredGgufTensor[]> {
  const info = await readGgufFileInfo(path, { readTensorInfo: true, sourceType: 'filesystem' });
  const file = readFileSync(path);
  const starts = (info.tensorInfo ?? []).map((t) => Number(t.fileOffset));
  const ends = [...starts].sort((a, b) => a - b);
  return (info.tensorInfo ?? []).map((t, i) => ({
    name: t.name,
    dims: t.dimensions.map(Number),
    type: t.ggmlType,
    bytes: file.subarray(starts[i], ends.find((e) => e > starts[i]) ?? file.length),
  }));
}
