/**
 * The models by name. Adding a model takes one file implementing
 * `Recommender` (see `model.ts`), one entry below, and one
 * `configs/model/<Name>.yaml`.
 *
 * @module
 */

import type { GraphModelKind } from "../graph/graphs.ts";
import type { ModelContext, ModelFactory, Recommender } from "./model.ts";
import { MSCA } from "./msca.ts";
import { LightGCN } from "./lightgcn.ts";
import { BPR } from "./bpr.ts";

/** A registered model: how to build it and which graphs it needs. */
export interface ModelEntry {
  /** Builds the model. */
  create: ModelFactory;
  /** The `modelKind` to pass to `buildGraphs`. */
  graphKind: GraphModelKind;
}

/** Every model, by the name `-m` and `meta.json` use. */
export const MODELS: Readonly<Record<string, ModelEntry>> = {
  MSCA: { create: (context) => new MSCA(context), graphKind: "MSCA" },
  LightGCN: { create: (c) => new LightGCN(c), graphKind: "LightGCN" },
  BPR: { create: (c) => new BPR(c), graphKind: "BPR" },
};

/**
 * The names of the registered models.
 *
 * @returns E.g. `["MSCA", "LightGCN", "BPR"]`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { modelNames } from "./registry.ts";
 *
 * assert.deepEqual(modelNames(), ["MSCA", "LightGCN", "BPR"]);
 * ```
 */
export function modelNames(): string[] {
  return Object.keys(MODELS);
}

/**
 * The registry entry of a model.
 *
 * @param name Model name, e.g. `"MSCA"`.
 * @returns Its entry.
 * @throws {RangeError} For an unknown name, listing the known ones.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { modelEntry } from "./registry.ts";
 *
 * assert.equal(modelEntry("MSCA").graphKind, "MSCA");
 * ```
 */
export function modelEntry(name: string): ModelEntry {
  const entry = Object.hasOwn(MODELS, name) ? MODELS[name] : undefined;
  if (entry === undefined) {
    throw new RangeError(
      `Unknown model "${name}"; expected one of ${modelNames().join(", ")}`,
    );
  }
  return entry;
}

/**
 * Builds a registered model.
 *
 * @param name Model name.
 * @param context Dataset, graphs, hyper-parameters, backend, generator.
 * @returns The model.
 * @throws {RangeError} For an unknown name or bad hyper-parameters.
 * @example
 * ```ts ignore
 * const model = createModel("MSCA", {
 *   dataset, graphs, config, backend: cpuBackend, random: new Random(999),
 * });
 * ```
 */
export function createModel(name: string, context: ModelContext): Recommender {
  return modelEntry(name).create(context);
}
