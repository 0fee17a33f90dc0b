/**
 * The contract between the tensor engine and the machines it runs on.
 *
 * A {@linkcode Backend} owns memory ({@linkcode Storage}) and runs a small
 * set of primitive kernels over it. Every op of the engine, forward and
 * backward, and the Adam update are written in terms of these primitives
 * only, so a whole training step runs on one backend without reading
 * values back to the host. The CPU backend (`cpu.ts`) runs them as plain
 * TypeScript loops; the WebGPU backend runs one WGSL kernel per primitive
 * with the same name.
 *
 * Conventions shared by every method:
 *
 * - Values are float32 (the CPU backend may also run in float64 for
 *   gradient checks), row-major. Every storage is seen as a 2-D matrix
 *   `[rows, cols]`; a scalar is `[1, 1]`, a vector of length `c` is
 *   `[1, c]`. Shapes travel as separate numbers because storages carry
 *   only their length.
 * - Primitives are pure: they read their inputs and return a fresh
 *   storage that the caller owns and must {@linkcode Backend.free}. The one
 *   exception is {@linkcode Backend.adam}, which updates a parameter and
 *   its moments in place so that parameters keep their storage for life.
 * - The engine validates shapes and index ranges before it calls a
 *   primitive; backends may assume valid arguments.
 * - Zero-sized inputs are legal (a `[0, c]` matrix) and give zero-sized or
 *   zero-valued outputs as the maths says.
 *
 * @module
 */

import type { CsrMatrix } from "../graph/csr.ts";

/** A block of float values owned by a backend; opaque to the engine. */
export interface Storage {
  /** Number of values held. */
  readonly length: number;
}

/** A block of int32 values (row indices) owned by a backend. */
export interface IndexStorage {
  /** Number of indices held. */
  readonly length: number;
}

/**
 * A constant sparse matrix uploaded once ({@linkcode Backend.uploadCsr}).
 * Backends may keep whatever form suits their kernel.
 */
export interface SparseStorage {
  /** Number of rows. */
  readonly rows: number;
  /** Number of columns. */
  readonly cols: number;
  /** Number of stored entries. */
  readonly nonZeros: number;
}

/**
 * The inverse of a row index, used by {@linkcode Backend.gatherRowsBackward}:
 * for each row `r` of the gathered table, the positions `p` of the index
 * with `index[p] = r`, stored CSR-like. Built once on the host per index,
 * so that the backward is a deterministic segment sum without atomics.
 */
export interface InverseIndex {
  /** Row count of the table that was gathered from. */
  readonly rows: number;
  /** Length of the index (rows of the gathered result). */
  readonly count: number;
  /** `rows + 1` offsets into `positions`. */
  readonly offsets: IndexStorage;
  /** Positions in the index, ascending within each row. */
  readonly positions: IndexStorage;
}

/** Element-wise binary operations of {@linkcode Backend.binary}. */
export type BinaryOperation = "add" | "sub" | "mul";

/** Element-wise unary functions of {@linkcode Backend.unary}. */
export type UnaryOperation =
  | "sigmoid"
  | "tanh"
  | "logSigmoid"
  | "exp"
  | "log"
  | "sqrt";

/**
 * Hyper-parameters of one Adam update, with the bias corrections already
 * computed by the optimiser for the current step (PyTorch semantics).
 */
export interface AdamStep {
  /** Learning rate `lr`. */
  learningRate: number;
  /** First-moment decay `β₁`. */
  beta1: number;
  /** Second-moment decay `β₂`. */
  beta2: number;
  /** `ε`, added after the square root of the bias-corrected moment. */
  epsilon: number;
  /** `1 − β₁^t` for step `t` (1-based). */
  biasCorrection1: number;
  /** `1 − β₂^t` for step `t` (1-based). */
  biasCorrection2: number;
}

/** Result of {@linkcode Backend.infoNce}. */
export interface InfoNceForward {
  /** The scalar loss `[1, 1]`. */
  loss: Storage;
  /** Per-row `logsumexp_c(x̂_b · ŷ_c / τ)`, `[rows, 1]`, for backward. */
  logsumexp: Storage;
  /**
   * Optional: `P_bc = exp(x̂_b·ŷ_c / τ − lse_b)`, `[rows, rows]`, kept by a
   * backend that prefers memory to recomputing the similarities in
   * backward. The engine frees it with the rest after backward.
   */
  probabilities?: Storage;
}

/** Result of {@linkcode Backend.bpr}. */
export interface BprForward {
  /** The scalar loss `[1, 1]`. */
  loss: Storage;
  /** Per-row `u·p − u·n`, `[rows, 1]`, for backward. */
  difference: Storage;
}

/**
 * A machine the engine runs on: memory plus one method per primitive
 * kernel. Implemented by `cpuBackend` (src/engine/cpu.ts) and by the
 * WebGPU backend.
 */
export interface Backend {
  /** Short name used in messages and logs, e.g. `"cpu"`, `"webgpu"`. */
  readonly name: string;

  // Memory.

  /**
   * Copies host values into a fresh storage.
   *
   * @param data Values, row-major.
   * @returns A storage of `data.length` values.
   */
  uploadFloat32(data: Float32Array): Storage;

  /**
   * Copies host indices into a fresh index storage.
   *
   * @param data Indices.
   * @returns An index storage of `data.length` indices.
   */
  uploadInt32(data: Int32Array): IndexStorage;

  /**
   * Uploads a constant CSR matrix once, for {@linkcode Backend.spmm}.
   *
   * @param matrix The matrix; columns ascending within each row.
   * @returns The backend's form of it.
   */
  uploadCsr(matrix: CsrMatrix): SparseStorage;

  /**
   * Reads values back to the host, after all queued work on them.
   *
   * @param storage The storage to read.
   * @returns A copy of its values.
   */
  read(storage: Storage): Promise<Float32Array>;

  /**
   * Reads indices back to the host.
   *
   * @param storage The index storage to read.
   * @returns A copy of its indices.
   */
  readInt32(storage: IndexStorage): Promise<Int32Array>;

  /**
   * Releases memory now. Using a storage after freeing it is an error;
   * freeing twice is allowed and does nothing the second time.
   *
   * @param storage Any storage this backend returned.
   */
  free(storage: Storage | IndexStorage | SparseStorage): void;

  /**
   * Waits until all queued work has finished (for timing). A no-op where
   * work runs synchronously.
   *
   * @returns A promise resolved when the backend is idle.
   */
  synchronize(): Promise<void>;

  /**
   * A fresh storage with every value equal to `value`.
   *
   * @param length Number of values.
   * @param value The value (0 for zeros).
   * @returns The filled storage.
   */
  fill(length: number, value: number): Storage;

  // Dense linear algebra.

  /**
   * Dense product `op(A) · op(B)` where `op` transposes when asked.
   * `A` is stored `[m, k]` (or `[k, m]` when `transposeA`), `B` is stored
   * `[k, n]` (or `[n, k]` when `transposeB`).
   *
   * @param a Left operand.
   * @param b Right operand.
   * @param m Rows of the result.
   * @param k Inner dimension.
   * @param n Columns of the result.
   * @param transposeA Whether `a` is stored transposed.
   * @param transposeB Whether `b` is stored transposed.
   * @returns The product, `[m, n]`.
   */
  matmul(
    a: Storage,
    b: Storage,
    m: number,
    k: number,
    n: number,
    transposeA: boolean,
    transposeB: boolean,
  ): Storage;

  /**
   * Sparse times dense: `S · X` with `S` `[S.rows, S.cols]` and `X`
   * `[S.cols, cols]`. The engine uploads the transpose separately for
   * backward.
   *
   * @param sparse The sparse matrix.
   * @param x The dense matrix.
   * @param cols Columns of `x`.
   * @returns The product, `[sparse.rows, cols]`.
   */
  spmm(sparse: SparseStorage, x: Storage, cols: number): Storage;

  // Element-wise.

  /**
   * `a ∘ b` with 2-D broadcasting: each dimension of each operand equals
   * the result's or is 1.
   *
   * @param operation `"add"`, `"sub"` or `"mul"`.
   * @param a Left operand.
   * @param aRows Rows of `a`.
   * @param aCols Columns of `a`.
   * @param b Right operand.
   * @param bRows Rows of `b`.
   * @param bCols Columns of `b`.
   * @returns The result, `[max(aRows, bRows), max(aCols, bCols)]`.
   */
  binary(
    operation: BinaryOperation,
    a: Storage,
    aRows: number,
    aCols: number,
    b: Storage,
    bRows: number,
    bCols: number,
  ): Storage;

  /**
   * Applies a function to every value.
   *
   * @param operation The function.
   * @param x Input.
   * @returns `f(x)`, same length.
   */
  unary(operation: UnaryOperation, x: Storage): Storage;

  /**
   * The gradient through {@linkcode Backend.unary}: `g · f'(x)`, computed
   * from the input and/or the saved output as each function needs.
   *
   * @param operation The function of the forward pass.
   * @param x The forward input.
   * @param y The forward output `f(x)`.
   * @param grad Gradient with respect to `y`.
   * @returns Gradient with respect to `x`.
   */
  unaryBackward(
    operation: UnaryOperation,
    x: Storage,
    y: Storage,
    grad: Storage,
  ): Storage;

  /**
   * Multiplies every value by a host constant.
   *
   * @param x Input.
   * @param factor The constant.
   * @returns `factor · x`.
   */
  scale(x: Storage, factor: number): Storage;

  // Reductions and broadcasts.

  /**
   * Sums `[rows, cols]` down to `[targetRows, targetCols]`, each target
   * dimension equal to the source's or 1 (sum over rows, over columns,
   * or both). The reverse of {@linkcode Backend.broadcast}.
   *
   * @param x Input.
   * @param rows Rows of `x`.
   * @param cols Columns of `x`.
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
  ): Storage;

  /**
   * Repeats `[rows, cols]` up to `[targetRows, targetCols]`, where each
   * source dimension equals the target's or is 1.
   *
   * @param x Input.
   * @param rows Rows of `x`.
   * @param cols Columns of `x`.
   * @param targetRows Rows of the result.
   * @param targetCols Columns of the result.
   * @returns The repeated values.
   */
  broadcast(
    x: Storage,
    rows: number,
    cols: number,
    targetRows: number,
    targetCols: number,
  ): Storage;

  /**
   * Row-wise dot products of two `[rows, cols]` matrices.
   *
   * @param a Left operand.
   * @param b Right operand.
   * @param rows Rows of both.
   * @param cols Columns of both.
   * @returns `[rows, 1]`.
   */
  rowDot(a: Storage, b: Storage, rows: number, cols: number): Storage;

  /**
   * Sum of squares of all values.
   *
   * @param x Input.
   * @returns `[1, 1]`.
   */
  squaredNorm(x: Storage): Storage;

  // Row-wise functions.

  /**
   * Divides each row by `max(‖row‖₂, floor)`; a zero row stays zero.
   *
   * @param x Input `[rows, cols]`.
   * @param rows Rows of `x`.
   * @param cols Columns of `x`.
   * @param floor Smallest norm divided by (1e-12, like PyTorch's
   *   `F.normalize`).
   * @returns The normalised rows.
   */
  normalizeRows(x: Storage, rows: number, cols: number, floor: number): Storage;

  /**
   * Gradient of {@linkcode Backend.normalizeRows}. With `n = ‖x‖`:
   * `(g − y (y·g)) / n` where `n > floor`, else `g / floor`.
   *
   * @param x The forward input.
   * @param y The forward output.
   * @param grad Gradient with respect to `y`.
   * @param rows Rows.
   * @param cols Columns.
   * @param floor The forward's floor.
   * @returns Gradient with respect to `x`.
   */
  normalizeRowsBackward(
    x: Storage,
    y: Storage,
    grad: Storage,
    rows: number,
    cols: number,
    floor: number,
  ): Storage;

  /**
   * Softmax of each row, computed stably (max subtracted).
   *
   * @param x Input `[rows, cols]`.
   * @param rows Rows.
   * @param cols Columns.
   * @returns The row softmax.
   */
  softmaxRows(x: Storage, rows: number, cols: number): Storage;

  /**
   * Gradient of {@linkcode Backend.softmaxRows}: `y (g − (g·y))` per row.
   *
   * @param y The forward output.
   * @param grad Gradient with respect to `y`.
   * @param rows Rows.
   * @param cols Columns.
   * @returns Gradient with respect to the input.
   */
  softmaxRowsBackward(
    y: Storage,
    grad: Storage,
    rows: number,
    cols: number,
  ): Storage;

  /**
   * `log Σ_c exp(x_rc)` of each row, computed stably.
   *
   * @param x Input `[rows, cols]`.
   * @param rows Rows.
   * @param cols Columns.
   * @returns `[rows, 1]`.
   */
  logsumexpRows(x: Storage, rows: number, cols: number): Storage;

  /**
   * Gradient of {@linkcode Backend.logsumexpRows}: `g_r exp(x_rc − y_r)`.
   *
   * @param x The forward input `[rows, cols]`.
   * @param y The forward output `[rows, 1]`.
   * @param grad Gradient with respect to `y`, `[rows, 1]`.
   * @param rows Rows.
   * @param cols Columns.
   * @returns Gradient with respect to `x`.
   */
  logsumexpRowsBackward(
    x: Storage,
    y: Storage,
    grad: Storage,
    rows: number,
    cols: number,
  ): Storage;

  // Rearranging rows and columns.

  /**
   * Rows of a table picked by an index: `out[p] = x[index[p]]`.
   *
   * @param x Table `[rows, cols]`.
   * @param cols Columns of `x`.
   * @param index Row numbers, each in `[0, rows)`.
   * @returns `[index.length, cols]`.
   */
  gatherRows(x: Storage, cols: number, index: IndexStorage): Storage;

  /**
   * Gradient of {@linkcode Backend.gatherRows}: for each table row `r`, the
   * sum of the gradient rows at the positions that picked `r`, in
   * ascending position order (deterministic; no atomics).
   *
   * @param grad Gradient of the gathered rows, `[inverse.count, cols]`.
   * @param cols Columns.
   * @param inverse The index's inverse.
   * @returns `[inverse.rows, cols]`, zero for rows never picked.
   */
  gatherRowsBackward(
    grad: Storage,
    cols: number,
    inverse: InverseIndex,
  ): Storage;

  /**
   * Stacks matrices of equal width on top of each other (in row-major
   * form, their values one after the other).
   *
   * @param parts The matrices, top first.
   * @returns The stacked matrix.
   */
  concatRows(parts: Storage[]): Storage;

  /**
   * Places matrices with equal row counts side by side.
   *
   * @param parts The matrices, left first.
   * @param rows Rows of every part.
   * @param widths Columns of each part.
   * @returns `[rows, Σ widths]`.
   */
  concatCols(parts: Storage[], rows: number, widths: number[]): Storage;

  /**
   * Rows `start .. start + count` of a matrix.
   *
   * @param x Input with `cols` columns.
   * @param cols Columns.
   * @param start First row.
   * @param count Number of rows.
   * @returns `[count, cols]`.
   */
  sliceRows(x: Storage, cols: number, start: number, count: number): Storage;

  /**
   * Columns `start .. start + count` of a matrix.
   *
   * @param x Input `[rows, cols]`.
   * @param rows Rows.
   * @param cols Columns.
   * @param start First column.
   * @param count Number of columns.
   * @returns `[rows, count]`.
   */
  sliceCols(
    x: Storage,
    rows: number,
    cols: number,
    start: number,
    count: number,
  ): Storage;

  // Fused losses (spec 6).

  /**
   * InfoNCE on rows that are already normalised:
   * `mean_b (logsumexp_c(x̂_b·ŷ_c / τ) − x̂_b·ŷ_b / τ)`, which equals
   * `mean_b logsumexp_c((x̂_b·ŷ_c − x̂_b·ŷ_b) / τ)`.
   *
   * @param x Normalised rows `x̂`, `[rows, cols]`.
   * @param y Normalised rows `ŷ`, `[rows, cols]`.
   * @param rows Batch size `B`.
   * @param cols Width.
   * @param temperature `τ`.
   * @returns The loss and the per-row logsumexp.
   */
  infoNce(
    x: Storage,
    y: Storage,
    rows: number,
    cols: number,
    temperature: number,
  ): InfoNceForward;

  /**
   * Gradient of {@linkcode Backend.infoNce}. With
   * `P_bc = exp(x̂_b·ŷ_c / τ − lse_b)`: `∂/∂x̂_b = g Σ_c (P_bc − δ_bc) ŷ_c
   * / (τ B)` and `∂/∂ŷ_c = g Σ_b (P_bc − δ_bc) x̂_b / (τ B)`.
   *
   * @param x The forward `x̂`.
   * @param y The forward `ŷ`.
   * @param forward What {@linkcode Backend.infoNce} returned.
   * @param grad Gradient with respect to the loss, `[1, 1]`.
   * @param rows Batch size.
   * @param cols Width.
   * @param temperature `τ`.
   * @returns Gradients with respect to `x̂` and `ŷ`.
   */
  infoNceBackward(
    x: Storage,
    y: Storage,
    forward: InfoNceForward,
    grad: Storage,
    rows: number,
    cols: number,
    temperature: number,
  ): { x: Storage; y: Storage };

  /**
   * BPR loss `mean_b −log(ε + σ(u_b·p_b − u_b·n_b))`; with `ε = 0` it is
   * computed as the stable `mean_b softplus(−d_b)`.
   *
   * @param user User rows `[rows, cols]`.
   * @param positive Positive item rows.
   * @param negative Negative item rows.
   * @param rows Batch size.
   * @param cols Width.
   * @param epsilon `ε` (MSCA 0; MMRec's LightGCN and BPR 1e-10).
   * @returns The loss and the per-row score difference.
   */
  bpr(
    user: Storage,
    positive: Storage,
    negative: Storage,
    rows: number,
    cols: number,
    epsilon: number,
  ): BprForward;

  /**
   * Gradient of {@linkcode Backend.bpr}. With
   * `c_b = −g σ'(d_b) / ((ε + σ(d_b)) B)`: `∂/∂u = c (p − n)`,
   * `∂/∂p = c u`, `∂/∂n = −c u`.
   *
   * @param user Forward user rows.
   * @param positive Forward positive rows.
   * @param negative Forward negative rows.
   * @param difference The forward's per-row difference.
   * @param grad Gradient with respect to the loss, `[1, 1]`.
   * @param rows Batch size.
   * @param cols Width.
   * @param epsilon The forward's `ε`.
   * @returns Gradients for the three inputs.
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
  ): { user: Storage; positive: Storage; negative: Storage };

  // Fused pieces of MSCA's forward pass (spec 5).

  /**
   * The gate of a modality view after its linear product:
   * `f = E ⊙ σ(Z + b)`, with `Z = T_m(F_m) W_gᵀ` computed by
   * {@linkcode Backend.matmul}.
   *
   * @param item Item embeddings `E_i`, `[rows, cols]`.
   * @param preactivation The gate's product `Z`, `[rows, cols]`.
   * @param bias Gate bias `b_g`, `[1, cols]`.
   * @param rows Items.
   * @param cols Width `d`.
   * @returns `f`, `[rows, cols]`.
   */
  gatedProjection(
    item: Storage,
    preactivation: Storage,
    bias: Storage,
    rows: number,
    cols: number,
  ): Storage;

  /**
   * Gradient of {@linkcode Backend.gatedProjection}. With
   * `s = σ(Z + b)`: `∂/∂E = g s` and `∂/∂Z = g E s (1 − s)` (the bias
   * gradient is the column sum of the latter).
   *
   * @param item The forward `E_i`.
   * @param preactivation The forward `Z`.
   * @param bias The forward `b_g`.
   * @param grad Gradient with respect to `f`.
   * @param rows Items.
   * @param cols Width.
   * @returns Gradients with respect to `E_i` and `Z`.
   */
  gatedProjectionBackward(
    item: Storage,
    preactivation: Storage,
    bias: Storage,
    grad: Storage,
    rows: number,
    cols: number,
  ): { item: Storage; preactivation: Storage };

  /**
   * Attention fusion of `V` views (1 to 3) after the query's linear
   * product: per row `r` and view `v`, `q_v = w₂ · tanh(Z_v + b₁)`,
   * `a = softmax_v(q)`, and `Ê = Σ_v x_v − Σ_v a_v x_v`.
   *
   * @param views The views stacked `[x_1; …; x_V]`, `[V · rows, cols]`.
   * @param preactivation `Z = views · W₁ᵀ`, `[V · rows, cols]`.
   * @param bias `b₁`, `[1, cols]`.
   * @param queryVector `w₂`, `[1, cols]`.
   * @param rows Rows of one view.
   * @param cols Width `d`.
   * @param viewCount `V`.
   * @returns `Ê` (`[rows, cols]`) and the weights `a` (`[rows, V]`).
   */
  attentionFusion(
    views: Storage,
    preactivation: Storage,
    bias: Storage,
    queryVector: Storage,
    rows: number,
    cols: number,
    viewCount: number,
  ): { fused: Storage; attention: Storage };

  /**
   * Gradient of {@linkcode Backend.attentionFusion}, row by row. With
   * `h_v = tanh(Z_v + b₁)`, `γ_v = −g · x_v` and
   * `δ_v = a_v (γ_v − Σ_u a_u γ_u)`: `∂/∂x_v = (1 − a_v) g`,
   * `∂/∂Z_v = δ_v w₂ ⊙ (1 − h_v²)`, and each row's share of `∂/∂w₂`,
   * `Σ_v δ_v h_v` (summed over rows by the caller, like `∂/∂b₁`).
   *
   * @param views The forward views, stacked.
   * @param preactivation The forward `Z`.
   * @param bias The forward `b₁`.
   * @param queryVector The forward `w₂`.
   * @param attention The forward weights `a`, `[rows, V]`.
   * @param grad Gradient with respect to `Ê`, `[rows, cols]`.
   * @param rows Rows of one view.
   * @param cols Width.
   * @param viewCount `V`.
   * @returns `∂/∂views` and `∂/∂Z` (`[V · rows, cols]`), and the rows of
   *   `∂/∂w₂` (`[rows, cols]`).
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
  ): { views: Storage; preactivation: Storage; queryVectorRows: Storage };

  // Optimiser.

  /**
   * One Adam update in a single pass, in place (PyTorch semantics):
   * `m ← m + (1 − β₁)(g − m)`, `v ← β₂ v + (1 − β₂) g²`,
   * `θ ← θ − (lr / c₁) m / (sqrt(v) / sqrt(c₂) + ε)`.
   *
   * @param parameter Parameter values `θ`, updated in place.
   * @param grad Gradient `g`.
   * @param firstMoment `m`, updated in place.
   * @param secondMoment `v`, updated in place.
   * @param step Hyper-parameters and bias corrections of this step.
   */
  adam(
    parameter: Storage,
    grad: Storage,
    firstMoment: Storage,
    secondMoment: Storage,
    step: AdamStep,
  ): void;
}
