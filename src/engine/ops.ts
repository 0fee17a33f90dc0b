/**
 * The ops of the engine, each as forward, then backward with the
 * derivative it implements. Every op checks its shapes first and throws a
 * `RangeError` naming the op and the shapes it got; then it calls backend
 * primitives only, so forward and backward stay on the tensors' backend.
 *
 * Broadcasting (add, sub, mul): each dimension of the two 2-D views must
 * be equal or 1 (same shape, a row vector `[1, c]` or `[c]`, a column
 * `[r, 1]`, or a scalar).
 *
 * @module
 */

import type {
  BinaryOperation,
  SparseStorage,
  Storage,
  UnaryOperation,
} from "./backend.ts";
import type { CsrMatrix } from "../graph/csr.ts";
import { formatShape, type IndexTensor, record, Tensor } from "./tensor.ts";
import { cpuBackend } from "./cpu.ts";
import type { Backend } from "./backend.ts";

/** Norm floor of {@linkcode normalizeRows}, as in PyTorch's `F.normalize`. */
export const NORM_FLOOR = 1e-12;

function sameBackend(op: string, tensors: Tensor[]): Backend {
  const backend = tensors[0].backend;
  for (const t of tensors) {
    if (t.backend !== backend) {
      throw new TypeError(
        `${op}(): inputs live on different backends (${backend.name} and ` +
          `${t.backend.name}); move them with toBackend() first`,
      );
    }
  }
  return backend;
}

function mismatch(op: string, a: Tensor, b: Tensor, expected: string): never {
  throw new RangeError(
    `${op}(): shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} ` +
      `do not match; expected ${expected}`,
  );
}

// Products.

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** Use `aᵀ` (a stored `[k, m]`). */
  transposeA?: boolean;
  /** Use `bᵀ` (b stored `[n, k]`), as Linear does with `x Wᵀ`. */
  transposeB?: boolean;
}

/**
 * Dense product `op(a) · op(b)`.
 *
 * @param a Left matrix.
 * @param b Right matrix.
 * @param options Which operands to transpose.
 * @returns `[m, n]`.
 * @example
 * ```ts
 * import { matmul, tensor } from "../../engine.ts";
 * const y = matmul(tensor([1, 2, 3, 4], [2, 2]), tensor([1, 0], [1, 2]), {
 *   transposeB: true,
 * }); // [[1], [3]]
 * ```
 */
export function matmul(
  a: Tensor,
  b: Tensor,
  options: MatmulOptions = {},
): Tensor {
  const backend = sameBackend("matmul", [a, b]);
  const transposeA = options.transposeA ?? false;
  const transposeB = options.transposeB ?? false;
  const [m, k] = transposeA ? [a.cols, a.rows] : [a.rows, a.cols];
  const [kb, n] = transposeB ? [b.cols, b.rows] : [b.rows, b.cols];
  if (k !== kb) {
    mismatch(
      "matmul",
      a,
      b,
      `inner dimensions to agree (${k} vs ${kb}` +
        `${transposeA ? ", a transposed" : ""}` +
        `${transposeB ? ", b transposed" : ""})`,
    );
  }
  const out = new Tensor(
    backend.matmul(a.storage, b.storage, m, k, n, transposeA, transposeB),
    [m, n],
    backend,
  );

  // d(out)/d(a) = g op(b)ᵀ (transposed back when a was),
  // d(out)/d(b) = op(a)ᵀ g (transposed back when b was)
  return record(out, "matmul", [a, b], (g, needs) => {
    let gradA: Storage | null = null;
    let gradB: Storage | null = null;
    if (needs[0]) {
      gradA = transposeA
        ? backend.matmul(b.storage, g, k, n, m, transposeB, true)
        : backend.matmul(g, b.storage, m, n, k, false, !transposeB);
    }
    if (needs[1]) {
      gradB = transposeB
        ? backend.matmul(g, a.storage, n, m, k, true, transposeA)
        : backend.matmul(a.storage, g, k, m, n, !transposeA, false);
    }
    return [gradA, gradB];
  });
}

/** A constant sparse matrix uploaded for {@linkcode spmm}. */
export class SparseTensor {
  /** Rows. */
  readonly rows: number;
  /** Columns. */
  readonly cols: number;
  /** The backend that holds it. */
  readonly backend: Backend;
  /** The uploaded matrix. */
  readonly storage: SparseStorage;
  /** Whether the matrix equals its transpose (then backward reuses it). */
  readonly symmetric: boolean;
  #transposed: SparseStorage | null;

  /**
   * Prefer {@linkcode sparseConstant}.
   *
   * @param matrix The matrix.
   * @param backend Where to hold it.
   */
  constructor(matrix: CsrMatrix, backend: Backend) {
    validateCsr(matrix);
    this.rows = matrix.rows;
    this.cols = matrix.cols;
    this.backend = backend;
    this.storage = backend.uploadCsr(matrix);
    const transposed = transposeCsr(matrix);
    this.symmetric = csrEqual(matrix, transposed);
    this.#transposed = this.symmetric
      ? this.storage
      : backend.uploadCsr(transposed);
  }

  /** The transpose, for backward. */
  get transposed(): SparseStorage {
    if (this.#transposed === null) {
      throw new Error("sparse tensor used after free()");
    }
    return this.#transposed;
  }

  /** Frees both uploaded matrices. */
  free(): void {
    if (this.#transposed !== null && this.#transposed !== this.storage) {
      this.backend.free(this.#transposed);
    }
    this.backend.free(this.storage);
    this.#transposed = null;
  }
}

function validateCsr(matrix: CsrMatrix): void {
  const { rows, cols, rowOffsets, columnIndices, values } = matrix;
  if (rowOffsets.length !== rows + 1) {
    throw new RangeError(
      `sparseConstant(): rowOffsets has ${rowOffsets.length} entries; ` +
        `expected rows + 1 = ${rows + 1}`,
    );
  }
  const count = rowOffsets[rows];
  if (columnIndices.length !== count || values.length !== count) {
    throw new RangeError(
      `sparseConstant(): rowOffsets ends at ${count} but there are ` +
        `${columnIndices.length} column indices and ${values.length} values`,
    );
  }
  for (let r = 0; r < rows; r++) {
    if (rowOffsets[r + 1] < rowOffsets[r]) {
      throw new RangeError(
        `sparseConstant(): rowOffsets decreases at row ${r}`,
      );
    }
  }
  for (let e = 0; e < count; e++) {
    const c = columnIndices[e];
    if (c < 0 || c >= cols) {
      throw new RangeError(
        `sparseConstant(): column index ${c} at entry ${e} is outside ` +
          `[0, ${cols})`,
      );
    }
  }
}

/**
 * The transpose of a CSR matrix, columns ascending within each row.
 *
 * @param matrix The matrix.
 * @returns Its transpose.
 */
export function transposeCsr(matrix: CsrMatrix): CsrMatrix {
  const { rows, cols, rowOffsets, columnIndices, values } = matrix;
  const count = rowOffsets[rows];
  const offsets = new Int32Array(cols + 1);
  for (let e = 0; e < count; e++) offsets[columnIndices[e] + 1]++;
  for (let c = 0; c < cols; c++) offsets[c + 1] += offsets[c];
  const fill = offsets.slice(0, cols);
  const transposedColumns = new Int32Array(count);
  const transposedValues = new Float32Array(count);
  for (let r = 0; r < rows; r++) {
    for (let e = rowOffsets[r]; e < rowOffsets[r + 1]; e++) {
      const slot = fill[columnIndices[e]]++;
      transposedColumns[slot] = r;
      transposedValues[slot] = values[e];
    }
  }
  return {
    rows: cols,
    cols: rows,
    rowOffsets: offsets,
    columnIndices: transposedColumns,
    values: transposedValues,
  };
}

function csrEqual(a: CsrMatrix, b: CsrMatrix): boolean {
  if (a.rows !== b.rows || a.cols !== b.cols) return false;
  const count = a.rowOffsets[a.rows];
  for (let r = 0; r <= a.rows; r++) {
    if (a.rowOffsets[r] !== b.rowOffsets[r]) return false;
  }
  for (let e = 0; e < count; e++) {
    if (a.columnIndices[e] !== b.columnIndices[e]) return false;
    if (a.values[e] !== b.values[e]) return false;
  }
  return true;
}

/**
 * Uploads a constant sparse matrix (a graph) once, with its transpose for
 * backward (shared when the matrix is symmetric).
 *
 * @param matrix The CSR matrix.
 * @param backend Where to hold it (default: the CPU).
 * @returns The sparse tensor.
 * @example
 * ```ts
 * import { sparseConstant } from "../../engine.ts";
 * const identity = sparseConstant({
 *   rows: 2,
 *   cols: 2,
 *   rowOffsets: new Int32Array([0, 1, 2]),
 *   columnIndices: new Int32Array([0, 1]),
 *   values: new Float32Array([1, 1]),
 * });
 * ```
 */
export function sparseConstant(
  matrix: CsrMatrix,
  backend: Backend = cpuBackend,
): SparseTensor {
  return new SparseTensor(matrix, backend);
}

/**
 * Sparse times dense, `S X`.
 *
 * @param sparse The constant sparse matrix `[r, k]`.
 * @param x Dense `[k, c]`.
 * @returns `[r, c]`.
 * @example
 * ```ts
 * import { sparseConstant, spmm, tensor } from "../../engine.ts";
 * const s = sparseConstant({
 *   rows: 1,
 *   cols: 2,
 *   rowOffsets: new Int32Array([0, 2]),
 *   columnIndices: new Int32Array([0, 1]),
 *   values: new Float32Array([0.5, 0.5]),
 * });
 * const y = spmm(s, tensor([1, 2, 3, 4], [2, 2])); // [[2, 3]]
 * ```
 */
export function spmm(sparse: SparseTensor, x: Tensor): Tensor {
  if (sparse.backend !== x.backend) {
    throw new TypeError(
      `spmm(): the sparse matrix lives on ${sparse.backend.name} and the ` +
        `dense one on ${x.backend.name}`,
    );
  }
  if (x.rows !== sparse.cols) {
    throw new RangeError(
      `spmm(): shapes [${sparse.rows}, ${sparse.cols}] (sparse) and ` +
        `${formatShape(x.shape)} do not match; expected the dense operand ` +
        `to have ${sparse.cols} rows`,
    );
  }
  const backend = x.backend;
  const out = new Tensor(
    backend.spmm(sparse.storage, x.storage, x.cols),
    [sparse.rows, x.cols],
    backend,
  );

  // d(out)/d(x) = Sᵀ g
  return record(out, "spmm", [x], (g) => [
    backend.spmm(sparse.transposed, g, x.cols),
  ]);
}

// Element-wise.

function broadcastShape(op: string, a: Tensor, b: Tensor): number[] {
  const rows = a.rows === b.rows || b.rows === 1
    ? a.rows
    : a.rows === 1
    ? b.rows
    : -1;
  const cols = a.cols === b.cols || b.cols === 1
    ? a.cols
    : a.cols === 1
    ? b.cols
    : -1;
  if (rows < 0 || cols < 0) {
    mismatch(
      op,
      a,
      b,
      "equal shapes, or a row [1, c] / [c], column [r, 1] or scalar to " +
        "broadcast",
    );
  }
  const rank = Math.max(a.shape.length, b.shape.length);
  if (rank === 2) return [rows, cols];
  if (rank === 1) return [cols];
  return [];
}

/** The gradient `g` of a broadcast result summed back to `x`'s shape. */
function reduceTo(
  backend: Backend,
  g: Storage,
  rows: number,
  cols: number,
  x: Tensor,
): Storage {
  if (x.rows === rows && x.cols === cols) return g;
  const summed = backend.sumTo(g, rows, cols, x.rows, x.cols);
  return summed;
}

function binaryOp(
  op: BinaryOperation,
  a: Tensor,
  b: Tensor,
): Tensor {
  const backend = sameBackend(op, [a, b]);
  const shape = broadcastShape(op, a, b);
  const out = new Tensor(
    backend.binary(op, a.storage, a.rows, a.cols, b.storage, b.rows, b.cols),
    shape,
    backend,
  );
  return out;
}

/**
 * `a + b` with broadcasting.
 *
 * @param a Left.
 * @param b Right.
 * @returns The sum.
 * @example
 * ```ts
 * import { add, tensor } from "../../engine.ts";
 * const y = add(tensor([1, 2, 3, 4], [2, 2]), tensor([10, 20], [2]));
 * ```
 */
export function add(a: Tensor, b: Tensor): Tensor {
  const out = binaryOp("add", a, b);
  const backend = out.backend;

  // d(out)/d(a) = 1, d(out)/d(b) = 1 (summed over broadcast dimensions)
  return record(out, "add", [a, b], (g, needs) => [
    needs[0] ? reduceTo(backend, g, out.rows, out.cols, a) : null,
    needs[1] ? reduceTo(backend, g, out.rows, out.cols, b) : null,
  ]);
}

/**
 * `a − b` with broadcasting.
 *
 * @param a Left.
 * @param b Right.
 * @returns The difference.
 * @example
 * ```ts
 * import { sub, tensor } from "../../engine.ts";
 * const y = sub(tensor([1, 2], [2]), tensor([1], []));
 * ```
 */
export function sub(a: Tensor, b: Tensor): Tensor {
  const out = binaryOp("sub", a, b);
  const backend = out.backend;

  // d(out)/d(a) = 1, d(out)/d(b) = −1 (summed over broadcast dimensions)
  return record(out, "sub", [a, b], (g, needs) => {
    let gradB: Storage | null = null;
    if (needs[1]) {
      const reduced = reduceTo(backend, g, out.rows, out.cols, b);
      gradB = backend.scale(reduced, -1);
      if (reduced !== g) backend.free(reduced);
    }
    return [
      needs[0] ? reduceTo(backend, g, out.rows, out.cols, a) : null,
      gradB,
    ];
  });
}

/**
 * `a ⊙ b` (element-wise) with broadcasting.
 *
 * @param a Left.
 * @param b Right.
 * @returns The product.
 * @example
 * ```ts
 * import { mul, tensor } from "../../engine.ts";
 * const y = mul(tensor([1, 2, 3, 4], [2, 2]), tensor([2, 3], [2, 1]));
 * ```
 */
export function mul(a: Tensor, b: Tensor): Tensor {
  const out = binaryOp("mul", a, b);
  const backend = out.backend;

  // d(out)/d(a) = b, d(out)/d(b) = a (summed over broadcast dimensions)
  return record(out, "mul", [a, b], (g, needs) => {
    const grads: (Storage | null)[] = [null, null];
    for (const [i, self, other] of [[0, a, b], [1, b, a]] as const) {
      if (!needs[i]) continue;
      const full = backend.binary(
        "mul",
        g,
        out.rows,
        out.cols,
        other.storage,
        other.rows,
        other.cols,
      );
      grads[i] = reduceTo(backend, full, out.rows, out.cols, self);
      if (grads[i] !== full) backend.free(full);
    }
    return grads;
  });
}

/**
 * `s · x` for a host constant `s`.
 *
 * @param x Input.
 * @param factor The constant.
 * @returns The scaled tensor.
 * @example
 * ```ts
 * import { scale, tensor } from "../../engine.ts";
 * const y = scale(tensor([1, 2], [2]), 0.5);
 * ```
 */
export function scale(x: Tensor, factor: number): Tensor {
  const backend = x.backend;
  const out = new Tensor(backend.scale(x.storage, factor), x.shape, backend);

  // d(out)/d(x) = s
  return record(out, "scale", [x], (g) => [backend.scale(g, factor)]);
}

function unaryOp(operation: UnaryOperation, x: Tensor): Tensor {
  const backend = x.backend;
  const out = new Tensor(backend.unary(operation, x.storage), x.shape, backend);

  // d(out)/d(x) = f'(x), stated per function in the exported op below
  return record(out, operation, [x], (g) => [
    backend.unaryBackward(operation, x.storage, out.storage, g),
  ]);
}

/**
 * The logistic sigmoid `σ(x) = 1 / (1 + e^−x)`.
 *
 * @param x Input.
 * @returns `σ(x)`.
 * @example
 * ```ts
 * import { sigmoid, tensor } from "../../engine.ts";
 * const y = sigmoid(tensor([0], [])); // 0.5
 * ```
 */
export function sigmoid(x: Tensor): Tensor {
  // d(out)/d(x) = σ(x) (1 − σ(x))
  return unaryOp("sigmoid", x);
}

/**
 * Hyperbolic tangent.
 *
 * @param x Input.
 * @returns `tanh(x)`.
 * @example
 * ```ts
 * import { tanh, tensor } from "../../engine.ts";
 * const y = tanh(tensor([0.5], []));
 * ```
 */
export function tanh(x: Tensor): Tensor {
  // d(out)/d(x) = 1 − tanh²(x)
  return unaryOp("tanh", x);
}

/**
 * `log σ(x)`, computed without overflow.
 *
 * @param x Input.
 * @returns `log σ(x)`.
 * @example
 * ```ts
 * import { logSigmoid, tensor } from "../../engine.ts";
 * const y = logSigmoid(tensor([-100], [])); // -100
 * ```
 */
export function logSigmoid(x: Tensor): Tensor {
  // d(out)/d(x) = σ(−x)
  return unaryOp("logSigmoid", x);
}

/**
 * `e^x`.
 *
 * @param x Input.
 * @returns `exp(x)`.
 * @example
 * ```ts
 * import { exp, tensor } from "../../engine.ts";
 * const y = exp(tensor([1], []));
 * ```
 */
export function exp(x: Tensor): Tensor {
  // d(out)/d(x) = e^x
  return unaryOp("exp", x);
}

/**
 * Natural logarithm.
 *
 * @param x Input (positive).
 * @returns `log(x)`.
 * @example
 * ```ts
 * import { log, tensor } from "../../engine.ts";
 * const y = log(tensor([1], [])); // 0
 * ```
 */
export function log(x: Tensor): Tensor {
  // d(out)/d(x) = 1 / x
  return unaryOp("log", x);
}

/**
 * Square root (for plain L2 norms, as MMRec's LightGCN regulariser).
 *
 * @param x Input (non-negative).
 * @returns `sqrt(x)`.
 * @example
 * ```ts
 * import { sqrt, tensor } from "../../engine.ts";
 * const y = sqrt(tensor([4], [])); // 2
 * ```
 */
export function sqrt(x: Tensor): Tensor {
  // d(out)/d(x) = 1 / (2 sqrt(x))
  return unaryOp("sqrt", x);
}

// Row-wise functions.

/**
 * Each row divided by `max(‖row‖₂, 1e-12)`; a zero row stays zero (like
 * PyTorch's `F.normalize`).
 *
 * @param x Input `[r, c]`.
 * @returns Unit rows.
 * @example
 * ```ts
 * import { normalizeRows, tensor } from "../../engine.ts";
 * const y = normalizeRows(tensor([3, 4, 0, 0], [2, 2])); // [[.6, .8], [0, 0]]
 * ```
 */
export function normalizeRows(x: Tensor): Tensor {
  const backend = x.backend;
  const out = new Tensor(
    backend.normalizeRows(x.storage, x.rows, x.cols, NORM_FLOOR),
    x.shape,
    backend,
  );

  // d(out)/d(x) = (I − y yᵀ) / ‖x‖ per row; 1 / floor where ‖x‖ ≤ floor
  return record(out, "normalizeRows", [x], (g) => [
    backend.normalizeRowsBackward(
      x.storage,
      out.storage,
      g,
      x.rows,
      x.cols,
      NORM_FLOOR,
    ),
  ]);
}

/**
 * Softmax of each row.
 *
 * @param x Input `[r, c]`.
 * @returns Rows summing to 1.
 * @example
 * ```ts
 * import { softmaxRows, tensor } from "../../engine.ts";
 * const y = softmaxRows(tensor([1, 1, 1000, 1000], [2, 2]));
 * ```
 */
export function softmaxRows(x: Tensor): Tensor {
  const backend = x.backend;
  const out = new Tensor(
    backend.softmaxRows(x.storage, x.rows, x.cols),
    x.shape,
    backend,
  );

  // d(out)/d(x) = y ⊙ (g − (g · y)) per row
  return record(out, "softmaxRows", [x], (g) => [
    backend.softmaxRowsBackward(out.storage, g, x.rows, x.cols),
  ]);
}

/**
 * `log Σ_c exp(x_rc)` of each row.
 *
 * @param x Input `[r, c]`.
 * @returns `[r, 1]`.
 * @example
 * ```ts
 * import { logsumexpRows, tensor } from "../../engine.ts";
 * const y = logsumexpRows(tensor([1000, 1000], [1, 2])); // 1000 + log 2
 * ```
 */
export function logsumexpRows(x: Tensor): Tensor {
  const backend = x.backend;
  const out = new Tensor(
    backend.logsumexpRows(x.storage, x.rows, x.cols),
    [x.rows, 1],
    backend,
  );

  // d(out)/d(x) = softmax(x) per row, times g_r
  return record(out, "logsumexpRows", [x], (g) => [
    backend.logsumexpRowsBackward(x.storage, out.storage, g, x.rows, x.cols),
  ]);
}

/**
 * Dot product of matching rows, `Σ_c a_rc b_rc`.
 *
 * @param a Left `[r, c]`.
 * @param b Right `[r, c]`.
 * @returns `[r, 1]`.
 * @example
 * ```ts
 * import { rowDot, tensor } from "../../engine.ts";
 * const y = rowDot(tensor([1, 2], [1, 2]), tensor([3, 4], [1, 2])); // [[11]]
 * ```
 */
export function rowDot(a: Tensor, b: Tensor): Tensor {
  const backend = sameBackend("rowDot", [a, b]);
  if (a.rows !== b.rows || a.cols !== b.cols) {
    mismatch("rowDot", a, b, "equal 2-D shapes");
  }
  const out = new Tensor(
    backend.rowDot(a.storage, b.storage, a.rows, a.cols),
    [a.rows, 1],
    backend,
  );

  // d(out)/d(a) = g_r b_r, d(out)/d(b) = g_r a_r
  return record(out, "rowDot", [a, b], (g, needs) => [
    needs[0]
      ? backend.binary("mul", g, a.rows, 1, b.storage, b.rows, b.cols)
      : null,
    needs[1]
      ? backend.binary("mul", g, a.rows, 1, a.storage, a.rows, a.cols)
      : null,
  ]);
}

// Reductions.

function sumToOp(
  op: string,
  x: Tensor,
  targetRows: number,
  targetCols: number,
  shape: number[],
  divisor: number,
): Tensor {
  const backend = x.backend;
  const summed = backend.sumTo(
    x.storage,
    x.rows,
    x.cols,
    targetRows,
    targetCols,
  );
  let storage = summed;
  if (divisor !== 1) {
    storage = backend.scale(summed, 1 / divisor);
    backend.free(summed);
  }
  const out = new Tensor(storage, shape, backend);

  // d(out)/d(x) = g broadcast back over the summed dimensions, / divisor
  return record(out, op, [x], (g) => {
    const scaled = divisor === 1 ? g : backend.scale(g, 1 / divisor);
    const grad = backend.broadcast(
      scaled,
      targetRows,
      targetCols,
      x.rows,
      x.cols,
    );
    if (scaled !== g) backend.free(scaled);
    return [grad];
  });
}

/**
 * Sum of all values.
 *
 * @param x Input.
 * @returns A scalar.
 * @example
 * ```ts
 * import { sum, tensor } from "../../engine.ts";
 * const y = sum(tensor([1, 2, 3], [3])); // 6
 * ```
 */
export function sum(x: Tensor): Tensor {
  return sumToOp("sum", x, 1, 1, [], 1);
}

/**
 * Mean of all values (NaN for an empty tensor).
 *
 * @param x Input.
 * @returns A scalar.
 * @example
 * ```ts
 * import { mean, tensor } from "../../engine.ts";
 * const y = mean(tensor([1, 2, 3], [3])); // 2
 * ```
 */
export function mean(x: Tensor): Tensor {
  return sumToOp("mean", x, 1, 1, [], x.size);
}

/**
 * Sum of each row.
 *
 * @param x Input `[r, c]`.
 * @returns `[r, 1]`.
 * @example
 * ```ts
 * import { sumRows, tensor } from "../../engine.ts";
 * const y = sumRows(tensor([1, 2, 3, 4], [2, 2])); // [[3], [7]]
 * ```
 */
export function sumRows(x: Tensor): Tensor {
  return sumToOp("sumRows", x, x.rows, 1, [x.rows, 1], 1);
}

/**
 * Mean of each row.
 *
 * @param x Input `[r, c]`.
 * @returns `[r, 1]`.
 * @example
 * ```ts
 * import { meanRows, tensor } from "../../engine.ts";
 * const y = meanRows(tensor([1, 2, 3, 4], [2, 2])); // [[1.5], [3.5]]
 * ```
 */
export function meanRows(x: Tensor): Tensor {
  return sumToOp("meanRows", x, x.rows, 1, [x.rows, 1], x.cols);
}

/**
 * Squared L2 (Frobenius) norm, `Σ x²`.
 *
 * @param x Input.
 * @returns A scalar.
 * @example
 * ```ts
 * import { squaredNorm, tensor } from "../../engine.ts";
 * const y = squaredNorm(tensor([3, 4], [2])); // 25
 * ```
 */
export function squaredNorm(x: Tensor): Tensor {
  const backend = x.backend;
  const out = new Tensor(backend.squaredNorm(x.storage), [], backend);

  // d(out)/d(x) = 2 g x
  return record(out, "squaredNorm", [x], (g) => {
    const twice = backend.scale(g, 2);
    const grad = backend.binary("mul", x.storage, x.rows, x.cols, twice, 1, 1);
    backend.free(twice);
    return [grad];
  });
}

/**
 * Plain (not squared) L2 norm, `sqrt(Σ x²)`, as MMRec's BPR and LightGCN
 * regularisers use it.
 *
 * @param x Input.
 * @returns A scalar.
 * @example
 * ```ts
 * import { norm, tensor } from "../../engine.ts";
 * const y = norm(tensor([3, 4], [2])); // 5
 * ```
 */
export function norm(x: Tensor): Tensor {
  const squared = squaredNorm(x);
  return releaseUnrecorded(sqrt(squared), [squared]);
}

/**
 * Element-wise mean of tensors of one shape, `(x₁ + … + x_L) / L`.
 *
 * @param list The tensors (at least one).
 * @returns Their mean.
 * @example
 * ```ts
 * import { meanOf, tensor } from "../../engine.ts";
 * const y = meanOf([tensor([1, 2], [2]), tensor([3, 4], [2])]); // [2, 3]
 * ```
 */
export function meanOf(list: Tensor[]): Tensor {
  if (list.length === 0) {
    throw new RangeError("meanOf(): needs at least one tensor, got none");
  }
  const backend = sameBackend("meanOf", list);
  const first = list[0];
  for (const t of list) {
    if (formatShape(t.shape) !== formatShape(first.shape)) {
      mismatch("meanOf", first, t, "every tensor to have the same shape");
    }
  }
  let total = backend.scale(first.storage, 1);
  for (let i = 1; i < list.length; i++) {
    const next = backend.binary(
      "add",
      total,
      first.rows,
      first.cols,
      list[i].storage,
      first.rows,
      first.cols,
    );
    backend.free(total);
    total = next;
  }
  const storage = backend.scale(total, 1 / list.length);
  backend.free(total);
  const out = new Tensor(storage, first.shape, backend);

  // d(out)/d(x_l) = 1 / L
  return record(
    out,
    "meanOf",
    list,
    (g, needs) =>
      needs.map((need) => need ? backend.scale(g, 1 / list.length) : null),
  );
}

// Rearranging.

/**
 * Rows of `x` picked by an index, `out[p] = x[index[p]]`; repeated
 * indices are allowed and their gradients add up.
 *
 * @param x Table `[r, c]`.
 * @param index Row numbers in `[0, r)`.
 * @returns `[index.length, c]`.
 * @example
 * ```ts
 * import { gatherRows, indices, tensor } from "../../engine.ts";
 * const y = gatherRows(tensor([1, 2, 3, 4], [2, 2]), indices([1, 1, 0]));
 * ```
 */
export function gatherRows(x: Tensor, index: IndexTensor): Tensor {
  if (index.backend !== x.backend) {
    throw new TypeError(
      `gatherRows(): the table lives on ${x.backend.name} and the index ` +
        `on ${index.backend.name}`,
    );
  }
  if (index.length > 0 && (index.minimum < 0 || index.maximum >= x.rows)) {
    throw new RangeError(
      `gatherRows(): index values span [${index.minimum}, ` +
        `${index.maximum}] but the table ${formatShape(x.shape)} has rows ` +
        `[0, ${x.rows})`,
    );
  }
  const backend = x.backend;
  const out = new Tensor(
    backend.gatherRows(x.storage, x.cols, index.storage),
    [index.length, x.cols],
    backend,
  );

  // d(out)/d(x_r) = Σ over positions p with index[p] = r of g_p
  return record(out, "gatherRows", [x], (g) => [
    backend.gatherRowsBackward(g, x.cols, index.inverse(x.rows)),
  ]);
}

/**
 * Stacks matrices of equal width, top first.
 *
 * @param list The matrices.
 * @returns `[Σ rows, c]`.
 * @example
 * ```ts
 * import { concatRows, tensor } from "../../engine.ts";
 * const y = concatRows([tensor([1, 2], [1, 2]), tensor([3, 4], [1, 2])]);
 * ```
 */
export function concatRows(list: Tensor[]): Tensor {
  if (list.length === 0) {
    throw new RangeError("concatRows(): needs at least one tensor, got none");
  }
  const backend = sameBackend("concatRows", list);
  const cols = list[0].cols;
  let rows = 0;
  for (const t of list) {
    if (t.cols !== cols) {
      mismatch("concatRows", list[0], t, "the same number of columns");
    }
    rows += t.rows;
  }
  const out = new Tensor(
    backend.concatRows(list.map((t) => t.storage)),
    [rows, cols],
    backend,
  );

  // d(out)/d(x_l) = the rows of g that came from x_l
  return record(out, "concatRows", list, (g, needs) => {
    let start = 0;
    return list.map((t, i) => {
      const grad = needs[i] ? backend.sliceRows(g, cols, start, t.rows) : null;
      start += t.rows;
      return grad;
    });
  });
}

/**
 * Places matrices with equal row counts side by side, left first.
 *
 * @param list The matrices.
 * @returns `[r, Σ cols]`.
 * @example
 * ```ts
 * import { concatCols, tensor } from "../../engine.ts";
 * const y = concatCols([tensor([1, 2], [2, 1]), tensor([3, 4], [2, 1])]);
 * ```
 */
export function concatCols(list: Tensor[]): Tensor {
  if (list.length === 0) {
    throw new RangeError("concatCols(): needs at least one tensor, got none");
  }
  const backend = sameBackend("concatCols", list);
  const rows = list[0].rows;
  const widths: number[] = [];
  for (const t of list) {
    if (t.rows !== rows) {
      mismatch("concatCols", list[0], t, "the same number of rows");
    }
    widths.push(t.cols);
  }
  const cols = widths.reduce((total, width) => total + width, 0);
  const out = new Tensor(
    backend.concatCols(list.map((t) => t.storage), rows, widths),
    [rows, cols],
    backend,
  );

  // d(out)/d(x_l) = the columns of g that came from x_l
  return record(out, "concatCols", list, (g, needs) => {
    let start = 0;
    return list.map((t, i) => {
      const grad = needs[i]
        ? backend.sliceCols(g, rows, cols, start, t.cols)
        : null;
      start += t.cols;
      return grad;
    });
  });
}

function checkSizes(op: string, x: Tensor, total: number, sizes: number[]) {
  let sum = 0;
  for (const size of sizes) {
    if (!Number.isInteger(size) || size < 0) {
      throw new RangeError(
        `${op}(): sizes must be non-negative integers, got [${sizes}]`,
      );
    }
    sum += size;
  }
  if (sum !== total) {
    throw new RangeError(
      `${op}(): sizes [${sizes.join(", ")}] add up to ${sum} but the input ` +
        `${formatShape(x.shape)} has ${total}`,
    );
  }
}

/**
 * Splits rows into consecutive blocks (the reverse of
 * {@linkcode concatRows}), e.g. final embeddings into users and items.
 *
 * @param x Input `[r, c]`.
 * @param sizes Row count of each block, adding up to `r`.
 * @returns The blocks.
 * @example
 * ```ts
 * import { splitRows, tensor } from "../../engine.ts";
 * const [users, items] = splitRows(tensor([1, 2, 3], [3, 1]), [1, 2]);
 * ```
 */
export function splitRows(x: Tensor, sizes: number[]): Tensor[] {
  checkSizes("splitRows", x, x.rows, sizes);
  const backend = x.backend;
  let start = 0;
  return sizes.map((count) => {
    const first = start;
    start += count;
    const out = new Tensor(
      backend.sliceRows(x.storage, x.cols, first, count),
      [count, x.cols],
      backend,
    );

    // d(out)/d(x) = g in rows first .. first + count, zero elsewhere
    return record(out, "splitRows", [x], (g) => {
      const above = backend.fill(first * x.cols, 0);
      const below = backend.fill((x.rows - first - count) * x.cols, 0);
      const grad = backend.concatRows([above, g, below]);
      backend.free(above);
      backend.free(below);
      return [grad];
    });
  });
}

/**
 * Splits columns into consecutive blocks (the reverse of
 * {@linkcode concatCols}), e.g. attention weights per view.
 *
 * @param x Input `[r, c]`.
 * @param sizes Column count of each block, adding up to `c`.
 * @returns The blocks.
 * @example
 * ```ts
 * import { splitCols, tensor } from "../../engine.ts";
 * const [left, right] = splitCols(tensor([1, 2, 3, 4], [2, 2]), [1, 1]);
 * ```
 */
export function splitCols(x: Tensor, sizes: number[]): Tensor[] {
  checkSizes("splitCols", x, x.cols, sizes);
  const backend = x.backend;
  let start = 0;
  return sizes.map((count) => {
    const first = start;
    start += count;
    const out = new Tensor(
      backend.sliceCols(x.storage, x.rows, x.cols, first, count),
      [x.rows, count],
      backend,
    );

    // d(out)/d(x) = g in columns first .. first + count, zero elsewhere
    return record(out, "splitCols", [x], (g) => {
      const left = backend.fill(x.rows * first, 0);
      const right = backend.fill(x.rows * (x.cols - first - count), 0);
      const grad = backend.concatCols(
        [left, g, right],
        x.rows,
        [first, count, x.cols - first - count],
      );
      backend.free(left);
      backend.free(right);
      return [grad];
    });
  });
}

// Fused pieces of MSCA's forward pass (spec 5).

/**
 * The gated modality projection of MSCA: `f_m = E_i ⊙ σ(T W_gᵀ + b_g)`,
 * where `T = T_m(F_m)` is the modality's transformed feature table. The
 * `d × d` product runs on the tiled {@linkcode matmul}; the bias, sigmoid
 * and product with `E_i` run as one fused kernel, forward and backward.
 *
 * @param itemEmbedding `E_i`, `[I, d]`.
 * @param projected `T_m(F_m)`, `[I, d]`.
 * @param gateWeight `W_g`, `[d, d]` (`[out, in]` like `nn.Linear`).
 * @param gateBias `b_g`, `[d]` or `[1, d]`.
 * @returns `f_m`, `[I, d]`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gatedProjection, tensor } from "../../engine.ts";
 * const f = gatedProjection(
 *   tensor([2, 4], [1, 2]),
 *   tensor([1, 1], [1, 2]),
 *   tensor([0, 0, 0, 0], [2, 2]),
 *   tensor([0, 0], [2]),
 * );
 * assert.deepEqual([...await f.toArray()], [1, 2]); // σ(0) = 1/2
 * ```
 */
export function gatedProjection(
  itemEmbedding: Tensor,
  projected: Tensor,
  gateWeight: Tensor,
  gateBias: Tensor,
): Tensor {
  const backend = sameBackend("gatedProjection", [
    itemEmbedding,
    projected,
    gateWeight,
    gateBias,
  ]);
  const d = itemEmbedding.cols;
  if (projected.rows !== itemEmbedding.rows || projected.cols !== d) {
    mismatch(
      "gatedProjection",
      itemEmbedding,
      projected,
      "equal shapes [I, d] for the item embeddings and the projection",
    );
  }
  if (gateWeight.rows !== d || gateWeight.cols !== d) {
    mismatch(
      "gatedProjection",
      itemEmbedding,
      gateWeight,
      `a [${d}, ${d}] gate`,
    );
  }
  if (gateBias.size !== d || gateBias.rows !== 1) {
    mismatch("gatedProjection", itemEmbedding, gateBias, `a [${d}] gate bias`);
  }
  const preactivation = matmul(projected, gateWeight, { transposeB: true });
  const rows = itemEmbedding.rows;
  const out = new Tensor(
    backend.gatedProjection(
      itemEmbedding.storage,
      preactivation.storage,
      gateBias.storage,
      rows,
      d,
    ),
    [rows, d],
    backend,
  );

  const inputs = [itemEmbedding, preactivation, gateBias];
  // with s = σ(Z + b): d(out)/d(E) = g s, d(out)/d(Z) = g E s (1 − s),
  // d(out)/d(b) = Σ_rows g E s (1 − s); Z = T W_gᵀ goes back through matmul
  record(out, "gatedProjection", inputs, (g, needs) => {
    const grads = backend.gatedProjectionBackward(
      itemEmbedding.storage,
      preactivation.storage,
      gateBias.storage,
      g,
      rows,
      d,
    );
    const gradBias = needs[2]
      ? backend.sumTo(grads.preactivation, rows, d, 1, d)
      : null;
    return [grads.item, grads.preactivation, gradBias];
  });
  return releaseUnrecorded(out, [preactivation]);
}

/** Result of {@linkcode attentionFusion}. */
export interface AttentionFusion {
  /** `Ê = Σ_v x_v − Σ_v a_v x_v`, `[N, d]`, differentiable. */
  fused: Tensor;
  /**
   * The weights `a`, `[N, V]`, columns in the order of the views. A copy
   * outside the graph (no gradient flows through it, and backward does
   * not free it): the caller frees it.
   */
  attention: Tensor;
}

/** Most views {@linkcode attentionFusion} takes (`MAX_VIEWS` of its kernel). */
export const MAX_FUSED_VIEWS = 3;

/**
 * The attention fusion of MSCA across views (spec 5): each row of each
 * view gets a score `q(x_v) = w₂ · tanh(W₁ x_v + b₁)`, the scores of a row
 * go through one softmax across the views, giving `a_v`, and
 * `Ê = Σ_v x_v − Σ_v a_v x_v`. The products `x_v W₁ᵀ` run on the tiled
 * {@linkcode matmul} over the stacked views; the rest runs as one fused
 * kernel, forward and backward.
 *
 * @param views One to three views, each `[N, d]`.
 * @param queryWeight `W₁`, `[d, d]`.
 * @param queryBias `b₁`, `[d]` or `[1, d]`.
 * @param queryVector `w₂`, `[1, d]` (or `[d]`).
 * @returns `Ê` and the attention weights.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { attentionFusion, tensor } from "../../engine.ts";
 * const zero = tensor([0, 0, 0, 0], [2, 2]);
 * const { fused, attention } = attentionFusion(
 *   [tensor([1, 2], [1, 2]), tensor([3, 4], [1, 2])],
 *   zero,
 *   tensor([0, 0], [2]),
 *   tensor([0, 0], [1, 2]),
 * );
 * assert.deepEqual([...await attention.toArray()], [0.5, 0.5]);
 * assert.deepEqual([...await fused.toArray()], [2, 3]);
 * attention.free();
 * ```
 */
export function attentionFusion(
  views: Tensor[],
  queryWeight: Tensor,
  queryBias: Tensor,
  queryVector: Tensor,
): AttentionFusion {
  if (views.length < 1 || views.length > MAX_FUSED_VIEWS) {
    throw new RangeError(
      `attentionFusion(): needs 1 to ${MAX_FUSED_VIEWS} views, got ` +
        `${views.length}`,
    );
  }
  const backend = sameBackend("attentionFusion", [
    ...views,
    queryWeight,
    queryBias,
    queryVector,
  ]);
  const [rows, d] = [views[0].rows, views[0].cols];
  for (const view of views) {
    if (view.rows !== rows || view.cols !== d) {
      mismatch("attentionFusion", views[0], view, "views of equal shape");
    }
  }
  if (queryWeight.rows !== d || queryWeight.cols !== d) {
    mismatch("attentionFusion", views[0], queryWeight, `a [${d}, ${d}] W₁`);
  }
  for (const vector of [queryBias, queryVector]) {
    if (vector.size !== d || vector.rows !== 1) {
      mismatch("attentionFusion", views[0], vector, `a [${d}] vector`);
    }
  }
  const viewCount = views.length;
  const stacked = viewCount === 1 ? views[0] : concatRows(views);
  const preactivation = matmul(stacked, queryWeight, { transposeB: true });
  const forward = backend.attentionFusion(
    stacked.storage,
    preactivation.storage,
    queryBias.storage,
    queryVector.storage,
    rows,
    d,
    viewCount,
  );
  const fused = new Tensor(forward.fused, [rows, d], backend);
  const attention = new Tensor(
    backend.scale(forward.attention, 1),
    [rows, viewCount],
    backend,
  );

  // with h_v = tanh(Z_v + b₁), γ_v = −g · x_v, δ_v = a_v (γ_v − Σ_u a_u γ_u):
  // d(out)/d(x_v) = (1 − a_v) g (+ W₁ᵀ path through Z), d(out)/d(Z_v) =
  // δ_v w₂ ⊙ (1 − h_v²), d(out)/d(b₁) = Σ_rows,v d(out)/d(Z_v),
  // d(out)/d(w₂) = Σ_rows Σ_v δ_v h_v
  record(
    fused,
    "attentionFusion",
    [stacked, preactivation, queryBias, queryVector],
    (g, needs) => {
      const grads = backend.attentionFusionBackward(
        stacked.storage,
        preactivation.storage,
        queryBias.storage,
        queryVector.storage,
        forward.attention,
        g,
        rows,
        d,
        viewCount,
      );
      const gradBias = needs[2]
        ? backend.sumTo(grads.preactivation, viewCount * rows, d, 1, d)
        : null;
      const gradVector = needs[3]
        ? backend.sumTo(grads.queryVectorRows, rows, d, 1, d)
        : null;
      backend.free(grads.queryVectorRows);
      return [grads.views, grads.preactivation, gradBias, gradVector];
    },
    [forward.attention],
  );
  releaseUnrecorded(
    fused,
    stacked === views[0] ? [preactivation] : [stacked, preactivation],
  );
  return { fused, attention };
}

// Fused losses (spec 6).

/**
 * InfoNCE of spec 6: rows of `x` and `y` normalised (norm floor 1e-12),
 * then `mean_b logsumexp_c((x̂_b·ŷ_c − x̂_b·ŷ_b) / τ)`; the other rows of
 * the batch, repeats included, are the negatives.
 *
 * @param x Batch rows `[B, d]` (e.g. Ē_u[u]).
 * @param y Paired rows `[B, d]` (e.g. S_u[u]).
 * @param temperature `τ` (> 0).
 * @returns A scalar.
 * @example
 * ```ts
 * import { infoNce, tensor } from "../../engine.ts";
 * const x = tensor([1, 0, 0, 1], [2, 2]);
 * const loss = infoNce(x, tensor([1, 0, 1, 1], [2, 2]), 0.2);
 * ```
 */
export function infoNce(x: Tensor, y: Tensor, temperature: number): Tensor {
  const backend = sameBackend("infoNce", [x, y]);
  if (x.rows !== y.rows || x.cols !== y.cols) {
    mismatch("infoNce", x, y, "equal 2-D shapes [B, d]");
  }
  if (!(temperature > 0)) {
    throw new RangeError(
      `infoNce(): temperature must be positive, got ${temperature}`,
    );
  }
  const xUnit = normalizeRows(x);
  const yUnit = normalizeRows(y);
  const forward = backend.infoNce(
    xUnit.storage,
    yUnit.storage,
    x.rows,
    x.cols,
    temperature,
  );
  const out = new Tensor(forward.loss, [], backend);
  const saved = [forward.logsumexp];
  if (forward.probabilities !== undefined) saved.push(forward.probabilities);

  // with P_bc = softmax_c(x̂_b·ŷ_c / τ): d(out)/d(x̂_b) = Σ_c (P_bc − δ_bc) ŷ_c
  // / (τ B), d(out)/d(ŷ_c) = Σ_b (P_bc − δ_bc) x̂_b / (τ B); then through
  // normalizeRows to x and y
  record(out, "infoNce", [xUnit, yUnit], (g) => {
    const grads = backend.infoNceBackward(
      xUnit.storage,
      yUnit.storage,
      forward,
      g,
      x.rows,
      x.cols,
      temperature,
    );
    return [grads.x, grads.y];
  }, saved);
  return releaseUnrecorded(out, [xUnit, yUnit]);
}

/**
 * Frees the temporaries of a composite op when its result is not part of
 * a graph (no-grad mode or constant inputs); backward frees them
 * otherwise.
 */
function releaseUnrecorded(out: Tensor, temporaries: Tensor[]): Tensor {
  if (out.node === null) {
    for (const temporary of temporaries) temporary.free();
  }
  return out;
}

/** Options of {@linkcode bprLoss}. */
export interface BprOptions {
  /**
   * `ε` in `−log(ε + σ(d))`: 0 (default, MSCA: the stable `−log σ(d)`) or
   * 1e-10 (MMRec's BPR and LightGCN).
   */
  epsilon?: number;
}

/**
 * BPR loss `mean_b −log(ε + σ(u_b·p_b − u_b·n_b))`.
 *
 * @param user User rows `[B, d]`.
 * @param positive Positive item rows `[B, d]`.
 * @param negative Negative item rows `[B, d]`.
 * @param options `ε`.
 * @returns A scalar.
 * @example
 * ```ts
 * import { bprLoss, tensor } from "../../engine.ts";
 * const u = tensor([1, 0], [1, 2]);
 * const loss = bprLoss(u, tensor([1, 0], [1, 2]), tensor([0, 1], [1, 2]));
 * ```
 */
export function bprLoss(
  user: Tensor,
  positive: Tensor,
  negative: Tensor,
  options: BprOptions = {},
): Tensor {
  const backend = sameBackend("bprLoss", [user, positive, negative]);
  const epsilon = options.epsilon ?? 0;
  for (const other of [positive, negative]) {
    if (
      other.rows !== user.rows || other.cols !== user.cols
    ) {
      mismatch("bprLoss", user, other, "equal 2-D shapes [B, d]");
    }
  }
  if (!(epsilon >= 0)) {
    throw new RangeError(`bprLoss(): epsilon must be >= 0, got ${epsilon}`);
  }
  const forward = backend.bpr(
    user.storage,
    positive.storage,
    negative.storage,
    user.rows,
    user.cols,
    epsilon,
  );
  const out = new Tensor(forward.loss, [], backend);

  // with d_b = u·p − u·n and c_b = −σ'(d_b) / ((ε + σ(d_b)) B):
  // d(out)/d(u) = c (p − n), d(out)/d(p) = c u, d(out)/d(n) = −c u
  return record(out, "bprLoss", [user, positive, negative], (g) => {
    const grads = backend.bprBackward(
      user.storage,
      positive.storage,
      negative.storage,
      forward.difference,
      g,
      user.rows,
      user.cols,
      epsilon,
    );
    return [grads.user, grads.positive, grads.negative];
  }, [forward.difference]);
}
