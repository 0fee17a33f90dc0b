import assert from "node:assert/strict";
import { loadDataset } from "../src/data/dataset.ts";
import type { Dataset } from "../src/data/dataset.ts";
import { buildGraphs } from "../src/graph/graphs.ts";
import { Adam } from "../src/engine/adam.ts";
import { cpuBackend } from "../src/engine/cpu.ts";
import { MSCA } from "../src/models/msca.ts";
import { createModel, modelNames } from "../src/models/registry.ts";
import { Random } from "../src/random.ts";

const dataset = loadDataset({
  data_path: "tests/fixtures/msca-tiny/data",
  dataset: "tiny",
});
const hyper = {
  embedding_size: 16,
  n_layers: 2,
  fusion_coeff: 0.4,
  tau: 0.2,
  cl_weight: 0.05,
  reg_weight: 1e-4,
};
const batch = {
  users: new Int32Array([0, 1, 2, 2]),
  positives: new Int32Array([15, 3, 7, 9]),
  negatives: new Int32Array([1, 2, 3, 4]),
};

async function modelOn(data: Dataset, config: Record<string, unknown> = {}) {
  const graphs = await buildGraphs(data, {
    knn_k: 10,
    cacheDir: null,
    modelKind: "MSCA",
  });
  return new MSCA({
    dataset: data,
    graphs,
    config: { ...hyper, ...config },
    backend: cpuBackend,
    random: new Random(7),
  });
}

Deno.test("MSCA state_dict has the reference's names and shapes", async () => {
  const model = await modelOn(dataset);
  const shapes = Object.fromEntries(
    [...model.stateDict()].map(([name, t]) => [name, t.shape]),
  );
  assert.deepEqual(shapes, {
    "user_embedding.weight": [60, 16],
    "item_id_embedding.weight": [150, 16],
    "image_embedding.weight": [150, 12],
    "text_embedding.weight": [150, 8],
    "image_trs.weight": [16, 12],
    "image_trs.bias": [16],
    "text_trs.weight": [16, 8],
    "text_trs.bias": [16],
    "gate_v.0.weight": [16, 16],
    "gate_v.0.bias": [16],
    "gate_t.0.weight": [16, 16],
    "gate_t.0.bias": [16],
    "query_common.0.weight": [16, 16],
    "query_common.0.bias": [16],
    "query_common.2.weight": [1, 16],
  });
  model.dispose();
});

Deno.test("MSCA initial values follow spec 3", async () => {
  const model = await modelOn(dataset);
  const state = model.stateDict();
  const maxAbs = async (name: string) =>
    Math.max(...(await state.get(name)!.toArray()).map(Math.abs));
  assert.ok(await maxAbs("user_embedding.weight") <= Math.sqrt(6 / 76));
  assert.ok(await maxAbs("user_embedding.weight") > 0.8 * Math.sqrt(6 / 76));
  assert.ok(await maxAbs("item_id_embedding.weight") <= Math.sqrt(6 / 166));
  assert.ok(await maxAbs("image_trs.weight") <= 1 / Math.sqrt(12));
  assert.ok(await maxAbs("text_trs.bias") <= 1 / Math.sqrt(8));
  assert.ok(await maxAbs("query_common.2.weight") <= 1 / Math.sqrt(16));
  assert.deepEqual(
    await state.get("image_embedding.weight")!.toArray(),
    dataset.features.image!.data,
  );
  model.dispose();
});

Deno.test("MSCA with the same seed starts from the same parameters", async () => {
  const first = await modelOn(dataset);
  const second = await modelOn(dataset);
  for (const [name, tensor] of first.stateDict()) {
    assert.deepEqual(
      await tensor.toArray(),
      await second.stateDict().get(name)!.toArray(),
      name,
    );
  }
  first.dispose();
  second.dispose();
});

Deno.test("MSCA trains with the text modality alone", async () => {
  const textOnly: Dataset = {
    ...dataset,
    features: { text: dataset.features.text },
  };
  const model = await modelOn(textOnly);
  const names = [...model.stateDict().keys()];
  assert.ok(
    !names.some((n) => n.startsWith("image") || n.startsWith("gate_v")),
  );
  assert.ok(names.includes("gate_t.0.weight"));
  const output = model.loss(batch);
  assert.deepEqual(output.views.attention.shape, [210, 2]);
  assert.equal(output.views.image, undefined);
  const loss = await output.loss.item();
  assert.ok(Number.isFinite(loss));
  output.loss.backward();
  output.release();
  assert.notEqual(model.stateDict().get("gate_t.0.weight")!.grad, null);
  model.dispose();
});

Deno.test("MSCA refuses a dataset without features", async () => {
  await assert.rejects(
    () => modelOn({ ...dataset, features: {} }),
    /at least one modality/,
  );
});

Deno.test("freeze_features keeps the feature tables fixed and out of Adam", async () => {
  const model = await modelOn(dataset, { freeze_features: true });
  const trainable = model.trainableParameters().map((p) => p.name);
  assert.ok(!trainable.includes("image_embedding.weight"));
  assert.ok(!trainable.includes("text_embedding.weight"));
  assert.equal(trainable.length, 13);
  assert.ok(model.stateDict().has("image_embedding.weight"));
  const before = await model.stateDict().get("image_embedding.weight")!
    .toArray();
  const userBefore = await model.stateDict().get("user_embedding.weight")!
    .toArray();
  const optimizer = new Adam(model.trainableParameters());
  const output = model.loss(batch);
  output.loss.backward();
  output.release();
  optimizer.step();
  assert.deepEqual(
    await model.stateDict().get("image_embedding.weight")!.toArray(),
    before,
  );
  assert.notDeepEqual(
    await model.stateDict().get("user_embedding.weight")!.toArray(),
    userBefore,
  );
  model.dispose();
});

Deno.test("MSCA loss parts add up to the loss", async () => {
  const model = await modelOn(dataset);
  const { parts } = model.loss(batch);
  const value = async (name: string) => await parts[name].item();
  const expected = await value("bpr") +
    hyper.cl_weight *
      (await value("C_u") + await value("C_i") + await value("M_u") +
        await value("M_i")) +
    hyper.reg_weight * await value("reg");
  assert.ok(Math.abs(await value("loss") - expected) < 1e-5 * expected);
  model.dispose();
});

Deno.test("MSCA scorer gives E*_u · E*_i for a block of users", async () => {
  const model = await modelOn(dataset);
  const { views } = model.loss(batch);
  const users = await views.final_user.toArray();
  const items = await views.final_item.toArray();
  const scorer = model.scorer();
  const scores = await scorer.scoreBlock(new Int32Array([5, 0]));
  scorer.dispose();
  assert.equal(scores.length, 2 * 150);
  let dot = 0;
  for (let c = 0; c < 16; c++) dot += users[5 * 16 + c] * items[7 * 16 + c];
  assert.ok(Math.abs(scores[7] - dot) < 1e-5);
  model.dispose();
});

Deno.test("MSCA reports a missing or bad hyper-parameter by name", async () => {
  await assert.rejects(() => modelOn(dataset, { tau: 0 }), /tau must be/);
  await assert.rejects(
    () => modelOn(dataset, { n_layers: undefined }),
    /n_layers must be a positive integer, got undefined/,
  );
});

Deno.test("createModel() names the known models for an unknown one", () => {
  assert.ok(modelNames().includes("MSCA"));
  assert.throws(
    () =>
      createModel("MCSA", {
        dataset,
        graphs: { modality: {} },
        config: hyper,
        backend: cpuBackend,
        random: new Random(1),
      }),
    /Unknown model "MCSA"; expected one of MSCA/,
  );
});
