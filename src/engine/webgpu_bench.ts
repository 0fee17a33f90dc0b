/**
 * Microbenchmark of the WebGPU kernels that dominate MSCA next to the CPU
 * backend, on the same shapes: the three products of the image projection
 * (Baby: 7050 items, 4096-d features, 64-d embeddings), the CSR product of
 * a Baby-sized user–item graph, and full-ranking top-50 for a block of
 * users. Not a test: run it by hand.
 *
 * ```sh
 * deno run --allow-read src/engine/webgpu_bench.ts [--repeats 3] [--quick]
 * ```
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { cpuBackend } from "./cpu.ts";
import { createWebGpuBackend } from "./webgpu.ts";
import { MASKED_SCORE, selectTopK } from "../evaluation.ts";
import type { CsrMatrix } from "../graph/csr.ts";
import { Random } from "../random.ts";

/** One measured kernel on one backend. */
export interface WebGpuBenchResult {
  /** What was run, with its shape. */
  name: string;
  /** `"cpu"` or `"webgpu"`. */
  backend: string;
  /** Mean milliseconds per call (after one warm-up call). */
  milliseconds: number;
  /** Floating-point operations per call (0 where not meaningful). */
  flops: number;
  /** Bytes a call must at least read and write. */
  bytes: number;
}

/** Options of {@linkcode runWebGpuBenchmark}. */
export interface WebGpuBenchOptions {
  /** Timed calls per measurement; default 3. */
  repeats?: number;
  /** Smaller shapes (a quarter of the items and users), for a quick look. */
  quick?: boolean;
}

/**
 * Times matmul, CSR product and top-k on the WebGPU backend and on the CPU
 * backend.
 *
 * @param options Repeats and size.
 * @returns One result per kernel and backend, and the adapter's name.
 * @example
 * ```ts ignore
 * const { results } = await runWebGpuBenchmark({ quick: true });
 * ```
 */
export async function runWebGpuBenchmark(
  options: WebGpuBenchOptions = {},
): Promise<{ adapter: string; results: WebGpuBenchResult[] }> {
  const repeats = options.repeats ?? 3;
  const shrink = options.quick ? 4 : 1;
  const items = Math.round(7050 / shrink);
  const users = Math.round(19445 / shrink);
  const random = new Random(2026);
  const gpu = await createWebGpuBackend();
  const results: WebGpuBenchResult[] = [];
  const backends: Backend[] = [gpu, cpuBackend];

  // The image projection F Wᵀ and its two backward products.
  const features = randomValues(random, items * 4096);
  const weight = randomValues(random, 64 * 4096);
  const gradient = randomValues(random, items * 64);
  const products = [
    {
      name: `F·Wᵀ [${items}×4096]·[4096×64]`,
      left: features,
      right: weight,
      shape: [items, 4096, 64],
      transposes: [false, true],
    },
    {
      name: `dYᵀ·F [64×${items}]·[${items}×4096]`,
      left: gradient,
      right: features,
      shape: [64, items, 4096],
      transposes: [true, false],
    },
    {
      name: `dY·W [${items}×64]·[64×4096]`,
      left: gradient,
      right: weight,
      shape: [items, 64, 4096],
      transposes: [false, false],
    },
  ];
  for (const { name, left, right, shape, transposes } of products) {
    const [m, k, n] = shape;
    const [ta, tb] = transposes;
    for (const backend of backends) {
      const a = backend.uploadFloat32(left);
      const b = backend.uploadFloat32(right);
      const milliseconds = await time(
        backend,
        repeats,
        () => backend.free(backend.matmul(a, b, m, k, n, ta, tb)),
      );
      results.push({
        name: `matmul ${name}`,
        backend: backend.name,
        milliseconds,
        flops: 2 * m * k * n,
        bytes: 4 * (m * k + k * n + m * n),
      });
      backend.free(a);
      backend.free(b);
    }
  }

  // Â X for the normalised user–item graph (spec 4.1), X 64 wide.
  const graph = userItemGraph(random, users, items, 128_000 / shrink);
  const embeddings = randomValues(random, (users + items) * 64);
  for (const backend of backends) {
    const sparse = backend.uploadCsr(graph);
    const x = backend.uploadFloat32(embeddings);
    const milliseconds = await time(
      backend,
      repeats,
      () => backend.free(backend.spmm(sparse, x, 64)),
    );
    const nonZeros = graph.values.length;
    results.push({
      name: `spmm [${users + items}² graph, ${nonZeros} entries]·[·×64]`,
      backend: backend.name,
      milliseconds,
      flops: 2 * nonZeros * 64,
      bytes: 4 * (2 * nonZeros + (users + items) * (1 + 2 * 64)),
    });
    backend.free(sparse);
    backend.free(x);
  }

  // Scores, mask and top 50 for a block of 1024 users.
  const block = Int32Array.from({ length: 1024 }, (_, r) => r % users);
  const masked = maskedItems(random, block.length, items, 8);
  const userTable = randomValues(random, users * 64);
  const itemTable = randomValues(random, items * 64);
  const topKName = `score + mask + top-50, 1024 users × ${items} items`;
  const topKWork = {
    flops: 2 * block.length * items * 64,
    bytes: 4 * (block.length * 64 + items * 64 + block.length * 50),
  };
  {
    const userStorage = gpu.uploadFloat32(userTable);
    const itemStorage = gpu.uploadFloat32(itemTable);
    const milliseconds = await timeAsync(repeats, async () => {
      await gpu.scoreTopK(userStorage, itemStorage, 64, block, 50, masked);
    });
    results.push({
      name: topKName,
      backend: gpu.name,
      milliseconds,
      ...topKWork,
    });
  }
  {
    const userStorage = cpuBackend.uploadFloat32(userTable);
    const itemStorage = cpuBackend.uploadFloat32(itemTable);
    const index = cpuBackend.uploadInt32(block);
    const milliseconds = await timeAsync(repeats, async () => {
      const rows = cpuBackend.gatherRows(userStorage, 64, index);
      const product = cpuBackend.matmul(
        rows,
        itemStorage,
        block.length,
        64,
        items,
        false,
        true,
      );
      const scores = await cpuBackend.read(product);
      for (let r = 0; r < block.length; r++) {
        for (let e = masked.offsets[r]; e < masked.offsets[r + 1]; e++) {
          scores[r * items + masked.items[e]] = MASKED_SCORE;
        }
      }
      selectTopK(scores, block.length, items, 50);
    });
    results.push({
      name: topKName,
      backend: cpuBackend.name,
      milliseconds,
      ...topKWork,
    });
  }
  const adapter = gpu.description;
  gpu.destroy();
  return { adapter, results };
}

function randomValues(random: Random, length: number): Float32Array {
  const values = new Float32Array(length);
  for (let i = 0; i < length; i++) values[i] = random.nextFloat() - 0.5;
  return values;
}

/** A symmetric normalised user–item graph with `pairs` random pairs. */
function userItemGraph(
  random: Random,
  users: number,
  items: number,
  pairs: number,
): CsrMatrix {
  const neighbours: Set<number>[] = Array.from(
    { length: users + items },
    () => new Set(),
  );
  for (let p = 0; p < pairs; p++) {
    const user = random.nextInt(users);
    const item = users + random.nextInt(items);
    neighbours[user].add(item);
    neighbours[item].add(user);
  }
  const rowOffsets = new Int32Array(users + items + 1);
  neighbours.forEach((set, row) => {
    rowOffsets[row + 1] = rowOffsets[row] + set.size;
  });
  const columnIndices = new Int32Array(rowOffsets[users + items]);
  const values = new Float32Array(columnIndices.length);
  neighbours.forEach((set, row) => {
    const sorted = [...set].sort((a, b) => a - b);
    sorted.forEach((column, e) => {
      columnIndices[rowOffsets[row] + e] = column;
      values[rowOffsets[row] + e] = 1 /
        Math.sqrt(set.size * neighbours[column].size);
    });
  });
  return {
    rows: users + items,
    cols: users + items,
    rowOffsets,
    columnIndices,
    values,
  };
}

function maskedItems(
  random: Random,
  users: number,
  items: number,
  perUser: number,
): { offsets: Int32Array; items: Int32Array } {
  const offsets = new Int32Array(users + 1);
  const list: number[] = [];
  for (let r = 0; r < users; r++) {
    const chosen = new Set<number>();
    while (chosen.size < perUser) chosen.add(random.nextInt(items));
    list.push(...[...chosen].sort((a, b) => a - b));
    offsets[r + 1] = list.length;
  }
  return { offsets, items: Int32Array.from(list) };
}

/** Mean ms of `run` after one warm-up, waiting for the backend's queue. */
async function time(
  backend: Backend,
  repeats: number,
  run: () => void,
): Promise<number> {
  run();
  await backend.synchronize();
  const start = performance.now();
  for (let r = 0; r < repeats; r++) run();
  await backend.synchronize();
  return (performance.now() - start) / repeats;
}

async function timeAsync(
  repeats: number,
  run: () => Promise<void>,
): Promise<number> {
  await run();
  const start = performance.now();
  for (let r = 0; r < repeats; r++) await run();
  return (performance.now() - start) / repeats;
}

/**
 * Formats results as a table, with GFLOP/s and GB/s.
 *
 * @param results From {@linkcode runWebGpuBenchmark}.
 * @returns Lines of text.
 */
export function formatWebGpuBenchmark(results: WebGpuBenchResult[]): string[] {
  return results.map((result) => {
    const seconds = result.milliseconds / 1000;
    return [
      result.backend.padEnd(7),
      result.name.padEnd(52),
      `${result.milliseconds.toFixed(1).padStart(9)} ms`,
      `${(result.flops / seconds / 1e9).toFixed(2).padStart(8)} GFLOP/s`,
      `${(result.bytes / seconds / 1e9).toFixed(2).padStart(7)} GB/s`,
    ].join("  ");
  });
}

if (import.meta.main) {
  const repeatsAt = Deno.args.indexOf("--repeats");
  const repeats = repeatsAt >= 0 ? Number(Deno.args[repeatsAt + 1]) : 3;
  const { adapter, results } = await runWebGpuBenchmark({
    repeats,
    quick: Deno.args.includes("--quick"),
  });
  console.log(`adapter: ${adapter}; ${repeats} timed calls after a warm-up`);
  for (const line of formatWebGpuBenchmark(results)) console.log(line);
}
