/**
 * Tensors, parameters, index arrays and reverse-mode autodiff.
 *
 * A {@linkcode Tensor} is a float matrix held by a {@linkcode Backend}.
 * Ops (`ops.ts`) record, for each result that depends on a tensor needing a
 * gradient, its inputs and a backward function; {@linkcode Tensor.backward}
 * walks that graph in reverse topological order, accumulates gradients in
 * the leaves (`param.grad`), and frees every intermediate value and saved
 * storage, which matters on the GPU where nothing is garbage-collected.
 *
 * Shapes: `[rows, cols]`; a 1-D `[c]` acts as the row vector `[1, c]`; a
 * scalar has shape `[]` and acts as `[1, 1]`.
 *
 * @module
 */

import type {
  Backend,
  IndexStorage,
  InverseIndex,
  Storage,
} from "./backend.ts";
import { CpuBackend, cpuBackend } from "./cpu.ts";

/**
 * The backward function of one recorded op: from the gradient of the
 * op's output, the gradients of its inputs (`null` where not needed). It
 * must return fresh storages or the incoming gradient itself.
 */
export type BackwardFunction = (
  grad: Storage,
  needsGrad: boolean[],
) => (Storage | null)[];

/** What an op result remembers for backward. */
export interface GraphNode {
  /** Name of the op, for messages. */
  op: string;
  /** The op's tensor inputs. */
  inputs: Tensor[];
  /** Computes the inputs' gradients. */
  backward: BackwardFunction;
  /** Extra storages the backward reads, freed after backward. */
  saved: Storage[];
}

let gradEnabled = true;

/**
 * Whether ops currently record the graph (false inside
 * {@linkcode noGrad}).
 *
 * @returns `true` when recording.
 */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs `body` without recording the graph, as for evaluation. Results have
 * no gradient and are never freed by a backward pass. For an async body,
 * recording stays off until its promise settles, for all code that runs
 * meanwhile.
 *
 * @param body The computation.
 * @returns What `body` returns.
 * @example
 * ```ts
 * import { add, tensor } from "../../engine.ts";
 * const y = noGrad(() => add(tensor([1, 2], [2]), tensor([3, 4], [2])));
 * ```
 */
export function noGrad<T>(body: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  let result: T;
  try {
    result = body();
  } catch (error) {
    gradEnabled = previous;
    throw error;
  }
  if (result instanceof Promise) {
    return result.finally(() => {
      gradEnabled = previous;
    }) as T;
  }
  gradEnabled = previous;
  return result;
}

/** Tensors created inside each open {@linkcode tidy} call, innermost last. */
const tidyScopes: Set<Tensor>[] = [];

/**
 * Runs `body` and then frees every tensor created inside it except those it
 * returns (a tensor, or tensors inside returned arrays, maps and plain
 * objects) and parameters. This is how code that calls many ops under {@linkcode noGrad}
 * (evaluation, scoring) releases its temporaries, which matters on the
 * GPU where each is a buffer. `body` must be synchronous.
 *
 * @param body The computation.
 * @returns What `body` returned, its tensors still alive.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { add, scale } from "./ops.ts";
 * import { noGrad, tensor, tidy } from "./tensor.ts";
 *
 * const x = tensor([1, 2], [2]);
 * let temporary = x;
 * const y = tidy(() =>
 *   noGrad(() => {
 *     temporary = scale(x, 2);
 *     return add(temporary, x);
 *   })
 * );
 * assert.deepEqual([...await y.toArray()], [3, 6]);
 * assert.ok(temporary.isFreed);
 * assert.ok(!x.isFreed);
 * ```
 */
export function tidy<T>(body: () => T): T {
  const created = new Set<Tensor>();
  tidyScopes.push(created);
  let result: T;
  try {
    result = body();
  } finally {
    tidyScopes.pop();
  }
  if (result instanceof Promise) {
    throw new TypeError("tidy(): the body must be synchronous");
  }
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  for (const tensor of created) {
    if (kept.has(tensor)) tidyScopes.at(-1)?.add(tensor);
    else if (!(tensor instanceof Parameter)) tensor.free();
  }
  return result;
}

function collectTensors(value: unknown, into: Set<Tensor>): void {
  if (value instanceof Tensor) into.add(value);
  else if (Array.isArray(value)) {
    for (const item of value) collectTensors(item, into);
  } else if (value instanceof Map) {
    for (const item of value.values()) collectTensors(item, into);
  } else if (value !== null && typeof value === "object") {
    for (const item of Object.values(value)) collectTensors(item, into);
  }
}

/**
 * Checks a shape: an array of up to two non-negative integers.
 *
 * @param shape The shape.
 * @param where The caller, for the message.
 * @returns The shape as `[rows, cols]`.
 */
export function matrixShape(
  shape: readonly number[],
  where = "tensor()",
): [number, number] {
  if (shape.length > 2) {
    throw new RangeError(
      `${where}: shape [${shape.join(", ")}] has ${shape.length} ` +
        "dimensions; expected at most 2",
    );
  }
  for (const dimension of shape) {
    if (!Number.isInteger(dimension) || dimension < 0) {
      throw new RangeError(
        `${where}: shape [${shape.join(", ")}] must hold non-negative ` +
          "integers",
      );
    }
  }
  if (shape.length === 0) return [1, 1];
  if (shape.length === 1) return [1, shape[0]];
  return [shape[0], shape[1]];
}

/**
 * Formats a shape for error messages.
 *
 * @param shape The shape.
 * @returns For example `[3, 4]`.
 */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** A float matrix on a backend, with an optional gradient and graph node. */
export class Tensor {
  /** The shape: `[]`, `[c]` or `[rows, cols]`. */
  readonly shape: number[];
  /** Rows of the 2-D view. */
  readonly rows: number;
  /** Columns of the 2-D view. */
  readonly cols: number;
  /** The backend that holds the values. */
  readonly backend: Backend;
  /**
   * Whether backward computes a gradient for this tensor. Set it on a
   * leaf (a tensor not produced by an op) to get `grad`.
   */
  requiresGrad: boolean;
  /** Accumulated gradient of a leaf after backward, same shape. */
  grad: Tensor | null = null;
  /** The op that produced this tensor, while its graph is alive. */
  node: GraphNode | null = null;
  #storage: Storage | null;
  #retained = false;
  #freedBy: string | null = null;

  /**
   * Wraps a storage the tensor will own. Most code uses
   * {@linkcode tensor} or an op instead.
   *
   * @param storage Values, `rows × cols` of them.
   * @param shape The shape.
   * @param backend The storage's backend.
   * @param requiresGrad Whether a gradient is wanted.
   */
  constructor(
    storage: Storage,
    shape: readonly number[],
    backend: Backend,
    requiresGrad = false,
  ) {
    const [rows, cols] = matrixShape(shape);
    if (storage.length !== rows * cols) {
      throw new RangeError(
        `tensor(): shape ${formatShape(shape)} needs ${rows * cols} values, ` +
          `got ${storage.length}`,
      );
    }
    this.shape = [...shape];
    this.rows = rows;
    this.cols = cols;
    this.backend = backend;
    this.requiresGrad = requiresGrad;
    this.#storage = storage;
    tidyScopes.at(-1)?.add(this);
  }

  /** Number of values. */
  get size(): number {
    return this.rows * this.cols;
  }

  /** The backend storage; an error once the tensor has been freed. */
  get storage(): Storage {
    if (this.#storage === null) {
      throw new Error(
        `tensor ${formatShape(this.shape)} was freed ${this.#freedBy}; ` +
          "call retain() on it before backward() to read it afterwards",
      );
    }
    return this.#storage;
  }

  /** Whether the values have been freed. */
  get isFreed(): boolean {
    return this.#storage === null;
  }

  /** Whether {@linkcode Tensor.retain} protects it from backward's cleanup. */
  get isRetained(): boolean {
    return this.#retained;
  }

  /**
   * Keeps this intermediate's values after backward (which frees the
   * other intermediates of the graph).
   *
   * @returns This tensor.
   */
  retain(): this {
    this.#retained = true;
    return this;
  }

  /**
   * Reads the values back to the host.
   *
   * @returns A float32 copy, row-major.
   * @example
   * ```ts
   * const values = await tensor([1, 2, 3, 4], [2, 2]).toArray();
   * ```
   */
  async toArray(): Promise<Float32Array> {
    return await this.backend.read(this.storage);
  }

  /**
   * Reads the only value of a one-value tensor.
   *
   * @returns The value.
   * @example
   * ```ts
   * const value = await tensor([2.5], []).item();
   * ```
   */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new RangeError(
        `item() needs a tensor with one value, got shape ` +
          formatShape(this.shape),
      );
    }
    return (await this.toArray())[0];
  }

  /**
   * Frees the values now (and the gradient). Further use is an error.
   */
  free(): void {
    if (this.#storage !== null) {
      this.backend.free(this.#storage);
      this.#storage = null;
      this.#freedBy = "by free()";
    }
    this.grad?.free();
    this.grad = null;
    this.node = null;
  }

  /**
   * Replaces the values (used by parameters when loading a checkpoint).
   *
   * @param storage New values of the same length, now owned.
   */
  protected replaceStorage(storage: Storage): void {
    if (storage.length !== this.size) {
      throw new RangeError(
        `cannot replace ${this.size} values of ${formatShape(this.shape)} ` +
          `with ${storage.length}`,
      );
    }
    if (this.#storage !== null && this.#storage !== storage) {
      this.backend.free(this.#storage);
    }
    this.#storage = storage;
  }

  /**
   * Back-propagates from this one-value tensor (normally the loss):
   * gradients accumulate into `grad` of every leaf that requires one;
   * afterwards the graph's intermediates are freed, except this tensor
   * and those marked with {@linkcode Tensor.retain}.
   *
   * @param options `retainGraph: true` keeps the graph for another pass.
   * @example
   * ```ts
   * import { Parameter, squaredNorm } from "../../engine.ts";
   * const w = new Parameter("w", [1, 2], [2]);
   * squaredNorm(w).backward();
   * const grad = await w.grad!.toArray(); // [2, 4]
   * ```
   */
  backward(options: { retainGraph?: boolean } = {}): void {
    if (this.size !== 1) {
      throw new RangeError(
        `backward() needs a one-value tensor (a loss), got shape ` +
          formatShape(this.shape),
      );
    }
    if (!this.requiresGrad) {
      throw new Error(
        "backward(): this tensor does not depend on any tensor that " +
          "requires a gradient (was it computed inside noGrad()?)",
      );
    }
    const order = topologicalOrder(this);
    const backend = this.backend;
    const grads = new Map<Tensor, Storage>();
    grads.set(this, backend.fill(1, 1));
    for (let t = order.length - 1; t >= 0; t--) {
      const current = order[t];
      const grad = grads.get(current);
      if (grad === undefined) continue;
      grads.delete(current);
      const node = current.node;
      if (node === null) {
        accumulateLeafGrad(current, grad);
        continue;
      }
      const needs = node.inputs.map((input) => input.requiresGrad);
      const inputGrads = node.backward(grad, needs);
      const owned: (Storage | null)[] = [];
      const seen = new Set<Storage>();
      for (let i = 0; i < node.inputs.length; i++) {
        const inputGrad = inputGrads[i] ?? null;
        if (inputGrad === null || !needs[i]) {
          if (inputGrad !== null && inputGrad !== grad) backend.free(inputGrad);
          owned.push(null);
          continue;
        }
        // Each accumulated gradient must be its own storage.
        owned.push(
          seen.has(inputGrad) ? backend.scale(inputGrad, 1) : inputGrad,
        );
        seen.add(inputGrad);
      }
      const gradKept = seen.has(grad);
      for (let i = 0; i < node.inputs.length; i++) {
        const inputGrad = owned[i];
        if (inputGrad !== null) {
          addGrad(grads, node.inputs[i], inputGrad, backend);
        }
      }
      if (!gradKept) backend.free(grad);
    }
    if (!options.retainGraph) releaseGraph(order, this);
  }

  /** @internal Marks the values as freed by backward's cleanup. */
  releaseAfterBackward(): void {
    if (this.#storage !== null) {
      this.backend.free(this.#storage);
      this.#storage = null;
      this.#freedBy = `after backward() (it came from ${this.node?.op}())`;
    }
  }
}

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [tensor, next] = top;
    const inputs = tensor.node?.inputs ?? [];
    if (next < inputs.length) {
      top[1] = next + 1;
      const input = inputs[next];
      if (input.requiresGrad && !visited.has(input)) {
        visited.add(input);
        stack.push([input, 0]);
      }
    } else {
      stack.pop();
      order.push(tensor);
    }
  }
  return order;
}

function addGrad(
  grads: Map<Tensor, Storage>,
  tensor: Tensor,
  grad: Storage,
  backend: Backend,
): void {
  const existing = grads.get(tensor);
  if (existing === undefined) {
    grads.set(tensor, grad);
    return;
  }
  const total = backend.binary(
    "add",
    existing,
    tensor.rows,
    tensor.cols,
    grad,
    tensor.rows,
    tensor.cols,
  );
  backend.free(existing);
  if (grad !== existing) backend.free(grad);
  grads.set(tensor, total);
}

function accumulateLeafGrad(leaf: Tensor, grad: Storage): void {
  if (leaf.grad === null) {
    leaf.grad = new Tensor(grad, leaf.shape, leaf.backend);
    return;
  }
  const backend = leaf.backend;
  const total = backend.binary(
    "add",
    leaf.grad.storage,
    leaf.rows,
    leaf.cols,
    grad,
    leaf.rows,
    leaf.cols,
  );
  backend.free(grad);
  leaf.grad.free();
  leaf.grad = new Tensor(total, leaf.shape, leaf.backend);
}

function releaseGraph(order: Tensor[], root: Tensor): void {
  for (const tensor of order) {
    const node = tensor.node;
    if (node === null) continue;
    for (const saved of node.saved) tensor.backend.free(saved);
    if (tensor !== root && !tensor.isRetained) tensor.releaseAfterBackward();
    tensor.node = null;
  }
}

/**
 * Records `output` as the result of an op on `inputs` when recording is on
 * and some input requires a gradient; otherwise frees `saved` at once.
 *
 * @param output The op's result.
 * @param op The op's name.
 * @param inputs Its tensor inputs.
 * @param backward Its backward function.
 * @param saved Extra storages the backward needs.
 * @returns `output`.
 */
export function record(
  output: Tensor,
  op: string,
  inputs: Tensor[],
  backward: BackwardFunction,
  saved: Storage[] = [],
): Tensor {
  if (gradEnabled && inputs.some((input) => input.requiresGrad)) {
    output.requiresGrad = true;
    output.node = { op, inputs, backward, saved };
  } else {
    for (const storage of saved) output.backend.free(storage);
  }
  return output;
}

function upload(
  values: ArrayLike<number>,
  backend: Backend,
): Storage {
  if (backend instanceof CpuBackend) return backend.uploadFloat64(values);
  return backend.uploadFloat32(
    values instanceof Float32Array ? values : Float32Array.from(values),
  );
}

/**
 * A tensor from host values (copied).
 *
 * @param values Row-major values (`number[]` or a typed array).
 * @param shape The shape; the value count must match.
 * @param backend Where to hold it (default: the CPU).
 * @returns A leaf tensor without gradient.
 * @example
 * ```ts
 * const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
 * ```
 */
export function tensor(
  values: ArrayLike<number>,
  shape: readonly number[],
  backend: Backend = cpuBackend,
): Tensor {
  const [rows, cols] = matrixShape(shape);
  if (values.length !== rows * cols) {
    throw new RangeError(
      `tensor(): shape ${formatShape(shape)} needs ${rows * cols} values, ` +
        `got ${values.length}`,
    );
  }
  return new Tensor(upload(values, backend), shape, backend);
}

/**
 * A tensor of zeros.
 *
 * @param shape The shape.
 * @param backend Where to hold it (default: the CPU).
 * @returns A leaf tensor.
 * @example
 * ```ts
 * const z = zeros([3, 2]);
 * ```
 */
export function zeros(
  shape: readonly number[],
  backend: Backend = cpuBackend,
): Tensor {
  const [rows, cols] = matrixShape(shape);
  return new Tensor(backend.fill(rows * cols, 0), shape, backend);
}

/**
 * A tensor of one repeated value.
 *
 * @param shape The shape.
 * @param value The value.
 * @param backend Where to hold it (default: the CPU).
 * @returns A leaf tensor.
 * @example
 * ```ts
 * const ones = full([2, 2], 1);
 * ```
 */
export function full(
  shape: readonly number[],
  value: number,
  backend: Backend = cpuBackend,
): Tensor {
  const [rows, cols] = matrixShape(shape);
  return new Tensor(backend.fill(rows * cols, value), shape, backend);
}

/**
 * Copies a tensor to another backend (values only, no graph).
 *
 * @param source The tensor.
 * @param backend The destination.
 * @returns A new leaf tensor there.
 * @example
 * ```ts
 * import { cpuBackend } from "../../engine.ts";
 * const copy = await toBackend(tensor([1, 2], [2]), cpuBackend);
 * ```
 */
export async function toBackend(
  source: Tensor,
  backend: Backend,
): Promise<Tensor> {
  const values = await source.toArray();
  return new Tensor(backend.uploadFloat32(values), source.shape, backend);
}

/**
 * A trainable tensor with its PyTorch `state_dict` name; gradients
 * accumulate in `grad` across backward passes until
 * {@linkcode Parameter.zeroGrad}.
 */
export class Parameter extends Tensor {
  /** The `state_dict` name, e.g. `user_embedding.weight`. */
  readonly name: string;

  /**
   * Creates a parameter from host values (copied) or a storage (owned).
   *
   * @param name The `state_dict` name.
   * @param values Initial values, row-major, or a storage of the backend.
   * @param shape The shape.
   * @param backend Where to hold it (default: the CPU).
   * @example
   * ```ts
   * const bias = new Parameter("image_trs.bias", [0, 0, 0], [3]);
   * ```
   */
  constructor(
    name: string,
    values: ArrayLike<number> | Storage,
    shape: readonly number[],
    backend: Backend = cpuBackend,
  ) {
    const [rows, cols] = matrixShape(shape, `Parameter "${name}"`);
    const isHost = ArrayBuffer.isView(values) || Array.isArray(values);
    const length = isHost
      ? (values as ArrayLike<number>).length
      : (values as Storage).length;
    if (length !== rows * cols) {
      throw new RangeError(
        `Parameter "${name}": shape ${formatShape(shape)} needs ` +
          `${rows * cols} values, got ${length}`,
      );
    }
    const storage = isHost
      ? upload(values as ArrayLike<number>, backend)
      : values as Storage;
    super(storage, shape, backend, true);
    this.name = name;
  }

  /**
   * Replaces the values from the host, e.g. from a checkpoint.
   *
   * @param values Exactly `size` values, row-major.
   */
  assign(values: ArrayLike<number>): void {
    if (values.length !== this.size) {
      throw new RangeError(
        `Parameter "${this.name}" has shape ${formatShape(this.shape)} ` +
          `(${this.size} values); got ${values.length} values`,
      );
    }
    this.replaceStorage(upload(values, this.backend));
  }

  /** Frees and clears the gradient. */
  zeroGrad(): void {
    this.grad?.free();
    this.grad = null;
  }
}

/**
 * Row numbers for {@linkcode gatherRows}-style ops: kept on the host (to
 * validate ranges and build the inverse for backward) and uploaded once.
 */
export class IndexTensor {
  /** The backend that holds the uploaded copy. */
  readonly backend: Backend;
  /** The host copy of the indices. */
  readonly values: Int32Array;
  /** Smallest index (`Infinity` when empty). */
  readonly minimum: number;
  /** Largest index (`-Infinity` when empty). */
  readonly maximum: number;
  #storage: IndexStorage | null = null;
  #inverses = new Map<number, InverseIndex>();

  /**
   * Prefer {@linkcode indices}.
   *
   * @param values The indices (copied).
   * @param backend Where to upload them.
   */
  constructor(values: Int32Array, backend: Backend) {
    this.values = values.slice();
    this.backend = backend;
    let minimum = Infinity;
    let maximum = -Infinity;
    for (const value of this.values) {
      if (value < minimum) minimum = value;
      if (value > maximum) maximum = value;
    }
    this.minimum = minimum;
    this.maximum = maximum;
  }

  /** Number of indices. */
  get length(): number {
    return this.values.length;
  }

  /** The uploaded indices. */
  get storage(): IndexStorage {
    if (this.#storage === null) {
      this.#storage = this.backend.uploadInt32(this.values);
    }
    return this.#storage;
  }

  /**
   * The inverse index for a table of `rows` rows (built once).
   *
   * @param rows Row count of the gathered table.
   * @returns Offsets and positions, uploaded.
   */
  inverse(rows: number): InverseIndex {
    const cached = this.#inverses.get(rows);
    if (cached !== undefined) return cached;
    const offsets = new Int32Array(rows + 1);
    for (const value of this.values) offsets[value + 1]++;
    for (let r = 0; r < rows; r++) offsets[r + 1] += offsets[r];
    const fill = offsets.slice(0, rows);
    const positions = new Int32Array(this.values.length);
    for (let p = 0; p < this.values.length; p++) {
      positions[fill[this.values[p]]++] = p;
    }
    const inverse: InverseIndex = {
      rows,
      count: this.values.length,
      offsets: this.backend.uploadInt32(offsets),
      positions: this.backend.uploadInt32(positions),
    };
    this.#inverses.set(rows, inverse);
    return inverse;
  }

  /** Frees the uploaded copies. */
  free(): void {
    if (this.#storage !== null) this.backend.free(this.#storage);
    this.#storage = null;
    for (const inverse of this.#inverses.values()) {
      this.backend.free(inverse.offsets);
      this.backend.free(inverse.positions);
    }
    this.#inverses.clear();
  }
}

/**
 * An index tensor from host integers.
 *
 * @param values Row numbers (non-negative).
 * @param backend Where to upload them (default: the CPU).
 * @returns The index tensor.
 * @example
 * ```ts
 * const batchUsers = indices(new Int32Array([4, 0, 4]));
 * ```
 */
export function indices(
  values: Int32Array | ArrayLike<number>,
  backend: Backend = cpuBackend,
): IndexTensor {
  const array = values instanceof Int32Array ? values : Int32Array.from(values);
  for (let p = 0; p < array.length; p++) {
    if (values[p] !== array[p]) {
      throw new RangeError(
        `indices(): value ${values[p]} at position ${p} is not a 32-bit ` +
          "integer",
      );
    }
  }
  return new IndexTensor(array, backend);
}
