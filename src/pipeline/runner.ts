/**
 * Runs a recipe's stages in order. A finished stage leaves a marker (`<out>/stages/<name>.json` with its
 * time and outputs); re-running the recipe resumes at the first unfinished stage, and `from` redoes a
 * stage and everything after it. The validated recipe is saved with the run; a changed recipe is refused
 * (its results would mix two experiments) unless `from` says where to redo.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeJsonAtomic } from '../io/files.ts';
import { readStageRecord, stageRecordPath, writeStageRecord } from '../io/artifacts.ts';
import type { StageRecord } from '../io/artifacts.ts';
import type { Recipe } from './recipe.ts';
import { toArgv } from '../options/schema.ts';
import { isFinetune, stages } from './stages.ts';
import { checkpointStep } from '../train/checkpoint.ts';
import type { Stage } from './stages.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));

export interface RunOptions {
  from?: string;
  /** runs the in-process report stage */
  report: (recipe: Recipe, records: StageRecord[]) => Promise<void> | void;
  log?: (line: string) => void;
  /** extra environment for the stage processes */
  env?: Record<string, string>;
}

const markerPath = (r: Recipe, name: string) => stageRecordPath(r.out, name);

export function stageRecords(r: Recipe): StageRecord[] {
  return stages(r)
    .filter((s) => existsSync(markerPath(r, s.name)))
    .map((s) => readStageRecord(r.out, s.name));
}

export async function runRecipe(r: Recipe, o: RunOptions): Promise<StageRecord[]> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const list = stages(r);
  const at = o.from === undefined ? -1 : list.findIndex((s) => s.name === o.from);
  if (o.from !== undefined && at < 0) throw new Error(`--from ${o.from}: this recipe's stages are ${list.map((s) => s.name).join(', ')}`);
  mkdirSync(join(r.out, 'stages'), { recursive: true });
  const savedPath = join(r.out, 'recipe.json');
  if (o.from !== undefined) {
    for (const s of list.slice(at)) rmSync(markerPath(r, s.name), { force: true });
  } else if (
    existsSync(savedPath) &&
    whatItComputes(JSON.parse(readFileSync(savedPath, 'utf8')) as Recipe) !== whatItComputes(r) &&
    list.some((s) => existsSync(markerPath(r, s.name)))
  ) {
    throw new Error(
      `${r.out} holds a run of a different recipe (see ${savedPath}); use --from STAGE to redo from the first stage the change affects, or another --out`,
    );
  }
  writeJsonAtomic(savedPath, r);
  for (const s of list) {
    if (existsSync(markerPath(r, s.name))) {
      log(`lonas run: stage ${s.name}: done earlier (${markerPath(r, s.name)})`);
      continue;
    }
    log(`lonas run: stage ${s.name} …`);
    const started = Date.now();
    for (const dir of s.outputs)
      if (!dir.endsWith('.html') && !dir.endsWith('.json') && (s.name === 'eval' || s.name === 'bench'))
        mkdirSync(dir, { recursive: true });
    if (s.name === 'report') await o.report(r, stageRecords(r));
    else
      runCommands(s, o.env ?? {}, log, MPI_STAGES.has(s.name) && r.mpi ? r.mpi.trim().split(/\s+/) : [], at >= 0 && list.indexOf(s) >= at);
    const record: StageRecord = {
      name: s.name,
      seconds: (Date.now() - started) / 1000,
      outputs: s.outputs,
      finishedAt: new Date().toISOString(),
    };
    writeStageRecord(r.out, record);
    log(`lonas run: stage ${s.name} finished in ${record.seconds.toFixed(1)} s`);
  }
  return stageRecords(r);
}

/** The recipe without its MPI launch prefix: N ranks compute what one process does, so a run may resume under another launch. */
function whatItComputes(r: Recipe): string {
  const { mpi: _launch, ...rest } = r;
  return JSON.stringify(rest);
}

/** stages that run data-parallel / distributed under the recipe's `mpi` launch prefix (src/dist) */
const MPI_STAGES = new Set(['baseline', 'finetune', 'search']);

/** `redo`: the stage is redone by --from, so a fine-tuning checkpoint it left is discarded instead of continued */
function runCommands(s: Stage, env: Record<string, string>, log: (l: string) => void, launch: string[], redo: boolean): void {
  for (const c of s.calls) {
    // an interrupted fine-tuning continues from its last checkpoint, bit-identically
    const args =
      isFinetune(c) && checkpointStep(c.options.out) !== null
        ? toArgv(c.spec, { ...c.options, ...(redo ? { overwrite: true } : { resume: true }) })
        : toArgv(c.spec, c.options);
    log(`  $ ${[...launch, 'lonas'].join(' ')} ${args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
    const [cmd, ...pre] = launch.length ? [...launch, process.execPath] : [process.execPath];
    const res = spawnSync(cmd, [...pre, BIN, ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
    if (res.status !== 0) {
      throw new Error(
        `stage ${s.name} failed (lonas ${args[0]} exited with ${res.status ?? res.signal}); fix the cause above and run the same command again to resume at ${s.name}`,
      );
    }
  }
}
