/**
 * A kNN worker: computes row ranges of similarity blocks with
 * {@linkcode cpuDotProductInto} on memory shared with the main thread.
 * Started by {@linkcode createWorkerDotProductBlock}; messages are
 * described in `knn_workers.ts`.
 *
 * @module
 */

import type { FeatureTable } from "../data/dataset.ts";
import { cpuDotProductInto } from "./knn.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
}

const scope = self as unknown as WorkerScope;
let table: FeatureTable | null = null;

scope.onmessage = (event: MessageEvent) => {
  const message = event.data;
  if (message.type === "table") {
    table = {
      rows: message.rows,
      cols: message.cols,
      data: new Float32Array(message.buffer),
    };
    return;
  }
  try {
    if (table === null) {
      throw new Error("kNN worker got a block before a table");
    }
    cpuDotProductInto(
      table,
      message.rowStart,
      message.rowEnd,
      message.columnStart,
      message.columnEnd,
      new Float64Array(message.output),
      message.outputOffset,
    );
    scope.postMessage({ id: message.id });
  } catch (error) {
    scope.postMessage({ id: message.id, error: String(error) });
  }
};
