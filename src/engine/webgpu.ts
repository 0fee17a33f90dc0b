/**
 * The WebGPU backend: every primitive of {@linkcode Backend} as a WGSL
 * kernel from `kernels/` (one file per kernel, named like the CPU twin in
 * `cpu.ts`), run through Deno's built-in `navigator.gpu`.
 *
 * Tensors live in GPU buffers from upload to `free()`; a training step
 * records its dispatches into one command encoder and reaches the host only
 * when a value is read (`read`, `readInt32`), which costs one `mapAsync`.
 * Beyond the {@linkcode Backend} primitives, `scoreTopK` (and the
 * evaluator hook `topKBlock` built on it) ranks items for a block of users
 * on the device. `webgpu_choice.ts` turns `--device cpu|webgpu|auto` into a
 * backend.
 *
 * ## Large tensors
 *
 * A storage is always one GPU buffer (up to the device's `maxBufferSize`,
 * 2 GiB on llvmpipe), but one binding may cover only
 * `maxStorageBufferBindingSize` bytes (128 MiB on llvmpipe; the Electronics
 * image table is 1.03 GB). The kernels that meet such tensors in MSCA bind
 * them window by window, each window a run of whole rows starting at a
 * multiple of 64 rows so that byte offsets meet the binding alignment:
 *
 * - `matmul` splits the rows of the result (and of a non-transposed left
 *   operand) and, when a transposed left operand or a non-transposed right
 *   operand is too large, the inner dimension, accumulating the partial
 *   products into the result;
 * - `binary`, `unary`, `unaryBackward`, `scale`, `fill` and `adam` walk
 *   all operands in the same windows;
 * - `sumTo` to a scalar or to one row, and `squaredNorm`, reduce each
 *   window to partial sums first;
 * - `attentionFusion` and its backward run row window by row window, the
 *   window's rows of each stacked view copied together (MSCA's stacked
 *   views of Electronics, 196 MB, exceed llvmpipe's binding).
 *
 * Every other primitive throws a `RangeError` naming itself and the limit
 * when an operand exceeds one binding.
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
import {
  type BufferBinding,
  type KernelSource,
  requestWebGpuDevice,
  type WebGpuDevice,
  type WebGpuDeviceOptions,
} from "./webgpu_device.ts";
import { kernels } from "./webgpu_kernels.ts";

/** A float storage of the WebGPU backend: one GPU buffer. */
export class WebGpuStorage implements Storage {
  /** Number of values. */
  readonly length: number;
  #buffer: GPUBuffer | null;

  /**
   * Wraps a buffer; the storage owns it from now on.
   *
   * @param buffer A buffer of at least `4 · length` bytes.
   * @param length Number of float32 values.
   */
  constructor(buffer: GPUBuffer, length: number) {
    this.#buffer = buffer;
    this.length = length;
  }

  /** The buffer; throws after `free()`. */
  get buffer(): GPUBuffer {
    if (this.#buffer === null) {
      throw new Error("WebGPU storage used after free(); keep tensors alive");
    }
    return this.#buffer;
  }

  /**
   * Gives up the buffer (what `free()` does).
   *
   * @returns The buffer, or null when already released.
   */
  release(): GPUBuffer | null {
    const buffer = this.#buffer;
    this.#buffer = null;
    return buffer;
  }
}

/** An index storage of the WebGPU backend: one GPU buffer of int32. */
export class WebGpuIndexStorage implements IndexStorage {
  /** Number of indices. */
  readonly length: number;
  #buffer: GPUBuffer | null;

  /**
   * Wraps a buffer; the storage owns it from now on.
   *
   * @param buffer A buffer of at least `4 · length` bytes.
   * @param length Number of int32 values.
   */
  constructor(buffer: GPUBuffer, length: number) {
    this.#buffer = buffer;
    this.length = length;
  }

  /** The buffer; throws after `free()`. */
  get buffer(): GPUBuffer {
    if (this.#buffer === null) {
      throw new Error("WebGPU index storage used after free()");
    }
    return this.#buffer;
  }

  /**
   * Gives up the buffer (what `free()` does).
   *
   * @returns The buffer, or null when already released.
   */
  release(): GPUBuffer | null {
    const buffer = this.#buffer;
    this.#buffer = null;
    return buffer;
  }
}

/** A constant CSR matrix in three GPU buffers. */
export class WebGpuSparseStorage implements SparseStorage {
  /** Number of rows. */
  readonly rows: number;
  /** Number of columns. */
  readonly cols: number;
  /** Number of stored entries. */
  readonly nonZeros: number;
  /** `rows + 1` offsets, the column of each entry, the value of each. */
  parts: {
    rowOffsets: GPUBuffer;
    columnIndices: GPUBuffer;
    values: GPUBuffer;
  } | null;

  /**
   * Wraps uploaded buffers.
   *
   * @param matrix The matrix the buffers hold.
   * @param parts The three buffers.
   */
  constructor(
    matrix: CsrMatrix,
    parts: NonNullable<WebGpuSparseStorage["parts"]>,
  ) {
    this.rows = matrix.rows;
    this.cols = matrix.cols;
    this.nonZeros = matrix.values.length;
    this.parts = parts;
  }
}

/** Options of {@linkcode createWebGpuBackend}. */
export interface WebGpuBackendOptions extends WebGpuDeviceOptions {
  /** Matmul tiling; see {@linkcode MatmulTiling}. */
  matmulTiling?: Partial<MatmulTiling>;
}

/**
 * The override constants of `kernels/matmul.wgsl`: a workgroup of
 * `WORKGROUP_COLS × WORKGROUP_ROWS` threads, each owning 4 × 4 outputs,
 * computes a tile of `(4 · WORKGROUP_ROWS) × (4 · WORKGROUP_COLS)` values
 * of the product, walking the inner dimension `TILE_K` at a time.
 */
export interface MatmulTiling {
  /** Threads along the rows of a tile. */
  WORKGROUP_ROWS: number;
  /** Threads along the columns of a tile. */
  WORKGROUP_COLS: number;
  /** Inner-dimension step. */
  TILE_K: number;
}

/** Outputs per thread along each side, fixed by `kernels/matmul.wgsl`. */
const MATMUL_THREAD_BLOCK = 4;

/** Default matmul tiling: 64 × 64 tiles, 16 × 16 threads, 16 deep. */
export const defaultMatmulTiling: MatmulTiling = {
  WORKGROUP_ROWS: 16,
  WORKGROUP_COLS: 16,
  TILE_K: 16,
};

/** `WORKGROUP_SIZE` of the one-thread-per-value kernels. */
const ELEMENTWISE_WORKGROUP = 256;
/** `WORKGROUP_SIZE` of the one-thread-per-row kernels. */
const ROWWISE_WORKGROUP = 64;
/** `WORKGROUP_SIZE` of the one-workgroup-per-row InfoNCE kernels. */
const INFO_NCE_WORKGROUP = 64;
/**
 * Largest InfoNCE similarity matrix kept for backward, in bytes (a batch of
 * 2048 needs 16 MiB); larger batches use the fused kernels.
 */
const INFO_NCE_MATRIX_BYTES = 256 * 1024 * 1024;
/** `COLUMNS_PER_THREAD` of `kernels/info_nce_backward.wgsl`. */
const INFO_NCE_COLUMNS_PER_THREAD = 8;
/** `WORKGROUP_ROWS` × `WORKGROUP_COLS` of `kernels/spmm.wgsl`. */
const SPMM_WORKGROUP = { WORKGROUP_ROWS: 4, WORKGROUP_COLS: 64 };
/** Values summed by one thread of `kernels/sum_to.wgsl` per pass. */
const SUM_CHUNK = 256;
/**
 * `WORKGROUP_SIZE` of `kernels/score_top_k.wgsl` (a power of 2): 32 on a
 * GPU; 8 on a software adapter, where longer per-thread scans measured
 * faster (1.8 s against 2.3 s with 16 and 2.7 s with 64 for 1024 users ×
 * 1763 items, top 50, on llvmpipe).
 */
const TOP_K_WORKGROUP = { gpu: 32, software: 8 };
/** Largest scratch buffer of per-thread top-k lists, in bytes. */
const TOP_K_SCRATCH_BYTES = 64 * 1024 * 1024;
/** Row windows start at multiples of this many rows (offset alignment). */
const WINDOW_ROWS = 64;

/** Function numbers of `kernels/unary.wgsl`, in order. */
const UNARY_FUNCTIONS: UnaryOperation[] = [
  "sigmoid",
  "tanh",
  "logSigmoid",
  "exp",
  "log",
  "sqrt",
];

/** Operation numbers of `kernels/binary.wgsl`, in order. */
const BINARY_OPERATIONS: BinaryOperation[] = ["add", "sub", "mul"];

/**
 * Operand layouts of `kernels/binary.wgsl` and `kernels/broadcast.wgsl`.
 */
const enum Layout {
  Full = 0,
  Row = 1,
  Column = 2,
  Scalar = 3,
}

/** The result of {@linkcode WebGpuBackend.scoreTopK}. */
export interface TopKResult {
  /** `users · k` item indices, best first (−1 past the item count). */
  items: Int32Array;
  /** Their scores. */
  scores: Float32Array;
}

/**
 * Opens the WebGPU device and returns a backend on it.
 *
 * @param options Adapter preference, batching, pool size, matmul tiling.
 * @returns The backend.
 * @throws {WebGpuUnavailableError} When no adapter exists.
 * @example
 * ```ts ignore
 * const backend = await createWebGpuBackend();
 * const x = backend.uploadFloat32(new Float32Array([1, 2, 3, 4]));
 * const y = backend.matmul(x, x, 2, 2, 2, false, false);
 * console.log(await backend.read(y)); // [7, 10, 15, 22]
 * backend.destroy();
 * ```
 */
export async function createWebGpuBackend(
  options: WebGpuBackendOptions = {},
): Promise<WebGpuBackend> {
  const gpu = await requestWebGpuDevice(options);
  return new WebGpuBackend(gpu, options);
}

/** The primitives of {@linkcode Backend} as WGSL kernels. */
export class WebGpuBackend implements Backend {
  /** `"webgpu"`. */
  readonly name = "webgpu";
  /** The device wrapper (limits, caches, batching). */
  readonly gpu: WebGpuDevice;
  /** The matmul tiling in use. */
  readonly matmulTiling: MatmulTiling;
  #maxBindingValues: number;

  /**
   * Prefer {@linkcode createWebGpuBackend}.
   *
   * @param gpu An opened device.
   * @param options Matmul tiling.
   */
  constructor(gpu: WebGpuDevice, options: WebGpuBackendOptions = {}) {
    this.gpu = gpu;
    this.matmulTiling = { ...defaultMatmulTiling, ...options.matmulTiling };
    this.#maxBindingValues = Math.floor(gpu.maxBindingBytes / 4);
  }

  /** Adapter description and whether it is a software adapter. */
  get description(): string {
    return this.gpu.description +
      (this.gpu.isFallbackAdapter ? " (software adapter)" : "");
  }

  /** Destroys every buffer still pooled and the device. */
  destroy(): void {
    this.gpu.destroy();
  }

  // Memory.

  /**
   * Copies values into a fresh GPU buffer.
   *
   * @param data Values.
   * @returns The storage.
   */
  uploadFloat32(data: Float32Array): WebGpuStorage {
    return new WebGpuStorage(this.gpu.upload(data), data.length);
  }

  /**
   * Copies indices into a fresh GPU buffer.
   *
   * @param data Indices.
   * @returns The index storage.
   */
  uploadInt32(data: Int32Array): WebGpuIndexStorage {
    return new WebGpuIndexStorage(this.gpu.upload(data), data.length);
  }

  /**
   * Uploads a CSR matrix once.
   *
   * @param matrix The matrix.
   * @returns Its three buffers.
   */
  uploadCsr(matrix: CsrMatrix): WebGpuSparseStorage {
    return new WebGpuSparseStorage(matrix, {
      rowOffsets: this.gpu.upload(matrix.rowOffsets),
      columnIndices: this.gpu.upload(matrix.columnIndices),
      values: this.gpu.upload(matrix.values),
    });
  }

  /**
   * Reads values back (one `mapAsync`).
   *
   * @param storage The storage.
   * @returns A copy.
   */
  async read(storage: Storage): Promise<Float32Array> {
    const values = gpuStorage(storage);
    const bytes = await this.gpu.read(values.buffer, 0, values.length * 4);
    return new Float32Array(bytes);
  }

  /**
   * Reads indices back (one `mapAsync`).
   *
   * @param storage The index storage.
   * @returns A copy.
   */
  async readInt32(storage: IndexStorage): Promise<Int32Array> {
    const indices = gpuIndex(storage);
    const bytes = await this.gpu.read(indices.buffer, 0, indices.length * 4);
    return new Int32Array(bytes);
  }

  /**
   * Returns a storage's buffers to the pool (destroyed when the pool is
   * full, or by {@linkcode destroy}). Freeing twice does nothing.
   *
   * @param storage Any storage of this backend.
   */
  free(storage: Storage | IndexStorage | SparseStorage): void {
    if (
      storage instanceof WebGpuStorage || storage instanceof WebGpuIndexStorage
    ) {
      const buffer = storage.release();
      if (buffer !== null) this.gpu.release(buffer);
    } else if (storage instanceof WebGpuSparseStorage) {
      if (storage.parts === null) return;
      for (const buffer of Object.values(storage.parts)) {
        this.gpu.release(buffer);
      }
      storage.parts = null;
    } else {
      throw new TypeError("free() was given a storage of another backend");
    }
  }

  /**
   * Submits recorded work and waits for the GPU to finish it.
   *
   * @returns A promise resolved when the queue is idle.
   */
  synchronize(): Promise<void> {
    return this.gpu.finish();
  }

  /**
   * A filled storage (zeros through `clearBuffer`).
   *
   * @param length Number of values.
   * @param value The value.
   * @returns The storage.
   */
  fill(length: number, value: number): WebGpuStorage {
    const out = this.#allocate(length);
    if (value === 0) {
      this.gpu.clear(out.buffer, 0, length * 4);
      return out;
    }
    for (const [start, count] of this.#flatWindows(length)) {
      this.#elementwise(kernels.fill, [
        window(out, start, count),
        this.gpu.uniform([count], [value]),
      ], count);
    }
    return out;
  }

  // Dense linear algebra.

  /**
   * `op(A) · op(B)` through the tiled kernel, window by window for
   * operands beyond one binding (see the module notes).
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
  ): WebGpuStorage {
    const left = gpuStorage(a);
    const right = gpuStorage(b);
    const out = this.#allocate(m * n);
    if (m * n === 0) return out;
    if (k === 0) {
      this.gpu.clear(out.buffer, 0, m * n * 4);
      return out;
    }
    const limit = this.#maxBindingValues;
    if (transposeB && n * k > limit) {
      throw this.#tooLarge("matmul (transposed right operand)", n * k);
    }
    // Rows of C per window; a non-transposed A is windowed with them.
    const rowWidth = Math.max(n, transposeA ? 1 : k);
    const rowWindow = m * rowWidth <= limit
      ? m
      : this.#rowsPerWindow(rowWidth, "matmul");
    // Inner-dimension window, for a transposed A or a non-transposed B.
    const innerWidth = Math.max(transposeA ? m : 1, transposeB ? 1 : n);
    const innerWindow = k * innerWidth <= limit
      ? k
      : this.#rowsPerWindow(innerWidth, "matmul");
    const tiling = this.matmulTiling;
    const tileRows = tiling.WORKGROUP_ROWS * MATMUL_THREAD_BLOCK;
    const tileCols = tiling.WORKGROUP_COLS * MATMUL_THREAD_BLOCK;
    const pipeline = this.gpu.pipeline(kernels.matmul, { ...tiling });
    for (let m0 = 0; m0 < m; m0 += rowWindow) {
      const rows = Math.min(rowWindow, m - m0);
      for (let k0 = 0; k0 < k; k0 += innerWindow) {
        const inner = Math.min(innerWindow, k - k0);
        const aBinding = transposeA
          ? window(left, k0 * m, inner * m)
          : window(left, m0 * k, rows * k);
        const bBinding = transposeB
          ? window(right, 0, n * k)
          : window(right, k0 * n, inner * n);
        const params = this.gpu.uniform([
          rows,
          n,
          inner,
          transposeA ? m : k,
          transposeB ? k : n,
          n,
          transposeA ? m0 : k0,
          transposeB ? k0 : 0,
          0,
          transposeA ? 1 : 0,
          transposeB ? 1 : 0,
          k0 > 0 ? 1 : 0,
          tiling.TILE_K,
        ]);
        this.gpu.dispatch(
          pipeline,
          [aBinding, bBinding, window(out, m0 * n, rows * n), params],
          [Math.ceil(n / tileCols), Math.ceil(rows / tileRows)],
        );
      }
    }
    return out;
  }

  /**
   * CSR times dense.
   *
   * @param sparse The matrix.
   * @param x Dense `[sparse.cols, cols]`.
   * @param cols Columns of `x`.
   * @returns `[sparse.rows, cols]`.
   */
  spmm(sparse: SparseStorage, x: Storage, cols: number): WebGpuStorage {
    if (!(sparse instanceof WebGpuSparseStorage) || sparse.parts === null) {
      throw new TypeError(
        "spmm() needs a live sparse matrix uploaded to this WebGPU backend",
      );
    }
    const dense = gpuStorage(x);
    const out = this.#allocate(sparse.rows * cols);
    if (sparse.rows * cols === 0) return out;
    this.#checkBindings("spmm", dense.length, out.length, sparse.nonZeros);
    const pipeline = this.gpu.pipeline(kernels.spmm, SPMM_WORKGROUP);
    this.gpu.dispatch(pipeline, [
      sparse.parts.rowOffsets,
      sparse.parts.columnIndices,
      sparse.parts.values,
      dense.buffer,
      out.buffer,
      this.gpu.uniform([sparse.rows, cols]),
    ], Math.ceil(sparse.rows / SPMM_WORKGROUP.WORKGROUP_ROWS));
    return out;
  }

  // Element-wise.

  /**
   * Broadcast `add`, `sub` or `mul`, in row windows for large operands.
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
  ): WebGpuStorage {
    const left = gpuStorage(a);
    const right = gpuStorage(b);
    const rows = Math.max(aRows, bRows);
    const cols = Math.max(aCols, bCols);
    const out = this.#allocate(rows * cols);
    if (rows * cols === 0) return out;
    const aLayout = layoutOf(aRows, aCols, rows, cols);
    const bLayout = layoutOf(bRows, bCols, rows, cols);
    const constants = {
      OPERATION: BINARY_OPERATIONS.indexOf(operation),
      A_LAYOUT: aLayout,
      B_LAYOUT: bLayout,
    };
    for (const [r0, count] of this.#rowWindows(rows, cols, "binary")) {
      this.#elementwise(
        kernels.binary,
        [
          operandWindow(left, aLayout, r0, count, cols),
          operandWindow(right, bLayout, r0, count, cols),
          window(out, r0 * cols, count * cols),
          this.gpu.uniform([count, cols]),
        ],
        count * cols,
        constants,
      );
    }
    return out;
  }

  /**
   * An element-wise function.
   *
   * @param operation The function.
   * @param x Input.
   * @returns `f(x)`.
   */
  unary(operation: UnaryOperation, x: Storage): WebGpuStorage {
    const input = gpuStorage(x);
    const out = this.#allocate(input.length);
    const constants = {
      FUNCTION: unaryFunction(operation),
    };
    for (const [start, count] of this.#flatWindows(input.length)) {
      this.#elementwise(
        kernels.unary,
        [
          window(input, start, count),
          window(out, start, count),
          this.gpu.uniform([count]),
        ],
        count,
        constants,
      );
    }
    return out;
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
  ): WebGpuStorage {
    const input = gpuStorage(x);
    const output = gpuStorage(y);
    const g = gpuStorage(grad);
    const out = this.#allocate(g.length);
    const constants = {
      FUNCTION: unaryFunction(operation),
    };
    for (const [start, count] of this.#flatWindows(g.length)) {
      this.#elementwise(
        kernels.unaryBackward,
        [
          window(input, start, count),
          window(output, start, count),
          window(g, start, count),
          window(out, start, count),
          this.gpu.uniform([count]),
        ],
        count,
        constants,
      );
    }
    return out;
  }

  /**
   * `factor · x`.
   *
   * @param x Input.
   * @param factor The constant.
   * @returns The scaled values.
   */
  scale(x: Storage, factor: number): WebGpuStorage {
    const input = gpuStorage(x);
    const out = this.#allocate(input.length);
    for (const [start, count] of this.#flatWindows(input.length)) {
      this.#elementwise(kernels.scale, [
        window(input, start, count),
        window(out, start, count),
        this.gpu.uniform([count], [factor]),
      ], count);
    }
    return out;
  }

  // Reductions and broadcasts.

  /**
   * Sums down to a target shape (rows, columns or everything).
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
  ): WebGpuStorage {
    const input = gpuStorage(x);
    if (targetRows === rows && targetCols === cols) {
      const out = this.#allocate(rows * cols);
      this.gpu.copy(input.buffer, 0, out.buffer, 0, rows * cols * 4);
      return out;
    }
    if (targetRows === 1 && targetCols === 1) {
      return this.#total(input, rows * cols, false);
    }
    if (targetRows === 1 && rows * cols > this.#maxBindingValues) {
      return this.#windowedColumnSums(input, rows, cols);
    }
    this.#checkBindings("sumTo", rows * cols);
    return targetRows === rows
      ? this.#segmentSums(input.buffer, rows, cols, 1, false, 1)
      : this.#segmentSums(input.buffer, 1, rows, cols, false, 1);
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
  ): WebGpuStorage {
    const input = gpuStorage(x);
    const out = this.#allocate(targetRows * targetCols);
    if (out.length === 0) return out;
    this.#checkBindings("broadcast", out.length);
    const constants = {
      LAYOUT: layoutOf(rows, cols, targetRows, targetCols),
    };
    this.#elementwise(
      kernels.broadcast,
      [
        input.buffer,
        out.buffer,
        this.gpu.uniform([targetRows, targetCols]),
      ],
      out.length,
      constants,
    );
    return out;
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
  rowDot(a: Storage, b: Storage, rows: number, cols: number): WebGpuStorage {
    return this.#rowKernel("rowDot", kernels.rowDot, [a, b], rows, cols, rows);
  }

  /**
   * Sum of squares, reduced window by window for large tensors.
   *
   * @param x Input.
   * @returns `[1, 1]`.
   */
  squaredNorm(x: Storage): WebGpuStorage {
    const input = gpuStorage(x);
    return this.#total(input, input.length, true);
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
  ): WebGpuStorage {
    return this.#rowKernel(
      "normalizeRows",
      kernels.normalizeRows,
      [x],
      rows,
      cols,
      rows * cols,
      [floor],
    );
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
  ): WebGpuStorage {
    return this.#rowKernel(
      "normalizeRowsBackward",
      kernels.normalizeRowsBackward,
      [x, y, grad],
      rows,
      cols,
      rows * cols,
      [floor],
    );
  }

  /**
   * Stable row softmax.
   *
   * @param x Input.
   * @param rows Rows.
   * @param cols Columns.
   * @returns Softmax rows.
   */
  softmaxRows(x: Storage, rows: number, cols: number): WebGpuStorage {
    return this.#rowKernel(
      "softmaxRows",
      kernels.softmaxRows,
      [x],
      rows,
      cols,
      rows * cols,
    );
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
  ): WebGpuStorage {
    return this.#rowKernel(
      "softmaxRowsBackward",
      kernels.softmaxRowsBackward,
      [y, grad],
      rows,
      cols,
      rows * cols,
    );
  }

  /**
   * Stable row logsumexp.
   *
   * @param x Input.
   * @param rows Rows.
   * @param cols Columns.
   * @returns `[rows, 1]`.
   */
  logsumexpRows(x: Storage, rows: number, cols: number): WebGpuStorage {
    return this.#rowKernel(
      "logsumexpRows",
      kernels.logsumexpRows,
      [x],
      rows,
      cols,
      rows,
    );
  }

  /**
   * Gradient of `logsumexpRows` (one thread per value).
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
  ): WebGpuStorage {
    const out = this.#allocate(rows * cols);
    if (out.length === 0) return out;
    this.#checkBindings("logsumexpRowsBackward", rows * cols);
    this.#elementwise(kernels.logsumexpRowsBackward, [
      gpuStorage(x).buffer,
      gpuStorage(y).buffer,
      gpuStorage(grad).buffer,
      out.buffer,
      this.gpu.uniform([rows, cols]),
    ], out.length);
    return out;
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
  gatherRows(x: Storage, cols: number, index: IndexStorage): WebGpuStorage {
    const table = gpuStorage(x);
    const rows = gpuIndex(index);
    const out = this.#allocate(rows.length * cols);
    if (out.length === 0) return out;
    this.#checkBindings("gatherRows", table.length, out.length);
    this.#elementwise(kernels.gatherRows, [
      table.buffer,
      rows.buffer,
      out.buffer,
      this.gpu.uniform([rows.length, cols]),
    ], out.length);
    return out;
  }

  /**
   * Segment sum of gradient rows through the inverse index (no atomics).
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
  ): WebGpuStorage {
    const g = gpuStorage(grad);
    const out = this.#allocate(inverse.rows * cols);
    if (out.length === 0) return out;
    this.#checkBindings("gatherRowsBackward", g.length, out.length);
    this.#elementwise(kernels.gatherRowsBackward, [
      g.buffer,
      gpuIndex(inverse.offsets).buffer,
      gpuIndex(inverse.positions).buffer,
      out.buffer,
      this.gpu.uniform([inverse.rows, cols]),
    ], out.length);
    return out;
  }

  /**
   * Stacks parts vertically (buffer copies).
   *
   * @param parts The parts.
   * @returns The stack.
   */
  concatRows(parts: Storage[]): WebGpuStorage {
    const inputs = parts.map(gpuStorage);
    const out = this.#allocate(
      inputs.reduce((sum, part) => sum + part.length, 0),
    );
    let offset = 0;
    for (const part of inputs) {
      this.gpu.copy(part.buffer, 0, out.buffer, offset * 4, part.length * 4);
      offset += part.length;
    }
    return out;
  }

  /**
   * Places parts side by side.
   *
   * @param parts The parts.
   * @param rows Rows of each.
   * @param widths Columns of each.
   * @returns The joined matrix.
   */
  concatCols(parts: Storage[], rows: number, widths: number[]): WebGpuStorage {
    const cols = widths.reduce((sum, width) => sum + width, 0);
    const out = this.#allocate(rows * cols);
    this.#checkBindings("concatCols", out.length);
    let start = 0;
    for (let p = 0; p < parts.length; p++) {
      this.#copyBlock(gpuStorage(parts[p]), out, rows, widths[p], {
        inWidth: widths[p],
        inCol: 0,
        outWidth: cols,
        outCol: start,
      });
      start += widths[p];
    }
    return out;
  }

  /**
   * A block of rows (one buffer copy).
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
  ): WebGpuStorage {
    const out = this.#allocate(count * cols);
    this.gpu.copy(
      gpuStorage(x).buffer,
      start * cols * 4,
      out.buffer,
      0,
      count * cols * 4,
    );
    return out;
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
  ): WebGpuStorage {
    const input = gpuStorage(x);
    const out = this.#allocate(rows * count);
    this.#checkBindings("sliceCols", input.length);
    this.#copyBlock(input, out, rows, count, {
      inWidth: cols,
      inCol: start,
      outWidth: count,
      outCol: 0,
    });
    return out;
  }

  // Fused losses.

  /**
   * InfoNCE on normalised rows. When the `B × B` similarity matrix fits
   * (256 MiB and one binding; a batch of 2048 needs 16 MiB), it is
   * computed by the tiled
   * matmul, reduced row by row (`info_nce_rows.wgsl`) and kept as the
   * probabilities for backward: the fastest path, measured on llvmpipe.
   * Larger batches use the fused `info_nce.wgsl`, which reduces the
   * similarities to row logsumexps as it computes them and never stores
   * the matrix; backward then recomputes them.
   *
   * @param x `x̂`.
   * @param y `ŷ`.
   * @param rows Batch size.
   * @param cols Width.
   * @param temperature `τ`.
   * @returns Loss, logsumexp, and the probabilities when they were kept.
   */
  infoNce(
    x: Storage,
    y: Storage,
    rows: number,
    cols: number,
    temperature: number,
  ): InfoNceForward {
    const logsumexp = this.#allocate(rows);
    if (rows === 0) return { loss: this.fill(1, NaN), logsumexp };
    this.#checkBindings("infoNce", rows * cols);
    const term = this.#allocate(rows);
    let probabilities: WebGpuStorage | undefined;
    if (this.#keepsInfoNceMatrix(rows)) {
      probabilities = this.matmul(x, y, rows, cols, rows, false, true);
      const pipeline = this.gpu.pipeline(kernels.infoNceRows, {
        WORKGROUP_SIZE: ROWWISE_WORKGROUP,
      });
      this.gpu.dispatch(pipeline, [
        probabilities.buffer,
        logsumexp.buffer,
        term.buffer,
        this.gpu.uniform([rows], [1 / temperature]),
      ], Math.ceil(rows / ROWWISE_WORKGROUP));
    } else {
      const pipeline = this.gpu.pipeline(kernels.infoNce, {
        WORKGROUP_SIZE: INFO_NCE_WORKGROUP,
      });
      this.gpu.dispatch(pipeline, [
        gpuStorage(x).buffer,
        gpuStorage(y).buffer,
        logsumexp.buffer,
        term.buffer,
        this.gpu.uniform([rows, cols], [1 / temperature]),
      ], rows);
    }
    const loss = this.#segmentSums(term.buffer, 1, rows, 1, false, 1 / rows);
    this.free(term);
    return probabilities === undefined
      ? { loss, logsumexp }
      : { loss, logsumexp, probabilities };
  }

  /**
   * Gradient of `infoNce`: from the kept probabilities, one weight kernel
   * and two tiled matmuls (`dx̂ = W ŷ`, `dŷ = Wᵀ x̂`); without them, the
   * fused `info_nce_backward.wgsl` recomputes `P` row by row.
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
  ): { x: WebGpuStorage; y: WebGpuStorage } {
    if (forward.probabilities !== undefined && rows * cols > 0) {
      const weights = this.#allocate(rows * rows);
      this.#elementwise(kernels.infoNceWeights, [
        gpuStorage(forward.probabilities).buffer,
        gpuStorage(grad).buffer,
        weights.buffer,
        this.gpu.uniform([rows], [1 / temperature]),
      ], rows * rows);
      const gradX = this.matmul(weights, y, rows, rows, cols, false, false);
      const gradY = this.matmul(weights, x, rows, rows, cols, true, false);
      this.free(weights);
      return { x: gradX, y: gradY };
    }
    const gradX = this.#allocate(rows * cols);
    const gradY = this.#allocate(rows * cols);
    if (rows * cols === 0) return { x: gradX, y: gradY };
    if (cols > INFO_NCE_WORKGROUP * INFO_NCE_COLUMNS_PER_THREAD) {
      throw new RangeError(
        `infoNce() on WebGPU supports rows of at most ` +
          `${INFO_NCE_WORKGROUP * INFO_NCE_COLUMNS_PER_THREAD} values for ` +
          `batches beyond ${INFO_NCE_MATRIX_BYTES} bytes of similarities, ` +
          `got ${cols}`,
      );
    }
    this.#checkBindings("infoNceBackward", rows * cols);
    const bindings = [
      gpuStorage(x).buffer,
      gpuStorage(y).buffer,
      gpuStorage(forward.logsumexp).buffer,
      gpuStorage(grad).buffer,
    ];
    const params = this.gpu.uniform([rows, cols], [1 / temperature]);
    for (const [side, out] of [gradX, gradY].entries()) {
      const pipeline = this.gpu.pipeline(kernels.infoNceBackward, {
        WORKGROUP_SIZE: INFO_NCE_WORKGROUP,
        SIDE: side,
      });
      this.gpu.dispatch(pipeline, [...bindings, out.buffer, params], rows);
    }
    return { x: gradX, y: gradY };
  }

  /** Whether InfoNCE of `rows` rows stores its similarity matrix. */
  #keepsInfoNceMatrix(rows: number): boolean {
    return rows * rows * 4 <= INFO_NCE_MATRIX_BYTES &&
      rows * rows <= this.#maxBindingValues;
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
    const difference = this.#allocate(rows);
    if (rows === 0) return { loss: this.fill(1, NaN), difference };
    this.#checkBindings("bpr", rows * cols);
    const term = this.#allocate(rows);
    const pipeline = this.gpu.pipeline(kernels.bpr, {
      WORKGROUP_SIZE: ROWWISE_WORKGROUP,
    });
    this.gpu.dispatch(pipeline, [
      gpuStorage(user).buffer,
      gpuStorage(positive).buffer,
      gpuStorage(negative).buffer,
      difference.buffer,
      term.buffer,
      this.gpu.uniform([rows, cols], [epsilon]),
    ], Math.ceil(rows / ROWWISE_WORKGROUP));
    const loss = this.#segmentSums(term.buffer, 1, rows, 1, false, 1 / rows);
    this.free(term);
    return { loss, difference };
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
  ): { user: WebGpuStorage; positive: WebGpuStorage; negative: WebGpuStorage } {
    const gradUser = this.#allocate(rows * cols);
    const gradPositive = this.#allocate(rows * cols);
    const gradNegative = this.#allocate(rows * cols);
    const result = {
      user: gradUser,
      positive: gradPositive,
      negative: gradNegative,
    };
    if (rows * cols === 0) return result;
    this.#checkBindings("bprBackward", rows * cols);
    this.#elementwise(kernels.bprBackward, [
      gpuStorage(user).buffer,
      gpuStorage(positive).buffer,
      gpuStorage(negative).buffer,
      gpuStorage(difference).buffer,
      gpuStorage(grad).buffer,
      gradUser.buffer,
      gradPositive.buffer,
      gradNegative.buffer,
      this.gpu.uniform([rows, cols], [epsilon]),
    ], rows * cols);
    return result;
  }

  // Fused pieces of MSCA's forward pass (spec 5).

  /**
   * `f = E ⊙ σ(Z + b)` in one pass.
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
  ): WebGpuStorage {
    const out = this.#allocate(rows * cols);
    if (rows * cols === 0) return out;
    this.#checkBindings("gatedProjection", rows * cols);
    this.#elementwise(kernels.gatedProjection, [
      gpuStorage(item).buffer,
      gpuStorage(preactivation).buffer,
      gpuStorage(bias).buffer,
      out.buffer,
      this.gpu.uniform([rows, cols]),
    ], rows * cols);
    return out;
  }

  /**
   * Gradient of `gatedProjection` in one pass.
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
  ): { item: WebGpuStorage; preactivation: WebGpuStorage } {
    const gradItem = this.#allocate(rows * cols);
    const gradPreactivation = this.#allocate(rows * cols);
    const result = { item: gradItem, preactivation: gradPreactivation };
    if (rows * cols === 0) return result;
    this.#checkBindings("gatedProjectionBackward", rows * cols);
    this.#elementwise(kernels.gatedProjectionBackward, [
      gpuStorage(item).buffer,
      gpuStorage(preactivation).buffer,
      gpuStorage(bias).buffer,
      gpuStorage(grad).buffer,
      gradItem.buffer,
      gradPreactivation.buffer,
      this.gpu.uniform([rows, cols]),
    ], rows * cols);
    return result;
  }

  /**
   * Attention fusion of stacked views, one thread per row; `b₁` and `w₂`
   * travel packed in one binding (see the kernel). Views too large for
   * one binding run in row windows, each window's `V` blocks copied
   * together first.
   *
   * @param views Stacked views.
   * @param preactivation `Z`.
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
  ): { fused: WebGpuStorage; attention: WebGpuStorage } {
    const fused = this.#allocate(rows * cols);
    const attention = this.#allocate(rows * viewCount);
    if (rows * cols === 0) return { fused, attention };
    const query = this.concatRows([bias, queryVector]);
    const pipeline = this.gpu.pipeline(kernels.attentionFusion, {
      WORKGROUP_SIZE: ROWWISE_WORKGROUP,
    });
    const layout = { rows, cols, viewCount };
    const inputs = [gpuStorage(views), gpuStorage(preactivation)];
    for (
      const [r0, count] of this.#rowWindows(
        rows,
        viewCount * cols,
        "attentionFusion",
      )
    ) {
      const [x, z] = inputs.map((input) =>
        this.#gatherStacked(input, layout, r0, count)
      );
      this.gpu.dispatch(pipeline, [
        x.buffer,
        z.buffer,
        query.buffer,
        window(fused, r0 * cols, count * cols),
        window(attention, r0 * viewCount, count * viewCount),
        this.gpu.uniform([count, cols, viewCount]),
      ], Math.ceil(count / ROWWISE_WORKGROUP));
      if (count < rows) { for (const copy of [x, z]) this.free(copy); }
    }
    this.free(query);
    return { fused, attention };
  }

  /**
   * Gradient of `attentionFusion`, one thread per row, in the same row
   * windows as the forward.
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
    views: WebGpuStorage;
    preactivation: WebGpuStorage;
    queryVectorRows: WebGpuStorage;
  } {
    const result = {
      views: this.#allocate(viewCount * rows * cols),
      preactivation: this.#allocate(viewCount * rows * cols),
      queryVectorRows: this.#allocate(rows * cols),
    };
    if (rows * cols === 0) return result;
    const query = this.concatRows([bias, queryVector]);
    const pipeline = this.gpu.pipeline(kernels.attentionFusionBackward, {
      WORKGROUP_SIZE: ROWWISE_WORKGROUP,
    });
    const layout = { rows, cols, viewCount };
    const inputs = [gpuStorage(views), gpuStorage(preactivation)];
    const outputs = [result.views, result.preactivation];
    for (
      const [r0, count] of this.#rowWindows(
        rows,
        viewCount * cols,
        "attentionFusionBackward",
      )
    ) {
      const whole = count === rows;
      const [x, z] = inputs.map((input) =>
        this.#gatherStacked(input, layout, r0, count)
      );
      const [gradX, gradZ] = outputs.map((output) =>
        whole ? output : this.#allocate(viewCount * count * cols)
      );
      this.gpu.dispatch(pipeline, [
        x.buffer,
        z.buffer,
        query.buffer,
        window(gpuStorage(attention), r0 * viewCount, count * viewCount),
        window(gpuStorage(grad), r0 * cols, count * cols),
        gradX.buffer,
        gradZ.buffer,
        window(result.queryVectorRows, r0 * cols, count * cols),
        this.gpu.uniform([count, cols, viewCount]),
      ], Math.ceil(count / ROWWISE_WORKGROUP));
      if (!whole) {
        this.#scatterStacked(gradX, result.views, layout, r0, count);
        this.#scatterStacked(gradZ, result.preactivation, layout, r0, count);
        for (const copy of [x, z, gradX, gradZ]) this.free(copy);
      }
    }
    this.free(query);
    return result;
  }

  /**
   * Rows `r0 .. r0 + count` of each of the `V` blocks of a stacked
   * `[V · rows, cols]` tensor as one compact `[V · count, cols]` buffer:
   * the tensor itself when the window is every row, else a fresh copy.
   */
  #gatherStacked(
    stacked: WebGpuStorage,
    layout: { rows: number; cols: number; viewCount: number },
    r0: number,
    count: number,
  ): WebGpuStorage {
    const { rows, cols, viewCount } = layout;
    if (count === rows) return stacked;
    const copy = this.#allocate(viewCount * count * cols);
    for (let v = 0; v < viewCount; v++) {
      this.gpu.copy(
        stacked.buffer,
        (v * rows + r0) * cols * 4,
        copy.buffer,
        v * count * cols * 4,
        count * cols * 4,
      );
    }
    return copy;
  }

  /** The reverse of {@linkcode #gatherStacked}: a window copied back. */
  #scatterStacked(
    copy: WebGpuStorage,
    stacked: WebGpuStorage,
    layout: { rows: number; cols: number; viewCount: number },
    r0: number,
    count: number,
  ): void {
    const { rows, cols, viewCount } = layout;
    for (let v = 0; v < viewCount; v++) {
      this.gpu.copy(
        copy.buffer,
        v * count * cols * 4,
        stacked.buffer,
        (v * rows + r0) * cols * 4,
        count * cols * 4,
      );
    }
  }

  // Optimiser.

  /**
   * One in-place Adam update in a single pass over the parameter.
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
    const theta = gpuStorage(parameter);
    const g = gpuStorage(grad);
    const m = gpuStorage(firstMoment);
    const v = gpuStorage(secondMoment);
    const floats = [
      step.learningRate / step.biasCorrection1,
      step.beta1,
      step.beta2,
      step.epsilon,
      Math.sqrt(step.biasCorrection2),
    ];
    for (const [start, count] of this.#flatWindows(theta.length)) {
      this.#elementwise(kernels.adam, [
        window(theta, start, count),
        window(g, start, count),
        window(m, start, count),
        window(v, start, count),
        this.gpu.transientUniform([count], floats),
      ], count);
    }
  }

  // Evaluation.

  /**
   * Scores a block of users against every item and keeps each user's `k`
   * best, on the device (`kernels/score_top_k.wgsl`): the users × items
   * score matrix is never stored, and only `users · k` indices and scores
   * come back. Masked (train) items score −1e10; ties go to the smaller
   * item index; the same lists as `selectTopK` in `src/evaluation.ts`
   * (the CPU twin) after masking.
   *
   * @param userTable User embeddings `[userCount, cols]`.
   * @param itemTable Item embeddings `[itemCount, cols]`.
   * @param cols Embedding width.
   * @param users User IDs of the block.
   * @param k List length.
   * @param masked Each block user's masked items, CSR local to the block,
   *   ascending within a user.
   * @returns Items and scores, `users.length · k` each, best first.
   * @throws {RangeError} When `k` is out of range or a score is NaN.
   */
  async scoreTopK(
    userTable: Storage,
    itemTable: Storage,
    cols: number,
    users: Int32Array,
    k: number,
    masked: { offsets: Int32Array; items: Int32Array },
  ): Promise<TopKResult> {
    if (!Number.isInteger(k) || k < 1) {
      throw new RangeError(`scoreTopK() needs k ≥ 1, got ${k}`);
    }
    const table = gpuStorage(userTable);
    const items = gpuStorage(itemTable);
    const itemCount = cols === 0 ? 0 : items.length / cols;
    this.#checkBindings("scoreTopK", table.length, items.length);
    // Users per dispatch, so that their scratch lists stay within bounds.
    const workgroup = this.gpu.isFallbackAdapter
      ? TOP_K_WORKGROUP.software
      : TOP_K_WORKGROUP.gpu;
    const listBytes = workgroup * k * 8;
    const scratchLimit = Math.min(
      TOP_K_SCRATCH_BYTES,
      this.gpu.maxBindingBytes,
    );
    const usersPerPass = Math.max(1, Math.floor(scratchLimit / listBytes));
    if (listBytes > this.gpu.maxBindingBytes) {
      throw this.#tooLarge("scoreTopK (k too large)", listBytes / 4);
    }
    const pipeline = this.gpu.pipeline(kernels.scoreTopK, {
      WORKGROUP_SIZE: workgroup,
    });
    const passes: { best: GPUBuffer; nanSeen: GPUBuffer; count: number }[] = [];
    const scratch = this.gpu.allocate(
      Math.min(users.length, usersPerPass) * listBytes,
    );
    for (let start = 0; start < users.length; start += usersPerPass) {
      const count = Math.min(usersPerPass, users.length - start);
      const first = masked.offsets[start];
      const offsets = masked.offsets.slice(start, start + count + 1)
        .map((offset) => offset - first);
      const uploads = [
        this.gpu.upload(users.subarray(start, start + count)),
        this.gpu.upload(offsets),
        this.gpu.upload(
          masked.items.subarray(first, masked.offsets[start + count]),
        ),
      ];
      const pass = {
        best: this.gpu.allocate(count * k * 8),
        nanSeen: this.gpu.allocate(count * 4),
        count,
      };
      this.gpu.dispatch(pipeline, [
        table.buffer,
        uploads[0],
        items.buffer,
        uploads[1],
        uploads[2],
        scratch,
        pass.best,
        pass.nanSeen,
        this.gpu.uniform([count, itemCount, cols, k]),
      ], count);
      for (const buffer of uploads) this.gpu.release(buffer);
      passes.push(pass);
    }
    this.gpu.release(scratch);
    const bytes = await this.gpu.readMany(passes.flatMap((pass) => [
      { buffer: pass.best, offset: 0, size: pass.count * k * 8 },
      { buffer: pass.nanSeen, offset: 0, size: pass.count * 4 },
    ]));
    const result = {
      items: new Int32Array(users.length * k),
      scores: new Float32Array(users.length * k),
    };
    let start = 0;
    for (const [p, pass] of passes.entries()) {
      const best = new Int32Array(bytes[2 * p]);
      const scores = new Float32Array(bytes[2 * p]);
      for (let i = 0; i < pass.count * k; i++) {
        result.items[start * k + i] = best[2 * i];
        result.scores[start * k + i] = scores[2 * i + 1];
      }
      const nan = new Uint32Array(bytes[2 * p + 1]).findIndex((f) => f !== 0);
      this.gpu.release(pass.best);
      this.gpu.release(pass.nanSeen);
      if (nan >= 0) {
        throw new RangeError(
          `a score of user ${users[start + nan]} is NaN; the model's ` +
            "embeddings are not finite",
        );
      }
      start += pass.count;
    }
    return result;
  }

  /**
   * The evaluator's `topKBlock` hook (`ScoreSource` in `src/evaluation.ts`)
   * ranking on this device with {@linkcode scoreTopK}: only the ranked
   * item indices come back to the host.
   *
   * @param userTable Final user embeddings `[userCount, cols]`.
   * @param itemTable Final item embeddings `[itemCount, cols]`.
   * @param cols Embedding width.
   * @returns `(users, k, masked) => users.length · k` item indices.
   * @example
   * ```ts ignore
   * const source = {
   *   scoreBlock: () => Promise.reject(new Error("unused")),
   *   topKBlock: backend.topKBlock(users.storage, items.storage, 64),
   * };
   * ```
   */
  topKBlock(
    userTable: Storage,
    itemTable: Storage,
    cols: number,
  ): (
    users: Int32Array,
    k: number,
    masked: { offsets: Int32Array; items: Int32Array },
  ) => Promise<Int32Array> {
    return async (users, k, masked) =>
      (await this.scoreTopK(userTable, itemTable, cols, users, k, masked))
        .items;
  }

  #allocate(length: number): WebGpuStorage {
    return new WebGpuStorage(this.gpu.allocate(length * 4), length);
  }

  #tooLarge(operation: string, values: number): RangeError {
    return new RangeError(
      `${operation}: an operand of ${values * 4} bytes exceeds this ` +
        `device's largest storage binding (maxStorageBufferBindingSize ` +
        `${this.gpu.maxBindingBytes} bytes); only matmul, element-wise ops, ` +
        "total sums, fill and Adam split such tensors; use --device cpu",
    );
  }

  #checkBindings(operation: string, ...lengths: number[]): void {
    for (const length of lengths) {
      if (length > this.#maxBindingValues) {
        throw this.#tooLarge(operation, length);
      }
    }
  }

  /**
   * Dispatches a kernel that runs one thread per value, in workgroups of
   * `ELEMENTWISE_WORKGROUP`, over `threads` threads; `constants` are its
   * other `override` values.
   */
  #elementwise(
    kernel: KernelSource,
    bindings: (GPUBuffer | BufferBinding)[],
    threads: number,
    constants: Record<string, number> = {},
  ): void {
    const pipeline = this.gpu.pipeline(kernel, {
      WORKGROUP_SIZE: ELEMENTWISE_WORKGROUP,
      ...constants,
    });
    this.gpu.dispatch(
      pipeline,
      bindings,
      Math.ceil(threads / ELEMENTWISE_WORKGROUP),
    );
  }

  /** Rows per window for rows of `width` values, for `operation`. */
  #rowsPerWindow(width: number, operation: string): number {
    const rows = Math.floor(this.#maxBindingValues / width / WINDOW_ROWS) *
      WINDOW_ROWS;
    if (rows === 0) {
      throw new RangeError(
        `${operation}(): rows of ${width} values are too wide to split ` +
          `over this device's storage bindings (${this.gpu.maxBindingBytes} ` +
          `bytes); expected ${WINDOW_ROWS} rows to fit in one binding`,
      );
    }
    return rows;
  }

  /** [firstRow, rowCount] windows over `rows` rows of `cols` values. */
  #rowWindows(
    rows: number,
    cols: number,
    operation: string,
  ): [number, number][] {
    const step = rows * cols <= this.#maxBindingValues
      ? rows
      : this.#rowsPerWindow(cols, operation);
    const windows: [number, number][] = [];
    for (let r0 = 0; r0 < rows; r0 += step) {
      windows.push([r0, Math.min(step, rows - r0)]);
    }
    return windows;
  }

  /** [start, count] windows over a flat array; starts keep sums aligned. */
  #flatWindows(length: number): [number, number][] {
    const step = length <= this.#maxBindingValues
      ? length
      : Math.floor(this.#maxBindingValues / flatWindowUnit) * flatWindowUnit;
    const windows: [number, number][] = [];
    for (let start = 0; start < length; start += step) {
      windows.push([start, Math.min(step, length - start)]);
    }
    return windows;
  }

  /**
   * Sums over the middle axis of `[outer, segment, inner]`, in passes of
   * {@linkcode SUM_CHUNK} values per thread until one value is left per
   * (outer, inner) pair; the last pass multiplies by `factor`.
   */
  #segmentSums(
    source: GPUBuffer,
    outer: number,
    segment: number,
    inner: number,
    square: boolean,
    factor: number,
  ): WebGpuStorage {
    if (segment === 0 || outer * inner === 0) {
      const out = this.#allocate(outer * inner);
      this.gpu.clear(out.buffer, 0, outer * inner * 4);
      return out;
    }
    let input = source;
    let length = segment;
    let first = true;
    while (true) {
      const chunk = Math.min(length, SUM_CHUNK);
      const chunks = Math.ceil(length / chunk);
      const out = this.#allocate(outer * chunks * inner);
      const constants = {
        SQUARE: first && square ? 1 : 0,
      };
      this.#elementwise(
        kernels.sumTo,
        [
          input,
          out.buffer,
          this.gpu.uniform(
            [outer, length, inner, chunk],
            [chunks === 1 ? factor : 1],
          ),
        ],
        out.length,
        constants,
      );
      if (input !== source) this.gpu.release(input);
      if (chunks === 1) return out;
      input = out.release()!;
      length = chunks;
      first = false;
    }
  }

  /**
   * Column sums of a matrix beyond one binding: each row window is copied
   * out and summed to one row, then those rows are summed.
   */
  #windowedColumnSums(
    input: WebGpuStorage,
    rows: number,
    cols: number,
  ): WebGpuStorage {
    const windows = this.#rowWindows(rows, cols, "sumTo");
    const partials = this.#allocate(windows.length * cols);
    for (const [w, [r0, count]] of windows.entries()) {
      const copy = this.#allocate(count * cols);
      this.gpu.copy(
        input.buffer,
        r0 * cols * 4,
        copy.buffer,
        0,
        count * cols * 4,
      );
      const sums = this.#segmentSums(copy.buffer, 1, count, cols, false, 1);
      this.gpu.copy(sums.buffer, 0, partials.buffer, w * cols * 4, cols * 4);
      this.free(copy);
      this.free(sums);
    }
    const total = this.#segmentSums(
      partials.buffer,
      1,
      windows.length,
      cols,
      false,
      1,
    );
    this.free(partials);
    return total;
  }

  /** Sum (or sum of squares) of all values, window by window. */
  #total(
    input: WebGpuStorage,
    length: number,
    square: boolean,
  ): WebGpuStorage {
    if (length <= this.#maxBindingValues) {
      return this.#segmentSums(input.buffer, 1, length, 1, square, 1);
    }
    // Each window leaves ceil(count / SUM_CHUNK) partial sums, written at
    // start / SUM_CHUNK: windows are multiples of flatWindowUnit values, so
    // those offsets stay aligned.
    const partials = this.#allocate(Math.ceil(length / SUM_CHUNK));
    const constants = {
      SQUARE: square ? 1 : 0,
    };
    for (const [start, count] of this.#flatWindows(length)) {
      const sums = Math.ceil(count / SUM_CHUNK);
      this.#elementwise(
        kernels.sumTo,
        [
          window(input, start, count),
          window(partials, start / SUM_CHUNK, sums),
          this.gpu.uniform([1, count, 1, SUM_CHUNK], [1]),
        ],
        sums,
        constants,
      );
    }
    const total = this.#segmentSums(
      partials.buffer,
      1,
      partials.length,
      1,
      false,
      1,
    );
    this.free(partials);
    return total;
  }

  /** One thread per row kernels: inputs, params [rows, cols, ...floats]. */
  #rowKernel(
    operation: string,
    kernel: typeof kernels.rowDot,
    inputs: Storage[],
    rows: number,
    cols: number,
    outLength: number,
    floats: number[] = [],
  ): WebGpuStorage {
    const out = this.#allocate(outLength);
    if (rows === 0) return out;
    this.#checkBindings(operation, rows * cols);
    const pipeline = this.gpu.pipeline(kernel, {
      WORKGROUP_SIZE: ROWWISE_WORKGROUP,
    });
    this.gpu.dispatch(pipeline, [
      ...inputs.map((input) => gpuStorage(input).buffer),
      out.buffer,
      this.gpu.uniform([rows, cols], floats),
    ], Math.ceil(rows / ROWWISE_WORKGROUP));
    return out;
  }

  #copyBlock(
    input: WebGpuStorage,
    out: WebGpuStorage,
    rows: number,
    cols: number,
    layout: {
      inWidth: number;
      inCol: number;
      outWidth: number;
      outCol: number;
    },
  ): void {
    if (rows * cols === 0) return;
    this.#elementwise(kernels.copyBlock, [
      input.buffer,
      out.buffer,
      this.gpu.uniform([
        rows,
        cols,
        layout.inWidth,
        layout.inCol,
        layout.outWidth,
        layout.outCol,
      ]),
    ], rows * cols);
  }
}

/**
 * Flat windows are multiples of this many values, so that the partial sums
 * of a window (one per SUM_CHUNK values) start at an aligned byte offset
 * (64 floats = 256 bytes, the largest `minStorageBufferOffsetAlignment`).
 */
const flatWindowUnit = SUM_CHUNK * 64;

function gpuStorage(storage: Storage): WebGpuStorage {
  if (!(storage instanceof WebGpuStorage)) {
    throw new TypeError(
      "the WebGPU backend was given a storage of another backend; move " +
        "tensors with toBackend() first",
    );
  }
  return storage;
}

function gpuIndex(storage: IndexStorage): WebGpuIndexStorage {
  if (!(storage instanceof WebGpuIndexStorage)) {
    throw new TypeError(
      "the WebGPU backend was given an index storage of another backend",
    );
  }
  return storage;
}

/** A binding of `count` values of a storage from value `start`. */
function window(
  storage: WebGpuStorage,
  start: number,
  count: number,
): BufferBinding {
  return { buffer: storage.buffer, offset: start * 4, size: count * 4 };
}

/** How an operand of `[rows, cols]` is read for a `[outRows, outCols]` op. */
function layoutOf(
  rows: number,
  cols: number,
  outRows: number,
  outCols: number,
): Layout {
  if (rows === outRows && cols === outCols) return Layout.Full;
  if (rows === 1 && cols === outCols) return Layout.Row;
  if (cols === 1 && rows === outRows) return Layout.Column;
  return Layout.Scalar;
}

/** The window of an operand matching output rows `r0 .. r0 + count`. */
function operandWindow(
  storage: WebGpuStorage,
  layout: Layout,
  r0: number,
  count: number,
  cols: number,
): BufferBinding {
  switch (layout) {
    case Layout.Full:
      return window(storage, r0 * cols, count * cols);
    case Layout.Column:
      return window(storage, r0, count);
    default:
      return window(storage, 0, Math.max(1, storage.length));
  }
}

function unaryFunction(operation: UnaryOperation): number {
  const index = UNARY_FUNCTIONS.indexOf(operation);
  if (index < 0) {
    throw new RangeError(
      `unknown unary operation "${operation}"; expected one of ` +
        UNARY_FUNCTIONS.join(", "),
    );
  }
  return index;
}
