/**
 * Progress display for the command-line tools: a redrawn bar (done/total,
 * rate, ETA) when standard error is a terminal, plain log lines otherwise.
 *
 * Library code never prints: the trainer and the graph builders report
 * progress through callbacks, and the CLI passes
 * {@linkcode ProgressReporter.report} as that callback.
 *
 * @module
 */

/** Options of {@linkcode ProgressReporter}. */
export interface ProgressOptions {
  /**
   * Draw a bar that redraws itself in place; defaults to whether standard
   * error is a terminal. Without a terminal, plain lines are written.
   */
  terminal?: boolean;
  /** Where text goes; defaults to standard error. */
  write?: (text: string) => void;
  /** Clock in milliseconds; defaults to `performance.now()`. */
  now?: () => number;
  /** Line width for the bar; defaults to the terminal's, else 80. */
  columns?: number;
  /** Seconds between plain progress lines of a long phase (default 30). */
  plainIntervalSeconds?: number;
  /** Fewest milliseconds between two redraws of the bar (default 100). */
  redrawIntervalMs?: number;
}

/**
 * Shows the progress of named phases ("epoch 3", "structural graph"), one
 * after another. Each call to {@linkcode ProgressReporter.report} updates the
 * current phase; a new phase name closes the previous one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const progress = new ProgressReporter({
 *   terminal: false,
 *   write: (text) => lines.push(text),
 * });
 * for (let batch = 0; batch <= 3; batch++) {
 *   progress.report("epoch 0", batch, 3, "batches");
 * }
 * progress.close();
 * assert.match(lines.at(-1)!, /^epoch 0: 3 batches in/);
 * ```
 */
export class ProgressReporter {
  #terminal: boolean;
  #write: (text: string) => void;
  #now: () => number;
  #columns: number;
  #plainIntervalMs: number;
  #redrawIntervalMs: number;
  #phase: Phase | undefined;

  /**
   * Creates a reporter; nothing is written until the first report.
   *
   * @param options Output, clock and intervals; all optional.
   */
  constructor(options: ProgressOptions = {}) {
    this.#terminal = options.terminal ?? Deno.stderr.isTerminal();
    this.#write = options.write ?? writeToStderr;
    this.#now = options.now ?? (() => performance.now());
    this.#columns = options.columns ?? terminalColumns();
    this.#plainIntervalMs = (options.plainIntervalSeconds ?? 30) * 1000;
    this.#redrawIntervalMs = options.redrawIntervalMs ?? 100;
  }

  /**
   * Reports that `done` of `total` steps of a phase are finished. Rate and
   * ETA count from the phase's first report (report `done = 0` when the
   * phase begins to include the first step). Pass it (bound) as the
   * progress callback of the trainer.
   *
   * @param phase The phase's name; a new name closes the previous phase.
   * @param done Steps finished so far.
   * @param total Steps in the phase.
   * @param unit What a step is, e.g. `"batches"` (default `"steps"`).
   */
  report(phase: string, done: number, total: number, unit = "steps"): void {
    this.#update(phase, done, total, unit, undefined);
  }

  /**
   * Reports the finished fraction of a phase that has no step count (a
   * graph being built). The bar shows a percentage.
   *
   * @param phase The phase's name; a new name closes the previous one.
   * @param fraction Finished fraction, 0..1; 1 closes the phase.
   * @param finishedVerb Closing words of the plain line (default `"done"`),
   *   e.g. `"built"` or `"read from cache"`.
   */
  reportFraction(phase: string, fraction: number, finishedVerb = "done"): void {
    const done = Math.round(Math.min(Math.max(fraction, 0), 1) * 1000);
    this.#update(phase, done, 1000, "", finishedVerb);
  }

  #update(
    phase: string,
    done: number,
    total: number,
    unit: string,
    finishedVerb: string | undefined,
  ): void {
    const now = this.#now();
    if (this.#phase?.name !== phase) {
      this.close();
      this.#phase = {
        name: phase,
        unit,
        finishedVerb,
        total,
        done,
        startDone: done,
        start: now,
        lastOutput: now,
        drawn: false,
      };
    }
    const current = this.#phase!;
    current.done = done;
    current.total = total;
    current.finishedVerb = finishedVerb;

    const finished = done >= total;
    if (this.#terminal) {
      if (finished || now - current.lastOutput >= this.#redrawIntervalMs) {
        this.#write(`\r${this.#barLine(now)}\x1b[K`);
        current.lastOutput = now;
        current.drawn = true;
      }
      if (finished) this.close();
    } else if (finished) {
      this.close();
    } else if (now - current.lastOutput >= this.#plainIntervalMs) {
      this.#write(`${this.#plainLine(now)}\n`);
      current.lastOutput = now;
    }
  }

  /**
   * Closes the current phase: ends the bar's line on a terminal, or writes
   * the phase's closing plain line. Safe to call more than once.
   */
  close(): void {
    const current = this.#phase;
    if (current === undefined) return;
    this.#phase = undefined;
    const seconds = (this.#now() - current.start) / 1000;
    if (this.#terminal) {
      if (current.drawn) this.#write("\n");
      return;
    }
    if (current.finishedVerb !== undefined) {
      this.#write(
        current.done >= current.total
          ? `${current.name}: ${current.finishedVerb} in ` +
            `${formatDuration(seconds)}\n`
          : `${current.name}: stopped at ${percent(current)} after ` +
            `${formatDuration(seconds)}\n`,
      );
    } else if (current.done >= current.total) {
      this.#write(
        `${current.name}: ${current.total} ${current.unit} in ` +
          `${formatDuration(seconds)} (${rate(current, seconds)} ` +
          `${current.unit}/s)\n`,
      );
    } else {
      this.#write(
        `${current.name}: stopped at ${current.done}/${current.total} ` +
          `${current.unit} after ${formatDuration(seconds)}\n`,
      );
    }
  }

  #barLine(now: number): string {
    const phase = this.#phase!;
    const { name, unit, total, done, start } = phase;
    const seconds = (now - start) / 1000;
    const etaText = done >= total
      ? formatDuration(seconds)
      : `ETA ${eta(phase, seconds)}`;
    const tail = phase.finishedVerb !== undefined
      ? ` ${percent(phase)}  ${etaText}`
      : ` ${done}/${total} ${unit}  ` +
        `${rate(phase, seconds)} ${unit}/s  ${etaText}`;
    const room = this.#columns - name.length - tail.length - 4;
    const barWidth = Math.max(0, Math.min(40, room));
    const filled = total > 0
      ? Math.round((Math.min(done, total) / total) * barWidth)
      : barWidth;
    const bar = barWidth > 0
      ? ` [${"█".repeat(filled)}${"░".repeat(barWidth - filled)}]`
      : "";
    return `${name}${bar}${tail}`.slice(0, Math.max(1, this.#columns - 1));
  }

  #plainLine(now: number): string {
    const phase = this.#phase!;
    const { name, unit, total, done, start } = phase;
    const seconds = (now - start) / 1000;
    if (phase.finishedVerb !== undefined) {
      return `${name}: ${percent(phase)}, ETA ` +
        eta(phase, seconds);
    }
    return `${name}: ${done}/${total} ${unit}, ` +
      `${rate(phase, seconds)} ${unit}/s, ` +
      `ETA ${eta(phase, seconds)}`;
  }
}

/**
 * A graph-building progress callback that shows each graph as a phase of
 * `reporter`: pass it as `onProgress` of `buildGraphs`.
 *
 * @param reporter The reporter to show progress on.
 * @returns The callback.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const onProgress = graphProgress(
 *   new ProgressReporter({ terminal: false, write: (t) => lines.push(t) }),
 * );
 * onProgress({ graph: "structural", stage: "building", fraction: 0.5 });
 * onProgress({ graph: "structural", stage: "built", fraction: 1 });
 * assert.match(lines[0], /^structural graph: built in/);
 * ```
 */
export function graphProgress(
  reporter: ProgressReporter,
): (progress: GraphProgressReport) => void {
  // A builder may report a fraction of 1 before its closing "built"; only
  // the closing report ends the phase, so each graph gets one line.
  const almostDone = 0.999;
  return (progress) => {
    reporter.reportFraction(
      `${progress.graph} graph`,
      progress.stage === "building"
        ? Math.min(progress.fraction, almostDone)
        : 1,
      progress.stage === "cached" ? "read from cache" : "built",
    );
  };
}

/**
 * A per-batch progress callback that shows each epoch as a phase of
 * `reporter`: pass it as the trainer's `onBatch`.
 *
 * @param reporter The reporter to show progress on.
 * @returns The callback.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const onBatch = batchProgress(
 *   new ProgressReporter({ terminal: false, write: (t) => lines.push(t) }),
 * );
 * onBatch({ epoch: 0, done: 1, total: 2 });
 * onBatch({ epoch: 0, done: 2, total: 2 });
 * assert.match(lines[0], /^epoch 0: 2 batches in/);
 * ```
 */
export function batchProgress(
  reporter: ProgressReporter,
): (progress: BatchProgressReport) => void {
  return (progress) =>
    reporter.report(
      `epoch ${progress.epoch}`,
      progress.done,
      progress.total,
      "batches",
    );
}

/** The fields of the trainer's per-batch report that are shown. */
export interface BatchProgressReport {
  /** Epoch (0-based). */
  epoch: number;
  /** Batches done in this epoch. */
  done: number;
  /** Batches per epoch. */
  total: number;
}

/**
 * The fields of a graph builder's progress report that are shown (a
 * `GraphProgress` of `buildGraphs` will do).
 */
export interface GraphProgressReport {
  /** Which graph, e.g. `"structural"`. */
  graph: string;
  /** `cached`: read from disk; `building`: partial; `built`: finished. */
  stage: "cached" | "building" | "built";
  /** Fraction of this graph done, 0..1. */
  fraction: number;
}

interface Phase {
  name: string;
  unit: string;
  /** Set for fraction phases: the closing words of the plain line. */
  finishedVerb: string | undefined;
  total: number;
  done: number;
  /** `done` at the phase's first report, when the clock started. */
  startDone: number;
  start: number;
  lastOutput: number;
  drawn: boolean;
}

function percent(phase: Phase): string {
  return `${Math.floor((phase.done / phase.total) * 100)}%`;
}

/**
 * Formats seconds for people: `0.4s`, `12.3s`, `4m05s`, `2h03m`.
 *
 * @param seconds A duration.
 * @returns The text.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatDuration(245), "4m05s");
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const whole = Math.round(seconds);
  if (whole < 3600) {
    return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`;
  }
  const minutes = Math.floor(whole / 60);
  return `${Math.floor(minutes / 60)}h${
    String(minutes % 60).padStart(2, "0")
  }m`;
}

/**
 * Steps per second since the phase's first report. The steps done before
 * that report are not counted: their start time is unknown (a trainer that
 * reports after each batch first reports `done = 1`).
 */
function rate(phase: Phase, seconds: number): string {
  const steps = phase.done - phase.startDone;
  if (seconds <= 0 || steps <= 0) return "?";
  const perSecond = steps / seconds;
  return perSecond >= 100
    ? perSecond.toFixed(0)
    : perSecond >= 10
    ? perSecond.toFixed(1)
    : perSecond.toFixed(2);
}

function eta(phase: Phase, seconds: number): string {
  const steps = phase.done - phase.startDone;
  if (seconds <= 0 || steps <= 0) return "?";
  return formatDuration(((phase.total - phase.done) * seconds) / steps);
}

const stderrEncoder = new TextEncoder();

function writeToStderr(text: string): void {
  const bytes = stderrEncoder.encode(text);
  let written = 0;
  while (written < bytes.length) {
    written += Deno.stderr.writeSync(bytes.subarray(written));
  }
}

function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 80;
  }
}
