/**
 * Layers built from parameters and ops, named as PyTorch names them in a
 * `state_dict`.
 *
 * @module
 */

import type { Random } from "../random.ts";
import type { Backend } from "./backend.ts";
import { cpuBackend } from "./cpu.ts";
import { linearDefault, xavierNormal, xavierUniform } from "./init.ts";
import { add, gatherRows, matmul } from "./ops.ts";
import { type IndexTensor, Parameter, type Tensor } from "./tensor.ts";

/** How {@linkcode Embedding} fills its table. */
export type EmbeddingInit = "xavierUniform" | "xavierNormal";

/** Options of {@linkcode Embedding}. */
export interface EmbeddingOptions {
  /** Generator for the initial values (needed unless `values` is given). */
  random?: Random;
  /** Initialiser (default `"xavierUniform"`, as MSCA and LightGCN). */
  init?: EmbeddingInit;
  /** Initial values instead of an initialiser (e.g. the feature tables). */
  values?: Float32Array;
  /** Where to hold the table (default: the CPU). */
  backend?: Backend;
}

/** A table of rows, one per user or item: `<name>.weight`, `[rows, dim]`. */
export class Embedding {
  /** The table. */
  readonly weight: Parameter;

  /**
   * Creates the table.
   *
   * @param name Module name, e.g. `user_embedding`.
   * @param rows Number of rows.
   * @param dimension Row width.
   * @param options Initialiser or values, and backend.
   * @example
   * ```ts
   * import { Random } from "../random.ts";
   * const users = new Embedding("user_embedding", 10, 4, {
   *   random: new Random(1),
   * });
   * ```
   */
  constructor(
    name: string,
    rows: number,
    dimension: number,
    options: EmbeddingOptions = {},
  ) {
    const shape = [rows, dimension];
    let values = options.values;
    if (values === undefined) {
      if (options.random === undefined) {
        throw new TypeError(
          `Embedding "${name}": give either options.random or options.values`,
        );
      }
      const init = options.init ?? "xavierUniform";
      if (init === "xavierUniform") {
        values = xavierUniform(shape, options.random);
      } else if (init === "xavierNormal") {
        values = xavierNormal(shape, options.random);
      } else {
        throw new RangeError(
          `Embedding "${name}": unknown init "${init}"; expected ` +
            `"xavierUniform" or "xavierNormal"`,
        );
      }
    }
    this.weight = new Parameter(
      `${name}.weight`,
      values,
      shape,
      options.backend ?? cpuBackend,
    );
  }

  /**
   * Rows picked by an index.
   *
   * @param index Row numbers.
   * @returns `[index.length, dim]`.
   */
  forward(index: IndexTensor): Tensor {
    return gatherRows(this.weight, index);
  }

  /**
   * The parameters, in `state_dict` order.
   *
   * @returns `[weight]`.
   */
  parameters(): Parameter[] {
    return [this.weight];
  }
}

/** Options of {@linkcode Linear}. */
export interface LinearOptions {
  /** Whether to add a bias (default true). */
  bias?: boolean;
  /** Where to hold the parameters (default: the CPU). */
  backend?: Backend;
}

/**
 * An affine layer `x Wᵀ + b` with `W` `[out, in]` (`<name>.weight`) and
 * `b` `[out]` (`<name>.bias`), initialised like PyTorch's `nn.Linear`.
 */
export class Linear {
  /** `[out, in]`. */
  readonly weight: Parameter;
  /** `[out]`, or null without bias. */
  readonly bias: Parameter | null;

  /**
   * Creates the layer; draws the weight, then the bias, from `random`.
   *
   * @param name Module name, e.g. `image_trs` or `query_common.0`.
   * @param inFeatures Input width.
   * @param outFeatures Output width.
   * @param random Generator for the initial values.
   * @param options Bias and backend.
   * @example
   * ```ts
   * import { Random } from "../random.ts";
   * import { tensor } from "./tensor.ts";
   * const layer = new Linear("gate_v.0", 3, 2, new Random(1));
   * const y = layer.forward(tensor([1, 2, 3], [1, 3])); // [1, 2]
   * ```
   */
  constructor(
    name: string,
    inFeatures: number,
    outFeatures: number,
    random: Random,
    options: LinearOptions = {},
  ) {
    const backend = options.backend ?? cpuBackend;
    this.weight = new Parameter(
      `${name}.weight`,
      linearDefault([outFeatures, inFeatures], inFeatures, random),
      [outFeatures, inFeatures],
      backend,
    );
    this.bias = (options.bias ?? true)
      ? new Parameter(
        `${name}.bias`,
        linearDefault([outFeatures], inFeatures, random),
        [outFeatures],
        backend,
      )
      : null;
  }

  /**
   * `x Wᵀ + b`.
   *
   * @param x Input `[rows, in]`.
   * @returns `[rows, out]`.
   */
  forward(x: Tensor): Tensor {
    const product = matmul(x, this.weight, { transposeB: true });
    return this.bias === null ? product : add(product, this.bias);
  }

  /**
   * The parameters, in `state_dict` order.
   *
   * @returns `[weight, bias]` (or `[weight]`).
   */
  parameters(): Parameter[] {
    return this.bias === null ? [this.weight] : [this.weight, this.bias];
  }
}
