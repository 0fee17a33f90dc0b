/**
 * Adam (Kingma and Ba, 2015, "Adam: A Method for Stochastic Optimization")
 * with PyTorch's semantics (spec 7): bias-corrected moments, `ε` added
 * after the square root of the corrected second moment, no weight decay,
 * a step count per parameter, moments created as zeros at a parameter's
 * first update. The update of each parameter is one backend pass.
 *
 * @module
 */

import type { Storage } from "./backend.ts";
import { formatShape, type Parameter } from "./tensor.ts";

/** Options of {@linkcode Adam}. */
export interface AdamOptions {
  /** `lr` (default 1e-3). */
  learningRate?: number;
  /** `β₁` (default 0.9). */
  beta1?: number;
  /** `β₂` (default 0.999). */
  beta2?: number;
  /** `ε` (default 1e-8). */
  epsilon?: number;
}

/** Saved state of one parameter: step count and both moments. */
export interface AdamParameterState {
  /** Updates applied so far. */
  step: number;
  /** `m`, row-major. */
  firstMoment: Float32Array;
  /** `v`, row-major. */
  secondMoment: Float32Array;
}

/** Everything needed to resume an {@linkcode Adam} optimiser. */
export interface AdamState {
  /** Current learning rate. */
  learningRate: number;
  /** `β₁`. */
  beta1: number;
  /** `β₂`. */
  beta2: number;
  /** `ε`. */
  epsilon: number;
  /** Per parameter by `state_dict` name; absent before its first step. */
  parameters: Record<string, AdamParameterState>;
}

interface Moments {
  step: number;
  first: Storage;
  second: Storage;
}

/** The Adam optimiser over a list of parameters. */
export class Adam {
  /** The parameters updated, in order. */
  readonly parameters: readonly Parameter[];
  /** `β₁`. */
  readonly beta1: number;
  /** `β₂`. */
  readonly beta2: number;
  /** `ε`. */
  readonly epsilon: number;
  #learningRate: number;
  #moments = new Map<Parameter, Moments>();

  /**
   * Creates the optimiser.
   *
   * @param parameters The parameters (names must be unique).
   * @param options Hyper-parameters (PyTorch's defaults).
   * @example
   * ```ts
   * import { Parameter, squaredNorm } from "../../engine.ts";
   * const w = new Parameter("w", [1, -2], [2]);
   * const optimizer = new Adam([w], { learningRate: 0.1 });
   * squaredNorm(w).backward();
   * optimizer.step();
   * optimizer.zeroGrad();
   * ```
   */
  constructor(parameters: readonly Parameter[], options: AdamOptions = {}) {
    const names = new Set<string>();
    for (const parameter of parameters) {
      if (names.has(parameter.name)) {
        throw new RangeError(
          `Adam: parameter name "${parameter.name}" appears twice`,
        );
      }
      names.add(parameter.name);
    }
    this.parameters = [...parameters];
    this.#learningRate = checkRate(options.learningRate ?? 1e-3);
    this.beta1 = checkBeta("beta1", options.beta1 ?? 0.9);
    this.beta2 = checkBeta("beta2", options.beta2 ?? 0.999);
    this.epsilon = options.epsilon ?? 1e-8;
    if (!(this.epsilon >= 0)) {
      throw new RangeError(`Adam: epsilon must be >= 0, got ${this.epsilon}`);
    }
  }

  /** The current learning rate. */
  get learningRate(): number {
    return this.#learningRate;
  }

  /**
   * Changes the learning rate (the scheduler's `lr γ^(e / s)`).
   *
   * @param learningRate The new rate (>= 0).
   */
  setLearningRate(learningRate: number): void {
    this.#learningRate = checkRate(learningRate);
  }

  /**
   * Updates every parameter that has a gradient; parameters without one
   * are skipped and keep their step count, as in PyTorch.
   */
  step(): void {
    for (const parameter of this.parameters) {
      const grad = parameter.grad;
      if (grad === null) continue;
      const backend = parameter.backend;
      let moments = this.#moments.get(parameter);
      if (moments === undefined) {
        moments = {
          step: 0,
          first: backend.fill(parameter.size, 0),
          second: backend.fill(parameter.size, 0),
        };
        this.#moments.set(parameter, moments);
      }
      moments.step += 1;
      backend.adam(
        parameter.storage,
        grad.storage,
        moments.first,
        moments.second,
        {
          learningRate: this.#learningRate,
          beta1: this.beta1,
          beta2: this.beta2,
          epsilon: this.epsilon,
          biasCorrection1: 1 - this.beta1 ** moments.step,
          biasCorrection2: 1 - this.beta2 ** moments.step,
        },
      );
    }
  }

  /** Frees and clears the gradient of every parameter. */
  zeroGrad(): void {
    for (const parameter of this.parameters) parameter.zeroGrad();
  }

  /**
   * Reads the state back to the host, to save in a checkpoint.
   *
   * @returns Hyper-parameters, step counts and moments.
   */
  async state(): Promise<AdamState> {
    const parameters: Record<string, AdamParameterState> = {};
    for (const parameter of this.parameters) {
      const moments = this.#moments.get(parameter);
      if (moments === undefined) continue;
      parameters[parameter.name] = {
        step: moments.step,
        firstMoment: await parameter.backend.read(moments.first),
        secondMoment: await parameter.backend.read(moments.second),
      };
    }
    return {
      learningRate: this.#learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
      parameters,
    };
  }

  /**
   * Restores a state saved by {@linkcode Adam.state}. The learning rate
   * and moments are taken from it; `β` and `ε` must agree with this
   * optimiser's, and every saved parameter must exist with its size.
   *
   * @param state The saved state.
   */
  loadState(state: AdamState): void {
    for (const key of ["beta1", "beta2", "epsilon"] as const) {
      if (state[key] !== this[key]) {
        throw new RangeError(
          `Adam.loadState(): saved ${key} ${state[key]} differs from this ` +
            `optimiser's ${this[key]}`,
        );
      }
    }
    const byName = new Map(this.parameters.map((p) => [p.name, p]));
    for (const name of Object.keys(state.parameters)) {
      const parameter = byName.get(name);
      if (parameter === undefined) {
        throw new RangeError(
          `Adam.loadState(): saved state names parameter "${name}", which ` +
            `this optimiser does not have; it has ${
              [...byName.keys()].join(", ")
            }`,
        );
      }
      const saved = state.parameters[name];
      for (const moment of [saved.firstMoment, saved.secondMoment]) {
        if (moment.length !== parameter.size) {
          throw new RangeError(
            `Adam.loadState(): moment of "${name}" has ${moment.length} ` +
              `values; the parameter ${formatShape(parameter.shape)} has ` +
              `${parameter.size}`,
          );
        }
      }
    }
    this.#freeMoments();
    this.#learningRate = checkRate(state.learningRate);
    for (const [name, saved] of Object.entries(state.parameters)) {
      const parameter = byName.get(name)!;
      this.#moments.set(parameter, {
        step: saved.step,
        first: parameter.backend.uploadFloat32(saved.firstMoment),
        second: parameter.backend.uploadFloat32(saved.secondMoment),
      });
    }
  }

  /** Frees the moments (the parameters stay). */
  free(): void {
    this.#freeMoments();
  }

  #freeMoments(): void {
    for (const [parameter, moments] of this.#moments) {
      parameter.backend.free(moments.first);
      parameter.backend.free(moments.second);
    }
    this.#moments.clear();
  }
}

function checkRate(learningRate: number): number {
  if (!(learningRate >= 0) || !Number.isFinite(learningRate)) {
    throw new RangeError(
      `Adam: learning rate must be a finite number >= 0, got ${learningRate}`,
    );
  }
  return learningRate;
}

function checkBeta(name: string, beta: number): number {
  if (!(beta >= 0 && beta < 1)) {
    throw new RangeError(`Adam: ${name} must be in [0, 1), got ${beta}`);
  }
  return beta;
}
