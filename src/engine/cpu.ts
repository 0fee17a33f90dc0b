/**
 * The CPU backend: every primitive of {@linkcode Backend} as plain
 * TypeScript loops over row-major typed arrays.
 *
 * It runs in float32 (`cpuBackend`, what training uses) or in float64
 * (`createCpuBackend({ precision: "float64" })`, what the gradient checks
 * and golden comparisons use); the loops are the same.
 *
 * Dense products go through one register-blocked kernel that computes a
 * 4 × 4 block of dot products at a time over rows contiguous in the inner
 * dimension (`dotProductBlock`), plus a row-update kernel for a transposed
 * left operand (`rowUpdateProduct`); see {@linkcode CpuBackend.matmul}.
 *
 * @module
 */

import type {
  AdamStep,
  Backend,
  BinaryOperation,
  BprForward,
  IndexStorage,
  InfoNceForward,
  InverseIndex,
  SparseStorage,
  Storage,
  UnaryOperation,
} from "./backend.ts";
import type { CsrMatrix } from "../graph/csr.ts";

/** The typed arrays a CPU storage may hold. */
export type FloatArray = Float32Array | Float64Array;

/** Float precision of a {@linkcode CpuBackend}. */
export type CpuPrecision = "float32" | "float64";

/** A CPU storage: a typed array, released on `free()`. */
export class CpuStorage implements Storage {
  #data: FloatArray | null;

  /**
   * Wraps an array; the storage owns it from now on.
   *
   * @param data The values.
   */
  constructor(data: FloatArray) {
    this.#data = data;
  }

  /** Number of values (0 after free). */
  get length(): number {
    return this.#data === null ? 0 : this.#data.length;
  }

  /**
   * The values, for CPU kernels.
   *
   * @returns The typed array.
   */
  get data(): FloatArray {
    if (this.#data === null) {
      throw new Error("CPU storage used after free(); keep tensors alive");
    }
    return this.#data;
  }

  /** Drops the array (what `free()` does on the CPU). */
  release(): void {
    this.#data = null;
  }
}

/** A CPU index storage: an Int32Array. */
export class CpuIndexStorage implements IndexStorage {
  #data: Int32Array | null;

  /**
   * Wraps an array; the storage owns it from now on.
   *
   * @param data The indices.
   */
  constructor(data: Int32Array) {
    this.#data = data;
  }

  /** Number of indices (0 after free). */
  get length(): number {
    return this.#data === null ? 0 : this.#data.length;
  }

  /**
   * The indices, for CPU kernels.
   *
   * @returns The Int32Array.
   */
  get data(): Int32Array {
    if (this.#data === null) {
      throw new Error("CPU index storage used after free()");
    }
    return this.#data;
  }

  /** Drops the array. */
  release(): void {
    this.#data = null;
  }
}

/** A CSR matrix held by the CPU backend, values in its precision. */
export class CpuSparseStorage implements SparseStorage {
  /** Number of rows. */
  readonly rows: number;
  /** Number of columns. */
  readonly cols: number;
  /** Number of stored entries. */
  readonly nonZeros: number;
  /** `rows + 1` offsets. */
  readonly rowOffsets: Int32Array;
  /** Column of each entry. */
  readonly columnIndices: Int32Array;
  /** Value of each entry. */
  readonly values: FloatArray;

  /**
   * Copies a CSR matrix.
   *
   * @param matrix The matrix.
   * @param values Its values converted to the backend's precision.
   */
  constructor(matrix: CsrMatrix, values: FloatArray) {
    this.rows = matrix.rows;
    this.cols = matrix.cols;
    this.nonZeros = matrix.values.length;
    this.rowOffsets = matrix.rowOffsets.slice();
    this.columnIndices = matrix.columnIndices.slice();
    this.values = values;
  }
}

/** Options of {@linkcode createCpuBackend}. */
export interface CpuBackendOptions {
  /** `"float32"` (default) or `"float64"` for reference computations. */
  precision?: CpuPrecision;
}

/**
 * Creates a CPU backend. Training uses the shared float32
 * {@linkcode cpuBackend}; float64 serves finite-difference checks and
 * comparisons with the float64 reference.
 *
 * @param options Precision.
 * @returns A new backend.
 * @example
 * ```ts
 * const reference = createCpuBackend({ precision: "float64" });
 * const storage = reference.uploadFloat64(new Float64Array([1, 2]));
 * ```
 */
export function createCpuBackend(options: CpuBackendOptions = {}): CpuBackend {
  return new CpuBackend(options.precision ?? "float32");
}

/** The primitives of {@linkcode Backend} as TypeScript loops. */
export class CpuBackend implements Backend {
  /** `"cpu"` or `"cpu-float64"`. */
  readonly name: string;
  /** Precision of every storage. */
  readonly precision: CpuPrecision;

  /**
   * Prefer {@linkcode createCpuBackend} or {@linkcode cpuBackend}.
   *
   * @param precision Float precision of storages.
   */
  constructor(precision: CpuPrecision) {
    if (precision !== "float32" && precision !== "float64") {
      throw new RangeError(
        `CPU precision must be "float32" or "float64", got "${precision}"`,
      );
    }
    this.precision = precision;
    this.name = precision === "float32" ? "cpu" : "cpu-float64";
  }

  #alloc(length: number): FloatArray {
    return this.precision === "float32"
      ? new Float32Array(length)
      : new Float64Array(length);
  }

  #wrap(data: FloatArray): CpuStorage {
    return new CpuStorage(data);
  }

  // Memory.

  /**
   * Copies values into a fresh storage.
   *
   * @param data Values.
   * @returns The storage.
   */
  uploadFloat32(data: Float32Array): CpuStorage {
    const copy = this.#alloc(data.length);
    copy.set(data);
    return this.#wrap(copy);
  }

  /**
   * Copies float64 values into a fresh storage (rounded to float32 when
   * the backend is float32).
   *
   * @param data Values.
   * @returns The storage.
   */
  uploadFloat64(data: Float64Array | ArrayLike<number>): CpuStorage {
    const copy = this.#alloc(data.length);
    copy.set(data);
    return this.#wrap(copy);
  }

  /**
   * Copies indices into a fresh index storage.
   *
   * @param data Indices.
   * @returns The index storage.
   */
  uploadInt32(data: Int32Array): CpuIndexStorage {
    return new CpuIndexStorage(data.slice());
  }

  /**
   * Copies a CSR matrix.
   *
   * @param matrix The matrix.
   * @returns The backend's copy.
   */
  uploadCsr(matrix: CsrMatrix): CpuSparseStorage {
    const values = this.#alloc(matrix.values.length);
    values.set(matrix.values);
    return new CpuSparseStorage(matrix, values);
  }

  /**
   * Reads values as float32.
   *
   * @param storage The storage.
   * @returns A copy.
   */
  read(storage: Storage): Promise<Float32Array> {
    return Promise.resolve(Float32Array.from(cpu(storage)));
  }

  /**
   * Reads values at full precision.
   *
   * @param storage The storage.
   * @returns A float64 copy.
   */
  readFloat64(storage: Storage): Float64Array {
    return Float64Array.from(cpu(storage));
  }

  /**
   * Reads indices.
   *
   * @param storage The index storage.
   * @returns A copy.
   */
  readInt32(storage: IndexStorage): Promise<Int32Array> {
    return Promise.resolve(cpuIndex(storage).slice());
  }

  /**
   * Releases a storage.
   *
   * @param storage The storage.
   */
  free(storage: Storage | IndexStorage | SparseStorage): void {
    if (storage instanceof CpuStorage || storage instanceof CpuIndexStorage) {
      storage.release();
    }
  }

  /**
   * Nothing to wait for: CPU work is synchronous.
   *
   * @returns A resolved promise.
   */
  synchronize(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * A filled storage.
   *
   * @param length Number of values.
   * @param value The value.
   * @returns The storage.
   */
  fill(length: number, value: number): CpuStorage {
    const data = this.#alloc(length);
    if (value !== 0) data.fill(value);
    return this.#wrap(data);
  }

  // Dense linear algebra.

  /**
   * `op(A) · op(B)`. Both non-transposed and transposed right operands go
   * through the dot-product kernel over rows of `A` and rows of `Bᵀ`
   * (a non-transposed `B` is transposed first, `k × n` work against the
   * product's `m × k × n`). A transposed `A` uses the row-update kernel,
   * which streams the rows of `B` once.
   *
   * @param a Left operand.
   * @param b Right operand.
   * @param m Rows of the result.
   * @param k Inner dimension.
   * @param n Columns of the result.
   * @param transposeA Whether `a` is stored `[k, m]`.
   * @param transposeB Whether `b` is stored `[n, k]`.
   * @returns `[m, n]`.
   */
  matmul(
    a: Storage,
    b: Storage,
    m: number,
    k: number,
    n: number,
    transposeA: boolean,
    transposeB: boolean,
  ): CpuStorage {
    const left = cpu(a);
    const right = cpu(b);
    const out = this.#alloc(m * n);
    if (!transposeA) {
      const rightRows = transposeB ? right : transpose(right, k, n, this);
      dotProductBlock(left, rightRows, out, m, k, n);
    } else {
      const rightRows = transposeB ? transpose(right, n, k, this) : right;
      rowUpdateProduct(left, rightRows, out, m, k, n);
    }
    return this.#wrap(out);
  }

  /**
   * CSR times dense, one output row at a time, entries four at a time.
   *
   * @param sparse The matrix.
   * @param x Dense `[sparse.cols, cols]`.
   * @param cols Columns of `x`.
   * @returns `[sparse.rows, cols]`.
   */
  spmm(sparse: SparseStorage, x: Storage, cols: number): CpuStorage {
    const matrix = sparse as CpuSparseStorage;
    const dense = cpu(x);
    const out = this.#alloc(matrix.rows * cols);
    const offsets = matrix.rowOffsets;
    const columns = matrix.columnIndices;
    const values = matrix.values;
    for (let row = 0; row < matrix.rows; row++) {
      const base = row * cols;
      const end = offsets[row + 1];
      let entry = offsets[row];
      for (; entry + 3 < end; entry += 4) {
        const v0 = values[entry];
        const v1 = values[entry + 1];
        const v2 = values[entry + 2];
        const v3 = values[entry + 3];
        const x0 = columns[entry] * cols;
        const x1 = columns[entry + 1] * cols;
        const x2 = columns[entry + 2] * cols;
        const x3 = columns[entry + 3] * cols;
        for (let j = 0; j < cols; j++) {
          out[base + j] += v0 * dense[x0 + j] + v1 * dense[x1 + j] +
            v2 * dense[x2 + j] + v3 * dense[x3 + j];
        }
      }
      for (; entry < end; entry++) {
        const v0 = values[entry];
        const x0 = columns[entry] * cols;
        for (let j = 0; j < cols; j++) out[base + j] += v0 * dense[x0 + j];
      }
    }
    return this.#wrap(out);
  }

  // Element-wise.

  /**
   * Broadcast `add`, `sub` or `mul`.
   *
   * @param operation The operation.
   * @param a Left operand.
   * @param aRows Rows of `a`.
   * @param aCols Columns of `a`.
   * @param b Right operand.
   * @param bRows Rows of `b`.
   * @param bCols Columns of `b`.
   * @returns The result.
   */
  binary(
    operation: BinaryOperation,
    a: Storage,
    aRows: number,
    aCols: number,
    b: Storage,
    bRows: number,
    bCols: number,
  ): CpuStorage {
    const left = cpu(a);
    const right = cpu(b);
    const rows = Math.max(aRows, bRows);
    const cols = Math.max(aCols, bCols);
    const out = this.#alloc(rows * cols);
    const aRowStep = aRows === 1 ? 0 : aCols;
    const bRowStep = bRows === 1 ? 0 : bCols;
    // A broadcast column reads index 0 of its row for every j.
    const aj = aCols === 1 ? 0 : 1;
    const bj = bCols === 1 ? 0 : 1;
    for (let i = 0; i < rows; i++) {
      const o = i * cols;
      const ai = i * aRowStep;
      const bi = i * bRowStep;
      if (operation === "add") {
        for (let j = 0; j < cols; j++) {
          out[o + j] = left[ai + j * aj] + right[bi + j * bj];
        }
      } else if (operation === "sub") {
        for (let j = 0; j < cols; j++) {
          out[o + j] = left[ai + j * aj] - right[bi + j * bj];
        }
      } else {
        for (let j = 0; j < cols; j++) {
          out[o + j] = left[ai + j * aj] * right[bi + j * bj];
        }
      }
    }
    return this.#wrap(out);
  }

  /**
   * An element-wise function.
   *
   * @param operation The function.
   * @param x Input.
   * @returns `f(x)`.
   */
  unary(operation: UnaryOperation, x: Storage): CpuStorage {
    const input = cpu(x);
    const out = this.#alloc(input.length);
    const n = input.length;
    switch (operation) {
      case "sigmoid":
        for (let i = 0; i < n; i++) out[i] = sigmoidOf(input[i]);
        break;
      case "tanh":
        for (let i = 0; i < n; i++) out[i] = Math.tanh(input[i]);
        break;
      case "logSigmoid":
        for (let i = 0; i < n; i++) out[i] = -softplus(-input[i]);
        break;
      case "exp":
        for (let i = 0; i < n; i++) out[i] = Math.exp(input[i]);
        break;
      case "log":
        for (let i = 0; i < n; i++) out[i] = Math.log(input[i]);
        break;
      case "sqrt":
        for (let i = 0; i < n; i++) out[i] = Math.sqrt(input[i]);
        break;
      default:
        throw new RangeError(`unknown unary operation "${operation}"`);
    }
    return this.#wrap(out);
  }

  /**
   * `g · f'(x)`.
   *
   * @param operation The function.
   * @param x Forward input.
   * @param y Forward output.
   * @param grad Gradient of the output.
   * @returns Gradient of the input.
   */
  unaryBackward(
    operation: UnaryOperation,
    x: Storage,
    y: Storage,
    grad: Storage,
  ): CpuStorage {
    const input = cpu(x);
    const output = cpu(y);
    const g = cpu(grad);
    const n = g.length;
    const out = this.#alloc(n);
    switch (operation) {
      case "sigmoid":
        for (let i = 0; i < n; i++) {
          out[i] = g[i] * output[i] * (1 - output[i]);
        }
        break;
      case "tanh":
        for (let i = 0; i < n; i++) {
          out[i] = g[i] * (1 - output[i] * output[i]);
        }
        break;
      case "logSigmoid":
        for (let i = 0; i < n; i++) out[i] = g[i] * sigmoidOf(-input[i]);
        break;
      case "exp":
        for (let i = 0; i < n; i++) out[i] = g[i] * output[i];
        break;
      case "log":
        for (let i = 0; i < n; i++) out[i] = g[i] / input[i];
        break;
      case "sqrt":
        for (let i = 0; i < n; i++) out[i] = g[i] / (2 * output[i]);
        break;
      default:
        throw new RangeError(`unknown unary operation "${operation}"`);
    }
    return this.#wrap(out);
  }

  /**
   * `factor · x`.
   *
   * @param x Input.
   * @param factor The constant.
   * @returns The scaled values.
   */
  scale(x: Storage, factor: number): CpuStorage {
    const input = cpu(x);
    const out = this.#alloc(input.length);
    for (let i = 0; i < input.length; i++) out[i] = factor * input[i];
    return this.#wrap(out);
  }

  // Reductions and broadcasts.

  /**
   * Sums down to a target shape.
   *
   * @param x Input.
   * @param rows Rows.
   * @param cols Columns.
   * @param targetRows `rows` or 1.
   * @param targetCols `cols` or 1.
   * @returns The sums.
   */
  sumTo(
    x: Storage,
    rows: number,
    cols: number,
    targetRows: number,
    targetCols: number,
  ): CpuStorage {
    const input = cpu(x);
    const out = this.#alloc(targetRows * targetCols);
    if (targetRows === rows && targetCols === cols) {
      out.set(input.subarray(0, rows * cols));
    } else if (targetRows === rows) {
      for (let i = 0; i < rows; i++) {
        let total = 0;
        const base = i * cols;
        for (let j = 0; j < cols; j++) total += input[base + j];
        out[i] = total;
      }
    } else {
      const totals = new Float64Array(cols);
      for (let i = 0; i < rows; i++) {
        const base = i * cols;
        for (let j = 0; j < cols; j++) totals[j] += input[base + j];
      }
      if (targetCols === cols) {
        out.set(totals);
      } else {
        let total = 0;
        for (let j = 0; j < cols; j++) total += totals[j];
        out[0] = total;
      }
    }
    return this.#wrap(out);
  }

  /**
   * Repeats up to a target shape.
   *
   * @param x Input.
   * @param rows Rows of `x`.
   * @param cols Columns of `x`.
   * @param targetRows Target rows.
   * @param targetCols Target columns.
   * @returns The repeated values.
   */
  broadcast(
    x: Storage,
    rows: number,
    cols: number,
    targetRows: number,
    targetCols: number,
  ): CpuStorage {
    const input = cpu(x);
    const out = this.#alloc(targetRows * targetCols);
    const rowStep = rows === 1 ? 0 : cols;
    for (let i = 0; i < targetRows; i++) {
      const base = i * targetCols;
      const source = i * rowStep;
      if (cols === targetCols) {
        out.set(input.subarray(source, source + cols), base);
      } else {
        out.fill(input[source], base, base + targetCols);
      }
    }
    return this.#wrap(out);
  }

  /**
   * Row-wise dot products.
   *
   * @param a Left.
   * @param b Right.
   * @param rows Rows.
   * @param cols Columns.
   * @returns `[rows, 1]`.
   */
  rowDot(a: Storage, b: Storage, rows: number, cols: number): CpuStorage {
    const left = cpu(a);
    const right = cpu(b);
    const out = this.#alloc(rows);
    for (let i = 0; i < rows; i++) {
      out[i] = dot(left, i * cols, right, i * cols, cols);
    }
    return this.#wrap(out);
  }

  /**
   * Sum of squares.
   *
   * @param x Input.
   * @returns `[1, 1]`.
   */
  squaredNorm(x: Storage): CpuStorage {
    const input = cpu(x);
    const out = this.#alloc(1);
    out[0] = dot(input, 0, input, 0, input.length);
    return this.#wrap(out);
  }

  // Row-wise functions.

  /**
   * Rows divided by `max(norm, floor)`.
   *
   * @param x Input.
   * @param rows Rows.
   * @param cols Columns.
   * @param floor Norm floor.
   * @returns Normalised rows.
   */
  normalizeRows(
    x: Storage,
    rows: number,
    cols: number,
    floor: number,
  ): CpuStorage {
    const input = cpu(x);
    const out = this.#alloc(rows * cols);
    for (let i = 0; i < rows; i++) {
      const base = i * cols;
      const norm = Math.sqrt(dot(input, base, input, base, cols));
      const inverse = 1 / Math.max(norm, floor);
      for (let j = 0; j < cols; j++) out[base + j] = input[base + j] * inverse;
    }
    return this.#wrap(out);
  }

  /**
   * Gradient of `normalizeRows`.
   *
   * @param x Forward input.
   * @param y Forward output.
   * @param grad Gradient of the output.
   * @param rows Rows.
   * @param cols Columns.
   * @param floor Norm floor.
   * @returns Gradient of the input.
   */
  normalizeRowsBackward(
    x: Storage,
    y: Storage,
    grad: Storage,
    rows: number,
    cols: number,
    floor: number,
  ): CpuStorage {
    const input = cpu(x);
    const output = cpu(y);
    const g = cpu(grad);
    const out = this.#alloc(rows * cols);
    for (let i = 0; i < rows; i++) {
      const base = i * cols;
      const norm = Math.sqrt(dot(input, base, input, base, cols));
      if (norm > floor) {
        const projection = dot(output, base, g, base, cols);
        for (let j = 0; j < cols; j++) {
          out[base + j] = (g[base + j] - output[base + j] * projection) / norm;
        }
      } else {
        for (let j = 0; j < cols; j++) out[base + j] = g[base + j] / floor;
      }
    }
    return this.#wrap(out);
  }

  /**
   * Stable row softmax.
   *
   * @param x Input.
   * @param rows Rows.
   * @param cols Columns.
   * @returns Softmax rows.
   */
  softmaxRows(x: Storage, rows: number, cols: number): CpuStorage {
    const input = cpu(x);
    const out = this.#alloc(rows * cols);
    for (let i = 0; i < rows; i++) {
      const base = i * cols;
      const largest = rowMaximum(input, base, cols);
      let total = 0;
      for (let j = 0; j < cols; j++) {
        const e = Math.exp(input[base + j] - largest);
        out[base + j] = e;
        total += e;
      }
      const inverse = 1 / total;
      for (let j = 0; j < cols; j++) out[base + j] *= inverse;
    }
    return this.#wrap(out);
  }

  /**
   * Gradient of `softmaxRows`.
   *
   * @param y Forward output.
   * @param grad Gradient of the output.
   * @param rows Rows.
   * @param cols Columns.
   * @returns Gradient of the input.
   */
  softmaxRowsBackward(
    y: Storage,
    grad: Storage,
    rows: number,
    cols: number,
  ): CpuStorage {
    const output = cpu(y);
    const g = cpu(grad);
    const out = this.#alloc(rows * cols);
    for (let i = 0; i < rows; i++) {
      const base = i * cols;
      const projection = dot(output, base, g, base, cols);
      for (let j = 0; j < cols; j++) {
        out[base + j] = output[base + j] * (g[base + j] - projection);
      }
    }
    return this.#wrap(out);
  }

  /**
   * Stable row logsumexp.
   *
   * @param x Input.
   * @param rows Rows.
   * @param cols Columns.
   * @returns `[rows, 1]`.
   */
  logsumexpRows(x: Storage, rows: number, cols: number): CpuStorage {
    const input = cpu(x);
    const out = this.#alloc(rows);
    for (let i = 0; i < rows; i++) {
      out[i] = logsumexpOf(input, i * cols, cols);
    }
    return this.#wrap(out);
  }

  /**
   * Gradient of `logsumexpRows`.
   *
   * @param x Forward input.
   * @param y Forward output.
   * @param grad Gradient of the output, `[rows, 1]`.
   * @param rows Rows.
   * @param cols Columns.
   * @returns Gradient of the input.
   */
  logsumexpRowsBackward(
    x: Storage,
    y: Storage,
    grad: Storage,
    rows: number,
    cols: number,
  ): CpuStorage {
    const input = cpu(x);
    const output = cpu(y);
    const g = cpu(grad);
    const out = this.#alloc(rows * cols);
    for (let i = 0; i < rows; i++) {
      const base = i * cols;
      const total = output[i];
      const gi = g[i];
      for (let j = 0; j < cols; j++) {
        out[base + j] = gi * Math.exp(input[base + j] - total);
      }
    }
    return this.#wrap(out);
  }

  // Rearranging rows and columns.

  /**
   * Picks rows by index.
   *
   * @param x Table.
   * @param cols Columns.
   * @param index Row numbers.
   * @returns The picked rows.
   */
  gatherRows(x: Storage, cols: number, index: IndexStorage): CpuStorage {
    const table = cpu(x);
    const rows = cpuIndex(index);
    const out = this.#alloc(rows.length * cols);
    for (let p = 0; p < rows.length; p++) {
      const source = rows[p] * cols;
      out.set(table.subarray(source, source + cols), p * cols);
    }
    return this.#wrap(out);
  }

  /**
   * Segment sum of gradient rows through the inverse index.
   *
   * @param grad Gradient of the gathered rows.
   * @param cols Columns.
   * @param inverse The inverse index.
   * @returns Gradient of the table.
   */
  gatherRowsBackward(
    grad: Storage,
    cols: number,
    inverse: InverseIndex,
  ): CpuStorage {
    const g = cpu(grad);
    const offsets = cpuIndex(inverse.offsets);
    const positions = cpuIndex(inverse.positions);
    const out = this.#alloc(inverse.rows * cols);
    for (let row = 0; row < inverse.rows; row++) {
      const base = row * cols;
      for (let entry = offsets[row]; entry < offsets[row + 1]; entry++) {
        const source = positions[entry] * cols;
        for (let j = 0; j < cols; j++) out[base + j] += g[source + j];
      }
    }
    return this.#wrap(out);
  }

  /**
   * Stacks parts vertically.
   *
   * @param parts The parts.
   * @returns The stack.
   */
  concatRows(parts: Storage[]): CpuStorage {
    let length = 0;
    for (const part of parts) length += cpu(part).length;
    const out = this.#alloc(length);
    let offset = 0;
    for (const part of parts) {
      const values = cpu(part);
      out.set(values, offset);
      offset += values.length;
    }
    return this.#wrap(out);
  }

  /**
   * Places parts side by side.
   *
   * @param parts The parts.
   * @param rows Rows of each.
   * @param widths Columns of each.
   * @returns The joined matrix.
   */
  concatCols(parts: Storage[], rows: number, widths: number[]): CpuStorage {
    let cols = 0;
    for (const width of widths) cols += width;
    const out = this.#alloc(rows * cols);
    let start = 0;
    for (let p = 0; p < parts.length; p++) {
      const values = cpu(parts[p]);
      const width = widths[p];
      for (let i = 0; i < rows; i++) {
        const source = i * width;
        out.set(values.subarray(source, source + width), i * cols + start);
      }
      start += width;
    }
    return this.#wrap(out);
  }

  /**
   * A block of rows.
   *
   * @param x Input.
   * @param cols Columns.
   * @param start First row.
   * @param count Row count.
   * @returns The rows.
   */
  sliceRows(
    x: Storage,
    cols: number,
    start: number,
    count: number,
  ): CpuStorage {
    const values = cpu(x);
    const out = this.#alloc(count * cols);
    out.set(values.subarray(start * cols, (start + count) * cols));
    return this.#wrap(out);
  }

  /**
   * A block of columns.
   *
   * @param x Input.
   * @param rows Rows.
   * @param cols Columns.
   * @param start First column.
   * @param count Column count.
   * @returns The columns.
   */
  sliceCols(
    x: Storage,
    rows: number,
    cols: number,
    start: number,
    count: number,
  ): CpuStorage {
    const values = cpu(x);
    const out = this.#alloc(rows * count);
    for (let i = 0; i < rows; i++) {
      const source = i * cols + start;
      out.set(values.subarray(source, source + count), i * count);
    }
    return this.#wrap(out);
  }

  // Fused losses.

  /**
   * InfoNCE on normalised rows; keeps the probability matrix for backward.
   *
   * @param x `x̂`.
   * @param y `ŷ`.
   * @param rows Batch size.
   * @param cols Width.
   * @param temperature `τ`.
   * @returns Loss, logsumexp and probabilities.
   */
  infoNce(
    x: Storage,
    y: Storage,
    rows: number,
    cols: number,
    temperature: number,
  ): InfoNceForward {
    const similarities = cpu(this.matmul(x, y, rows, cols, rows, false, true));
    const logsumexp = this.#alloc(rows);
    const inverseTemperature = 1 / temperature;
    let total = 0;
    for (let b = 0; b < rows; b++) {
      const base = b * rows;
      for (let c = 0; c < rows; c++) {
        similarities[base + c] *= inverseTemperature;
      }
      const lse = logsumexpOf(similarities, base, rows);
      logsumexp[b] = lse;
      total += lse - similarities[base + b];
      for (let c = 0; c < rows; c++) {
        similarities[base + c] = Math.exp(similarities[base + c] - lse);
      }
    }
    const loss = this.#alloc(1);
    loss[0] = rows === 0 ? NaN : total / rows;
    return {
      loss: this.#wrap(loss),
      logsumexp: this.#wrap(logsumexp),
      probabilities: this.#wrap(similarities),
    };
  }

  /**
   * Gradient of `infoNce` from the kept probabilities.
   *
   * @param x `x̂`.
   * @param y `ŷ`.
   * @param forward The forward result.
   * @param grad Gradient of the loss.
   * @param rows Batch size.
   * @param cols Width.
   * @param temperature `τ`.
   * @returns Gradients of `x̂` and `ŷ`.
   */
  infoNceBackward(
    x: Storage,
    y: Storage,
    forward: InfoNceForward,
    grad: Storage,
    rows: number,
    cols: number,
    temperature: number,
  ): { x: CpuStorage; y: CpuStorage } {
    const probabilities = forward.probabilities === undefined
      ? this.#recomputeProbabilities(
        x,
        y,
        forward.logsumexp,
        rows,
        cols,
        temperature,
      )
      : cpu(forward.probabilities);
    const factor = cpu(grad)[0] / (temperature * rows);
    const weights = this.#alloc(rows * rows);
    for (let i = 0; i < weights.length; i++) {
      weights[i] = probabilities[i] * factor;
    }
    for (let b = 0; b < rows; b++) weights[b * rows + b] -= factor;
    const weightStorage = this.#wrap(weights);
    const gradX = this.matmul(
      weightStorage,
      y,
      rows,
      rows,
      cols,
      false,
      false,
    );
    const gradY = this.matmul(weightStorage, x, rows, rows, cols, true, false);
    return { x: gradX, y: gradY };
  }

  #recomputeProbabilities(
    x: Storage,
    y: Storage,
    logsumexp: Storage,
    rows: number,
    cols: number,
    temperature: number,
  ): FloatArray {
    const values = cpu(this.matmul(x, y, rows, cols, rows, false, true));
    const lse = cpu(logsumexp);
    for (let b = 0; b < rows; b++) {
      for (let c = 0; c < rows; c++) {
        const i = b * rows + c;
        values[i] = Math.exp(values[i] / temperature - lse[b]);
      }
    }
    return values;
  }

  /**
   * BPR loss.
   *
   * @param user User rows.
   * @param positive Positive rows.
   * @param negative Negative rows.
   * @param rows Batch size.
   * @param cols Width.
   * @param epsilon `ε`.
   * @returns Loss and differences.
   */
  bpr(
    user: Storage,
    positive: Storage,
    negative: Storage,
    rows: number,
    cols: number,
    epsilon: number,
  ): BprForward {
    const u = cpu(user);
    const p = cpu(positive);
    const n = cpu(negative);
    const difference = this.#alloc(rows);
    let total = 0;
    for (let b = 0; b < rows; b++) {
      const base = b * cols;
      let d = 0;
      for (let j = 0; j < cols; j++) {
        d += u[base + j] * (p[base + j] - n[base + j]);
      }
      difference[b] = d;
      total += epsilon === 0 ? softplus(-d) : -Math.log(epsilon + sigmoidOf(d));
    }
    const loss = this.#alloc(1);
    loss[0] = rows === 0 ? NaN : total / rows;
    return { loss: this.#wrap(loss), difference: this.#wrap(difference) };
  }

  /**
   * Gradient of `bpr`.
   *
   * @param user User rows.
   * @param positive Positive rows.
   * @param negative Negative rows.
   * @param difference Forward differences.
   * @param grad Gradient of the loss.
   * @param rows Batch size.
   * @param cols Width.
   * @param epsilon `ε`.
   * @returns Gradients of the three inputs.
   */
  bprBackward(
    user: Storage,
    positive: Storage,
    negative: Storage,
    difference: Storage,
    grad: Storage,
    rows: number,
    cols: number,
    epsilon: number,
  ): { user: CpuStorage; positive: CpuStorage; negative: CpuStorage } {
    const u = cpu(user);
    const p = cpu(positive);
    const n = cpu(negative);
    const d = cpu(difference);
    const g = cpu(grad)[0];
    const gradUser = this.#alloc(rows * cols);
    const gradPositive = this.#alloc(rows * cols);
    const gradNegative = this.#alloc(rows * cols);
    for (let b = 0; b < rows; b++) {
      const s = sigmoidOf(d[b]);
      // d(−log(ε + σ(d)))/d(d) = −σ(d)(1 − σ(d)) / (ε + σ(d));
      // at ε = 0 that is −σ(−d), computed without cancellation
      const slope = epsilon === 0
        ? -sigmoidOf(-d[b])
        : -s * (1 - s) / (epsilon + s);
      const c = g * slope / rows;
      const base = b * cols;
      for (let j = 0; j < cols; j++) {
        gradUser[base + j] = c * (p[base + j] - n[base + j]);
        gradPositive[base + j] = c * u[base + j];
        gradNegative[base + j] = -c * u[base + j];
      }
    }
    return {
      user: this.#wrap(gradUser),
      positive: this.#wrap(gradPositive),
      negative: this.#wrap(gradNegative),
    };
  }

  // Fused pieces of MSCA's forward pass (spec 5).

  /**
   * `f = E ⊙ σ(Z + b)`.
   *
   * @param item `E_i`.
   * @param preactivation `Z`.
   * @param bias `b_g`.
   * @param rows Items.
   * @param cols Width.
   * @returns `f`.
   */
  gatedProjection(
    item: Storage,
    preactivation: Storage,
    bias: Storage,
    rows: number,
    cols: number,
  ): CpuStorage {
    const e = cpu(item);
    const z = cpu(preactivation);
    const b = cpu(bias);
    const out = this.#alloc(rows * cols);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      for (let j = 0; j < cols; j++) {
        out[base + j] = e[base + j] * sigmoidOf(z[base + j] + b[j]);
      }
    }
    return this.#wrap(out);
  }

  /**
   * Gradient of `gatedProjection`.
   *
   * @param item Forward `E_i`.
   * @param preactivation Forward `Z`.
   * @param bias Forward `b_g`.
   * @param grad Gradient of `f`.
   * @param rows Items.
   * @param cols Width.
   * @returns Gradients of `E_i` and `Z`.
   */
  gatedProjectionBackward(
    item: Storage,
    preactivation: Storage,
    bias: Storage,
    grad: Storage,
    rows: number,
    cols: number,
  ): { item: CpuStorage; preactivation: CpuStorage } {
    const e = cpu(item);
    const z = cpu(preactivation);
    const b = cpu(bias);
    const g = cpu(grad);
    const gradItem = this.#alloc(rows * cols);
    const gradPreactivation = this.#alloc(rows * cols);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      for (let j = 0; j < cols; j++) {
        const i = base + j;
        const s = sigmoidOf(z[i] + b[j]);
        gradItem[i] = g[i] * s;
        gradPreactivation[i] = g[i] * e[i] * s * (1 - s);
      }
    }
    return {
      item: this.#wrap(gradItem),
      preactivation: this.#wrap(gradPreactivation),
    };
  }

  /**
   * `Ê = Σ_v x_v − Σ_v a_v x_v` with `a = softmax_v(w₂ · tanh(Z_v + b₁))`.
   *
   * @param views Stacked views `[V · rows, cols]`.
   * @param preactivation `Z`, `[V · rows, cols]`.
   * @param bias `b₁`.
   * @param queryVector `w₂`.
   * @param rows Rows of one view.
   * @param cols Width.
   * @param viewCount `V`.
   * @returns `Ê` and `a`.
   */
  attentionFusion(
    views: Storage,
    preactivation: Storage,
    bias: Storage,
    queryVector: Storage,
    rows: number,
    cols: number,
    viewCount: number,
  ): { fused: CpuStorage; attention: CpuStorage } {
    const x = cpu(views);
    const z = cpu(preactivation);
    const b = cpu(bias);
    const w = cpu(queryVector);
    const fused = this.#alloc(rows * cols);
    const attention = this.#alloc(rows * viewCount);
    const weights = new Float64Array(viewCount);
    for (let r = 0; r < rows; r++) {
      attentionWeights(z, b, w, r, rows, cols, viewCount, weights);
      for (let v = 0; v < viewCount; v++) {
        attention[r * viewCount + v] = weights[v];
      }
      for (let j = 0; j < cols; j++) {
        let total = 0;
        for (let v = 0; v < viewCount; v++) {
          total += (1 - weights[v]) * x[(v * rows + r) * cols + j];
        }
        fused[r * cols + j] = total;
      }
    }
    return { fused: this.#wrap(fused), attention: this.#wrap(attention) };
  }

  /**
   * Gradient of `attentionFusion`.
   *
   * @param views Forward views.
   * @param preactivation Forward `Z`.
   * @param bias Forward `b₁`.
   * @param queryVector Forward `w₂`.
   * @param attention Forward `a`.
   * @param grad Gradient of `Ê`.
   * @param rows Rows of one view.
   * @param cols Width.
   * @param viewCount `V`.
   * @returns Gradients of the views and `Z`, and the rows of `∂/∂w₂`.
   */
  attentionFusionBackward(
    views: Storage,
    preactivation: Storage,
    bias: Storage,
    queryVector: Storage,
    attention: Storage,
    grad: Storage,
    rows: number,
    cols: number,
    viewCount: number,
  ): {
    views: CpuStorage;
    preactivation: CpuStorage;
    queryVectorRows: CpuStorage;
  } {
    const x = cpu(views);
    const z = cpu(preactivation);
    const b = cpu(bias);
    const w = cpu(queryVector);
    const a = cpu(attention);
    const g = cpu(grad);
    const gradViews = this.#alloc(viewCount * rows * cols);
    const gradPreactivation = this.#alloc(viewCount * rows * cols);
    const queryVectorRows = this.#alloc(rows * cols);
    const scoreGrads = new Float64Array(viewCount);
    for (let r = 0; r < rows; r++) {
      // γ_v = −g · x_v, then through the softmax: δ_v = a_v (γ_v − a·γ)
      let weighted = 0;
      for (let v = 0; v < viewCount; v++) {
        let dot = 0;
        for (let j = 0; j < cols; j++) {
          dot += g[r * cols + j] * x[(v * rows + r) * cols + j];
        }
        scoreGrads[v] = -dot;
        weighted += a[r * viewCount + v] * scoreGrads[v];
      }
      for (let v = 0; v < viewCount; v++) {
        const weight = a[r * viewCount + v];
        const delta = weight * (scoreGrads[v] - weighted);
        const base = (v * rows + r) * cols;
        for (let j = 0; j < cols; j++) {
          const h = Math.tanh(z[base + j] + b[j]);
          gradViews[base + j] = (1 - weight) * g[r * cols + j];
          gradPreactivation[base + j] = delta * w[j] * (1 - h * h);
          queryVectorRows[r * cols + j] += delta * h;
        }
      }
    }
    return {
      views: this.#wrap(gradViews),
      preactivation: this.#wrap(gradPreactivation),
      queryVectorRows: this.#wrap(queryVectorRows),
    };
  }

  // Optimiser.

  /**
   * One in-place Adam update (PyTorch's single-tensor Adam).
   *
   * @param parameter `θ`.
   * @param grad `g`.
   * @param firstMoment `m`.
   * @param secondMoment `v`.
   * @param step Hyper-parameters of this step.
   */
  adam(
    parameter: Storage,
    grad: Storage,
    firstMoment: Storage,
    secondMoment: Storage,
    step: AdamStep,
  ): void {
    const theta = cpu(parameter);
    const g = cpu(grad);
    const m = cpu(firstMoment);
    const v = cpu(secondMoment);
    const { beta1, beta2, epsilon } = step;
    const stepSize = step.learningRate / step.biasCorrection1;
    const correction2Root = Math.sqrt(step.biasCorrection2);
    for (let i = 0; i < theta.length; i++) {
      const gi = g[i];
      // m.lerp_(g, 1 − β₁) as PyTorch writes it
      m[i] = m[i] + (1 - beta1) * (gi - m[i]);
      v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
      const denominator = Math.sqrt(v[i]) / correction2Root + epsilon;
      theta[i] = theta[i] - stepSize * (m[i] / denominator);
    }
  }
}

/**
 * The shared float32 CPU backend, the default of every tensor.
 *
 * @example
 * ```ts
 * const storage = cpuBackend.uploadFloat32(new Float32Array([1, 2, 3]));
 * const values = await cpuBackend.read(storage);
 * ```
 */
export const cpuBackend: CpuBackend = new CpuBackend("float32");

function cpu(storage: Storage): FloatArray {
  if (!(storage instanceof CpuStorage)) {
    throw new TypeError(
      "the CPU backend was given a storage of another backend; move " +
        "tensors with toBackend() first",
    );
  }
  return storage.data;
}

function cpuIndex(storage: IndexStorage): Int32Array {
  if (!(storage instanceof CpuIndexStorage)) {
    throw new TypeError(
      "the CPU backend was given an index storage of another backend",
    );
  }
  return storage.data;
}

function sigmoidOf(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/**
 * Softmax over views of `w₂ · tanh(Z_v + b₁)` for row `r`, into `out`.
 */
function attentionWeights(
  z: FloatArray,
  b: FloatArray,
  w: FloatArray,
  r: number,
  rows: number,
  cols: number,
  viewCount: number,
  out: Float64Array,
): void {
  let largest = -Infinity;
  for (let v = 0; v < viewCount; v++) {
    const base = (v * rows + r) * cols;
    let score = 0;
    for (let j = 0; j < cols; j++) {
      score += w[j] * Math.tanh(z[base + j] + b[j]);
    }
    out[v] = score;
    largest = Math.max(largest, score);
  }
  let total = 0;
  for (let v = 0; v < viewCount; v++) {
    out[v] = Math.exp(out[v] - largest);
    total += out[v];
  }
  for (let v = 0; v < viewCount; v++) out[v] /= total;
}

/** `log(1 + exp(x))` without overflow. */
function softplus(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

function dot(
  a: FloatArray,
  aStart: number,
  b: FloatArray,
  bStart: number,
  length: number,
): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = 0;
  for (; j + 3 < length; j += 4) {
    s0 += a[aStart + j] * b[bStart + j];
    s1 += a[aStart + j + 1] * b[bStart + j + 1];
    s2 += a[aStart + j + 2] * b[bStart + j + 2];
    s3 += a[aStart + j + 3] * b[bStart + j + 3];
  }
  for (; j < length; j++) s0 += a[aStart + j] * b[bStart + j];
  return (s0 + s1) + (s2 + s3);
}

function rowMaximum(x: FloatArray, start: number, length: number): number {
  let largest = -Infinity;
  for (let j = 0; j < length; j++) {
    if (x[start + j] > largest) largest = x[start + j];
  }
  return largest;
}

function logsumexpOf(x: FloatArray, start: number, length: number): number {
  const largest = rowMaximum(x, start, length);
  if (largest === -Infinity || largest === Infinity) return largest;
  let total = 0;
  for (let j = 0; j < length; j++) total += Math.exp(x[start + j] - largest);
  return largest + Math.log(total);
}

/** A `[rows, cols]` array transposed into a fresh `[cols, rows]` array. */
function transpose(
  x: FloatArray,
  rows: number,
  cols: number,
  backend: CpuBackend,
): FloatArray {
  const out = backend.precision === "float32"
    ? new Float32Array(rows * cols)
    : new Float64Array(rows * cols);
  const tile = 32;
  for (let i0 = 0; i0 < rows; i0 += tile) {
    const i1 = Math.min(rows, i0 + tile);
    for (let j0 = 0; j0 < cols; j0 += tile) {
      const j1 = Math.min(cols, j0 + tile);
      for (let i = i0; i < i1; i++) {
        for (let j = j0; j < j1; j++) out[j * rows + i] = x[i * cols + j];
      }
    }
  }
  return out;
}

/**
 * `out[i, j] = Σ_p a[i, p] bRows[j, p]`: `a` is `[m, k]`, `bRows` is
 * `[n, k]`. Sixteen running sums (4 rows × 4 columns) live in registers,
 * so each step of the inner loop loads 8 values for 16 multiply-adds.
 */
function dotProductBlock(
  a: FloatArray,
  bRows: FloatArray,
  out: FloatArray,
  m: number,
  k: number,
  n: number,
): void {
  const mBlocked = m - (m % 4);
  const nBlocked = n - (n % 4);
  for (let i = 0; i < mBlocked; i += 4) {
    const a0 = i * k;
    const a1 = a0 + k;
    const a2 = a1 + k;
    const a3 = a2 + k;
    for (let j = 0; j < nBlocked; j += 4) {
      const b0 = j * k;
      const b1 = b0 + k;
      const b2 = b1 + k;
      const b3 = b2 + k;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0;
      let s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0;
      let s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let p = 0; p < k; p++) {
        const y0 = bRows[b0 + p];
        const y1 = bRows[b1 + p];
        const y2 = bRows[b2 + p];
        const y3 = bRows[b3 + p];
        const x0 = a[a0 + p];
        s00 += x0 * y0;
        s01 += x0 * y1;
        s02 += x0 * y2;
        s03 += x0 * y3;
        const x1 = a[a1 + p];
        s10 += x1 * y0;
        s11 += x1 * y1;
        s12 += x1 * y2;
        s13 += x1 * y3;
        const x2 = a[a2 + p];
        s20 += x2 * y0;
        s21 += x2 * y1;
        s22 += x2 * y2;
        s23 += x2 * y3;
        const x3 = a[a3 + p];
        s30 += x3 * y0;
        s31 += x3 * y1;
        s32 += x3 * y2;
        s33 += x3 * y3;
      }
      const o = i * n + j;
      out[o] = s00;
      out[o + 1] = s01;
      out[o + 2] = s02;
      out[o + 3] = s03;
      out[o + n] = s10;
      out[o + n + 1] = s11;
      out[o + n + 2] = s12;
      out[o + n + 3] = s13;
      out[o + 2 * n] = s20;
      out[o + 2 * n + 1] = s21;
      out[o + 2 * n + 2] = s22;
      out[o + 2 * n + 3] = s23;
      out[o + 3 * n] = s30;
      out[o + 3 * n + 1] = s31;
      out[o + 3 * n + 2] = s32;
      out[o + 3 * n + 3] = s33;
    }
    for (let j = nBlocked; j < n; j++) {
      for (let r = i; r < i + 4; r++) {
        out[r * n + j] = dot(a, r * k, bRows, j * k, k);
      }
    }
  }
  for (let i = mBlocked; i < m; i++) {
    for (let j = 0; j < n; j++) out[i * n + j] = dot(a, i * k, bRows, j * k, k);
  }
}

/**
 * `out[i, :] += Σ_p a[p, i] b[p, :]`: `a` is stored `[k, m]` (the
 * transposed left operand), `b` is `[k, n]`. Four rows of `b` at a time
 * update two output rows, so `b` is streamed from memory once per tile of
 * output columns (the output tile stays in cache).
 */
function rowUpdateProduct(
  a: FloatArray,
  b: FloatArray,
  out: FloatArray,
  m: number,
  k: number,
  n: number,
): void {
  const tile = 1024;
  const kBlocked = k - (k % 4);
  const mBlocked = m - (m % 2);
  for (let j0 = 0; j0 < n; j0 += tile) {
    const j1 = Math.min(n, j0 + tile);
    for (let p = 0; p < kBlocked; p += 4) {
      const b0 = p * n;
      const b1 = b0 + n;
      const b2 = b1 + n;
      const b3 = b2 + n;
      const p0 = p * m;
      const p1 = p0 + m;
      const p2 = p1 + m;
      const p3 = p2 + m;
      for (let i = 0; i < mBlocked; i += 2) {
        const a0 = a[p0 + i];
        const a1 = a[p1 + i];
        const a2 = a[p2 + i];
        const a3 = a[p3 + i];
        const e0 = a[p0 + i + 1];
        const e1 = a[p1 + i + 1];
        const e2 = a[p2 + i + 1];
        const e3 = a[p3 + i + 1];
        const o0 = i * n;
        const o1 = o0 + n;
        for (let j = j0; j < j1; j++) {
          const x0 = b[b0 + j];
          const x1 = b[b1 + j];
          const x2 = b[b2 + j];
          const x3 = b[b3 + j];
          out[o0 + j] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3;
          out[o1 + j] += e0 * x0 + e1 * x1 + e2 * x2 + e3 * x3;
        }
      }
      for (let i = mBlocked; i < m; i++) {
        const a0 = a[p0 + i];
        const a1 = a[p1 + i];
        const a2 = a[p2 + i];
        const a3 = a[p3 + i];
        const o0 = i * n;
        for (let j = j0; j < j1; j++) {
          out[o0 + j] += a0 * b[b0 + j] + a1 * b[b1 + j] + a2 * b[b2 + j] +
            a3 * b[b3 + j];
        }
      }
    }
    for (let p = kBlocked; p < k; p++) {
      const b0 = p * n;
      for (let i = 0; i < m; i++) {
        const a0 = a[p * m + i];
        const o0 = i * n;
        for (let j = j0; j < j1; j++) out[o0 + j] += a0 * b[b0 + j];
      }
    }
  }
}
