/**
 * The in-memory form of a dataset in MMRec's layout (spec section 1), its
 * loader and the statistics MMRec logs about it.
 *
 * @module
 */

import { join } from "node:path";
import { DataError } from "./errors.ts";
import { DEFAULT_INTER_COLUMNS, readInter } from "./inter.ts";
import { readFloat32Npy } from "./npy.ts";

/** Interactions of one split as parallel arrays of 0-based IDs. */
export interface Interactions {
  /** User ID of each row. */
  users: Int32Array;
  /** Item ID of each row. */
  items: Int32Array;
}

/** A row-major float32 matrix of item features, one row per item. */
export interface FeatureTable {
  /** Number of rows; equals the dataset's item count. */
  rows: number;
  /** Feature width (4096 for image, 384 for text in the real datasets). */
  cols: number;
  /** `rows × cols` values, row-major. */
  data: Float32Array;
}

/** The modalities MSCA knows, in the order the fusion uses them. */
export type Modality = "image" | "text";

/** A loaded dataset: splits, counts and the modality features. */
export interface Dataset {
  /** Dataset name (folder name under `data_path`). */
  name: string;
  /** `U = max(userID) + 1` over the whole file. */
  userCount: number;
  /** `I = max(itemID) + 1` over the whole file. */
  itemCount: number;
  /** Train split (`x_label` 0). */
  train: Interactions;
  /** Valid split (`x_label` 1), cold-start users filtered out. */
  valid: Interactions;
  /** Test split (`x_label` 2), cold-start users filtered out. */
  test: Interactions;
  /** Features present, keyed by modality; at least one may be absent. */
  features: Partial<Record<Modality, FeatureTable>>;
  /**
   * Train items of each user as CSR: user `u` owns
   * `trainItems[trainOffsets[u] .. trainOffsets[u + 1]]`, sorted ascending.
   */
  trainOffsets: Int32Array;
  /** See `trainOffsets`. */
  trainItems: Int32Array;
  /** Valid/test rows dropped by the cold-start filter, when known. */
  coldStartRowsDropped?: number;
}

/**
 * Where and how to load a dataset, under MMRec's config key names; a full
 * `Config` object can be passed as it is. Unset keys take MMRec's defaults.
 */
export interface LoadDatasetOptions {
  /** Folder holding one folder per dataset (default `data`). */
  data_path?: string | null;
  /** Dataset name: the folder under `data_path`. */
  dataset: string;
  /** Interactions file name (default `<dataset>.inter`). */
  inter_file_name?: string | null;
  /** User ID column (default `userID`). */
  USER_ID_FIELD?: string | null;
  /** Item ID column (default `itemID`). */
  ITEM_ID_FIELD?: string | null;
  /** Split column: 0 train, 1 valid, 2 test (default `x_label`). */
  inter_splitting_label?: string | null;
  /** One-character field separator (default a tab). */
  field_separator?: string | null;
  /** Image feature file (default `image_feat.npy`); `""` skips it. */
  vision_feature_file?: string | null;
  /** Text feature file (default `text_feat.npy`); `""` skips it. */
  text_feature_file?: string | null;
  /** Drop valid/test rows of users with no train row (default true). */
  filter_out_cod_start_users?: boolean | null;
}

/** The parts {@linkcode createDataset} assembles a {@linkcode Dataset} from. */
export interface DatasetParts {
  /** Dataset name. */
  name: string;
  /** User ID of each row. */
  users: Int32Array;
  /** Item ID of each row. */
  items: Int32Array;
  /** Split of each row: 0 train, 1 valid, 2 test. */
  labels: Uint8Array;
  /** Feature tables; their row counts must equal the item count. */
  features?: Partial<Record<Modality, FeatureTable>>;
  /** Drop valid/test rows of users with no train row (default true). */
  filterColdStartUsers?: boolean;
  /** File name for error messages (default the dataset name). */
  source?: string;
}

/**
 * Loads a dataset in MMRec's layout: `<data_path>/<dataset>/<dataset>.inter`
 * and whichever of `image_feat.npy` and `text_feat.npy` exist (at least
 * one). Feature values are checked: finite, and no all-zero row, since
 * cosine similarity is undefined there.
 *
 * @param options MMRec config keys (a `Config` object will do).
 * @returns The dataset, with its splits, counts, train CSR and features.
 * @throws {DataError} For any bad input, naming the file and what was
 * expected.
 * @example
 * ```ts
 * import { loadDataset } from "./dataset.ts";
 * import assert from "node:assert/strict";
 *
 * const dataset = loadDataset({
 *   data_path: "tests/fixtures/msca-tiny/data",
 *   dataset: "tiny",
 * });
 * assert.equal(dataset.userCount, 60);
 * assert.equal(dataset.itemCount, 150);
 * ```
 */
export function loadDataset(options: LoadDatasetOptions): Dataset {
  const name = options.dataset;
  const folder = join(options.data_path ?? "data", name);
  if (!isDirectory(folder)) {
    throw new DataError(
      folder,
      `dataset folder not found; expected a folder holding ${
        options.inter_file_name ?? `${name}.inter`
      } and image_feat.npy and/or text_feat.npy (check data_path and ` +
        `dataset)`,
    );
  }

  const interPath = join(folder, options.inter_file_name ?? `${name}.inter`);
  const rows = readInter(interPath, {
    userField: options.USER_ID_FIELD ?? DEFAULT_INTER_COLUMNS.userField,
    itemField: options.ITEM_ID_FIELD ?? DEFAULT_INTER_COLUMNS.itemField,
    labelField: options.inter_splitting_label ??
      DEFAULT_INTER_COLUMNS.labelField,
    separator: options.field_separator ?? DEFAULT_INTER_COLUMNS.separator,
  });
  const itemCount = maximum(rows.items) + 1;

  const featureFiles: [Modality, string][] = [
    ["image", options.vision_feature_file ?? "image_feat.npy"],
    ["text", options.text_feature_file ?? "text_feat.npy"],
  ];
  const features: Partial<Record<Modality, FeatureTable>> = {};
  for (const [modality, file] of featureFiles) {
    if (file === "") continue;
    const path = join(folder, file);
    if (!isFile(path)) continue;
    features[modality] = readFeatureTable(path, itemCount, interPath);
  }
  if (Object.keys(features).length === 0) {
    const expected = featureFiles.map(([, file]) => file).filter((file) =>
      file !== ""
    );
    throw new DataError(
      folder,
      `no feature file found; expected ${
        expected.join(" and/or ")
      } (vision_feature_file, text_feature_file) in this folder`,
    );
  }

  return createDataset({
    name,
    ...rows,
    features,
    filterColdStartUsers: options.filter_out_cod_start_users ?? true,
    source: interPath,
  });
}

/**
 * Assembles a dataset from rows already in memory: counts, splits, the
 * cold-start filter and the train CSR (sorted, duplicates removed).
 *
 * @param parts Rows, labels and features.
 * @returns The dataset.
 * @throws {DataError} If there is no train row or a feature table's row
 * count differs from `max(item) + 1`.
 * @example
 * ```ts
 * import { createDataset } from "./dataset.ts";
 * import assert from "node:assert/strict";
 *
 * const dataset = createDataset({
 *   name: "toy",
 *   users: new Int32Array([0, 0, 1, 1]),
 *   items: new Int32Array([2, 0, 1, 2]),
 *   labels: new Uint8Array([0, 0, 0, 2]),
 * });
 * assert.deepEqual([...dataset.trainItems], [0, 2, 1]);
 * ```
 */
export function createDataset(parts: DatasetParts): Dataset {
  const { users, items, labels } = parts;
  const source = parts.source ?? parts.name;
  const rowCount = users.length;
  if (items.length !== rowCount || labels.length !== rowCount) {
    throw new RangeError(
      `createDataset(): users, items and labels must have one entry per ` +
        `row; got ${rowCount}, ${items.length}, ${labels.length}`,
    );
  }
  const userCount = rowCount > 0 ? maximum(users) + 1 : 0;
  const itemCount = rowCount > 0 ? maximum(items) + 1 : 0;

  const hasTrain = new Uint8Array(userCount);
  const splitSizes = [0, 0, 0];
  for (let row = 0; row < rowCount; row++) {
    if (users[row] < 0 || items[row] < 0 || labels[row] > 2) {
      throw new RangeError(
        `createDataset(): row ${row} has user ${users[row]}, item ` +
          `${items[row]}, label ${labels[row]}; expected non-negative IDs ` +
          `and a label of 0, 1 or 2`,
      );
    }
    if (labels[row] === 0) hasTrain[users[row]] = 1;
    splitSizes[labels[row]]++;
  }
  if (splitSizes[0] === 0) {
    throw new DataError(
      source,
      `no train rows (label 0) among ${rowCount} rows; expected the ` +
        `splitting column to mark train rows with 0`,
    );
  }
  const filter = parts.filterColdStartUsers ?? true;
  const splits = [0, 1, 2].map((split) => {
    let size = 0;
    for (let row = 0; row < rowCount; row++) {
      if (labels[row] === split && (!filter || hasTrain[users[row]])) size++;
    }
    const part = { users: new Int32Array(size), items: new Int32Array(size) };
    let next = 0;
    for (let row = 0; row < rowCount; row++) {
      if (labels[row] === split && (!filter || hasTrain[users[row]])) {
        part.users[next] = users[row];
        part.items[next++] = items[row];
      }
    }
    return part;
  });

  const features = parts.features ?? {};
  for (const [modality, table] of Object.entries(features)) {
    if (table && table.rows !== itemCount) {
      throw new DataError(
        source,
        `${modality} features have ${table.rows} rows; expected one per ` +
          `item: ${itemCount} (max item ID + 1)`,
      );
    }
  }

  const { offsets, items: trainItems } = trainCsr(splits[0], userCount);
  return {
    name: parts.name,
    userCount,
    itemCount,
    train: splits[0],
    valid: splits[1],
    test: splits[2],
    features,
    trainOffsets: offsets,
    trainItems,
    coldStartRowsDropped: splitSizes[1] + splitSizes[2] -
      splits[1].users.length - splits[2].users.length,
  };
}

/**
 * Reads and checks one modality's feature file: a 2-D float array with one
 * row per item, finite values and no all-zero row.
 *
 * @param path The `.npy` file.
 * @param itemCount The dataset's item count.
 * @param interPath The `.inter` file the item count came from (for the
 * message).
 * @returns The feature table (float32, row-major).
 * @throws {DataError} Naming the file, and the row where values are bad.
 * @example
 * ```ts
 * import { readFeatureTable } from "./dataset.ts";
 * import assert from "node:assert/strict";
 *
 * const table = readFeatureTable(
 *   "tests/fixtures/msca-tiny/data/tiny/text_feat.npy",
 *   150,
 * );
 * assert.equal(table.cols, 8);
 * ```
 */
export function readFeatureTable(
  path: string,
  itemCount: number,
  interPath = "the .inter file",
): FeatureTable {
  const array = readFloat32Npy(path);
  if (array.shape.length !== 2) {
    throw new DataError(
      path,
      `feature array has shape (${array.shape.join(", ")}); expected a ` +
        `2-D array (items × feature dimensions)`,
    );
  }
  const [rows, cols] = array.shape;
  if (rows !== itemCount) {
    throw new DataError(
      path,
      `feature array has ${rows} rows; expected one row per item: ` +
        `${itemCount} (max itemID + 1 in ${interPath})`,
    );
  }
  if (cols === 0) {
    throw new DataError(
      path,
      "feature array has 0 columns; expected at least one",
    );
  }

  const data = array.data;
  for (let i = 0; i < data.length; i++) {
    // value - value is NaN exactly for NaN and ±Infinity.
    if (data[i] - data[i] !== 0) {
      const row = Math.floor(i / cols);
      throw new DataError(
        path,
        `row ${row} (item ${row}) holds ${data[i]} at column ${
          i - row * cols
        }; expected finite feature values`,
      );
    }
  }
  for (let row = 0; row < rows; row++) {
    let column = 0;
    while (column < cols && data[row * cols + column] === 0) column++;
    if (column === cols) {
      throw new DataError(
        path,
        `row ${row} (item ${row}) is all zeros; expected a non-zero ` +
          `feature vector, since the cosine similarity of the modality ` +
          `kNN graph is undefined for it`,
      );
    }
  }
  return { rows, cols, data };
}

/**
 * The statistics MMRec logs when it loads a dataset: users, items,
 * interactions, average actions and sparsity, for the whole dataset and for
 * each split. Counts are of distinct users and items present, as in MMRec.
 *
 * @param dataset A loaded dataset.
 * @returns The log lines, in order.
 * @example
 * ```ts
 * import { datasetStatistics, loadDataset } from "./dataset.ts";
 * import assert from "node:assert/strict";
 *
 * const dataset = loadDataset({
 *   data_path: "tests/fixtures/msca-tiny/data",
 *   dataset: "tiny",
 * });
 * assert.ok(
 *   datasetStatistics(dataset).includes("The number of inters: 393"),
 * );
 * ```
 */
export function datasetStatistics(dataset: Dataset): string[] {
  const all = {
    users: concat(dataset.train.users, dataset.valid.users, dataset.test.users),
    items: concat(dataset.train.items, dataset.valid.items, dataset.test.items),
  };
  const lines = describe(dataset.name, all);
  lines.push(
    `Embedding tables: ${dataset.userCount} users x ${dataset.itemCount} ` +
      `items (max ID + 1)`,
  );
  lines.push(
    `Features: ${
      (["image", "text"] as Modality[]).map((modality) => {
        const table = dataset.features[modality];
        return `${modality} ${
          table ? `${table.rows} x ${table.cols}` : "none"
        }`;
      }).join(", ")
    }`,
  );
  if (dataset.coldStartRowsDropped) {
    lines.push(
      `Cold-start rows dropped from valid/test: ${dataset.coldStartRowsDropped}`,
    );
  }
  const splits: [string, Interactions][] = [
    ["Training", dataset.train],
    ["Validation", dataset.valid],
    ["Testing", dataset.test],
  ];
  for (const [title, split] of splits) {
    lines.push("", `====${title}====`, ...describe(dataset.name, split));
  }
  return lines;
}

function describe(name: string, split: Interactions): string[] {
  const userCount = new Set(split.users).size;
  const itemCount = new Set(split.items).size;
  const inters = split.users.length;
  const sparsity = userCount && itemCount
    ? 1 - inters / userCount / itemCount
    : 1;
  return [
    name,
    `The number of users: ${userCount}`,
    `Average actions of users: ${pythonFloat(inters / (userCount || 1))}`,
    `The number of items: ${itemCount}`,
    `Average actions of items: ${pythonFloat(inters / (itemCount || 1))}`,
    `The number of inters: ${inters}`,
    `The sparsity of the dataset: ${pythonFloat(sparsity * 100)}%`,
  ];
}

/** Formats a float as Python's `str()` does for ordinary magnitudes. */
function pythonFloat(value: number): string {
  return Number.isInteger(value) ? value.toFixed(1) : String(value);
}

function concat(...parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function trainCsr(
  train: Interactions,
  userCount: number,
): { offsets: Int32Array; items: Int32Array } {
  const counts = new Int32Array(userCount + 1);
  for (const user of train.users) counts[user + 1]++;
  for (let user = 0; user < userCount; user++) {
    counts[user + 1] += counts[user];
  }
  const sorted = new Int32Array(train.users.length);
  const next = counts.slice(0, userCount);
  for (let row = 0; row < train.users.length; row++) {
    sorted[next[train.users[row]]++] = train.items[row];
  }

  // Sort each user's items and drop repeated (user, item) pairs.
  const offsets = new Int32Array(userCount + 1);
  let write = 0;
  for (let user = 0; user < userCount; user++) {
    const own = sorted.subarray(counts[user], counts[user + 1]).sort();
    for (let i = 0; i < own.length; i++) {
      if (i === 0 || own[i] !== own[i - 1]) sorted[write++] = own[i];
    }
    offsets[user + 1] = write;
  }
  return { offsets, items: sorted.slice(0, write) };
}

function maximum(values: Int32Array): number {
  let max = -1;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  return max;
}

function isDirectory(path: string): boolean {
  return statOrUndefined(path)?.isDirectory ?? false;
}

function isFile(path: string): boolean {
  return statOrUndefined(path)?.isFile ?? false;
}

/** `stat`, or undefined when the path does not exist; other errors throw. */
function statOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
