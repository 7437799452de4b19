/**
 * A plain LoRA adapter merged (or extracted merged) onto a GPTQ base stays INT4 on the base's own grid
 * (stories260K quantised with --lm-head, group 32): the base's scales, zeros and g_idx, a file no larger
 * than the base's, the requantisation error reported equal to the error recomputed against the float merge
 * `--dequantize` writes, and a quantization_config that describes exactly the tensors written.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { loadModelDir } from '../../src/models/llama/checkpoint.ts';
import { PROJECTIONS, projectionWeightName } from '../../src/models/llama/weights.ts';
import { lonas, lonasWithLog, quantizeSmall, ARC_EASY_CALIB } from '../helpers/cli.ts';
import { STORIES_F32 } from '../helpers/assets.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-merge-gptq-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const calib = ARC_EASY_CALIB;
const base = join(dir, 'int4-head'),
  adapter = join(dir, 'lora');
quantizeSmall(STORIES_F32(), base, '--lm-head');
// plain LoRA (no --quantization-aware), at a learning rate that moves the merged weights by whole steps
lonas(
  'finetune',
  '--model',
  base,
  '--data',
  `${calib}:16`,
  '--steps',
  '3',
  '--rank',
  '4',
  '--alpha',
  '8',
  '--space',
  'nls',
  '--cutoff-len',
  '64',
  '--lr',
  '3e-2',
  '--out',
  adapter,
);

const weightsFile = (d: string) => join(d, 'model.safetensors');
const config = (d: string) => JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
const modules = (d: string) => {
  const c = config(d) as { num_hidden_layers: number };
  const names = Array.from({ length: c.num_hidden_layers }, (_, l) => PROJECTIONS.map((p) => projectionWeightName(l, p))).flat();
  return [...names, 'lm_head'];
};

/**
 * Asserts that config.json's quantization_config says exactly what model.safetensors holds: present iff any
 * module is GPTQ, then every projection GPTQ (no float .weight beside it), bits and group size as the
 * tensors' shapes imply, lm_head true iff lm_head.qweight exists; returns the config (null when float).
 */
function assertConfigDescribesTensors(d: string): Record<string, unknown> | null {
  const q = (config(d).quantization_config ?? null) as Record<string, unknown> | null;
  const f = new SafetensorsFile(weightsFile(d));
  try {
    const gptq = modules(d).filter((m) => f.has(`${m}.qweight`));
    if (!q) {
      assert.deepEqual(gptq, [], `${d}: no quantization_config, yet GPTQ tensors`);
      for (const m of modules(d).slice(0, -1)) assert.equal(f.entry(`${m}.weight`).dtype, 'F32');
      return null;
    }
    assert.equal(q.quant_method, 'gptq');
    for (const m of modules(d).slice(0, -1)) {
      assert.ok(f.has(`${m}.qweight`) && !f.has(`${m}.weight`), `${d}: quantization_config, but ${m} is not GPTQ`);
      const [words, out] = f.entry(`${m}.qweight`).shape,
        [groups] = f.entry(`${m}.scales`).shape,
        [inF] = f.entry(`${m}.g_idx`).shape;
      assert.equal(words, Math.ceil((inF * (q.bits as number)) / 32), `${m}: bits`);
      assert.equal(Math.ceil(inF / (q.group_size as number)), groups, `${m}: group_size`);
      assert.equal(f.entry(`${m}.qzeros`).shape[1], Math.ceil((out * (q.bits as number)) / 32), `${m}: qzeros`);
    }
    assert.equal(
      q.lm_head === true,
      f.has('lm_head.qweight'),
      `${d}: lm_head ${q.lm_head} but lm_head.qweight ${f.has('lm_head.qweight')}`,
    );
    return q;
  } finally {
    f.close();
  }
}

/** max and mean |a − b| over the projections of two model directories (dequantised where GPTQ), and the codes that differ. */
function compare(a: string, b: string): { max: number; mean: number; weights: number } {
  const wa = loadModelDir(a).weights,
    wb = loadModelDir(b).weights;
  let max = 0,
    sum = 0,
    n = 0;
  for (const m of modules(a).slice(0, -1)) {
    const x = wa.get(`${m}.weight`)!.data,
      y = wb.get(`${m}.weight`)!.data;
    for (let k = 0; k < x.length; k++) {
      const e = Math.abs(x[k] - y[k]);
      max = Math.max(max, e);
      sum += e;
    }
    n += x.length;
  }
  return { max, mean: sum / n, weights: n };
}

/** max |w| over the projections of a model directory. */
function maxAbs(d: string): number {
  const w = loadModelDir(d).weights;
  let max = 0;
  for (const m of modules(d).slice(0, -1)) for (const v of w.get(`${m}.weight`)!.data) max = Math.max(max, Math.abs(v));
  return max;
}

test('a plain LoRA merge onto a GPTQ --lm-head base stays INT4 on the base grid, no larger, its error reported exactly', () => {
  const merged = join(dir, 'merged'),
    float = join(dir, 'merged-f32');
  const { stderr } = lonasWithLog('merge', '--model', base, '--adapter', adapter, '--out', merged);
  lonas('merge', '--model', base, '--adapter', adapter, '--out', float, '--dequantize');

  const q = assertConfigDescribesTensors(merged);
  const baseQ = config(base).quantization_config as Record<string, unknown>;
  assert.deepEqual(q, baseQ, 'the same quantization_config as the base, every field');
  const fb = new SafetensorsFile(weightsFile(base)),
    fm = new SafetensorsFile(weightsFile(merged));
  let changed = 0;
  try {
    for (const m of modules(base))
      for (const part of ['scales', 'qzeros', 'g_idx'])
        assert.deepEqual(fm.readRaw(`${m}.${part}`), fb.readRaw(`${m}.${part}`), `${m}.${part}: the base's grid`);
    for (const m of modules(base).slice(0, -1)) {
      const x = fb.readRaw(`${m}.qweight`),
        y = fm.readRaw(`${m}.qweight`);
      for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) changed++;
    }
  } finally {
    fb.close();
    fm.close();
  }
  assert.ok(changed > 0, 'the adapter moved some codes');
  assert.ok(statSync(weightsFile(merged)).size <= statSync(weightsFile(base)).size, 'no larger than the base');

  const rec = JSON.parse(readFileSync(join(merged, 'lonas_compression.json'), 'utf8')).merge_requantization;
  assert.deepEqual(
    JSON.parse(readFileSync(join(merged, 'lonas_merge.json'), 'utf8')).requantization,
    rec,
    'lonas_merge.json says the same',
  );
  assert.equal(JSON.parse(readFileSync(join(float, 'lonas_merge.json'), 'utf8')).dequantized, true);
  const err = compare(merged, float);
  assert.equal(rec.projections, modules(base).length - 1);
  assert.equal(rec.weights, err.weights);
  assert.equal(rec.max_abs_error, err.max, 'max error as recomputed against the float merge');
  assert.ok(Math.abs(rec.mean_abs_error - err.mean) <= 1e-9 * err.mean, `mean error ${rec.mean_abs_error} vs recomputed ${err.mean}`);
  assert.ok(rec.codes_changed > 0 && rec.codes_changed < rec.weights);
  assert.match(stderr, new RegExp(`${rec.codes_changed} of ${rec.weights} codes changed; added error .* max ${err.max.toExponential(3)}`));
});

test('--dequantize writes float32, with no quantization_config', () => {
  const float = join(dir, 'merged-f32-log');
  const { stderr } = lonasWithLog('merge', '--model', base, '--adapter', adapter, '--out', float, '--dequantize');
  assert.equal(assertConfigDescribesTensors(float), null);
  const f = new SafetensorsFile(weightsFile(float));
  assert.equal(f.entry('lm_head.weight').dtype, 'F32', 'the head too');
  f.close();
  assert.match(stderr, /--dequantize: the GPTQ base is written in float32/);
  assert.match(stderr, /lonas_compression\.json \(gptq\) is not carried over/);
});

test('--dequantize --dtype bf16 writes the float merge in bfloat16 (projections, head and norms), --dtype choosing the float type', () => {
  const bf16 = join(dir, 'merged-bf16'),
    f32 = join(dir, 'merged-f32');
  const { stderr } = lonasWithLog('merge', '--model', base, '--adapter', adapter, '--out', bf16, '--dequantize', '--dtype', 'bf16');
  assert.match(stderr, /--dequantize: the GPTQ base is written in bfloat16/);
  assert.equal(config(bf16).quantization_config, undefined);
  assert.equal(config(bf16).torch_dtype, 'bfloat16');
  const f = new SafetensorsFile(weightsFile(bf16));
  try {
    for (const m of [...modules(bf16), 'model.norm']) assert.equal(f.entry(`${m}.weight`).dtype, 'BF16', m);
    assert.ok(!f.has('lm_head.qweight'));
  } finally {
    f.close();
  }
  // the bf16 weights are the float32 merge (the first test's --dequantize output) rounded to bfloat16
  const err = compare(bf16, f32);
  assert.ok(err.max > 0 && err.max <= 2 ** -8 * maxAbs(f32), `bf16 rounding error ${err.max}`);
});

test('extract --merge of a sub-network onto a GPTQ base: sliced INT4 on the base grid, config exact, error reported', () => {
  const sub = join(dir, 'sub'),
    float = join(dir, 'sub-f32');
  const out = lonas('extract', '--model', base, '--adapter', adapter, '--subnet', 'minimal', '--merge', '--out', sub);
  lonas('extract', '--model', base, '--adapter', adapter, '--subnet', 'minimal', '--merge', '--dequantize', '--out', float);
  const q = assertConfigDescribesTensors(sub);
  assert.deepEqual(q, config(base).quantization_config);
  assert.equal(assertConfigDescribesTensors(float), null);
  const rec = JSON.parse(readFileSync(join(sub, 'lonas_extract.json'), 'utf8'));
  assert.equal(rec.dequantized, false);
  assert.equal(JSON.parse(readFileSync(join(float, 'lonas_extract.json'), 'utf8')).dequantized, true);
  assert.equal(rec.requantization.max_abs_error, compare(sub, float).max);
  assert.match(out, /requantised {5}kept INT4 on the base's GPTQ grid/);
  assert.ok(statSync(weightsFile(sub)).size <= statSync(weightsFile(float)).size / 2, 'INT4, not float');
});

test('export --adapter onto a GPTQ base exports the INT4 merge (ONNX --int4) and says what requantising cost', () => {
  const rec = JSON.parse(readFileSync(join(dir, 'merged', 'lonas_compression.json'), 'utf8')).merge_requantization;
  const out = lonas('export', '--model', base, '--adapter', adapter, '--format', 'onnx', '--int4', '--out', join(dir, 'onnx'));
  assert.match(
    out,
    new RegExp(`^merged {10}kept INT4 on the base's GPTQ grid: .*${rec.codes_changed} of ${rec.weights} codes changed`, 'm'),
  );
  assert.match(out, /GPTQ projections as MatMulNBits/);
});

test("a GPTQ record's kept_zeros stays a count the merged model has: lowered by the zeros a plain LoRA merge moves, kept by QA", () => {
  const sparse = join(dir, 'sparse'),
    sq = join(dir, 'sparse-int4');
  lonas('sparsify', '--model', STORIES_F32(), '--method', 'magnitude', '--sparsity', '0.5', '--out', sparse);
  quantizeSmall(sparse, sq);
  const kept = JSON.parse(readFileSync(join(sq, 'lonas_compression.json'), 'utf8')).kept_zeros as Record<string, number>;
  const ft = [
    '--data',
    `${calib}:16`,
    '--steps',
    '3',
    '--rank',
    '4',
    '--alpha',
    '8',
    '--cutoff-len',
    '64',
    '--lr',
    '3e-2',
    '--dropout',
    '0',
  ];
  for (const [name, flags] of [
    ['plain', []],
    ['qa', ['--quantization-aware']],
  ] as const) {
    lonas('finetune', '--model', sq, ...ft, ...flags, '--out', join(dir, `${name}-sparse-adapter`));
    const out = join(dir, `${name}-sparse-merged`);
    const { stderr } = lonasWithLog('merge', '--model', sq, '--adapter', join(dir, `${name}-sparse-adapter`), '--out', out);
    const after = JSON.parse(readFileSync(join(out, 'lonas_compression.json'), 'utf8')).kept_zeros as Record<string, number>;
    const weights = loadModelDir(out).weights;
    let lowered = 0;
    for (const [m, n] of Object.entries(kept)) {
      const zeros = weights.get(`${m}.weight`)!.data.filter((v) => v === 0).length;
      assert.ok(after[m] <= zeros, `${name} ${m}: kept_zeros ${after[m]} but only ${zeros} zeros in the output`);
      lowered += n - after[m];
    }
    if (name === 'qa') assert.deepEqual(after, kept, 'QA-SparsePEFT keeps every zero');
    else {
      assert.ok(lowered > 0, 'the plain adapter moved kept zeros');
      assert.match(stderr, new RegExp(`kept_zeros in lonas_compression\\.json lowered by ${lowered} `));
    }
  }
});
