/**
 * Model comparison: trains several models (MSCA and the baselines) on the
 * same dataset split, each with its own defaults and the same seeds, and
 * tabulates the test metrics at each run's best valid epoch as mean ± sd
 * over the seeds, with the most-popular ranking as a floor.
 *
 * Nothing here prints: `src/cli/compare.ts` prints and saves the table.
 *
 * @module
 */

import type { Backend } from "./engine/backend.ts";
import type { Dataset } from "./data/dataset.ts";
import {
  buildGraphs,
  type GraphProgress,
  type Graphs,
} from "./graph/graphs.ts";
import { evaluate, mostPopular } from "./evaluation.ts";
import type { RunConfig } from "./config.ts";
import type { Metrics } from "./log_lines.ts";
import { modelEntry } from "./models/registry.ts";
import {
  type BatchProgress,
  type EarlyStopping,
  type EpochRecord,
  train,
  type TrainConfig,
} from "./trainer.ts";

/** The table's metric columns (test split, at the best valid epoch). */
export const COMPARE_METRICS: readonly string[] = [
  "recall@10",
  "recall@20",
  "ndcg@10",
  "ndcg@20",
];

/** The name of the most-popular row. */
export const MOST_POPULAR = "MostPop";

/** Why one run ended. */
export type StopReason = "early stopping" | "epochs" | "budget";

/** One model trained with one seed. */
export interface CompareRun {
  /** Model name. */
  model: string;
  /** The run's seed. */
  seed: number;
  /** Epoch of the best valid score (0-based, −1 when never evaluated). */
  best_epoch: number;
  /** Epochs trained. */
  epochs_run: number;
  /** Why training ended. */
  stopped_by: StopReason;
  /** Mean seconds of training per epoch (batches, backward, Adam). */
  train_seconds_per_epoch: number;
  /** Mean seconds of evaluation (valid and test) per evaluated epoch. */
  eval_seconds_per_epoch: number;
  /** Wall seconds of the whole run, graphs excluded. */
  seconds: number;
  /** Valid metrics at the best epoch. */
  best_valid: Metrics;
  /** Test metrics at the best valid epoch. */
  test_at_best_valid: Metrics;
}

/** One line of the table: a model over its seeds, or the floor. */
export interface CompareRow {
  /** Model name, or {@linkcode MOST_POPULAR}. */
  name: string;
  /** Number of runs (seeds) summarised; 1 for the floor. */
  runs: number;
  /** Mean test metric over the runs, for each metric computed. */
  mean: Metrics;
  /** Sample standard deviation (n − 1) over the runs; null for one run. */
  sd: Metrics | null;
  /** Mean training seconds per epoch; null for the floor. */
  train_seconds_per_epoch: number | null;
  /** Mean best valid epoch; null for the floor. */
  best_epoch: number | null;
  /** How many runs ended for each reason. */
  stopped_by: Partial<Record<StopReason, number>>;
}

/** The outcome of {@linkcode compareModels}. */
export interface CompareResult {
  /** Dataset name. */
  dataset: string;
  /** Users, items and train/valid/test rows of the dataset. */
  dataset_size: {
    users: number;
    items: number;
    train: number;
    valid: number;
    test: number;
  };
  /** Backend name the models trained on. */
  backend: string;
  /** The metric that picks the best epoch (`recall@20`). */
  valid_metric: string;
  /** The seeds, in order. */
  seeds: number[];
  /** Training seconds allowed per run, or null for none. */
  budget_seconds: number | null;
  /** The models' settings (the config of each model's first seed). */
  configs: Record<string, TrainConfig>;
  /** Every run, model-major. */
  runs: CompareRun[];
  /** One row per model in the order given, then the floor. */
  rows: CompareRow[];
  /** Wall seconds of the whole comparison. */
  seconds: number;
}

/** Options of {@linkcode compareModels}. */
export interface CompareOptions {
  /** The backend to train on (default the CPU). */
  backend?: Backend;
  /**
   * Seconds of training and evaluation after which a run stops (checked
   * after each epoch); `null` or absent trains to early stopping or
   * `epochs`. Runs stopped this way are marked `budget`.
   */
  budgetSeconds?: number | null;
  /** After every batch of every run, for progress bars. */
  onBatch?: (model: string, seed: number, progress: BatchProgress) => void;
  /** After every epoch of every run. */
  onEpoch?: (model: string, seed: number, record: EpochRecord) => void;
  /** After every run. */
  onRun?: (run: CompareRun) => void;
  /** Graph building progress of each model. */
  onGraphProgress?: (model: string, progress: GraphProgress) => void;
}

/** Thrown from the trainer's epoch callback to end a run at its budget. */
class BudgetReached extends Error {
  constructor() {
    super("training budget reached");
    this.name = "BudgetReached";
  }
}

/**
 * Trains every configuration (one per model and seed) on one dataset and
 * summarises the test metrics at each run's best valid epoch.
 *
 * @param configs One run configuration per model and seed; models appear
 *   in the table in the order of their first configuration. Every
 *   configuration must compute {@linkcode COMPARE_METRICS}, and all must
 *   share `valid_metric`.
 * @param dataset The dataset (the same split for every model).
 * @param options Backend, training budget, callbacks.
 * @returns Every run and the table rows, the most-popular floor last.
 * @throws {RangeError} When no configuration is given, the metrics or
 *   `valid_metric` do not allow the table, or a model and seed repeat.
 * @example
 * ```ts ignore
 * const configs = ["LightGCN", "BPR"].flatMap((model) =>
 *   expandGrid(loadConfigSync({ model, args: ["--seed", "1,2"] }))
 * );
 * const result = await compareModels(configs, dataset, {});
 * compareMarkdown(result).forEach((line) => console.log(line));
 * ```
 */
export async function compareModels(
  configs: RunConfig[],
  dataset: Dataset,
  options: CompareOptions = {},
): Promise<CompareResult> {
  const started = performance.now();
  checkConfigs(configs);
  const budget = options.budgetSeconds ?? null;
  if (budget !== null && !(budget > 0)) {
    throw new RangeError(
      `the training budget must be a number of seconds > 0, got ${budget}`,
    );
  }
  const models = [...new Set(configs.map((config) => config.model))];
  const runs: CompareRun[] = [];
  const configsByModel: Record<string, TrainConfig> = {};
  const backendName = options.backend?.name ?? "cpu";

  for (const model of models) {
    const modelConfigs = configs.filter((config) => config.model === model);
    configsByModel[model] = modelConfigs[0];
    let graphs: Graphs | undefined;
    let graphKnn: number | undefined;
    for (const config of modelConfigs) {
      if (graphs === undefined || graphKnn !== config.knn_k) {
        graphs = await buildGraphs(dataset, {
          knn_k: config.knn_k ?? 10,
          cacheDir: config.graph_cache_dir ? config.graph_cache_dir : null,
          modelKind: modelEntry(model).graphKind,
          onProgress: (progress) => options.onGraphProgress?.(model, progress),
        });
        graphKnn = config.knn_k;
      }
      const run = await trainOnce(config, dataset, graphs, budget, options);
      runs.push(run);
      options.onRun?.(run);
    }
  }

  const first = configs[0];
  const floor = await mostPopularMetrics(dataset, first);
  const rows = [
    ...models.map((model) =>
      summarise(model, runs.filter((run) => run.model === model))
    ),
    {
      name: MOST_POPULAR,
      runs: 1,
      mean: floor,
      sd: null,
      train_seconds_per_epoch: null,
      best_epoch: null,
      stopped_by: {},
    },
  ];
  return {
    dataset: dataset.name,
    dataset_size: {
      users: dataset.userCount,
      items: dataset.itemCount,
      train: dataset.train.users.length,
      valid: dataset.valid.users.length,
      test: dataset.test.users.length,
    },
    backend: backendName,
    valid_metric: first.valid_metric.toLowerCase(),
    seeds: [
      ...new Set(
        configs.filter((c) => c.model === models[0]).map((c) => c.seed),
      ),
    ],
    budget_seconds: budget,
    configs: configsByModel,
    runs,
    rows,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Trains one configuration, stopping at the budget if one is set. */
async function trainOnce(
  config: RunConfig,
  dataset: Dataset,
  graphs: Graphs,
  budget: number | null,
  options: CompareOptions,
): Promise<CompareRun> {
  const started = performance.now();
  const records: EpochRecord[] = [];
  let stopping: EarlyStopping | undefined;
  let stoppedBy: StopReason = "epochs";
  let spent = 0;
  try {
    const result = await train(config, dataset, {
      backend: options.backend,
      graphs,
      callbacks: {
        onBatch: (progress) =>
          options.onBatch?.(config.model, config.seed, progress),
        onEpoch: (record, context) => {
          records.push(record);
          stopping = context.earlyStopping;
          options.onEpoch?.(config.model, config.seed, record);
          spent += record.train_seconds + (record.eval_seconds ?? 0);
          const last = record.epoch + 1 >= config.epochs;
          if (
            budget !== null && spent >= budget && !context.stopping && !last
          ) {
            throw new BudgetReached();
          }
        },
      },
    });
    if (result.stopped_early) stoppedBy = "early stopping";
  } catch (error) {
    if (!(error instanceof BudgetReached)) throw error;
    stoppedBy = "budget";
  }

  const evaluated = records.filter((r) => r.eval_seconds !== undefined);
  return {
    model: config.model,
    seed: config.seed,
    best_epoch: stopping?.best_epoch ?? -1,
    epochs_run: records.length,
    stopped_by: stoppedBy,
    train_seconds_per_epoch: meanOf(records.map((r) => r.train_seconds)),
    eval_seconds_per_epoch: meanOf(evaluated.map((r) => r.eval_seconds!)),
    seconds: (performance.now() - started) / 1000,
    best_valid: stopping?.best_valid ?? {},
    test_at_best_valid: stopping?.test_at_best_valid ?? {},
  };
}

/** The floor: the most-popular ranking's test metrics. */
async function mostPopularMetrics(
  dataset: Dataset,
  config: RunConfig,
): Promise<Metrics> {
  const result = await evaluate(dataset, "test", mostPopular(dataset), {
    topk: config.topk,
    metrics: config.metrics,
    evalBatchSize: config.eval_batch_size,
  });
  return result.metrics;
}

/**
 * Mean and sample standard deviation of each test metric over runs.
 *
 * @param name Row name.
 * @param runs The runs of one model.
 * @returns The row.
 */
export function summarise(name: string, runs: CompareRun[]): CompareRow {
  const keys = Object.keys(runs[0]?.test_at_best_valid ?? {});
  const mean: Metrics = {};
  const sd: Metrics = {};
  for (const key of keys) {
    const values = runs.map((run) => run.test_at_best_valid[key]);
    mean[key] = meanOf(values);
    sd[key] = sampleStandardDeviation(values);
  }
  const stoppedBy: Partial<Record<StopReason, number>> = {};
  for (const run of runs) {
    stoppedBy[run.stopped_by] = (stoppedBy[run.stopped_by] ?? 0) + 1;
  }
  return {
    name,
    runs: runs.length,
    mean,
    sd: runs.length > 1 ? sd : null,
    train_seconds_per_epoch: meanOf(
      runs.map((run) => run.train_seconds_per_epoch),
    ),
    best_epoch: meanOf(runs.map((run) => run.best_epoch)),
    stopped_by: stoppedBy,
  };
}

/**
 * The comparison as a Markdown document: a title, what the numbers are,
 * and the table (one row per model, the most-popular floor last).
 *
 * @param result What {@linkcode compareModels} returned.
 * @returns Lines of Markdown.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareMarkdown } from "./compare.ts";
 *
 * const lines = compareMarkdown({
 *   dataset: "tiny",
 *   dataset_size: { users: 2, items: 3, train: 4, valid: 1, test: 1 },
 *   backend: "cpu", valid_metric: "recall@20", seeds: [1],
 *   budget_seconds: null, configs: {}, runs: [], seconds: 1,
 *   rows: [{
 *     name: "MostPop", runs: 1, sd: null, train_seconds_per_epoch: null,
 *     best_epoch: null, stopped_by: {},
 *     mean: { "recall@10": 0.1, "recall@20": 0.2, "ndcg@10": 0.05,
 *       "ndcg@20": 0.07 },
 *   }],
 * });
 * assert.ok(lines.some((line) => line.startsWith("| MostPop ")));
 * ```
 */
export function compareMarkdown(result: CompareResult): string[] {
  const seeds = result.seeds.join(", ");
  const header = [
    "model",
    ...COMPARE_METRICS.map(metricTitle),
    "s/epoch",
    "best epoch",
    "stopped by",
  ];
  const rows = result.rows.map((row) => [
    row.name,
    ...COMPARE_METRICS.map((key) =>
      row.sd === null
        ? formatValue(row.mean[key])
        : `${formatValue(row.mean[key])} ± ${formatValue(row.sd[key])}`
    ),
    row.train_seconds_per_epoch === null
      ? "–"
      : row.train_seconds_per_epoch.toFixed(2),
    row.best_epoch === null ? "–" : formatEpoch(row.best_epoch),
    formatStops(row.stopped_by),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length))
  );
  const line = (cells: string[]) =>
    "| " +
    cells.map((cell, column) =>
      column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])
    ).join(" | ") + " |";
  const rule = "| " +
    widths.map((width, column) =>
      column === 0 ? "-".repeat(width) : "-".repeat(width - 1) + ":"
    ).join(" | ") + " |";
  const size = result.dataset_size;
  const budget = result.budget_seconds === null
    ? "no time budget"
    : `a budget of ${result.budget_seconds} s of training and evaluation ` +
      "per run";
  return [
    `# Model comparison on ${result.dataset}`,
    "",
    `Test metrics at each run's best valid epoch (${
      metricTitle(result.valid_metric)
    }), ` +
    (result.seeds.length > 1
      ? `mean ± sample sd over seeds ${seeds}`
      : `seed ${seeds}`) +
    `; ${size.users} users, ${size.items} items, ` +
    `${size.train}/${size.valid}/${size.test} train/valid/test rows; ` +
    `backend ${result.backend}; ${budget}. s/epoch counts training only. ` +
    `${MOST_POPULAR} ranks items by train popularity (the floor).`,
    "",
    line(header),
    rule,
    ...rows.map(line),
  ];
}

/**
 * The comparison as JSON text (everything {@linkcode compareModels}
 * returned).
 *
 * @param result The comparison.
 * @returns Indented JSON with a final newline.
 */
export function compareJson(result: CompareResult): string {
  return JSON.stringify(result, null, 2) + "\n";
}

/** `recall@20` → `Recall@20`, `ndcg@10` → `NDCG@10`. */
function metricTitle(key: string): string {
  const [name, k] = key.split("@");
  const title = name === "ndcg"
    ? "NDCG"
    : name === "map"
    ? "MAP"
    : name.charAt(0).toUpperCase() + name.slice(1);
  return `${title}@${k}`;
}

function formatValue(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value)
    ? "–"
    : value.toFixed(4);
}

function formatEpoch(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function formatStops(stops: Partial<Record<StopReason, number>>): string {
  const entries = Object.entries(stops);
  if (entries.length === 0) return "–";
  if (entries.length === 1 && entries[0][1] === 1) return entries[0][0];
  return entries.map(([reason, count]) => `${reason} ×${count}`).join(", ");
}

function checkConfigs(configs: RunConfig[]): void {
  if (configs.length === 0) {
    throw new RangeError("compareModels() needs at least one configuration");
  }
  const validMetric = configs[0].valid_metric.toLowerCase();
  const seen = new Set<string>();
  for (const config of configs) {
    const metrics = config.metrics.map((m) => m.toLowerCase());
    const missing = COMPARE_METRICS.filter((key) => {
      const [name, k] = key.split("@");
      return !metrics.includes(name) || !config.topk.includes(Number(k));
    });
    if (missing.length > 0) {
      throw new RangeError(
        `${config.model}: the comparison table needs ` +
          `${COMPARE_METRICS.join(", ")}; metrics ` +
          `[${config.metrics.join(", ")}] at topk [${
            config.topk.join(", ")
          }] ` +
          `lack ${missing.join(", ")}`,
      );
    }
    if (config.valid_metric.toLowerCase() !== validMetric) {
      throw new RangeError(
        `${config.model}: valid_metric ${config.valid_metric} differs from ` +
          `${configs[0].model}'s ${configs[0].valid_metric}; the models must ` +
          "pick their best epoch by the same metric",
      );
    }
    const key = `${config.model} seed ${config.seed}`;
    if (seen.has(key)) {
      throw new RangeError(
        `${key} appears twice; expected one configuration per model and seed`,
      );
    }
    seen.add(key);
  }
}

function meanOf(values: number[]): number {
  if (values.length === 0) return NaN;
  return values.reduce((total, x) => total + x, 0) / values.length;
}

function sampleStandardDeviation(values: number[]): number {
  if (values.length < 2) return NaN;
  const mean = meanOf(values);
  const squares = values.reduce((total, x) => total + (x - mean) ** 2, 0);
  return Math.sqrt(squares / (values.length - 1));
}
