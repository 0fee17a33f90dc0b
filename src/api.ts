/**
 * The glue behind the public API in `mod.ts`: building a model from a
 * config, training it while keeping its best-valid weights, evaluating it,
 * saving and loading it as a checkpoint, and ranking items for users.
 *
 * Every function here works on the CPU backend unless given another one,
 * prints nothing, and touches files only where its name says so
 * (checkpoints, and the graph cache when `graph_cache_dir` is set).
 *
 * @module
 */

import type { Backend } from "./engine/backend.ts";
import { cpuBackend } from "./engine/cpu.ts";
import type { Dataset, LoadDatasetOptions } from "./data/dataset.ts";
import {
  buildGraphs,
  type GraphProgress,
  type Graphs,
} from "./graph/graphs.ts";
import { rankTopK } from "./evaluation.ts";
import {
  assignTensors,
  checkDatasetFingerprint,
  CheckpointError,
  fingerprintOfDataset,
  type InteractionFileOptions,
  interactionFilePath,
  loadCheckpoint,
  saveCheckpoint,
  tensorsOf,
} from "./checkpoint.ts";
import {
  type Config,
  ConfigError,
  expandGrid,
  type RunConfig,
} from "./config.ts";
import type { Parameter } from "./engine/tensor.ts";
import type { Metrics } from "./log_lines.ts";
import type { Recommender } from "./models/model.ts";
import {
  createModel as createRegisteredModel,
  modelEntry,
} from "./models/registry.ts";
import { Random } from "./random.ts";
import {
  evaluateModel,
  train as trainRun,
  type TrainCallbacks,
  type TrainResult,
} from "./trainer.ts";

/** Options of {@linkcode createModel}. */
export interface CreateModelOptions {
  /** Where the parameters live (default the CPU backend). */
  backend?: Backend;
  /**
   * Graphs already built for this dataset, model and `knn_k`; default:
   * built now (or read from `graph_cache_dir` when the config sets one).
   */
  graphs?: Graphs;
  /** Graph building progress; nothing is printed. */
  onGraphProgress?: (progress: GraphProgress) => void;
}

/** Valid and test metrics, keyed like MMRec (`recall@20`). */
export interface SplitMetrics {
  /** Metrics on the valid split, when evaluated. */
  valid?: Metrics;
  /** Metrics on the test split, when evaluated. */
  test?: Metrics;
}

/**
 * A model together with what it takes to save, reload or report it: the
 * run configuration it was built with, the epoch its weights come from and
 * the metrics measured there. {@linkcode train} and {@linkcode loadModel}
 * return one; {@linkcode saveModel} takes one.
 */
export interface TrainedModel {
  /** The model; call `model.dispose()` when done with it. */
  model: Recommender;
  /** The run configuration it was built with. */
  config: RunConfig;
  /** Epoch (0-based, as logged) of the weights; −1 for untrained ones. */
  epoch: number;
  /** Metrics at that epoch (empty when it was not evaluated). */
  metrics: SplitMetrics;
}

/** Options of {@linkcode train}. */
export interface TrainModelOptions extends CreateModelOptions {
  /**
   * Per-batch and per-epoch callbacks. `onEpoch` receives each epoch's
   * record (loss, seconds, and valid/test metrics when evaluated) and the
   * model with that epoch's weights.
   */
  callbacks?: TrainCallbacks;
}

/** What {@linkcode train} returns. */
export interface TrainOutcome extends TrainedModel {
  /** Every epoch's record, the best epoch and test at best valid. */
  result: TrainResult;
}

/** Options of {@linkcode evaluate}; a `RunConfig` will do. */
export interface EvaluateModelOptions {
  /** List lengths K (default MMRec's `[5, 10, 20, 50]`). */
  topk?: number[];
  /** Metric names (default `Recall`, `NDCG`, `Precision`, `MAP`). */
  metrics?: string[];
  /** Users scored per block (default 4096). */
  eval_batch_size?: number;
}

/** Options of {@linkcode saveModel}. */
export interface SaveModelOptions {
  /**
   * The fingerprint of the training data (see `datasetFingerprint`);
   * default: computed from the interaction file the config locates.
   */
  datasetFingerprint?: string;
}

/** Options of {@linkcode loadModel}. */
export interface LoadModelOptions extends CreateModelOptions {
  /**
   * The config the dataset was loaded with (its `data_path`, `dataset` and
   * `inter_file_name`). When given, the interaction file must be the one
   * the checkpoint was trained on (its SHA-256 is compared); without it,
   * only the numbers of users and items and the feature widths are
   * checked, through the shapes of the weights.
   */
  datasetConfig?: LoadDatasetOptions;
}

/** Options of {@linkcode recommend}. */
export interface RecommendOptions {
  /** Users scored per block (default 4096). */
  eval_batch_size?: number;
}

/** Top-K lists of some users, as {@linkcode recommend} returns them. */
export interface Recommendations {
  /** The users, in the order asked for. */
  users: Int32Array;
  /** One list of K item IDs per user, best first. */
  items: Int32Array[];
}

/**
 * Builds a registered model (MSCA, LightGCN, BPR) with freshly initialised
 * weights from a configuration and a dataset, building the graphs it
 * propagates over.
 *
 * @param config A configuration from `loadConfig` holding one run (a grid
 *   of several is refused), or one `RunConfig` of `expandGrid`.
 * @param dataset The dataset, from `loadDataset`.
 * @param options Backend, prebuilt graphs, progress callback.
 * @returns The model; call `model.dispose()` when done with it.
 * @throws {ConfigError} When the config describes a grid of several runs.
 * @throws {RangeError} For an unknown model or bad hyper-parameters.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   createModel,
 *   generateSynthetic,
 *   loadConfig,
 *   loadDataset,
 *   writeSynthetic,
 * } from "@msca/msca";
 *
 * const dataPath = await Deno.makeTempDir();
 * writeSynthetic(
 *   generateSynthetic({
 *     name: "toy", userCount: 60, itemCount: 50, interactionCount: 600,
 *     imageDim: 8, textDim: 4, seed: 1,
 *   }),
 *   `${dataPath}/toy`,
 * );
 * const config = await loadConfig({
 *   model: "MSCA",
 *   dataset: "toy",
 *   args: { data_path: dataPath, graph_cache_dir: "", embedding_size: 8 },
 * });
 * const model = await createModel(config, loadDataset(config));
 * const users = model.stateDict().get("user_embedding.weight")!;
 * assert.deepEqual(users.shape, [60, 8]);
 * model.dispose();
 * await Deno.remove(dataPath, { recursive: true });
 * ```
 */
export async function createModel(
  config: Config | RunConfig,
  dataset: Dataset,
  options: CreateModelOptions = {},
): Promise<Recommender> {
  const run = singleRun(config);
  const graphs = options.graphs ??
    await graphsFor(run, dataset, options.onGraphProgress);
  return createRegisteredModel(run.model, {
    dataset,
    graphs,
    config: run,
    backend: options.backend ?? cpuBackend,
    random: new Random(run.seed),
  });
}

/**
 * Trains a model as `deno task train` does (MMRec's loop: Adam, evaluation
 * every `eval_step` epochs, early stopping on `valid_metric`) and returns
 * it with its best-valid weights: those of the epoch with the best valid
 * score, or of the last epoch when none was evaluated.
 *
 * @param config A configuration from `loadConfig` holding one run (a grid
 *   of several is refused), or one `RunConfig` of `expandGrid`.
 * @param dataset The dataset, from `loadDataset`.
 * @param options Backend, prebuilt graphs, callbacks (`onEpoch`, …).
 * @returns The model with its best weights, their epoch and metrics, and
 *   the training result (every epoch's record, test at best valid).
 * @throws {ConfigError} When the config describes a grid of several runs.
 * @throws {NonFiniteLossError} When a batch's loss is NaN or infinite.
 * @throws {RangeError} On a bad `valid_metric` or model setting.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateSynthetic,
 *   loadConfig,
 *   loadDataset,
 *   train,
 *   writeSynthetic,
 * } from "@msca/msca";
 *
 * const dataPath = await Deno.makeTempDir();
 * writeSynthetic(
 *   generateSynthetic({
 *     name: "toy", userCount: 60, itemCount: 50, interactionCount: 600,
 *     imageDim: 8, textDim: 4, seed: 1,
 *   }),
 *   `${dataPath}/toy`,
 * );
 * const config = await loadConfig({
 *   dataset: "toy",
 *   args: {
 *     data_path: dataPath, graph_cache_dir: "", embedding_size: 8,
 *     epochs: 2, topk: [5, 10], valid_metric: "Recall@10",
 *   },
 * });
 * const losses: number[] = [];
 * const trained = await train(config, loadDataset(config), {
 *   callbacks: { onEpoch: (record) => void losses.push(record.train_loss) },
 * });
 * assert.equal(losses.length, 2);
 * assert.equal(trained.epoch, trained.result.best_epoch);
 * assert(trained.metrics.test!["recall@10"] >= 0);
 * trained.model.dispose();
 * await Deno.remove(dataPath, { recursive: true });
 * ```
 */
export async function train(
  config: Config | RunConfig,
  dataset: Dataset,
  options: TrainModelOptions = {},
): Promise<TrainOutcome> {
  const run = singleRun(config);
  const backend = options.backend ?? cpuBackend;
  const callbacks = options.callbacks ?? {};
  const graphs = options.graphs ??
    await graphsFor(run, dataset, callbacks.onGraphProgress);

  // The trainer frees its model at the end, so the weights worth keeping
  // are read back as they appear and loaded into a fresh model afterwards.
  let kept: Map<string, Float32Array> | undefined;
  let keptEpoch = -1;
  let keptMetrics: SplitMetrics = {};
  const result = await trainRun(run, dataset, {
    backend,
    graphs,
    callbacks: {
      ...callbacks,
      onEpoch: async (record, context) => {
        const last = context.stopping || record.epoch === run.epochs - 1;
        if (record.improved || (last && keptEpoch < 0)) {
          kept = new Map();
          for (const [name, tensor] of context.model.stateDict()) {
            kept.set(name, await tensor.toArray());
          }
          keptEpoch = record.epoch;
          keptMetrics = record.valid === undefined
            ? {}
            : { valid: record.valid, test: record.test };
        }
        await callbacks.onEpoch?.(record, context);
      },
    },
  });

  const model = createRegisteredModel(run.model, {
    dataset,
    graphs,
    config: run,
    backend,
    random: new Random(run.seed),
    initialValues: kept,
  });
  return {
    model,
    config: run,
    epoch: keptEpoch,
    metrics: keptMetrics,
    result,
  };
}

/**
 * Full-ranking valid and test metrics of a model's current weights (train
 * items masked, MMRec's Recall, NDCG, Precision and MAP at every K).
 *
 * @param model The model.
 * @param dataset The dataset it was built on.
 * @param options `topk`, `metrics`, `eval_batch_size` (a `RunConfig` will
 *   do); MMRec's defaults otherwise.
 * @returns Both splits' metrics, keyed like MMRec (`recall@20`).
 * @throws {RangeError} On an unknown metric, a K larger than the number of
 *   items, or a split without users.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   createModel,
 *   evaluate,
 *   generateSynthetic,
 *   loadConfig,
 *   loadDataset,
 *   writeSynthetic,
 * } from "@msca/msca";
 *
 * const dataPath = await Deno.makeTempDir();
 * writeSynthetic(
 *   generateSynthetic({
 *     name: "toy", userCount: 60, itemCount: 50, interactionCount: 600,
 *     imageDim: 8, textDim: 4, seed: 1,
 *   }),
 *   `${dataPath}/toy`,
 * );
 * const config = await loadConfig({
 *   model: "BPR",
 *   dataset: "toy",
 *   args: { data_path: dataPath, graph_cache_dir: "", embedding_size: 8 },
 * });
 * const dataset = loadDataset(config);
 * const model = await createModel(config, dataset);
 * const { valid, test } = await evaluate(model, dataset, { topk: [10] });
 * assert("ndcg@10" in valid && "recall@10" in test);
 * model.dispose();
 * await Deno.remove(dataPath, { recursive: true });
 * ```
 */
export async function evaluate(
  model: Recommender,
  dataset: Dataset,
  options: EvaluateModelOptions = {},
): Promise<{ valid: Metrics; test: Metrics }> {
  return await evaluateModel(model, dataset, {
    topk: options.topk ?? [5, 10, 20, 50],
    metrics: options.metrics ?? ["Recall", "NDCG", "Precision", "MAP"],
    eval_batch_size: options.eval_batch_size ?? 4096,
  });
}

/**
 * Saves a model as a safetensors checkpoint (written atomically) that
 * {@linkcode loadModel} and `deno task test -c` read back: its weights
 * under the reference's PyTorch names, its run configuration, the epoch,
 * the metrics and the dataset's fingerprint.
 *
 * @param path The file to write, e.g. `best.safetensors`.
 * @param trained The model with its configuration, epoch and metrics (as
 *   {@linkcode train} returns them).
 * @param dataset The dataset it was trained on.
 * @param options A precomputed dataset fingerprint.
 * @returns Resolves once the file is in place.
 * @throws {CheckpointError} When the dataset's interaction file, needed
 *   for the fingerprint, is not where the config says.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   createModel,
 *   expandGrid,
 *   generateSynthetic,
 *   loadCheckpoint,
 *   loadConfig,
 *   loadDataset,
 *   saveModel,
 *   writeSynthetic,
 * } from "@msca/msca";
 *
 * const folder = await Deno.makeTempDir();
 * writeSynthetic(
 *   generateSynthetic({
 *     name: "toy", userCount: 60, itemCount: 50, interactionCount: 600,
 *     imageDim: 8, textDim: 4, seed: 1,
 *   }),
 *   `${folder}/toy`,
 * );
 * const config = await loadConfig({
 *   model: "LightGCN",
 *   dataset: "toy",
 *   args: { data_path: folder, graph_cache_dir: "", embedding_size: 8 },
 * });
 * const dataset = loadDataset(config);
 * const model = await createModel(config, dataset);
 * await saveModel(`${folder}/untrained.safetensors`, {
 *   model, config: expandGrid(config)[0], epoch: -1, metrics: {},
 * }, dataset);
 * const checkpoint = await loadCheckpoint(`${folder}/untrained.safetensors`);
 * assert.equal(checkpoint.metadata.model, "LightGCN");
 * model.dispose();
 * await Deno.remove(folder, { recursive: true });
 * ```
 */
export async function saveModel(
  path: string,
  trained: TrainedModel,
  dataset: Dataset,
  options: SaveModelOptions = {},
): Promise<void> {
  const fingerprint = options.datasetFingerprint ??
    await fingerprintFor(trained.config, dataset);
  await saveCheckpoint(path, {
    tensors: await tensorsOf(trained.model.stateDict()),
    metadata: {
      model: trained.config.model,
      config: trained.config,
      datasetFingerprint: fingerprint,
      epoch: trained.epoch,
      metrics: { ...trained.metrics },
    },
  });
}

/**
 * Rebuilds a model from a checkpoint written by {@linkcode saveModel} or
 * `deno task train`: the model named in it, built with the configuration
 * stored in it on the given dataset, with its weights loaded strictly
 * (every tensor present with its shape, no other). Its graphs are built
 * again (or read from the stored config's `graph_cache_dir`) unless
 * `options.graphs` holds them.
 *
 * @param path The checkpoint file.
 * @param dataset The dataset it was trained on.
 * @param options Backend, prebuilt graphs, and the dataset's config to
 *   check the interaction file against the checkpoint's fingerprint.
 * @returns The model with its configuration, epoch and metrics.
 * @throws {CheckpointError} The file is missing or not a checkpoint, its
 *   weights do not fit the model built on this dataset, or (with
 *   `datasetConfig`) it was trained on another interaction file.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   createModel,
 *   expandGrid,
 *   generateSynthetic,
 *   loadConfig,
 *   loadDataset,
 *   loadModel,
 *   saveModel,
 *   writeSynthetic,
 * } from "@msca/msca";
 *
 * const folder = await Deno.makeTempDir();
 * writeSynthetic(
 *   generateSynthetic({
 *     name: "toy", userCount: 60, itemCount: 50, interactionCount: 600,
 *     imageDim: 8, textDim: 4, seed: 1,
 *   }),
 *   `${folder}/toy`,
 * );
 * const config = await loadConfig({
 *   model: "BPR",
 *   dataset: "toy",
 *   args: { data_path: folder, graph_cache_dir: "", embedding_size: 8 },
 * });
 * const dataset = loadDataset(config);
 * const model = await createModel(config, dataset);
 * const path = `${folder}/bpr.safetensors`;
 * await saveModel(path, {
 *   model, config: expandGrid(config)[0], epoch: -1, metrics: {},
 * }, dataset);
 * const loaded = await loadModel(path, dataset, { datasetConfig: config });
 * assert.equal(loaded.config.model, "BPR");
 * assert.equal(loaded.epoch, -1);
 * model.dispose();
 * loaded.model.dispose();
 * await Deno.remove(folder, { recursive: true });
 * ```
 */
export async function loadModel(
  path: string,
  dataset: Dataset,
  options: LoadModelOptions = {},
): Promise<TrainedModel> {
  const checkpoint = await loadCheckpoint(path);
  if (options.datasetConfig !== undefined) {
    checkDatasetFingerprint(
      checkpoint,
      await fingerprintFor(options.datasetConfig, dataset),
      options.datasetConfig.dataset,
    );
  }
  const config = checkpoint.metadata.config as RunConfig;
  if (config.model !== checkpoint.metadata.model) {
    throw new CheckpointError(
      path,
      `its config names model "${config.model}" but its metadata ` +
        `"${checkpoint.metadata.model}"`,
    );
  }
  const model = await createModel(config, dataset, options);
  try {
    assignTensors(
      [...model.stateDict()].map(([name, tensor]) => ({
        name,
        shape: tensor.shape,
        assign: (values: Float32Array) => (tensor as Parameter).assign(values),
      })),
      checkpoint.tensors,
      path,
    );
  } catch (error) {
    model.dispose();
    throw error;
  }
  return {
    model,
    config,
    epoch: checkpoint.metadata.epoch,
    metrics: checkpoint.metadata.metrics as SplitMetrics,
  };
}

/**
 * The top-K items of some users by the model's current weights, with each
 * user's train items masked as in evaluation (MMRec's ranking: ties go to
 * the smaller item ID). A user with fewer than K items left gets masked
 * items at the end of the list.
 *
 * @param model The model.
 * @param dataset The dataset it was built on (its train items are masked).
 * @param users User IDs, `0 … userCount − 1`.
 * @param k Length of each list, at most the number of items.
 * @param options Users scored per block.
 * @returns The users and one list of `k` item IDs each, best first.
 * @throws {RangeError} A user ID out of range, or a bad `k`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   createModel,
 *   generateSynthetic,
 *   loadConfig,
 *   loadDataset,
 *   recommend,
 *   writeSynthetic,
 * } from "@msca/msca";
 *
 * const dataPath = await Deno.makeTempDir();
 * writeSynthetic(
 *   generateSynthetic({
 *     name: "toy", userCount: 60, itemCount: 50, interactionCount: 600,
 *     imageDim: 8, textDim: 4, seed: 1,
 *   }),
 *   `${dataPath}/toy`,
 * );
 * const config = await loadConfig({
 *   model: "BPR",
 *   dataset: "toy",
 *   args: { data_path: dataPath, graph_cache_dir: "", embedding_size: 8 },
 * });
 * const dataset = loadDataset(config);
 * const model = await createModel(config, dataset);
 * const { items } = await recommend(model, dataset, [0, 7], 5);
 * assert.equal(items.length, 2);
 * assert.equal(items[0].length, 5);
 * model.dispose();
 * await Deno.remove(dataPath, { recursive: true });
 * ```
 */
export async function recommend(
  model: Recommender,
  dataset: Dataset,
  users: ArrayLike<number>,
  k: number,
  options: RecommendOptions = {},
): Promise<Recommendations> {
  const ids = Int32Array.from(users);
  for (let index = 0; index < users.length; index++) {
    const user = users[index];
    if (!Number.isInteger(user) || user < 0 || user >= dataset.userCount) {
      throw new RangeError(
        `user ${user} (at index ${index}) is not a user ID of dataset ` +
          `"${dataset.name}"; expected an integer in 0..` +
          `${dataset.userCount - 1}`,
      );
    }
  }
  if (ids.length === 0) return { users: ids, items: [] };
  const scorer = model.scorer();
  let ranked: Int32Array;
  try {
    ranked = await rankTopK(
      dataset,
      scorer,
      ids,
      k,
      options.eval_batch_size ?? 4096,
    );
  } finally {
    scorer.dispose();
  }
  return {
    users: ids,
    items: Array.from(
      { length: ids.length },
      (_, row) => ranked.subarray(row * k, (row + 1) * k),
    ),
  };
}

/** The one run a config describes; a grid of several is an error. */
function singleRun(config: Config | RunConfig): RunConfig {
  const runs = expandGrid(config as Config);
  if (runs.length !== 1) {
    throw new ConfigError(
      `the config describes ${runs.length} runs (a grid over ` +
        `${config.hyper_parameters.join(", ")}); pass one of expandGrid()'s ` +
        "runs, or give each of those keys a single value",
      { key: "hyper_parameters" },
    );
  }
  return runs[0];
}

function graphsFor(
  run: RunConfig,
  dataset: Dataset,
  onProgress: ((progress: GraphProgress) => void) | undefined,
): Promise<Graphs> {
  return buildGraphs(dataset, {
    knn_k: run.knn_k ?? 10,
    cacheDir: run.graph_cache_dir ? run.graph_cache_dir : null,
    modelKind: modelEntry(run.model).graphKind,
    onProgress,
  });
}

async function fingerprintFor(
  config: InteractionFileOptions,
  dataset: Dataset,
): Promise<string> {
  try {
    return await fingerprintOfDataset(config, dataset);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new CheckpointError(
      interactionFilePath(config),
      "the dataset's interaction file is not here, so the dataset cannot " +
        "be fingerprinted; check data_path and dataset, or pass " +
        "datasetFingerprint",
    );
  }
}
