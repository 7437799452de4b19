/**
 * End to end on stories260K: fine-tune a tiny elastic super-network, search it (validation loss), resume the
 * search from its cache, load best.json, extract a front configuration merged and unmerged (same perplexity as
 * the super-network at that configuration), and benchmark the extracted models.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { STORIES_F32, asset } from '../helpers/assets.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const lonas = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
const ok = (r: ReturnType<typeof lonas>) => {
  assert.equal(r.status, 0, r.stderr);
  return r;
};
const json = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

test('search → best.json → extract (merged / unmerged) → bench, and a re-run search resumes from its cache', () => {
  const root = mkdtempSync(join(tmpdir(), 'lonas-search-e2e-'));
  const adapter = join(root, 'adapter'),
    out = join(root, 'search');
  const data = `${asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json')}:120,${asset('datasets', 'llm-adapters', 'dataset', 'boolq', 'train.json')}:120`;
  ok(
    lonas(
      'finetune',
      '--model',
      STORIES_F32(),
      '--data',
      data,
      '--out',
      adapter,
      '--steps',
      '12',
      '--rank',
      '8',
      '--alpha',
      '16',
      '--batch-size',
      '4',
      '--grad-accum',
      '2',
      '--lr',
      '2e-3',
      '--cutoff-len',
      '96',
      '--val-size',
      '24',
      '--seed',
      '1',
    ),
  );

  const search = [
    'search',
    '--model',
    STORIES_F32(),
    '--adapter',
    adapter,
    '--mode',
    'loss',
    '--evals',
    '16',
    '--population',
    '4',
    '--val-size',
    '16',
    '--out',
    out,
  ];
  const first = ok(lonas(...search));
  assert.match(first.stderr, /16 validation examples \(the first 16 of the adapter's 24 held-out training examples\)/);
  for (const f of ['evaluations.jsonl', 'search_progression.csv', 'pareto.json', 'pareto.svg', 'best.json'])
    assert.ok(existsSync(join(out, f)), `${f} written`);
  const csv = readFileSync(join(out, 'search_progression.csv'), 'utf8').trim().split('\n');
  const nCandidates = csv.filter((l) => !/^\d+,nsga2,/.test(l)).length - 1;
  assert.ok(nCandidates >= 3, 'maximal, heuristic, minimal (+ training-log candidates)');
  assert.equal(csv.length - 1, nCandidates + 16, 'candidates + 16 NSGA-II evaluations');
  const measured = Number(/(\d+) measured, 0 from/.exec(first.stderr)?.[1]);
  assert.ok(measured > 16, first.stderr);
  const best = json(join(out, 'best.json'));
  const pareto = json(join(out, 'pareto.json'));
  assert.ok(best.objectives.loss < pareto.ref + pareto.delta);
  assert.ok(
    pareto.front.some((f: { config: unknown }) => JSON.stringify(f.config) === JSON.stringify(best.config)),
    'best is on the front',
  );
  assert.match(readFileSync(join(out, 'pareto.svg'), 'utf8'), /^<svg/);
  ok(
    lonas(
      'generate',
      '--model',
      STORIES_F32(),
      '--adapter',
      adapter,
      '--subnet',
      join(out, 'best.json'),
      '--prompt',
      'Once upon a time',
      '--max-new-tokens',
      '6',
    ),
  );

  const cache = readFileSync(join(out, 'evaluations.jsonl'), 'utf8');
  const again = ok(lonas(...search));
  assert.match(again.stderr, new RegExp(`${csv.length - 1} evaluations \\(0 measured, ${csv.length - 1} from`));
  assert.equal(readFileSync(join(out, 'evaluations.jsonl'), 'utf8'), cache, 'no new evaluations');
  assert.deepEqual(json(join(out, 'best.json')), best);

  // the cheapest front configuration, extracted both ways, computes what the super-network computes
  const cheapest = join(root, 'cheapest.json');
  writeFileSync(cheapest, JSON.stringify(pareto.front[0]));
  const text = join(root, 'text.txt');
  writeFileSync(text, 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.');
  const ppl = (...a: string[]) => json2(ok(lonas('perplexity', ...a, '--text', text, '--json')).stdout);
  const json2 = (s: string) => JSON.parse(s) as { nll: number; tokens: number };
  const reference = ppl('--model', STORIES_F32(), '--adapter', adapter, '--subnet', cheapest);
  for (const merge of [true, false]) {
    const dir = join(root, merge ? 'merged' : 'unmerged');
    const ex = ok(
      lonas('extract', '--model', STORIES_F32(), '--adapter', adapter, '--subnet', cheapest, ...(merge ? ['--merge'] : []), '--out', dir),
    );
    assert.match(ex.stdout, /base model +260,032 params/);
    assert.match(ex.stdout, new RegExp(`written to +${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const info = json(join(dir, 'lonas_extract.json'));
    assert.equal(info.merged, merge);
    assert.deepEqual(info.config, pareto.front[0].config);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json'])
      assert.ok(existsSync(join(dir, f)), `${f} in the extracted model`);
    assert.equal(existsSync(join(dir, 'adapter', 'adapter_config.json')), !merge);
    const adapterArgs = merge ? [] : ['--adapter', join(dir, 'adapter')];
    const got = ppl('--model', dir, ...adapterArgs);
    assert.equal(got.tokens, reference.tokens);
    assert.ok(
      Math.abs(got.nll - reference.nll) < 1e-4,
      `${merge ? 'merged' : 'unmerged'}: nll ${got.nll} vs super-network ${reference.nll}`,
    );
    if (!merge) assert.equal(info.params.extracted, pareto.front[0].params, 'unmerged: the parameters the search counted');
    const bench = JSON.parse(
      ok(lonas('bench', '--model', dir, ...adapterArgs, '--prompt-len', '32', '--gen-len', '8', '--repeats', '2', '--json')).stdout,
    );
    assert.equal(bench.params.total, info.params.extracted);
    assert.ok(
      bench.macs > 0 && bench.prefillMs.median > 0 && bench.decodeMsPerToken.median > 0 && bench.decodeTokensPerSecond > 0,
      JSON.stringify(bench),
    );
  }
  // --merged counts and times the unmerged extraction as extract --merge ships it; --ref-model times a reference
  // interleaved with it and reports the per-run speed-ups with their range
  const benchArgs = ['--prompt-len', '32', '--gen-len', '8', '--repeats', '3'];
  const unmerged = ['--model', join(root, 'unmerged'), '--adapter', join(root, 'unmerged', 'adapter'), '--merged', ...benchArgs];
  const vs = JSON.parse(ok(lonas('bench', ...unmerged, '--ref-model', join(root, 'merged'), '--json')).stdout);
  assert.equal(vs.merged, true);
  assert.equal(vs.params.total, json(join(root, 'merged', 'lonas_extract.json')).params.extracted, 'merged: the merged model');
  assert.equal(vs.params.adapter, 0);
  assert.equal(vs.reference.model, join(root, 'merged'));
  assert.equal(vs.runs.length, 3);
  for (const k of ['prefill', 'decode']) assert.ok(vs.speedup[k].min <= vs.speedup[k].median && vs.speedup[k].median <= vs.speedup[k].max);
  const printed = ok(lonas('bench', ...unmerged, '--ref-model', join(root, 'merged'))).stdout;
  assert.match(
    printed,
    /speed-up +against .* 3 interleaved runs: prefill (≈ 1× \(within noise\)|\d+\.\d\d× \(\d+\.\d\d–\d+\.\d\d\)), decode /,
  );

  const both = lonas('search', '--model', STORIES_F32(), '--adapter', adapter, '--val-size', '8', '--val', text, '--out', join(root, 'x'));
  assert.match(both.stderr, /give exactly one of --val FILE or --val-size N/);
  const tooMany = lonas('search', '--model', STORIES_F32(), '--adapter', adapter, '--val-size', '100', '--out', join(root, 'x'));
  assert.match(tooMany.stderr, /--val-size 100 exceeds the 24 examples the adapter held out/);
});

test('search --mode loglik scores accuracy through the evaluation harness', () => {
  const root = mkdtempSync(join(tmpdir(), 'lonas-search-loglik-'));
  const adapter = join(root, 'adapter');
  const data = asset('datasets', 'llm-adapters', 'dataset', 'boolq', 'train.json');
  ok(
    lonas(
      'finetune',
      '--model',
      STORIES_F32(),
      '--data',
      `${data}:64`,
      '--out',
      adapter,
      '--steps',
      '2',
      '--rank',
      '4',
      '--alpha',
      '8',
      '--batch-size',
      '4',
      '--grad-accum',
      '1',
      '--cutoff-len',
      '64',
      '--seed',
      '2',
    ),
  );
  const r = ok(
    lonas(
      'search',
      '--model',
      STORIES_F32(),
      '--adapter',
      adapter,
      '--mode',
      'loglik',
      '--val',
      data,
      '--limit',
      '6',
      '--evals',
      '4',
      '--population',
      '4',
      '--no-candidates',
      '--out',
      join(root, 's'),
    ),
  );
  const best = json(join(root, 's', 'best.json'));
  assert.equal(best.score, 'accuracy');
  assert.ok(best.objectives.accuracy >= 0 && best.objectives.accuracy <= 1);
  assert.ok(Number.isInteger(best.objectives.accuracy * 6), 'an accuracy over 6 examples');
  assert.match(r.stderr, /6 validation examples \(--val .* \(first 6\)\)/);

  // latency objective: every evaluation carries a measured time (taken on the extracted, merged configuration)
  ok(
    lonas(
      'search',
      '--model',
      STORIES_F32(),
      '--adapter',
      adapter,
      '--mode',
      'loglik',
      '--val',
      data,
      '--limit',
      '4',
      '--objective',
      'latency',
      '--latency-prompt-len',
      '16',
      '--latency-gen-len',
      '4',
      '--latency-repeats',
      '1',
      '--evals',
      '4',
      '--population',
      '4',
      '--no-candidates',
      '--out',
      join(root, 'lat'),
    ),
  );
  const [header, ...rows] = readFileSync(join(root, 'lat', 'search_progression.csv'), 'utf8')
    .trim()
    .split('\n');
  const col = header.split(',').indexOf('latency_ms');
  assert.ok(col > 0, header);
  for (const row of rows) assert.ok(Number(row.split(',').at(col - header.split(',').length)) > 0, row);
});
