/**
 * Micro-benchmark of the CPU backend's hot kernels at MSCA's Baby sizes:
 * the image projection's matmul with a 4096-long dimension (forward and
 * both backward products) and the CSR product of the normalised user-item
 * graph times a 64-wide embedding table. Prints GFLOP/s per kernel.
 *
 * Run: `deno run src/engine/bench_engine.ts [--repeats 5]`
 *
 * @module
 */

import { cpuUsage } from "node:process";
import { Random } from "../random.ts";
import type { CsrMatrix } from "../graph/csr.ts";
import { cpuBackend } from "./cpu.ts";
import type { Storage } from "./backend.ts";

/** One benchmark line. */
export interface BenchResult {
  /** What was measured. */
  name: string;
  /** Floating-point operations per call. */
  flops: number;
  /** Median seconds per call. */
  seconds: number;
  /** `flops / seconds / 1e9`. */
  gflops: number;
  /**
   * Median process CPU seconds per call (user + system), which a machine
   * shared with other work inflates less than wall time.
   */
  cpuSeconds: number;
  /** `flops / cpuSeconds / 1e9`. */
  cpuGflops: number;
}

function randomStorage(count: number, random: Random): Storage {
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = random.nextFloat() - 0.5;
  return cpuBackend.uploadFloat32(values);
}

function measure(
  name: string,
  flops: number,
  repeats: number,
  call: () => Storage,
): BenchResult {
  cpuBackend.free(call());
  const times: number[] = [];
  const cpuTimes: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const start = performance.now();
    const cpuStart = cpuUsage();
    const out = call();
    const cpuEnd = cpuUsage(cpuStart);
    times.push((performance.now() - start) / 1000);
    cpuTimes.push((cpuEnd.user + cpuEnd.system) / 1e6);
    cpuBackend.free(out);
  }
  const seconds = median(times);
  const cpuSeconds = median(cpuTimes);
  return {
    name,
    flops,
    seconds,
    gflops: flops / seconds / 1e9,
    cpuSeconds,
    cpuGflops: flops / cpuSeconds / 1e9,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * The normalised user-item graph of spec 4.1 for randomly placed distinct
 * train pairs: `A[u, U+i] = A[U+i, u] = 1 / sqrt(deg(u) deg(i))`.
 *
 * @param users `U`.
 * @param items `I`.
 * @param interactions Number of distinct train pairs.
 * @param random The generator.
 * @returns The `N × N` CSR matrix, `N = U + I`.
 */
function randomNormalizedGraph(
  users: number,
  items: number,
  interactions: number,
  random: Random,
): CsrMatrix {
  const pairs = new Set<number>();
  while (pairs.size < interactions) {
    pairs.add(random.nextInt(users) * items + random.nextInt(items));
  }
  const nodes = users + items;
  const degree = new Int32Array(nodes);
  for (const pair of pairs) {
    degree[Math.floor(pair / items)]++;
    degree[users + (pair % items)]++;
  }
  const offsets = new Int32Array(nodes + 1);
  for (let v = 0; v < nodes; v++) offsets[v + 1] = offsets[v] + degree[v];
  const fill = offsets.slice(0, nodes);
  const columns = new Int32Array(2 * interactions);
  const values = new Float32Array(2 * interactions);
  for (const pair of [...pairs].sort((a, b) => a - b)) {
    const user = Math.floor(pair / items);
    const item = users + (pair % items);
    const weight = 1 / Math.sqrt(degree[user] * degree[item]);
    columns[fill[user]] = item;
    values[fill[user]++] = weight;
    columns[fill[item]] = user;
    values[fill[item]++] = weight;
  }
  return {
    rows: nodes,
    cols: nodes,
    rowOffsets: offsets,
    columnIndices: columns,
    values,
  };
}

/**
 * Runs every measurement.
 *
 * @param repeats Timed calls per kernel (the median is reported).
 * @returns One result per kernel.
 */
export function runEngineBenchmark(repeats = 5): BenchResult[] {
  const random = new Random(2026);
  const [items, features, dimension] = [7050, 4096, 64];
  const users = 19445;
  const imageFeatures = randomStorage(items * features, random);
  const weight = randomStorage(dimension * features, random);
  const weightColumns = randomStorage(features * dimension, random);
  const outputGrad = randomStorage(items * dimension, random);
  const productFlops = 2 * items * features * dimension;
  const results = [
    measure(
      "matmul F·Wᵀ [7050×4096]·[64×4096]ᵀ (Linear forward)",
      productFlops,
      repeats,
      () =>
        cpuBackend.matmul(
          imageFeatures,
          weight,
          items,
          features,
          dimension,
          false,
          true,
        ),
    ),
    measure(
      "matmul F·B [7050×4096]·[4096×64]",
      productFlops,
      repeats,
      () =>
        cpuBackend.matmul(
          imageFeatures,
          weightColumns,
          items,
          features,
          dimension,
          false,
          false,
        ),
    ),
    measure(
      "matmul G·W [7050×64]·[64×4096] (grad of F)",
      productFlops,
      repeats,
      () =>
        cpuBackend.matmul(
          outputGrad,
          weight,
          items,
          dimension,
          features,
          false,
          false,
        ),
    ),
    measure(
      "matmul Gᵀ·F [7050×64]ᵀ·[7050×4096] (grad of W)",
      productFlops,
      repeats,
      () =>
        cpuBackend.matmul(
          outputGrad,
          imageFeatures,
          dimension,
          items,
          features,
          true,
          false,
        ),
    ),
  ];
  const graph = randomNormalizedGraph(users, items, 118551, random);
  const sparse = cpuBackend.uploadCsr(graph);
  const embeddings = randomStorage((users + items) * dimension, random);
  results.push(
    measure(
      `spmm A·X [${users + items}×${users + items}, ${sparse.nonZeros} nnz]` +
        `·[${users + items}×64]`,
      2 * sparse.nonZeros * dimension,
      repeats * 4,
      () => cpuBackend.spmm(sparse, embeddings, dimension),
    ),
  );
  return results;
}

if (import.meta.main) {
  const index = Deno.args.indexOf("--repeats");
  const repeats = index >= 0 ? Number(Deno.args[index + 1]) : 5;
  if (!(Number.isInteger(repeats) && repeats > 0)) {
    throw new RangeError(`--repeats needs a positive integer, got ${repeats}`);
  }
  for (const result of runEngineBenchmark(repeats)) {
    console.log(
      `${result.name}: ${(result.seconds * 1000).toFixed(1)} ms wall, ` +
        `${result.gflops.toFixed(2)} GFLOP/s; ` +
        `${(result.cpuSeconds * 1000).toFixed(1)} ms CPU, ` +
        `${result.cpuGflops.toFixed(2)} GFLOP/s per CPU second`,
    );
  }
}
