/** The options of `lonas run` and `lonas demo` (src/cli/run.ts, src/cli/demo.ts). */
import { z } from 'zod';
import { defineCommand, int, option } from './schema.ts';
import type { OptionsOf } from './schema.ts';

export const runSpec = defineCommand(
  'run',
  'run a recipe (finetune → search → extract → eval → bench → report; sparsify/quantize first for shears/sqft)',
  {
    recipe: option('<recipe>', 'recipe JSON file (see recipes/)', z.string()),
    model: option('--model <dir>', "override the recipe's model", z.string().optional()),
    out: option('--out <dir>', 'override the run directory', z.string().optional()),
    from: option('--from <stage>', 'redo this stage and every later one', z.string().optional()),
    mpi: option(
      '--mpi <launch>',
      'launch the fine-tuning and search stages under this command, e.g. "mpirun -np 4 --hostfile hosts" (overrides the recipe\'s "mpi")',
      z
        .string()
        .regex(/^\s*\S/, 'a launch command such as "mpirun -np 2"')
        .optional(),
    ),
  },
  'recipe',
);
export type RunOptions = OptionsOf<typeof runSpec>;

export const demoSpec = defineCommand(
  'demo',
  'a complete LoNAS experiment on a built-in task suite: pretrain (cached) → LoRA baseline + super-network → search → extract → eval → report',
  {
    out: option('--out <dir>', 'run directory', z.string().default('runs/demo')),
    quick: option('--quick', 'reduced budgets (about a minute; used by CI)', z.boolean().default(false)),
    seed: option('--seed <s>', 'seed for the data, pretraining and fine-tuning', int().default(1)),
    from: option('--from <stage>', 'redo this recipe stage and every later one', z.string().optional()),
  },
);
export type DemoOptions = OptionsOf<typeof demoSpec>;
