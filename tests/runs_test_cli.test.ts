import assert from "node:assert/strict";
import { join } from "node:path";
import {
  BEST_CHECKPOINT_FILE,
  fingerprintOfDataset,
  saveCheckpoint,
  tensorsOf,
} from "../src/checkpoint.ts";
import { expandGrid, loadConfig } from "../src/config.ts";
import { loadDataset } from "../src/data/dataset.ts";
import { train } from "../src/trainer.ts";

const repository = new URL("..", import.meta.url).pathname;
const fixtureData = join(repository, "tests/fixtures/msca-tiny/data");

/** Trains MSCA on the tiny fixture for two epochs, saving the best. */
async function trainTiny(runDir: string) {
  const config = await loadConfig({
    model: "MSCA",
    dataset: "tiny",
    args: [
      "--data_path",
      fixtureData,
      "--epochs",
      "2",
      "--embedding_size",
      "16",
      "--train_batch_size",
      "64",
      "--device",
      "cpu",
      "--graph_cache_dir",
      "",
    ],
  });
  const [run] = expandGrid(config);
  const dataset = loadDataset(run);
  const fingerprint = await fingerprintOfDataset(run, dataset);
  return await train(run, dataset, {
    callbacks: {
      onEpoch: async (record, context) => {
        if (!record.improved) return;
        await saveCheckpoint(join(runDir, BEST_CHECKPOINT_FILE), {
          tensors: await tensorsOf(context.model.stateDict()),
          metadata: {
            model: run.model,
            config: run,
            datasetFingerprint: fingerprint,
            epoch: record.epoch,
            metrics: { valid: record.valid, test: record.test },
          },
        });
      },
    },
  });
}

async function runTestCli(...args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      "test.ts",
      ...args,
    ],
    cwd: repository,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

Deno.test("deno task test -c reproduces the run's test_at_best_valid", async () => {
  const runDir = await Deno.makeTempDir({ prefix: "msca-test-cli-" });
  try {
    const result = await trainTiny(runDir);
    const checkpoint = join(runDir, BEST_CHECKPOINT_FILE);

    const { code, stdout, stderr } = await runTestCli(
      "-c",
      checkpoint,
      "--json",
    );
    assert.equal(code, 0, stderr);
    const lines = stdout.trim().split("\n");
    assert.match(lines[0], /^checkpoint .*: MSCA from epoch \d/);
    assert.match(lines[1], /^valid result: recall@5: \d\.\d{4} {4}recall@10/);
    assert.match(lines[2], /^test result: recall@5: \d\.\d{4}/);
    const json = JSON.parse(lines.at(-1)!);
    assert.deepEqual(Object.keys(json), ["valid", "test"]);
    assert.deepEqual(json.test, result.test_at_best_valid);
    assert.deepEqual(json.valid, result.best_valid);
    assert.ok(!stderr.includes("note:"), stderr);

    // A checkpoint cut short: one line naming the file, exit code 1.
    const bytes = await Deno.readFile(checkpoint);
    const cut = join(runDir, "cut.safetensors");
    await Deno.writeFile(cut, bytes.subarray(0, bytes.length >> 1));
    const truncated = await runTestCli("-c", cut);
    assert.equal(truncated.code, 1);
    assert.equal(truncated.stdout, "");
    assert.equal(
      truncated.stderr.trim().split("\n").length,
      1,
      truncated.stderr,
    );
    assert.match(truncated.stderr, new RegExp(`^error: ${cut}: truncated`));
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("deno task test refuses a checkpoint made on other data", async () => {
  const runDir = await Deno.makeTempDir({ prefix: "msca-test-cli-" });
  try {
    await trainTiny(runDir);
    const dataPath = join(runDir, "data");
    const folder = join(dataPath, "edited");
    await Deno.mkdir(folder, { recursive: true });
    for (const file of ["image_feat.npy", "text_feat.npy"]) {
      await Deno.copyFile(join(fixtureData, "tiny", file), join(folder, file));
    }
    const inter = await Deno.readTextFile(join(fixtureData, "tiny/tiny.inter"));
    const lines = inter.trimEnd().split("\n");
    await Deno.writeTextFile(
      join(folder, "edited.inter"),
      lines.slice(0, -1).join("\n") + "\n",
    );

    const { code, stdout, stderr } = await runTestCli(
      "-c",
      join(runDir, BEST_CHECKPOINT_FILE),
      "-d",
      "edited",
      "--data_path",
      dataPath,
    );
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.match(
      stderr.trim(),
      /^error: .*best\.safetensors: made on another dataset than "edited" \(it was trained on "tiny"\): the interaction file differs$/,
    );

    const missing = await runTestCli();
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: no checkpoint given; pass -c/);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
