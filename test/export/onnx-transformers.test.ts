/**
 * transformers.js, offline (allowRemoteModels = false, localModelPath), loads lonas's export folder as it is:
 * `pipeline('text-generation', name)` greedy text equals `lonas generate --greedy`, and
 * `AutoModelForCausalLM.generate` the same token ids as lonas; an --int4 export is picked up as model_q4.onnx
 * through config.json's transformers.js_config and generates what lonas's INT4 model generates.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { generate } from '../../src/models/llama/generate.ts';
import { STORIES_F32 } from '../helpers/assets.ts';
import { lonas, quantizeSmall } from '../helpers/cli.ts';
import { transformersJs } from '../helpers/onnx-runtime.ts';

const PROMPT = 'Once upon a time';
const NEW_TOKENS = 80;

async function offlineTransformers(root: string) {
  const t = await transformersJs();
  t.env.allowRemoteModels = false;
  t.env.allowLocalModels = true;
  t.env.localModelPath = root;
  return t;
}

/** transformers.js greedy token ids (prompt included) for PROMPT with the model folder `name` under localModelPath. */
async function transformersGreedyIds(
  t: Awaited<ReturnType<typeof transformersJs>>,
  name: string,
): Promise<{ prompt: number[]; all: number[] }> {
  const tokenizer = await t.AutoTokenizer.from_pretrained(name);
  const model = await t.AutoModelForCausalLM.from_pretrained(name);
  const inputs = tokenizer(PROMPT);
  const out = await model.generate({ ...inputs, max_new_tokens: NEW_TOKENS, do_sample: false });
  return { prompt: inputs.input_ids.tolist()[0].map(Number), all: out.tolist()[0].map(Number) };
}

test('transformers.js offline: same greedy text and ids as lonas for stories260K', async () => {
  const root = mkdtempSync(join(tmpdir(), 'lonas-onnx-tjs-'));
  lonas('export', '--format', 'onnx', '--model', STORIES_F32(), '--out', join(root, 'stories'));
  const t = await offlineTransformers(root);
  const generator = await t.pipeline('text-generation', 'stories');
  const [{ generated_text: text }] = await generator(PROMPT, { max_new_tokens: NEW_TOKENS, do_sample: false, return_full_text: false });
  const expected = lonas('generate', '--model', STORIES_F32(), '--prompt', PROMPT, '--greedy', '--max-new-tokens', String(NEW_TOKENS));
  assert.ok(text.length > 100, `a real continuation: ${JSON.stringify(text)}`);
  assert.equal(text, expected.replace(/\n$/, ''), 'pipeline text == lonas generate --greedy');

  const { prompt, all } = await transformersGreedyIds(t, 'stories');
  const reference = generate(loadLlama(STORIES_F32()), [prompt], {
    maxNewTokens: NEW_TOKENS,
    strategy: { kind: 'greedy' },
    eosIds: [2],
  })[0];
  assert.deepEqual(all.slice(prompt.length), reference, 'AutoModelForCausalLM.generate ids == lonas');
});

test('transformers.js offline loads an --int4 export (model_q4.onnx) and matches lonas INT4 greedy ids', async () => {
  const root = mkdtempSync(join(tmpdir(), 'lonas-onnx-tjs-q4-'));
  const int4 = join(root, 'int4-checkpoint');
  quantizeSmall(STORIES_F32(), int4);
  lonas('export', '--format', 'onnx', '--model', int4, '--int4', '--out', join(root, 'q4'));
  const t = await offlineTransformers(root);
  const { prompt, all } = await transformersGreedyIds(t, 'q4');
  const reference = generate(loadLlama(int4), [prompt], { maxNewTokens: NEW_TOKENS, strategy: { kind: 'greedy' }, eosIds: [2] })[0];
  assert.deepEqual(all.slice(prompt.length), reference, 'transformers.js on model_q4.onnx == lonas INT4');
});
