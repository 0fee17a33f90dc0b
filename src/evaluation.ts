/**
 * Full-ranking evaluation as MMRec computes it (spec 8): every item is
 * scored for every user of the split, the user's train items are set to
 * −1e10, the `max(topk)` best items are ranked (ties: smaller item index
 * first), and Recall, NDCG, Precision and MAP are averaged over the users
 * at every K of `topk`. Users are scored in blocks of `evalBatchSize`, so
 * memory stays at one block × items of scores.
 *
 * @module
 */

import type { Dataset, Interactions } from "./data/dataset.ts";

/** The score given to a user's train items before ranking. */
export const MASKED_SCORE: number = -1e10;

/** The metrics we compute, in MMRec's lowercase spelling. */
export const METRIC_NAMES = ["recall", "ndcg", "precision", "map"] as const;

/** One of {@linkcode METRIC_NAMES}. */
export type MetricName = typeof METRIC_NAMES[number];

/** The train items of each user of one block, as CSR local to the block. */
export interface MaskedItems {
  /** `users.length + 1` offsets into `items`. */
  offsets: Int32Array;
  /** Train items of each block user, ascending. */
  items: Int32Array;
}

/**
 * What a model supplies to be evaluated.
 *
 * `scoreBlock` returns the scores of the given users for every item,
 * row-major `users.length × itemCount`; the evaluator may overwrite the
 * returned array (it writes the mask into it).
 *
 * `topKBlock`, when present, is used instead: a GPU backend can score,
 * mask and select on the device and return only the ranked item indices,
 * `users.length × k` row-major, best first, with the block users' train
 * items (`masked`) scored −1e10 and ties broken towards the smaller item
 * index, exactly as {@linkcode selectTopK} does on the CPU.
 */
export interface ScoreSource {
  /**
   * Scores of a block of users for every item.
   *
   * @param users User IDs of the block.
   * @returns `users.length × itemCount` scores.
   */
  scoreBlock(users: Int32Array): Promise<Float32Array>;
  /**
   * Optional: the ranked top-k items of a block of users.
   *
   * @param users User IDs of the block.
   * @param k Length of each list.
   * @param masked The block users' train items, to score −1e10.
   * @returns `users.length × k` item indices, best first.
   */
  topKBlock?(
    users: Int32Array,
    k: number,
    masked: MaskedItems,
  ): Promise<Int32Array>;
}

/** Options of {@linkcode evaluate}. */
export interface EvaluateOptions {
  /** The list lengths K (MMRec `topk`), e.g. `[5, 10, 20, 50]`. */
  topk: number[];
  /**
   * Metric names, case-insensitive (MMRec writes `Recall`, `NDCG`, …);
   * default all of {@linkcode METRIC_NAMES}.
   */
  metrics?: string[];
  /**
   * Users per scored block (MMRec `eval_batch_size`); default 4096. A
   * block holds `evalBatchSize × itemCount` float32 scores (4096 users ×
   * 63,001 items of Electronics: about 1 GiB), so lower it on small
   * machines.
   */
  evalBatchSize?: number;
  /** Keep every user's ranked list in the result (default false). */
  keepTopK?: boolean;
}

/** The outcome of {@linkcode evaluate}. */
export interface EvaluationResult {
  /** Mean metrics keyed `recall@20`, `ndcg@20`, … (metric order, then K). */
  metrics: Record<string, number>;
  /** The evaluated users, ascending. */
  users: Int32Array;
  /**
   * With `keepTopK`: `users.length × max(topk)` ranked items, row `r`
   * belonging to `users[r]`.
   */
  topK?: Int32Array;
}

/** Users of a split with their distinct relevant items, as CSR. */
export interface RelevantItems {
  /** Distinct users of the split, ascending. */
  users: Int32Array;
  /** `users.length + 1` offsets into `items`. */
  offsets: Int32Array;
  /** Distinct relevant items of each user, ascending. */
  items: Int32Array;
}

/**
 * Groups a split by user: the distinct users, ascending, and the distinct
 * items of each.
 *
 * @param split The valid or test interactions.
 * @returns Users and their relevant item sets.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const relevant = relevantItems({
 *   users: new Int32Array([3, 1, 3]), items: new Int32Array([7, 2, 5]),
 * });
 * assert.deepEqual([...relevant.users], [1, 3]);
 * assert.deepEqual([...relevant.items], [2, 5, 7]);
 * ```
 */
export function relevantItems(split: Interactions): RelevantItems {
  const order = Array.from(split.users.keys()).sort((a, b) =>
    split.users[a] - split.users[b] || split.items[a] - split.items[b]
  );
  const users: number[] = [];
  const offsets: number[] = [0];
  const items: number[] = [];
  for (const row of order) {
    const user = split.users[row], item = split.items[row];
    if (users.length === 0 || users[users.length - 1] !== user) {
      if (users.length > 0) offsets.push(items.length);
      users.push(user);
    } else if (items[items.length - 1] === item) {
      continue;
    }
    items.push(item);
  }
  if (users.length > 0) offsets.push(items.length);
  return {
    users: Int32Array.from(users),
    offsets: Int32Array.from(offsets),
    items: Int32Array.from(items),
  };
}

/**
 * Ranks the `k` best items of each row of a score block, best first, with
 * ties broken towards the smaller item index.
 *
 * @param scores `rows × itemCount` scores, row-major.
 * @param rows Number of rows.
 * @param itemCount Items per row.
 * @param k Length of each list (at most `itemCount`).
 * @param users User ID of each row, for error messages only.
 * @returns `rows × k` item indices.
 * @throws {RangeError} When a score is NaN (the model diverged).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const top = selectTopK(new Float32Array([0.1, 0.9, 0.9, 0.3]), 1, 4, 2);
 * assert.deepEqual([...top], [1, 2]);
 * ```
 */
export function selectTopK(
  scores: Float32Array,
  rows: number,
  itemCount: number,
  k: number,
  users?: Int32Array,
): Int32Array {
  const result = new Int32Array(rows * k);
  const bestScores = new Float64Array(k);
  const bestItems = new Int32Array(k);
  for (let r = 0; r < rows; r++) {
    const base = r * itemCount;
    let count = 0;
    for (let item = 0; item < itemCount; item++) {
      const score = scores[base + item];
      if (score !== score) {
        throw new RangeError(
          `Score of user ${users?.[r] ?? r} for item ${item} is NaN; the ` +
            `model's embeddings are not finite`,
        );
      }
      if (count === k && !(score > bestScores[k - 1])) continue;
      // Items arrive in ascending order, so an equal score stays behind.
      let position = count < k ? count++ : k - 1;
      while (position > 0 && bestScores[position - 1] < score) {
        bestScores[position] = bestScores[position - 1];
        bestItems[position] = bestItems[position - 1];
        position--;
      }
      bestScores[position] = score;
      bestItems[position] = item;
    }
    result.set(bestItems.subarray(0, k), r * k);
  }
  return result;
}

/**
 * The train items of some users, as CSR local to the list.
 *
 * @param dataset The dataset (its `trainOffsets`, `trainItems`).
 * @param users User IDs.
 * @returns Their train items.
 * @example
 * ```ts ignore
 * const masked = trainItemsOf(dataset, new Int32Array([0, 5]));
 * ```
 */
export function trainItemsOf(dataset: Dataset, users: Int32Array): MaskedItems {
  const offsets = new Int32Array(users.length + 1);
  for (let r = 0; r < users.length; r++) {
    const u = users[r];
    offsets[r + 1] = offsets[r] + dataset.trainOffsets[u + 1] -
      dataset.trainOffsets[u];
  }
  const items = new Int32Array(offsets[users.length]);
  for (let r = 0; r < users.length; r++) {
    const u = users[r];
    items.set(
      dataset.trainItems.subarray(
        dataset.trainOffsets[u],
        dataset.trainOffsets[u + 1],
      ),
      offsets[r],
    );
  }
  return { offsets, items };
}

function checkPositiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
}

/**
 * Ranks the top `k` items of each user with the user's train items masked
 * (−1e10), block by block: the lists behind both the metrics and the
 * recommendations export.
 *
 * @param dataset The dataset (item count and train items).
 * @param source The model's score function (and optional top-k hook).
 * @param users The users to rank for.
 * @param k Length of each list.
 * @param evalBatchSize Users per block (default 4096).
 * @returns `users.length × k` item indices, best first.
 * @throws {RangeError} On a bad `k` or block size, a score block of the
 * wrong size, a NaN score, or a top-k hook returning bad indices.
 * @example
 * ```ts ignore
 * const lists = await rankTopK(dataset, model, new Int32Array([0, 1]), 20);
 * ```
 */
export async function rankTopK(
  dataset: Dataset,
  source: ScoreSource,
  users: Int32Array,
  k: number,
  evalBatchSize = 4096,
): Promise<Int32Array> {
  checkPositiveInteger("k", k);
  checkPositiveInteger("eval_batch_size", evalBatchSize);
  const itemCount = dataset.itemCount;
  if (k > itemCount) {
    throw new RangeError(
      `Cannot rank the top ${k} of ${itemCount} items; use topk values of ` +
        `at most ${itemCount}`,
    );
  }
  const result = new Int32Array(users.length * k);
  for (let start = 0; start < users.length; start += evalBatchSize) {
    const block = users.subarray(
      start,
      Math.min(users.length, start + evalBatchSize),
    );
    const masked = trainItemsOf(dataset, block);
    let ranked: Int32Array;
    if (source.topKBlock !== undefined) {
      ranked = await source.topKBlock(block, k, masked);
      if (ranked.length !== block.length * k) {
        throw new RangeError(
          `topKBlock returned ${ranked.length} indices for ${block.length} ` +
            `users; expected ${block.length * k}`,
        );
      }
      for (const item of ranked) {
        if (!(item >= 0 && item < itemCount)) {
          throw new RangeError(
            `topKBlock returned item ${item}; expected 0..${itemCount - 1}`,
          );
        }
      }
    } else {
      const scores = await source.scoreBlock(block);
      if (scores.length !== block.length * itemCount) {
        throw new RangeError(
          `scoreBlock returned ${scores.length} scores for ${block.length} ` +
            `users; expected ${block.length} × ${itemCount} items`,
        );
      }
      for (let r = 0; r < block.length; r++) {
        for (let e = masked.offsets[r]; e < masked.offsets[r + 1]; e++) {
          scores[r * itemCount + masked.items[e]] = MASKED_SCORE;
        }
      }
      ranked = selectTopK(scores, block.length, itemCount, k, block);
    }
    result.set(ranked, start * k);
  }
  return result;
}

/**
 * Parses metric names case-insensitively.
 *
 * @param metrics Names such as `Recall`, `NDCG`.
 * @returns Lowercase names.
 * @throws {RangeError} On an unknown name, listing the choices.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseMetrics(["Recall", "NDCG"]), ["recall", "ndcg"]);
 * ```
 */
export function parseMetrics(metrics: string[]): MetricName[] {
  return metrics.map((metric) => {
    const name = metric.toLowerCase();
    if (!(METRIC_NAMES as readonly string[]).includes(name)) {
      throw new RangeError(
        `Unknown metric "${metric}"; expected one of Recall, NDCG, ` +
          `Precision, MAP`,
      );
    }
    return name as MetricName;
  });
}

/**
 * Sums the per-user metrics of ranked lists (spec 8), to be divided by the
 * number of users. With `hit_r` = the item at rank r is relevant and `P`
 * the relevant set: Recall@K = Σ hit / |P|; Precision@K = Σ hit / K;
 * NDCG@K = DCG / IDCG with `1 / log2(r + 1)` gains and IDCG over
 * `min(|P|, K)` ranks; MAP@K = Σ hit_r · Precision@r / min(|P|, K).
 *
 * @param ranked `users × width` ranked items, best first.
 * @param width Length of each list (at least `max(topk)`).
 * @param relevant The relevant items of the same users, in the same order.
 * @param topk The list lengths K.
 * @param metrics The metrics.
 * @returns Sums keyed `recall@K`, … (metric order, then K).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const relevant = { users: new Int32Array([0]),
 *   offsets: new Int32Array([0, 1]), items: new Int32Array([4]) };
 * const sums = metricSums(new Int32Array([2, 4]), 2, relevant, [2], ["recall"]);
 * assert.equal(sums["recall@2"], 1);
 * ```
 */
export function metricSums(
  ranked: Int32Array,
  width: number,
  relevant: RelevantItems,
  topk: number[],
  metrics: MetricName[],
): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const metric of metrics) {
    for (const k of topk) sums[`${metric}@${k}`] = 0;
  }
  const maxK = Math.max(...topk);
  const hits = new Uint8Array(maxK);
  const relevantSet = new Set<number>();
  for (let r = 0; r < relevant.users.length; r++) {
    relevantSet.clear();
    for (let e = relevant.offsets[r]; e < relevant.offsets[r + 1]; e++) {
      relevantSet.add(relevant.items[e]);
    }
    const relevantCount = relevantSet.size;
    for (let rank = 0; rank < maxK; rank++) {
      hits[rank] = relevantSet.has(ranked[r * width + rank]) ? 1 : 0;
    }
    for (const k of topk) {
      let hitCount = 0, dcg = 0, idcg = 0, precisionSum = 0;
      for (let rank = 1; rank <= k; rank++) {
        const hit = hits[rank - 1];
        hitCount += hit;
        dcg += hit / Math.log2(rank + 1);
        if (rank <= relevantCount) idcg += 1 / Math.log2(rank + 1);
        precisionSum += hit * hitCount / rank;
      }
      for (const metric of metrics) {
        const key = `${metric}@${k}`;
        if (metric === "recall") sums[key] += hitCount / relevantCount;
        else if (metric === "precision") sums[key] += hitCount / k;
        else if (metric === "ndcg") sums[key] += dcg / idcg;
        else sums[key] += precisionSum / Math.min(relevantCount, k);
      }
    }
  }
  return sums;
}

/**
 * Full-ranking evaluation of a model on the valid or test split (spec 8).
 *
 * @param dataset The dataset.
 * @param split `"valid"` or `"test"`.
 * @param source The model's score function (and optional top-k hook).
 * @param options `topk`, `metrics`, `evalBatchSize`, `keepTopK`.
 * @returns Mean metrics keyed like MMRec (`recall@20`), the users, and
 * optionally their ranked lists.
 * @throws {RangeError} On an empty split, a bad `topk`, an unknown metric,
 * or a score problem (see {@linkcode rankTopK}).
 * @example
 * ```ts ignore
 * const { metrics } = await evaluate(dataset, "valid", model, {
 *   topk: [10, 20], evalBatchSize: 4096,
 * });
 * metrics["recall@20"];
 * ```
 */
export async function evaluate(
  dataset: Dataset,
  split: "valid" | "test",
  source: ScoreSource,
  options: EvaluateOptions,
): Promise<EvaluationResult> {
  if (split !== "valid" && split !== "test") {
    throw new RangeError(`Unknown split "${split}"; expected valid or test`);
  }
  const topk = options.topk;
  if (topk.length === 0) {
    throw new RangeError("topk must list at least one K, e.g. [10, 20]");
  }
  for (const k of topk) checkPositiveInteger("Every topk value", k);
  const metrics = parseMetrics(options.metrics ?? [...METRIC_NAMES]);
  const evalBatchSize = options.evalBatchSize ?? 4096;
  const relevant = relevantItems(dataset[split]);
  if (relevant.users.length === 0) {
    throw new RangeError(
      `The ${split} split of dataset "${dataset.name}" has no users to ` +
        `evaluate`,
    );
  }

  const maxK = Math.max(...topk);
  const ranked = await rankTopK(
    dataset,
    source,
    relevant.users,
    maxK,
    evalBatchSize,
  );
  const sums = metricSums(ranked, maxK, relevant, topk, metrics);
  const means: Record<string, number> = {};
  for (const [key, sum] of Object.entries(sums)) {
    means[key] = sum / relevant.users.length;
  }
  return {
    metrics: means,
    users: relevant.users,
    ...(options.keepTopK ? { topK: ranked } : {}),
  };
}

/**
 * Formats metrics the way MMRec logs them: `recall@5: 0.1234    ndcg@5: …`
 * (4 decimals, four spaces between entries).
 *
 * @param metrics Metrics from {@linkcode evaluate}.
 * @returns One line.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatMetrics({ "recall@20": 0.12345 }), "recall@20: 0.1235");
 * ```
 */
export function formatMetrics(metrics: Record<string, number>): string {
  return Object.entries(metrics)
    .map(([key, value]) => `${key}: ${value.toFixed(4)}`)
    .join("    ");
}

/**
 * Item popularity over the train split (number of train rows of each
 * item): the scores of the most-popular baseline, which gives every user
 * the same ranking.
 *
 * @param dataset The dataset.
 * @returns `itemCount` scores.
 * @example
 * ```ts ignore
 * const popularity = mostPopularScores(dataset);
 * ```
 */
export function mostPopularScores(dataset: Dataset): Float32Array {
  const scores = new Float32Array(dataset.itemCount);
  for (const item of dataset.train.items) scores[item]++;
  return scores;
}

/**
 * The most-popular ranking as a {@linkcode ScoreSource}, to evaluate like
 * a model: a trained model should beat it clearly.
 *
 * @param dataset The dataset.
 * @returns A score source giving every user the popularity scores.
 * @example
 * ```ts ignore
 * const baseline = await evaluate(dataset, "test", mostPopular(dataset), {
 *   topk: [20],
 * });
 * ```
 */
export function mostPopular(dataset: Dataset): ScoreSource {
  const popularity = mostPopularScores(dataset);
  return {
    scoreBlock(users: Int32Array): Promise<Float32Array> {
      const scores = new Float32Array(users.length * popularity.length);
      for (let r = 0; r < users.length; r++) {
        scores.set(popularity, r * popularity.length);
      }
      return Promise.resolve(scores);
    },
  };
}
