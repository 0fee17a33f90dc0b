/**
 * The modality kNN graphs `A_m` of spec 4.3, built without an items × items
 * matrix: cosine similarities are computed one block of rows at a time and
 * each row keeps only its `k` best entries in a small heap.
 *
 * Memory beyond the feature table: the unit-length copy of the table, one
 * block of similarities (`blockRows × items`) and `items × k` kept entries.
 *
 * @module
 */

import type { FeatureTable } from "../data/dataset.ts";
import type { CsrMatrix } from "./csr.ts";

/**
 * Computes one block of cosine similarities: the dot products of the rows
 * `rowStart .. rowEnd` of a unit-length feature table with its rows
 * `columnStart .. columnEnd`.
 *
 * This is the hook through which a GPU backend plugs in its block product.
 * The same `normalized` object is passed for every block of one graph, so
 * an implementation may upload it once (for example keyed in a `WeakMap`);
 * its `data` lives on a `SharedArrayBuffer` (copy it with `slice()` where
 * an API refuses shared memory).
 * The result is row-major, `(rowEnd - rowStart) × (columnEnd - columnStart)`;
 * float32 results are fine (the CPU version returns float64).
 *
 * @param normalized The feature table with every row scaled to unit length.
 * @param rowStart First row of the block.
 * @param rowEnd One past the last row of the block.
 * @param columnStart First column (item) of the block.
 * @param columnEnd One past the last column of the block.
 * @returns The block of dot products, or a promise of it.
 */
export type DotProductBlock = (
  normalized: FeatureTable,
  rowStart: number,
  rowEnd: number,
  columnStart: number,
  columnEnd: number,
) => Float32Array | Float64Array | Promise<Float32Array | Float64Array>;

/** Options of {@linkcode modalityGraph}. */
export interface ModalityGraphOptions {
  /** Rows per block of similarities (default 256). */
  blockRows?: number;
  /** Block product to use instead of {@linkcode cpuDotProductBlock}. */
  dotProductBlock?: DotProductBlock;
  /** Called after each block with the fraction of the work done (0..1]. */
  onProgress?: (fraction: number) => void;
}

/**
 * Scales every row of a feature table to unit Euclidean length, as the
 * reference does before the cosine similarity.
 *
 * @param features Item features, one row per item.
 * @returns A new table whose rows have length 1 (on a
 * `SharedArrayBuffer`).
 * @throws {RangeError} When a row is all zeros (its cosine similarity is
 * undefined; the reference would train on NaN).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const unit = normalizeFeatureRows({
 *   rows: 1,
 *   cols: 2,
 *   data: new Float32Array([3, 4]),
 * });
 * assert.ok(Math.abs(unit.data[0] - 0.6) < 1e-7);
 * ```
 */
export function normalizeFeatureRows(features: FeatureTable): FeatureTable {
  const { rows, cols, data } = features;
  // Shared memory lets the kNN workers read the table without a copy.
  const normalized = new Float32Array(
    new SharedArrayBuffer(rows * cols * Float32Array.BYTES_PER_ELEMENT),
  );
  for (let row = 0; row < rows; row++) {
    const start = row * cols;
    let squares = 0;
    for (let c = 0; c < cols; c++) squares += data[start + c] * data[start + c];
    const norm = Math.sqrt(squares);
    if (!(norm > 0) || !Number.isFinite(norm)) {
      throw new RangeError(
        `Feature row ${row} has norm ${norm}; cosine similarity needs a ` +
          `finite, non-zero row for every item`,
      );
    }
    for (let c = 0; c < cols; c++) {
      normalized[start + c] = data[start + c] / norm;
    }
  }
  return { rows, cols, data: normalized };
}

// The CPU block product works on tiles of the feature dimension and of the
// columns so that both operands of the inner loops stay in cache, and on
// 4 × 4 register tiles so that each loaded value feeds four products.
const FEATURE_TILE = 1024;
const COLUMN_TILE = 32;

/**
 * The CPU block product of {@linkcode DotProductBlock}: blocked loops over
 * 4 × 4 tiles of rows and columns, accumulated in float64.
 *
 * @param normalized The unit-length feature table.
 * @param rowStart First row of the block.
 * @param rowEnd One past the last row of the block.
 * @param columnStart First column of the block.
 * @param columnEnd One past the last column of the block.
 * @returns The `(rowEnd - rowStart) × (columnEnd - columnStart)` products.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const table = { rows: 2, cols: 2, data: new Float32Array([1, 0, 0, 1]) };
 * const block = cpuDotProductBlock(table, 0, 2, 0, 2);
 * assert.deepEqual([...block], [1, 0, 0, 1]);
 * ```
 */
export function cpuDotProductBlock(
  normalized: FeatureTable,
  rowStart: number,
  rowEnd: number,
  columnStart: number,
  columnEnd: number,
): Float64Array {
  const out = new Float64Array(
    (rowEnd - rowStart) * (columnEnd - columnStart),
  );
  cpuDotProductInto(normalized, rowStart, rowEnd, columnStart, columnEnd, out);
  return out;
}

/**
 * Writes the block of {@linkcode cpuDotProductBlock} into `out` from
 * `outOffset` on (the form the kNN workers use on shared memory). Each
 * product is summed in the same order whatever the block bounds, so any
 * split of the rows gives bit-identical results.
 *
 * @param normalized The unit-length feature table.
 * @param rowStart First row of the block.
 * @param rowEnd One past the last row of the block.
 * @param columnStart First column of the block.
 * @param columnEnd One past the last column of the block.
 * @param out Receives the products, row-major; must hold zeros there.
 * @param outOffset Index in `out` of the block's first product.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const table = { rows: 2, cols: 2, data: new Float32Array([1, 0, 0, 1]) };
 * const out = new Float64Array(2);
 * cpuDotProductInto(table, 1, 2, 0, 2, out);
 * assert.deepEqual([...out], [0, 1]);
 * ```
 */
export function cpuDotProductInto(
  normalized: FeatureTable,
  rowStart: number,
  rowEnd: number,
  columnStart: number,
  columnEnd: number,
  out: Float64Array,
  outOffset = 0,
): void {
  const { cols: width, data } = normalized;
  const blockColumns = columnEnd - columnStart;
  for (let f0 = 0; f0 < width; f0 += FEATURE_TILE) {
    const f1 = Math.min(width, f0 + FEATURE_TILE);
    for (let j0 = columnStart; j0 < columnEnd; j0 += COLUMN_TILE) {
      const j1 = Math.min(columnEnd, j0 + COLUMN_TILE);
      for (let i = rowStart; i < rowEnd; i += 4) {
        const rowCount = Math.min(4, rowEnd - i);
        // Rows past the block end repeat the last row; their sums are
        // discarded below.
        const a0 = i * width;
        const a1 = (rowCount > 1 ? i + 1 : i) * width;
        const a2 = (rowCount > 2 ? i + 2 : i) * width;
        const a3 = (rowCount > 3 ? i + 3 : i) * width;
        for (let j = j0; j < j1; j += 4) {
          const columnCount = Math.min(4, j1 - j);
          const b0 = j * width;
          const b1 = (columnCount > 1 ? j + 1 : j) * width;
          const b2 = (columnCount > 2 ? j + 2 : j) * width;
          const b3 = (columnCount > 3 ? j + 3 : j) * width;
          let s00 = 0, s01 = 0, s02 = 0, s03 = 0;
          let s10 = 0, s11 = 0, s12 = 0, s13 = 0;
          let s20 = 0, s21 = 0, s22 = 0, s23 = 0;
          let s30 = 0, s31 = 0, s32 = 0, s33 = 0;
          for (let f = f0; f < f1; f++) {
            const x0 = data[a0 + f], x1 = data[a1 + f];
            const x2 = data[a2 + f], x3 = data[a3 + f];
            const y0 = data[b0 + f], y1 = data[b1 + f];
            const y2 = data[b2 + f], y3 = data[b3 + f];
            s00 += x0 * y0, s01 += x0 * y1, s02 += x0 * y2, s03 += x0 * y3;
            s10 += x1 * y0, s11 += x1 * y1, s12 += x1 * y2, s13 += x1 * y3;
            s20 += x2 * y0, s21 += x2 * y1, s22 += x2 * y2, s23 += x2 * y3;
            s30 += x3 * y0, s31 += x3 * y1, s32 += x3 * y2, s33 += x3 * y3;
          }
          // deno-fmt-ignore
          const sums = [
            s00, s01, s02, s03, s10, s11, s12, s13,
            s20, s21, s22, s23, s30, s31, s32, s33,
          ];
          for (let r = 0; r < rowCount; r++) {
            const o = outOffset + (i - rowStart + r) * blockColumns +
              (j - columnStart);
            for (let c = 0; c < columnCount; c++) out[o + c] += sums[r * 4 + c];
          }
        }
      }
    }
  }
}

/**
 * Per-row top-k selection: for every row a min-heap of its `k` best
 * entries, the worst at the root. Better means a larger value, and on equal
 * values the smaller column (our tie rule), whatever the order of offers.
 */
class RowTopK {
  readonly k: number;
  readonly values: Float64Array;
  readonly columns: Int32Array;
  readonly sizes: Int32Array;

  constructor(rows: number, k: number) {
    this.k = k;
    this.values = new Float64Array(rows * k);
    this.columns = new Int32Array(rows * k);
    this.sizes = new Int32Array(rows);
  }

  /** True when entry a is worse than entry b. */
  #worse(va: number, ca: number, vb: number, cb: number): boolean {
    return va < vb || (va === vb && ca > cb);
  }

  offer(row: number, column: number, value: number): void {
    const k = this.k;
    const base = row * k;
    const values = this.values, columns = this.columns;
    let size = this.sizes[row];
    if (size < k) {
      // Sift up from the new leaf.
      let child = size++;
      this.sizes[row] = size;
      while (child > 0) {
        const parent = (child - 1) >> 1;
        const vp = values[base + parent], cp = columns[base + parent];
        if (!this.#worse(value, column, vp, cp)) break;
        values[base + child] = vp;
        columns[base + child] = cp;
        child = parent;
      }
      values[base + child] = value;
      columns[base + child] = column;
      return;
    }
    const rootValue = values[base];
    if (value < rootValue) return;
    if (!this.#worse(values[base], columns[base], value, column)) return;
    // Replace the root and sift down.
    let parent = 0;
    for (;;) {
      const left = 2 * parent + 1;
      if (left >= size) break;
      let worst = left;
      const right = left + 1;
      if (
        right < size &&
        this.#worse(
          values[base + right],
          columns[base + right],
          values[base + left],
          columns[base + left],
        )
      ) {
        worst = right;
      }
      if (
        !this.#worse(values[base + worst], columns[base + worst], value, column)
      ) {
        break;
      }
      values[base + parent] = values[base + worst];
      columns[base + parent] = columns[base + worst];
      parent = worst;
    }
    values[base + parent] = value;
    columns[base + parent] = column;
  }
}

/**
 * Builds the modality graph `A_m` of spec 4.3: cosine similarity of the
 * feature rows, the `k` largest entries of each row kept (the item itself
 * included, ties broken towards the smaller column index), weighted by the
 * similarity and normalised as `s_i^(-1/2) S[i, j] s_j^(-1/2)` with `s_i`
 * the sum of row `i`'s kept weights (an infinite power gives 0).
 *
 * Only the upper triangle of the symmetric similarity matrix is computed:
 * each block of rows `b` is multiplied with the columns from `b` on, and a
 * product serves both its row and its column.
 *
 * @param features Item features, one row per item.
 * @param k Neighbours per item (`knn_k`); at most the item count is kept.
 * @param options Block size, a GPU block product, progress callback.
 * @returns The I × I graph with float32 values.
 * @throws {RangeError} On `k < 1`, an all-zero feature row, or a row whose
 * kept similarities sum to a negative number (its normaliser is undefined).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const features = { rows: 3, cols: 2, data: new Float32Array([1, 0, 1, 0.1, 0, 1]) };
 * const graph = await modalityGraph(features, 2);
 * assert.equal(graph.rows, 3);
 * assert.equal(graph.columnIndices.length, 6);
 * ```
 */
export async function modalityGraph(
  features: FeatureTable,
  k: number,
  options: ModalityGraphOptions = {},
): Promise<CsrMatrix> {
  if (!Number.isInteger(k) || k < 1) {
    throw new RangeError(`knn_k must be a positive integer, got ${k}`);
  }
  const blockRows = options.blockRows ?? 256;
  if (!Number.isInteger(blockRows) || blockRows < 1) {
    throw new RangeError(`blockRows must be a positive integer, got ${k}`);
  }
  const blockProduct = options.dotProductBlock ?? cpuDotProductBlock;
  const items = features.rows;
  const kept = Math.min(k, items);
  const normalized = normalizeFeatureRows(features);
  const topK = new RowTopK(items, kept);

  // Work of block b is proportional to its rows times the columns from b.
  const totalWork = items * (items + 1) / 2;
  let workDone = 0;
  const request = (rowStart: number) =>
    blockProduct(
      normalized,
      rowStart,
      Math.min(items, rowStart + blockRows),
      rowStart,
      items,
    );
  // The next block is requested before this one is consumed, so that an
  // asynchronous block product (workers, GPU) overlaps the heap updates.
  let pending = request(0);
  for (let rowStart = 0; rowStart < items; rowStart += blockRows) {
    const rowEnd = Math.min(items, rowStart + blockRows);
    const width = items - rowStart;
    const block = await pending;
    if (block.length !== (rowEnd - rowStart) * width) {
      throw new RangeError(
        `dotProductBlock returned ${block.length} values for rows ` +
          `${rowStart}..${rowEnd} × columns ${rowStart}..${items}; expected ` +
          `${(rowEnd - rowStart) * width}`,
      );
    }
    if (rowEnd < items) pending = request(rowEnd);
    for (let i = rowStart; i < rowEnd; i++) {
      const offset = (i - rowStart) * width - rowStart;
      topK.offer(i, i, block[offset + i]);
      for (let j = i + 1; j < items; j++) {
        const similarity = block[offset + j];
        topK.offer(i, j, similarity);
        topK.offer(j, i, similarity);
      }
    }
    for (let i = rowStart; i < rowEnd; i++) workDone += items - i;
    options.onProgress?.(workDone / totalWork);
  }

  return normalizeKeptRows(topK, items);
}

/** Turns the kept entries into CSR with `s_i^(-1/2) S s_j^(-1/2)` values. */
function normalizeKeptRows(topK: RowTopK, items: number): CsrMatrix {
  const k = topK.k;
  const inverseRoot = new Float64Array(items);
  for (let i = 0; i < items; i++) {
    let sum = 0;
    for (let e = 0; e < topK.sizes[i]; e++) sum += topK.values[i * k + e];
    if (sum < 0) {
      throw new RangeError(
        `The kept similarities of item ${i} sum to ${sum}; the graph's ` +
          `normaliser s^(-1/2) needs a non-negative sum (use a smaller knn_k ` +
          `or features with positive similarities)`,
      );
    }
    const power = Math.pow(sum, -0.5);
    inverseRoot[i] = Number.isFinite(power) ? power : 0;
  }

  const rowOffsets = new Int32Array(items + 1);
  for (let i = 0; i < items; i++) {
    rowOffsets[i + 1] = rowOffsets[i] + topK.sizes[i];
  }
  const nonZeros = rowOffsets[items];
  const columnIndices = new Int32Array(nonZeros);
  const values = new Float32Array(nonZeros);
  const order: number[] = [];
  for (let i = 0; i < items; i++) {
    const size = topK.sizes[i];
    order.length = 0;
    for (let e = 0; e < size; e++) order.push(e);
    order.sort((a, b) => topK.columns[i * k + a] - topK.columns[i * k + b]);
    for (let e = 0; e < size; e++) {
      const column = topK.columns[i * k + order[e]];
      const similarity = topK.values[i * k + order[e]];
      columnIndices[rowOffsets[i] + e] = column;
      values[rowOffsets[i] + e] = inverseRoot[i] * similarity *
        inverseRoot[column];
    }
  }
  return { rows: items, cols: items, rowOffsets, columnIndices, values };
}
