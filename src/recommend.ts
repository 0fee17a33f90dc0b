/**
 * Export of top-K recommendations in MMRec's `save_recommended_topk` layout:
 * tab-separated, a header `id top_0 top_1 … top_{K-1}`, then one row per
 * evaluated user with its user ID and its K best item IDs, best first.
 *
 * @module
 */

import { join } from "node:path";
import { writeFileAtomic } from "./checkpoint.ts";
import type { Dataset } from "./data/dataset.ts";
import { rankTopK, relevantItems, type ScoreSource } from "./evaluation.ts";

/** The top-K lists of a set of users, as the evaluation produced them. */
export interface TopKLists {
  /** User IDs, one per list (MMRec: the evaluated users, ascending). */
  users: ArrayLike<number>;
  /** One list of K item IDs per user, best first. */
  items: ArrayLike<number>[];
}

/** Where and under which name {@linkcode writeRecommendations} writes. */
export interface RecommendationFileOptions {
  /** Model name, e.g. `"MSCA"`. */
  model: string;
  /** Dataset name, e.g. `"baby"`. */
  dataset: string;
  /** Index of the grid combination (0 when there is no grid). */
  combination?: number;
}

/**
 * Formats top-K lists as MMRec's tab-separated table.
 *
 * @param lists Users and their top-K items; every list has the same length.
 * @returns The table, header first, each line ending in `\n`.
 * @throws {RangeError} Lists of unequal length, a count mismatch between
 *   users and lists, or an ID that is not a non-negative integer.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const table = recommendationsTsv({
 *   users: [0, 3],
 *   items: [[5, 1], [2, 7]],
 * });
 * assert.equal(table, "id\ttop_0\ttop_1\n0\t5\t1\n3\t2\t7\n");
 * ```
 */
export function recommendationsTsv(lists: TopKLists): string {
  if (lists.users.length !== lists.items.length) {
    throw new RangeError(
      `recommendations have ${lists.users.length} users but ` +
        `${lists.items.length} top-K lists`,
    );
  }
  const k = lists.items[0]?.length ?? 0;
  const isId = (value: number) => Number.isInteger(value) && value >= 0;
  const header = ["id", ...Array.from({ length: k }, (_, r) => `top_${r}`)];
  const lines = [header.join("\t")];
  for (let row = 0; row < lists.users.length; row++) {
    const user = lists.users[row];
    const items = Array.from(lists.items[row]);
    if (items.length !== k) {
      throw new RangeError(
        `top-K list of user ${user} has ${items.length} items, expected ${k}`,
      );
    }
    if (!isId(user) || !items.every(isId)) {
      throw new RangeError(
        `recommendations of user ${user} hold an ID that is not a ` +
          `non-negative integer: ${items.join(", ")}`,
      );
    }
    lines.push([user, ...items].join("\t"));
  }
  return lines.join("\n") + "\n";
}

/**
 * Cuts a flat ranking (`users.length × K` item IDs, row-major, as
 * `evaluate(…, {keepTopK: true})` returns it) into one list per user.
 *
 * @param users The evaluated users.
 * @param topK Their ranked items, row `r` belonging to `users[r]`.
 * @returns Users and per-user lists (views into `topK`).
 * @throws {RangeError} `topK` is not a whole number of rows.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const lists = splitTopK(new Int32Array([0, 1]), new Int32Array([5, 2, 7, 1]));
 * assert.equal(lists.items[1][0], 7);
 * ```
 */
export function splitTopK(users: Int32Array, topK: Int32Array): TopKLists {
  if (users.length === 0 ? topK.length !== 0 : topK.length % users.length) {
    throw new RangeError(
      `${topK.length} ranked items for ${users.length} users is not a whole ` +
        `list per user`,
    );
  }
  const k = users.length === 0 ? 0 : topK.length / users.length;
  return {
    users,
    items: Array.from(
      { length: users.length },
      (_, r) => topK.subarray(r * k, (r + 1) * k),
    ),
  };
}

/**
 * The file name MMRec gives the export, without its timestamp (the run
 * folder already has one) and with a `.tsv` suffix:
 * `<model>-<dataset>-idx<combination>-top<K>.tsv`.
 *
 * @param options Model, dataset and combination index.
 * @param k Length of the lists.
 * @returns The file name.
 */
export function recommendationFileName(
  options: RecommendationFileOptions,
  k: number,
): string {
  return `${options.model}-${options.dataset}-idx${
    options.combination ?? 0
  }-top${k}.tsv`;
}

/**
 * Writes the top-K lists of the test users into a run folder (atomically).
 *
 * @param runDir The run folder.
 * @param lists Users and their top-K items.
 * @param options Model, dataset and combination index for the file name.
 * @returns The path written.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const folder = await Deno.makeTempDir();
 * const path = await writeRecommendations(
 *   folder,
 *   { users: [0, 1], items: [[4, 2], [3, 0]] },
 *   { model: "MSCA", dataset: "tiny" },
 * );
 * assert.ok(path.endsWith("MSCA-tiny-idx0-top2.tsv"));
 * await Deno.remove(folder, { recursive: true });
 * ```
 */
export async function writeRecommendations(
  runDir: string,
  lists: TopKLists,
  options: RecommendationFileOptions,
): Promise<string> {
  const table = recommendationsTsv(lists);
  const k = lists.items[0]?.length ?? 0;
  const path = join(runDir, recommendationFileName(options, k));
  await writeFileAtomic(path, table);
  return path;
}

/** What {@linkcode writeTestRecommendations} needs of a model. */
export interface ScoringModel {
  /** A full-ranking scorer over the current parameters. */
  scorer(): ScoreSource & { dispose(): void };
}

/**
 * Ranks the top `max(topk)` items of every test user with the model's
 * current parameters (train items masked, as in evaluation) and writes
 * them into the run folder, as MMRec's `save_recommended_topk` does for
 * the test split. Call it when the model holds its best-valid weights.
 *
 * @param runDir The run folder.
 * @param model The model (a `Recommender`).
 * @param dataset The dataset.
 * @param config `model`, `dataset`, `topk`, `eval_batch_size` (a
 *   `RunConfig` will do) and the grid combination index.
 * @returns The path written.
 * @throws {RangeError} The test split has no users, or a score is NaN.
 * @example
 * ```ts ignore
 * if (record.improved && run.save_recommended_topk) {
 *   await writeTestRecommendations(runDir, context.model, dataset, run);
 * }
 * ```
 */
export async function writeTestRecommendations(
  runDir: string,
  model: ScoringModel,
  dataset: Dataset,
  config: {
    model: string;
    dataset: string;
    topk: number[];
    eval_batch_size?: number;
    combination?: number;
  },
): Promise<string> {
  const users = relevantItems(dataset.test).users;
  if (users.length === 0) {
    throw new RangeError(
      `the test split of dataset "${dataset.name}" has no users to ` +
        `recommend for`,
    );
  }
  const k = Math.max(...config.topk);
  const scorer = model.scorer();
  let ranked: Int32Array;
  try {
    ranked = await rankTopK(
      dataset,
      scorer,
      users,
      k,
      config.eval_batch_size ?? 4096,
    );
  } finally {
    scorer.dispose();
  }
  return await writeRecommendations(runDir, splitTopK(users, ranked), {
    model: config.model,
    dataset: config.dataset,
    combination: config.combination,
  });
}
