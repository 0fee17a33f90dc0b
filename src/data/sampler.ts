/**
 * Training batches (spec section 2): the train rows shuffled every epoch,
 * cut in order into batches, one sampled negative item per row.
 *
 * All randomness comes from the {@linkcode Random} passed in, so the same
 * seed gives the same batches on every machine, and saving
 * `random.state()` between epochs lets a resumed run continue identically.
 *
 * @module
 */

import type { Dataset } from "./dataset.ts";
import { DataError } from "./errors.ts";
import type { Random } from "../random.ts";

/** One training batch: parallel arrays of users, positives and negatives. */
export interface Batch {
  /** User of each row. */
  users: Int32Array;
  /** The row's train item (positive). */
  positives: Int32Array;
  /** A sampled item the user has no train interaction with. */
  negatives: Int32Array;
}

/**
 * Yields an epoch's training batches.
 *
 * Each epoch starts from the train rows in their loaded order, shuffles
 * them (Fisher–Yates, `random.shuffle`), and cuts the result into batches
 * of `batchSize` rows; the last batch is smaller. Each row's negative is
 * drawn uniformly from the distinct items of the train split and redrawn
 * while it is among that user's train items. Random numbers are consumed
 * in this order: the shuffle at the epoch's start, then each batch's
 * negatives as that batch is yielded.
 *
 * @example
 * ```ts
 * import { BatchSampler } from "./sampler.ts";
 * import { loadDataset } from "./dataset.ts";
 * import { Random } from "../random.ts";
 * import assert from "node:assert/strict";
 *
 * const dataset = loadDataset({
 *   data_path: "tests/fixtures/msca-tiny/data",
 *   dataset: "tiny",
 * });
 * const sampler = new BatchSampler(dataset, 128, new Random(2026));
 * const batches = [...sampler.epoch()];
 * assert.ok(batches.length > 0);
 * for (const batch of batches) {
 *   assert.equal(batch.users.length, batch.negatives.length);
 * }
 * ```
 */
export class BatchSampler {
  /** Rows per batch (the last batch of an epoch may be smaller). */
  readonly batchSize: number;
  /** Number of train rows, the rows of one epoch. */
  readonly rowCount: number;
  /** Number of batches per epoch. */
  readonly batchCount: number;

  #dataset: Dataset;
  #random: Random;
  #candidates: Int32Array;

  /**
   * Creates a sampler over a dataset's train split.
   *
   * @param dataset The dataset.
   * @param batchSize Rows per batch (`train_batch_size`).
   * @param random The generator every epoch draws from.
   * @throws {RangeError} If `batchSize` is not a positive integer.
   * @throws {DataError} If a user has every train item, so no negative
   * exists for them.
   */
  constructor(dataset: Dataset, batchSize: number, random: Random) {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(
        `BatchSampler: batch size must be a positive integer, got ${batchSize}`,
      );
    }
    this.batchSize = batchSize;
    this.rowCount = dataset.train.users.length;
    this.batchCount = Math.ceil(this.rowCount / batchSize);
    this.#dataset = dataset;
    this.#random = random;

    const seen = new Uint8Array(dataset.itemCount);
    for (const item of dataset.trainItems) seen[item] = 1;
    const candidates: number[] = [];
    seen.forEach((present, item) => {
      if (present) candidates.push(item);
    });
    this.#candidates = Int32Array.from(candidates);

    const offsets = dataset.trainOffsets;
    for (let user = 0; user < dataset.userCount; user++) {
      if (offsets[user + 1] - offsets[user] >= candidates.length) {
        throw new DataError(
          dataset.name,
          `user ${user} has a train interaction with every one of the ` +
            `${candidates.length} train items, so no negative item can be ` +
            `sampled; expected each user to miss at least one train item`,
        );
      }
    }
  }

  /**
   * Shuffles the train rows and yields the epoch's batches in order.
   *
   * @returns A generator of {@linkcode Batch}es, fresh arrays each.
   */
  *epoch(): Generator<Batch, void, undefined> {
    const { train, trainOffsets, trainItems } = this.#dataset;
    const order = new Int32Array(this.rowCount);
    for (let row = 0; row < this.rowCount; row++) order[row] = row;
    this.#random.shuffle(order);

    const candidates = this.#candidates;
    for (let start = 0; start < this.rowCount; start += this.batchSize) {
      const size = Math.min(this.batchSize, this.rowCount - start);
      const batch: Batch = {
        users: new Int32Array(size),
        positives: new Int32Array(size),
        negatives: new Int32Array(size),
      };
      for (let i = 0; i < size; i++) {
        const row = order[start + i];
        const user = train.users[row];
        const first = trainOffsets[user];
        const last = trainOffsets[user + 1];
        let negative: number;
        do {
          negative = candidates[this.#random.nextInt(candidates.length)];
        } while (contains(trainItems, first, last, negative));
        batch.users[i] = user;
        batch.positives[i] = train.items[row];
        batch.negatives[i] = negative;
      }
      yield batch;
    }
  }
}

/** Binary search of a sorted run `values[first..last)`. */
function contains(
  values: Int32Array,
  first: number,
  last: number,
  target: number,
): boolean {
  let low = first;
  let high = last;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (values[middle] < target) low = middle + 1;
    else high = middle;
  }
  return low < last && values[low] === target;
}
