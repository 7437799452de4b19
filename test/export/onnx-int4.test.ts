/**
 * `lonas export --int4`: a GPTQ checkpoint made here with `lonas quantize` on stories260K, exported with its
 * projections as com.microsoft MatMulNBits, runs in onnxruntime-node within 1e-4 of lonas's INT4 model
 * (QuantLinear) with the same greedy continuation — plain group order with a float tied head, and
 * act-order (g_idx) with a GPTQ LM head. Without --int4 the same checkpoint exports dequantised, also exact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import * as T from '../../src/tensor/index.ts';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { generate } from '../../src/models/llama/generate.ts';
import { QuantLinear } from '../../src/nn/quant-linear.ts';
import { STORIES_F32, asset } from '../helpers/assets.ts';
import { lonas } from '../helpers/cli.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { OrtDecoder } from '../helpers/onnx-runtime.ts';
import { groupOrder } from '../../src/export/onnx/int4.ts';

const PROMPT = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376];
const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const ONNX_PROTO = fileURLToPath(new URL('../../src/export/onnx/onnx.proto', import.meta.url));

function quantize(out: string, ...flags: string[]): string {
  const calib = asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json');
  lonas('quantize', '--model', STORIES_F32(), '--bits', '4', ...flags, '--calib', calib, '--nsamples', '8', '--seqlen', '64', '--out', out);
  return out;
}

/** op type → node count of an .onnx file (decoded with the same onnx.proto), and its initializer names. */
function graphOf(file: string): { ops: Map<string, number>; initializers: string[] } {
  const Model = protobuf.loadSync(ONNX_PROTO).lookupType('onnx.ModelProto');
  const model = Model.toObject(Model.decode(readFileSync(file))) as {
    graph: { node: { opType: string }[]; initializer: { name: string }[] };
  };
  const ops = new Map<string, number>();
  for (const n of model.graph.node) ops.set(n.opType, (ops.get(n.opType) ?? 0) + 1);
  return { ops, initializers: model.graph.initializer.map((t) => t.name) };
}
const opCounts = (file: string) => graphOf(file).ops;

async function assertMatchesInt4(modelFile: string, int4Dir: string, what: string): Promise<void> {
  const reference = loadLlama(int4Dir);
  assert.ok(
    reference.layers.every((l) => Object.values(l.proj).every((p) => p instanceof QuantLinear)),
    'lonas runs the INT4 codes',
  );
  const ort = await OrtDecoder.open(modelFile);
  const expected = T.noGrad(() => reference.forward(Int32Array.from(PROMPT), 1, PROMPT.length)).toArray();
  assertClose(await ort.step(PROMPT), expected, `${what}: prompt logits`, { rtol: 0, atol: 1e-4 });
  const greedy = generate(reference, [PROMPT], { maxNewTokens: 32, strategy: { kind: 'greedy' }, eosIds: [] })[0];
  assert.deepEqual(await ort.greedy(PROMPT, 32), greedy, `${what}: greedy continuation`);
}

test('--int4: GPTQ projections as MatMulNBits, within 1e-4 of lonas INT4 (group order, float tied head)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-onnx-int4-'));
  const int4 = quantize(join(dir, 'int4'), '--group-size', '32');
  lonas('export', '--format', 'onnx', '--model', int4, '--int4', '--out', join(dir, 'q4'));
  const file = join(dir, 'q4', 'onnx', 'model_q4.onnx');
  const ops = opCounts(file);
  assert.equal(ops.get('MatMulNBits'), 35, '7 projections × 5 layers');
  assert.equal(ops.get('MatMul'), 10, 'only attention (scores, context) stays MatMul');
  assert.equal(ops.get('Gemm'), 1, 'the tied head on the float embedding');
  await assertMatchesInt4(file, int4, 'int4');

  lonas('export', '--format', 'onnx', '--model', int4, '--out', join(dir, 'dequantised'));
  assert.equal(opCounts(join(dir, 'dequantised', 'onnx', 'model.onnx')).get('MatMulNBits'), undefined);
  await assertMatchesInt4(join(dir, 'dequantised', 'onnx', 'model.onnx'), int4, 'without --int4 (dequantised)');
});

test('--int4 with act-order (g_idx) and a GPTQ LM head: inputs reordered by group, still within 1e-4', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-onnx-int4-act-'));
  const int4 = quantize(join(dir, 'int4'), '--group-size', '32', '--act-order', '--lm-head');
  lonas('export', '--format', 'onnx', '--model', int4, '--int4', '--out', join(dir, 'q4'));
  const file = join(dir, 'q4', 'onnx', 'model_q4.onnx');
  const { ops, initializers } = graphOf(file);
  assert.equal(ops.get('MatMulNBits'), 36, 'projections and the head');
  const reordered = initializers.filter((n) => n.endsWith('.MatMulNBits.input_order')).length;
  assert.ok(reordered >= 30, `act-order inputs are gathered into group order (${reordered} of 36 modules)`);
  assert.equal(ops.get('Gather'), 3 + reordered, 'embedding, 2 shape reads, one per reordered module');
  await assertMatchesInt4(file, int4, 'int4 act-order');
});

test('--int4 refuses what MatMulNBits cannot express exactly, naming the fix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-onnx-int4-bad-'));
  const run = (...a: string[]) => spawnSync(process.execPath, [BIN, 'export', '--format', 'onnx', ...a], { encoding: 'utf8' });
  const float = run('--model', STORIES_F32(), '--int4', '--out', join(dir, 'a'));
  assert.equal(float.status, 1);
  assert.match(
    float.stderr,
    /config\.json: has no GPTQ quantization_config; --int4 exports GPTQ checkpoints \(run lonas quantize --bits 4 first\)/,
  );
  const odd = quantize(join(dir, 'g24'), '--group-size', '24');
  const r = run('--model', odd, '--int4', '--out', join(dir, 'b'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /q_proj: GPTQ group size 24 is not a power of two ≥ 16, which MatMulNBits' block_size must be/);
});

test('groupOrder: identity for sequential g_idx, a stable order by group for act-order, refused for uneven groups', () => {
  assert.equal(groupOrder('m', Int32Array.from([0, 0, 1, 1]), 2), null);
  assert.deepEqual(Array.from(groupOrder('m', Int32Array.from([1, 0, 1, 0]), 2)!), [1, 3, 0, 2]);
  assert.throws(
    () => groupOrder('model.layers.0.mlp.up_proj', Int32Array.from([0, 0, 0, 1]), 2),
    /model\.layers\.0\.mlp\.up_proj\.g_idx: group 0 does not hold exactly 2 input channels, which MatMulNBits needs \(export without --int4/,
  );
});
