import assert from "node:assert/strict";
import { expandGrid, loadConfigSync, type RunConfig } from "../src/config.ts";
import { loadDataset } from "../src/data/dataset.ts";
import { cpuBackend } from "../src/engine/cpu.ts";
import { buildGraphs, lightGcnAdjacency } from "../src/graph/graphs.ts";
import type { CsrMatrix } from "../src/graph/csr.ts";
import {
  loadCheckpoint,
  saveCheckpoint,
  tensorsOf,
  type TrainingState,
} from "../src/checkpoint.ts";
import { LightGCN } from "../src/models/lightgcn.ts";
import { BPR } from "../src/models/bpr.ts";
import { createModel, modelEntry } from "../src/models/registry.ts";
import type { Recommender } from "../src/models/model.ts";
import { train } from "../src/trainer.ts";
import { Random } from "../src/random.ts";

const DATA = "tests/fixtures/msca-tiny/data";
const dataset = loadDataset({ data_path: DATA, dataset: "tiny" });
const U = dataset.userCount;
const I = dataset.itemCount;
const d = 8;

const batch = {
  users: new Int32Array([0, 3, 3, 7, 59]),
  positives: new Int32Array([1, 4, 9, 4, 149]),
  negatives: new Int32Array([2, 0, 8, 100, 4]),
};

function lightGcn(nLayers: number, seed = 1): LightGCN {
  return new LightGCN({
    dataset,
    graphs: { adjacency: lightGcnAdjacency(dataset), modality: {} },
    config: { embedding_size: d, n_layers: nLayers, reg_weight: 0.5 },
    backend: cpuBackend,
    random: new Random(seed),
  });
}

function bpr(seed = 1): BPR {
  return new BPR({
    dataset,
    graphs: { modality: {} },
    config: { embedding_size: d, reg_weight: 0.5 },
    backend: cpuBackend,
    random: new Random(seed),
  });
}

async function table(model: Recommender, name: string): Promise<Float32Array> {
  return await model.stateDict().get(name)!.toArray();
}

/** `A x` for a CSR matrix and a row-major `[cols, d]` array. */
function multiply(a: CsrMatrix, x: Float64Array): Float64Array {
  const out = new Float64Array(a.rows * d);
  for (let r = 0; r < a.rows; r++) {
    for (let e = a.rowOffsets[r]; e < a.rowOffsets[r + 1]; e++) {
      const c = a.columnIndices[e];
      for (let k = 0; k < d; k++) out[r * d + k] += a.values[e] * x[c * d + k];
    }
  }
  return out;
}

function assertClose(
  ours: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance = 1e-5,
) {
  assert.equal(ours.length, expected.length);
  for (let i = 0; i < ours.length; i++) {
    assert.ok(
      Math.abs(ours[i] - expected[i]) <=
        tolerance * (1 + Math.abs(expected[i])),
      `entry ${i}: ${ours[i]} vs ${expected[i]}`,
    );
  }
}

/** Σ over the batch's rows of `table`, plain L2 norm of the picked rows. */
function rowsNorm(values: Float32Array, rows: Int32Array): number {
  let sum = 0;
  for (const r of rows) {
    for (let k = 0; k < d; k++) sum += values[r * d + k] ** 2;
  }
  return Math.sqrt(sum);
}

function mmrecBpr(
  users: Float32Array | Float64Array,
  items: Float32Array | Float64Array,
): number {
  let total = 0;
  for (let b = 0; b < batch.users.length; b++) {
    let difference = 0;
    for (let k = 0; k < d; k++) {
      const u = users[batch.users[b] * d + k];
      difference += u * items[batch.positives[b] * d + k] -
        u * items[batch.negatives[b] * d + k];
    }
    total -= Math.log(1e-10 + 1 / (1 + Math.exp(-difference)));
  }
  return total / batch.users.length;
}

Deno.test("LightGCN's final embeddings average layers 0..L, layer 0 included", async () => {
  const model = lightGcn(2);
  const users = await table(model, "embedding_dict.user_emb");
  const items = await table(model, "embedding_dict.item_emb");
  const x0 = new Float64Array(U * d + I * d);
  x0.set(users);
  x0.set(items, U * d);
  const adjacency = lightGcnAdjacency(dataset);
  const x1 = multiply(adjacency, x0);
  const x2 = multiply(adjacency, x1);
  const expected = x0.map((v, i) => (v + x1[i] + x2[i]) / 3);

  const forward = model.forward();
  assertClose(await forward.users.toArray(), expected.subarray(0, U * d));
  assertClose(await forward.items.toArray(), expected.subarray(U * d));
  model.dispose();
});

Deno.test("LightGCN with 0 layers scores with its layer-0 tables", async () => {
  const model = lightGcn(0);
  const forward = model.forward();
  assert.deepEqual(
    await forward.users.toArray(),
    await table(model, "embedding_dict.user_emb"),
  );
  model.dispose();
});

Deno.test("LightGCN's loss is MMRec's BPR on final rows plus plain norms of layer-0 rows over B", async () => {
  const model = lightGcn(1);
  const users = await table(model, "embedding_dict.user_emb");
  const items = await table(model, "embedding_dict.item_emb");
  const output = model.loss(batch);
  const finalUsers = await output.views.final_user.toArray();
  const finalItems = await output.views.final_item.toArray();
  const B = batch.users.length;
  const reg = (rowsNorm(users, batch.users) +
    rowsNorm(items, batch.positives) + rowsNorm(items, batch.negatives)) / B;
  const bprTerm = mmrecBpr(finalUsers, finalItems);

  assertClose([await output.parts.reg.item()], [reg]);
  assertClose([await output.parts.bpr.item()], [bprTerm]);
  assertClose([await output.loss.item()], [bprTerm + 0.5 * reg]);
  output.loss.backward();
  output.release();
  const [userTable] = model.trainableParameters();
  assert.ok(userTable.grad !== null);
  model.dispose();
});

Deno.test("BPR's loss is MMRec's BPR on raw rows plus plain norms of those rows over B", async () => {
  const model = bpr();
  const users = await table(model, "user_embedding.weight");
  const items = await table(model, "item_embedding.weight");
  const output = model.loss(batch);
  const B = batch.users.length;
  const reg = (rowsNorm(users, batch.users) +
    rowsNorm(items, batch.positives) + rowsNorm(items, batch.negatives)) / B;

  assertClose([await output.parts.reg.item()], [reg]);
  assertClose([await output.parts.bpr.item()], [mmrecBpr(users, items)]);
  assertClose([await output.loss.item()], [mmrecBpr(users, items) + 0.5 * reg]);
  output.loss.backward();
  output.release();
  assert.deepEqual(await table(model, "user_embedding.weight"), users);
  model.dispose();
});

function spread(values: Float32Array): { max: number; std: number } {
  let max = 0, squares = 0;
  for (const v of values) {
    max = Math.max(max, Math.abs(v));
    squares += v * v;
  }
  return { max, std: Math.sqrt(squares / values.length) };
}

Deno.test("LightGCN draws Xavier-uniform tables and BPR Xavier-normal ones", async () => {
  const big = { embedding_size: 64, n_layers: 1, reg_weight: 0 };
  const light = new LightGCN({
    dataset,
    graphs: { adjacency: lightGcnAdjacency(dataset), modality: {} },
    config: big,
    backend: cpuBackend,
    random: new Random(7),
  });
  const items = spread(await table(light, "embedding_dict.item_emb"));
  const bound = Math.sqrt(6 / (I + 64));
  assert.ok(items.max <= bound);
  assert.ok(Math.abs(items.std - bound / Math.sqrt(3)) < 0.05 * bound);
  light.dispose();

  const matrix = new BPR({
    dataset,
    graphs: { modality: {} },
    config: big,
    backend: cpuBackend,
    random: new Random(7),
  });
  const normal = spread(await table(matrix, "item_embedding.weight"));
  const std = Math.sqrt(2 / (I + 64));
  assert.ok(Math.abs(normal.std - std) < 0.05 * std);
  assert.ok(normal.max > Math.sqrt(3) * std, "a normal has tails");
  matrix.dispose();
});

Deno.test("the baselines reject bad hyper-parameters, a missing graph and unknown initial values", () => {
  const graphs = { adjacency: lightGcnAdjacency(dataset), modality: {} };
  const context = {
    dataset,
    graphs,
    backend: cpuBackend,
    random: new Random(1),
  };
  assert.throws(
    () =>
      new LightGCN({
        ...context,
        config: { embedding_size: 8, reg_weight: 0 },
      }),
    /LightGCN: n_layers must be an integer >= 0, got undefined/,
  );
  assert.throws(
    () =>
      new BPR({
        ...context,
        config: { embedding_size: 8, reg_weight: -1 },
      }),
    /BPR: reg_weight must be a number >= 0, got -1/,
  );
  assert.throws(
    () =>
      new LightGCN({
        ...context,
        graphs: { modality: {} },
        config: { embedding_size: 8, n_layers: 1, reg_weight: 0 },
      }),
    /LightGCN needs the user–item graph/,
  );
  assert.throws(
    () =>
      new BPR({
        ...context,
        config: { embedding_size: 8, reg_weight: 0 },
        initialValues: new Map([["user_emb", new Float32Array(U * 8)]]),
      }),
    /unknown parameters: user_emb; BPR has user_embedding.weight/,
  );
  assert.throws(
    () =>
      new BPR({
        ...context,
        config: { embedding_size: 8, reg_weight: 0 },
        initialValues: new Map([
          ["user_embedding.weight", new Float32Array(3)],
        ]),
      }),
    /"user_embedding.weight" has 3 values; expected shape \[60, 8\]/,
  );
});

function tinyRun(model: string, epochs: number): RunConfig {
  return expandGrid(loadConfigSync({
    model,
    dataset: "tiny",
    args: {
      data_path: DATA,
      graph_cache_dir: "",
      epochs: String(epochs),
      train_batch_size: "64",
      embedding_size: "8",
      learning_rate: "0.01",
    },
  }))[0];
}

for (const name of ["LightGCN", "BPR"]) {
  Deno.test(`${name} is registered and resumes through the shared trainer as an uninterrupted run`, async () => {
    assert.equal(modelEntry(name).graphKind, name);
    const config = tinyRun(name, 3);
    let saved: TrainingState | undefined;
    const whole = await train(config, dataset, {
      callbacks: {
        onEpoch: async (record, context) => {
          if (record.epoch === 0) saved = await context.state();
        },
      },
    });
    assert.equal(whole.epochs.length, 3);
    assert.ok(whole.epochs.every((e) => Number.isFinite(e.train_loss)));
    assert.ok(whole.test_at_best_valid["recall@20"] >= 0);

    const resumed = await train(config, dataset, {
      resume: saved,
    });
    assert.deepEqual(
      resumed.epochs.map((e) => e.train_loss),
      whole.epochs.map((e) => e.train_loss),
    );
    assert.deepEqual(resumed.test_at_best_valid, whole.test_at_best_valid);
  });

  Deno.test(`${name} weights survive a checkpoint round trip`, async () => {
    const config = tinyRun(name, 1);
    const graphs = await buildGraphs(dataset, {
      knn_k: 10,
      cacheDir: null,
      modelKind: modelEntry(name).graphKind,
    });
    const make = (initialValues?: Map<string, Float32Array>) =>
      createModel(name, {
        dataset,
        graphs,
        config,
        backend: cpuBackend,
        random: new Random(3),
        initialValues,
      });
    const original = make();
    const folder = await Deno.makeTempDir({ prefix: "msca-baselines-" });
    try {
      const path = `${folder}/best.safetensors`;
      await saveCheckpoint(path, {
        tensors: await tensorsOf(original.stateDict()),
        metadata: {
          model: name,
          config: { embedding_size: 8 },
          datasetFingerprint: "test",
          epoch: 0,
          metrics: {},
        },
      });
      const checkpoint = await loadCheckpoint(path);
      const values = new Map(
        [...checkpoint.tensors].map(([key, t]) => [key, t.data]),
      );
      const restored = make(values);
      const users = new Int32Array([0, 5, 59]);
      const a = original.scorer();
      const b = restored.scorer();
      assert.deepEqual(await b.scoreBlock(users), await a.scoreBlock(users));
      a.dispose();
      b.dispose();
      restored.dispose();
    } finally {
      original.dispose();
      await Deno.remove(folder, { recursive: true });
    }
  });
}
