/**
 * LightGCN (He et al., "LightGCN: Simplifying and Powering Graph
 * Convolution Network for Recommendation", SIGIR 2020) as MMRec computes
 * it (`baselines.md`).
 *
 * Per step the whole user–item graph is propagated: `X_0 = [E_u; E_i]`,
 * `X_l = A X_(l-1)`, and the final embeddings are the mean of
 * `X_0 … X_L` (layer 0 included, unlike MSCA's collaborative view). The
 * loss is BPR with MMRec's `−log(1e-10 + σ(·))` plus the plain (not
 * squared) L2 norms of the batch's layer-0 rows divided by the batch size.
 *
 * @module
 */

import type { Tensor } from "../engine/tensor.ts";
import { indices, noGrad, Parameter } from "../engine/tensor.ts";
import {
  add,
  bprLoss,
  concatRows,
  gatherRows,
  meanOf,
  norm,
  scale,
  sparseConstant,
  type SparseTensor,
  splitRows,
  spmm,
} from "../engine/ops.ts";
import type { Backend } from "../engine/backend.ts";
import { xavierUniform } from "../engine/init.ts";
import type { Batch } from "../data/sampler.ts";
import type { CsrMatrix } from "../graph/csr.ts";
import { embeddingScorer } from "./msca.ts";
import type {
  LossOutput,
  ModelConfig,
  ModelContext,
  Recommender,
  Scorer,
} from "./model.ts";
import { readNumber } from "./model.ts";

/** `ε` in MMRec's BPR term `−log(ε + σ(s_pos − s_neg))`. */
export const MMREC_BPR_EPSILON = 1e-10;

/** LightGCN's hyper-parameters (MMRec config keys). */
export interface LightGcnHyperParameters {
  /** `d`. */
  embedding_size: number;
  /** `L`, propagation layers (0 gives matrix factorisation). */
  n_layers: number;
  /** Weight of the plain L2 norms of the batch's layer-0 rows. */
  reg_weight: number;
}

/**
 * The LightGCN model: parameters named as MMRec's `state_dict`
 * (`embedding_dict.user_emb`, `embedding_dict.item_emb`), forward and loss
 * as MMRec computes them.
 *
 * @example
 * ```ts ignore
 * const graphs = await buildGraphs(dataset, {
 *   knn_k: 10, cacheDir: null, modelKind: "LightGCN",
 * });
 * const model = new LightGCN({
 *   dataset, graphs, config: { embedding_size: 64, n_layers: 2,
 *   reg_weight: 1e-4 }, backend: cpuBackend, random: new Random(999),
 * });
 * const { loss } = model.loss(batch);
 * loss.backward();
 * ```
 */
export class LightGCN implements Recommender {
  /** The model name. */
  readonly name = "LightGCN";
  /** Hyper-parameters in use. */
  readonly hyper: LightGcnHyperParameters;
  /** Users `U`. */
  readonly userCount: number;
  /** Items `I`. */
  readonly itemCount: number;

  #backend: Backend;
  #userEmbedding: Parameter;
  #itemEmbedding: Parameter;
  #adjacency: SparseTensor;
  #adjacencyCsr: CsrMatrix;

  /**
   * Builds the model with Xavier-uniform tables, or the values in
   * `context.initialValues`.
   *
   * @param context Dataset, graphs (with LightGCN's `adjacency`),
   *   hyper-parameters, backend, generator.
   * @throws {RangeError} When a hyper-parameter is missing or invalid, the
   *   graph is missing or has the wrong size, or an initial value has an
   *   unknown name or the wrong size.
   */
  constructor(context: ModelContext) {
    const { dataset, graphs, backend, random } = context;
    this.hyper = lightGcnHyperParameters(context.config);
    this.userCount = dataset.userCount;
    this.itemCount = dataset.itemCount;
    this.#backend = backend;
    const U = this.userCount;
    const I = this.itemCount;
    const d = this.hyper.embedding_size;

    const adjacency = graphs.adjacency;
    if (adjacency === undefined) {
      throw new RangeError(
        "LightGCN needs the user–item graph adjacency; build it with " +
          'buildGraphs(dataset, { modelKind: "LightGCN", … })',
      );
    }
    if (adjacency.rows !== U + I || adjacency.cols !== U + I) {
      throw new RangeError(
        `LightGCN: the adjacency is ${adjacency.rows} × ${adjacency.cols}; ` +
          `expected (users + items) × (users + items) = ${U + I} × ${U + I}`,
      );
    }

    const tables = initialTables(
      "LightGCN",
      [
        ["embedding_dict.user_emb", [U, d]],
        ["embedding_dict.item_emb", [I, d]],
      ],
      (shape) => xavierUniform(shape, random),
      context.initialValues,
      backend,
    );
    [this.#userEmbedding, this.#itemEmbedding] = tables;
    this.#adjacency = sparseConstant(adjacency, backend);
    this.#adjacencyCsr = adjacency;
  }

  /**
   * Both tables, users first.
   *
   * @returns `embedding_dict.user_emb` and `embedding_dict.item_emb`.
   */
  stateDict(): Map<string, Tensor> {
    return new Map([
      [this.#userEmbedding.name, this.#userEmbedding],
      [this.#itemEmbedding.name, this.#itemEmbedding],
    ]);
  }

  /**
   * The parameters Adam updates: both tables.
   *
   * @returns The parameters.
   */
  trainableParameters(): Parameter[] {
    return [this.#userEmbedding, this.#itemEmbedding];
  }

  /**
   * One propagation over every user and item: the mean of `X_0 … X_L`.
   *
   * @returns The final user and item embeddings, and every intermediate
   *   (for callers running without gradient, which must free them).
   */
  forward(): { users: Tensor; items: Tensor; intermediates: Tensor[] } {
    let layer = concatRows([this.#userEmbedding, this.#itemEmbedding]);
    const layers = [layer];
    for (let l = 0; l < this.hyper.n_layers; l++) {
      layer = spmm(this.#adjacency, layer);
      layers.push(layer);
    }
    const final = meanOf(layers);
    const [users, items] = splitRows(final, [this.userCount, this.itemCount]);
    return { users, items, intermediates: [...layers, final] };
  }

  /**
   * The loss of one batch: `BPR + reg_weight · (‖E_u[u]‖ + ‖E_i[p]‖ +
   * ‖E_i[n]‖) / B` with plain norms of the layer-0 rows.
   *
   * @param batch Users, positive and negative items.
   * @returns The total, the parts (`loss`, `bpr`, `reg` = the unweighted
   *   norm term) and the views `final_user`, `final_item`.
   */
  loss(batch: Batch): LossOutput {
    const { users: finalUsers, items: finalItems } = this.forward();
    const backend = this.#backend;
    const users = indices(batch.users, backend);
    const positives = indices(batch.positives, backend);
    const negatives = indices(batch.negatives, backend);

    const bpr = bprLoss(
      gatherRows(finalUsers, users),
      gatherRows(finalItems, positives),
      gatherRows(finalItems, negatives),
      { epsilon: MMREC_BPR_EPSILON },
    );
    const reg = scale(
      add(
        add(
          norm(gatherRows(this.#userEmbedding, users)),
          norm(gatherRows(this.#itemEmbedding, positives)),
        ),
        norm(gatherRows(this.#itemEmbedding, negatives)),
      ),
      1 / batch.users.length,
    );
    const loss = add(bpr, scale(reg, this.hyper.reg_weight));

    return {
      loss,
      parts: { loss, bpr, reg },
      views: { final_user: finalUsers, final_item: finalItems },
      release: () => {
        for (const index of [users, positives, negatives]) index.free();
      },
    };
  }

  /**
   * Full-ranking scores `E*_u · E*_iᵀ` from one propagation without
   * gradient.
   *
   * @returns The scorer; `dispose()` frees its embeddings.
   */
  scorer(): Scorer {
    const { users, items, intermediates } = noGrad(() => this.forward());
    for (const tensor of intermediates) tensor.free();
    return embeddingScorer(users, items);
  }

  /**
   * The graph under the golden fixtures' name.
   *
   * @returns `norm_adj`, LightGCN's `D^(-1/2) A D^(-1/2)`.
   */
  graphsByName(): Record<string, CsrMatrix> {
    return { norm_adj: this.#adjacencyCsr };
  }

  /** Frees both tables, their gradients and the uploaded graph. */
  dispose(): void {
    this.#userEmbedding.free();
    this.#itemEmbedding.free();
    this.#adjacency.free();
  }
}

/**
 * Reads and checks LightGCN's hyper-parameters from a config.
 *
 * @param config MMRec-style keys.
 * @returns The hyper-parameters.
 * @throws {RangeError} Naming a missing or invalid key.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lightGcnHyperParameters } from "./lightgcn.ts";
 *
 * const hyper = lightGcnHyperParameters({
 *   embedding_size: 64, n_layers: 2, reg_weight: 1e-4,
 * });
 * assert.equal(hyper.n_layers, 2);
 * ```
 */
export function lightGcnHyperParameters(
  config: ModelConfig,
): LightGcnHyperParameters {
  return {
    embedding_size: readNumber(
      "LightGCN",
      config,
      "embedding_size",
      (x) => Number.isInteger(x) && x >= 1,
      "a positive integer",
    ),
    n_layers: readNumber(
      "LightGCN",
      config,
      "n_layers",
      (x) => Number.isInteger(x) && x >= 0,
      "an integer >= 0",
    ),
    reg_weight: readNumber(
      "LightGCN",
      config,
      "reg_weight",
      (x) => Number.isFinite(x) && x >= 0,
      "a number >= 0",
    ),
  };
}

/**
 * Creates embedding tables as parameters: drawn by `draw`, or taken from
 * `initialValues` (golden fixtures, checkpoints) where given there.
 *
 * @param model Model name, for messages.
 * @param tables `state_dict` name and shape of each table, in order.
 * @param draw Draws the initial values of one shape.
 * @param initialValues Values by name replacing the drawn ones.
 * @param backend Where the parameters live.
 * @returns The parameters, in the order of `tables`.
 * @throws {RangeError} When an initial value has the wrong size or an
 *   unknown name.
 */
export function initialTables(
  model: string,
  tables: [string, [number, number]][],
  draw: (shape: [number, number]) => Float32Array,
  initialValues: Map<string, Float32Array> | undefined,
  backend: Backend,
): Parameter[] {
  const given = initialValues ?? new Map<string, Float32Array>();
  const known = tables.map(([name]) => name);
  const unknown = [...given.keys()].filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    throw new RangeError(
      `initial values for unknown parameters: ${unknown.join(", ")}; ` +
        `${model} has ${known.join(", ")}`,
    );
  }
  return tables.map(([name, shape]) => {
    let values = draw(shape);
    const value = given.get(name);
    if (value !== undefined) {
      if (value.length !== values.length) {
        throw new RangeError(
          `initial value of "${name}" has ${value.length} values; expected ` +
            `shape [${shape.join(", ")}] (${values.length})`,
        );
      }
      values = value;
    }
    return new Parameter(name, values, shape, backend);
  });
}
