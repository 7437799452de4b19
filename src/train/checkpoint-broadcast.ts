/**
 * `--resume` under mpirun: rank 0 reads the checkpoint (only rank 0 writes them, so other machines need not
 * see its --out) and broadcasts the trainable tensors, the AdamW moments and the trainer state.
 */
import type { Tensor } from '../tensor/index.ts';
import type { AdamW } from './adamw.ts';
import type { TrainerState } from './checkpoint.ts';
import { bcastJson } from '../dist/mpi.ts';
import type { World } from '../dist/mpi.ts';

/** `load` runs on rank 0 only (it restores tensors and optimizer in place there); every rank gets its result. */
export function restoreCheckpoint(w: World, params: Tensor[], opt: AdamW, load: () => TrainerState): TrainerState {
  if (w.size === 1) return load();
  const { state, adamStep } = bcastJson(w, w.rank === 0 ? { state: load(), adamStep: opt.step } : undefined);
  opt.step = adamStep;
  const { moments } = opt.state();
  params.forEach((p, i) => {
    w.bcast(p.data, 0);
    w.bcast(moments[i].m, 0);
    w.bcast(moments[i].v, 0);
  });
  return state;
}
