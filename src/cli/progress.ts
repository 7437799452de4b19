/** Progress bars for long work (cli-progress on a terminal; one line per ~5% when stderr is not a TTY). */
import cliProgress from 'cli-progress';
import type { TrainEvent } from '../train/trainer.ts';
import type { SearchProgress } from '../nas/search.ts';

export class ProgressReporter {
  private bar: cliProgress.SingleBar | null = null;
  private lastPrinted = -1;
  private total = 0;

  constructor(private readonly label: string) {}

  event(e: TrainEvent): void {
    if (e.type === 'start') {
      this.total = e.totalSteps;
      if (process.stderr.isTTY) {
        this.bar = new cliProgress.SingleBar(
          {
            format: `${this.label} {bar} {value}/{total} steps | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted}`,
            stream: process.stderr,
            hideCursor: true,
            etaBuffer: 20,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(e.totalSteps, e.startStep, { loss: '-', lr: '-', tps: '-' });
      } else if (e.startStep > 0) process.stderr.write(`${this.label}: resuming at step ${e.startStep}/${e.totalSteps}\n`);
      return;
    }
    if (e.type === 'step') {
      const payload = { loss: e.loss.toFixed(4), lr: e.lr.toExponential(2), tps: Math.round(e.tokensPerSecond) };
      if (this.bar) this.bar.update(e.step, payload);
      else {
        const pct = Math.floor((20 * e.step) / e.totalSteps);
        if (pct !== this.lastPrinted || e.step === e.totalSteps) {
          this.lastPrinted = pct;
          process.stderr.write(
            `${this.label}: step ${e.step}/${e.totalSteps} loss ${payload.loss} lr ${payload.lr} ${payload.tps} tok/s\n`,
          );
        }
      }
      return;
    }
    if (e.type === 'eval') this.note(`step ${e.step}: validation loss ${e.valLoss.toFixed(4)}`);
  }

  private note(s: string): void {
    if (this.bar) {
      this.bar.stop();
      process.stderr.write(`${s}\n`);
      this.bar.start(this.total, Number((this.bar as unknown as { value: number }).value ?? 0));
    } else process.stderr.write(`${this.label}: ${s}\n`);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

/** The sub-network search's progress: a bar on a terminal; otherwise one line per ~5 %. */
export class SearchBar {
  private bar: cliProgress.SingleBar | null = null;
  private lastPct = -1;

  update(p: SearchProgress, scoreName: string): void {
    const payload = { front: p.front, best: p.bestScore.toFixed(4), src: p.last.cached ? 'cached' : p.last.source };
    if (process.stderr.isTTY) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          {
            format: `search {bar} {value}/{total} evals | front {front} | best ${scoreName} {best} | {src} | ETA {eta_formatted}`,
            stream: process.stderr,
            hideCursor: true,
            etaBuffer: 20,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(p.total, 0, payload);
      }
      this.bar.update(p.done, payload);
      return;
    }
    const pct = Math.floor((20 * p.done) / p.total);
    if (pct !== this.lastPct || p.done === p.total) {
      this.lastPct = pct;
      process.stderr.write(`search: ${p.done}/${p.total} evals, front ${p.front}, best ${scoreName} ${payload.best}\n`);
    }
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
