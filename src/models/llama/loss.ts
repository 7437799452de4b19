/** Next-token loss of a causal LM, as Hugging Face computes it (labels shifted left, mean over kept tokens). */
import { type Tensor, crossEntropy, reshape } from '../../tensor/index.ts';
import { IGNORE_INDEX } from '../../io/batches.ts';

/**
 * logits (B, T, V), labels (B·T) aligned with the inputs. Position t predicts labels[t + 1]; the last
 * position of each row predicts nothing. Equivalent to HF's `logits[:, :-1]` vs `labels[:, 1:]` without a copy.
 */
export function causalLmLoss(logits: Tensor, labels: Int32Array): Tensor {
  const [B, T, V] = logits.shape;
  if (labels.length !== B * T) throw new Error(`causalLmLoss: ${labels.length} labels for logits [${logits.shape.join(', ')}]`);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) targets[b * T + t] = t + 1 < T ? labels[b * T + t + 1] : IGNORE_INDEX;
  }
  return crossEntropy(reshape(logits, [B * T, V]), targets, IGNORE_INDEX);
}
