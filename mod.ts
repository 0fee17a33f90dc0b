/**
 * msca-deno as a library: MSCA ("Multi-view Semantic Contrastive Alignment
 * for Multimodal Recommendation", WWW 2026), LightGCN and BPR on MMRec's
 * data layout and configs, trained on the CPU or with WebGPU.
 *
 * The path through it:
 *
 * 1. {@linkcode loadConfig} merges `configs/` (overall < dataset < model)
 *    with your overrides (`configDir` names another folder of configs);
 *    {@linkcode loadDataset} reads `<data_path>/<dataset>/`
 *    (`<dataset>.inter`, `image_feat.npy`, `text_feat.npy`);
 *    {@linkcode generateSynthetic} and {@linkcode writeSynthetic} make a
 *    dataset in that layout.
 * 2. {@linkcode train} runs MMRec's training loop with a per-epoch callback
 *    and returns the model with its best-valid weights;
 *    {@linkcode createModel} builds an untrained one.
 * 3. {@linkcode evaluate} ranks every item (full ranking, train items
 *    masked) for MMRec's Recall, NDCG, Precision and MAP;
 *    {@linkcode recommend} returns top-K lists for chosen users.
 * 4. {@linkcode saveModel} writes a safetensors checkpoint (the one
 *    `deno task test -c` reads) and {@linkcode loadModel} rebuilds the
 *    model from it.
 *
 * Importing this module does nothing by itself: it reads no file, asks for
 * no GPU and prints nothing. Functions print nothing either; they return
 * values or report through callbacks. Models are built on the CPU backend
 * unless given another one: `backend: await openBackend("webgpu")`, which
 * throws {@linkcode WebGpuUnavailableError} on a machine without a WebGPU
 * adapter (`openBackend("auto")` takes the CPU there instead). The tensor
 * engine (tensors, ops with autodiff, backends, Adam) is the `./engine`
 * entry point.
 *
 * @example Train MSCA on a small synthetic dataset, then use the model
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   evaluate,
 *   generateSynthetic,
 *   loadConfig,
 *   loadDataset,
 *   loadModel,
 *   recommend,
 *   saveModel,
 *   train,
 *   writeSynthetic,
 * } from "@msca/msca";
 *
 * // A dataset in MMRec's layout: <data_path>/toy/toy.inter + features.
 * const dataPath = await Deno.makeTempDir();
 * writeSynthetic(
 *   generateSynthetic({
 *     name: "toy", userCount: 60, itemCount: 50, interactionCount: 600,
 *     imageDim: 8, textDim: 4, seed: 1,
 *   }),
 *   `${dataPath}/toy`,
 * );
 *
 * // configs/ < these overrides; "" turns the graph cache off.
 * const config = await loadConfig({
 *   model: "MSCA",
 *   dataset: "toy",
 *   args: {
 *     data_path: dataPath, graph_cache_dir: "", embedding_size: 8,
 *     epochs: 2, topk: [5, 10], valid_metric: "Recall@10",
 *   },
 * });
 * const dataset = loadDataset(config);
 *
 * const trained = await train(config, dataset, {
 *   callbacks: {
 *     onEpoch: (record) => {
 *       assert(Number.isFinite(record.train_loss));
 *     },
 *   },
 * });
 * // The model holds the weights of the best valid epoch.
 * const { test } = await evaluate(trained.model, dataset, config);
 * assert.equal(test["recall@10"], trained.metrics.test!["recall@10"]);
 *
 * // Save, load back, and rank 10 items for users 0, 1 and 2.
 * const path = `${dataPath}/msca.safetensors`;
 * await saveModel(path, trained, dataset);
 * const loaded = await loadModel(path, dataset, { datasetConfig: config });
 * const { items } = await recommend(loaded.model, dataset, [0, 1, 2], 10);
 * assert.equal(items.length, 3);
 * assert.deepEqual(
 *   items,
 *   (await recommend(trained.model, dataset, [0, 1, 2], 10)).items,
 * );
 *
 * trained.model.dispose();
 * loaded.model.dispose();
 * await Deno.remove(dataPath, { recursive: true });
 * ```
 *
 * @module
 */

export {
  createModel,
  type CreateModelOptions,
  evaluate,
  type EvaluateModelOptions,
  loadModel,
  type LoadModelOptions,
  recommend,
  type Recommendations,
  type RecommendOptions,
  saveModel,
  type SaveModelOptions,
  type SplitMetrics,
  train,
  type TrainedModel,
  type TrainModelOptions,
  type TrainOutcome,
} from "./src/api.ts";
export {
  type Config,
  CONFIG_KEYS,
  ConfigError,
  type ConfigKey,
  expandGrid,
  type KeySpec,
  type KeyType,
  loadConfig,
  type LoadConfigOptions,
  type RunConfig,
  type ValueOf,
} from "./src/config.ts";
export type { CommandLine } from "./src/cli/args.ts";
export {
  type Dataset,
  type FeatureTable,
  type Interactions,
  loadDataset,
  type LoadDatasetOptions,
  type Modality,
} from "./src/data/dataset.ts";
export { DataError } from "./src/data/errors.ts";
export type { Batch } from "./src/data/sampler.ts";
export {
  generateSynthetic,
  SYNTHETIC_PRESETS,
  type SyntheticDataset,
  type SyntheticOptions,
  type SyntheticPreset,
  writeSynthetic,
} from "./src/data/synth.ts";
export {
  type Checkpoint,
  CheckpointError,
  type CheckpointMetadata,
  loadCheckpoint,
  type NamedTensor,
  type TensorMap,
  type TrainingState,
} from "./src/checkpoint.ts";
export type { GraphName, GraphProgress, Graphs } from "./src/graph/graphs.ts";
export type { MaskedItems, ScoreSource } from "./src/evaluation.ts";
export {
  type BatchProgress,
  type EarlyStopping,
  type EpochContext,
  type EpochRecord,
  NonFiniteLossError,
  openBackend,
  type TrainCallbacks,
  type TrainResult,
} from "./src/trainer.ts";
export { WebGpuUnavailableError } from "./src/engine/webgpu_device.ts";
export type { Metrics } from "./src/log_lines.ts";
export type { LossOutput, Recommender, Scorer } from "./src/models/model.ts";
