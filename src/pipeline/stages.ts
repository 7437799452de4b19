/**
 * The stages of a recipe, each one `lonas` command whose outputs land under the run directory:
 *   sparsify → quantize → baseline → finetune → search → extract → eval → bench → report
 * (stages a recipe does not need are left out). Every stage is a separate, tested CLI command, so a
 * pipeline run is exactly what a user could type by hand.
 */
import { join } from 'node:path';
import { finetuneSpec } from '../options/finetune.ts';
import { quantizeSpec, sparsifySpec } from '../options/compress.ts';
import { benchSpec, evalSpec } from '../options/eval.ts';
import { extractSpec, searchSpec } from '../options/search.ts';
import { toArgv } from '../options/schema.ts';
import type { CommandSpec, OptionsInput } from '../options/schema.ts';
import type { Recipe } from './recipe.ts';

/** One `lonas` invocation: a command and its typed options (the argv is generated from the command's schema). */
export interface Call<S extends CommandSpec = CommandSpec> {
  spec: S;
  options: OptionsInput<S>;
}

const call = <S extends CommandSpec>(spec: S, options: OptionsInput<S>): Call => ({ spec, options }) as unknown as Call;

export function isFinetune(c: Call): c is Call<typeof finetuneSpec> {
  return c.spec === finetuneSpec;
}

export interface Stage {
  name: string;
  /** the `lonas` invocations (one per line of work); none for the in-process `report` */
  calls: Call[];
  /** the same as argv (what a user would type, without the leading `lonas`) */
  commands: string[][];
  outputs: string[];
}

const stage = (name: string, outputs: string[], calls: Call[]): Stage => ({
  name,
  outputs,
  calls,
  commands: calls.map((c) => toArgv(c.spec, c.options)),
});

/** The model (+ adapter + subnet) a row of the final table is evaluated and timed with. */
export interface ModelRef {
  model: string;
  adapter?: string;
  subnet?: string;
}

/** One evaluated configuration of the final table. */
export interface Row {
  id: string;
  name: string;
  model: ModelRef;
  extracted: boolean;
}
export interface Layout {
  base: string;
  adapter: string;
  baselineAdapter: string;
  search: string;
  extracted: string;
  rows: Row[];
}

export function layout(r: Recipe): Layout {
  const base = r.quantize ? join(r.out, 'base-int4') : r.sparsify ? join(r.out, 'base-sparse') : r.model;
  const adapter = join(r.out, 'adapter'),
    baselineAdapter = join(r.out, 'baseline-adapter');
  const search = join(r.out, 'search'),
    extracted = join(r.out, 'extracted');
  const label = { lonas: 'LoNAS', shears: 'Shears', sqft: 'SQFT', lora: 'LoRA' }[r.method];
  const rows: Row[] = [];
  if (r.baseline) rows.push({ id: 'baseline', name: 'LoRA baseline', model: { model: base, adapter: baselineAdapter }, extracted: false });
  if (r.method === 'lora') {
    rows.push({ id: 'lora', name: 'LoRA', model: { model: base, adapter }, extracted: false });
  } else {
    rows.push({ id: 'maximal', name: `${label} maximal`, model: { model: base, adapter, subnet: 'maximal' }, extracted: false });
    rows.push({ id: 'heuristic', name: `${label} heuristic`, model: { model: base, adapter, subnet: 'heuristic' }, extracted: false });
    const unmerged = r.extract.merge ? {} : { adapter: join(extracted, 'adapter') };
    rows.push({
      id: 'extracted',
      name: `${label} ${r.search ? 'searched' : 'heuristic'} (extracted)`,
      model: { model: extracted, ...unmerged },
      extracted: true,
    });
  }
  return { base, adapter, baselineAdapter, search, extracted, rows };
}

/**
 * The run's one cost definition (src/nas/cost.ts): what the recipe ships — merged when extract.merge — with MACs
 * for 1×bench.promptLen. The search's objective, the bench rows and the report all count it.
 */
export function costDefinitionOptions(r: Recipe): { merged: boolean; costSeqLen: number } {
  return { merged: r.method !== 'lora' && r.extract.merge, costSeqLen: r.bench.promptLen };
}

function finetuneCall(r: Recipe, base: string, out: string, space: string): Call {
  const f = r.finetune;
  return call(finetuneSpec, {
    ...f,
    model: base,
    data: r.data.train.join(','),
    out,
    space,
    valSize: r.data.valSize,
    seed: r.seed,
    dropout: f.quantizationAware ? 0 : f.dropout,
    sandwich: f.sandwich && space !== 'none',
  });
}

/** What each row is evaluated on: the recipe's tasks, and each test file. */
function evalTargets(
  r: Recipe,
): { tasks?: string; dataDir?: string; data?: string; answerType?: 'auto' | 'choice' | 'number' | 'letter' }[] {
  const targets = r.data.tasks.length ? [{ tasks: r.data.tasks.join(','), dataDir: r.data.dataDir }] : [];
  return [...targets, ...r.data.testFiles.map((t) => ({ data: t.file, answerType: t.answerType }))];
}

export function stages(r: Recipe): Stage[] {
  const L = layout(r);
  const list: Stage[] = [];
  const sparse = join(r.out, 'base-sparse'),
    int4 = join(r.out, 'base-int4');
  if (r.sparsify)
    list.push(
      stage('sparsify', [sparse], [call(sparsifySpec, { ...r.sparsify, model: r.model, calib: r.data.calib, seed: r.seed, out: sparse })]),
    );
  if (r.quantize)
    list.push(
      stage(
        'quantize',
        [int4],
        [call(quantizeSpec, { ...r.quantize, model: r.sparsify ? sparse : r.model, calib: r.data.calib!, seed: r.seed, out: int4 })],
      ),
    );
  if (r.baseline) list.push(stage('baseline', [L.baselineAdapter], [finetuneCall(r, L.base, L.baselineAdapter, 'none')]));
  list.push(stage('finetune', [L.adapter], [finetuneCall(r, L.base, L.adapter, r.method === 'lora' ? 'none' : r.finetune.space)]));
  if (r.method !== 'lora') {
    if (r.search) {
      const val = r.data.val ? { val: r.data.val } : { valSize: r.data.valSize };
      list.push(
        stage(
          'search',
          [L.search],
          [
            call(searchSpec, {
              ...r.search,
              model: L.base,
              adapter: L.adapter,
              ...val,
              out: L.search,
              seed: r.seed,
              ...costDefinitionOptions(r),
            }),
          ],
        ),
      );
    }
    list.push(
      stage(
        'extract',
        [L.extracted],
        [
          call(extractSpec, {
            ...r.extract,
            model: L.base,
            adapter: L.adapter,
            subnet: r.search ? join(L.search, 'best.json') : 'heuristic',
            out: L.extracted,
          }),
        ],
      ),
    );
  }
  const evalDir = join(r.out, 'eval'),
    benchDir = join(r.out, 'bench');
  list.push(
    stage(
      'eval',
      [evalDir],
      L.rows.flatMap((row) =>
        evalTargets(r).map((t, k) => call(evalSpec, { ...r.eval, ...row.model, ...t, out: join(evalDir, `${row.id}.${k}.json`) })),
      ),
    ),
  );
  list.push(
    stage(
      'bench',
      [benchDir],
      L.rows.map((row, k) => {
        // every row against the first, interleaved in one process; each counted and timed as the run ships it
        const ref =
          k === 0 ? {} : { refModel: L.rows[0].model.model, refAdapter: L.rows[0].model.adapter, refSubnet: L.rows[0].model.subnet };
        return call(benchSpec, {
          ...r.bench,
          ...row.model,
          ...ref,
          merged: costDefinitionOptions(r).merged,
          json: true,
          out: join(benchDir, `${row.id}.json`),
        });
      }),
    ),
  );
  list.push(stage('report', [join(r.out, 'report.html'), join(r.out, 'summary.json')], []));
  return list;
}
