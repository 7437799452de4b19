/**
 * LoRA fine-tuning throughput on the 135M-shape random Llama (bench/generation.ts's model: hidden 576, 30
 * layers, 9 / 3 heads, MLP 1536, vocab 49152, tied embeddings, frozen base), lonas vs PyTorch
 * (bench/torch/finetune.py, PEFT's LoRA equations), at each thread count.
 *
 * LoRA r 32, alpha 64, dropout 0.1 (the issue's defaults; `--dropout 0` for the numerically comparable
 * setting) on all 7 projections of every layer; batch 4 × seq 128 of random token ids, the same ids on both
 * sides (weights are drawn by each side's own generator: same distribution, different values). One step, as
 * src/train/trainer.ts does it with gradient accumulation 1: forward, causal-LM loss, backward,
 * clip-grad-norm 1.0, AdamW (lr 1e-4, weight decay 0.01); gradients are cleared outside the timing.
 * tokens/s = B·T / step time.
 *
 * lonas runs these variants, interleaved step by step (`--variants`, default plain,supernet):
 *  - plain:    plain LoRA (the `none` search space; what PyTorch runs);
 *  - supernet: the `lonas` search space (q/k/v rank 32/28, MLP width 100…50 %, gate/up rank 32/28), a
 *              sub-network sampled (seeded) and applied per micro-batch, as the trainer does; smaller
 *              sub-networks compute less, so this can be faster than plain;
 *  - maximal:  the `lonas` space with the maximal configuration applied every step: the super-network's
 *              bookkeeping at plain LoRA's compute (same code path as plain once applied; off by default);
 *  - bf16:     plain LoRA in the bf16 GEMM compute mode (`--compute bf16`: the frozen base's products on the
 *              bf16 GEMM, its float32 weights rounded to bf16 once); with it PyTorch also runs under
 *              torch.autocast('cpu', dtype=torch.bfloat16) (off by default).
 * Defaults: 2 rounds × 2 steps per variant after 1 warm-up, 1 thread (`--threads 1,2` adds 2 threads; a step
 * of this model takes seconds, so every sample counts against the bench's few-minutes budget).
 * supernet_overhead = plain tokens/s / supernet tokens/s − 1 (time per token added by sampling and applying
 * sub-networks; negative when the sampled sub-networks are cheaper than the full model).
 */
import { Rng, type Tensor, backward } from '../src/tensor/index.ts';
import { nativeKernels, setThreads } from '../src/kernels/index.ts';
import { setGemmCompute } from '../src/kernels/compute-mode.ts';
import { PROJECTIONS } from '../src/models/llama/model.ts';
import type { LlamaModel } from '../src/models/llama/model.ts';
import { causalLmLoss } from '../src/models/llama/loss.ts';
import { addLora } from '../src/adapters/peft.ts';
import type { LoraLinear } from '../src/adapters/lora.ts';
import { PRESETS, resolveSearchSpace } from '../src/nas/search-space.ts';
import { applyFullSize, namedSubnet, sampleSubnet } from '../src/nas/subnet.ts';
import { SuperNet } from '../src/nas/supernet.ts';
import { AdamW } from '../src/train/adamw.ts';
import { clipGradNorm } from '../src/train/grad-clip.ts';
import { SMOL_EPS, SMOL_SHAPE, SMOL_STD, SMOL_THETA, buildSmolModel, takeOption } from './generation.ts';
import { backendSummary, log, machine, machineBusy, median, min, nowMs, parseOptions, round, runTorch } from './common.ts';

const SEED = 1234;
const BATCH = 4,
  SEQ = 128;
const LORA = { rank: 32, alpha: 64, lr: 1e-4, weightDecay: 0.01, maxGradNorm: 1.0 };
const VARIANTS = ['plain', 'supernet', 'maximal', 'bf16'] as const;
type Variant = (typeof VARIANTS)[number];

interface StepTimes {
  fwd: number[];
  bwd: number[];
  opt: number[];
  total: number[];
}
const emptyTimes = (): StepTimes => ({ fwd: [], bwd: [], opt: [], total: [] });

class OurTrainer {
  readonly params: Tensor[];
  readonly opt: AdamW;
  readonly net: SuperNet;
  readonly sampler = new Rng(SEED).derive('subnet-sampler');
  firstLoss = NaN;
  /** sum over supernet steps of the sampled configuration's MLP width fraction (for the report) */
  sampledWidth: number[] = [];

  constructor(
    readonly model: LlamaModel,
    readonly loras: LoraLinear[],
    dropoutRng: Rng,
  ) {
    this.params = loras.flatMap((l) => l.trainable());
    this.opt = new AdamW(this.params, { lr: LORA.lr, weightDecay: LORA.weightDecay });
    this.net = new SuperNet(model, resolveSearchSpace(PRESETS.lonas, model.config, LORA.rank, PROJECTIONS));
    for (const l of loras) {
      l.rng = dropoutRng;
      l.training = true;
    }
  }

  /** One optimizer step of `variant`; returns its times (ms). */
  step(variant: Variant, ids: Int32Array): { fwd: number; bwd: number; opt: number; total: number } {
    this.opt.zeroGrad(); // outside the timing, as the PyTorch side's zero_grad(set_to_none=True)
    setGemmCompute(variant === 'bf16' ? 'bf16' : 'f32');
    const t0 = nowMs();
    if (variant === 'supernet') {
      const config = sampleSubnet(this.net.space, this.sampler);
      this.net.apply(config);
      const widths = this.net.space.groups.filter((g) => g.kind === 'mlp_width').map((g) => config[g.id] / SMOL_SHAPE.intermediate);
      this.sampledWidth.push(widths.reduce((a, b) => a + b, 0) / widths.length);
    } else if (variant === 'maximal') {
      this.net.apply(namedSubnet(this.net.space, 'maximal'));
    }
    const loss = causalLmLoss(this.model.forward(ids, BATCH, SEQ), ids);
    const value = loss.item();
    if (Number.isNaN(this.firstLoss)) this.firstLoss = value;
    const t1 = nowMs();
    backward(loss);
    const t2 = nowMs();
    clipGradNorm(this.params, LORA.maxGradNorm);
    this.opt.update();
    const t3 = nowMs();
    setGemmCompute('f32');
    if (variant === 'supernet' || variant === 'maximal') applyFullSize(this.model); // back to full size, outside the timing
    return { fwd: t1 - t0, bwd: t2 - t1, opt: t3 - t2, total: t3 - t0 };
  }
}

function measureOurs(
  tr: OurTrainer,
  ids: Int32Array,
  threads: number,
  warmup: number,
  iters: number,
  variants: readonly Variant[],
): Record<Variant, StepTimes> {
  setThreads(threads);
  const out = Object.fromEntries(VARIANTS.map((v) => [v, emptyTimes()])) as Record<Variant, StepTimes>;
  for (let i = 0; i < warmup; i++) for (const v of variants) tr.step(v, ids); // bf16: also rounds the weights once
  for (let i = 0; i < iters; i++) {
    for (const v of i % 2 ? [...variants].reverse() : variants) {
      // alternate the variants' order
      const t = tr.step(v, ids);
      out[v].fwd.push(t.fwd);
      out[v].bwd.push(t.bwd);
      out[v].opt.push(t.opt);
      out[v].total.push(t.total);
    }
  }
  return out;
}

interface TorchResult {
  fwd_ms: number[];
  bwd_ms: number[];
  opt_ms: number[];
  total_ms: number[];
  first_loss: number;
  trainable: number;
}

function measureTorch(ids: Int32Array, dropoutP: number, threads: number, warmup: number, iters: number, autocast: boolean): TorchResult {
  return runTorch<TorchResult>('finetune.py', threads, [
    ...(autocast ? ['--autocast'] : []),
    '--warmup',
    String(warmup),
    '--iters',
    String(iters),
    '--seed',
    String(SEED),
    '--ids',
    JSON.stringify([...ids]),
    '--config',
    JSON.stringify({
      ...SMOL_SHAPE,
      eps: SMOL_EPS,
      theta: SMOL_THETA,
      std: SMOL_STD,
      batch: BATCH,
      seq: SEQ,
      rank: LORA.rank,
      alpha: LORA.alpha,
      dropout: dropoutP,
      lr: LORA.lr,
      weightDecay: LORA.weightDecay,
      maxGradNorm: LORA.maxGradNorm,
      targets: PROJECTIONS,
    }),
  ]);
}

function merge(a: StepTimes, b: StepTimes): StepTimes {
  return { fwd: [...a.fwd, ...b.fwd], bwd: [...a.bwd, ...b.bwd], opt: [...a.opt, ...b.opt], total: [...a.total, ...b.total] };
}

const tokS = (ms: number) => (BATCH * SEQ * 1000) / ms;

export async function main(args: string[]): Promise<unknown> {
  const d = takeOption(args, '--dropout');
  const vs = takeOption(d.rest, '--variants');
  const dropoutP = d.value === undefined ? 0.1 : Number(d.value);
  if (!(dropoutP >= 0 && dropoutP < 1)) throw new Error(`--dropout needs a probability in [0, 1), got '${d.value}'`);
  const variants = (vs.value ?? 'plain,supernet').split(',').filter(Boolean) as Variant[];
  for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`--variants: unknown '${v}' (${VARIANTS.join(', ')})`);
  if (!variants.includes('plain')) variants.unshift('plain');
  const opts = parseOptions(vs.rest, { rounds: 2, iters: 2, warmup: 1, threads: [1] });
  const { backend, coreType } = backendSummary();
  const loadBefore = await machineBusy();
  log('finetune: building the 135M-shape random model…');
  // as `lonas finetune` does when its memory estimate is under half the limit (this model's is)
  const retained = nativeKernels()?.retainFreedMemory() ?? false;
  const model = buildSmolModel(SEED, SEQ);
  const loras = addLora(model, { rank: LORA.rank, alpha: LORA.alpha, dropout: dropoutP, targets: [...PROJECTIONS] }, SEED + 2);
  const tr = new OurTrainer(model, loras, new Rng(SEED).derive('dropout'));
  const trainable = tr.params.reduce((a, p) => a + p.size, 0);
  const rng = new Rng(SEED + 1);
  const ids = Int32Array.from({ length: BATCH * SEQ }, () => rng.int(SMOL_SHAPE.vocab));
  const lnV = Math.log(SMOL_SHAPE.vocab);
  log(
    `finetune: LoRA r ${LORA.rank} alpha ${LORA.alpha} dropout ${dropoutP} on ${PROJECTIONS.join(',')} (${trainable} trainable), ` +
      `batch ${BATCH} × seq ${SEQ}; lonas variants ${variants.join(', ')}; backend ${backend}, OPENBLAS_CORETYPE=${coreType}; ` +
      `${opts.rounds} rounds × ${opts.iters} iters (+${opts.warmup} warm-up)`,
  );

  const threads: Record<string, Record<string, unknown>> = {};
  let torchTrainable = 0;
  for (const n of opts.threads) {
    let ours = Object.fromEntries(variants.map((v) => [v, emptyTimes()])) as Record<Variant, StepTimes>;
    let torch = emptyTimes();
    let autocast = emptyTimes();
    let torchLoss = NaN;
    for (let r = 0; r < opts.rounds; r++) {
      const runOurs = () => {
        const m = measureOurs(tr, ids, n, opts.warmup, opts.iters, variants);
        ours = Object.fromEntries(variants.map((v) => [v, merge(ours[v], m[v])])) as Record<Variant, StepTimes>;
      };
      const runTorchSide = () => {
        const t = measureTorch(ids, dropoutP, n, opts.warmup, opts.iters, false);
        torch = merge(torch, { fwd: t.fwd_ms, bwd: t.bwd_ms, opt: t.opt_ms, total: t.total_ms });
        torchLoss = t.first_loss;
        torchTrainable = t.trainable;
        if (!variants.includes('bf16')) return;
        const a = measureTorch(ids, dropoutP, n, opts.warmup, opts.iters, true);
        autocast = merge(autocast, { fwd: a.fwd_ms, bwd: a.bwd_ms, opt: a.opt_ms, total: a.total_ms });
      };
      if (r % 2 === 0) {
        runOurs();
        runTorchSide();
      } else {
        runTorchSide();
        runOurs();
      }
      log(
        `  threads ${n} round ${r + 1}/${opts.rounds}: ours ${variants.map((v) => `${v} ${median(ours[v].total).toFixed(0)}`).join(', ')} ms/step, ` +
          `torch ${median(torch.total).toFixed(0)}${autocast.total.length ? `, autocast ${median(autocast.total).toFixed(0)}` : ''} ms/step`,
      );
    }
    log(
      `  threads ${n}: loss at init ours ${tr.firstLoss.toFixed(4)}, torch ${torchLoss.toFixed(4)} (ln ${SMOL_SHAPE.vocab} = ${lnV.toFixed(4)})`,
    );
    for (const [who, loss] of [
      ['ours', tr.firstLoss],
      ['torch', torchLoss],
    ] as const) {
      if (!(Math.abs(loss - lnV) < 0.5))
        throw new Error(`${who} loss at init is ${loss}, expected about ln(${SMOL_SHAPE.vocab}) = ${lnV.toFixed(3)}`);
    }
    const p = ours.plain;
    const fig: Record<string, unknown> = {
      ours_tok_s: round(tokS(median(p.total)), 2),
      torch_tok_s: round(tokS(median(torch.total)), 2),
      ratio: round(median(torch.total) / median(p.total)),
      ours_ms: round(median(p.total), 1),
      torch_ms: round(median(torch.total), 1),
      ours_min_ms: round(min(p.total), 1),
      torch_min_ms: round(min(torch.total), 1),
      ours_fwd_ms: round(median(p.fwd), 1),
      ours_bwd_ms: round(median(p.bwd), 1),
      ours_opt_ms: round(median(p.opt), 1),
      torch_fwd_ms: round(median(torch.fwd), 1),
      torch_bwd_ms: round(median(torch.bwd), 1),
      torch_opt_ms: round(median(torch.opt), 1),
      ours_loss_init: round(tr.firstLoss, 4),
      torch_loss_init: round(torchLoss, 4),
    };
    if (autocast.total.length) {
      Object.assign(fig, {
        torch_autocast_tok_s: round(tokS(median(autocast.total)), 2),
        torch_autocast_ms: round(median(autocast.total), 1),
        bf16_vs_torch_f32: round(median(torch.total) / median(ours.bf16.total)),
        bf16_vs_torch_autocast: round(median(autocast.total) / median(ours.bf16.total)),
      });
    }
    for (const v of variants) {
      if (v === 'plain') continue;
      Object.assign(fig, {
        [`${v}_tok_s`]: round(tokS(median(ours[v].total)), 2),
        [`${v}_ms`]: round(median(ours[v].total), 1),
        [`${v}_min_ms`]: round(min(ours[v].total), 1),
        [`${v}_overhead`]: round(median(ours[v].total) / median(p.total) - 1),
      });
    }
    threads[n] = fig;
  }
  const first = threads[opts.threads[0]];
  return {
    bench: 'finetune',
    shape: SMOL_SHAPE,
    tied_embeddings: true,
    batch: BATCH,
    seq: SEQ,
    lora: { rank: LORA.rank, alpha: LORA.alpha, dropout: dropoutP, targets: PROJECTIONS, trainable, torch_trainable: torchTrainable },
    step: 'forward + loss + backward + clip_grad_norm(1.0) + AdamW (lr 1e-4, wd 0.01)',
    samples_per_side: opts.rounds * opts.iters,
    threads,
    ours_tok_s: first.ours_tok_s,
    torch_tok_s: first.torch_tok_s,
    ratio: first.ratio,
    supernet_overhead: first.supernet_overhead ?? null,
    bf16_vs_torch_f32: first.bf16_vs_torch_f32 ?? null,
    bf16_vs_torch_autocast: first.bf16_vs_torch_autocast ?? null,
    maximal_overhead: first.maximal_overhead ?? null,
    supernet_mean_mlp_width: tr.sampledWidth.length ? round(tr.sampledWidth.reduce((a, b) => a + b, 0) / tr.sampledWidth.length) : null,
    ratio_meaning:
      `ours / torch plain-LoRA tokens/s (median step) at ${opts.threads[0]} thread(s); > 1 means lonas is faster; goal ≥ 1.0. ` +
      'supernet_overhead = plain / supernet tokens/s − 1 (lonas space, one sampled sub-network per step); maximal_overhead the same with the maximal sub-network applied every step',
    backend,
    coreType,
    retain_freed_memory: retained,
    machine: { ...loadBefore, load1_after: machine().load1 },
  };
}
