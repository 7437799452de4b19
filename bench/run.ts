/**
 * Benchmark dispatcher: `npm run bench -- NAME [options]`. Progress goes to stderr; the last stdout line
 * is one JSON object with the figures and `ratio` against a baseline measured in the same run.
 */
const BENCHES: Record<string, () => Promise<{ main(args: string[]): Promise<unknown> }>> = {
  'train-step': () => import('./train-step.ts'),
  sgemm: () => import('./sgemm.ts'),
  'bf16-gemm': () => import('./bf16-gemm.ts'),
  'train-step-profile': () => import('./profile-train-step.ts'),
  'finetune-step-profile': () => import('./profile-finetune-step.ts'),
  decode: async () => ({ main: (await import('./generation.ts')).mainDecode }),
  prefill: async () => ({ main: (await import('./generation.ts')).mainPrefill }),
  finetune: () => import('./finetune.ts'),
  eval: () => import('./eval.ts'),
  'generate-profile': () => import('./profile-generate.ts'),
  subnet: () => import('./subnet.ts'),
  compressed: () => import('./compressed.ts'),
  'compressed-kernels': () => import('./compressed-kernels.ts'),
  export: () => import('./export.ts'),
  onnx: () => import('./onnx.ts'),
  'scale-out': () => import('./scale-out.ts'),
  'kernel-threads': () => import('./kernel-threads.ts'),
  memory: () => import('./memory.ts'),
  'gptq-layer': () => import('./gptq-layer.ts'),
  'vs-llamacpp': () => import('./vs-llamacpp.ts'),
};

async function run(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const valid = Object.keys(BENCHES).join(', ');
  if (!name || !(name in BENCHES)) {
    process.stderr.write(
      `${name ? `unknown benchmark '${name}'` : 'no benchmark named'}; valid names: ${valid}\n` +
        'usage: npm run bench -- NAME [--rounds N] [--iters N] [--warmup N] [--threads 1,2]\n',
    );
    return 2;
  }
  const result = await (await BENCHES[name]()).main(args);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // a missing prerequisite (bench/common.ts BenchSetupError) is its message; anything else a bug, with its stack
    const text = err instanceof Error ? (err.name === 'BenchSetupError' ? err.message : (err.stack ?? err.message)) : String(err);
    process.stderr.write(`bench failed: ${text}\n`);
    process.exitCode = 1;
  },
);
