/**
 * BPR matrix factorisation (Rendle et al., "BPR: Bayesian Personalized
 * Ranking from Implicit Feedback", UAI 2009) as MMRec computes it
 * (`baselines.md`): one embedding per user and per item, score `E_u · E_i`,
 * loss MMRec's `−log(1e-10 + σ(s_pos − s_neg))` plus the plain (not
 * squared) L2 norms of the batch's rows divided by the batch size.
 *
 * @module
 */

import type { Tensor } from "../engine/tensor.ts";
import { indices, noGrad, type Parameter } from "../engine/tensor.ts";
import { add, bprLoss, gatherRows, norm, scale } from "../engine/ops.ts";
import type { Backend } from "../engine/backend.ts";
import { xavierNormal } from "../engine/init.ts";
import type { Batch } from "../data/sampler.ts";
import type { CsrMatrix } from "../graph/csr.ts";
import { embeddingScorer } from "./msca.ts";
import { initialTables, MMREC_BPR_EPSILON } from "./lightgcn.ts";
import type {
  LossOutput,
  ModelConfig,
  ModelContext,
  Recommender,
  Scorer,
} from "./model.ts";
import { readNumber } from "./model.ts";

/** BPR's hyper-parameters (MMRec config keys). */
export interface BprHyperParameters {
  /** `d`. */
  embedding_size: number;
  /** Weight of the plain L2 norms of the batch's rows. */
  reg_weight: number;
}

/**
 * The BPR model: `user_embedding.weight` and `item_embedding.weight`,
 * Xavier normal, scored by dot product.
 *
 * @example
 * ```ts ignore
 * const model = new BPR({
 *   dataset, graphs: { modality: {} },
 *   config: { embedding_size: 64, reg_weight: 1e-4 },
 *   backend: cpuBackend, random: new Random(999),
 * });
 * const { loss } = model.loss(batch);
 * loss.backward();
 * ```
 */
export class BPR implements Recommender {
  /** The model name. */
  readonly name = "BPR";
  /** Hyper-parameters in use. */
  readonly hyper: BprHyperParameters;
  /** Users `U`. */
  readonly userCount: number;
  /** Items `I`. */
  readonly itemCount: number;

  #backend: Backend;
  #userEmbedding: Parameter;
  #itemEmbedding: Parameter;

  /**
   * Builds the model with Xavier-normal tables (std `sqrt(2 / (rows +
   * d))`), or the values in `context.initialValues`. BPR uses no graph.
   *
   * @param context Dataset, hyper-parameters, backend, generator.
   * @throws {RangeError} When a hyper-parameter is missing or invalid, or
   *   an initial value has an unknown name or the wrong size.
   */
  constructor(context: ModelContext) {
    const { dataset, backend, random } = context;
    this.hyper = bprHyperParameters(context.config);
    this.userCount = dataset.userCount;
    this.itemCount = dataset.itemCount;
    this.#backend = backend;
    const d = this.hyper.embedding_size;
    [this.#userEmbedding, this.#itemEmbedding] = initialTables(
      "BPR",
      [
        ["user_embedding.weight", [this.userCount, d]],
        ["item_embedding.weight", [this.itemCount, d]],
      ],
      (shape) => xavierNormal(shape, random),
      context.initialValues,
      backend,
    );
  }

  /**
   * Both tables, users first.
   *
   * @returns `user_embedding.weight` and `item_embedding.weight`.
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
   * The loss of one batch: `BPR + reg_weight · (‖E_u[u]‖ + ‖E_i[p]‖ +
   * ‖E_i[n]‖) / B` with plain norms.
   *
   * @param batch Users, positive and negative items.
   * @returns The total, the parts (`loss`, `bpr`, `reg` = the unweighted
   *   norm term) and the views `final_user`, `final_item`, which are the
   *   embedding tables themselves (BPR has no propagation; do not free
   *   them).
   */
  loss(batch: Batch): LossOutput {
    const backend = this.#backend;
    const users = indices(batch.users, backend);
    const positives = indices(batch.positives, backend);
    const negatives = indices(batch.negatives, backend);
    const userRows = gatherRows(this.#userEmbedding, users);
    const positiveRows = gatherRows(this.#itemEmbedding, positives);
    const negativeRows = gatherRows(this.#itemEmbedding, negatives);

    const bpr = bprLoss(userRows, positiveRows, negativeRows, {
      epsilon: MMREC_BPR_EPSILON,
    });
    const reg = scale(
      add(add(norm(userRows), norm(positiveRows)), norm(negativeRows)),
      1 / batch.users.length,
    );
    const loss = add(bpr, scale(reg, this.hyper.reg_weight));

    return {
      loss,
      parts: { loss, bpr, reg },
      views: {
        final_user: this.#userEmbedding,
        final_item: this.#itemEmbedding,
      },
      release: () => {
        for (const index of [users, positives, negatives]) index.free();
      },
    };
  }

  /**
   * Full-ranking scores `E_u · E_iᵀ` over copies of the current tables.
   *
   * @returns The scorer; `dispose()` frees its copies.
   */
  scorer(): Scorer {
    const [users, items] = noGrad(() => [
      scale(this.#userEmbedding, 1),
      scale(this.#itemEmbedding, 1),
    ]);
    return embeddingScorer(users, items);
  }

  /**
   * BPR propagates over no graph.
   *
   * @returns An empty record.
   */
  graphsByName(): Record<string, CsrMatrix> {
    return {};
  }

  /** Frees both tables and their gradients. */
  dispose(): void {
    this.#userEmbedding.free();
    this.#itemEmbedding.free();
  }
}

/**
 * Reads and checks BPR's hyper-parameters from a config.
 *
 * @param config MMRec-style keys.
 * @returns The hyper-parameters.
 * @throws {RangeError} Naming a missing or invalid key.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bprHyperParameters } from "./bpr.ts";
 *
 * const hyper = bprHyperParameters({ embedding_size: 64, reg_weight: 1e-4 });
 * assert.equal(hyper.reg_weight, 1e-4);
 * ```
 */
export function bprHyperParameters(config: ModelConfig): BprHyperParameters {
  return {
    embedding_size: readNumber(
      "BPR",
      config,
      "embedding_size",
      (x) => Number.isInteger(x) && x >= 1,
      "a positive integer",
    ),
    reg_weight: readNumber(
      "BPR",
      config,
      "reg_weight",
      (x) => Number.isFinite(x) && x >= 0,
      "a number >= 0",
    ),
  };
}
