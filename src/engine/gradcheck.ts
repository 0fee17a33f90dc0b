/**
 * Gradient checks against central finite differences computed in float64.
 *
 * The function under test is evaluated on a float64 CPU backend (the same
 * loops as the float32 one), reduced to a scalar by a fixed random
 * projection `Σ out ⊙ W`, and differentiated two ways: by backward, and by
 * `(f(x + h) − f(x − h)) / 2h` for each checked input value. The same
 * function is also run on the float32 CPU backend to confirm that the
 * float32 forward and backward agree with float64.
 *
 * Used by the engine's tests and available to model code for composite
 * checks.
 *
 * @module
 */

import { Random } from "../random.ts";
import type { Backend } from "./backend.ts";
import { cpuBackend, CpuStorage, createCpuBackend } from "./cpu.ts";
import { mul, sum } from "./ops.ts";
import { matrixShape, noGrad, Parameter, Tensor } from "./tensor.ts";

/** An input of {@linkcode checkGradients}. */
export interface CheckedInput {
  /** Its shape. */
  shape: number[];
  /** Its values (float64). */
  values: Float64Array | number[];
  /** Whether to check its gradient (default true). */
  check?: boolean;
}

/** Options of {@linkcode checkGradients}. */
export interface GradientCheckOptions {
  /**
   * Finite-difference step `h`, or a function of (input number, value
   * index) giving it (default 1e-6).
   */
  step?: number | ((input: number, index: number) => number);
  /** Allowed `|analytic − numeric|` beyond the relative part (1e-6). */
  absoluteTolerance?: number;
  /** Allowed error relative to `max(|analytic|, |numeric|)` (1e-6). */
  relativeTolerance?: number;
  /** At most this many values checked per input (default 48). */
  maxValuesPerInput?: number;
  /** Seed of the projection weights and the value sample (default 7). */
  seed?: number;
}

/** What {@linkcode checkGradients} found. */
export interface GradientCheckResult {
  /** One line per value whose gradients disagree; empty when all agree. */
  failures: string[];
  /** Number of input values compared. */
  checked: number;
  /** Largest `|analytic − numeric|` seen. */
  maxAbsoluteError: number;
  /** Largest `|float32 − float64|` of the output, relative to its scale. */
  float32OutputError: number;
  /** Largest `|float32 − float64|` of the gradients, relative to scale. */
  float32GradientError: number;
}

/** Builds the tensor under test from its inputs on a given backend. */
export type CheckedFunction = (inputs: Tensor[], backend: Backend) => Tensor;

/**
 * Compares backward with central finite differences in float64.
 *
 * @param build The function under test.
 * @param inputs Its inputs.
 * @param options Step, tolerances, sampling.
 * @returns Disagreements and error sizes.
 * @example
 * ```ts
 * import { sigmoid } from "./ops.ts";
 * const result = checkGradients(([x]) => sigmoid(x), [
 *   { shape: [2, 3], values: [0.1, -2, 3, 0.5, 0, 1] },
 * ]);
 * // result.failures is empty
 * ```
 */
export function checkGradients(
  build: CheckedFunction,
  inputs: CheckedInput[],
  options: GradientCheckOptions = {},
): GradientCheckResult {
  const reference = createCpuBackend({ precision: "float64" });
  const random = new Random(options.seed ?? 7);
  const stepOption = options.step ?? 1e-6;
  const stepOf = typeof stepOption === "number" ? () => stepOption : stepOption;
  const absoluteTolerance = options.absoluteTolerance ?? 1e-6;
  const relativeTolerance = options.relativeTolerance ?? 1e-6;
  const maxValues = options.maxValuesPerInput ?? 48;
  const values = inputs.map((input) => Float64Array.from(input.values));
  for (let i = 0; i < inputs.length; i++) {
    const [rows, cols] = matrixShape(inputs[i].shape, "checkGradients()");
    if (values[i].length !== rows * cols) {
      throw new RangeError(
        `checkGradients(): input ${i} has ${values[i].length} values for ` +
          `shape [${inputs[i].shape}]`,
      );
    }
  }

  const run = (backend: Backend, current: Float64Array[], grads: boolean) => {
    const upload = (v: Float64Array) =>
      backend === cpuBackend
        ? cpuBackend.uploadFloat32(Float32Array.from(v))
        : reference.uploadFloat64(v);
    const tensors = current.map((v, i) =>
      grads
        ? new Parameter(`input${i}`, upload(v), inputs[i].shape, backend)
        : new Tensor(upload(v), inputs[i].shape, backend)
    );
    const out = build(tensors, backend);
    return { tensors, out };
  };

  const baseline = noGrad(() => run(reference, values, false).out);
  const weightRandom = new Random(random.nextUint32());
  const weights = new Float64Array(baseline.size);
  for (let i = 0; i < weights.length; i++) {
    weights[i] = 2 * weightRandom.nextFloat() - 1;
  }
  const project = (out: Tensor, backend: Backend) => {
    const weight = new Tensor(
      backend === cpuBackend
        ? cpuBackend.uploadFloat32(Float32Array.from(weights))
        : reference.uploadFloat64(weights),
      out.shape,
      backend,
    );
    return sum(mul(out, weight));
  };
  const valueOf = (current: Float64Array[]) =>
    noGrad(() => {
      const { out } = run(reference, current, false);
      return reference.readFloat64(project(out, reference).storage)[0];
    });

  const analytic = gradientsOn(reference, run, project, values);
  const failures: string[] = [];
  let checked = 0;
  let maxAbsoluteError = 0;
  for (let i = 0; i < inputs.length; i++) {
    if (inputs[i].check === false) continue;
    const count = values[i].length;
    const sample = count <= maxValues
      ? [...Array(count).keys()]
      : Array.from({ length: maxValues }, () => random.nextInt(count));
    for (const j of sample) {
      const h = stepOf(i, j);
      const original = values[i][j];
      values[i][j] = original + h;
      const plus = valueOf(values);
      values[i][j] = original - h;
      const minus = valueOf(values);
      values[i][j] = original;
      const numeric = (plus - minus) / (2 * h);
      const exact = analytic[i][j];
      const error = Math.abs(exact - numeric);
      checked++;
      if (!(error <= maxAbsoluteError)) maxAbsoluteError = error;
      const allowed = absoluteTolerance +
        relativeTolerance * Math.max(Math.abs(exact), Math.abs(numeric));
      if (!(error <= allowed)) {
        failures.push(
          `input ${i} value ${j}: backward ${exact}, finite differences ` +
            `${numeric} (error ${error.toExponential(2)})`,
        );
      }
    }
  }

  const single = noGrad(() => run(cpuBackend, values, false).out);
  const singleValues = cpuOf(single.storage);
  const doubleValues = cpuOf(baseline.storage);
  const float32OutputError = relativeDifference(singleValues, doubleValues);
  const singleGrads = gradientsOn(cpuBackend, run, project, values);
  let float32GradientError = 0;
  for (let i = 0; i < inputs.length; i++) {
    float32GradientError = Math.max(
      float32GradientError,
      relativeDifference(singleGrads[i], analytic[i]),
    );
  }
  return {
    failures,
    checked,
    maxAbsoluteError,
    float32OutputError,
    float32GradientError,
  };
}

function gradientsOn(
  backend: Backend,
  run: (
    backend: Backend,
    current: Float64Array[],
    grads: boolean,
  ) => { tensors: Tensor[]; out: Tensor },
  project: (out: Tensor, backend: Backend) => Tensor,
  values: Float64Array[],
): Float64Array[] {
  const { tensors, out } = run(backend, values, true);
  const loss = project(out, backend);
  if (loss.requiresGrad) loss.backward();
  return tensors.map((t) =>
    t.grad === null ? new Float64Array(t.size) : cpuOf(t.grad.storage)
  );
}

function cpuOf(storage: unknown): Float64Array {
  if (!(storage instanceof CpuStorage)) {
    throw new TypeError("checkGradients() runs on CPU storages only");
  }
  return Float64Array.from(storage.data);
}

function relativeDifference(a: Float64Array, b: Float64Array): number {
  let scale = 0;
  let largest = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    largest = Math.max(largest, Math.abs(a[i] - b[i]));
  }
  if (a.length !== b.length) return Infinity;
  return scale === 0 ? largest : largest / scale;
}
