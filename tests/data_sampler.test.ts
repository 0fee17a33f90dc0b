import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { createDataset, loadDataset } from "../src/data/dataset.ts";
import { DataError } from "../src/data/errors.ts";
import { type Batch, BatchSampler } from "../src/data/sampler.ts";
import { Random } from "../src/random.ts";

const DATASET = loadDataset({
  data_path: fileURLToPath(
    new URL("./fixtures/msca-tiny/data", import.meta.url),
  ),
  dataset: "tiny",
});

function epochs(seed: number, count: number, batchSize = 16): Batch[][] {
  const sampler = new BatchSampler(DATASET, batchSize, new Random(seed));
  return Array.from({ length: count }, () => [...sampler.epoch()]);
}

Deno.test("BatchSampler.epoch() visits every train row once, in batches cut in order", () => {
  const sampler = new BatchSampler(DATASET, 64, new Random(1));
  const batches = [...sampler.epoch()];
  assert.equal(sampler.batchCount, 5);
  assert.deepEqual(batches.map((batch) => batch.users.length), [
    64,
    64,
    64,
    64,
    17,
  ]);

  const seen = batches.flatMap((batch) =>
    Array.from(batch.users, (user, i) => `${user}:${batch.positives[i]}`)
  ).sort();
  const rows = Array.from(
    DATASET.train.users,
    (user, row) => `${user}:${DATASET.train.items[row]}`,
  ).sort();
  assert.deepEqual(seen, rows);
});

Deno.test("BatchSampler negatives are train items outside the user's train items", () => {
  const trainItems = new Set(DATASET.train.items);
  for (const epoch of epochs(7, 20)) {
    for (const batch of epoch) {
      batch.users.forEach((user, i) => {
        const negative = batch.negatives[i];
        const own = DATASET.trainItems.subarray(
          DATASET.trainOffsets[user],
          DATASET.trainOffsets[user + 1],
        );
        assert.ok(!own.includes(negative), `user ${user} owns ${negative}`);
        assert.ok(trainItems.has(negative), `${negative} is not a train item`);
      });
    }
  }
});

Deno.test("BatchSampler negatives cover the train items roughly uniformly", () => {
  const counts = new Map<number, number>();
  for (const epoch of epochs(3, 200, 273)) {
    for (const negative of epoch[0].negatives) {
      counts.set(negative, (counts.get(negative) ?? 0) + 1);
    }
  }
  const distinct = new Set(DATASET.train.items).size;
  assert.equal(counts.size, distinct);
  const mean = (200 * 273) / distinct;
  for (const count of counts.values()) {
    assert.ok(count > 0.5 * mean && count < 1.6 * mean, `count ${count}`);
  }
});

Deno.test("BatchSampler gives the same batches for the same seed, others for another", () => {
  const first = epochs(2026, 3);
  const again = epochs(2026, 3);
  assert.deepEqual(first, again);
  const other = epochs(2027, 3);
  assert.notDeepEqual(first, other);
  // Successive epochs are shuffled differently.
  assert.notDeepEqual(first[0][0].users, first[1][0].users);
});

Deno.test("BatchSampler pins the first batch of seed 2026 (same on every machine)", () => {
  const [batch] = new BatchSampler(DATASET, 8, new Random(2026)).epoch();
  assert.deepEqual(
    [
      Array.from(batch.users),
      Array.from(batch.positives),
      Array.from(
        batch.negatives,
      ),
    ],
    PINNED_FIRST_BATCH,
  );
});

Deno.test("BatchSampler resumed from a saved Random state continues identically", () => {
  const random = new Random(99);
  const sampler = new BatchSampler(DATASET, 32, random);
  [...sampler.epoch()];
  const saved = random.state();
  const expected = [...sampler.epoch()];

  const resumed = new BatchSampler(DATASET, 32, Random.fromState(saved));
  assert.deepEqual([...resumed.epoch()], expected);
});

Deno.test("BatchSampler rejects a bad batch size and a user owning every item", () => {
  assert.throws(() => new BatchSampler(DATASET, 0, new Random(1)), RangeError);
  assert.throws(
    () => new BatchSampler(DATASET, 2.5, new Random(1)),
    RangeError,
  );
  const greedy = createDataset({
    name: "greedy",
    users: new Int32Array([0, 0, 1]),
    items: new Int32Array([0, 1, 1]),
    labels: new Uint8Array([0, 0, 0]),
  });
  assert.throws(
    () => new BatchSampler(greedy, 2, new Random(1)),
    (error: unknown) =>
      error instanceof DataError && /user 0 has a train interaction with every/
        .test(error.message),
  );
});

/**
 * The first batch of size 8 with seed 2026 on the fixture: users,
 * positives, negatives. Reproduced by an independent Python rendering of
 * the documented algorithm (xoshiro128** with splitmix32 seeding,
 * Fisher-Yates over the train rows in file order, rejection-sampled
 * negatives over the sorted distinct train items).
 */
const PINNED_FIRST_BATCH: number[][] = [
  [20, 8, 32, 20, 17, 12, 54, 28],
  [14, 113, 86, 48, 96, 131, 73, 28],
  [115, 90, 22, 42, 41, 28, 100, 120],
];
