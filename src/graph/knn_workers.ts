/**
 * A {@linkcode DotProductBlock} that spreads each block's rows over Web
 * Workers, so the kNN of the modality graphs uses every CPU core. The
 * unit-length table (already on a `SharedArrayBuffer`, see
 * `normalizeFeatureRows`) and each output block live in shared memory;
 * workers get row ranges and answer when done. Results are bit-identical
 * to {@linkcode cpuDotProductBlock}.
 *
 * Messages to a worker: `{type: "table", rows, cols, buffer}` once per
 * table, then `{type: "block", id, rowStart, rowEnd, columnStart,
 * columnEnd, output, outputOffset}`; it answers `{id}` or `{id, error}`.
 *
 * @module
 */

import type { FeatureTable } from "../data/dataset.ts";
import type { DotProductBlock } from "./knn.ts";

/** A pool of kNN workers; `close()` ends them. */
export interface WorkerDotProduct {
  /** The block product to pass as `dotProductBlock`. */
  dotProductBlock: DotProductBlock;
  /** Number of workers. */
  workerCount: number;
  /** Terminates the workers; the block product fails afterwards. */
  close(): void;
}

/**
 * Whether this process may start kNN workers: a worker module on disk needs
 * read permission for its file.
 *
 * @returns True when {@linkcode createWorkerDotProductBlock} can start.
 * @example
 * ```ts ignore
 * const workers = workersPermitted() ? navigator.hardwareConcurrency : 0;
 * ```
 */
export function workersPermitted(): boolean {
  const url = new URL("./knn_worker.ts", import.meta.url);
  if (url.protocol !== "file:") return true;
  return Deno.permissions.querySync({ name: "read", path: url }).state ===
    "granted";
}

/**
 * Starts `workerCount` workers and returns a block product that splits
 * every block's rows between them. Call `close()` when the graphs are
 * built (or use {@linkcode withWorkerDotProduct}).
 *
 * The pool writes into two output buffers in turn: a returned block stays
 * valid until the block product has been called twice more (as
 * `modalityGraph` uses it: one block consumed while the next is computed).
 *
 * @param workerCount Number of workers (default: the CPU count).
 * @returns The block product and its pool.
 * @throws {RangeError} When `workerCount` is not a positive integer.
 * @throws {Deno.errors.NotCapable} When the worker module may not be read
 * (no `--allow-read`).
 * @example
 * ```ts ignore
 * const pool = createWorkerDotProductBlock(2);
 * try {
 *   const graph = await modalityGraph(features, 10, pool);
 * } finally {
 *   pool.close();
 * }
 * ```
 */
export function createWorkerDotProductBlock(
  workerCount: number = navigator.hardwareConcurrency,
): WorkerDotProduct {
  if (!Number.isInteger(workerCount) || workerCount < 1) {
    throw new RangeError(
      `The kNN worker count must be a positive integer, got ${workerCount}`,
    );
  }
  const url = new URL("./knn_worker.ts", import.meta.url);
  if (!workersPermitted()) {
    throw new Deno.errors.NotCapable(
      `kNN workers need read access to ${url.pathname}; run with ` +
        `--allow-read, or set knnWorkers to 0 to compute in this thread`,
    );
  }
  let failure: Error | null = null;
  const workers = Array.from(
    { length: workerCount },
    () => new Worker(url, { type: "module" }),
  );
  const waiting = new Map<
    number,
    { resolve: () => void; reject: (error: Error) => void }
  >();
  for (const worker of workers) {
    worker.onmessage = (event: MessageEvent) => {
      const { id, error } = event.data;
      const entry = waiting.get(id)!;
      waiting.delete(id);
      if (error === undefined) entry.resolve();
      else entry.reject(new Error(`kNN worker failed: ${error}`));
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      failure = new Error(`kNN worker failed: ${event.message}`);
      for (const entry of waiting.values()) entry.reject(failure);
      waiting.clear();
    };
  }

  // Two output buffers used in turn: enough for modalityGraph, which
  // consumes block b while block b + 1 is computed. Fresh shared buffers
  // per block are reclaimed too late by the garbage collector.
  const outputs: (SharedArrayBuffer | null)[] = [null, null];
  let turn = 0;
  const nextOutput = (length: number): SharedArrayBuffer => {
    turn = 1 - turn;
    const bytes = length * Float64Array.BYTES_PER_ELEMENT;
    let buffer = outputs[turn];
    if (buffer === null || buffer.byteLength < bytes) {
      buffer = outputs[turn] = new SharedArrayBuffer(bytes);
    } else {
      new Float64Array(buffer, 0, length).fill(0);
    }
    return buffer;
  };

  let nextId = 0;
  let closed = false;
  let currentTable: FeatureTable | null = null;
  const dotProductBlock: DotProductBlock = async (
    normalized,
    rowStart,
    rowEnd,
    columnStart,
    columnEnd,
  ) => {
    if (closed) throw new Error("The kNN worker pool is closed");
    if (failure !== null) throw failure;
    if (normalized !== currentTable) {
      let data = normalized.data;
      if (!(data.buffer instanceof SharedArrayBuffer)) {
        const shared = new Float32Array(new SharedArrayBuffer(data.byteLength));
        shared.set(data);
        data = shared;
      }
      for (const worker of workers) {
        worker.postMessage({
          type: "table",
          rows: normalized.rows,
          cols: normalized.cols,
          buffer: data.buffer,
        });
      }
      currentTable = normalized;
    }

    const width = columnEnd - columnStart;
    const rows = rowEnd - rowStart;
    const output = nextOutput(rows * width);
    // Row ranges in multiples of 4, the kernel's tile height.
    const share = Math.ceil(rows / workerCount / 4) * 4;
    const jobs: Promise<void>[] = [];
    for (let w = 0; w < workerCount; w++) {
      const start = rowStart + w * share;
      const end = Math.min(rowEnd, start + share);
      if (start >= end) break;
      const id = nextId++;
      jobs.push(
        new Promise<void>((resolve, reject) => {
          waiting.set(id, { resolve, reject });
          workers[w].postMessage({
            type: "block",
            id,
            rowStart: start,
            rowEnd: end,
            columnStart,
            columnEnd,
            output,
            outputOffset: (start - rowStart) * width,
          });
        }),
      );
    }
    await Promise.all(jobs);
    return new Float64Array(output, 0, rows * width);
  };

  return {
    dotProductBlock,
    workerCount,
    close() {
      closed = true;
      for (const worker of workers) worker.terminate();
      for (const entry of waiting.values()) {
        entry.reject(new Error("The kNN worker pool was closed"));
      }
      waiting.clear();
    },
  };
}

/**
 * Runs `task` with a worker block product and closes the pool afterwards,
 * even when `task` throws.
 *
 * @param workerCount Number of workers.
 * @param task Receives the block product.
 * @returns What `task` returns.
 * @example
 * ```ts ignore
 * const graph = await withWorkerDotProduct(2, (dotProductBlock) =>
 *   modalityGraph(features, 10, { dotProductBlock })
 * );
 * ```
 */
export async function withWorkerDotProduct<T>(
  workerCount: number,
  task: (dotProductBlock: DotProductBlock) => Promise<T>,
): Promise<T> {
  const pool = createWorkerDotProductBlock(workerCount);
  try {
    return await task(pool.dotProductBlock);
  } finally {
    pool.close();
  }
}
