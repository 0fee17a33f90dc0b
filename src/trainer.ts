/**
 * The training loop researchers know from MMRec (spec section 9): epochs of
 * shuffled batches with Adam, a learning-rate schedule `lr · γ^(e / s)`,
 * full-ranking evaluation of valid and test every `eval_step` epochs, early
 * stopping on `valid_metric`, the test score at the best valid epoch, and a
 * grid search over `hyper_parameters`.
 *
 * Nothing here prints: progress and per-epoch records go to callbacks, and
 * `log_lines.ts` turns them into MMRec's log lines. The state a resumed run
 * needs (parameters, Adam moments, generator, counters, history) is
 * available from the per-epoch callback as a `TrainingState`
 * (`src/checkpoint.ts`), and `train()` continues from one.
 *
 * @module
 */

import type { Backend } from "./engine/backend.ts";
import { Adam, type AdamState } from "./engine/adam.ts";
import { cpuBackend } from "./engine/cpu.ts";
import { type DeviceChoice, selectBackend } from "./engine/webgpu_choice.ts";
import type { Tensor } from "./engine/tensor.ts";
import type { Dataset } from "./data/dataset.ts";
import { BatchSampler } from "./data/sampler.ts";
import {
  buildGraphs,
  type GraphProgress,
  type Graphs,
} from "./graph/graphs.ts";
import { evaluate } from "./evaluation.ts";
import type { TensorMap, TrainingState } from "./checkpoint.ts";
import type { Config, RunConfig } from "./config.ts";
import { expandGrid } from "./config.ts";
import type { Recommender } from "./models/model.ts";
import { createModel, modelEntry } from "./models/registry.ts";
import { Random } from "./random.ts";
import {
  bestSummaryLines,
  bestUpdatedLine,
  evaluationLine,
  type Metrics,
  resultLines,
  trainingLine,
} from "./log_lines.ts";

/**
 * A loss that became NaN or infinite: the run stops, naming the epoch, the
 * batch and the first non-finite part of the loss.
 */
export class NonFiniteLossError extends Error {
  /** Epoch (0-based, as logged). */
  readonly epoch: number;
  /** Batch within the epoch (0-based). */
  readonly batch: number;
  /** The first non-finite loss part (`bpr`, `C_u`, …, or `loss`). */
  readonly part: string;
  /** Its value. */
  readonly value: number;

  /**
   * Creates the error; the message names all four.
   *
   * @param epoch Epoch (0-based).
   * @param batch Batch (0-based).
   * @param part The loss part.
   * @param value Its value.
   */
  constructor(epoch: number, batch: number, part: string, value: number) {
    super(
      `loss is ${value} at epoch ${epoch}, batch ${batch} (first ` +
        `non-finite part: ${part}); lower learning_rate or check the ` +
        "features for extreme values",
    );
    this.name = "NonFiniteLossError";
    this.epoch = epoch;
    this.batch = batch;
    this.part = part;
    this.value = value;
  }
}

/**
 * The keys the trainer reads (a `RunConfig` has them all), plus the
 * model's own hyper-parameters.
 */
export type TrainConfig =
  & Pick<
    RunConfig,
    | "model"
    | "seed"
    | "epochs"
    | "train_batch_size"
    | "learning_rate"
    | "learning_rate_scheduler"
    | "eval_step"
    | "stopping_step"
    | "valid_metric"
    | "metrics"
    | "topk"
    | "eval_batch_size"
  >
  & Partial<Pick<RunConfig, "graph_cache_dir" | "knn_k">>
  & Record<string, unknown>;

/** One epoch as `summary.json` records it (MMRec's 0-based epoch). */
export interface EpochRecord {
  /** Epoch number, 0-based as MMRec logs it. */
  epoch: number;
  /** Mean loss over the epoch's batches. */
  train_loss: number;
  /** Seconds of training (batches, backward, Adam). */
  train_seconds: number;
  /** Learning rate used in this epoch. */
  learning_rate: number;
  /** Seconds of evaluation (valid and test), when evaluated. */
  eval_seconds?: number;
  /** `valid_metric` on valid, when evaluated. */
  valid_score?: number;
  /** Valid metrics, when evaluated. */
  valid?: Metrics;
  /** Test metrics, when evaluated. */
  test?: Metrics;
  /** Whether this evaluation set a new best valid score. */
  improved?: boolean;
}

/** Early-stopping counters, as saved in a `TrainingState`. */
export interface EarlyStopping {
  /** Best valid score so far (−1 before the first evaluation, as MMRec). */
  best_score: number;
  /** Epoch of the best valid score (−1 before the first evaluation). */
  best_epoch: number;
  /** Evaluations since the last improvement. */
  patience: number;
  /** Valid metrics at the best epoch. */
  best_valid: Metrics;
  /** Test metrics at the best epoch. */
  test_at_best_valid: Metrics;
}

/** One batch done, for progress bars. */
export interface BatchProgress {
  /** Epoch (0-based). */
  epoch: number;
  /** Batches done in this epoch (1-based count). */
  done: number;
  /** Batches per epoch. */
  total: number;
  /** This batch's loss. */
  loss: number;
}

/** What the per-epoch callback receives besides the record. */
export interface EpochContext {
  /** The model, with this epoch's parameters. */
  model: Recommender;
  /** Early-stopping counters after this epoch. */
  earlyStopping: EarlyStopping;
  /** Whether training stops after this epoch. */
  stopping: boolean;
  /**
   * Reads the whole training state (for `--resume`); the returned state
   * resumes at the next epoch exactly as an uninterrupted run would. Call
   * it (and await it) inside the callback: training continues afterwards.
   *
   * @returns The state.
   */
  state(): Promise<TrainingState>;
}

/** Callbacks of {@linkcode train}; none may print from library code. */
export interface TrainCallbacks {
  /** After each batch. */
  onBatch?: (progress: BatchProgress) => void;
  /**
   * After each epoch (and its evaluation). With `record.improved`, the
   * model holds the new best weights: save the checkpoint here.
   */
  onEpoch?: (
    record: EpochRecord,
    context: EpochContext,
  ) => void | Promise<void>;
  /** Graph building progress (before the first epoch). */
  onGraphProgress?: (progress: GraphProgress) => void;
}

/** Options of {@linkcode train}. */
export interface TrainOptions {
  /** The backend to train on (default the CPU). */
  backend?: Backend;
  /** Graphs already built for this dataset and `knn_k` (else built). */
  graphs?: Graphs;
  /** Progress and per-epoch callbacks. */
  callbacks?: TrainCallbacks;
  /** A state saved after an epoch: training continues from the next. */
  resume?: TrainingState;
}

/** The outcome of {@linkcode train}. */
export interface TrainResult {
  /** Model name. */
  model: string;
  /** The values of the `hyper_parameters` keys of this run. */
  parameters: Record<string, unknown>;
  /** Every epoch trained, resumed ones included. */
  epochs: EpochRecord[];
  /** Epoch of the best valid score (−1 when never evaluated). */
  best_epoch: number;
  /** The `valid_metric` key, lower-case (`recall@20`). */
  valid_metric: string;
  /** Valid metrics at the best epoch. */
  best_valid: Metrics;
  /** Test metrics at the best valid epoch. */
  test_at_best_valid: Metrics;
  /** Whether early stopping ended the run (else `epochs` did). */
  stopped_early: boolean;
  /** Wall seconds of this call. */
  seconds: number;
}

/**
 * Opens a backend by config name.
 *
 * @param device `cpu`, `webgpu`, or `auto` (times a slice of MSCA's
 *   feature projection on both backends and takes the faster).
 * @param report Receives one line saying what was picked and why.
 * @returns The backend.
 * @throws {WebGpuUnavailableError} When `webgpu` is asked for and no
 *   adapter exists.
 * @throws {RangeError} When the name is unknown.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openBackend } from "./trainer.ts";
 *
 * const backend = await openBackend("cpu");
 * assert.equal(backend.name, "cpu");
 * ```
 */
export async function openBackend(
  device: string,
  report?: (reason: string) => void,
): Promise<Backend> {
  const selection = await selectBackend(device as DeviceChoice);
  report?.(selection.reason);
  return selection.backend;
}

/**
 * Trains one configuration to early stopping (or `epochs`), evaluating
 * valid and test every `eval_step` epochs.
 *
 * @param config One run's configuration (a `RunConfig`).
 * @param dataset The dataset.
 * @param options Backend, prebuilt graphs, callbacks, resume state.
 * @returns Per-epoch records and the test metrics at the best valid epoch.
 * @throws {NonFiniteLossError} When a batch's loss is NaN or infinite.
 * @throws {RangeError} On a bad `valid_metric` or model setting.
 * @example
 * ```ts ignore
 * const result = await train(runConfig, dataset, {
 *   callbacks: {
 *     onEpoch: (record) =>
 *       epochLogLines(record, "MSCA").forEach((l) => console.log(l)),
 *   },
 * });
 * result.test_at_best_valid["recall@20"];
 * ```
 */
export async function train(
  config: TrainConfig,
  dataset: Dataset,
  options: TrainOptions = {},
): Promise<TrainResult> {
  const started = performance.now();
  const backend = options.backend ?? cpuBackend;
  const callbacks = options.callbacks ?? {};
  const validMetric = config.valid_metric.toLowerCase();
  const topk = config.topk;
  const metricNames = config.metrics.map((m) => m.toLowerCase());
  if (
    !metricNames.includes(validMetric.split("@")[0]) ||
    !topk.includes(Number(validMetric.split("@")[1]))
  ) {
    throw new RangeError(
      `valid_metric "${config.valid_metric}" is not among the metrics ` +
        `computed (metrics ${config.metrics.join(", ")} at topk ` +
        `${topk.join(", ")})`,
    );
  }

  const graphs = options.graphs ?? await buildGraphs(dataset, {
    knn_k: config.knn_k ?? 10,
    cacheDir: config.graph_cache_dir ? config.graph_cache_dir : null,
    modelKind: modelEntry(config.model).graphKind,
    onProgress: callbacks.onGraphProgress,
  });
  let random = new Random(config.seed);
  const model = createModel(config.model, {
    dataset,
    graphs,
    config,
    backend,
    random,
  });
  const optimizer = new Adam(model.trainableParameters(), {
    learningRate: config.learning_rate,
  });

  let firstEpoch = 0;
  let history: EpochRecord[] = [];
  let stopping = initialEarlyStopping();
  if (options.resume !== undefined) {
    const state = options.resume;
    restoreParameters(model, state.parameters);
    optimizer.loadState(adamStateFrom(state, optimizer));
    random = Random.fromState(state.random);
    stopping = structuredClone(state.earlyStopping) as unknown as EarlyStopping;
    history = structuredClone(state.history) as EpochRecord[];
    firstEpoch = state.epoch + 1;
  }
  const sampler = new BatchSampler(dataset, config.train_batch_size, random);
  const [gamma, stepSize] = config.learning_rate_scheduler;
  let stoppedEarly = false;

  try {
    for (let epoch = firstEpoch; epoch < config.epochs; epoch++) {
      const learningRate = config.learning_rate * gamma ** (epoch / stepSize);
      optimizer.setLearningRate(learningRate);
      const epochStart = performance.now();
      let lossSum = 0;
      let batchIndex = 0;
      for (const batch of sampler.epoch()) {
        lossSum += await trainStep(model, optimizer, batch, epoch, batchIndex);
        batchIndex++;
        callbacks.onBatch?.({
          epoch,
          done: batchIndex,
          total: sampler.batchCount,
          loss: lossSum / batchIndex,
        });
      }
      await backend.synchronize();
      const record: EpochRecord = {
        epoch,
        train_loss: lossSum / Math.max(batchIndex, 1),
        train_seconds: (performance.now() - epochStart) / 1000,
        learning_rate: learningRate,
      };

      if ((epoch + 1) % config.eval_step === 0) {
        const evalStart = performance.now();
        const { valid, test } = await evaluateModel(model, dataset, config);
        record.eval_seconds = (performance.now() - evalStart) / 1000;
        record.valid = valid;
        record.test = test;
        record.valid_score = valid[validMetric];
        stopping = updateEarlyStopping(
          stopping,
          epoch,
          validMetric,
          valid,
          test,
        );
        record.improved = stopping.best_epoch === epoch;
        stoppedEarly = stopping.patience > config.stopping_step;
      }
      history.push(record);

      const snapshot = { ...stopping };
      await callbacks.onEpoch?.(record, {
        model,
        earlyStopping: snapshot,
        stopping: stoppedEarly,
        state: () =>
          captureState(model, optimizer, random, epoch, snapshot, history),
      });
      if (stoppedEarly) break;
    }
  } finally {
    optimizer.free();
    model.dispose();
  }

  return {
    model: config.model,
    parameters: runParameters(config),
    epochs: history,
    best_epoch: stopping.best_epoch,
    valid_metric: validMetric,
    best_valid: stopping.best_valid,
    test_at_best_valid: stopping.test_at_best_valid,
    stopped_early: stoppedEarly,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Early-stopping counters before the first evaluation.
 *
 * @returns Best score −1 (as MMRec), no best epoch, patience 0.
 */
export function initialEarlyStopping(): EarlyStopping {
  return {
    best_score: -1,
    best_epoch: -1,
    patience: 0,
    best_valid: {},
    test_at_best_valid: {},
  };
}

/**
 * MMRec's early-stopping rule after one evaluation: a strictly better
 * valid score resets the patience and records the epoch's metrics; any
 * other score adds one to the patience. Training stops once the patience
 * exceeds `stopping_step`.
 *
 * @param stopping The counters so far.
 * @param epoch The evaluated epoch.
 * @param validMetric The key of the score, e.g. `recall@20`.
 * @param valid Valid metrics of the epoch.
 * @param test Test metrics of the epoch.
 * @returns The new counters.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initialEarlyStopping, updateEarlyStopping } from "./trainer.ts";
 *
 * let stopping = initialEarlyStopping();
 * stopping = updateEarlyStopping(stopping, 0, "recall@20", {
 *   "recall@20": 0.1,
 * }, { "recall@20": 0.09 });
 * assert.equal(stopping.best_epoch, 0);
 * assert.equal(stopping.patience, 0);
 * ```
 */
export function updateEarlyStopping(
  stopping: EarlyStopping,
  epoch: number,
  validMetric: string,
  valid: Metrics,
  test: Metrics,
): EarlyStopping {
  const score = valid[validMetric];
  if (score > stopping.best_score) {
    return {
      best_score: score,
      best_epoch: epoch,
      patience: 0,
      best_valid: valid,
      test_at_best_valid: test,
    };
  }
  return { ...stopping, patience: stopping.patience + 1 };
}

/**
 * One optimisation step: forward, backward, Adam, and the loss read back
 * (after the update, so a GPU runs the whole step before the one sync).
 *
 * @param model The model.
 * @param optimizer Its optimiser.
 * @param batch The batch.
 * @param epoch Epoch, for the error message.
 * @param batchIndex Batch, for the error message.
 * @returns The batch's loss.
 * @throws {NonFiniteLossError} When the loss is NaN or infinite.
 */
export async function trainStep(
  model: Recommender,
  optimizer: Adam,
  batch: { users: Int32Array; positives: Int32Array; negatives: Int32Array },
  epoch: number,
  batchIndex: number,
): Promise<number> {
  const output = model.loss(batch);
  const parts = Object.entries(output.parts);
  for (const [, part] of parts) part.retain();
  optimizer.zeroGrad();
  output.loss.backward();
  output.release();
  optimizer.step();
  const loss = await output.loss.item();
  if (!Number.isFinite(loss)) {
    const culprit = await firstNonFinite(parts);
    for (const [, part] of parts) part.free();
    throw new NonFiniteLossError(
      epoch,
      batchIndex,
      culprit?.[0] ?? "loss",
      culprit?.[1] ?? loss,
    );
  }
  for (const [, part] of parts) part.free();
  return loss;
}

async function firstNonFinite(
  parts: [string, Tensor][],
): Promise<[string, number] | undefined> {
  for (const [name, part] of parts) {
    if (name === "loss") continue;
    const value = await part.item();
    if (!Number.isFinite(value)) return [name, value];
  }
  return undefined;
}

/**
 * Valid and test metrics of a model's current parameters (one forward
 * pass without gradient, then blocks of users).
 *
 * @param model The model.
 * @param dataset The dataset.
 * @param config `topk`, `metrics`, `eval_batch_size`.
 * @returns Both splits' metrics, keyed like MMRec.
 */
export async function evaluateModel(
  model: Recommender,
  dataset: Dataset,
  config: Pick<TrainConfig, "topk" | "metrics" | "eval_batch_size">,
): Promise<{ valid: Metrics; test: Metrics }> {
  const scorer = model.scorer();
  try {
    const options = {
      topk: config.topk,
      metrics: config.metrics,
      evalBatchSize: config.eval_batch_size,
    };
    const valid = await evaluate(dataset, "valid", scorer, options);
    const test = await evaluate(dataset, "test", scorer, options);
    return { valid: valid.metrics, test: test.metrics };
  } finally {
    scorer.dispose();
  }
}

/** One combination of a grid search. */
export interface GridCombination {
  /** Its `hyper_parameters` values. */
  parameters: Record<string, unknown>;
  /** Its training result. */
  result: TrainResult;
}

/** The outcome of {@linkcode gridSearch}. */
export interface GridSearchResult {
  /** Every combination, in MMRec's order (first key slowest). */
  combinations: GridCombination[];
  /** Index of the best combination by valid score. */
  best_by_valid: number;
  /** Index of the best by test score (MMRec's choice, for comparison). */
  best_by_test: number;
  /** The `valid_metric` key. */
  valid_metric: string;
}

/** Options of {@linkcode gridSearch}. */
export interface GridSearchOptions extends Omit<TrainOptions, "callbacks"> {
  /**
   * Callbacks of each combination's training, given the combination's
   * index and parameters.
   */
  callbacksFor?: (
    index: number,
    count: number,
    parameters: Record<string, unknown>,
  ) => TrainCallbacks;
}

/**
 * Trains every combination of the `hyper_parameters` lists, each from a
 * fresh model seeded by its `seed`, and picks the best by valid score.
 * Graphs are rebuilt (or read from the cache) only when `knn_k` changes.
 *
 * @param config A loaded configuration (lists allowed).
 * @param dataset The dataset.
 * @param options Backend and per-combination callbacks.
 * @returns Every combination's result and the best by valid and by test.
 * @example
 * ```ts ignore
 * const search = await gridSearch(config, dataset, {});
 * gridTableLines(search).forEach((line) => console.log(line));
 * ```
 */
export async function gridSearch(
  config: Config,
  dataset: Dataset,
  options: GridSearchOptions = {},
): Promise<GridSearchResult> {
  const runs = expandGrid(config);
  const combinations: GridCombination[] = [];
  let graphs = options.graphs;
  let graphKnn = graphs === undefined ? undefined : runs[0].knn_k;
  for (let index = 0; index < runs.length; index++) {
    const run = runs[index];
    const parameters = runParameters(run);
    const callbacks = options.callbacksFor?.(index, runs.length, parameters);
    if (graphs === undefined || graphKnn !== run.knn_k) {
      graphs = await buildGraphs(dataset, {
        knn_k: run.knn_k ?? 10,
        cacheDir: run.graph_cache_dir ? run.graph_cache_dir : null,
        modelKind: modelEntry(run.model).graphKind,
        onProgress: callbacks?.onGraphProgress,
      });
      graphKnn = run.knn_k;
    }
    const result = await train(run, dataset, {
      backend: options.backend,
      graphs,
      callbacks,
    });
    combinations.push({ parameters, result });
  }
  const metric = combinations[0].result.valid_metric;
  const bestBy = (pick: (c: GridCombination) => number) =>
    combinations.reduce(
      (best, c, i) => pick(c) > pick(combinations[best]) ? i : best,
      0,
    );
  return {
    combinations,
    best_by_valid: bestBy((c) => c.result.best_valid[metric] ?? -1),
    best_by_test: bestBy((c) => c.result.test_at_best_valid[metric] ?? -1),
    valid_metric: metric,
  };
}

/**
 * The values of a run's `hyper_parameters` keys.
 *
 * @param config A run configuration.
 * @returns E.g. `{seed: 999, n_layers: 2}`.
 */
export function runParameters(config: TrainConfig): Record<string, unknown> {
  const keys = (config.hyper_parameters as string[] | undefined) ?? ["seed"];
  return Object.fromEntries(keys.map((key) => [key, config[key]]));
}

/**
 * MMRec's log lines for one epoch record: training, and when evaluated
 * also evaluating, valid/test results and the best-so-far marker.
 *
 * @param record The record from the per-epoch callback.
 * @param model Model name for the marker.
 * @returns Lines to print.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { epochLogLines } from "./trainer.ts";
 *
 * const lines = epochLogLines({
 *   epoch: 0, train_loss: 0.69, train_seconds: 1.2, learning_rate: 1e-3,
 * }, "MSCA");
 * assert.match(lines[0], /^epoch 0 training /);
 * ```
 */
export function epochLogLines(record: EpochRecord, model: string): string[] {
  const lines = [
    trainingLine(record.epoch, record.train_seconds, record.train_loss),
  ];
  if (record.valid !== undefined && record.test !== undefined) {
    lines.push(
      evaluationLine(
        record.epoch,
        record.eval_seconds ?? 0,
        record.valid_score ?? NaN,
      ),
      ...resultLines(record.valid, record.test),
    );
    if (record.improved) lines.push(bestUpdatedLine(model));
  }
  return lines;
}

/**
 * The closing summary of a run.
 *
 * @param result What {@linkcode train} returned.
 * @returns The BEST banner, parameters and the valid and test lines.
 */
export function finalLogLines(result: TrainResult): string[] {
  return bestSummaryLines(
    result.parameters,
    result.best_epoch,
    result.best_valid,
    result.test_at_best_valid,
  );
}

/**
 * The closing table of a grid search: every combination with valid and
 * test side by side at its best valid epoch; `*` marks the best by valid
 * score (the sound choice), `T` the best by test (MMRec's choice).
 *
 * @param search What {@linkcode gridSearch} returned.
 * @param metrics Metric keys to show (default the valid metric and the
 *   NDCG at the same K).
 * @returns Lines to print.
 */
export function gridTableLines(
  search: GridSearchResult,
  metrics: string[] = defaultTableMetrics(search.valid_metric),
): string[] {
  const keys = Object.keys(search.combinations[0]?.parameters ?? {});
  const header = [
    "  ",
    ...keys,
    "best epoch",
    ...metrics.flatMap((m) => [`valid ${m}`, `test ${m}`]),
  ];
  const rows = search.combinations.map((c, i) => [
    (i === search.best_by_valid ? "*" : " ") +
    (i === search.best_by_test ? "T" : " "),
    ...keys.map((k) => JSON.stringify(c.parameters[k])),
    String(c.result.best_epoch),
    ...metrics.flatMap((m) => [
      formatMetric(c.result.best_valid[m]),
      formatMetric(c.result.test_at_best_valid[m]),
    ]),
  ]);
  const widths = header.map((h, col) =>
    Math.max(h.length, ...rows.map((row) => row[col].length))
  );
  const line = (cells: string[]) =>
    cells.map((cell, col) => cell.padEnd(widths[col])).join("  ").trimEnd();
  const best = search.combinations[search.best_by_valid];
  return [
    `grid search: ${search.combinations.length} combinations; * best by ` +
    `valid ${search.valid_metric}, T best by test (MMRec's pick)`,
    line(header),
    ...rows.map(line),
    ...bestSummaryLines(
      best.parameters,
      best.result.best_epoch,
      best.result.best_valid,
      best.result.test_at_best_valid,
    ),
  ];
}

function defaultTableMetrics(validMetric: string): string[] {
  const k = validMetric.split("@")[1];
  const ndcg = `ndcg@${k}`;
  return ndcg === validMetric ? [validMetric] : [validMetric, ndcg];
}

function formatMetric(value: number | undefined): string {
  return value === undefined ? "-" : value.toFixed(4);
}

/**
 * A run's summary as `summary.json` keeps it: the config, every epoch, the
 * best epoch, best valid and test at best valid.
 *
 * @param config The run's configuration.
 * @param result What {@linkcode train} returned.
 * @returns A JSON-ready object.
 */
export function runSummary(
  config: TrainConfig | Config,
  result: TrainResult,
): Record<string, unknown> {
  return {
    config,
    epochs: result.epochs,
    best_epoch: result.best_epoch,
    valid_metric: result.valid_metric,
    best_valid: result.best_valid,
    test_at_best_valid: result.test_at_best_valid,
    stopped_early: result.stopped_early,
    seconds: result.seconds,
  };
}

async function captureState(
  model: Recommender,
  optimizer: Adam,
  random: Random,
  epoch: number,
  earlyStopping: EarlyStopping,
  history: EpochRecord[],
): Promise<TrainingState> {
  const parameters: TensorMap = new Map();
  for (const [name, tensor] of model.stateDict()) {
    parameters.set(name, {
      shape: [...tensor.shape],
      data: await tensor.toArray(),
    });
  }
  const adam = await optimizer.state();
  const firstMoment: TensorMap = new Map();
  const secondMoment: TensorMap = new Map();
  let step = 0;
  const shapes = new Map(optimizer.parameters.map((p) => [p.name, p.shape]));
  for (const [name, saved] of Object.entries(adam.parameters)) {
    const shape = [...shapes.get(name)!];
    firstMoment.set(name, { shape, data: saved.firstMoment });
    secondMoment.set(name, { shape, data: saved.secondMoment });
    step = Math.max(step, saved.step);
  }
  return {
    epoch,
    parameters,
    adam: { step, firstMoment, secondMoment },
    random: random.state(),
    earlyStopping: { ...earlyStopping },
    history: structuredClone(history),
    extra: { learning_rate: adam.learningRate },
  };
}

function restoreParameters(model: Recommender, saved: TensorMap): void {
  for (const [name, tensor] of model.stateDict()) {
    const values = saved.get(name);
    if (values === undefined) {
      throw new RangeError(
        `training state has no values for parameter "${name}"`,
      );
    }
    (tensor as Tensor & { assign(values: ArrayLike<number>): void })
      .assign(values.data);
  }
}

function adamStateFrom(state: TrainingState, optimizer: Adam): AdamState {
  const parameters: AdamState["parameters"] = {};
  for (const [name, first] of state.adam.firstMoment) {
    const second = state.adam.secondMoment.get(name);
    if (second === undefined) {
      throw new RangeError(
        `training state has a first but no second Adam moment for "${name}"`,
      );
    }
    parameters[name] = {
      step: state.adam.step,
      firstMoment: first.data,
      secondMoment: second.data,
    };
  }
  return {
    learningRate: optimizer.learningRate,
    beta1: optimizer.beta1,
    beta2: optimizer.beta2,
    epsilon: optimizer.epsilon,
    parameters,
  };
}
