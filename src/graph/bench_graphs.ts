/**
 * Benchmark of the graph builders on the synthetic presets that copy the
 * real datasets' sizes (baby, sports, elec): wall time of each graph and
 * the process's resident memory after it. Run under `/usr/bin/time -v` for
 * the peak RSS of the whole process.
 *
 * ```sh
 * /usr/bin/time -v deno run -A src/graph/bench_graphs.ts baby
 * deno run -A src/graph/bench_graphs.ts elec --graphs adjacency,user_item,structural --no-features
 * ```
 *
 * Options: `--graphs` (comma list of adjacency, user_item, structural,
 * image, text; default all), `--knn-k` (default 10), `--seed`,
 * `--no-features` (1-wide feature tables, for the interaction graphs of
 * elec), `--workers N` (kNN workers, default the CPU count; 0 computes
 * in the main thread), `--cache DIR` (also time `buildGraphs` with a cold,
 * then a warm cache in DIR).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createDataset, type FeatureTable } from "../data/dataset.ts";
import {
  DEFAULT_SYNTHETIC_SEED,
  generateSynthetic,
  SYNTHETIC_PRESETS,
  type SyntheticPreset,
} from "../data/synth.ts";
import type { CsrMatrix } from "./csr.ts";
import {
  buildGraphs,
  modalityGraph,
  normalizedAdjacency,
  structuralGraph,
  userItemBlock,
  withWorkerDotProduct,
} from "./graphs.ts";

const ALL_GRAPHS = ["adjacency", "user_item", "structural", "image", "text"];

function megabytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      graphs: { type: "string", default: ALL_GRAPHS.join(",") },
      "knn-k": { type: "string", default: "10" },
      seed: { type: "string", default: String(DEFAULT_SYNTHETIC_SEED) },
      "no-features": { type: "boolean", default: false },
      cache: { type: "string" },
      workers: {
        type: "string",
        default: String(navigator.hardwareConcurrency),
      },
    },
  });
  const preset = positionals[0] as SyntheticPreset;
  if (!(preset in SYNTHETIC_PRESETS) || positionals.length !== 1) {
    console.error(
      `Usage: bench_graphs.ts <${Object.keys(SYNTHETIC_PRESETS).join("|")}> ` +
        `[--graphs ${ALL_GRAPHS.join(",")}] [--knn-k 10] [--no-features]`,
    );
    Deno.exit(2);
  }
  const graphs = values.graphs.split(",");
  for (const graph of graphs) {
    if (!ALL_GRAPHS.includes(graph)) {
      console.error(`Unknown graph "${graph}"; expected ${ALL_GRAPHS}`);
      Deno.exit(2);
    }
  }
  const k = Number(values["knn-k"]);
  const workers = Number(values.workers);

  let start = performance.now();
  const options = { ...SYNTHETIC_PRESETS[preset], seed: Number(values.seed) };
  if (values["no-features"]) {
    Object.assign(options, { imageDim: 1, textDim: 1 });
  }
  const generated = generateSynthetic(options);
  const dataset = createDataset({
    name: options.name,
    users: generated.users,
    items: generated.items,
    labels: generated.labels,
    features: { image: generated.image, text: generated.text },
  });
  console.log(
    `${preset}: ${dataset.userCount} users, ${dataset.itemCount} items, ` +
      `${dataset.train.users.length} train rows, image ` +
      `${generated.image.cols}-d, text ${generated.text.cols}-d; generated ` +
      `in ${((performance.now() - start) / 1000).toFixed(1)} s, RSS ` +
      megabytes(Deno.memoryUsage().rss),
  );

  const knn = (features: FeatureTable) =>
    workers === 0 ? modalityGraph(features, k) : withWorkerDotProduct(
      workers,
      (dotProductBlock) => modalityGraph(features, k, { dotProductBlock }),
    );
  const builders: Record<string, () => CsrMatrix | Promise<CsrMatrix>> = {
    adjacency: () => normalizedAdjacency(dataset),
    user_item: () => userItemBlock(dataset),
    structural: () => structuralGraph(dataset, k),
    image: () => knn(dataset.features.image!),
    text: () => knn(dataset.features.text!),
  };
  let total = 0;
  for (const graph of graphs) {
    start = performance.now();
    const matrix = await builders[graph]();
    const seconds = (performance.now() - start) / 1000;
    total += seconds;
    console.log(
      `${graph.padEnd(10)} ${seconds.toFixed(2).padStart(8)} s  ` +
        `${matrix.rows} × ${matrix.cols}, ${matrix.values.length} entries, ` +
        `RSS ${megabytes(Deno.memoryUsage().rss)}`,
    );
  }
  console.log(
    `total      ${total.toFixed(2).padStart(8)} s (kNN workers: ${workers})`,
  );

  if (values.cache !== undefined) {
    for (const label of ["cold cache", "warm cache"]) {
      start = performance.now();
      await buildGraphs(dataset, {
        knn_k: k,
        cacheDir: values.cache,
        modelKind: "MSCA",
        knnWorkers: workers,
      });
      const seconds = (performance.now() - start) / 1000;
      console.log(`buildGraphs, ${label}: ${seconds.toFixed(2)} s`);
    }
  }
}

if (import.meta.main) await main();
