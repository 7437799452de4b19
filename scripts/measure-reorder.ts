/**
 * Measurement for `finetune --reorder-channels` (issue #4): does reordering MLP channels by importance lower
 * the loss of the sliced sub-networks before any training? stories260K (F32), MLP width 75 % and 50 %
 * (minimal) in every layer, no adapters, no training. Two validation sets:
 *   - 200 held-out ARC-Easy/BoolQ prompts+answers (the fine-tuning data of test/cli/finetune.test.ts; far from
 *     the model's TinyStories training distribution)
 *   - 64 stories sampled from the full model at temperature 1 (its own distribution, 8,192 tokens)
 * Controls: the reverse of the magnitude order, and 5 random orders.
 *
 *   node --import tsx scripts/measure-reorder.ts        (≈ 1 min on 2 cores; LONAS_ASSETS as for the tests)
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadLlama } from '../src/models/llama/checkpoint.ts';
import type { LlamaModel } from '../src/models/llama/model.ts';
import { loadTokenizer } from '../src/io/tokenizer.ts';
import { loadTrainingMix, makeBatches, splitValidation, tokenizeExample } from '../src/io/datasets.ts';
import type { Batch, Example } from '../src/io/datasets.ts';
import { resolveSearchSpace } from '../src/nas/search-space.ts';
import { validationLoss } from '../src/train/trainer.ts';
import { generate } from '../src/models/llama/generate.ts';
import { permuteMlpChannels } from '../src/nas/channel-order.ts';
import type { ChannelOrder } from '../src/nas/channel-order.ts';
import { activationScores, importanceOrder, magnitudeScores } from '../src/nas/importance.ts';
import { Rng } from '../src/tensor/index.ts';

const assets = process.env.LONAS_ASSETS ?? fileURLToPath(new URL('../../shared/assets', import.meta.url));
const modelDir = join(assets, 'models', 'stories260K', 'hf-f32');
const tok = loadTokenizer(modelDir);
const ds = (name: string) => join(assets, 'datasets', 'llm-adapters', 'dataset', name, 'train.json');
const { train, val } = splitValidation(
  loadTrainingMix(
    [
      { file: ds('ARC-Easy'), count: 300 },
      { file: ds('boolq'), count: 300 },
    ],
    1,
  ),
  200,
  1,
);
const tokenize = (e: Example) => tokenizeExample(tok, e, { cutoffLen: 96, trainOnInputs: true });
const taskVal = makeBatches(val.map(tokenize), 4, { padId: 0, seed: 1, shuffle: false });
const taskCalib = train.slice(0, 32).map((e) => Int32Array.from(tokenize(e).inputIds)); // what finetune --reorder-channels activation uses

const sampled = (n: number, seed: number) =>
  generate(
    loadLlama(modelDir),
    Array.from({ length: n }, () => [1]),
    { maxNewTokens: 127, strategy: { kind: 'sample', temperature: 1, topP: 1, seed }, eosIds: [2] },
  ).map((c) => [1, ...c]);
const storyVal = makeBatches(
  sampled(64, 11).map((s) => ({ inputIds: s, labels: s })),
  8,
  { padId: 0, seed: 0, shuffle: false },
);
const storyCalib = sampled(32, 12).map((s) => Int32Array.from(s));

/** Ablation: the magnitude score without the post-attention norm's weight γ folded in. */
function withoutGamma(m: LlamaModel): Float64Array[] {
  const saved = m.layers.map((l) => l.postAttentionNorm.weight.data.slice());
  m.layers.forEach((l) => l.postAttentionNorm.weight.data.fill(1));
  const s = magnitudeScores(m);
  m.layers.forEach((l, i) => l.postAttentionNorm.weight.data.set(saved[i]));
  return s;
}
const random = (seed: number) => (m: LlamaModel) => {
  const r = new Rng(seed);
  return m.config.layers.map((s) => r.shuffle(Array.from({ length: s.intermediateSize }, (_, j) => j)));
};

const variants: [string, (m: LlamaModel) => ChannelOrder | null][] = [
  ['none (checkpoint order, the reference)', () => null],
  ['magnitude (default score)', (m) => importanceOrder(magnitudeScores(m))],
  ['magnitude without γ (ablation)', (m) => importanceOrder(withoutGamma(m))],
  ['activation, 32 ARC/BoolQ training examples', (m) => importanceOrder(activationScores(m, taskCalib))],
  ['activation, 32 other sampled stories', (m) => importanceOrder(activationScores(m, storyCalib))],
  ['reverse magnitude (control)', (m) => importanceOrder(magnitudeScores(m)).map((p) => p.slice().reverse())],
  ...[7, 8, 9, 10, 11].map((s): [string, (m: LlamaModel) => ChannelOrder] => [`random order, seed ${s} (control)`, random(s)]),
];

const loss = (m: LlamaModel, width: number, b: Batch[]) => {
  const space = resolveSearchSpace({ groups: [{ kind: 'mlp_width', share: 'layer', choices: [172, 129, 86] }] }, m.config, 1, []);
  return validationLoss(m, [], space, Object.fromEntries(space.groups.map((g) => [g.id, width])), b);
};
console.log('| order | ARC/BoolQ 75% | ARC/BoolQ 50% | stories 75% | stories 50% |\n|---|---|---|---|---|');
for (const [name, order] of variants) {
  const m = loadLlama(modelDir);
  const o = order(m);
  if (o) permuteMlpChannels(m, o);
  const cells = [loss(m, 129, taskVal), loss(m, 86, taskVal), loss(m, 129, storyVal), loss(m, 86, storyVal)];
  console.log(`| ${name} | ${cells.map((c) => c.toFixed(3)).join(' | ')} |`);
}
const full = loadLlama(modelDir);
console.log(`full width: ARC/BoolQ ${loss(full, 172, taskVal).toFixed(3)}, stories ${loss(full, 172, storyVal).toFixed(3)}`);
