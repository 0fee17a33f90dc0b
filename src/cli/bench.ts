/**
 * `deno task bench [-m MSCA] [-d DATASET | --preset baby] [--device cpu|webgpu]
 * [--batches N] [--json] [--key value …]`: seconds per epoch on a dataset
 * and backend, split into forward, backward, optimiser and evaluation.
 *
 * Training time is measured on the first `--batches` batches of an epoch
 * (after one warm-up batch) and extrapolated to the epoch's batch count;
 * evaluation (valid and test, full ranking) is measured once in full. The
 * output says how many batches were measured.
 *
 * @module
 */

import process from "node:process";
import { parseCommandLine } from "./args.ts";
import { ConfigError, expandGrid, loadConfig } from "../config.ts";
import { loadDataset } from "../data/dataset.ts";
import { DataError } from "../data/errors.ts";
import { BatchSampler } from "../data/sampler.ts";
import {
  ensureDefaultDataset,
  ensureSyntheticDataset,
  SYNTHETIC_PRESETS,
  type SyntheticPreset,
} from "../data/synth.ts";
import { Adam } from "../engine/adam.ts";
import { buildGraphs } from "../graph/graphs.ts";
import { createModel, modelEntry } from "../models/registry.ts";
import { Random } from "../random.ts";
import { evaluateModel, openBackend } from "../trainer.ts";
import { WebGpuUnavailableError } from "../engine/webgpu_device.ts";

const USAGE = `Usage: deno task bench [-m MODEL] [-d DATASET | --preset NAME]
                       [--device cpu|webgpu|auto] [--batches N] [--json]

  --preset    a synthetic preset (${Object.keys(SYNTHETIC_PRESETS).join(", ")}),
              generated into data_path on first use; baby, sports and elec
              copy the real sizes
  --batches   training batches to time after one warm-up (default 3); the
              epoch is extrapolated from them
  --json      print one JSON object as the last line
  other --key value pairs set config keys (e.g. --train_batch_size 1024)`;

/** What one benchmark measured, in seconds per epoch. */
interface BenchResult {
  model: string;
  dataset: string;
  device: string;
  users: number;
  items: number;
  train_rows: number;
  batch_size: number;
  batches_per_epoch: number;
  batches_measured: number;
  graph_seconds: number;
  /**
   * CPU seconds this process used per epoch of training (extrapolated like
   * the wall times): on a machine busy with other work, wall times grow
   * but this does not.
   */
  training_cpu_seconds: number;
  epoch_seconds: {
    forward: number;
    backward: number;
    optimiser: number;
    evaluation: number;
    total: number;
  };
}

async function main(argv: string[]): Promise<void> {
  const line = parseCommandLine(argv, {
    flags: {
      help: { type: "boolean", short: "h" },
      json: { type: "boolean" },
      preset: { type: "string" },
      batches: { type: "string" },
    },
  });
  if (line.flags.help) {
    console.log(USAGE);
    return;
  }
  const preset = line.flags.preset as string | undefined;
  if (preset !== undefined && line.dataset !== undefined) {
    throw new ConfigError("give either -d or --preset, not both");
  }
  if (preset !== undefined && !Object.hasOwn(SYNTHETIC_PRESETS, preset)) {
    throw new ConfigError(
      `unknown preset "${preset}"; expected one of ${
        Object.keys(SYNTHETIC_PRESETS).join(", ")
      }`,
    );
  }
  const measured = Number(line.flags.batches ?? "3");
  if (!Number.isInteger(measured) || measured < 1) {
    throw new ConfigError(
      `--batches must be a positive integer, got ${line.flags.batches}`,
    );
  }

  const json = line.flags.json === true;
  const say = (text: string) => {
    if (!json) console.log(text);
  };
  let config;
  if (preset !== undefined) {
    // The preset's folder must exist before the config names it.
    const { data_path: dataPath } = await loadConfig({ args: line });
    say(`preparing preset ${preset} in ${dataPath} …`);
    ensureSyntheticDataset(dataPath, preset as SyntheticPreset);
    config = await loadConfig({
      args: line,
      dataset: SYNTHETIC_PRESETS[preset as SyntheticPreset].name,
    });
  } else {
    config = await loadConfig({ args: line });
    if (config.dataset === "synthetic") ensureDefaultDataset(config.data_path);
  }
  const [run] = expandGrid(config);
  const backend = await openBackend(run.device, say);
  const dataset = loadDataset(config);

  const graphStart = performance.now();
  const graphs = await buildGraphs(dataset, {
    knn_k: run.knn_k ?? 10,
    cacheDir: run.graph_cache_dir ? run.graph_cache_dir : null,
    modelKind: modelEntry(run.model).graphKind,
  });
  const graphSeconds = (performance.now() - graphStart) / 1000;

  const random = new Random(run.seed);
  const model = createModel(run.model, {
    dataset,
    graphs,
    config: run,
    backend,
    random,
  });
  const optimizer = new Adam(model.trainableParameters(), {
    learningRate: run.learning_rate,
  });
  const sampler = new BatchSampler(dataset, run.train_batch_size, random);
  const totals = { forward: 0, backward: 0, optimiser: 0 };
  let timed = 0;
  let seen = 0;
  let cpuSeconds = 0;
  const clock = async () => {
    await backend.synchronize();
    return performance.now();
  };
  for (const batch of sampler.epoch()) {
    const cpu0 = process.cpuUsage();
    const t0 = await clock();
    const output = model.loss(batch);
    await output.loss.item();
    const t1 = await clock();
    optimizer.zeroGrad();
    output.loss.backward();
    output.release();
    const t2 = await clock();
    optimizer.step();
    const t3 = await clock();
    const cpu = process.cpuUsage(cpu0);
    output.loss.free();
    seen++;
    // The first batch warms up kernels and caches; it is not timed
    // (unless it is the only one).
    if (seen > 1 || sampler.batchCount === 1) {
      totals.forward += (t1 - t0) / 1000;
      totals.backward += (t2 - t1) / 1000;
      totals.optimiser += (t3 - t2) / 1000;
      cpuSeconds += (cpu.user + cpu.system) / 1e6;
      timed++;
    }
    if (timed >= measured) break;
  }
  optimizer.free();

  const evalStart = performance.now();
  await evaluateModel(model, dataset, run);
  const evaluation = (performance.now() - evalStart) / 1000;
  model.dispose();

  const perEpoch = (seconds: number) => seconds / timed * sampler.batchCount;
  const epoch = {
    forward: perEpoch(totals.forward),
    backward: perEpoch(totals.backward),
    optimiser: perEpoch(totals.optimiser),
    evaluation,
    total: 0,
  };
  epoch.total = epoch.forward + epoch.backward + epoch.optimiser + evaluation;
  const result: BenchResult = {
    model: run.model,
    dataset: dataset.name,
    device: backend.name,
    users: dataset.userCount,
    items: dataset.itemCount,
    train_rows: sampler.rowCount,
    batch_size: sampler.batchSize,
    batches_per_epoch: sampler.batchCount,
    batches_measured: timed,
    graph_seconds: graphSeconds,
    training_cpu_seconds: perEpoch(cpuSeconds),
    epoch_seconds: epoch,
  };
  if (json) {
    console.log(JSON.stringify(result));
    return;
  }
  for (const text of benchLines(result)) console.log(text);
}

function benchLines(result: BenchResult): string[] {
  const { epoch_seconds: epoch } = result;
  const extrapolated = result.batches_measured < result.batches_per_epoch;
  const row = (name: string, seconds: number) =>
    `  ${name.padEnd(11)} ${seconds.toFixed(2).padStart(10)} s`;
  return [
    `${result.model} on ${result.dataset} (${result.users} users, ` +
    `${result.items} items, ${result.train_rows} train rows), device ` +
    `${result.device}`,
    `graphs built or read in ${result.graph_seconds.toFixed(2)} s`,
    `seconds per epoch (${result.batches_per_epoch} batches of ` +
    `${result.batch_size}${
      extrapolated
        ? `; extrapolated from ${result.batches_measured} timed batches ` +
          "after one warm-up"
        : ""
    }):`,
    row("forward", epoch.forward),
    row("backward", epoch.backward),
    row("optimiser", epoch.optimiser),
    row("evaluation", epoch.evaluation),
    row("total", epoch.total),
    `process CPU time per epoch of training: ` +
    `${result.training_cpu_seconds.toFixed(2)} s (wall time above this ` +
    "means other work shared the cores)",
  ];
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    if (
      error instanceof ConfigError || error instanceof DataError ||
      error instanceof RangeError || error instanceof WebGpuUnavailableError
    ) {
      console.error(`error: ${error.message}`);
      Deno.exit(1);
    }
    throw error;
  }
}
