/**
 * The process-wide compute modes of the approximate kernel paths, chosen by environment variables read once
 * (so a run never switches silently): both default to the exact path.
 *
 *   LONAS_INT4_COMPUTE = exact | int8-act   INT4 layers (src/nn/quant-linear.ts); int8-act: x rounded to int8
 *                                            per block of 32, integer dot products (src/kernels/int4-int8act.ts)
 *   LONAS_BF16_COMPUTE = exact | bf16-act   bf16 weights at inference (src/tensor/bf16.ts); bf16-act: x rounded
 *                                            to bf16, AVX512-BF16 dot products (native/bf16-dot.cc)
 * Why the defaults: README, "Kernels and threads".
 *
 * The GEMM compute mode (`--compute f32|bf16` on finetune, eval, generate, bench; default f32) is set by the
 * command before it builds its model (setGemmCompute). bf16: products of x (more than 16 rows: prefill,
 * training) with a frozen weight round x to bfloat16 and accumulate bf16 products in float32 (gemmBf16's
 * compute 'bf16', native/bf16-gemm.h) — forwards x·Wᵀ and input gradients dY·W. A float32 weight is rounded
 * to bfloat16 once for them (the rounded copy kept beside it: src/nn/modules.ts WeightStore). Adapters,
 * norms, attention, softmax and the optimizer stay float32; products with ≤ 16 rows (decode) stay exact.
 */
export type Int4Compute = 'exact' | 'int8-act';
export type Bf16Compute = 'exact' | 'bf16-act';

const chosen = new Map<string, string>();

function modeFromEnv<M extends string>(variable: string, modes: readonly M[]): M {
  let mode = chosen.get(variable);
  if (mode === undefined) {
    const env = process.env[variable];
    if (env !== undefined && env !== '' && !modes.includes(env as M)) {
      throw new Error(
        `${variable}='${env}' is not a compute mode: set it to ${modes.map((m) => `'${m}'`).join(' or ')} (default '${modes[0]}'), or unset it`,
      );
    }
    mode = env || modes[0];
    chosen.set(variable, mode);
  }
  return mode as M;
}

/** The INT4 layers' compute mode (LONAS_INT4_COMPUTE, default exact). */
export function int4Compute(): Int4Compute {
  return modeFromEnv('LONAS_INT4_COMPUTE', ['exact', 'int8-act'] as const);
}

/** The bf16 weights' compute mode at inference (LONAS_BF16_COMPUTE, default exact). */
export function bf16Compute(): Bf16Compute {
  return modeFromEnv('LONAS_BF16_COMPUTE', ['exact', 'bf16-act'] as const);
}

export const GEMM_COMPUTES = ['f32', 'bf16'] as const;
export type GemmCompute = (typeof GEMM_COMPUTES)[number];

let gemm: GemmCompute = 'f32';

/** The GEMM compute mode (default f32, the exact path). */
export function gemmCompute(): GemmCompute {
  return gemm;
}

/**
 * Sets the GEMM compute mode for the products that follow (a command sets it once, before building its model);
 * returns the line a command logs about it (null for f32, which changes nothing).
 */
export function setGemmCompute(mode: GemmCompute): string | null {
  if (!GEMM_COMPUTES.includes(mode)) throw new Error(`compute '${mode}' is not a GEMM compute mode: use 'f32' or 'bf16'`);
  gemm = mode;
  if (mode === 'f32') return null;
  return (
    'compute bf16: products with more than 16 rows of x and a frozen weight round x to bfloat16 (float32 accumulation); ' +
    'float32 weights are rounded to bfloat16 once for them (a copy kept beside the float32 weights)'
  );
}
