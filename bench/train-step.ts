/**
 * One training step (forward + loss + backward, no optimizer) of a small 2-layer Llama-style model,
 * lonas vs PyTorch (bench/torch/train_step.py, the same HF equations), at each thread count; PyTorch also
 * under torch.autocast('cpu', dtype=torch.bfloat16) (`torch_autocast_ms`). Every weight trains here, so
 * lonas's `--compute bf16` (frozen weights only) does not apply: its fine-tuning figures are `-- finetune
 * --variants plain,bf16`.
 */
import { Rng, backward } from '../src/tensor/index.ts';
import { setThreads } from '../src/kernels/index.ts';
import { LlamaModel } from '../src/models/llama/model.ts';
import { uniformConfig } from '../src/models/llama/config.ts';
import { causalLmLoss } from '../src/models/llama/loss.ts';
import { backendSummary, log, machineBusy, median, min, nowMs, parseOptions, randomLlamaWeights, round, runTorch } from './common.ts';

const SHAPE = { layers: 2, hidden: 256, heads: 4, kvHeads: 4, headDim: 64, intermediate: 688, vocab: 2048, seq: 128, batch: 4 };
const EPS = 1e-5,
  THETA = 1e4,
  INIT_STD = 0.02,
  SEED = 1234;

interface Samples {
  fwd: number[];
  bwd: number[];
  total: number[];
  loss: number;
}

export function buildModel(): LlamaModel {
  const s = SHAPE,
    C = s.hidden,
    D = s.headDim;
  const config = uniformConfig({
    vocabSize: s.vocab,
    hiddenSize: C,
    headDim: D,
    numLayers: s.layers,
    numHeads: s.heads,
    numKvHeads: s.kvHeads,
    intermediateSize: s.intermediate,
    rmsNormEps: EPS,
    ropeTheta: THETA,
    ropeScaling: null,
    maxPositions: s.seq,
    tieWordEmbeddings: false,
    attentionBias: false,
  });
  const rng = new Rng(SEED);
  const w = randomLlamaWeights(config, rng, INIT_STD);
  for (const t of w.values()) t.requiresGrad = true;
  return new LlamaModel(config, w);
}

export function measureOurs(model: LlamaModel, ids: Int32Array, threads: number, warmup: number, iters: number): Samples {
  setThreads(threads);
  const params = [...model.namedParameters().values()];
  const out: Samples = { fwd: [], bwd: [], total: [], loss: NaN };
  for (let i = 0; i < warmup + iters; i++) {
    for (const p of params) p.grad = null; // like torch's zero_grad(set_to_none=True), outside the timing
    const t0 = nowMs();
    const loss = causalLmLoss(model.forward(ids, SHAPE.batch, SHAPE.seq), ids);
    const t1 = nowMs();
    backward(loss);
    const t2 = nowMs();
    out.loss = loss.item();
    if (i < warmup) continue;
    out.fwd.push(t1 - t0);
    out.bwd.push(t2 - t1);
    out.total.push(t2 - t0);
  }
  return out;
}

function measureTorch(threads: number, warmup: number, iters: number, autocast: boolean): Samples {
  const r = runTorch<{ fwd_ms: number[]; bwd_ms: number[]; total_ms: number[]; loss: number }>('train_step.py', threads, [
    ...(autocast ? ['--autocast'] : []),
    '--warmup',
    String(warmup),
    '--iters',
    String(iters),
    '--seed',
    String(SEED),
    '--config',
    JSON.stringify({ ...SHAPE, eps: EPS, theta: THETA, std: INIT_STD }),
  ]);
  return { fwd: r.fwd_ms, bwd: r.bwd_ms, total: r.total_ms, loss: r.loss };
}

function merge(a: Samples, b: Samples): Samples {
  return { fwd: [...a.fwd, ...b.fwd], bwd: [...a.bwd, ...b.bwd], total: [...a.total, ...b.total], loss: b.loss };
}

export async function main(args: string[]): Promise<unknown> {
  const opts = parseOptions(args, { rounds: 3, iters: 4, warmup: 3, threads: [1, 2] });
  const { backend, coreType } = backendSummary();
  const loadBefore = await machineBusy();
  const model = buildModel();
  const rng = new Rng(SEED + 1);
  const ids = Int32Array.from({ length: SHAPE.batch * SHAPE.seq }, () => rng.int(SHAPE.vocab));
  const lnV = Math.log(SHAPE.vocab);
  log(
    `train-step: ${JSON.stringify(SHAPE)}; backend ${backend}, OPENBLAS_CORETYPE=${coreType}; ${opts.rounds} rounds × ${opts.iters} iters (+${opts.warmup} warm-up)`,
  );

  const threads: Record<string, Record<string, number>> = {};
  for (const n of opts.threads) {
    let ours: Samples = { fwd: [], bwd: [], total: [], loss: NaN };
    let torch: Samples = { ...ours };
    let autocast: Samples = { ...ours };
    for (let r = 0; r < opts.rounds; r++) {
      const runOurs = () => {
        ours = merge(ours, measureOurs(model, ids, n, opts.warmup, opts.iters));
      };
      const runTorchSide = () => {
        torch = merge(torch, measureTorch(n, opts.warmup, opts.iters, false));
        autocast = merge(autocast, measureTorch(n, opts.warmup, opts.iters, true));
      };
      if (r % 2 === 0) {
        runOurs();
        runTorchSide();
      } else {
        runTorchSide();
        runOurs();
      }
      log(
        `  threads ${n} round ${r + 1}/${opts.rounds}: ours median ${median(ours.total).toFixed(1)} ms, torch ${median(torch.total).toFixed(1)} ms, ` +
          `autocast ${median(autocast.total).toFixed(1)} ms`,
      );
    }
    log(
      `  threads ${n}: loss at init ours ${ours.loss.toFixed(4)}, torch ${torch.loss.toFixed(4)} (ln ${SHAPE.vocab} = ${lnV.toFixed(4)})`,
    );
    for (const [who, loss] of [
      ['ours', ours.loss],
      ['torch', torch.loss],
    ] as const) {
      if (!(Math.abs(loss - lnV) < 0.1))
        throw new Error(`${who} loss at init is ${loss}, expected about ln(${SHAPE.vocab}) = ${lnV.toFixed(3)}`);
    }
    threads[n] = {
      ours_ms: round(median(ours.total)),
      torch_ms: round(median(torch.total)),
      torch_autocast_ms: round(median(autocast.total)),
      ratio: round(median(ours.total) / median(torch.total)),
      ours_min_ms: round(min(ours.total)),
      torch_min_ms: round(min(torch.total)),
      ours_fwd_ms: round(median(ours.fwd)),
      ours_bwd_ms: round(median(ours.bwd)),
      torch_fwd_ms: round(median(torch.fwd)),
      torch_bwd_ms: round(median(torch.bwd)),
      ours_loss: round(ours.loss, 5),
      torch_loss: round(torch.loss, 5),
    };
  }
  const first = threads[opts.threads[0]];
  return {
    bench: 'train-step',
    shape: SHAPE,
    samples_per_side: opts.rounds * opts.iters,
    threads,
    ours_ms: first.ours_ms,
    torch_ms: first.torch_ms,
    ratio: first.ratio,
    ratio_meaning: `ours_ms / torch_ms at ${opts.threads[0]} thread(s); < 1 means lonas is faster`,
    backend,
    coreType,
    machine: loadBefore,
  };
}
