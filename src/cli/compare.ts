/**
 * `deno task compare [-d DATASET] [-m MSCA,LightGCN,BPR] [--seeds 1,2,3]
 * [--budget SECONDS] [--key value …]`: trains each model with its own
 * defaults for the dataset on the same split, then prints the test
 * Recall@10/20 and NDCG@10/20 at each run's best valid epoch (mean ± sd
 * over the seeds), seconds per epoch, and the most-popular ranking as a
 * floor. The table is saved as `compare.md` and `compare.json` in a new
 * folder `<checkpoint_dir>/compare-<dataset>-<time>/`.
 *
 * A bad option, config or dataset ends in one line, `error: …`, on stderr
 * and exit code 1, before any training.
 *
 * @module
 */

import { join } from "node:path";
import { type CommandLine, parseCommandLine } from "./args.ts";
import {
  type Config,
  CONFIG_KEYS,
  ConfigError,
  DEFAULT_DATASET,
  expandGrid,
  loadConfig,
  type RunConfig,
} from "../config.ts";
import { loadDataset } from "../data/dataset.ts";
import { DataError } from "../data/errors.ts";
import { ensureDefaultDataset } from "../data/synth.ts";
import { writeFileAtomic } from "../checkpoint.ts";
import { compareJson, compareMarkdown, compareModels } from "../compare.ts";
import { openBackend } from "../trainer.ts";
import { WebGpuUnavailableError } from "../engine/webgpu_device.ts";
import { graphProgress, ProgressReporter } from "../progress.ts";

/** The models compared when `-m` is not given. */
const DEFAULT_MODELS = ["MSCA", "LightGCN", "BPR"];

const USAGE = `Usage: deno task compare [-d DATASET] [-m MODELS] [--seeds SEEDS]
                         [--budget SECONDS] [--key value …]

  -d, --dataset  dataset (default: ${DEFAULT_DATASET}, generated on first use)
  -m, --model    comma-separated models (default: ${DEFAULT_MODELS.join(",")})
  --seeds        comma-separated seeds (default: the config's seed); the
                 table shows mean ± sample sd over them
  --budget       seconds of training and evaluation after which a run stops
                 (checked after each epoch); default 0: every run trains to
                 early stopping or 'epochs'
  -h, --help     this text

Each model trains with its own config (overall < dataset < model) on the
same split. Other config keys given as --key value apply to every model;
a model parameter (n_layers, knn_k, …) applies to the models that have it.
Runs stopped by the budget are marked 'budget' in the table: their numbers
are those of a model not trained to early stopping.`;

async function main(argv: string[]): Promise<void> {
  const line = parseCommandLine(argv, {
    flags: {
      help: { type: "boolean", short: "h" },
      seeds: { type: "string" },
      budget: { type: "string" },
    },
  });
  if (line.flags.help) {
    console.log(USAGE);
    return;
  }
  const models = parseModels(line.model);
  const budget = parseBudget(line.flags.budget);
  if (line.flags.seeds !== undefined) {
    if (line.values.seed !== undefined) {
      throw new ConfigError("give --seeds or --seed, not both", {
        key: "seed",
      });
    }
    line.values.seed = parseSeeds(line.flags.seeds as string);
  }

  const configs = await modelConfigs(models, line);
  const runs: RunConfig[] = configs.flatMap((config) => singleSetting(config));
  const first = configs[0];
  if (first.dataset === DEFAULT_DATASET) {
    ensureDefaultDataset(first.data_path);
  }
  const dataset = loadDataset(first);
  const backend = await openBackend(
    first.device,
    (reason) => console.log(reason),
  );
  console.log(
    `Comparing ${models.join(", ")} on ${dataset.name} (${backend.name}), ` +
      `seeds ${[...new Set(runs.map((run) => run.seed))].join(", ")}, ` +
      (budget === null
        ? "no time budget"
        : `budget ${budget} s per run (--budget 0 for none)`),
  );

  const progress = new ProgressReporter();
  const onGraphProgress = graphProgress(progress);
  const result = await compareModels(runs, dataset, {
    backend,
    budgetSeconds: budget,
    onGraphProgress: (_model, report) => onGraphProgress(report),
    onBatch: (model, seed, report) =>
      progress.report(
        `${model} seed ${seed} epoch ${report.epoch}`,
        report.done,
        report.total,
        "batches",
      ),
    onEpoch: (model, seed, record) => {
      progress.close();
      const valid = record.valid_score === undefined
        ? ""
        : `, valid ${first.valid_metric} ${record.valid_score.toFixed(4)}` +
          (record.improved ? " *" : "");
      console.log(
        `${model} seed ${seed} epoch ${record.epoch}: loss ` +
          `${record.train_loss.toFixed(4)}${valid} ` +
          `[${record.train_seconds.toFixed(2)} s]`,
      );
    },
    onRun: (run) => {
      progress.close();
      console.log(
        `${run.model} seed ${run.seed}: ${run.epochs_run} epochs ` +
          `(${run.stopped_by}), best epoch ${run.best_epoch}, ` +
          `${run.seconds.toFixed(1)} s`,
      );
    },
  });

  const markdown = compareMarkdown(result);
  console.log("");
  for (const text of markdown) console.log(text);
  const folder = await newRunFolder(first.checkpoint_dir, dataset.name);
  await writeFileAtomic(join(folder, "compare.md"), markdown.join("\n") + "\n");
  await writeFileAtomic(join(folder, "compare.json"), compareJson(result));
  console.log(`\nSaved ${join(folder, "compare.md")} and compare.json`);
}

function parseModels(text: string | undefined): string[] {
  if (text === undefined) return [...DEFAULT_MODELS];
  const models = text.split(",").map((name) => name.trim());
  if (models.some((name) => name === "")) {
    throw new ConfigError(
      `-m "${text}": expected comma-separated model names, e.g. ` +
        DEFAULT_MODELS.join(","),
      { key: "model" },
    );
  }
  const repeated = models.filter((name, i) => models.indexOf(name) !== i);
  if (repeated.length > 0) {
    throw new ConfigError(
      `-m "${text}" names ${repeated[0]} twice; expected each model once`,
      { key: "model" },
    );
  }
  return models;
}

function parseSeeds(text: string): string {
  const seeds = text.split(",").map((word) => word.trim());
  if (
    seeds.length === 0 ||
    !seeds.every((word) => /^\d+$/.test(word) && Number(word) <= 4294967295)
  ) {
    throw new ConfigError(
      `--seeds "${text}": expected comma-separated integers in ` +
        "0..4294967295, e.g. 1,2,3",
      { key: "seed" },
    );
  }
  if (new Set(seeds.map(Number)).size !== seeds.length) {
    throw new ConfigError(`--seeds "${text}" repeats a seed`, { key: "seed" });
  }
  return seeds.join(",");
}

function parseBudget(value: string | boolean | undefined): number | null {
  if (value === undefined) return null;
  const seconds = Number(value);
  if (typeof value !== "string" || value.trim() === "" || !(seconds >= 0)) {
    throw new ConfigError(
      `--budget "${value}": expected a number of seconds >= 0 (0: none)`,
      { key: "budget" },
    );
  }
  return seconds === 0 ? null : seconds;
}

/**
 * Loads each model's config with the command-line keys that apply to it:
 * every general key, and each model parameter only for the models whose
 * config file sets it (an error when none does).
 */
async function modelConfigs(
  models: string[],
  line: CommandLine,
): Promise<Config[]> {
  const isModelKey = (key: string) =>
    (CONFIG_KEYS as Record<string, { scope?: string }>)[key]?.scope ===
      "model";
  const general = Object.fromEntries(
    Object.entries(line.values).filter(([key]) => !isModelKey(key)),
  );
  const specific = Object.entries(line.values).filter(([key]) =>
    isModelKey(key)
  );
  const configs: Config[] = [];
  const takers = new Map<string, string[]>();
  for (const model of models) {
    const base = await loadConfig({
      model,
      dataset: line.dataset,
      args: { ...line, model, values: general },
    });
    const own = specific.filter(([key]) => key in base);
    for (const [key] of own) takers.set(key, [...takers.get(key) ?? [], model]);
    configs.push(
      own.length === 0 ? base : await loadConfig({
        model,
        dataset: line.dataset,
        args: {
          ...line,
          model,
          values: { ...general, ...Object.fromEntries(own) },
        },
      }),
    );
  }
  for (const [key] of specific) {
    const users = takers.get(key) ?? [];
    if (users.length === 0) {
      throw new ConfigError(
        `--${key} applies to none of ${models.join(", ")}`,
        { key },
      );
    }
    if (users.length < models.length) {
      console.log(`Note: --${key} applies to ${users.join(", ")} only`);
    }
  }
  return configs;
}

/** The runs of one model: one per seed, no other search. */
function singleSetting(config: Config): RunConfig[] {
  const searched = config.hyper_parameters.filter((key) => key !== "seed");
  if (searched.length > 0) {
    throw new ConfigError(
      `${config.model}: hyper_parameters lists ${searched.join(", ")}; ` +
        "compare trains one setting per model over the seeds (use " +
        "'deno task train' for a search)",
      { key: "hyper_parameters" },
    );
  }
  return expandGrid(config);
}

async function newRunFolder(root: string, dataset: string): Promise<string> {
  await Deno.mkdir(root, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(
    /\.\d+Z$/,
    "",
  );
  for (let attempt = 1;; attempt++) {
    const name = `compare-${dataset}-${stamp}` +
      (attempt === 1 ? "" : `-${attempt}`);
    const folder = join(root, name);
    try {
      await Deno.mkdir(folder);
      return folder;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
  }
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
