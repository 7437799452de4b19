/** `lonas finetune`: train an elastic LoRA super-network (or plain LoRA with --space none) on instruction data. */
import type { Command } from 'commander';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadLlama } from '../models/llama/checkpoint.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { loadTrainingMix, makeBatches, parseDataSpecs, splitValidation, tokenizeExample } from '../io/datasets.ts';
import { adapterBaseRecord, addLora, saveAdapter } from '../adapters/peft.ts';
import { enableQuantAware, enableSparsePeft, qaCodeChanges, suggestQaLr } from '../adapters/sqft.ts';
import { loadSearchSpaceSpec, resolveSearchSpace } from '../nas/search-space.ts';
import type { SearchSpace } from '../nas/search-space.ts';
import { reorderByImportance } from '../nas/importance.ts';
import { permuteMlpChannels, validateChannelOrder } from '../adapters/channel-order.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import type { TokenizedExample } from '../io/datasets.ts';
import { CHANNEL_ORDER_FILE, RUN_CONFIG, readChannelOrder, writeChannelOrder, writeRunConfig } from '../io/artifacts.ts';
import type { QaCodesRecord } from '../io/artifacts.ts';
import type { LoraLinear } from '../adapters/lora.ts';
import { checkpointStep, discardCheckpoints } from '../train/checkpoint.ts';
import { train } from '../train/trainer.ts';
import { GIB, availableMemory, gib, peakRss, planTrainingMemory } from '../train/memory.ts';
import { REORDER_CALIB_EXAMPLES, finetuneSpec } from '../options/finetune.ts';
import type { FinetuneOptions } from '../options/finetune.ts';
import { commandFrom } from './command.ts';
import { setGemmCompute } from '../kernels/compute-mode.ts';
import { nativeKernels } from '../kernels/index.ts';
import { ProgressReporter } from './progress.ts';
import { world } from '../dist/mpi.ts';
import { checkBatchSplit } from '../dist/data-parallel.ts';

export function finetuneCommand(): Command {
  return commandFrom(finetuneSpec, runFinetune);
}

/** Trains the adapters `o` describes and writes them, train_log.jsonl, checkpoint/ and run_config.json to `o.out`. */
export function runFinetune(o: FinetuneOptions): void {
  const ranks = world(); // under mpirun: data-parallel over the ranks, rank 0 writes every output
  checkBatchSplit(o.batchSize, ranks);
  const log = (s: string) => {
    if (ranks.rank === 0) process.stderr.write(`${s}\n`);
  };
  keepOrDiscardCheckpoint(o, ranks.rank === 0);
  const computeNote = setGemmCompute(o.compute);
  if (computeNote) log(computeNote);
  const tok = loadTokenizer(o.model);
  const model = loadLlama(o.model);
  const lora = { rank: o.rank, alpha: o.alpha, dropout: o.dropout, targets: o.targets };
  const spaceSpec = loadSearchSpaceSpec(o.space);
  const space = resolveSearchSpace(spaceSpec, model.config, o.rank, lora.targets);
  const specs = parseDataSpecs(o.data);
  const mix = loadTrainingMix(specs, o.seed);
  const { train: trainSet, val } = o.valSize > 0 ? splitValidation(mix, o.valSize, o.seed) : { train: mix, val: [] };
  const tokenize = (e: (typeof mix)[number]) => tokenizeExample(tok, e, { cutoffLen: o.cutoffLen, trainOnInputs: o.trainOnInputs });
  const trainTok = trainSet.map(tokenize),
    valTok = val.map(tokenize);
  const padId = tok.padId ?? 0;
  if (o.reorderChannels) reorderChannels(model, space, o, trainTok, log); // before the adapters exist
  const loras = addLora(model, lora, o.seed);
  if (o.sparseAdapter || o.quantizationAware)
    log(
      `SparsePEFT: adapters masked by the base's non-zeros (${(100 * enableSparsePeft(loras)).toFixed(1)}% of the adapted weights are zero)`,
    );
  if (o.quantizationAware) {
    if (!model.config.quantization)
      throw new Error(
        `--quantization-aware needs a GPTQ-quantised base (${o.model} has no quantization_config; run \`lonas quantize\` first)`,
      );
    enableQuantAware(loras);
  }
  log(
    `lonas finetune: ${trainTok.length} training / ${valTok.length} validation examples, ${loras.length} adapters (r ${o.rank}), ` +
      `search space "${o.space}" with ${space.groups.length} groups, ${trainTok.reduce((s, e) => s + e.inputIds.length, 0)} training tokens per epoch`,
  );
  const memory = planTrainingMemory(
    model,
    {
      batchSize: o.batchSize,
      gradAccum: o.gradAccum,
      seq: Math.max(...trainTok.map((e) => e.inputIds.length), ...valTok.map((e) => e.inputIds.length)),
      ranks: ranks.size,
      mode: o.gradientCheckpointing,
    },
    o.memoryLimit !== undefined ? { bytes: o.memoryLimit * GIB, what: 'set by --memory-limit' } : machineLimit(),
  );
  log(memory.summary);
  if (memory.retainFreed && nativeKernels()?.retainFreedMemory())
    log('memory: freed buffers stay in the heap for the next step (the estimate is under half the limit)');
  const progress = new ProgressReporter('finetune');
  const result = train(
    model,
    loras,
    space,
    (epoch) => makeBatches(trainTok, o.batchSize, { padId, seed: o.seed + epoch, shuffle: true, groupByLength: o.groupByLength }),
    valTok.length ? makeBatches(valTok, o.batchSize, { padId, seed: o.seed, shuffle: false }) : [],
    {
      outDir: o.out,
      steps: o.steps,
      epochs: o.epochs,
      gradAccum: o.gradAccum,
      lr: o.lr,
      warmup: o.warmup,
      weightDecay: o.weightDecay,
      maxGradNorm: o.maxGradNorm,
      seed: o.seed,
      checkpointEvery: o.checkpointEvery,
      evalEvery: o.evalEvery,
      sandwich: !!o.sandwich,
      resume: !!o.resume,
      gradientCheckpointing: memory.checkpointing,
      settingsKey: JSON.stringify({
        model: resolve(o.model),
        data: o.data,
        lora,
        space: spaceSpec,
        cutoff: o.cutoffLen,
        trainOnInputs: o.trainOnInputs,
        sparse: !!o.sparseAdapter,
        qa: !!o.quantizationAware,
        batch: o.batchSize,
        valSize: o.valSize,
        groupByLength: !!o.groupByLength,
        ...(o.reorderChannels ? { reorder: o.reorderChannels } : {}),
      }),
    },
    (e) => {
      progress.event(e);
      if (e.type === 'step' && e.step === 1)
        log(`memory: peak RSS after the first step ${gib(peakRss())} (estimated ${gib(memory.estimate.total)})`);
    },
    ranks,
  );
  progress.stop();
  if (ranks.rank !== 0) return;
  if (result.finishedEarlier) {
    // run_config.json is written after the adapter: without it, the finished run was stopped while saving
    const complete = existsSync(join(o.out, RUN_CONFIG));
    log(
      `done: ${result.steps} steps (finished earlier: the checkpoint in ${o.out} is at step ${result.steps} of ${result.steps}, nothing left to train), ` +
        `final loss ${result.finalLoss.toFixed(4)} as train_log.jsonl recorded; ${complete ? 'left as it was (--overwrite trains again)' : `adapter and ${RUN_CONFIG} written from the checkpoint`}`,
    );
    if (complete) return;
  }
  saveAdapter(o.out, model, lora, {
    baseModel: resolve(o.model),
    base: adapterBaseRecord(o.model),
    searchSpace: spaceSpec,
    mode: o.quantizationAware ? 'qa' : o.sparseAdapter ? 'sparse' : 'lora',
  });
  const qaCodes = qaCodeSummary(loras, o.lr, log);
  writeRunConfig(o.out, { command: 'finetune', options: o, world_size: ranks.size, result, qa_codes: qaCodes, node: process.version });
  if (result.finishedEarlier) return;
  log(
    `done: ${result.steps} steps, final loss ${result.finalLoss.toFixed(4)}${result.valLoss !== null ? `, validation loss ${result.valLoss.toFixed(4)}` : ''}, ` +
      `${Math.round(result.tokensSeen / Math.max(result.seconds, 1e-9))} tokens/s${qaCodes ? `, INT4 codes changed: ${qaCodes.changed} of ${qaCodes.total}` : ''}; adapter written to ${o.out}`,
  );
}

/**
 * QA-SparsePEFT: how many INT4 codes the merged adapter moves ("codes changed: N of M", logged and returned
 * for run_config.json), with a learning rate to try when it moves none or almost none. Null for other modes.
 */
function qaCodeSummary(loras: LoraLinear[], lr: number, log: (s: string) => void): QaCodesRecord | null {
  const r = qaCodeChanges(loras);
  if (!r) return null;
  const suggested = suggestQaLr(r, lr);
  log(
    `QA-SparsePEFT: codes changed: ${r.codesChanged} of ${r.codes} in the INT4 merge (|ΔW| in half quantisation steps, where a code moves only beyond 1: largest ${r.maxHalfSteps.toPrecision(3)}, ` +
      `top 1 % from ${r.p99HalfSteps.toPrecision(3)})` +
      (r.codesChanged === 0 ? '; the merged checkpoint equals the base' : '') +
      (suggested !== null
        ? `; try --lr ${suggested} (the updates grow about in proportion to the learning rate: about 1 % of the codes would move)`
        : ''),
  );
  return {
    changed: r.codesChanged,
    total: r.codes,
    max_half_steps: r.maxHalfSteps,
    p99_half_steps: r.p99HalfSteps,
    suggested_lr: suggested,
  };
}

/**
 * A checkpoint in --out is continued (--resume) or discarded with the channel order it used (--overwrite), never
 * silently trained over: the first checkpoint of a fresh run would replace it.
 */
function keepOrDiscardCheckpoint(o: FinetuneOptions, writer: boolean): void {
  if (o.resume && o.overwrite)
    throw new Error('--resume and --overwrite contradict each other: --resume continues the checkpoint in --out, --overwrite discards it');
  const step = o.resume ? null : checkpointStep(o.out);
  if (step === null) return;
  if (!o.overwrite)
    throw new Error(
      `${o.out} holds a training checkpoint (step ${step}); add --resume to continue it, or --overwrite to discard it and train from the start`,
    );
  if (!writer) return;
  discardCheckpoints(o.out);
  rmSync(join(o.out, CHANNEL_ORDER_FILE), { force: true }); // the discarded run's --reorder-channels order
}

/**
 * --reorder-channels: permutes the in-memory base's MLP channels by importance (src/nas/importance.ts) and
 * records the order in --out; a resumed run re-applies the recorded order. saveAdapter later writes the
 * adapter in the base's own order plus the order (PEFT-compatible).
 */
function reorderChannels(
  model: LlamaModel,
  space: SearchSpace,
  o: FinetuneOptions,
  trainTok: TokenizedExample[],
  log: (s: string) => void,
): void {
  const mode = o.reorderChannels!;
  if (model.config.quantization)
    throw new Error(`--reorder-channels: ${o.model} is GPTQ-quantised; reordering the channels of a quantised base is not supported`);
  if (!space.groups.some((g) => g.kind === 'mlp_width')) {
    log(
      `--reorder-channels: search space "${o.space}" has no mlp_width group, so no MLP channel is ever sliced away; channels left in place`,
    );
    return;
  }
  const file = join(o.out, CHANNEL_ORDER_FILE);
  const saved = o.resume ? readChannelOrder(o.out) : null;
  if (saved) {
    if (saved.mode !== mode)
      throw new Error(`--resume: ${file} was written with --reorder-channels ${saved.mode}, this run asks for ${mode}`);
    permuteMlpChannels(model, validateChannelOrder(saved.mlp_channel_order, model.config, `${file}: field "mlp_channel_order"`));
    log(`MLP channels reordered as recorded in ${file}`);
    return;
  }
  const started = Date.now();
  const samples = mode === 'activation' ? trainTok.slice(0, REORDER_CALIB_EXAMPLES).map((e) => Int32Array.from(e.inputIds)) : [];
  const order = reorderByImportance(model, mode, samples);
  if (world().rank === 0) {
    mkdirSync(o.out, { recursive: true });
    writeChannelOrder(o.out, { mode, mlp_channel_order: order });
  }
  const moved = order.reduce((n, p) => n + p.filter((c, k) => c !== k).length, 0),
    total = order.reduce((n, p) => n + p.length, 0);
  log(
    `MLP channels reordered by ${mode} importance${mode === 'activation' ? ` (${samples.length} training examples)` : ''}: ${moved} of ${total} channels moved, ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}

/** The memory this run may use (availableMemory), described for the log; ranks on one host share it. */
function machineLimit(): { bytes: number; what: string } {
  const { available, total } = availableMemory();
  const local = Number(process.env.OMPI_COMM_WORLD_LOCAL_SIZE ?? 1) || 1;
  return {
    bytes: available / local,
    what: `available (of ${gib(total)}${local > 1 ? `, shared by ${local} ranks on this host` : ''})`,
  };
}
