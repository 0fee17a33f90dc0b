import assert from "node:assert/strict";
import type { Dataset } from "../src/data/dataset.ts";
import {
  evaluate,
  formatMetrics,
  type MaskedItems,
  metricSums,
  mostPopular,
  mostPopularScores,
  rankTopK,
  relevantItems,
  selectTopK,
} from "../src/evaluation.ts";

const ITEMS = 6;

/** Four users, six items; train and test as in the hand-worked cases. */
function handDataset(): Dataset {
  const train: [number, number][] = [[0, 0], [1, 5], [2, 1], [3, 2]];
  // User 2 has more relevant items (4) than K; user 3's test item 2 is
  // also a train item, so it is masked and can never be hit. The repeated
  // row (0, 3) counts once.
  const test: [number, number][] = [
    [2, 0],
    [0, 1],
    [0, 3],
    [1, 2],
    [2, 2],
    [2, 3],
    [2, 4],
    [3, 2],
    [3, 4],
    [0, 3],
  ];
  const split = (rows: [number, number][]) => ({
    users: Int32Array.from(rows.map(([u]) => u)),
    items: Int32Array.from(rows.map(([, i]) => i)),
  });
  return {
    name: "hand",
    userCount: 4,
    itemCount: ITEMS,
    train: split(train),
    valid: split([]),
    test: split(test),
    features: {},
    trainOffsets: new Int32Array([0, 1, 2, 3, 4]),
    trainItems: new Int32Array([0, 5, 1, 2]),
  };
}

// deno-fmt-ignore
const SCORES = [
  [9, 1, 5, 5, 0, 3],   // user 0: item 0 masked; ranks 2, 3 (tie), 5
  [0, 0, 0, 0, 0, 100], // user 1: item 5 masked; all ties: 0, 1, 2
  [4, 10, 3, 2, 1, 0],  // user 2: item 1 masked; ranks 0, 2, 3
  [0, 0, 9, 0, 1, 0],   // user 3: item 2 masked; ranks 4, 0, 1
];

const model = {
  blocks: [] as number[][],
  scoreBlock(users: Int32Array): Promise<Float32Array> {
    this.blocks.push([...users]);
    return Promise.resolve(
      Float32Array.from([...users].flatMap((u) => SCORES[u])),
    );
  },
};

const log2 = Math.log2;
// Per user: [recall, precision, ndcg, map] at K = 1 and K = 3, by hand.
const HAND: Record<number, number[][]> = {
  1: [
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [1 / 4, 1, 1, 1],
    [1 / 2, 1, 1, 1],
  ],
  3: [
    [1 / 2, 1 / 3, (1 / log2(3)) / (1 + 1 / log2(3)), (1 / 2) / 2],
    [1, 1 / 3, (1 / log2(4)) / 1, (1 / 3) / 1],
    [3 / 4, 1, 1, (1 + 1 + 1) / 3],
    [1 / 2, 1 / 3, 1 / (1 + 1 / log2(3)), 1 / 2],
  ],
};

function handMean(k: number, metric: number): number {
  return HAND[k].reduce((sum, user) => sum + user[metric], 0) / 4;
}

Deno.test("evaluate() matches hand-worked Recall, Precision, NDCG and MAP with masked train items and ties", async () => {
  model.blocks = [];
  const result = await evaluate(handDataset(), "test", model, {
    topk: [1, 3],
    metrics: ["Recall", "NDCG", "Precision", "MAP"],
    evalBatchSize: 3,
    keepTopK: true,
  });
  assert.deepEqual(Object.keys(result.metrics), [
    "recall@1",
    "recall@3",
    "ndcg@1",
    "ndcg@3",
    "precision@1",
    "precision@3",
    "map@1",
    "map@3",
  ]);
  for (const k of [1, 3]) {
    const close = (key: string, metric: number) =>
      assert.ok(
        Math.abs(result.metrics[key] - handMean(k, metric)) < 1e-12,
        `${key}: ${result.metrics[key]} vs ${handMean(k, metric)}`,
      );
    close(`recall@${k}`, 0);
    close(`precision@${k}`, 1);
    close(`ndcg@${k}`, 2);
    close(`map@${k}`, 3);
  }
  assert.deepEqual([...result.users], [0, 1, 2, 3]);
  assert.deepEqual([...result.topK!], [2, 3, 5, 0, 1, 2, 0, 2, 3, 4, 0, 1]);
  assert.deepEqual(model.blocks, [[0, 1, 2], [3]]);
});

Deno.test("evaluate() gives the same metrics for any block size and through the top-k hook", async () => {
  const dataset = handDataset();
  const reference = await evaluate(dataset, "test", model, { topk: [1, 2, 3] });
  for (const evalBatchSize of [1, 2, 4, 100]) {
    const result = await evaluate(dataset, "test", model, {
      topk: [1, 2, 3],
      evalBatchSize,
    });
    assert.deepEqual(result.metrics, reference.metrics);
  }
  const maskedSeen: number[][] = [];
  const hooked = {
    scoreBlock(): Promise<Float32Array> {
      throw new Error("scoreBlock must not be called when topKBlock exists");
    },
    async topKBlock(users: Int32Array, k: number, masked: MaskedItems) {
      maskedSeen.push([...masked.items]);
      const scores = await model.scoreBlock(users);
      for (let r = 0; r < users.length; r++) {
        for (let e = masked.offsets[r]; e < masked.offsets[r + 1]; e++) {
          scores[r * ITEMS + masked.items[e]] = -1e10;
        }
      }
      return selectTopK(scores, users.length, ITEMS, k);
    },
  };
  const result = await evaluate(dataset, "test", hooked, {
    topk: [1, 2, 3],
    evalBatchSize: 2,
  });
  assert.deepEqual(result.metrics, reference.metrics);
  assert.deepEqual(maskedSeen, [[0, 5], [1, 2]]);
});

Deno.test("metricSums() counts a user with fewer relevant items than K against min(|P|, K)", () => {
  const relevant = {
    users: new Int32Array([0]),
    offsets: new Int32Array([0, 1]),
    items: new Int32Array([7]),
  };
  // The single relevant item at rank 2 of 5.
  const sums = metricSums(new Int32Array([3, 7, 1, 2, 4]), 5, relevant, [5], [
    "recall",
    "precision",
    "ndcg",
    "map",
  ]);
  assert.equal(sums["recall@5"], 1);
  assert.equal(sums["precision@5"], 1 / 5);
  assert.ok(Math.abs(sums["ndcg@5"] - 1 / log2(3)) < 1e-15);
  assert.equal(sums["map@5"], 1 / 2);
});

Deno.test("selectTopK() ranks best first with ties towards the smaller index and masked items last", () => {
  const scores = new Float32Array([-1e10, 2, 7, 2, 7, -1e10, 1]);
  assert.deepEqual([...selectTopK(scores, 1, 7, 7)], [2, 4, 1, 3, 6, 0, 5]);
  assert.deepEqual([...selectTopK(scores, 1, 7, 3)], [2, 4, 1]);
  assert.throws(
    () => selectTopK(new Float32Array([1, NaN]), 1, 2, 1, new Int32Array([9])),
    /user 9 for item 1 is NaN/,
  );
});

Deno.test("relevantItems() groups a split by user and drops repeated rows", () => {
  const relevant = relevantItems(handDataset().test);
  assert.deepEqual([...relevant.users], [0, 1, 2, 3]);
  assert.deepEqual([...relevant.offsets], [0, 2, 3, 7, 9]);
  assert.deepEqual([...relevant.items], [1, 3, 2, 0, 2, 3, 4, 2, 4]);
});

Deno.test("evaluate() rejects unknown metrics, bad topk, an empty split and wrong score sizes", async () => {
  const dataset = handDataset();
  await assert.rejects(
    () => evaluate(dataset, "test", model, { topk: [3], metrics: ["AUC"] }),
    /Unknown metric "AUC"; expected one of Recall, NDCG, Precision, MAP/,
  );
  await assert.rejects(
    () => evaluate(dataset, "test", model, { topk: [0] }),
    /topk value must be a positive integer, got 0/,
  );
  await assert.rejects(
    () => evaluate(dataset, "test", model, { topk: [7] }),
    /top 7 of 6 items/,
  );
  await assert.rejects(
    () => evaluate(dataset, "valid", model, { topk: [3] }),
    /valid split of dataset "hand" has no users/,
  );
  const short = { scoreBlock: () => Promise.resolve(new Float32Array(5)) };
  await assert.rejects(
    () => evaluate(dataset, "test", short, { topk: [3] }),
    /scoreBlock returned 5 scores for 4 users; expected 4 × 6 items/,
  );
});

Deno.test("mostPopular() ranks every user by train popularity with train items masked", async () => {
  const dataset = handDataset();
  dataset.train = {
    users: new Int32Array([0, 1, 2, 3, 3]),
    items: new Int32Array([4, 4, 4, 1, 5]),
  };
  dataset.trainOffsets = new Int32Array([0, 1, 2, 3, 5]);
  dataset.trainItems = new Int32Array([4, 4, 4, 1, 5]);
  assert.deepEqual([...mostPopularScores(dataset)], [0, 1, 0, 0, 3, 1]);
  const lists = await rankTopK(
    dataset,
    mostPopular(dataset),
    new Int32Array([0, 3]),
    3,
  );
  assert.deepEqual([...lists], [1, 5, 0, 4, 0, 2]);
});

Deno.test("formatMetrics() writes MMRec's log line at 4 decimals", () => {
  assert.equal(
    formatMetrics({ "recall@10": 0.123456, "ndcg@10": 0.5 }),
    "recall@10: 0.1235    ndcg@10: 0.5000",
  );
});
