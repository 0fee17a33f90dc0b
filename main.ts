/**
 * `deno task train [-m MSCA] [-d synthetic] [--key value …]`: trains a model
 * on a dataset, like MMRec's `main.py`. With no `-d` it uses the synthetic
 * dataset, generated into `data/` on first use.
 *
 * A bad config, command line or dataset ends in one line, `error: …`, on
 * stderr and exit code 1, before anything is written.
 *
 * @module
 */

import { join } from "node:path";
import { givenOptions, parseCommandLine } from "./src/cli/args.ts";
import {
  ConfigError,
  DEFAULT_DATASET,
  describeKeys,
  expandGrid,
  formatConfig,
  loadConfig,
  type RunConfig,
} from "./src/config.ts";
import {
  type Dataset,
  datasetStatistics,
  loadDataset,
} from "./src/data/dataset.ts";
import { DataError } from "./src/data/errors.ts";
import { ensureDefaultDataset } from "./src/data/synth.ts";
import { buildGraphs } from "./src/graph/graphs.ts";
import { modelEntry } from "./src/models/registry.ts";
import {
  epochLogLines,
  type EpochRecord,
  finalLogLines,
  gridSearch,
  gridTableLines,
  NonFiniteLossError,
  openBackend,
  runSummary,
  train,
  type TrainCallbacks,
} from "./src/trainer.ts";
import {
  BEST_CHECKPOINT_FILE,
  CheckpointError,
  fingerprintOfDataset,
  loadTrainingState,
  removeTrainingState,
  saveCheckpoint,
  saveTrainingState,
  tensorsOf,
  writeFileAtomic,
} from "./src/checkpoint.ts";
import { writeRunPlots } from "./src/plot.ts";
import {
  batchProgress,
  graphProgress,
  ProgressReporter,
} from "./src/progress.ts";
import { writeTestRecommendations } from "./src/recommend.ts";
import { WebGpuUnavailableError } from "./src/engine/webgpu_device.ts";
import { evaluate, formatMetrics, mostPopular } from "./src/evaluation.ts";

/**
 * Prints each line and keeps it in the run folder's `train.log`; lines
 * printed before the folder exists are written when it is opened.
 */
class RunLog {
  #pending: string[] = [];
  #file: string | null = null;

  line(text: string): void {
    console.log(text);
    if (this.#file === null) this.#pending.push(text);
    else Deno.writeTextFileSync(this.#file, text + "\n", { append: true });
  }

  open(file: string): void {
    this.#file = file;
    const text = this.#pending.map((line) => line + "\n").join("");
    Deno.writeTextFileSync(file, text, { append: true });
    this.#pending = [];
  }
}

const log = new RunLog();

const USAGE = `Usage: deno task train [-m MODEL] [-d DATASET] [--key value …]

  -m, --model     MSCA (default), LightGCN or BPR
  -d, --dataset   a file in configs/dataset/ or a folder under data_path
                  holding <name>.inter (default: ${DEFAULT_DATASET})
  --resume DIR    continue the run in DIR (a run folder) after its last
                  finished epoch
  -h, --help      this text

Config keys (overall < dataset < model < command line), set as --key value
or --key=value; lists as --topk 10,20 or --topk [10,20]:
`;

/**
 * Trainer callbacks that keep one run folder up to date after every epoch:
 * log lines, the best-valid checkpoint (and its test recommendations), the
 * training state for --resume, summary.json and the plots.
 */
function runFolderCallbacks(
  runDir: string,
  run: RunConfig,
  dataset: Dataset,
  fingerprint: string,
  progress: ProgressReporter,
  combination: number,
): TrainCallbacks {
  return {
    onBatch: batchProgress(progress),
    onGraphProgress: graphProgress(progress),
    onEpoch: async (record, context) => {
      for (const line of epochLogLines(record, run.model)) log.line(line);
      if (record.improved) {
        await saveCheckpoint(join(runDir, BEST_CHECKPOINT_FILE), {
          tensors: await tensorsOf(context.model.stateDict()),
          metadata: {
            model: run.model,
            config: run,
            datasetFingerprint: fingerprint,
            epoch: record.epoch,
            metrics: { valid: record.valid, test: record.test },
          },
        });
        if (run.save_recommended_topk) {
          await writeTestRecommendations(runDir, context.model, dataset, {
            ...run,
            combination,
          });
        }
      }
      const state = await context.state();
      state.extra = { ...state.extra, config: run, combination };
      await saveTrainingState(runDir, state);
      const summary = {
        config: run,
        epochs: state.history as EpochRecord[],
        best_epoch: context.earlyStopping.best_epoch,
        best_valid: context.earlyStopping.best_valid,
        test_at_best_valid: context.earlyStopping.test_at_best_valid,
      };
      await writeFileAtomic(
        join(runDir, "summary.json"),
        JSON.stringify(summary, null, 1) + "\n",
      );
      await writeRunPlots(runDir, summary);
    },
  };
}

/** A new run folder, `<checkpoint_dir>/<model>-<dataset>-<UTC time>`. */
function newRunDir(
  config: { checkpoint_dir: string; model: string; dataset: string },
): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(
    /\..*/,
    "",
  );
  return join(
    config.checkpoint_dir,
    `${config.model}-${config.dataset}-${stamp}`,
  );
}

async function resume(runDir: string, progress: ProgressReporter) {
  const state = await loadTrainingState(runDir);
  const saved = (state.extra ?? {}).config as RunConfig | undefined;
  if (saved === undefined) {
    throw new CheckpointError(runDir, "its training state holds no config");
  }
  const { model, dataset: name, ...values } = saved;
  const [run] = expandGrid(
    await loadConfig({ model, dataset: name, args: values }),
  );
  const dataset = loadDataset(run);
  const fingerprint = await fingerprintOfDataset(run, dataset);
  log.open(join(runDir, "train.log"));
  log.line(`resuming ${runDir} after epoch ${state.epoch}`);
  const result = await train(run, dataset, {
    backend: await openBackend(run.device, (reason) => log.line(reason)),
    resume: state,
    callbacks: runFolderCallbacks(
      runDir,
      run,
      dataset,
      fingerprint,
      progress,
      Number(state.extra?.combination ?? 0),
    ),
  });
  await writeFileAtomic(
    join(runDir, "summary.json"),
    JSON.stringify(runSummary(run, result), null, 1) + "\n",
  );
  await writeRunPlots(runDir, result);
  await removeTrainingState(runDir);
  for (const line of finalLogLines(result)) log.line(line);
}

async function main(argv: string[]): Promise<void> {
  const commandLine = parseCommandLine(argv, {
    flags: {
      help: { type: "boolean", short: "h" },
      resume: { type: "string" },
    },
  });
  if (commandLine.flags.help) {
    console.log(USAGE + describeKeys());
    return;
  }
  const progress = new ProgressReporter();
  if (typeof commandLine.flags.resume === "string") {
    const others = givenOptions(commandLine);
    if (others.length > 0) {
      throw new ConfigError(
        `--resume continues a run with the config it was started with; ` +
          `expected no other options, got ${others.join(", ")}`,
      );
    }
    await resume(commandLine.flags.resume, progress);
    return;
  }
  const config = await loadConfig({ args: commandLine });
  log.line(formatConfig(config) + "\n");

  if (config.dataset === DEFAULT_DATASET) {
    ensureDefaultDataset(config.data_path);
  }
  const dataset = loadDataset(config);
  for (const line of datasetStatistics(dataset)) log.line(line);
  const fingerprint = await fingerprintOfDataset(config, dataset);
  const runDir = newRunDir(config);
  await Deno.mkdir(runDir, { recursive: true });
  log.open(join(runDir, "train.log"));
  log.line(`run folder: ${runDir}`);

  // The trainer reuses these for every combination with the same knn_k.
  const runs = expandGrid(config);
  const graphs = await buildGraphs(dataset, {
    knn_k: runs[0].knn_k,
    cacheDir: config.graph_cache_dir === "" ? null : config.graph_cache_dir,
    modelKind: modelEntry(config.model).graphKind,
    onProgress: graphProgress(progress),
  });
  progress.close();

  const search = await gridSearch(config, dataset, {
    graphs,
    backend: await openBackend(config.device, (reason) => log.line(reason)),
    callbacksFor: (index, count, parameters) => {
      if (count > 1) {
        log.line(
          `\ncombination ${index + 1}/${count}: ` +
            JSON.stringify(parameters),
        );
      }
      const folder = count > 1 ? join(runDir, `idx${index}`) : runDir;
      Deno.mkdirSync(folder, { recursive: true });
      return runFolderCallbacks(
        folder,
        runs[index],
        dataset,
        fingerprint,
        progress,
        index,
      );
    },
  });
  const closing = search.combinations.length > 1
    ? gridTableLines(search)
    : finalLogLines(search.combinations[0].result);
  for (const line of closing) log.line(line);
  const floor = await evaluate(dataset, "test", mostPopular(dataset), {
    topk: runs[0].topk,
    metrics: runs[0].metrics,
  });
  log.line(
    "most-popular ranking on the same split, test: " +
      formatMetrics(floor.metrics),
  );
  const summary = search.combinations.length > 1
    ? { config, ...search }
    : runSummary(runs[0], search.combinations[0].result);
  await writeFileAtomic(
    join(runDir, "summary.json"),
    JSON.stringify(summary, null, 1) + "\n",
  );
  await writeRunPlots(
    runDir,
    search.combinations.length > 1 ? search : search.combinations[0].result,
  );
  // Finished: nothing is left to resume, and the state is 3× the model.
  const folders = search.combinations.length > 1
    ? search.combinations.map((_, index) => join(runDir, `idx${index}`))
    : [runDir];
  for (const folder of folders) await removeTrainingState(folder);
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    if (
      error instanceof ConfigError || error instanceof DataError ||
      error instanceof NonFiniteLossError ||
      error instanceof CheckpointError ||
      error instanceof WebGpuUnavailableError
    ) {
      console.error(`error: ${error.message}`);
      Deno.exit(1);
    }
    throw error;
  }
}
