import cliProgress from 'cli-progress';
import type { BatchProgress } from './batch-runner.ts';

/** A cli-progress bar on stderr: rows done of total, rows/s over this run, ETA and the error count. */
export class ProgressBar implements BatchProgress {
  readonly needsTotal = true;
  private readonly bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format:
        'scoring {bar} {percentage}% | {value}/{total} rows | {speed} rows/s | ETA {eta_formatted} | {errors} errors',
      barsize: 30,
      hideCursor: true,
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  private startedAt = 0;
  private doneBefore = 0;
  private done = 0;
  private errors = 0;

  start(totalRows: number, doneRows: number): void {
    this.startedAt = performance.now();
    this.doneBefore = doneRows;
    this.done = doneRows;
    this.bar.start(totalRows, doneRows, { speed: '0', errors: 0 });
  }

  advance(rows: number, errors: number): void {
    this.done += rows;
    this.errors += errors;
    const seconds = (performance.now() - this.startedAt) / 1000;
    const speed = seconds > 0 ? Math.round((this.done - this.doneBefore) / seconds) : 0;
    this.bar.update(this.done, { speed: speed.toLocaleString('en-US'), errors: this.errors });
  }

  stop(): void {
    this.bar.stop();
  }
}
