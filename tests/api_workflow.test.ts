import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CheckpointError,
  type Config,
  ConfigError,
  createModel,
  evaluate,
  expandGrid,
  generateSynthetic,
  loadCheckpoint,
  loadConfig,
  loadDataset,
  loadModel,
  recommend,
  saveModel,
  train,
  writeSynthetic,
} from "../mod.ts";

const tinyDataPath = fileURLToPath(
  new URL("./fixtures/msca-tiny/data", import.meta.url),
);

/** The tiny fixture's config with small, fast settings. */
function tinyConfig(
  model: string,
  values: Record<string, unknown> = {},
): Promise<Config> {
  return loadConfig({
    model,
    dataset: "tiny",
    args: {
      data_path: tinyDataPath,
      graph_cache_dir: "",
      embedding_size: 8,
      train_batch_size: 64,
      learning_rate: 0.01,
      epochs: 3,
      topk: [5, 10],
      valid_metric: "Recall@10",
      ...values,
    },
  });
}

/** A synthetic dataset in MMRec's layout, in a fresh temporary folder. */
async function syntheticFolder(seed: number): Promise<string> {
  const dataPath = await Deno.makeTempDir();
  writeSynthetic(
    generateSynthetic({
      name: "toy",
      userCount: 40,
      itemCount: 50,
      interactionCount: 400,
      imageDim: 6,
      textDim: 4,
      seed,
    }),
    join(dataPath, "toy"),
  );
  return dataPath;
}

Deno.test("train() returns the model with the weights of its best valid epoch", async () => {
  // A learning rate this high overshoots: valid recall peaks at epoch 0,
  // so the best weights are not the last ones.
  const config = await tinyConfig("MSCA", { learning_rate: 0.5 });
  const dataset = loadDataset(config);
  const records: number[] = [];
  const trained = await train(config, dataset, {
    callbacks: { onEpoch: (record) => void records.push(record.epoch) },
  });
  try {
    assert.deepEqual(records, [0, 1, 2]);
    assert.equal(trained.result.best_epoch, 0);
    assert.equal(trained.epoch, 0);
    assert.deepEqual(trained.metrics.valid, trained.result.best_valid);
    assert.deepEqual(trained.metrics.test, trained.result.test_at_best_valid);
    const now = await evaluate(trained.model, dataset, trained.config);
    assert.deepEqual(now.valid, trained.result.best_valid);
    assert.deepEqual(now.test, trained.result.test_at_best_valid);
  } finally {
    trained.model.dispose();
  }
});

Deno.test("train() keeps the last epoch's weights when no epoch was evaluated", async () => {
  const config = await tinyConfig("BPR", { epochs: 2, eval_step: 5 });
  const dataset = loadDataset(config);
  let lastScores: Float32Array | undefined;
  const trained = await train(config, dataset, {
    callbacks: {
      onEpoch: async (record, context) => {
        if (record.epoch !== 1) return;
        const scorer = context.model.scorer();
        lastScores = await scorer.scoreBlock(new Int32Array([0, 1]));
        scorer.dispose();
      },
    },
  });
  try {
    assert.equal(trained.epoch, 1);
    assert.deepEqual(trained.metrics, {});
    assert.equal(trained.result.best_epoch, -1);
    const scorer = trained.model.scorer();
    assert.deepEqual(
      await scorer.scoreBlock(new Int32Array([0, 1])),
      lastScores,
    );
    scorer.dispose();
  } finally {
    trained.model.dispose();
  }
});

Deno.test("train() and createModel() refuse a config holding a grid of runs", async () => {
  const config = await tinyConfig("MSCA", {
    hyper_parameters: ["seed", "n_layers"],
    n_layers: [1, 2],
  });
  const dataset = loadDataset(config);
  await assert.rejects(() => train(config, dataset), ConfigError);
  await assert.rejects(() => createModel(config, dataset), /describes 2 runs/);
  const model = await createModel(expandGrid(config)[1], dataset);
  model.dispose();
});

Deno.test("saveModel() and loadModel() round-trip weights, config, epoch and metrics", async () => {
  const config = await tinyConfig("MSCA", { epochs: 1 });
  const dataset = loadDataset(config);
  const folder = await Deno.makeTempDir();
  const trained = await train(config, dataset);
  try {
    const path = join(folder, "best.safetensors");
    await saveModel(path, trained, dataset);
    const checkpoint = await loadCheckpoint(path);
    assert.equal(checkpoint.metadata.model, "MSCA");
    assert.equal(checkpoint.metadata.epoch, 0);
    assert.match(checkpoint.metadata.datasetFingerprint, /^inter-sha256=/);

    const loaded = await loadModel(path, dataset, { datasetConfig: config });
    try {
      assert.deepEqual(loaded.config, trained.config);
      assert.equal(loaded.epoch, trained.epoch);
      assert.deepEqual(loaded.metrics, trained.metrics);
      const saved = trained.model.stateDict();
      for (const [name, tensor] of loaded.model.stateDict()) {
        assert.deepEqual(
          await tensor.toArray(),
          await saved.get(name)!.toArray(),
          name,
        );
      }
      const users = [0, 5, 59];
      assert.deepEqual(
        (await recommend(loaded.model, dataset, users, 10)).items,
        (await recommend(trained.model, dataset, users, 10)).items,
      );
    } finally {
      loaded.model.dispose();
    }
  } finally {
    trained.model.dispose();
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("loadModel() refuses a checkpoint made on other data", async () => {
  const dataPath = await syntheticFolder(1);
  const otherPath = await syntheticFolder(2);
  try {
    const config = await loadConfig({
      model: "BPR",
      dataset: "toy",
      args: { data_path: dataPath, graph_cache_dir: "", embedding_size: 8 },
    });
    const dataset = loadDataset(config);
    const model = await createModel(config, dataset);
    const path = join(dataPath, "bpr.safetensors");
    await saveModel(path, {
      model,
      config: expandGrid(config)[0],
      epoch: -1,
      metrics: {},
    }, dataset);
    model.dispose();

    // Same sizes, other interactions: only the fingerprint tells them apart.
    const otherConfig = await loadConfig({
      model: "BPR",
      dataset: "toy",
      args: { data_path: otherPath, graph_cache_dir: "", embedding_size: 8 },
    });
    const other = loadDataset(otherConfig);
    await assert.rejects(
      () => loadModel(path, other, { datasetConfig: otherConfig }),
      (error: Error) =>
        error instanceof CheckpointError &&
        /interaction file differs/.test(error.message),
    );

    // Other sizes: the weights do not fit.
    const tiny = loadDataset(await tinyConfig("BPR"));
    await assert.rejects(
      () => loadModel(path, tiny),
      (error: Error) =>
        error instanceof CheckpointError && /has shape/.test(error.message),
    );
  } finally {
    await Deno.remove(dataPath, { recursive: true });
    await Deno.remove(otherPath, { recursive: true });
  }
});

Deno.test("saveModel() names the missing interaction file it needs for the fingerprint", async () => {
  const config = await tinyConfig("BPR");
  const dataset = loadDataset(config);
  const model = await createModel(config, dataset);
  const folder = await Deno.makeTempDir();
  try {
    const run = { ...expandGrid(config)[0], data_path: folder };
    await assert.rejects(
      () =>
        saveModel(
          join(folder, "x.safetensors"),
          { model, config: run, epoch: -1, metrics: {} },
          dataset,
        ),
      (error: Error) =>
        error instanceof CheckpointError &&
        error.path === join(folder, "tiny", "tiny.inter"),
    );
    await saveModel(
      join(folder, "y.safetensors"),
      { model, config: run, epoch: -1, metrics: {} },
      dataset,
      { datasetFingerprint: "inter-sha256=00" },
    );
    const checkpoint = await loadCheckpoint(join(folder, "y.safetensors"));
    assert.equal(checkpoint.metadata.datasetFingerprint, "inter-sha256=00");
  } finally {
    model.dispose();
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("recommend() ranks by score with each user's train items masked", async () => {
  const config = await tinyConfig("LightGCN");
  const dataset = loadDataset(config);
  const model = await createModel(config, dataset);
  try {
    const users = [3, 0, 41];
    const k = 10;
    const { users: ids, items } = await recommend(model, dataset, users, k);
    assert.deepEqual([...ids], users);

    const scorer = model.scorer();
    const scores = await scorer.scoreBlock(Int32Array.from(users));
    scorer.dispose();
    for (let row = 0; row < users.length; row++) {
      const user = users[row];
      const train = new Set(
        dataset.trainItems.subarray(
          dataset.trainOffsets[user],
          dataset.trainOffsets[user + 1],
        ),
      );
      const userScores = scores.subarray(
        row * dataset.itemCount,
        (row + 1) * dataset.itemCount,
      );
      const expected = Array.from(
        { length: dataset.itemCount },
        (_, item) => item,
      )
        .filter((item) => !train.has(item))
        .sort((a, b) => userScores[b] - userScores[a] || a - b)
        .slice(0, k);
      assert.deepEqual([...items[row]], expected, `user ${user}`);
    }
  } finally {
    model.dispose();
  }
});

Deno.test("recommend() refuses user IDs outside the dataset", async () => {
  const config = await tinyConfig("BPR");
  const dataset = loadDataset(config);
  const model = await createModel(config, dataset);
  try {
    await assert.rejects(
      () => recommend(model, dataset, [0, dataset.userCount], 5),
      /user 60 \(at index 1\) is not a user ID of dataset "tiny"/,
    );
    await assert.rejects(() => recommend(model, dataset, [1.5], 5), RangeError);
    await assert.rejects(
      () => recommend(model, dataset, [0], dataset.itemCount + 1),
      RangeError,
    );
    assert.deepEqual((await recommend(model, dataset, [], 5)).items, []);
  } finally {
    model.dispose();
  }
});

Deno.test("a checkpoint from saveModel() evaluates to the same metrics under deno task test", async () => {
  const config = await tinyConfig("MSCA", { epochs: 1, device: "cpu" });
  const dataset = loadDataset(config);
  const folder = await Deno.makeTempDir();
  const trained = await train(config, dataset);
  try {
    const path = join(folder, "best.safetensors");
    await saveModel(path, trained, dataset);
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys",
        fileURLToPath(new URL("../test.ts", import.meta.url)),
        "-c",
        path,
        "--json",
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const lines = stdout.trim().split("\n");
    assert.deepEqual(JSON.parse(lines[lines.length - 1]), trained.metrics);
  } finally {
    trained.model.dispose();
    await Deno.remove(folder, { recursive: true });
  }
});
