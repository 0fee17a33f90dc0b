/**
 * Compressed sparse row matrices, the form every graph takes (spec 4).
 *
 * @module
 */

/** A constant sparse matrix in CSR form with float32 values. */
export interface CsrMatrix {
  /** Number of rows. */
  rows: number;
  /** Number of columns. */
  cols: number;
  /** `rows + 1` offsets into `columnIndices` and `values`. */
  rowOffsets: Int32Array;
  /** Column of each stored entry, ascending within a row. */
  columnIndices: Int32Array;
  /** Value of each stored entry. */
  values: Float32Array;
}
