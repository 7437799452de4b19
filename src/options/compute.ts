/** `--compute`: the GEMM compute mode of the commands whose products it changes (finetune, eval, bench, generate). */
import { z } from 'zod';
import { GEMM_COMPUTES } from '../kernels/compute-mode.ts';
import { option } from './schema.ts';

export const computeOption = () =>
  option(
    '--compute <mode>',
    'GEMM compute: f32 (exact float32, the default) or bf16 (products with > 16 rows of x and a frozen weight round x, ' +
      'and a float32 weight, to bfloat16 and accumulate in float32: AMX / AVX512-BF16 where the CPU has them)',
    z.enum(GEMM_COMPUTES).default('f32'),
  );
