import assert from "node:assert/strict";
import { loadConfig } from "../src/config.ts";
import { expandGrid } from "../src/config.ts";
import { loadDataset } from "../src/data/dataset.ts";
import { Adam } from "../src/engine/adam.ts";
import { log, scale, sum } from "../src/engine/ops.ts";
import { Parameter } from "../src/engine/tensor.ts";
import type { Recommender } from "../src/models/model.ts";
import type { TrainingState } from "../src/checkpoint.ts";
import {
  epochLogLines,
  type EpochRecord,
  finalLogLines,
  gridSearch,
  gridTableLines,
  initialEarlyStopping,
  NonFiniteLossError,
  train,
  trainStep,
  updateEarlyStopping,
} from "../src/trainer.ts";

const DATA = "tests/fixtures/msca-tiny/data";
const dataset = loadDataset({ data_path: DATA, dataset: "tiny" });

async function tinyConfig(args: Record<string, unknown> = {}) {
  return await loadConfig({
    dataset: "tiny",
    args: {
      data_path: DATA,
      graph_cache_dir: "",
      embedding_size: 16,
      train_batch_size: 64,
      topk: [5, 10, 20],
      epochs: 4,
      ...args,
    },
  });
}

/** A record without its timings, to compare runs. */
function timeless(record: EpochRecord) {
  const { train_seconds: _t, eval_seconds: _e, ...rest } = record;
  return rest;
}

Deno.test("updateEarlyStopping() resets patience only on a strictly better score", () => {
  const metric = "recall@20";
  let stopping = initialEarlyStopping();
  const scores = [0.1, 0.2, 0.2, 0.15, 0.3];
  const epochs: number[] = [];
  const patience: number[] = [];
  scores.forEach((score, epoch) => {
    stopping = updateEarlyStopping(stopping, epoch, metric, {
      [metric]: score,
    }, { [metric]: score / 2 });
    epochs.push(stopping.best_epoch);
    patience.push(stopping.patience);
  });
  assert.deepEqual(epochs, [0, 1, 1, 1, 4]);
  assert.deepEqual(patience, [0, 0, 1, 2, 0]);
  assert.deepEqual(stopping.test_at_best_valid, { [metric]: 0.15 });
});

Deno.test("train() evaluates every epoch and reports test at the best valid epoch", async () => {
  const [run] = expandGrid(await tinyConfig());
  const seen: EpochRecord[] = [];
  let batches = 0;
  const result = await train(run, dataset, {
    callbacks: {
      onBatch: () => batches++,
      onEpoch: (record) => {
        seen.push(record);
      },
    },
  });
  assert.equal(result.epochs.length, 4);
  assert.equal(seen.length, 4);
  assert.equal(batches, 4 * Math.ceil(dataset.train.users.length / 64));
  const best = result.epochs[result.best_epoch];
  assert.deepEqual(result.test_at_best_valid, best.test);
  assert.equal(best.improved, true);
  for (const record of result.epochs) {
    assert.ok(Number.isFinite(record.train_loss));
    assert.ok(record.valid_score! <= result.best_valid["recall@20"]);
  }
  const lines = epochLogLines(result.epochs[0], "MSCA");
  assert.match(lines[0], /^epoch 0 training \[time: \d+\.\d\ds, train loss: /);
  assert.match(lines[1], /^epoch 0 evaluating \[time: .*valid_score: /);
  assert.match(lines[2], /^valid result: recall@5: \d\.\d{4} {4}recall@10: /);
  assert.match(lines[3], /^test result: /);
  assert.equal(lines[4], "██ MSCA--Best validation results updated!!!");
  assert.match(finalLogLines(result)[0], /BEST/);
});

Deno.test("train() stops when patience exceeds stopping_step", async () => {
  const [run] = expandGrid(
    await tinyConfig({ epochs: 50, stopping_step: 0, learning_rate: 0.05 }),
  );
  const result = await train(run, dataset);
  assert.ok(result.stopped_early);
  const last = result.epochs.length - 1;
  assert.ok(last < 49);
  assert.equal(result.epochs[last].improved, false);
  assert.equal(result.best_epoch, last - 1);
});

Deno.test("train() with eval_step 2 evaluates every second epoch", async () => {
  const [run] = expandGrid(await tinyConfig({ eval_step: 2 }));
  const result = await train(run, dataset);
  assert.deepEqual(
    result.epochs.map((record) => record.valid !== undefined),
    [false, true, false, true],
  );
});

Deno.test("train() applies the learning-rate schedule lr · γ^(e / s)", async () => {
  const [run] = expandGrid(
    await tinyConfig({ epochs: 3, learning_rate_scheduler: [0.5, 2] }),
  );
  const result = await train(run, dataset);
  const rates = result.epochs.map((record) => record.learning_rate);
  assert.deepEqual(rates, [1e-3, 1e-3 * 0.5 ** 0.5, 1e-3 * 0.5]);
});

Deno.test("train() resumed from an epoch's state ends as an uninterrupted run", async () => {
  const [run] = expandGrid(await tinyConfig({ epochs: 3 }));
  let saved: TrainingState | undefined;
  const full = await train(run, dataset, {
    callbacks: {
      onEpoch: async (record, context) => {
        if (record.epoch === 0) saved = await context.state();
      },
    },
  });
  assert.ok(saved !== undefined);
  assert.equal(saved.epoch, 0);
  assert.ok(saved.adam.firstMoment.has("user_embedding.weight"));
  const resumed = await train(run, dataset, { resume: saved });
  assert.deepEqual(
    resumed.epochs.map(timeless),
    full.epochs.map(timeless),
  );
  assert.deepEqual(resumed.test_at_best_valid, full.test_at_best_valid);
});

Deno.test("trainStep() stops a NaN loss naming epoch, batch and part", async () => {
  const weight = new Parameter("w", [1, 2], [2]);
  const model = {
    name: "Broken",
    loss: () => {
      const bpr = sum(log(scale(weight, -1)));
      const total = scale(bpr, 1);
      return {
        loss: total,
        parts: { loss: total, bpr },
        views: {},
        release: () => {},
      };
    },
  } as unknown as Recommender;
  const optimizer = new Adam([weight]);
  const batch = {
    users: new Int32Array(1),
    positives: new Int32Array(1),
    negatives: new Int32Array(1),
  };
  await assert.rejects(
    () => trainStep(model, optimizer, batch, 3, 7),
    (error: unknown) => {
      assert.ok(error instanceof NonFiniteLossError);
      assert.equal(error.epoch, 3);
      assert.equal(error.batch, 7);
      assert.equal(error.part, "bpr");
      assert.match(error.message, /epoch 3, batch 7 .*bpr/);
      return true;
    },
  );
});

Deno.test("train() refuses a valid_metric that is not computed", async () => {
  const [run] = expandGrid(await tinyConfig());
  await assert.rejects(
    () => train({ ...run, valid_metric: "Recall@50" }, dataset),
    /valid_metric "Recall@50" is not among the metrics computed/,
  );
});

Deno.test("gridSearch() trains every combination and marks the best by valid", async () => {
  const config = await tinyConfig({
    epochs: 2,
    hyper_parameters: ["seed", "n_layers"],
    n_layers: [1, 2],
  });
  const search = await gridSearch(config, dataset);
  assert.equal(search.combinations.length, 2);
  assert.deepEqual(
    search.combinations.map((c) => c.parameters),
    [{ seed: 999, n_layers: 1 }, { seed: 999, n_layers: 2 }],
  );
  const scores = search.combinations.map((c) =>
    c.result.best_valid["recall@20"]
  );
  assert.equal(
    scores[search.best_by_valid],
    Math.max(...scores),
  );
  const lines = gridTableLines(search);
  assert.match(lines[1], /seed\s+n_layers\s+best epoch\s+valid recall@20/);
  const marked = lines.slice(2, 4).filter((line) => line.startsWith("*"));
  assert.equal(marked.length, 1);
  assert.ok(lines.some((line) => line.includes("BEST")));
});
