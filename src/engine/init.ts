/**
 * Initialisers with PyTorch's bounds, drawn from our seeded
 * {@linkcode Random} (so values differ from PyTorch's, distributions agree).
 *
 * Shapes follow PyTorch's fan rule for 2-D weights: `fan_in` is the
 * column count, `fan_out` the row count (an embedding `[U, d]` has
 * `fan_in = d`, `fan_out = U`).
 *
 * @module
 */

import type { Random } from "../random.ts";
import { matrixShape } from "./tensor.ts";

function fans(shape: readonly number[], where: string): [number, number] {
  const [rows, cols] = matrixShape(shape, where);
  return [cols, rows];
}

/**
 * Values uniform in `[low, high)`, drawn in row-major order.
 *
 * @param count Number of values.
 * @param low Lower bound.
 * @param high Upper bound.
 * @param random The generator.
 * @returns The values.
 * @example
 * ```ts
 * import { Random } from "../random.ts";
 * const values = uniform(4, -1, 1, new Random(1));
 * ```
 */
export function uniform(
  count: number,
  low: number,
  high: number,
  random: Random,
): Float32Array {
  const values = new Float32Array(count);
  const width = high - low;
  for (let i = 0; i < count; i++) values[i] = low + width * random.nextFloat();
  return values;
}

/**
 * Xavier (Glorot) uniform, `U(±gain · sqrt(6 / (fan_in + fan_out)))`, as
 * `torch.nn.init.xavier_uniform_`.
 *
 * @param shape `[rows, cols]`.
 * @param random The generator.
 * @param gain Scale factor (default 1).
 * @returns Row-major values.
 * @example
 * ```ts
 * import { Random } from "../random.ts";
 * const userEmbedding = xavierUniform([19445, 64], new Random(2026));
 * ```
 */
export function xavierUniform(
  shape: readonly number[],
  random: Random,
  gain = 1,
): Float32Array {
  const [fanIn, fanOut] = fans(shape, "xavierUniform()");
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(fanIn * fanOut, -bound, bound, random);
}

/**
 * Xavier (Glorot) normal, `N(0, (gain · sqrt(2 / (fan_in + fan_out)))²)`,
 * as `torch.nn.init.xavier_normal_` (MMRec's BPR).
 *
 * @param shape `[rows, cols]`.
 * @param random The generator.
 * @param gain Scale factor (default 1).
 * @returns Row-major values.
 * @example
 * ```ts
 * import { Random } from "../random.ts";
 * const values = xavierNormal([100, 64], new Random(2026));
 * ```
 */
export function xavierNormal(
  shape: readonly number[],
  random: Random,
  gain = 1,
): Float32Array {
  const [fanIn, fanOut] = fans(shape, "xavierNormal()");
  const std = gain * Math.sqrt(2 / (fanIn + fanOut));
  const values = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < values.length; i++) values[i] = std * random.nextNormal();
  return values;
}

/**
 * PyTorch's default for `nn.Linear`: weight and bias both
 * `U(±1 / sqrt(fan_in))` (the weight's `kaiming_uniform_(a = sqrt(5))`
 * works out to that bound).
 *
 * @param shape Shape of the tensor to fill: the weight `[out, in]` or the
 *   bias `[out]`.
 * @param fanIn The layer's input width `in`.
 * @param random The generator.
 * @returns Row-major values.
 * @example
 * ```ts
 * import { Random } from "../random.ts";
 * const random = new Random(2026);
 * const weight = linearDefault([64, 4096], 4096, random);
 * const bias = linearDefault([64], 4096, random);
 * ```
 */
export function linearDefault(
  shape: readonly number[],
  fanIn: number,
  random: Random,
): Float32Array {
  const [rows, cols] = matrixShape(shape, "linearDefault()");
  if (!(Number.isInteger(fanIn) && fanIn > 0)) {
    throw new RangeError(
      `linearDefault(): fanIn must be a positive integer, got ${fanIn}`,
    );
  }
  const bound = 1 / Math.sqrt(fanIn);
  return uniform(rows * cols, -bound, bound, random);
}
