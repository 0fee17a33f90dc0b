import assert from "node:assert/strict";
import { join } from "node:path";
import {
  recommendationFileName,
  recommendationsTsv,
  splitTopK,
  writeRecommendations,
  writeTestRecommendations,
} from "../src/recommend.ts";
import { createDataset } from "../src/data/dataset.ts";

Deno.test("recommendationsTsv() writes MMRec's id/top_0.. table", () => {
  const table = recommendationsTsv({
    users: new Int32Array([2, 5, 9]),
    items: [[10, 3, 7], [0, 1, 2], [44, 12, 8]],
  });
  assert.equal(
    table,
    "id\ttop_0\ttop_1\ttop_2\n" +
      "2\t10\t3\t7\n" +
      "5\t0\t1\t2\n" +
      "9\t44\t12\t8\n",
  );
});

Deno.test("recommendationsTsv() rejects ragged lists and bad IDs", () => {
  assert.throws(
    () => recommendationsTsv({ users: [0, 1], items: [[1, 2], [3]] }),
    /top-K list of user 1 has 1 items, expected 2/,
  );
  assert.throws(
    () => recommendationsTsv({ users: [0, 1], items: [[1, 2]] }),
    /2 users but 1 top-K lists/,
  );
  assert.throws(
    () => recommendationsTsv({ users: [0], items: [[1.5, 2]] }),
    /not a non-negative integer/,
  );
});

Deno.test("splitTopK() cuts evaluate()'s flat ranking into per-user lists", () => {
  const lists = splitTopK(
    new Int32Array([4, 8]),
    new Int32Array([1, 2, 3, 4, 5, 6]),
  );
  assert.deepEqual(lists.users, new Int32Array([4, 8]));
  assert.deepEqual(lists.items.map((list) => Array.from(list)), [
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assert.throws(
    () => splitTopK(new Int32Array([1, 2]), new Int32Array(3)),
    /3 ranked items for 2 users/,
  );
});

Deno.test("writeRecommendations() puts the table in the run folder", async () => {
  const folder = await Deno.makeTempDir({ prefix: "msca-recommend-" });
  try {
    const path = await writeRecommendations(
      folder,
      { users: [0, 1], items: [[3, 1], [0, 2]] },
      { model: "MSCA", dataset: "baby", combination: 2 },
    );
    assert.equal(path, join(folder, "MSCA-baby-idx2-top2.tsv"));
    assert.equal(
      await Deno.readTextFile(path),
      "id\ttop_0\ttop_1\n0\t3\t1\n1\t0\t2\n",
    );
    assert.equal(
      recommendationFileName({ model: "MSCA", dataset: "sports" }, 20),
      "MSCA-sports-idx0-top20.tsv",
    );
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("writeTestRecommendations() ranks every test user with train items masked", async () => {
  const dataset = createDataset({
    name: "toy",
    users: new Int32Array([0, 0, 1, 1, 2, 2, 0]),
    items: new Int32Array([0, 1, 2, 3, 0, 4, 4]),
    labels: new Uint8Array([0, 0, 0, 2, 0, 1, 2]),
  });
  let disposed = 0;
  // Every user prefers higher item IDs; user 1 prefers item 0 most.
  const model = {
    scorer: () => ({
      scoreBlock: (users: Int32Array) => {
        const scores = new Float32Array(users.length * dataset.itemCount);
        users.forEach((user, r) => {
          for (let item = 0; item < dataset.itemCount; item++) {
            scores[r * dataset.itemCount + item] = user === 1 && item === 0
              ? 10
              : item;
          }
        });
        return Promise.resolve(scores);
      },
      dispose: () => disposed++,
    }),
  };
  const folder = await Deno.makeTempDir({ prefix: "msca-recommend-" });
  try {
    const path = await writeTestRecommendations(folder, model, dataset, {
      model: "MSCA",
      dataset: "toy",
      topk: [2, 1],
    });
    assert.equal(path, join(folder, "MSCA-toy-idx0-top2.tsv"));
    // Test users 0 and 1; user 0's train items 0, 1 and user 1's item 2
    // are masked.
    assert.equal(
      await Deno.readTextFile(path),
      "id\ttop_0\ttop_1\n0\t4\t3\n1\t0\t4\n",
    );
    assert.equal(disposed, 1);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});
