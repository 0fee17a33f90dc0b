/**
 * MSCA, "Multi-view Semantic Contrastive Alignment for Multimodal
 * Recommendation" (Li & Wang, WWW 2026), as the reference PyTorch code
 * computes it (spec sections 3, 5 and 6 of `msca.md`).
 *
 * Per step the whole graph is propagated: a collaborative view (LightGCN
 * layers 1..L, layer 0 left out), a structural view over the item
 * co-occurrence graph, and one gated view per modality over its kNN graph.
 * An attention over the modality and structural views, softmax across the
 * views, fuses them; the final embedding is `E* = Ē + α Ê`. The loss is BPR
 * plus four InfoNCE alignment terms plus L2 over every parameter.
 *
 * @module
 */

import type { Tensor } from "../engine/tensor.ts";
import { indices, noGrad, Parameter, tidy } from "../engine/tensor.ts";
import {
  add,
  attentionFusion,
  bprLoss,
  concatRows,
  gatedProjection,
  gatherRows,
  infoNce,
  matmul,
  meanOf,
  scale,
  sparseConstant,
  type SparseTensor,
  splitRows,
  spmm,
  squaredNorm,
} from "../engine/ops.ts";
import type { Backend, Storage } from "../engine/backend.ts";
import { linearDefault, xavierUniform } from "../engine/init.ts";
import type { Modality } from "../data/dataset.ts";
import type { Batch } from "../data/sampler.ts";
import type { CsrMatrix } from "../graph/csr.ts";
import { MASKED_SCORE, type MaskedItems, selectTopK } from "../evaluation.ts";
import type {
  LossOutput,
  ModelConfig,
  ModelContext,
  Recommender,
  Scorer,
} from "./model.ts";
import { readNumber } from "./model.ts";

/** The modalities in the order the fusion stacks their views. */
export const MODALITY_ORDER: readonly Modality[] = ["image", "text"];

/** `state_dict` prefixes of each modality's tables and layers. */
const MODALITY_NAMES: Record<
  Modality,
  { features: string; transform: string; gate: string }
> = {
  image: {
    features: "image_embedding.weight",
    transform: "image_trs",
    gate: "gate_v.0",
  },
  text: {
    features: "text_embedding.weight",
    transform: "text_trs",
    gate: "gate_t.0",
  },
};

/** MSCA's hyper-parameters (MMRec config keys). */
export interface MscaHyperParameters {
  /** `d`. */
  embedding_size: number;
  /** `L`, propagation layers of the collaborative view. */
  n_layers: number;
  /** `α` in `E* = Ē + α Ê`. */
  fusion_coeff: number;
  /** `τ`, the InfoNCE temperature. */
  tau: number;
  /** Weight of the four contrastive terms. */
  cl_weight: number;
  /** Weight of the squared L2 norm of every parameter. */
  reg_weight: number;
  /**
   * Keep the feature tables fixed (not trained, not regularised, not in
   * the optimiser). Default false, as the reference.
   */
  freeze_features: boolean;
}

/** The parameters of one modality's gated view. */
interface ModalityParameters {
  /** `F_m`, the item feature table (trained unless frozen). */
  features: Parameter;
  /** `T_m`, `[d, d_m]` and `[d]`. */
  transformWeight: Parameter;
  transformBias: Parameter;
  /** `G_m`, `[d, d]` and `[d]`. */
  gateWeight: Parameter;
  gateBias: Parameter;
  /** `A_m`, uploaded. */
  graph: SparseTensor;
  /** The graph as built, for the golden check. */
  csr: CsrMatrix;
}

/**
 * Every intermediate of one MSCA forward pass (spec 5). The user and item
 * halves of each view are kept separately as the loss gathers from them.
 */
export interface MscaForward {
  /** `Ē`, users then items, `[N, d]`. */
  collaborative: Tensor;
  /** `Ē_u`, `[U, d]`. */
  collaborativeUsers: Tensor;
  /** `Ē_i`, `[I, d]`. */
  collaborativeItems: Tensor;
  /** `S = [S_u; S_i]`. */
  structural: Tensor;
  /** `S_u`. */
  structuralUsers: Tensor;
  /** `S_i`. */
  structuralItems: Tensor;
  /** Per modality present: `M^m = [M_u; M_i]` and its halves. */
  modalities: Map<
    Modality,
    { view: Tensor; users: Tensor; items: Tensor }
  >;
  /**
   * Attention weights `[N, V]`, columns in the fusion's view order; outside
   * the graph (see {@linkcode attentionFusion}): free it when done.
   */
  attention: Tensor;
  /** `E*_u`. */
  finalUsers: Tensor;
  /** `E*_i`. */
  finalItems: Tensor;
}

/**
 * The MSCA model: parameters named and shaped as the reference's
 * `state_dict`, forward and loss as the reference computes them.
 *
 * @example
 * ```ts ignore
 * const graphs = await buildGraphs(dataset, {
 *   knn_k: 10, cacheDir: null, modelKind: "MSCA",
 * });
 * const model = new MSCA({
 *   dataset, graphs, config, backend: cpuBackend, random: new Random(999),
 * });
 * const { loss } = model.loss(batch);
 * loss.backward();
 * ```
 */
export class MSCA implements Recommender {
  /** The model name. */
  readonly name = "MSCA";
  /** Hyper-parameters in use. */
  readonly hyper: MscaHyperParameters;
  /** The modalities used, in fusion order. */
  readonly modalities: Modality[];
  /** Users `U`. */
  readonly userCount: number;
  /** Items `I`. */
  readonly itemCount: number;

  #backend: Backend;
  #userEmbedding: Parameter;
  #itemEmbedding: Parameter;
  #modality = new Map<Modality, ModalityParameters>();
  #queryWeight: Parameter;
  #queryBias: Parameter;
  #queryVector: Parameter;
  #adjacency: SparseTensor;
  #userItem: SparseTensor;
  #structural: SparseTensor;
  #csr: { adjacency: CsrMatrix; structural: CsrMatrix };
  #stateDict = new Map<string, Parameter>();

  /**
   * Builds the model with freshly initialised parameters (spec 3), or the
   * values in `context.initialValues`.
   *
   * @param context Dataset, graphs, hyper-parameters, backend, generator.
   * @throws {RangeError} When a hyper-parameter is missing or invalid, no
   *   modality is available, a graph is missing, or an initial value has
   *   an unknown name or the wrong size.
   */
  constructor(context: ModelContext) {
    const { dataset, graphs, backend, random } = context;
    this.hyper = mscaHyperParameters(context.config);
    this.userCount = dataset.userCount;
    this.itemCount = dataset.itemCount;
    this.#backend = backend;
    this.modalities = MODALITY_ORDER.filter((modality) =>
      dataset.features[modality] !== undefined
    );
    if (this.modalities.length === 0) {
      throw new RangeError(
        `MSCA needs at least one modality; dataset "${dataset.name}" has ` +
          "neither image nor text features",
      );
    }
    const { adjacency, userItem, structural } = graphs;
    if (!adjacency || !userItem || !structural) {
      throw new RangeError(
        "MSCA needs the graphs adjacency, userItem and structural; build " +
          'them with buildGraphs(dataset, { modelKind: "MSCA", … })',
      );
    }

    const d = this.hyper.embedding_size;
    const U = this.userCount;
    const I = this.itemCount;
    const initial = context.initialValues ?? new Map();
    const unused = new Set(initial.keys());
    const parameter = (
      name: string,
      shape: number[],
      draw: () => Float32Array,
    ): Parameter => {
      let values = draw();
      const given = initial.get(name);
      if (given !== undefined) {
        if (given.length !== values.length) {
          throw new RangeError(
            `initial value of "${name}" has ${given.length} values; ` +
              `expected shape [${shape.join(", ")}] (${values.length})`,
          );
        }
        values = given;
        unused.delete(name);
      }
      const result = new Parameter(name, values, shape, backend);
      this.#stateDict.set(name, result);
      return result;
    };

    this.#userEmbedding = parameter(
      "user_embedding.weight",
      [U, d],
      () => xavierUniform([U, d], random),
    );
    this.#itemEmbedding = parameter(
      "item_id_embedding.weight",
      [I, d],
      () => xavierUniform([I, d], random),
    );
    const features = new Map<Modality, Parameter>();
    for (const modality of this.modalities) {
      const table = dataset.features[modality]!;
      features.set(
        modality,
        parameter(
          MODALITY_NAMES[modality].features,
          [table.rows, table.cols],
          () => table.data,
        ),
      );
      if (this.hyper.freeze_features) {
        features.get(modality)!.requiresGrad = false;
      }
    }
    const transforms = new Map<Modality, [Parameter, Parameter]>();
    for (const modality of this.modalities) {
      const { transform } = MODALITY_NAMES[modality];
      const width = dataset.features[modality]!.cols;
      transforms.set(modality, [
        parameter(
          `${transform}.weight`,
          [d, width],
          () => linearDefault([d, width], width, random),
        ),
        parameter(
          `${transform}.bias`,
          [d],
          () => linearDefault([d], width, random),
        ),
      ]);
    }
    for (const modality of this.modalities) {
      const { gate, features: featureName } = MODALITY_NAMES[modality];
      const graph = graphs.modality[modality];
      if (graph === undefined) {
        throw new RangeError(
          `MSCA needs the ${modality} graph (for ${featureName}); build it ` +
            'with buildGraphs(dataset, { modelKind: "MSCA", … })',
        );
      }
      const [transformWeight, transformBias] = transforms.get(modality)!;
      this.#modality.set(modality, {
        features: features.get(modality)!,
        transformWeight,
        transformBias,
        gateWeight: parameter(
          `${gate}.weight`,
          [d, d],
          () => linearDefault([d, d], d, random),
        ),
        gateBias: parameter(
          `${gate}.bias`,
          [d],
          () => linearDefault([d], d, random),
        ),
        graph: sparseConstant(graph, backend),
        csr: graph,
      });
    }
    this.#queryWeight = parameter(
      "query_common.0.weight",
      [d, d],
      () => linearDefault([d, d], d, random),
    );
    this.#queryBias = parameter(
      "query_common.0.bias",
      [d],
      () => linearDefault([d], d, random),
    );
    this.#queryVector = parameter(
      "query_common.2.weight",
      [1, d],
      () => linearDefault([1, d], d, random),
    );
    if (unused.size > 0) {
      throw new RangeError(
        `initial values for unknown parameters: ${[...unused].join(", ")}; ` +
          `MSCA has ${[...this.#stateDict.keys()].join(", ")}`,
      );
    }

    this.#adjacency = sparseConstant(adjacency, backend);
    this.#userItem = sparseConstant(userItem, backend);
    this.#structural = sparseConstant(structural, backend);
    this.#csr = { adjacency, structural };
  }

  /**
   * Every `state_dict` entry, frozen feature tables included.
   *
   * @returns Tensors by name, in the reference's order.
   */
  stateDict(): Map<string, Tensor> {
    return new Map(this.#stateDict);
  }

  /**
   * The parameters Adam updates: all, or all but the feature tables when
   * `freeze_features` is set.
   *
   * @returns The parameters.
   */
  trainableParameters(): Parameter[] {
    return [...this.#stateDict.values()].filter((p) => p.requiresGrad);
  }

  /**
   * One forward pass over every user and item (spec 5).
   *
   * @returns Every view, the attention weights and the final embeddings.
   */
  forward(): MscaForward {
    const U = this.userCount;
    const I = this.itemCount;

    // Ē = mean(X_1 .. X_L), layer 0 left out.
    let layer = concatRows([this.#userEmbedding, this.#itemEmbedding]);
    const layers: Tensor[] = [];
    for (let l = 0; l < this.hyper.n_layers; l++) {
      layer = spmm(this.#adjacency, layer);
      layers.push(layer);
    }
    const collaborative = meanOf(layers);
    const [collaborativeUsers, collaborativeItems] = splitRows(
      collaborative,
      [U, I],
    );

    // S_i = A_s E_i, S_u = R̂ S_i.
    const structuralItems = spmm(this.#structural, this.#itemEmbedding);
    const structuralUsers = spmm(this.#userItem, structuralItems);
    const structural = concatRows([structuralUsers, structuralItems]);

    // f_m = E_i ⊙ σ(G_m(T_m(F_m))) (fused after T_m), M_i = A_m f_m,
    // M_u = R̂ M_i.
    const modalities: MscaForward["modalities"] = new Map();
    for (const [modality, p] of this.#modality) {
      const transformed = affine(
        p.features,
        p.transformWeight,
        p.transformBias,
      );
      const gated = gatedProjection(
        this.#itemEmbedding,
        transformed,
        p.gateWeight,
        p.gateBias,
      );
      const items = spmm(p.graph, gated);
      const users = spmm(this.#userItem, items);
      modalities.set(modality, {
        view: concatRows([users, items]),
        users,
        items,
      });
    }

    // Attention across the views (image, text, structural): q(x) = w₂ ·
    // tanh(W₁ x + b₁), one softmax per row; Ê = Σ_v V − Σ_v a_v V.
    const views = [...[...modalities.values()].map((m) => m.view), structural];
    const { fused, attention } = attentionFusion(
      views,
      this.#queryWeight,
      this.#queryBias,
      this.#queryVector,
    );

    // E* = Ē + α Ê.
    const final = add(collaborative, scale(fused, this.hyper.fusion_coeff));
    const [finalUsers, finalItems] = splitRows(final, [U, I]);
    return {
      collaborative,
      collaborativeUsers,
      collaborativeItems,
      structural,
      structuralUsers,
      structuralItems,
      modalities,
      attention,
      finalUsers,
      finalItems,
    };
  }

  /**
   * The loss of one batch (spec 6): `BPR + cl_weight (C_u + C_i + M_u +
   * M_i) + reg_weight · reg`.
   *
   * @param batch Users, positive and negative items.
   * @returns The total, the parts (`bpr`, `reg`, `C_u`, `C_i`, `M_u`,
   *   `M_i`, `loss`) and the forward views.
   */
  loss(batch: Batch): LossOutput {
    const forward = this.forward();
    const backend = this.#backend;
    const users = indices(batch.users, backend);
    const positives = indices(batch.positives, backend);
    const negatives = indices(batch.negatives, backend);
    const tau = this.hyper.tau;

    const bpr = bprLoss(
      gatherRows(forward.finalUsers, users),
      gatherRows(forward.finalItems, positives),
      gatherRows(forward.finalItems, negatives),
    );

    const anchorUsers = gatherRows(forward.collaborativeUsers, users);
    const anchorItems = gatherRows(forward.collaborativeItems, positives);
    const structuralUsers = infoNce(
      anchorUsers,
      gatherRows(forward.structuralUsers, users),
      tau,
    );
    const structuralItems = infoNce(
      anchorItems,
      gatherRows(forward.structuralItems, positives),
      tau,
    );
    const modalityUsers = sumOf(
      [...forward.modalities.values()].map((m) =>
        infoNce(anchorUsers, gatherRows(m.users, users), tau)
      ),
    );
    const modalityItems = sumOf(
      [...forward.modalities.values()].map((m) =>
        infoNce(anchorItems, gatherRows(m.items, positives), tau)
      ),
    );

    // reg = Σ ‖θ‖² over every trained parameter, whole tables.
    const reg = sumOf(this.trainableParameters().map((p) => squaredNorm(p)));

    const contrastive = sumOf([
      structuralUsers,
      structuralItems,
      modalityUsers,
      modalityItems,
    ]);
    const loss = sumOf([
      bpr,
      scale(contrastive, this.hyper.cl_weight),
      scale(reg, this.hyper.reg_weight),
    ]);

    const views: Record<string, Tensor> = {
      collab: forward.collaborative,
      struct: forward.structural,
      attention: forward.attention,
      final_user: forward.finalUsers,
      final_item: forward.finalItems,
    };
    for (const [modality, m] of forward.modalities) views[modality] = m.view;
    return {
      loss,
      parts: {
        loss,
        bpr,
        reg,
        C_u: structuralUsers,
        C_i: structuralItems,
        M_u: modalityUsers,
        M_i: modalityItems,
      },
      views,
      release: () => {
        for (const index of [users, positives, negatives]) index.free();
        forward.attention.free();
      },
    };
  }

  /**
   * Full-ranking scores `E*_u · E*_iᵀ` from one forward pass without
   * gradient.
   *
   * @returns The scorer; `dispose()` frees its embeddings.
   */
  scorer(): Scorer {
    // tidy() frees every view and temporary of the forward pass but E*.
    const { finalUsers, finalItems } = tidy(() =>
      noGrad(() => {
        const { finalUsers, finalItems } = this.forward();
        return { finalUsers, finalItems };
      })
    );
    return embeddingScorer(finalUsers, finalItems);
  }

  /**
   * The graphs under the golden fixtures' names.
   *
   * @returns `norm_adj`, `struct` and one graph per modality.
   */
  graphsByName(): Record<string, CsrMatrix> {
    const graphs: Record<string, CsrMatrix> = {
      norm_adj: this.#csr.adjacency,
      struct: this.#csr.structural,
    };
    for (const [modality, p] of this.#modality) graphs[modality] = p.csr;
    return graphs;
  }

  /** Frees the parameters, their gradients and the uploaded graphs. */
  dispose(): void {
    for (const p of this.#stateDict.values()) p.free();
    for (const p of this.#modality.values()) p.graph.free();
    this.#adjacency.free();
    this.#userItem.free();
    this.#structural.free();
  }
}

/**
 * Reads and checks MSCA's hyper-parameters from a config.
 *
 * @param config MMRec-style keys.
 * @returns The hyper-parameters.
 * @throws {RangeError} Naming a missing or invalid key.
 */
export function mscaHyperParameters(config: ModelConfig): MscaHyperParameters {
  const number = (key: string, check: (x: number) => boolean, want: string) =>
    readNumber("MSCA", config, key, check, want);
  const positiveInteger = (x: number) => Number.isInteger(x) && x >= 1;
  const nonNegative = (x: number) => Number.isFinite(x) && x >= 0;
  const freeze = config.freeze_features ?? false;
  if (typeof freeze !== "boolean") {
    throw new RangeError(
      `MSCA: freeze_features must be true or false, got ${
        JSON.stringify(freeze)
      }`,
    );
  }
  return {
    embedding_size: number(
      "embedding_size",
      positiveInteger,
      "a positive integer",
    ),
    n_layers: number("n_layers", positiveInteger, "a positive integer"),
    fusion_coeff: number("fusion_coeff", nonNegative, "a number >= 0"),
    tau: number("tau", (x) => Number.isFinite(x) && x > 0, "a number > 0"),
    cl_weight: number("cl_weight", nonNegative, "a number >= 0"),
    reg_weight: number("reg_weight", nonNegative, "a number >= 0"),
    freeze_features: freeze,
  };
}

/** A backend that can score, mask and rank on the device (WebGPU's). */
interface TopKBackend {
  scoreTopK(
    userTable: Storage,
    itemTable: Storage,
    cols: number,
    users: Int32Array,
    k: number,
    masked: MaskedItems,
  ): Promise<{ items: Int32Array }>;
}

/** Most items per user that a device top-k keeps (`MAX_K` of its kernel). */
const DEVICE_TOP_K_LIMIT = 128;

/**
 * A scorer over fixed final embeddings: `scoreBlock(users)` returns
 * `E*_u · E*_iᵀ` for the block. On a backend that ranks on the device
 * (WebGPU's `scoreTopK`), `topKBlock` reads back only the ranked items
 * instead of every score. Shared by every embedding model.
 *
 * @param users `E*_u`, `[U, d]`, without gradient.
 * @param items `E*_i`, `[I, d]`, without gradient.
 * @returns The scorer, which owns (and on dispose frees) both tensors.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensor } from "../engine/tensor.ts";
 * import { embeddingScorer } from "./msca.ts";
 *
 * const scorer = embeddingScorer(
 *   tensor([1, 0, 0, 1], [2, 2]),
 *   tensor([2, 3], [1, 2]),
 * );
 * const scores = await scorer.scoreBlock(new Int32Array([1]));
 * assert.equal(scores[0], 3);
 * scorer.dispose();
 * ```
 */
export function embeddingScorer(users: Tensor, items: Tensor): Scorer {
  const backend = users.backend;
  const scoreBlock = async (block: Int32Array): Promise<Float32Array> => {
    const index = indices(block, backend);
    const scores = noGrad(() =>
      matmul(gatherRows(users, index), items, { transposeB: true })
    );
    const values = await scores.toArray();
    scores.free();
    index.free();
    return values;
  };
  const scorer: Scorer = {
    scoreBlock,
    dispose(): void {
      users.free();
      items.free();
    },
  };
  if ("scoreTopK" in backend) {
    const device = backend as unknown as TopKBackend;
    scorer.topKBlock = async (block, k, masked) => {
      if (k <= DEVICE_TOP_K_LIMIT) {
        const ranked = await device.scoreTopK(
          users.storage,
          items.storage,
          users.cols,
          block,
          k,
          masked,
        );
        return ranked.items;
      }
      const scores = await scoreBlock(block);
      for (let r = 0; r < block.length; r++) {
        for (let e = masked.offsets[r]; e < masked.offsets[r + 1]; e++) {
          scores[r * items.rows + masked.items[e]] = MASKED_SCORE;
        }
      }
      return selectTopK(scores, block.length, items.rows, k, block);
    };
  }
  return scorer;
}

/** `x Wᵀ + b`, PyTorch's `nn.Linear` with weight `[out, in]`. */
function affine(x: Tensor, weight: Tensor, bias: Tensor): Tensor {
  return add(matmul(x, weight, { transposeB: true }), bias);
}

/** Sum of a non-empty list of same-shaped tensors. */
function sumOf(list: Tensor[]): Tensor {
  return list.slice(1).reduce((total, x) => add(total, x), list[0]);
}
