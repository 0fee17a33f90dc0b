/**
 * `deno task test -c <checkpoint> [-d <dataset>] [--device cpu|webgpu|auto]
 * [--json] [--key value …]`: evaluates a saved checkpoint, like MMRec's
 * evaluation of a trained model. The model is rebuilt from the config the
 * checkpoint carries, its weights loaded, the dataset checked against the
 * checkpoint's fingerprint, and valid and test are ranked in full.
 *
 * Prints MMRec's `valid result:` and `test result:` lines; with `--json` the
 * last line of stdout is `{"valid": {…}, "test": {…}}` with MMRec's metric
 * keys (`recall@20`, …). Any problem (a missing, truncated, corrupt or
 * foreign checkpoint, a checkpoint made on other data, a bad option) ends
 * in one line, `error: …`, on stderr and exit code 1.
 *
 * This file is an entry point, not a test file.
 *
 * @module
 */

import { join } from "node:path";
import { parseCommandLine } from "./src/cli/args.ts";
import {
  assignTensors,
  BEST_CHECKPOINT_FILE,
  checkDatasetFingerprint,
  type Checkpoint,
  CheckpointError,
  fingerprintOfDataset,
  loadCheckpoint,
} from "./src/checkpoint.ts";
import {
  CONFIG_KEYS,
  DEFAULT_DATASET,
  expandGrid,
  loadConfig,
  type RunConfig,
} from "./src/config.ts";
import { loadDataset } from "./src/data/dataset.ts";
import { ensureDefaultDataset } from "./src/data/synth.ts";
import type { Parameter } from "./src/engine/tensor.ts";
import { buildGraphs } from "./src/graph/graphs.ts";
import { resultLines } from "./src/log_lines.ts";
import { createModel, modelEntry } from "./src/models/registry.ts";
import { graphProgress, ProgressReporter } from "./src/progress.ts";
import { Random } from "./src/random.ts";
import { evaluateModel, openBackend } from "./src/trainer.ts";

const USAGE =
  `Usage: deno task test -c CHECKPOINT [-d DATASET] [--device DEVICE]
                      [--json] [--key value …]

  -c, --checkpoint  a .safetensors checkpoint written by 'deno task train',
                    or a run folder (its best.safetensors)
  -d, --dataset     evaluate on this dataset (default: the one trained on;
                    its fingerprint must match the checkpoint's)
  --device          cpu, webgpu or auto (default: the training config's)
  --json            end stdout with {"valid": {…}, "test": {…}}
  -h, --help        this text

Other config keys (data_path, eval_batch_size, topk, metrics, …) may be set
as --key value; the rest comes from the config stored in the checkpoint.
`;

/** Keys describing a dataset's files, which belong to that dataset. */
const DATASET_LAYOUT_KEYS = [
  "inter_file_name",
  "USER_ID_FIELD",
  "ITEM_ID_FIELD",
  "inter_splitting_label",
  "field_separator",
  "vision_feature_file",
  "text_feature_file",
  "filter_out_cod_start_users",
];

/** Metrics of both splits, keyed like MMRec (`recall@20`). */
interface TestResult {
  valid: Record<string, number>;
  test: Record<string, number>;
  /** What `--device` picked, and why. */
  device?: string;
}

/**
 * The run configuration to rebuild the model with: the checkpoint's config,
 * overridden by the command line, validated like any other config.
 */
async function runConfigOf(
  checkpoint: Checkpoint,
  dataset: string | undefined,
  overrides: Record<string, string>,
): Promise<RunConfig> {
  const saved = checkpoint.metadata.config;
  const savedDataset = typeof saved.dataset === "string"
    ? saved.dataset
    : undefined;
  const otherDataset = dataset !== undefined && dataset !== savedDataset;
  const values: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(saved)) {
    if (!Object.hasOwn(CONFIG_KEYS, key) || value === null) continue;
    // Another dataset's file layout comes from its own config, not ours.
    if (otherDataset && DATASET_LAYOUT_KEYS.includes(key)) continue;
    values[key] = value;
  }
  if (dataset === undefined && savedDataset === undefined) {
    throw new CheckpointError(
      checkpoint.path,
      "its config names no dataset; pass one with -d",
    );
  }
  const config = await loadConfig({
    model: checkpoint.metadata.model,
    dataset: dataset ?? savedDataset,
    args: { ...values, ...overrides },
  });
  const runs = expandGrid(config);
  if (runs.length !== 1) {
    throw new CheckpointError(
      checkpoint.path,
      `its config describes ${runs.length} grid combinations; a ` +
        "checkpoint holds one",
    );
  }
  return runs[0];
}

/** A run folder stands for the best checkpoint inside it. */
async function resolveCheckpoint(path: string): Promise<string> {
  const info = await Deno.stat(path).catch(() => undefined);
  if (!info?.isDirectory) return path;
  const best = join(path, BEST_CHECKPOINT_FILE);
  const isGrid = await Deno.stat(join(path, "idx0")).then(
    (idx) => idx.isDirectory,
    () => false,
  );
  if (isGrid && !(await Deno.stat(best).catch(() => undefined))) {
    throw new CheckpointError(
      path,
      "a grid search's run folder holds one checkpoint per combination; " +
        "expected one of its idx<N>/ folders",
    );
  }
  return best;
}

/**
 * Rebuilds the checkpoint's model on the dataset and evaluates it.
 *
 * @param checkpointPath The checkpoint file.
 * @param options Dataset name, config overrides, progress reporter.
 * @returns Valid and test metrics, and the run configuration used.
 */
async function testCheckpoint(
  checkpointPath: string,
  options: {
    dataset?: string;
    overrides: Record<string, string>;
    progress: ProgressReporter;
  },
): Promise<TestResult & { config: RunConfig; checkpoint: Checkpoint }> {
  const checkpoint = await loadCheckpoint(
    await resolveCheckpoint(checkpointPath),
  );
  const config = await runConfigOf(
    checkpoint,
    options.dataset,
    options.overrides,
  );

  if (config.dataset === DEFAULT_DATASET) {
    ensureDefaultDataset(config.data_path);
  }
  const dataset = loadDataset(config);
  checkDatasetFingerprint(
    checkpoint,
    await fingerprintOfDataset(config, dataset),
    config.dataset,
  );

  let device = "";
  const backend = await openBackend(config.device, (reason) => {
    device = reason;
  });
  const graphs = await buildGraphs(dataset, {
    knn_k: config.knn_k ?? 10,
    cacheDir: config.graph_cache_dir ? config.graph_cache_dir : null,
    modelKind: modelEntry(config.model).graphKind,
    onProgress: graphProgress(options.progress),
  });
  options.progress.close();
  const model = createModel(config.model, {
    dataset,
    graphs,
    config,
    backend,
    random: new Random(config.seed),
  });
  try {
    assignTensors(
      [...model.stateDict()].map(([name, tensor]) => ({
        name,
        shape: tensor.shape,
        assign: (values: Float32Array) => (tensor as Parameter).assign(values),
      })),
      checkpoint.tensors,
      checkpoint.path,
    );
    const { valid, test } = await evaluateModel(model, dataset, config);
    return { valid, test, config, checkpoint, device };
  } finally {
    model.dispose();
  }
}

/**
 * Compares the metrics now with those the checkpoint recorded at training
 * time, to 4 decimals as they are printed.
 *
 * @returns A short description of the differences, if any.
 */
function recordedDifference(
  checkpoint: Checkpoint,
  result: TestResult,
): string | undefined {
  const recorded = checkpoint.metadata.metrics as Partial<TestResult>;
  const differing: string[] = [];
  let compared = 0;
  for (const split of ["valid", "test"] as const) {
    for (const [key, value] of Object.entries(result[split])) {
      const before = recorded[split]?.[key];
      if (typeof before !== "number") continue;
      compared++;
      if (before.toFixed(4) !== value.toFixed(4)) {
        differing.push(
          `${split} ${key} ${value.toFixed(4)} now, ${before.toFixed(4)} then`,
        );
      }
    }
  }
  if (differing.length === 0) return undefined;
  return `${differing.length} of ${compared} metrics differ from those ` +
    `recorded at training time (${differing[0]}${
      differing.length > 1 ? ", …" : ""
    }); were graphs, device or data changed?`;
}

async function main(argv: string[]): Promise<void> {
  const commandLine = parseCommandLine(argv, {
    flags: {
      checkpoint: { type: "string", short: "c" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (commandLine.flags.help) {
    console.log(USAGE);
    return;
  }
  if (commandLine.model !== undefined) {
    throw new CheckpointError(
      String(commandLine.flags.checkpoint ?? "-m"),
      "-m is not taken here: the model comes from the checkpoint",
    );
  }
  const checkpointPath = commandLine.flags.checkpoint;
  if (typeof checkpointPath !== "string" || checkpointPath === "") {
    throw new RangeError(
      "no checkpoint given; pass -c <file.safetensors> (see --help)",
    );
  }

  const result = await testCheckpoint(checkpointPath, {
    dataset: commandLine.dataset,
    overrides: commandLine.values,
    progress: new ProgressReporter(),
  });
  const { checkpoint, config } = result;
  console.log(
    `checkpoint ${checkpoint.path}: ${checkpoint.metadata.model} from ` +
      `epoch ${checkpoint.metadata.epoch}, dataset ${config.dataset}, ` +
      `msca-deno ${checkpoint.metadata.version}; ${result.device}`,
  );
  for (const line of resultLines(result.valid, result.test)) {
    console.log(line);
  }
  const difference = recordedDifference(checkpoint, result);
  if (difference !== undefined) {
    console.error(`note: ${difference}`);
  }
  if (commandLine.flags.json) {
    console.log(JSON.stringify({ valid: result.valid, test: result.test }));
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`error: ${message.split("\n").join(" ")}`);
    Deno.exit(1);
  }
}
