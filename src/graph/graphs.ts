/**
 * The graphs of spec section 4, built once from the train split and the
 * initial features, as CSR matrices with float32 values and ascending
 * columns within each row. No items × items dense matrix is ever formed:
 * beyond the feature tables, memory stays near O(items × k + interactions).
 *
 * @module
 */

import type { Dataset, FeatureTable, Modality } from "../data/dataset.ts";
import type { CsrMatrix } from "./csr.ts";
import { cachedGraph, GRAPH_CACHE_VERSION, graphCacheKey } from "./cache.ts";
import { type DotProductBlock, modalityGraph } from "./knn.ts";
import {
  createWorkerDotProductBlock,
  workersPermitted,
} from "./knn_workers.ts";

export {
  createWorkerDotProductBlock,
  withWorkerDotProduct,
  type WorkerDotProduct,
  workersPermitted,
} from "./knn_workers.ts";
export {
  cpuDotProductBlock,
  cpuDotProductInto,
  type DotProductBlock,
  modalityGraph,
  type ModalityGraphOptions,
  normalizeFeatureRows,
} from "./knn.ts";

/** The distinct train items of each user (or users of each item) as CSR. */
export interface Adjacency {
  /** `count + 1` offsets into `neighbours`. */
  offsets: Int32Array;
  /** Neighbours of each row, ascending, without repeats. */
  neighbours: Int32Array;
}

/**
 * The distinct train items of every user, sorted, from the train split.
 * A pair that occurs twice in the train split counts once (the reference
 * builds its graphs from a 0/1 matrix).
 *
 * @param dataset The dataset.
 * @returns User → items adjacency (`userCount` rows).
 * @throws {RangeError} When a train ID is outside `0 .. count - 1`.
 * @example
 * ```ts ignore
 * const { offsets, neighbours } = trainUserItems(dataset);
 * ```
 */
export function trainUserItems(dataset: Dataset): Adjacency {
  const { userCount, itemCount } = dataset;
  const { users, items } = dataset.train;
  const counts = new Int32Array(userCount + 1);
  for (let row = 0; row < users.length; row++) {
    const user = users[row], item = items[row];
    if (!(user >= 0 && user < userCount && item >= 0 && item < itemCount)) {
      throw new RangeError(
        `Train row ${row} has user ${user}, item ${item}; expected user in ` +
          `0..${userCount - 1} and item in 0..${itemCount - 1}`,
      );
    }
    counts[user + 1]++;
  }
  for (let u = 0; u < userCount; u++) counts[u + 1] += counts[u];
  const filled = counts.slice(0, userCount);
  const all = new Int32Array(users.length);
  for (let row = 0; row < users.length; row++) {
    all[filled[users[row]]++] = items[row];
  }

  const offsets = new Int32Array(userCount + 1);
  let size = 0;
  for (let u = 0; u < userCount; u++) {
    const list = all.subarray(counts[u], counts[u + 1]).sort();
    for (let e = 0; e < list.length; e++) {
      if (e === 0 || list[e] !== list[e - 1]) all[size++] = list[e];
    }
    offsets[u + 1] = size;
  }
  return { offsets, neighbours: all.slice(0, size) };
}

/**
 * Transposes an adjacency (user → items becomes item → users); rows of the
 * result are ascending because the input rows are visited in order.
 *
 * @param adjacency The adjacency to transpose.
 * @param columns Number of rows of the result.
 * @returns The transposed adjacency.
 * @example
 * ```ts ignore
 * const itemUsers = transposeAdjacency(trainUserItems(dataset), dataset.itemCount);
 * ```
 */
export function transposeAdjacency(
  adjacency: Adjacency,
  columns: number,
): Adjacency {
  const { offsets, neighbours } = adjacency;
  const rows = offsets.length - 1;
  const result = new Int32Array(columns + 1);
  for (let e = 0; e < neighbours.length; e++) result[neighbours[e] + 1]++;
  for (let c = 0; c < columns; c++) result[c + 1] += result[c];
  const filled = result.slice(0, columns);
  const transposed = new Int32Array(neighbours.length);
  for (let r = 0; r < rows; r++) {
    for (let e = offsets[r]; e < offsets[r + 1]; e++) {
      transposed[filled[neighbours[e]]++] = r;
    }
  }
  return { offsets: result, neighbours: transposed };
}

/** Options of the user–item graphs. */
export interface AdjacencyOptions {
  /**
   * Added to every degree before the power -1/2. MSCA uses 0 (a zero
   * degree gives 0, spec 4.1); LightGCN uses 1e-7 (baselines.md).
   */
  degreeOffset?: number;
}

function inverseSquareRoots(
  degrees: Int32Array,
  degreeOffset: number,
): Float64Array {
  const result = new Float64Array(degrees.length);
  for (let n = 0; n < degrees.length; n++) {
    const power = Math.pow(degrees[n] + degreeOffset, -0.5);
    result[n] = Number.isFinite(power) ? power : 0;
  }
  return result;
}

function degreesOf(adjacency: Adjacency): Int32Array {
  const rows = adjacency.offsets.length - 1;
  const degrees = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    degrees[r] = adjacency.offsets[r + 1] - adjacency.offsets[r];
  }
  return degrees;
}

/**
 * The normalised user–item graph `A` (N × N, users first) of spec 4.1:
 * `A[u, U+i] = A[U+i, u] = (deg(u) + ε)^(-1/2) (deg(i) + ε)^(-1/2)` for
 * every distinct train pair, with ε = `degreeOffset` and an infinite power
 * giving 0.
 *
 * @param dataset The dataset (train split).
 * @param options `degreeOffset` (0 for MSCA, 1e-7 for LightGCN).
 * @returns The symmetric N × N graph.
 * @example
 * ```ts ignore
 * const adjacency = normalizedAdjacency(dataset);
 * adjacency.rows === dataset.userCount + dataset.itemCount; // true
 * ```
 */
export function normalizedAdjacency(
  dataset: Dataset,
  options: AdjacencyOptions = {},
): CsrMatrix {
  const degreeOffset = options.degreeOffset ?? 0;
  const { userCount, itemCount } = dataset;
  const userItems = trainUserItems(dataset);
  const itemUsers = transposeAdjacency(userItems, itemCount);
  const userFactor = inverseSquareRoots(degreesOf(userItems), degreeOffset);
  const itemFactor = inverseSquareRoots(degreesOf(itemUsers), degreeOffset);

  const nodes = userCount + itemCount;
  const edges = userItems.neighbours.length;
  const rowOffsets = new Int32Array(nodes + 1);
  const columnIndices = new Int32Array(2 * edges);
  const values = new Float32Array(2 * edges);
  let e = 0;
  for (let u = 0; u < userCount; u++) {
    for (let p = userItems.offsets[u]; p < userItems.offsets[u + 1]; p++) {
      const item = userItems.neighbours[p];
      columnIndices[e] = userCount + item;
      values[e++] = userFactor[u] * itemFactor[item];
    }
    rowOffsets[u + 1] = e;
  }
  for (let i = 0; i < itemCount; i++) {
    for (let p = itemUsers.offsets[i]; p < itemUsers.offsets[i + 1]; p++) {
      const user = itemUsers.neighbours[p];
      columnIndices[e] = user;
      values[e++] = userFactor[user] * itemFactor[i];
    }
    rowOffsets[userCount + i + 1] = e;
  }
  return { rows: nodes, cols: nodes, rowOffsets, columnIndices, values };
}

/**
 * LightGCN's user–item graph: {@linkcode normalizedAdjacency} with 1e-7
 * added to every degree before the power (baselines.md).
 *
 * @param dataset The dataset (train split).
 * @returns The symmetric N × N graph.
 * @example
 * ```ts ignore
 * const adjacency = lightGcnAdjacency(dataset);
 * ```
 */
export function lightGcnAdjacency(dataset: Dataset): CsrMatrix {
  return normalizedAdjacency(dataset, { degreeOffset: 1e-7 });
}

/**
 * `R̂`, the user → item block (U × I) of {@linkcode normalizedAdjacency}:
 * `R̂[u, i] = deg(u)^(-1/2) deg(i)^(-1/2)` (spec 4.1, 5).
 *
 * @param dataset The dataset (train split).
 * @param options `degreeOffset`, as for the full graph.
 * @returns The U × I graph.
 * @example
 * ```ts ignore
 * const userItem = userItemBlock(dataset);
 * ```
 */
export function userItemBlock(
  dataset: Dataset,
  options: AdjacencyOptions = {},
): CsrMatrix {
  const degreeOffset = options.degreeOffset ?? 0;
  const { userCount, itemCount } = dataset;
  const userItems = trainUserItems(dataset);
  const itemDegrees = new Int32Array(itemCount);
  for (const item of userItems.neighbours) itemDegrees[item]++;
  const userFactor = inverseSquareRoots(degreesOf(userItems), degreeOffset);
  const itemFactor = inverseSquareRoots(itemDegrees, degreeOffset);

  const values = new Float32Array(userItems.neighbours.length);
  for (let u = 0; u < userCount; u++) {
    for (let p = userItems.offsets[u]; p < userItems.offsets[u + 1]; p++) {
      values[p] = userFactor[u] * itemFactor[userItems.neighbours[p]];
    }
  }
  return {
    rows: userCount,
    cols: itemCount,
    rowOffsets: userItems.offsets,
    columnIndices: userItems.neighbours,
    values,
  };
}

/**
 * The structural (co-occurrence) graph `A_s` of spec 4.2. `C = Rᵀ R` is
 * counted one item at a time through its users' item lists, so only one
 * row of `C` exists at once. Item `i` keeps the `min(k, #)` candidates
 * `j ≠ i` with `C[i, j] > 1` of largest count (ties: smaller `j` first)
 * plus its self loop; with `r_i` = entries of row `i` + 1e-7,
 * `A_s[i, j] = r_i^(-1/2) r_j^(-1/2)`. The graph is not symmetric.
 *
 * @param dataset The dataset (train split).
 * @param k Neighbours per item (`knn_k`).
 * @returns The I × I graph.
 * @throws {RangeError} When `k` is not a positive integer.
 * @example
 * ```ts ignore
 * const structural = structuralGraph(dataset, 10);
 * ```
 */
export function structuralGraph(dataset: Dataset, k: number): CsrMatrix {
  if (!Number.isInteger(k) || k < 1) {
    throw new RangeError(`knn_k must be a positive integer, got ${k}`);
  }
  const itemCount = dataset.itemCount;
  const userItems = trainUserItems(dataset);
  const itemUsers = transposeAdjacency(userItems, itemCount);

  const counts = new Int32Array(itemCount);
  const touched = new Int32Array(itemCount);
  const rowOffsets = new Int32Array(itemCount + 1);
  const kept: number[] = [];
  const rows: Int32Array[] = [];
  const candidates: number[] = [];
  for (let i = 0; i < itemCount; i++) {
    let touchedCount = 0;
    for (let p = itemUsers.offsets[i]; p < itemUsers.offsets[i + 1]; p++) {
      const user = itemUsers.neighbours[p];
      for (
        let q = userItems.offsets[user];
        q < userItems.offsets[user + 1];
        q++
      ) {
        const j = userItems.neighbours[q];
        if (counts[j]++ === 0) touched[touchedCount++] = j;
      }
    }

    candidates.length = 0;
    for (let t = 0; t < touchedCount; t++) {
      const j = touched[t];
      if (j !== i && counts[j] > 1) candidates.push(j);
    }
    candidates.sort((a, b) => counts[b] - counts[a] || a - b);
    kept.length = 0;
    kept.push(i);
    for (let c = 0; c < Math.min(k, candidates.length); c++) {
      kept.push(candidates[c]);
    }
    for (let t = 0; t < touchedCount; t++) counts[touched[t]] = 0;

    rows.push(Int32Array.from(kept).sort());
    rowOffsets[i + 1] = rowOffsets[i] + kept.length;
  }

  const columnIndices = new Int32Array(rowOffsets[itemCount]);
  const inverseRoot = new Float64Array(itemCount);
  for (let i = 0; i < itemCount; i++) {
    columnIndices.set(rows[i], rowOffsets[i]);
    inverseRoot[i] = Math.pow(rows[i].length + 1e-7, -0.5);
  }
  const values = new Float32Array(columnIndices.length);
  for (let i = 0; i < itemCount; i++) {
    for (let e = rowOffsets[i]; e < rowOffsets[i + 1]; e++) {
      values[e] = inverseRoot[i] * inverseRoot[columnIndices[e]];
    }
  }
  return {
    rows: itemCount,
    cols: itemCount,
    rowOffsets,
    columnIndices,
    values,
  };
}

/** The models whose graphs {@linkcode buildGraphs} knows. */
export const GRAPH_MODEL_KINDS = ["MSCA", "LightGCN", "BPR"] as const;

/** A model name of {@linkcode GRAPH_MODEL_KINDS}. */
export type GraphModelKind = typeof GRAPH_MODEL_KINDS[number];

/** The name of one graph in progress reports and cache keys. */
export type GraphName =
  | "adjacency"
  | "user_item"
  | "structural"
  | Modality;

/** One progress report of {@linkcode buildGraphs}. */
export interface GraphProgress {
  /** Which graph. */
  graph: GraphName;
  /** `cached`: read from disk; `building`: partial; `built`: finished. */
  stage: "cached" | "building" | "built";
  /** Fraction of this graph done, 0..1. */
  fraction: number;
  /** Seconds since this graph started (reading or building). */
  seconds: number;
}

/** Options of {@linkcode buildGraphs}. */
export interface BuildGraphsOptions {
  /** Neighbours per item of the structural and modality graphs. */
  knn_k: number;
  /**
   * Cache root; graphs go to `<cacheDir>/graphs/<hash>.bin`. `null`
   * disables the cache. Never point it into the data folder.
   */
  cacheDir: string | null;
  /** Which model's graphs to build. */
  modelKind: GraphModelKind;
  /** Receives progress reports; nothing is printed. */
  onProgress?: (progress: GraphProgress) => void;
  /** A GPU block product for the modality kNN (see `DotProductBlock`). */
  dotProductBlock?: DotProductBlock;
  /**
   * A label of the block product, part of the modality graphs' cache key
   * (a GPU's float32 products may break near-ties differently). Default:
   * `"cpu"` without `dotProductBlock`, `"custom"` with one.
   */
  dotProductBlockName?: string;
  /** Rows per kNN block (default 256). */
  blockRows?: number;
  /**
   * Web Workers for the CPU kNN block product (ignored with
   * `dotProductBlock`). 0 computes in this thread. Default: the CPU count
   * (at most 8) when a modality has at least 1,024 items and the worker
   * module may be read (`--allow-read`), else 0. Results are identical
   * either way.
   */
  knnWorkers?: number;
}

/** The graphs a model needs; absent ones are not used by that model. */
export interface Graphs {
  /** N × N user–item graph: MSCA's `A`, or LightGCN's variant. */
  adjacency?: CsrMatrix;
  /** `R̂`, the U × I block of MSCA's `A`. */
  userItem?: CsrMatrix;
  /** `A_s`, I × I. */
  structural?: CsrMatrix;
  /** `A_m` of each modality present in the dataset. */
  modality: Partial<Record<Modality, CsrMatrix>>;
}

/**
 * Builds (or reads from the disk cache) every graph a model needs: for
 * MSCA `A`, `R̂`, `A_s` and `A_m` of each modality present; for LightGCN
 * its `A`; for BPR nothing. Each cache key hashes the builder version, the
 * graph kind, its parameters and its inputs (the distinct train pairs and
 * counts, or the feature bytes).
 *
 * @param dataset The dataset.
 * @param options `knn_k`, `cacheDir`, `modelKind`, optional progress
 * callback and GPU block product.
 * @returns The graphs.
 * @throws {RangeError} On an unknown `modelKind` or a bad `knn_k`.
 * @example
 * ```ts ignore
 * const graphs = await buildGraphs(dataset, {
 *   knn_k: 10, cacheDir: "saved", modelKind: "MSCA",
 *   onProgress: (p) => console.log(p.graph, p.stage, p.fraction),
 * });
 * ```
 */
export async function buildGraphs(
  dataset: Dataset,
  options: BuildGraphsOptions,
): Promise<Graphs> {
  const { knn_k: k, cacheDir, modelKind } = options;
  if (!(GRAPH_MODEL_KINDS as readonly string[]).includes(modelKind)) {
    throw new RangeError(
      `Unknown model "${modelKind}" for graph building; expected one of ` +
        GRAPH_MODEL_KINDS.join(", "),
    );
  }
  if (modelKind === "MSCA" && (!Number.isInteger(k) || k < 1)) {
    throw new RangeError(`knn_k must be a positive integer, got ${k}`);
  }
  const graphs: Graphs = { modality: {} };
  if (modelKind === "BPR") return graphs;

  const userItems = trainUserItems(dataset);
  const interactionParts = [
    dataset.userCount,
    dataset.itemCount,
    userItems.offsets,
    userItems.neighbours,
  ];
  const report = options.onProgress ?? (() => {});
  const one = async (
    graph: GraphName,
    parts: (string | number | ArrayBufferView)[],
    build: (
      progress: (fraction: number) => void,
    ) => CsrMatrix | Promise<CsrMatrix>,
  ): Promise<CsrMatrix> => {
    const start = performance.now();
    const seconds = () => (performance.now() - start) / 1000;
    const key = graphCacheKey([
      `graph-v${GRAPH_CACHE_VERSION}`,
      graph,
      ...parts,
    ]);
    const result = await cachedGraph(cacheDir, key, () => {
      const progress = (fraction: number) =>
        report({ graph, stage: "building", fraction, seconds: seconds() });
      progress(0);
      return build(progress);
    });
    report({
      graph,
      stage: result.hit ? "cached" : "built",
      fraction: 1,
      seconds: seconds(),
    });
    return result.graph;
  };

  if (modelKind === "LightGCN") {
    graphs.adjacency = await one(
      "adjacency",
      ["degree_offset", 1e-7, ...interactionParts],
      () => lightGcnAdjacency(dataset),
    );
    return graphs;
  }

  graphs.adjacency = await one(
    "adjacency",
    ["degree_offset", 0, ...interactionParts],
    () => normalizedAdjacency(dataset),
  );
  graphs.userItem = await one(
    "user_item",
    ["degree_offset", 0, ...interactionParts],
    () => userItemBlock(dataset),
  );
  graphs.structural = await one(
    "structural",
    ["knn_k", k, ...interactionParts],
    () => structuralGraph(dataset, k),
  );
  const blockProductName = options.dotProductBlockName ??
    (options.dotProductBlock === undefined ? "cpu" : "custom");
  for (const modality of ["image", "text"] as const) {
    const features: FeatureTable | undefined = dataset.features[modality];
    if (features === undefined) continue;
    graphs.modality[modality] = await one(
      modality,
      [
        "knn_k",
        k,
        "block_product",
        blockProductName,
        features.rows,
        features.cols,
        features.data,
      ],
      (progress) =>
        withBlockProduct(
          options,
          features.rows,
          (dotProductBlock) =>
            modalityGraph(features, k, {
              blockRows: options.blockRows,
              dotProductBlock,
              onProgress: progress,
            }),
        ),
    );
  }
  return graphs;
}

/** Runs `task` with the block product that `options` asks for. */
async function withBlockProduct<T>(
  options: BuildGraphsOptions,
  items: number,
  task: (dotProductBlock: DotProductBlock | undefined) => Promise<T>,
): Promise<T> {
  if (options.dotProductBlock !== undefined) {
    return await task(options.dotProductBlock);
  }
  const workers = options.knnWorkers ??
    (items >= 1024 && workersPermitted()
      ? Math.min(8, navigator.hardwareConcurrency)
      : 0);
  if (!Number.isInteger(workers) || workers < 0) {
    throw new RangeError(
      `knnWorkers must be a non-negative integer, got ${workers}`,
    );
  }
  if (workers === 0) return await task(undefined);
  const pool = createWorkerDotProductBlock(workers);
  try {
    return await task(pool.dotProductBlock);
  } finally {
    pool.close();
  }
}
