/**
 * The process-wide compute modes of the approximate kernel paths, chosen by environment variables read once
 * (so a run never switches silently): both default to the exact path.
 *
 *   LONAS_INT4_COMPUTE = exact | int8-act   INT4 layers (src/nn/quant-linear.ts); int8-act: x rounded to int8
 *                                            per block of 32, integer dot products (src/kernels/int4-int8act.ts)
 *   LONAS_BF16_COMPUTE = exact | bf16-act   bf16 weights at inference (src/tensor/bf16.ts); bf16-act: x rounded
 *                                            to bf16, AVX512-BF16 dot products (native/bf16-dot.cc)
 * Why the defaults: README, "Kernels and threads".
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
