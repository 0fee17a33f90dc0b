import assert from "node:assert/strict";
import { join } from "node:path";
import { loadTrainingState, saveTrainingState } from "../src/checkpoint.ts";
import { expandGrid, loadConfig } from "../src/config.ts";
import { loadDataset } from "../src/data/dataset.ts";
import { type EpochRecord, train } from "../src/trainer.ts";

class Interrupted extends Error {}

function withoutTimings(epochs: EpochRecord[]): EpochRecord[] {
  return epochs.map((record) => ({
    ...record,
    train_seconds: 0,
    eval_seconds: record.eval_seconds === undefined ? undefined : 0,
  }));
}

Deno.test("a run resumed from its saved training state ends as an uninterrupted one", async () => {
  const repository = new URL("..", import.meta.url).pathname;
  const config = await loadConfig({
    model: "MSCA",
    dataset: "tiny",
    args: {
      data_path: join(repository, "tests/fixtures/msca-tiny/data"),
      epochs: 4,
      embedding_size: 16,
      train_batch_size: 64,
      device: "cpu",
      graph_cache_dir: "",
    },
  });
  const [run] = expandGrid(config);
  const dataset = loadDataset(run);
  const runDir = await Deno.makeTempDir({ prefix: "msca-resume-" });
  try {
    const uninterrupted = await train(run, dataset);

    await assert.rejects(
      train(run, dataset, {
        callbacks: {
          onEpoch: async (record, context) => {
            await saveTrainingState(runDir, await context.state());
            if (record.epoch === 1) throw new Interrupted("stopped");
          },
        },
      }),
      Interrupted,
    );
    const state = await loadTrainingState(runDir);
    assert.equal(state.epoch, 1);
    const resumed = await train(run, dataset, { resume: state });

    assert.equal(resumed.epochs.length, 4);
    assert.deepEqual(
      withoutTimings(resumed.epochs),
      withoutTimings(uninterrupted.epochs),
    );
    assert.equal(resumed.best_epoch, uninterrupted.best_epoch);
    assert.deepEqual(
      resumed.test_at_best_valid,
      uninterrupted.test_at_best_valid,
    );
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
