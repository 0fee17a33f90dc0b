/**
 * The golden check: runs a model on a fixture the reference implementation
 * wrote (layout of `tests/fixtures/msca-tiny/README.md`) and compares every
 * recorded number. Everything comes from the fixture's `meta.json` (model,
 * dataset folder, hyper-parameters, steps) and from whichever expected
 * files exist, so fixtures of other sizes, settings and models work too.
 *
 * Tolerances (the fixture README's): arrays within `1e-4 · max|reference|`
 * per entry, losses within 1e-5 relative, metrics equal at 4 decimals.
 *
 * @module
 */

import { join } from "node:path";
import type { Backend } from "./engine/backend.ts";
import { Adam } from "./engine/adam.ts";
import type { Tensor } from "./engine/tensor.ts";
import { loadDataset } from "./data/dataset.ts";
import type { Batch } from "./data/sampler.ts";
import { readFloat32Npy, readInt32Npy } from "./data/npy.ts";
import type { CsrMatrix } from "./graph/csr.ts";
import { buildGraphs } from "./graph/graphs.ts";
import { evaluate } from "./evaluation.ts";
import { createModel, modelEntry } from "./models/registry.ts";
import { Random } from "./random.ts";

/** Entry-wise array tolerance, relative to the reference's largest value. */
export const ARRAY_TOLERANCE = 1e-4;
/** Relative tolerance of every loss part. */
export const LOSS_TOLERANCE = 1e-5;
/** Metrics must agree when rounded to this many decimals. */
export const METRIC_DECIMALS = 4;

/** What a fixture's `meta.json` holds. */
export interface GoldenMeta {
  /** Model name; absent means MSCA. */
  model?: string;
  /** Dataset folder under the fixture's `data/`. */
  dataset: string;
  /** Hyper-parameters under MMRec's key names. */
  hyper: Record<string, number | boolean>;
  /** Loss parts of each step, before its update. */
  steps: Record<string, number>[];
  /** Valid metrics after the steps (4 decimals). */
  valid?: Record<string, number>;
  /** Test metrics after the steps (4 decimals). */
  test?: Record<string, number>;
}

/** One line of the golden table: the worst error of one quantity. */
export interface GoldenRow {
  /** What was compared, e.g. `step0.grad.user_embedding.weight`. */
  quantity: string;
  /** The measure: `array`, `loss`, `metric` or `structure`. */
  kind: "array" | "loss" | "metric" | "structure";
  /**
   * Worst error: for arrays `max|ours − ref| / max|ref|`, for losses the
   * relative error, for metrics the largest difference.
   */
  error: number;
  /** The bound `error` must stay within. */
  tolerance: number;
  /** Whether it did. */
  passed: boolean;
  /** Where the worst entry is, or why the comparison failed. */
  detail: string;
}

/** The outcome of {@linkcode runGoldenCheck}. */
export interface GoldenReport {
  /** The fixture folder. */
  fixture: string;
  /** The model checked. */
  model: string;
  /** The backend it ran on. */
  backend: string;
  /** One row per compared quantity, in the order they were compared. */
  rows: GoldenRow[];
  /** Whether every row passed. */
  passed: boolean;
}

/** Options of {@linkcode runGoldenCheck}. */
export interface GoldenOptions {
  /** The backend to run on. */
  backend: Backend;
}

/**
 * Runs the steps a fixture recorded and compares graphs, step-0 views,
 * loss parts, step-0 gradients, parameters after the steps and metrics.
 *
 * @param fixtureDir The fixture folder (holding `meta.json`).
 * @param options The backend.
 * @returns The table rows and the verdict.
 * @throws {Error} When `meta.json` or an input file is missing or bad
 *   (a missing *expected* file only skips that comparison).
 * @example
 * ```ts ignore
 * const report = await runGoldenCheck("tests/fixtures/msca-tiny", {
 *   backend: cpuBackend,
 * });
 * for (const line of formatGoldenTable(report)) console.log(line);
 * ```
 */
export async function runGoldenCheck(
  fixtureDir: string,
  options: GoldenOptions,
): Promise<GoldenReport> {
  const { backend } = options;
  const meta = readMeta(fixtureDir);
  const modelName = meta.model ?? "MSCA";
  const entry = modelEntry(modelName);
  const expected = (name: string) => join(fixtureDir, "expected", name);
  const rows: GoldenRow[] = [];

  const dataset = loadDataset({
    data_path: join(fixtureDir, "data"),
    dataset: meta.dataset,
  });
  const knn = meta.hyper.knn_k;
  const graphs = await buildGraphs(dataset, {
    knn_k: typeof knn === "number" ? knn : 10,
    cacheDir: null,
    modelKind: entry.graphKind,
  });
  const initialValues = readParameters(join(fixtureDir, "params"));
  const model = createModel(modelName, {
    dataset,
    graphs,
    config: meta.hyper,
    backend,
    random: new Random(0),
    initialValues,
  });
  try {
    const stateDict = model.stateDict();
    const missing = [...stateDict.keys()].filter((n) => !initialValues.has(n));
    if (missing.length > 0) {
      throw new Error(
        `${join(fixtureDir, "params")}: no initial value for ` +
          `${missing.join(", ")}; expected one <state_dict name>.npy per ` +
          "parameter",
      );
    }

    for (const [name, graph] of Object.entries(model.graphsByName())) {
      const prefix = expected(`graph.${name}`);
      if (exists(`${prefix}.rows.npy`)) {
        rows.push(...compareGraph(`graph.${name}`, graph, prefix));
      }
    }

    const learningRate = meta.hyper.learning_rate;
    const optimizer = new Adam(model.trainableParameters(), {
      learningRate: typeof learningRate === "number" ? learningRate : 1e-3,
    });
    const lossRows = new Map<string, GoldenRow>();
    for (let step = 0; step < meta.steps.length; step++) {
      const batch = readBatch(expected(`step${step}.batch.npy`));
      const output = model.loss(batch);
      if (step === 0) {
        for (const name of stepZeroViewNames(join(fixtureDir, "expected"))) {
          const view = output.views[name];
          const file = expected(`step0.${name}.npy`);
          rows.push(
            view === undefined
              ? missingRow(`step0.${name}`, `${modelName} has no such view`)
              : await compareArray(`step0.${name}`, view, file),
          );
        }
      }
      for (const [part, reference] of Object.entries(meta.steps[step])) {
        const tensor = output.parts[part];
        const row = tensor === undefined
          ? missingRow(`loss.${part}`, `${modelName} has no loss part ${part}`)
          : lossRow(part, step, await tensor.item(), reference);
        const worst = lossRows.get(part);
        if (worst === undefined || !(row.error <= worst.error)) {
          lossRows.set(part, row);
        }
      }

      optimizer.zeroGrad();
      output.loss.backward();
      output.release();
      if (step === 0) {
        for (const [name, parameter] of stateDict) {
          const file = expected(`step0.grad.${name}.npy`);
          if (!exists(file)) continue;
          const grad = (parameter as { grad: Tensor | null }).grad;
          rows.push(
            grad === null
              ? missingRow(`step0.grad.${name}`, "no gradient was computed")
              : await compareArray(`step0.grad.${name}`, grad, file),
          );
        }
      }
      optimizer.step();
    }
    optimizer.zeroGrad();
    optimizer.free();
    rows.push(...lossRows.values());

    for (const [name, parameter] of stateDict) {
      const file = expected(`after.${name}.npy`);
      if (exists(file)) {
        rows.push(await compareArray(`after.${name}`, parameter, file));
      }
    }

    const scorer = model.scorer();
    try {
      for (const split of ["valid", "test"] as const) {
        const reference = meta[split];
        if (reference === undefined) continue;
        const { topk, metrics } = metricRequest(Object.keys(reference));
        const result = await evaluate(dataset, split, scorer, {
          topk,
          metrics,
        });
        rows.push(metricRow(split, result.metrics, reference));
      }
    } finally {
      scorer.dispose();
    }
  } finally {
    model.dispose();
  }

  return {
    fixture: fixtureDir,
    model: modelName,
    backend: backend.name,
    rows,
    passed: rows.every((row) => row.passed),
  };
}

/**
 * The golden table as text lines: one row per quantity with its worst
 * error, the tolerance and a verdict, then a summary line.
 *
 * @param report What {@linkcode runGoldenCheck} returned.
 * @returns Lines to print.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatGoldenTable } from "./golden.ts";
 *
 * const lines = formatGoldenTable({
 *   fixture: "f", model: "MSCA", backend: "cpu", passed: true,
 *   rows: [{
 *     quantity: "loss.bpr", kind: "loss", error: 1e-7, tolerance: 1e-5,
 *     passed: true, detail: "step 0",
 *   }],
 * });
 * assert.ok(lines.some((line) => line.includes("loss.bpr")));
 * ```
 */
export function formatGoldenTable(report: GoldenReport): string[] {
  const width = Math.max(8, ...report.rows.map((r) => r.quantity.length));
  const lines = [
    `golden check: ${report.model} on ${report.fixture} (${report.backend})`,
    `${"quantity".padEnd(width)}  ${"measure".padEnd(9)}  ` +
    `${"worst error".padStart(11)}  ${"tolerance".padStart(9)}  ok    where`,
  ];
  for (const row of report.rows) {
    lines.push(
      `${row.quantity.padEnd(width)}  ${measureName(row.kind).padEnd(9)}  ` +
        `${formatNumber(row.error).padStart(11)}  ` +
        `${formatNumber(row.tolerance).padStart(9)}  ` +
        `${row.passed ? "yes " : "FAIL"}  ${row.detail}`,
    );
  }
  const failed = report.rows.filter((row) => !row.passed).length;
  lines.push(
    failed === 0
      ? `all ${report.rows.length} quantities within tolerance`
      : `${failed} of ${report.rows.length} quantities beyond tolerance`,
  );
  return lines;
}

/**
 * Reads and checks a fixture's `meta.json`.
 *
 * @param fixtureDir The fixture folder.
 * @returns The parsed meta.
 * @throws {Error} When the file is missing or lacks `dataset`, `hyper` or
 *   `steps`.
 */
export function readMeta(fixtureDir: string): GoldenMeta {
  const path = join(fixtureDir, "meta.json");
  let meta: GoldenMeta;
  try {
    meta = JSON.parse(Deno.readTextFileSync(path));
  } catch (error) {
    throw new Error(
      `${path}: cannot read the fixture's meta.json (${
        (error as Error).message
      }); expected a golden fixture folder such as tests/fixtures/msca-tiny`,
    );
  }
  if (
    typeof meta?.dataset !== "string" || typeof meta.hyper !== "object" ||
    !Array.isArray(meta.steps)
  ) {
    throw new Error(
      `${path}: expected "dataset" (string), "hyper" (object) and "steps" ` +
        "(array of loss parts)",
    );
  }
  return meta;
}

function readParameters(folder: string): Map<string, Float32Array> {
  const values = new Map<string, Float32Array>();
  for (const entry of Deno.readDirSync(folder)) {
    if (!entry.isFile || !entry.name.endsWith(".npy")) continue;
    const name = entry.name.slice(0, -".npy".length);
    values.set(name, readFloat32Npy(join(folder, entry.name)).data);
  }
  return values;
}

function readBatch(path: string): Batch {
  const { shape, data } = readInt32Npy(path);
  if (shape.length !== 2 || shape[0] !== 3) {
    throw new Error(
      `${path}: shape [${shape.join(", ")}]; expected [3, B] (users, ` +
        "positives, negatives)",
    );
  }
  const size = shape[1];
  return {
    users: data.slice(0, size),
    positives: data.slice(size, 2 * size),
    negatives: data.slice(2 * size, 3 * size),
  };
}

/** Names of the `expected/step0.<view>.npy` files, batch and grads aside. */
function stepZeroViewNames(folder: string): string[] {
  const names: string[] = [];
  for (const entry of Deno.readDirSync(folder)) {
    const match = /^step0\.(.+)\.npy$/.exec(entry.name);
    if (match === null || match[1] === "batch") continue;
    if (match[1].startsWith("grad.")) continue;
    names.push(match[1]);
  }
  return names.sort();
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

async function compareArray(
  quantity: string,
  ours: Tensor,
  file: string,
): Promise<GoldenRow> {
  const reference = readFloat32Npy(file);
  const values = await ours.toArray();
  const cols = reference.shape.length === 2 ? reference.shape[1] : 1;
  if (values.length !== reference.data.length) {
    return missingRow(
      quantity,
      `ours has shape [${ours.shape.join(", ")}], the reference ` +
        `[${reference.shape.join(", ")}]`,
    );
  }
  return arrayRow(quantity, values, reference.data, cols);
}

function arrayRow(
  quantity: string,
  values: ArrayLike<number>,
  reference: ArrayLike<number>,
  cols: number,
): GoldenRow {
  let scale = 0;
  for (let i = 0; i < reference.length; i++) {
    scale = Math.max(scale, Math.abs(reference[i]));
  }
  let worst = 0;
  let at = 0;
  for (let i = 0; i < reference.length; i++) {
    const difference = Math.abs(values[i] - reference[i]);
    if (!(difference <= worst)) {
      worst = difference;
      at = i;
    }
  }
  const error = scale > 0 ? worst / scale : worst;
  const where = cols > 1
    ? `[${Math.floor(at / cols)}, ${at % cols}]`
    : `[${at}]`;
  return {
    quantity,
    kind: "array",
    error,
    tolerance: ARRAY_TOLERANCE,
    passed: error <= ARRAY_TOLERANCE,
    detail: `${where}: ours ${formatNumber(values[at])}, reference ` +
      `${formatNumber(reference[at])} (max|ref| ${formatNumber(scale)})`,
  };
}

function compareGraph(
  quantity: string,
  graph: CsrMatrix,
  prefix: string,
): GoldenRow[] {
  const rows = readInt32Npy(`${prefix}.rows.npy`).data;
  const cols = readInt32Npy(`${prefix}.cols.npy`).data;
  const values = readFloat32Npy(`${prefix}.vals.npy`).data;
  const count = graph.rowOffsets[graph.rows];
  let mismatch = "";
  if (count !== rows.length) {
    mismatch = `${count} entries, the reference ${rows.length}`;
  }
  const ours = new Float32Array(count);
  for (let r = 0, e = 0; r < graph.rows && mismatch === ""; r++) {
    for (let p = graph.rowOffsets[r]; p < graph.rowOffsets[r + 1]; p++, e++) {
      const c = graph.columnIndices[p];
      if (rows[e] !== r || cols[e] !== c) {
        mismatch = `entry ${e} is (${r}, ${c}), the reference's ` +
          `(${rows[e]}, ${cols[e]})`;
        break;
      }
      ours[e] = graph.values[p];
    }
  }
  if (mismatch !== "") return [missingRow(`${quantity}.structure`, mismatch)];
  return [
    {
      quantity: `${quantity}.structure`,
      kind: "structure",
      error: 0,
      tolerance: 0,
      passed: true,
      detail: `${count} entries, same positions`,
    },
    arrayRow(`${quantity}.values`, ours, values, 1),
  ];
}

function lossRow(
  part: string,
  step: number,
  ours: number,
  reference: number,
): GoldenRow {
  const error = Math.abs(ours - reference) / Math.abs(reference);
  return {
    quantity: `loss.${part}`,
    kind: "loss",
    error,
    tolerance: LOSS_TOLERANCE,
    passed: error <= LOSS_TOLERANCE,
    detail: `worst at step ${step}: ours ${ours.toPrecision(10)}, ` +
      `reference ${reference.toPrecision(10)}`,
  };
}

function metricRow(
  split: string,
  ours: Record<string, number>,
  reference: Record<string, number>,
): GoldenRow {
  const factor = 10 ** METRIC_DECIMALS;
  let worst = 0;
  let worstKey = "";
  const wrong: string[] = [];
  for (const [key, value] of Object.entries(reference)) {
    const mine = ours[key];
    const difference = Math.abs(mine - value);
    if (!(difference <= worst)) {
      worst = difference;
      worstKey = key;
    }
    if (Math.round(mine * factor) !== Math.round(value * factor)) {
      wrong.push(`${key} ${mine?.toFixed(METRIC_DECIMALS)} vs ${value}`);
    }
  }
  return {
    quantity: `metrics.${split}`,
    kind: "metric",
    error: worst,
    tolerance: 0.5 / factor,
    passed: wrong.length === 0,
    detail: wrong.length > 0
      ? `differ at ${METRIC_DECIMALS} decimals: ${wrong.join(", ")}`
      : `${Object.keys(reference).length} metrics equal at ` +
        `${METRIC_DECIMALS} decimals (worst ${worstKey})`,
  };
}

function missingRow(quantity: string, detail: string): GoldenRow {
  return {
    quantity,
    kind: "structure",
    error: Infinity,
    tolerance: 0,
    passed: false,
    detail,
  };
}

/** The `topk` and `metrics` that produce the given metric keys. */
function metricRequest(keys: string[]): { topk: number[]; metrics: string[] } {
  const topk = new Set<number>();
  const metrics = new Set<string>();
  for (const key of keys) {
    const match = /^([a-z]+)@(\d+)$/.exec(key);
    if (match === null) {
      throw new Error(
        `meta.json metric key "${key}"; expected <metric>@<K>, e.g. recall@20`,
      );
    }
    metrics.add(match[1]);
    topk.add(Number(match[2]));
  }
  return { topk: [...topk].sort((a, b) => a - b), metrics: [...metrics] };
}

function measureName(kind: GoldenRow["kind"]): string {
  return {
    array: "rel. max",
    loss: "rel.",
    metric: "abs.",
    structure: "exact",
  }[kind];
}

function formatNumber(value: number): string {
  if (value === 0) return "0";
  if (!Number.isFinite(value)) return String(value);
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e4
    ? value.toPrecision(4)
    : value.toExponential(2);
}
