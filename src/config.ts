/**
 * Layered configuration as in MMRec: `configs/overall.yaml` <
 * `configs/dataset/<dataset>.yaml` < `configs/model/<model>.yaml` < command
 * line, each layer overriding the ones before it.
 *
 * Two sections of a model file are not keys but layers of their own:
 *
 * - `dataset_defaults: {<dataset>: {key: value, …}}` overrides the model's
 *   keys for the dataset named by `-d`; MSCA keeps the paper's best
 *   settings per dataset there (spec section 10).
 * - `search_grids: {<name>: {key: [values…], …}}` holds named search grids;
 *   `search: <name>` (e.g. `--search paper`) sets those lists and adds their
 *   keys to `hyper_parameters`.
 *
 * Every key has a type in {@linkcode CONFIG_KEYS}; an unknown key, a value
 * of the wrong type, an unknown model or dataset and malformed YAML are each
 * a {@linkcode ConfigError} whose message names the key or file and the
 * choices. Keys listed in `hyper_parameters` may hold lists, and
 * {@linkcode expandGrid} turns a loaded {@linkcode Config} into one
 * {@linkcode RunConfig} per combination (`seed` first, as MMRec does).
 *
 * @module
 */

import { parse as parseYaml, YAMLParseError } from "yaml";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { type CommandLine, parseCommandLine } from "./cli/args.ts";
import { EMBEDDED_CONFIGS, EMBEDDED_CONFIGS_URL } from "./configs_embedded.ts";

/** The kinds of value a config key can hold. */
export type KeyType =
  | "integer"
  | "number"
  | "string"
  | "boolean"
  | "enum"
  | "integer[]"
  | "number[]"
  | "string[]";

/** How one config key is typed, bounded and documented. */
export interface KeySpec {
  /** The kind of value. */
  readonly type: KeyType;
  /** One line for `--help` and the README. */
  readonly description: string;
  /**
   * Allowed values of an `enum` key or of the items of a `string[]` key,
   * matched case-insensitively and stored as spelled here.
   */
  readonly choices?: readonly string[];
  /** Inclusive lower bound of a number (or of each item of a list). */
  readonly min?: number;
  /** Exclusive lower bound of a number (or of each item of a list). */
  readonly above?: number;
  /** Inclusive upper bound of a number (or of each item of a list). */
  readonly max?: number;
  /** Exact length of a list. */
  readonly length?: number;
  /** A list that must hold at least one item. */
  readonly nonEmpty?: boolean;
  /**
   * `model`: a parameter of some models only; it applies to a model whose
   * `configs/model/<model>.yaml` sets it, and setting it for another model
   * is an error. `general` (the default): applies to every model.
   */
  readonly scope?: "general" | "model";
  /** May be listed in `hyper_parameters` and then hold a list of values. */
  readonly searchable?: boolean;
  /** May stay unset after merging (its default is derived, see below). */
  readonly optional?: boolean;
}

/**
 * Every config key, in the order {@linkcode formatConfig} prints them, with
 * its type and a one-line description (the README's key table comes from
 * here).
 *
 * @example
 * ```ts
 * import { CONFIG_KEYS } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CONFIG_KEYS.knn_k.type, "integer");
 * ```
 */
export const CONFIG_KEYS = {
  device: {
    type: "enum",
    choices: ["auto", "cpu", "webgpu"],
    description:
      "Backend: cpu, webgpu, or auto (measures both and says which it took)",
  },
  seed: {
    type: "integer",
    min: 0,
    max: 4294967295,
    searchable: true,
    description: "Seed of batches, initial weights and negatives",
  },
  data_path: {
    type: "string",
    description: "Folder holding one sub-folder per dataset",
  },
  checkpoint_dir: {
    type: "string",
    description: "Folder that receives one folder per run",
  },
  graph_cache_dir: {
    type: "string",
    description: 'Folder of built graphs, keyed by content hash ("": none)',
  },
  save_recommended_topk: {
    type: "boolean",
    description: "Write each test user's top-K items as a TSV in the run",
  },
  USER_ID_FIELD: {
    type: "string",
    description: "Column of the user IDs in the .inter file",
  },
  ITEM_ID_FIELD: {
    type: "string",
    description: "Column of the item IDs in the .inter file",
  },
  inter_splitting_label: {
    type: "string",
    description: "Column of the split label (0 train, 1 valid, 2 test)",
  },
  field_separator: {
    type: "string",
    description: "Column separator of the .inter file",
  },
  inter_file_name: {
    type: "string",
    optional: true,
    description: "Interaction file in the dataset folder (<dataset>.inter)",
  },
  vision_feature_file: {
    type: "string",
    description: "Image features (.npy, one row per item) in the folder",
  },
  text_feature_file: {
    type: "string",
    description: "Text features (.npy, one row per item) in the folder",
  },
  filter_out_cod_start_users: {
    type: "boolean",
    description: "Drop valid/test rows of users with no train row",
  },
  embedding_size: {
    type: "integer",
    min: 1,
    searchable: true,
    description: "Embedding width d",
  },
  epochs: {
    type: "integer",
    min: 1,
    description: "Most epochs to train",
  },
  stopping_step: {
    type: "integer",
    min: 0,
    description: "Evaluations without a better valid score before stopping",
  },
  train_batch_size: {
    type: "integer",
    min: 1,
    searchable: true,
    description: "Training rows per batch",
  },
  learner: {
    type: "enum",
    choices: ["adam"],
    description: "Optimiser (Adam with PyTorch semantics)",
  },
  learning_rate: {
    type: "number",
    above: 0,
    searchable: true,
    description: "Adam's learning rate",
  },
  learning_rate_scheduler: {
    type: "number[]",
    length: 2,
    above: 0,
    description: "[γ, s]: the rate after epoch e is lr · γ^(e / s)",
  },
  eval_step: {
    type: "integer",
    min: 1,
    description: "Evaluate valid and test every this many epochs",
  },
  use_neg_sampling: {
    type: "boolean",
    description: "Draw one negative per row (must stay true: BPR needs it)",
  },
  metrics: {
    type: "string[]",
    choices: ["Recall", "NDCG", "Precision", "MAP"],
    nonEmpty: true,
    description: "Full-ranking metrics to report",
  },
  topk: {
    type: "integer[]",
    min: 1,
    nonEmpty: true,
    description: "List lengths K of every metric",
  },
  valid_metric: {
    type: "string",
    description: "Early-stopping metric, <metric>@<K> from metrics and topk",
  },
  eval_batch_size: {
    type: "integer",
    min: 1,
    description: "Users scored per evaluation block",
  },
  hyper_parameters: {
    type: "string[]",
    description: "Keys whose lists form the search grid (seed first)",
  },
  search: {
    type: "string",
    description: "A named grid of the model's search_grids, or none",
  },
  n_layers: {
    type: "integer",
    min: 1,
    scope: "model",
    searchable: true,
    description: "Propagation layers L of the user-item graph",
  },
  knn_k: {
    type: "integer",
    min: 1,
    scope: "model",
    searchable: true,
    description: "Neighbours k per item in the structural and modality graphs",
  },
  fusion_coeff: {
    type: "number",
    min: 0,
    scope: "model",
    searchable: true,
    description: "α in E* = Ē + α Ê",
  },
  tau: {
    type: "number",
    above: 0,
    scope: "model",
    searchable: true,
    description: "InfoNCE temperature τ",
  },
  cl_weight: {
    type: "number",
    min: 0,
    scope: "model",
    searchable: true,
    description: "Weight of the contrastive terms",
  },
  reg_weight: {
    type: "number",
    min: 0,
    scope: "model",
    searchable: true,
    description: "Weight of the L2 regulariser",
  },
  freeze_features: {
    type: "boolean",
    scope: "model",
    searchable: true,
    description: "Keep the feature tables fixed (the reference trains them)",
  },
} as const satisfies Record<string, KeySpec>;

/** The name of a config key. */
export type ConfigKey = keyof typeof CONFIG_KEYS;

/** The TypeScript type of the value a {@linkcode KeySpec} describes. */
export type ValueOf<S extends KeySpec> = S["type"] extends "integer" | "number"
  ? number
  : S["type"] extends "boolean" ? boolean
  : S["type"] extends "enum"
    ? S extends { choices: readonly (infer C)[] } ? C : string
  : S["type"] extends "string" ? string
  : S["type"] extends "integer[]" | "number[]" ? number[]
  : string[];

/** The values of one run: every key holds one value, no grid lists. */
export type RunConfig =
  & { -readonly [K in ConfigKey]: ValueOf<(typeof CONFIG_KEYS)[K]> }
  & {
    /** Model name (`-m`), one of the files in `configs/model/`. */
    model: string;
    /** Dataset name (`-d`), a folder under `data_path`. */
    dataset: string;
  };

/**
 * A loaded configuration. Keys listed in `hyper_parameters` (always `seed`)
 * hold a list of values, the other keys one value; `expandGrid` makes one
 * {@linkcode RunConfig} per combination. Keys of `scope: "model"` are
 * present exactly when the model's file sets them.
 */
export type Config =
  & {
    -readonly [K in ConfigKey]: (typeof CONFIG_KEYS)[K] extends
      { searchable: true }
      ? ValueOf<(typeof CONFIG_KEYS)[K]> | ValueOf<(typeof CONFIG_KEYS)[K]>[]
      : ValueOf<(typeof CONFIG_KEYS)[K]>;
  }
  & { model: string; dataset: string };

/**
 * A bad configuration: unknown key, model or dataset, a value of the wrong
 * type, malformed YAML. The message names the key or file and what was
 * expected, so a CLI can print it as it is.
 *
 * @example
 * ```ts
 * import { ConfigError } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new ConfigError("unknown key \"lr\"", { key: "lr" });
 * assert.equal(error.key, "lr");
 * ```
 */
export class ConfigError extends Error {
  /** The offending key, when one is to blame. */
  readonly key?: string;
  /** The offending file, when one is to blame. */
  readonly file?: string;

  /**
   * Creates the error.
   *
   * @param message What was wrong and what was expected.
   * @param blame The key and/or file at fault.
   */
  constructor(message: string, blame: { key?: string; file?: string } = {}) {
    super(message);
    this.name = "ConfigError";
    this.key = blame.key;
    this.file = blame.file;
  }
}

/** Options of {@linkcode loadConfig}. */
export interface LoadConfigOptions {
  /** Model name; default: `-m` in `args`, else `MSCA`. */
  model?: string;
  /** Dataset name; default: `-d` in `args`, else `synthetic`. */
  dataset?: string;
  /**
   * Command-line overrides: the words after the entry point (`-m`/`-d`
   * included or not), a {@linkcode CommandLine} already parsed, or a map of
   * key to value (text is read as on the command line).
   */
  args?: readonly string[] | CommandLine | Record<string, unknown>;
  /**
   * Folder with `overall.yaml`, `dataset/` and `model/`, read at run time;
   * default: the files of our `configs/`, embedded in the module graph (so
   * no file access is needed, also when this package runs from a registry).
   */
  configDir?: string;
}

/** The model used when none is named. */
export const DEFAULT_MODEL = "MSCA";

/** The dataset used when none is named (generated on first use). */
export const DEFAULT_DATASET = "synthetic";

/** Sections of a model file that are layers, not keys. */
const MODEL_SECTIONS = ["dataset_defaults", "search_grids"];

/** MMRec keys we do not take, with what to do instead. */
const MMREC_ONLY_KEYS: Record<string, string> = {
  gpu_id: "choose the backend with device (cpu, webgpu or auto)",
  use_gpu: "choose the backend with device (cpu, webgpu or auto)",
  weight_decay: "Adam here has no weight decay (spec 7); use reg_weight",
  training_neg_sample_num: "one negative per row is drawn (spec 2)",
  TIME_FIELD: "columns other than user, item and split label are ignored",
  RATING_FIELD: "columns other than user, item and split label are ignored",
  user_graph_dict_file: "no model here uses a user-user graph",
  use_raw_features: "only precomputed .npy features are read",
  is_multimodal_model: "every model reads the features it needs",
  recommend_topk: "top-K lists are written into the run's folder",
};

type Scalar = number | string | boolean;
type Value = Scalar | Scalar[];

/** One layer of the merge: values and where each came from. */
interface Layer {
  where: string;
  file?: string;
  values: Map<string, Value>;
}

/**
 * Loads and validates the configuration of one `train`/`test` invocation:
 * overall < dataset < model (its `dataset_defaults` for the dataset, then the
 * grid named by `search`) < command line.
 *
 * @param options Model, dataset, command-line overrides and config folder.
 * @returns The merged, typed configuration; grid keys hold lists.
 * @throws {ConfigError} For an unknown key, model or dataset, a value of the
 *   wrong type, or a config file that is missing or not valid YAML.
 * @example
 * ```ts
 * import { expandGrid, loadConfig } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = await loadConfig({
 *   model: "MSCA",
 *   dataset: "baby",
 *   args: ["--knn_k", "5", "--topk=[10,20]"],
 * });
 * assert.equal(config.knn_k, 5);
 * assert.equal(config.n_layers, 2);
 * assert.equal(expandGrid(config)[0].seed, 999);
 * ```
 */
export function loadConfig(options: LoadConfigOptions = {}): Promise<Config> {
  try {
    return Promise.resolve(loadConfigSync(options));
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * The synchronous twin of {@linkcode loadConfig}.
 *
 * @param options As for {@linkcode loadConfig}.
 * @returns The merged, typed configuration.
 * @throws {ConfigError} As {@linkcode loadConfig}.
 * @example
 * ```ts
 * import { loadConfigSync } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = loadConfigSync({ model: "BPR", dataset: "sports" });
 * assert.equal(config.reg_weight, 1e-4);
 * ```
 */
export function loadConfigSync(options: LoadConfigOptions = {}): Config {
  const source = configSource(options.configDir);
  const commandLine = readOverrides(options.args);
  const model = pickName("model", options.model, commandLine.model) ??
    DEFAULT_MODEL;
  const dataset = pickName("dataset", options.dataset, commandLine.dataset) ??
    DEFAULT_DATASET;

  const models = source.names("model", true);
  if (!models.includes(model)) {
    throw new ConfigError(
      `unknown model "${model}"; choose one of: ${models.join(", ")}` +
        suggest(model, models),
    );
  }
  const overall = readLayer(source, "overall", "overall")!;
  const modelFile = readLayer(source, `model/${model}`, "model")!;
  const modelKeys = new Set<string>(
    [...modelFile.values.keys()].filter((key) => isModelKey(key)),
  );
  const sections = takeSections(modelFile, modelKeys);

  const cli = commandLineLayer(commandLine);
  checkDatasetName(dataset);
  const datasetLayer = readLayer(source, `dataset/${dataset}`, "dataset") ??
    requireDataFolder(source, dataset, overall, cli);

  // Model parameters from general layers apply only to models that have them.
  for (const layer of [overall, datasetLayer]) {
    for (const key of [...layer.values.keys()]) {
      if (isModelKey(key) && !modelKeys.has(key)) layer.values.delete(key);
    }
  }
  checkModelKeys(cli, model, modelKeys);

  const layers = [overall, datasetLayer, modelFile];
  const datasetDefaults = sections.datasetDefaults.get(dataset);
  if (datasetDefaults) layers.push(datasetDefaults);
  const search = searchName(
    [...layers, cli],
    [...sections.searchGrids.keys()],
    model,
  );
  const grid = search === "none" ? undefined : sections.searchGrids.get(search);
  if (grid) layers.push(grid);
  layers.push(cli);

  return finish(merge(layers), grid, model, dataset);
}

/**
 * Turns a loaded configuration into one configuration per combination of
 * the `hyper_parameters` lists, in MMRec's order: the first key (`seed`)
 * varies slowest, the last fastest.
 *
 * @param config A configuration from {@linkcode loadConfig}.
 * @returns One run configuration per combination, at least one.
 * @example
 * ```ts
 * import { expandGrid, loadConfig } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = await loadConfig({
 *   dataset: "baby",
 *   args: ["--hyper_parameters", "seed,n_layers", "--n_layers", "1,2"],
 * });
 * const runs = expandGrid(config);
 * assert.equal(runs.length, 2);
 * assert.equal(runs[1].n_layers, 2);
 * ```
 */
export function expandGrid(config: Config): RunConfig[] {
  let runs: Record<string, unknown>[] = [{ ...config }];
  for (const key of config.hyper_parameters) {
    const value = (config as Record<string, unknown>)[key];
    const choices = Array.isArray(value) ? value : [value];
    runs = runs.flatMap((run) =>
      choices.map((choice) => ({ ...run, [key]: choice }))
    );
  }
  return runs.map((run) =>
    ({
      ...run,
      hyper_parameters: [...config.hyper_parameters],
      metrics: [...config.metrics],
      topk: [...config.topk],
      learning_rate_scheduler: [...config.learning_rate_scheduler],
    }) as RunConfig
  );
}

/**
 * Formats a configuration as MMRec prints it: one `key=value` line per key,
 * model and dataset first.
 *
 * @param config A loaded or run configuration.
 * @returns The lines, joined by newlines.
 * @example
 * ```ts
 * import { formatConfig, loadConfig } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * const text = formatConfig(await loadConfig({ dataset: "baby" }));
 * assert.ok(text.includes("\nknn_k=10\n"));
 * ```
 */
export function formatConfig(config: Config | RunConfig): string {
  const record = config as Record<string, unknown>;
  const keys = ["model", "dataset", ...Object.keys(CONFIG_KEYS)];
  return keys
    .filter((key) => record[key] !== undefined)
    .map((key) => `${key}=${formatValue(record[key])}`)
    .join("\n");
}

/**
 * Describes every key for `--help` and the README: name, type and what it
 * does, one line each.
 *
 * @returns The lines, joined by newlines.
 * @example
 * ```ts
 * import { describeKeys } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(describeKeys().includes("--knn_k"));
 * ```
 */
export function describeKeys(): string {
  return (Object.entries(CONFIG_KEYS) as [string, KeySpec][])
    .map(([key, spec]) =>
      `  --${key} (${describeType(spec)})\n      ${spec.description}`
    )
    .join("\n");
}

/**
 * The models with a file in `<configDir>/model/`, sorted.
 *
 * @param configDir The config folder; default: our embedded `configs/`.
 * @returns Model names such as `BPR`, `LightGCN`, `MSCA`.
 * @example
 * ```ts
 * import { listModels } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(listModels().includes("MSCA"));
 * ```
 */
export function listModels(configDir?: string): string[] {
  return configSource(configDir).names("model", true);
}

/**
 * The datasets one can name with `-d`: those with a file in
 * `<configDir>/dataset/`, and every folder `<dataPath>/<name>/` that holds
 * `<name>.inter`.
 *
 * @param configDir The config folder; default: our embedded `configs/`.
 * @param dataPath The data folder (`data_path`); default `data/`.
 * @returns The names, sorted.
 * @example
 * ```ts
 * import { listDatasets } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(listDatasets().includes("baby"));
 * ```
 */
export function listDatasets(
  configDir?: string,
  dataPath = "data/",
): string[] {
  return datasetNames(configSource(configDir), dataPath);
}

function datasetNames(source: ConfigSource, dataPath: string): string[] {
  const names = new Set(source.names("dataset", false));
  let entries: string[] = [];
  try {
    entries = readdirSync(dataPath);
  } catch {
    // No data folder yet: only the configured datasets exist.
  }
  for (const name of entries) {
    if (existsSync(join(dataPath, name, `${name}.inter`))) names.add(name);
  }
  return [...names].sort();
}

/**
 * Where config files come from: a folder read at run time, or the files of
 * `configs/` embedded in the module graph. Files are named by their path
 * under the folder without `.yaml`: `overall`, `model/MSCA`, `dataset/baby`.
 */
interface ConfigSource {
  /** The file's text; undefined when there is no such file. */
  read(name: string): string | undefined;
  /** The names of the YAML files in `model/` or `dataset/`, sorted. */
  names(folder: "model" | "dataset", required: boolean): string[];
  /** The file's path (or URL), as messages and `ConfigError.file` name it. */
  file(name: string): string;
}

function configSource(configDir: string | undefined): ConfigSource {
  return configDir === undefined ? EMBEDDED_SOURCE : folderSource(configDir);
}

const EMBEDDED_SOURCE: ConfigSource = {
  read(name) {
    return Object.hasOwn(EMBEDDED_CONFIGS, name)
      ? EMBEDDED_CONFIGS[name]
      : undefined;
  },
  names(folder) {
    return Object.keys(EMBEDDED_CONFIGS)
      .filter((name) => name.startsWith(`${folder}/`))
      .map((name) => name.slice(folder.length + 1))
      .sort();
  },
  file(name) {
    const url = new URL(`${name}.yaml`, EMBEDDED_CONFIGS_URL);
    return url.protocol === "file:" ? fileURLToPath(url) : url.href;
  },
};

function folderSource(configDir: string): ConfigSource {
  const file = (name: string) => join(configDir, `${name}.yaml`);
  return {
    read(name) {
      try {
        return readFileSync(file(name), "utf8");
      } catch (error) {
        if (error instanceof Error && isNotFound(error)) return undefined;
        throw new ConfigError(
          `${file(name)}: cannot read the config file (${error})`,
          { file: file(name) },
        );
      }
    },
    names(folder, required) {
      const path = join(configDir, folder);
      let entries: string[] = [];
      try {
        entries = readdirSync(path);
      } catch {
        if (required) {
          throw new ConfigError(`${path}: config folder not found`, {
            file: path,
          });
        }
      }
      return entries
        .filter((name) => name.endsWith(".yaml"))
        .map((name) => name.slice(0, -".yaml".length))
        .sort();
    },
    file,
  };
}

/** Command-line overrides, values as text or already typed. */
interface Overrides {
  model?: string;
  dataset?: string;
  values: Record<string, unknown>;
}

function readOverrides(args: LoadConfigOptions["args"]): Overrides {
  if (args === undefined) return { values: {} };
  if (Array.isArray(args)) return parseCommandLine(args as string[]);
  const candidate = args as CommandLine;
  if (
    typeof candidate.values === "object" &&
    typeof candidate.flags === "object" &&
    Array.isArray(candidate.positionals)
  ) {
    return candidate;
  }
  const values: Record<string, unknown> = { ...args };
  const model = values.model;
  const dataset = values.dataset;
  delete values.model;
  delete values.dataset;
  for (const key of Object.keys(values)) {
    checkKeyName(key, "in the argument map");
  }
  return {
    model: model === undefined ? undefined : String(model),
    dataset: dataset === undefined ? undefined : String(dataset),
    values,
  };
}

function pickName(
  what: string,
  option: string | undefined,
  fromArgs: string | undefined,
): string | undefined {
  if (option !== undefined && fromArgs !== undefined && option !== fromArgs) {
    throw new ConfigError(
      `two ${what}s given: "${option}" and "${fromArgs}"; name one`,
    );
  }
  return option ?? fromArgs;
}

function isModelKey(key: string): boolean {
  return specOf(key)?.scope === "model";
}

function specOf(key: string): KeySpec | undefined {
  return Object.hasOwn(CONFIG_KEYS, key)
    ? (CONFIG_KEYS as Record<string, KeySpec>)[key]
    : undefined;
}

/**
 * Checks that `key` names a config key.
 *
 * @param key The name to check.
 * @param where Where it was found, for the message.
 * @param extra Other names valid at that place (entry-point flags).
 * @throws {ConfigError} Naming the key and the nearest known one.
 * @example
 * ```ts
 * import { checkKeyName, ConfigError } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * checkKeyName("knn_k", "on the command line");
 * assert.throws(
 *   () => checkKeyName("knn", "on the command line"),
 *   (error) => error instanceof ConfigError && /"knn_k"/.test(error.message),
 * );
 * ```
 */
export function checkKeyName(
  key: string,
  where: string,
  extra: readonly string[] = [],
): void {
  if (specOf(key) || extra.includes(key)) return;
  if (Object.hasOwn(MMREC_ONLY_KEYS, key)) {
    throw new ConfigError(
      `"${key}" ${where} is an MMRec key that msca-deno does not use: ` +
        `${MMREC_ONLY_KEYS[key]}`,
      { key },
    );
  }
  if (key === "model" || key === "dataset") {
    throw new ConfigError(
      `"${key}" ${where} is not a config key: name the ${key} with ` +
        `${key === "model" ? "-m" : "-d"}`,
      { key },
    );
  }
  const known = [...Object.keys(CONFIG_KEYS), ...extra];
  throw new ConfigError(
    `unknown config key "${key}" ${where}${suggest(key, known, true)}`,
    { key },
  );
}

/**
 * `; did you mean "x"?` when a known name is close to `name`; with
 * `always`, names the nearest known name even when it is not close.
 */
function suggest(name: string, known: readonly string[], always = false) {
  const nearest = nearestName(name, known);
  if (nearest === undefined) return "";
  const distance = editDistance(name.toLowerCase(), nearest.toLowerCase());
  if (distance <= Math.max(2, Math.floor(name.length / 3))) {
    return `; did you mean "${nearest}"?`;
  }
  return always
    ? `; the nearest known key is "${nearest}" (--help lists them all)`
    : "";
}

/**
 * The known name nearest to `name` by edit distance (case-insensitive).
 *
 * @param name A misspelt name.
 * @param known The valid names.
 * @returns The nearest valid name, or undefined when `known` is empty.
 * @example
 * ```ts
 * import { nearestName } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   nearestName("lerning_rate", ["learning_rate", "tau"]),
 *   "learning_rate",
 * );
 * ```
 */
export function nearestName(
  name: string,
  known: readonly string[],
): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Optimal string alignment distance (Levenshtein plus transpositions). */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const table = new Array<number>(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) table[i * cols] = i;
  for (let j = 0; j < cols; j++) table[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(
        table[(i - 1) * cols + j] + 1,
        table[i * cols + j - 1] + 1,
        table[(i - 1) * cols + j - 1] + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        value = Math.min(value, table[(i - 2) * cols + j - 2] + 1);
      }
      table[i * cols + j] = value;
    }
  }
  return table[rows * cols - 1];
}

/** Reads one YAML file into a layer; undefined when optional and absent. */
function readLayer(
  source: ConfigSource,
  name: string,
  kind: "overall" | "dataset" | "model",
): Layer | undefined {
  const file = source.file(name);
  const text = source.read(name);
  if (text === undefined) {
    if (kind === "dataset") return undefined;
    throw new ConfigError(`${file}: config file not found`, { file });
  }
  const document = parseYamlFile(text, file);
  const values = new Map<string, Value>();
  const layer: Layer = { where: `in ${shortPath(file)}`, file, values };
  for (const [key, value] of Object.entries(document)) {
    if (MODEL_SECTIONS.includes(key)) {
      if (kind !== "model") {
        throw new ConfigError(
          `${key} ${layer.where} belongs in a model's file ` +
            "(configs/model/<model>.yaml)",
          { key, file },
        );
      }
      values.set(key, value as Value);
      continue;
    }
    checkKeyName(key, layer.where);
    values.set(key, checkValue(key, value, layer.where));
  }
  return layer;
}

function isNotFound(error: Error): boolean {
  return (error as { code?: string }).code === "ENOENT" ||
    error instanceof Deno.errors.NotFound;
}

function parseYamlFile(text: string, file: string): Record<string, unknown> {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    if (error instanceof YAMLParseError) {
      const position = error.linePos?.[0];
      const problem = error.message.split("\n")[0]
        .replace(/ at line \d+, column \d+:?$/, "");
      const place = position ? `:${position.line}:${position.col}` : "";
      throw new ConfigError(`${file}${place}: malformed YAML: ${problem}`, {
        file,
      });
    }
    throw error;
  }
  if (document === null || document === undefined) return {};
  if (typeof document !== "object" || Array.isArray(document)) {
    throw new ConfigError(
      `${file}: expected a mapping of "key: value" lines, got ` +
        `${Array.isArray(document) ? "a list" : JSON.stringify(document)}`,
      { file },
    );
  }
  return document as Record<string, unknown>;
}

interface ModelSections {
  datasetDefaults: Map<string, Layer>;
  searchGrids: Map<string, Layer>;
}

/** Splits `dataset_defaults` and `search_grids` off a model file's layer. */
function takeSections(
  modelFile: Layer,
  modelKeys: ReadonlySet<string>,
): ModelSections {
  const file = modelFile.file!;
  const sections: ModelSections = {
    datasetDefaults: new Map(),
    searchGrids: new Map(),
  };
  for (const section of MODEL_SECTIONS) {
    const raw = modelFile.values.get(section) as unknown;
    modelFile.values.delete(section);
    if (raw === undefined || raw === null) continue;
    if (typeof raw !== "object" || Array.isArray(raw)) {
      throw new ConfigError(
        `${file}: ${section} must map names to "key: value" mappings`,
        { file, key: section },
      );
    }
    for (const [name, body] of Object.entries(raw as object)) {
      const where = `in ${shortPath(file)} (${section}.${name})`;
      if (body === null || typeof body !== "object" || Array.isArray(body)) {
        throw new ConfigError(`${name} ${where}: expected a mapping`, {
          file,
          key: section,
        });
      }
      const values = new Map<string, Value>();
      for (const [key, value] of Object.entries(body as object)) {
        checkKeyName(key, where);
        if (isModelKey(key) && !modelKeys.has(key)) {
          throw new ConfigError(
            `"${key}" ${where} is not a parameter of this model (set it ` +
              "at the top of the file first)",
            { file, key },
          );
        }
        if (section === "search_grids") {
          values.set(key, checkGridValue(key, value, where));
        } else {
          values.set(key, checkValue(key, value, where));
        }
      }
      const target = section === "search_grids"
        ? sections.searchGrids
        : sections.datasetDefaults;
      target.set(name, { where, file, values });
    }
  }
  return sections;
}

function checkGridValue(key: string, value: unknown, where: string): Value {
  const spec = specOf(key)!;
  if (!spec.searchable) {
    throw new ConfigError(
      `"${key}" ${where} cannot be searched; searchable keys: ` +
        `${searchableKeys().join(", ")}`,
      { key },
    );
  }
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) {
    throw new ConfigError(`${key} ${where} is an empty list`, { key });
  }
  return list.map((item) => checkScalar(key, spec, item, where));
}

function searchableKeys(): string[] {
  return (Object.entries(CONFIG_KEYS) as [string, KeySpec][])
    .filter(([, spec]) => spec.searchable)
    .map(([key]) => key);
}

/** Command-line values typed by the schema. */
function commandLineLayer(commandLine: Overrides): Layer {
  const values = new Map<string, Value>();
  for (const [key, raw] of Object.entries(commandLine.values)) {
    checkKeyName(key, "on the command line");
    const value = typeCommandLineValue(key, raw);
    values.set(key, checkValue(key, value, "on the command line"));
  }
  return { where: "on the command line", values };
}

/**
 * Reads command-line text as the schema expects: strings verbatim, lists as
 * `[a, b]` or `a,b`, everything else as a YAML scalar.
 */
function typeCommandLineValue(key: string, raw: unknown): unknown {
  if (typeof raw !== "string") return raw;
  const spec = specOf(key)!;
  const text = raw.trim();
  const isList = spec.type.endsWith("[]");
  if (spec.type === "string" || spec.type === "enum") return raw;
  if (text.startsWith("[")) {
    try {
      return parseYaml(text);
    } catch (error) {
      const problem = error instanceof Error
        ? error.message.split("\n")[0]
        : String(error);
      throw new ConfigError(
        `--${key}: cannot read ${JSON.stringify(raw)} as a list (${problem})`,
        { key },
      );
    }
  }
  if (isList || (spec.searchable && text.includes(","))) {
    const items = text === "" ? [] : text.split(",").map((item) => item.trim());
    return spec.type === "string[]" ? items : items.map(yamlScalar);
  }
  return yamlScalar(text);
}

function yamlScalar(text: string): unknown {
  try {
    const value = parseYaml(text);
    return typeof value === "object" && value !== null ? text : value;
  } catch {
    return text;
  }
}

function checkModelKeys(
  cli: Layer,
  model: string,
  modelKeys: ReadonlySet<string>,
): void {
  for (const key of cli.values.keys()) {
    if (isModelKey(key) && !modelKeys.has(key)) {
      const own = [...modelKeys].join(", ") || "none";
      throw new ConfigError(
        `--${key} is not a parameter of ${model} (its parameters: ${own})`,
        { key },
      );
    }
  }
}

function checkDatasetName(dataset: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(dataset)) {
    throw new ConfigError(
      `dataset name "${dataset}" must be a folder name under data_path ` +
        "(letters, digits, '_', '-', '.')",
    );
  }
}

/**
 * A dataset without a config file must be a folder holding its `.inter`;
 * its layer is then empty (the defaults of `overall.yaml` apply).
 */
function requireDataFolder(
  source: ConfigSource,
  dataset: string,
  overall: Layer,
  cli: Layer,
): Layer {
  const dataPath = (cli.values.get("data_path") ??
    overall.values.get("data_path") ?? "data/") as string;
  const interFile = (cli.values.get("inter_file_name") ??
    `${dataset}.inter`) as string;
  const folder = join(dataPath, dataset);
  let isFile = false;
  try {
    isFile = statSync(join(folder, interFile)).isFile();
  } catch {
    // Absent: reported below with the choices.
  }
  if (isFile) {
    return { where: "in the defaults", values: new Map<string, Value>() };
  }
  const choices = datasetNames(source, dataPath);
  throw new ConfigError(
    `unknown dataset "${dataset}": there is ` +
      `no ${shortPath(source.file(`dataset/${dataset}`))} and ` +
      `no ${shortPath(join(folder, interFile))}; choose one of: ` +
      choices.join(", ") + suggest(dataset, choices),
  );
}

function searchName(
  layers: Layer[],
  grids: readonly string[],
  model: string,
): string {
  let search = "none";
  let where = "";
  for (const layer of layers) {
    const value = layer.values.get("search");
    if (value !== undefined) {
      search = value as string;
      where = layer.where;
    }
  }
  if (search === "none" || grids.includes(search)) return search;
  const choices = ["none", ...grids];
  throw new ConfigError(
    `search "${search}" ${where} is not a grid of ${model}; choose one ` +
      `of: ${choices.join(", ")}${suggest(search, choices)}`,
    { key: "search" },
  );
}

interface Merged {
  values: Map<string, Value>;
  where: Map<string, string>;
}

function merge(layers: readonly Layer[]): Merged {
  const merged: Merged = { values: new Map(), where: new Map() };
  for (const layer of layers) {
    for (const [key, value] of layer.values) {
      merged.values.set(key, value);
      merged.where.set(key, layer.where);
    }
  }
  return merged;
}

/** Grid lists, required keys and the checks across keys. */
function finish(
  merged: Merged,
  grid: Layer | undefined,
  model: string,
  dataset: string,
): Config {
  const { values, where } = merged;
  const hyper = [...(values.get("hyper_parameters") ?? []) as string[]];
  for (const key of grid?.values.keys() ?? []) {
    if (!hyper.includes(key)) hyper.push(key);
  }
  const searched = ["seed", ...hyper.filter((key) => key !== "seed")];
  for (const key of searched) {
    const from = where.get("hyper_parameters") ?? "in the defaults";
    checkKeyName(key, `in hyper_parameters ${from}`);
    const spec = specOf(key)!;
    if (!spec.searchable) {
      throw new ConfigError(
        `hyper_parameters ${from} lists "${key}", which cannot be ` +
          `searched; searchable keys: ${searchableKeys().join(", ")}`,
        { key: "hyper_parameters" },
      );
    }
    if (!values.has(key)) {
      throw new ConfigError(
        `hyper_parameters ${from} lists "${key}", which ${model} has no ` +
          "value for",
        { key: "hyper_parameters" },
      );
    }
    if (searched.indexOf(key) !== searched.lastIndexOf(key)) {
      throw new ConfigError(
        `hyper_parameters ${from} lists "${key}" twice`,
        { key: "hyper_parameters" },
      );
    }
  }
  values.set("hyper_parameters", searched);

  for (const [key, value] of values) {
    const spec = specOf(key)!;
    if (searched.includes(key)) {
      if (value === undefined) continue;
      const list = Array.isArray(value) ? value : [value];
      if (list.length === 0) {
        throw new ConfigError(
          `${key} ${where.get(key)} is an empty list; a searched key ` +
            "needs at least one value",
          { key },
        );
      }
      values.set(key, list);
    } else if (Array.isArray(value) && !spec.type.endsWith("[]")) {
      throw new ConfigError(
        `${key} ${where.get(key)}: expected ${describeType(spec)}, got ` +
          `${JSON.stringify(value)}; to search over several values list ` +
          `it in hyper_parameters (e.g. --hyper_parameters seed,${key})`,
        { key },
      );
    }
  }

  if (!values.has("inter_file_name")) {
    values.set("inter_file_name", `${dataset}.inter`);
  }
  for (
    const [key, spec] of Object.entries(CONFIG_KEYS) as [
      string,
      KeySpec,
    ][]
  ) {
    if (spec.optional || spec.scope === "model" || values.has(key)) continue;
    throw new ConfigError(
      `"${key}" has no value: set it in overall.yaml or with --${key}`,
      { key },
    );
  }
  checkAcrossKeys(values, where);

  const config: Record<string, unknown> = { model, dataset };
  for (const key of Object.keys(CONFIG_KEYS)) {
    if (values.has(key)) config[key] = values.get(key);
  }
  return config as Config;
}

function checkAcrossKeys(
  values: Map<string, Value>,
  where: Map<string, string>,
): void {
  const metrics = values.get("metrics") as string[];
  const topk = values.get("topk") as number[];
  const validMetric = values.get("valid_metric") as string;
  const match = /^([A-Za-z]+)@(\d+)$/.exec(validMetric.trim());
  const metric = match
    ? metrics.find((name) => name.toLowerCase() === match[1].toLowerCase())
    : undefined;
  if (!match || !metric || !topk.includes(Number(match[2]))) {
    throw new ConfigError(
      `valid_metric ${where.get("valid_metric")}: expected <metric>@<K> ` +
        `with a metric from metrics (${metrics.join(", ")}) and K from ` +
        `topk (${topk.join(", ")}), got ${JSON.stringify(validMetric)}`,
      { key: "valid_metric" },
    );
  }
  values.set("valid_metric", `${metric}@${match[2]}`);

  if (values.get("use_neg_sampling") !== true) {
    throw new ConfigError(
      `use_neg_sampling ${where.get("use_neg_sampling")}: false is not ` +
        "supported: every model here trains on (user, positive, negative) " +
        "triples",
      { key: "use_neg_sampling" },
    );
  }
  if (values.get("field_separator") === "") {
    throw new ConfigError(
      `field_separator ${where.get("field_separator")} is empty; ` +
        'expected a separator such as "\\t"',
      { key: "field_separator" },
    );
  }
}

/**
 * Checks one value against its key's type; keys that can be searched may
 * hold a list of their type (whether they are searched is checked after
 * merging).
 */
function checkValue(key: string, value: unknown, where: string): Value {
  const spec = specOf(key)!;
  if (spec.type.endsWith("[]")) {
    const list = Array.isArray(value) ? value : [value];
    if (spec.length !== undefined && list.length !== spec.length) {
      throw typeError(key, spec, value, where);
    }
    if (spec.nonEmpty && list.length === 0) {
      throw typeError(key, spec, value, where);
    }
    return list.map((item) => checkScalar(key, spec, item, where, value));
  }
  if (Array.isArray(value) && spec.searchable) {
    return value.map((item) => checkScalar(key, spec, item, where, value));
  }
  return checkScalar(key, spec, value, where);
}

/** Checks one scalar (or one list item) against its key's type. */
function checkScalar(
  key: string,
  spec: KeySpec,
  value: unknown,
  where: string,
  whole: unknown = value,
): Scalar {
  const type = spec.type.replace("[]", "");
  const fail = () => typeError(key, spec, whole, where);
  if (type === "integer" || type === "number") {
    if (typeof value !== "number" || !Number.isFinite(value)) throw fail();
    if (type === "integer" && !Number.isSafeInteger(value)) throw fail();
    if (spec.min !== undefined && value < spec.min) throw fail();
    if (spec.above !== undefined && value <= spec.above) throw fail();
    if (spec.max !== undefined && value > spec.max) throw fail();
    return value;
  }
  if (type === "boolean") {
    if (typeof value !== "boolean") throw fail();
    return value;
  }
  if (typeof value !== "string") throw fail();
  if (type === "enum" || spec.choices) {
    const choice = spec.choices!.find((name) =>
      name.toLowerCase() === value.toLowerCase()
    );
    if (choice === undefined) throw fail();
    return choice;
  }
  return value;
}

function typeError(
  key: string,
  spec: KeySpec,
  value: unknown,
  where: string,
): ConfigError {
  return new ConfigError(
    `${key} ${where}: expected ${describeType(spec)}, got ` +
      `${value === undefined ? "no value" : JSON.stringify(value)}`,
    { key },
  );
}

/** "an integer ≥ 1", "a list of 2 numbers > 0", "one of cpu, webgpu", … */
function describeType(spec: KeySpec): string {
  const bounds = [
    spec.min !== undefined ? `≥ ${spec.min}` : "",
    spec.above !== undefined ? `> ${spec.above}` : "",
    spec.max !== undefined ? `≤ ${spec.max}` : "",
  ].filter((text) => text !== "").join(" and ");
  const bound = bounds === "" ? "" : ` ${bounds}`;
  switch (spec.type) {
    case "integer":
      return `an integer${bound}`;
    case "number":
      return `a number${bound}`;
    case "boolean":
      return "true or false";
    case "string":
      return "a string";
    case "enum":
      return `one of ${spec.choices!.join(", ")}`;
    case "string[]":
      return spec.choices
        ? `a list of ${spec.choices.join(", ")}`
        : "a list of strings";
    default: {
      const count = spec.length !== undefined ? `${spec.length} ` : "";
      const noun = spec.type === "integer[]" ? "integers" : "numbers";
      const empty = spec.nonEmpty ? "a non-empty " : "a ";
      return `${empty}list of ${count}${noun}${bound}`;
    }
  }
}

/** A path relative to the working folder when it lies inside it. */
function shortPath(path: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) return path; // A URL.
  const inside = relative(Deno.cwd(), path);
  return inside.startsWith("..") || isAbsolute(inside) ? path : inside;
}

function formatValue(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(formatValue).join(", ")}]`;
  if (typeof value === "number" && value !== 0 && Math.abs(value) < 1e-3) {
    return value.toExponential();
  }
  if (typeof value === "string" && /[\s,\[\]"]|^$/.test(value)) {
    return JSON.stringify(value);
  }
  return String(value);
}
