import assert from "node:assert/strict";
import {
  type Dataset,
  type FeatureTable,
  loadDataset,
} from "../src/data/dataset.ts";
import type { CsrMatrix } from "../src/graph/csr.ts";
import {
  buildGraphs,
  cpuDotProductBlock,
  createWorkerDotProductBlock,
  type DotProductBlock,
  lightGcnAdjacency,
  modalityGraph,
  normalizedAdjacency,
  structuralGraph,
  trainUserItems,
  userItemBlock,
  withWorkerDotProduct,
  workersPermitted,
} from "../src/graph/graphs.ts";
import { compareWithReference, loadFixtureDataset } from "./graph_fixture.ts";

const MSCA = "tests/fixtures/msca-tiny";
const LIGHTGCN = "tests/fixtures/lightgcn-tiny";
const tiny = loadFixtureDataset(`${MSCA}/data/tiny`);

/** A dataset from train pairs only (no features, empty valid/test). */
function pairsDataset(
  pairs: [number, number][],
  userCount: number,
  itemCount: number,
): Dataset {
  const empty = { users: new Int32Array(), items: new Int32Array() };
  const lists: number[][] = Array.from({ length: userCount }, () => []);
  for (const [u, i] of pairs) lists[u].push(i);
  const trainOffsets = new Int32Array(userCount + 1);
  const trainItems: number[] = [];
  for (let u = 0; u < userCount; u++) {
    trainItems.push(...lists[u].sort((a, b) => a - b));
    trainOffsets[u + 1] = trainItems.length;
  }
  return {
    name: "hand",
    userCount,
    itemCount,
    train: {
      users: Int32Array.from(pairs.map(([u]) => u)),
      items: Int32Array.from(pairs.map(([, i]) => i)),
    },
    valid: empty,
    test: empty,
    features: {},
    trainOffsets,
    trainItems: Int32Array.from(trainItems),
  };
}

/** The entries of a CSR matrix as "row,col" -> value. */
function entries(graph: CsrMatrix): Map<string, number> {
  const result = new Map<string, number>();
  for (let r = 0; r < graph.rows; r++) {
    for (let e = graph.rowOffsets[r]; e < graph.rowOffsets[r + 1]; e++) {
      result.set(`${r},${graph.columnIndices[e]}`, graph.values[e]);
    }
  }
  return result;
}

Deno.test("normalizedAdjacency() equals the reference graph of msca-tiny", () => {
  assert.deepEqual(
    compareWithReference(
      normalizedAdjacency(tiny),
      `${MSCA}/expected/graph.norm_adj`,
    ),
    [],
  );
});

Deno.test("structuralGraph() equals the reference graph of msca-tiny at k 10", () => {
  assert.deepEqual(
    compareWithReference(
      structuralGraph(tiny, 10),
      `${MSCA}/expected/graph.struct`,
    ),
    [],
  );
});

for (const modality of ["image", "text"] as const) {
  Deno.test(`modalityGraph() equals the reference ${modality} graph of msca-tiny at k 10`, async () => {
    const graph = await modalityGraph(tiny.features[modality]!, 10);
    assert.equal(graph.values.constructor, Float32Array);
    assert.deepEqual(
      compareWithReference(graph, `${MSCA}/expected/graph.${modality}`),
      [],
    );
  });
}

Deno.test("lightGcnAdjacency() equals the reference graph of lightgcn-tiny", () => {
  const dataset = loadFixtureDataset(`${LIGHTGCN}/data/tiny`);
  assert.deepEqual(
    compareWithReference(
      lightGcnAdjacency(dataset),
      `${LIGHTGCN}/expected/graph.norm_adj`,
    ),
    [],
  );
});

Deno.test("userItemBlock() is the user-to-item block of normalizedAdjacency()", () => {
  const full = entries(normalizedAdjacency(tiny));
  const block = userItemBlock(tiny);
  assert.equal(block.rows, tiny.userCount);
  assert.equal(block.cols, tiny.itemCount);
  let count = 0;
  for (const [key, value] of entries(block)) {
    const [u, i] = key.split(",").map(Number);
    assert.equal(value, full.get(`${u},${tiny.userCount + i}`));
    count++;
  }
  const userRows = [...full.keys()].filter((key) =>
    Number(key.split(",")[0]) < tiny.userCount
  );
  assert.equal(count, userRows.length);
});

Deno.test("normalizedAdjacency() counts a repeated train pair once and gives isolated nodes no entries", () => {
  // User 0: items 0, 1 (item 1 twice); user 1: item 1; user 2 and item 2
  // have no train rows.
  const dataset = pairsDataset([[0, 0], [0, 1], [0, 1], [1, 1]], 3, 3);
  const graph = entries(normalizedAdjacency(dataset));
  const expected = new Map<string, number>([
    ["0,3", 1 / Math.sqrt(2 * 1)],
    ["0,4", 1 / Math.sqrt(2 * 2)],
    ["1,4", 1 / Math.sqrt(1 * 2)],
    ["3,0", 1 / Math.sqrt(2 * 1)],
    ["4,0", 1 / Math.sqrt(2 * 2)],
    ["4,1", 1 / Math.sqrt(1 * 2)],
  ]);
  assert.deepEqual([...graph.keys()].sort(), [...expected.keys()].sort());
  for (const [key, value] of expected) {
    assert.ok(Math.abs(graph.get(key)! - value) < 1e-7, key);
  }
  assert.deepEqual(
    [...trainUserItems(dataset).neighbours],
    [0, 1, 1],
  );
  const outOfRange = pairsDataset([[0, 0], [1, 3]], 3, 3);
  assert.throws(
    () => normalizedAdjacency(outOfRange),
    /Train row 1 has user 1, item 3; expected user in 0..2 and item in 0..2/,
  );
});

Deno.test("structuralGraph() keeps counts above 1, breaks ties towards the smaller item and is not symmetric", () => {
  // Items 1, 2, 3 each share 2 users with item 0; item 4 shares 1.
  const pairs: [number, number][] = [];
  for (const u of [0, 1]) pairs.push([u, 0], [u, 1], [u, 2], [u, 3]);
  pairs.push([2, 0], [2, 4]);
  const dataset = pairsDataset(pairs, 3, 5);
  const graph = structuralGraph(dataset, 2);
  const rows = (i: number) => [
    ...graph.columnIndices.subarray(
      graph.rowOffsets[i],
      graph.rowOffsets[i + 1],
    ),
  ];
  // Item 0: candidates 1, 2, 3 (count 2), 4 excluded (count 1); k 2 keeps 1, 2.
  assert.deepEqual(rows(0), [0, 1, 2]);
  // Item 3: candidates 0, 1, 2 all count 2; keeps 0, 1.
  assert.deepEqual(rows(3), [0, 1, 3]);
  // Item 4 shares only one user with 0: self loop only.
  assert.deepEqual(rows(4), [4]);
  const r = (count: number) => count + 1e-7;
  const value = entries(graph);
  assert.ok(
    Math.abs(value.get("0,1")! - 1 / Math.sqrt(r(3) * r(3))) < 1e-7,
  );
  assert.ok(Math.abs(value.get("4,4")! - 1 / r(1)) < 1e-7);
  // Item 3 keeps 0 but item 0 does not keep 3.
  assert.ok(value.has("3,0"));
  assert.ok(!value.has("0,3"));
  assert.throws(() => structuralGraph(dataset, 0), RangeError);
});

Deno.test("modalityGraph() breaks similarity ties towards the smaller item and includes the item itself", async () => {
  // Items 1, 2, 3 are identical; item 0 is orthogonal to all.
  const features: FeatureTable = {
    rows: 4,
    cols: 2,
    data: new Float32Array([0, 1, 1, 0, 2, 0, 3, 0]),
  };
  const graph = await modalityGraph(features, 2);
  const rows = (i: number) => [
    ...graph.columnIndices.subarray(
      graph.rowOffsets[i],
      graph.rowOffsets[i + 1],
    ),
  ];
  assert.deepEqual(rows(3), [1, 2]); // ties at 1: items 1 and 2 before 3
  assert.deepEqual(rows(1), [1, 2]);
  assert.deepEqual(rows(0), [0, 1]); // self 1, then the tie at 0 -> item 1
  const value = entries(graph);
  // Row 0 keeps similarities 1 and 0: s_0 = 1, s_1 = 2.
  assert.ok(Math.abs(value.get("0,0")! - 1) < 1e-7);
  assert.equal(value.get("0,1"), 0);
  assert.ok(Math.abs(value.get("1,2")! - 0.5) < 1e-7);
});

Deno.test("modalityGraph() gives the same graph for any block size and through the dot-product hook", async () => {
  const features = tiny.features.image!;
  const reference = entries(await modalityGraph(features, 10));
  let calls = 0;
  const hooked = await modalityGraph(features, 10, {
    blockRows: 7,
    dotProductBlock: (table, r0, r1, c0, c1) => {
      calls++;
      return Float32Array.from(cpuDotProductBlock(table, r0, r1, c0, c1));
    },
  });
  assert.equal(calls, Math.ceil(features.rows / 7));
  const values = entries(hooked);
  assert.deepEqual([...values.keys()], [...reference.keys()]);
  for (const [key, value] of values) {
    assert.ok(Math.abs(value - reference.get(key)!) < 1e-6, key);
  }
  for (const blockRows of [1, 3, 256]) {
    assert.deepEqual(
      entries(await modalityGraph(features, 10, { blockRows })),
      reference,
    );
  }
});

Deno.test("modalityGraph() reports progress up to 1 and keeps every item when k exceeds the item count", async () => {
  const features: FeatureTable = {
    rows: 3,
    cols: 2,
    data: new Float32Array([1, 0, 1, 1, 0, 1]),
  };
  const fractions: number[] = [];
  const graph = await modalityGraph(features, 10, {
    blockRows: 1,
    onProgress: (fraction) => fractions.push(fraction),
  });
  assert.equal(graph.columnIndices.length, 9);
  assert.equal(fractions.length, 3);
  assert.equal(fractions.at(-1), 1);
  assert.ok(fractions.every((f, n) => n === 0 || f > fractions[n - 1]));
});

Deno.test("modalityGraph() rejects an all-zero feature row and a bad k", async () => {
  const features: FeatureTable = {
    rows: 2,
    cols: 2,
    data: new Float32Array([1, 0, 0, 0]),
  };
  await assert.rejects(() => modalityGraph(features, 2), /Feature row 1/);
  await assert.rejects(
    () => modalityGraph({ rows: 1, cols: 1, data: new Float32Array([1]) }, 0),
    RangeError,
  );
});

Deno.test("cpuDotProductBlock() matches plain dot products on ragged blocks", () => {
  const rows = 7, cols = 5;
  const data = new Float32Array(rows * cols).map((_, n) => Math.sin(n));
  const table = { rows, cols, data };
  const block = cpuDotProductBlock(table, 1, 6, 2, 7);
  for (let i = 1; i < 6; i++) {
    for (let j = 2; j < 7; j++) {
      let dot = 0;
      for (let c = 0; c < cols; c++) {
        dot += data[i * cols + c] * data[j * cols + c];
      }
      assert.ok(Math.abs(block[(i - 1) * 5 + (j - 2)] - dot) < 1e-12);
    }
  }
});

Deno.test("createWorkerDotProductBlock() gives graphs bit-identical to the in-thread product", async () => {
  const features = tiny.features.image!;
  const reference = await modalityGraph(features, 10, { blockRows: 16 });
  for (const workerCount of [2, 3]) {
    const pool = createWorkerDotProductBlock(workerCount);
    try {
      const graph = await modalityGraph(features, 10, {
        blockRows: 16,
        dotProductBlock: pool.dotProductBlock,
      });
      assert.deepEqual(graph, reference);
      // A second table through the same pool is uploaded again.
      assert.deepEqual(
        await modalityGraph(tiny.features.text!, 10, {
          dotProductBlock: pool.dotProductBlock,
        }),
        await modalityGraph(tiny.features.text!, 10),
      );
    } finally {
      pool.close();
    }
  }
});

Deno.test("withWorkerDotProduct() closes its pool, after which the block product fails", async () => {
  let kept: DotProductBlock | undefined;
  const graph = await withWorkerDotProduct(2, (dotProductBlock) => {
    kept = dotProductBlock;
    return modalityGraph(tiny.features.text!, 10, { dotProductBlock });
  });
  assert.deepEqual(graph, await modalityGraph(tiny.features.text!, 10));
  await assert.rejects(
    () => modalityGraph(tiny.features.text!, 10, { dotProductBlock: kept }),
    /closed/,
  );
  assert.throws(() => createWorkerDotProductBlock(0), RangeError);
});

Deno.test("buildGraphs() on the dataset loader's msca-tiny equals the reference graphs", async () => {
  const dataset = loadDataset({
    data_path: `${MSCA}/data`,
    dataset: "tiny",
  });
  const graphs = await buildGraphs(dataset, {
    knn_k: 10,
    cacheDir: null,
    modelKind: "MSCA",
  });
  const expected = `${MSCA}/expected/graph`;
  assert.deepEqual(
    compareWithReference(graphs.adjacency!, `${expected}.norm_adj`),
    [],
  );
  assert.deepEqual(
    compareWithReference(graphs.structural!, `${expected}.struct`),
    [],
  );
  for (const modality of ["image", "text"] as const) {
    assert.deepEqual(
      compareWithReference(
        graphs.modality[modality]!,
        `${expected}.${modality}`,
      ),
      [],
    );
  }
  assert.deepEqual(graphs.userItem, userItemBlock(tiny));
});

Deno.test({
  name:
    "kNN workers without read permission: an explicit pool is refused, the default computes in this thread",
  permissions: { read: false },
  fn: async () => {
    assert.equal(workersPermitted(), false);
    assert.throws(
      () => createWorkerDotProductBlock(2),
      /need read access .*knn_worker\.ts.*--allow-read.*knnWorkers to 0/,
    );
    const items = 1100, width = 3;
    const data = new Float32Array(items * width).map((_, n) => 1 + Math.sin(n));
    const dataset = pairsDataset([[0, 0], [0, 1]], 1, items);
    dataset.features = { text: { rows: items, cols: width, data } };
    const graphs = await buildGraphs(dataset, {
      knn_k: 3,
      cacheDir: null,
      modelKind: "MSCA",
    });
    assert.deepEqual(
      graphs.modality.text,
      await modalityGraph(dataset.features.text!, 3),
    );
  },
});
