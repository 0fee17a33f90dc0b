/**
 * What every model (MSCA, LightGCN, BPR) offers the trainer, the golden
 * check, the evaluator and checkpoints. A model is one file implementing
 * {@linkcode Recommender} plus one line in `registry.ts`.
 *
 * @module
 */

import type { Backend } from "../engine/backend.ts";
import type { Parameter, Tensor } from "../engine/tensor.ts";
import type { Dataset } from "../data/dataset.ts";
import type { Batch } from "../data/sampler.ts";
import type { CsrMatrix } from "../graph/csr.ts";
import type { Graphs } from "../graph/graphs.ts";
import type { ScoreSource } from "../evaluation.ts";
import type { Random } from "../random.ts";

/**
 * The loss of one batch: the total to back-propagate and its parts, keyed
 * as the golden fixtures' `meta.json` keys them (`bpr`, `reg`, `C_u`, …).
 * `parts` always holds `loss` itself.
 */
export interface LossOutput {
  /** The scalar to call `backward()` on. */
  loss: Tensor;
  /** Scalar parts by name, `loss` included. */
  parts: Record<string, Tensor>;
  /**
   * Forward intermediates by the golden fixtures' names (`collab`,
   * `struct`, `image`, `text`, `attention`, `final_user`, `final_item`);
   * freed by `backward()` unless read first.
   */
  views: Record<string, Tensor>;
  /** Frees the batch's uploaded indices; call after `backward()`. */
  release(): void;
}

/** A full-ranking score function whose device memory can be released. */
export interface Scorer extends ScoreSource {
  /** Frees the final embeddings the scorer holds. */
  dispose(): void;
}

/**
 * Hyper-parameters a model may read, under MMRec's config key names (a
 * `RunConfig` will do). Each model checks the keys it needs.
 */
export type ModelConfig = Record<string, unknown>;

/** Everything a model factory receives. */
export interface ModelContext {
  /** The dataset (counts, splits, feature tables). */
  dataset: Dataset;
  /** The graphs `buildGraphs` made for this model's kind. */
  graphs: Graphs;
  /** Hyper-parameters. */
  config: ModelConfig;
  /** Where the parameters live. */
  backend: Backend;
  /** Draws the initial values (the run's seeded generator). */
  random: Random;
  /**
   * Initial values by `state_dict` name, replacing the random ones (golden
   * fixtures, checkpoints). Names must all be known and shapes must match.
   */
  initialValues?: Map<string, Float32Array>;
}

/** The interface the trainer, evaluator, golden check and checkpoints use. */
export interface Recommender {
  /** Model name as in the config (`MSCA`). */
  readonly name: string;
  /**
   * Every `state_dict` entry in the reference's order, trained or not
   * (frozen feature tables included): what a checkpoint saves.
   */
  stateDict(): Map<string, Tensor>;
  /** The parameters the optimiser updates. */
  trainableParameters(): Parameter[];
  /**
   * The loss of one batch, computed from a fresh forward pass.
   *
   * @param batch Users, positive and negative items.
   * @returns The total, its parts and the forward intermediates.
   */
  loss(batch: Batch): LossOutput;
  /**
   * A full-ranking scorer over the current parameters: the final
   * embeddings are computed once (without gradient) and each block of
   * users is scored against every item.
   *
   * @returns The scorer; call `dispose()` when done.
   */
  scorer(): Scorer;
  /**
   * The model's graphs by the golden fixtures' names (`norm_adj`,
   * `struct`, `image`, `text`), for the graph check.
   *
   * @returns The graphs the model propagates over.
   */
  graphsByName(): Record<string, CsrMatrix>;
  /** Frees every parameter and uploaded graph. */
  dispose(): void;
}

/** Builds a model from a {@linkcode ModelContext}. */
export type ModelFactory = (context: ModelContext) => Recommender;

/**
 * Reads one numeric hyper-parameter.
 *
 * @param model Model name, for the message.
 * @param config The config.
 * @param key The key.
 * @param check Whether a value is valid.
 * @param want What a valid value is, in words.
 * @returns The value.
 * @throws {RangeError} When the key is missing or its value invalid.
 */
export function readNumber(
  model: string,
  config: ModelConfig,
  key: string,
  check: (x: number) => boolean,
  want: string,
): number {
  const value = config[key];
  if (typeof value !== "number" || !check(value)) {
    throw new RangeError(
      `${model}: ${key} must be ${want}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}
