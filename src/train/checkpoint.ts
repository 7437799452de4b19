/**
 * Training checkpoints: everything needed to continue bit-identically — trainable tensors, AdamW moments
 * and step, the trainer's position in the data stream and its RNG states. Written into a temporary
 * directory and swapped in by rename, so an interruption never leaves a half-written checkpoint (one that
 * strikes between the two renames leaves the previous checkpoint as checkpoint.old-PID, which a resume uses).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.ts';
import type { TensorToWrite } from '../io/safetensors.ts';
import { writeJsonAtomic } from '../io/files.ts';
import type { Tensor, RngState } from '../tensor/index.ts';
import type { AdamW } from './adamw.ts';

export interface TrainerState {
  /** optimizer steps completed */
  step: number;
  samplerRng: RngState;
  tokensSeen: number;
  /** hash of the settings that must not change across a resume */
  settingsKey: string;
}

export const CHECKPOINT_DIR = 'checkpoint';

export function saveCheckpoint(outDir: string, params: Tensor[], opt: AdamW, state: TrainerState): void {
  const final = join(outDir, CHECKPOINT_DIR);
  const tmp = join(outDir, `${CHECKPOINT_DIR}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  const { moments } = opt.state();
  params.forEach((p, i) => {
    tensors[`param.${i}`] = { dtype: 'F32', shape: p.shape, data: p.data as Float32Array };
    tensors[`adam_m.${i}`] = { dtype: 'F32', shape: p.shape, data: moments[i].m as Float32Array };
    tensors[`adam_v.${i}`] = { dtype: 'F32', shape: p.shape, data: moments[i].v as Float32Array };
  });
  writeSafetensors(join(tmp, 'state.safetensors'), tensors, { names: JSON.stringify(params.map((p) => p.name ?? '')) });
  writeJsonAtomic(join(tmp, 'trainer_state.json'), { ...state, adamStep: opt.step });
  const old = join(outDir, `${CHECKPOINT_DIR}.old-${process.pid}`);
  if (existsSync(final)) renameSync(final, old);
  renameSync(tmp, final);
  rmSync(old, { recursive: true, force: true });
}

/** Restores tensors and optimizer in place; returns the trainer state. */
export function loadCheckpoint(outDir: string, params: Tensor[], opt: AdamW, settingsKey: string): TrainerState {
  const dir = completeCheckpointDir(outDir);
  if (!existsSync(join(dir, 'trainer_state.json')))
    throw new Error(`--resume: no checkpoint in ${outDir} (expected ${dir}/trainer_state.json); run without --resume to start fresh`);
  const state = JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as TrainerState & { adamStep: number };
  if (state.settingsKey !== settingsKey) {
    throw new Error(
      `--resume: the checkpoint in ${dir} was made with different settings (model, data, adapter or optimizer options changed); resume with the original options or use a new --out`,
    );
  }
  const st = new SafetensorsFile(join(dir, 'state.safetensors'));
  try {
    const names = JSON.parse(st.metadata.names ?? '[]') as string[];
    if (names.length !== params.length)
      throw new Error(`${st.path}: holds ${names.length} tensors, the model has ${params.length} trainable`);
    const { moments } = opt.state();
    params.forEach((p, i) => {
      p.data.set(st.readFloat32(`param.${i}`).data);
      moments[i].m.set(st.readFloat32(`adam_m.${i}`).data);
      moments[i].v.set(st.readFloat32(`adam_v.${i}`).data);
    });
  } finally {
    st.close();
  }
  opt.step = state.adamStep;
  return state;
}

/** The step of the checkpoint in `outDir` (checkpoint/ or one an interruption moved aside), or null when it holds none. */
export function checkpointStep(outDir: string): number | null {
  const file = join(completeCheckpointDir(outDir), 'trainer_state.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as TrainerState).step : null;
}

/** Removes every checkpoint in `outDir` (`finetune --overwrite`). */
export function discardCheckpoints(outDir: string): void {
  for (const f of readdirSync(outDir))
    if (f === CHECKPOINT_DIR || f.startsWith(`${CHECKPOINT_DIR}.`)) rmSync(join(outDir, f), { recursive: true, force: true });
}

/** checkpoint/, or when an interruption left none, the previous checkpoint moved aside by saveCheckpoint */
function completeCheckpointDir(outDir: string): string {
  const dir = join(outDir, CHECKPOINT_DIR);
  if (existsSync(join(dir, 'trainer_state.json')) || !existsSync(outDir)) return dir;
  const old = readdirSync(outDir).find((f) => f.startsWith(`${CHECKPOINT_DIR}.old-`) && existsSync(join(outDir, f, 'trainer_state.json')));
  return old ? join(outDir, old) : dir;
}
