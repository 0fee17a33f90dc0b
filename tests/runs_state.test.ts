import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CheckpointError,
  loadTrainingState,
  removeTrainingState,
  saveTrainingState,
  type TensorMap,
  TRAINING_STATE_FILE,
  type TrainingState,
  writeFileAtomic,
} from "../src/checkpoint.ts";
import { Random } from "../src/random.ts";

async function withTempDir(
  body: (folder: string) => Promise<void>,
): Promise<void> {
  const folder = await Deno.makeTempDir({ prefix: "msca-runs-" });
  try {
    await body(folder);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
}

async function listFolder(folder: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(folder)) names.push(entry.name);
  return names.sort();
}

function randomTensors(random: Random, names: string[]): TensorMap {
  const map: TensorMap = new Map();
  names.forEach((name, i) => {
    const shape = [i + 2, 3];
    const data = new Float32Array(shape[0] * shape[1]);
    for (let j = 0; j < data.length; j++) data[j] = random.nextNormal();
    map.set(name, { shape, data });
  });
  return map;
}

function stateAt(epoch: number, seed: number): TrainingState {
  const random = new Random(seed);
  const names = ["user_embedding.weight", "gate_v.0.bias"];
  return {
    epoch,
    parameters: randomTensors(random, names),
    adam: {
      step: 40 * (epoch + 1),
      firstMoment: randomTensors(random, names),
      secondMoment: randomTensors(random, names),
    },
    random: random.state(),
    earlyStopping: { best_score: 0.125, best_epoch: epoch, patience: 0 },
    history: [{ epoch, train_loss: 1.5, valid: { "recall@20": 0.125 } }],
    extra: { learning_rate: 0.001 },
  };
}

Deno.test("writeFileAtomic() writes text and bytes and leaves no temporary file", async () => {
  await withTempDir(async (folder) => {
    const path = join(folder, "summary.json");
    await writeFileAtomic(path, '{"a": 1}\n');
    assert.equal(await Deno.readTextFile(path), '{"a": 1}\n');

    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    assert.deepEqual(await Deno.readFile(path), new Uint8Array([1, 2, 3]));

    await writeFileAtomic(path, [new Uint8Array([4]), new Uint8Array([5, 6])]);
    assert.deepEqual(await Deno.readFile(path), new Uint8Array([4, 5, 6]));
    assert.deepEqual(await listFolder(folder), ["summary.json"]);
  });
});

Deno.test("writeFileAtomic() interrupted mid-write keeps the old file and cleans up", async () => {
  await withTempDir(async (folder) => {
    const path = join(folder, "best.safetensors");
    await Deno.writeTextFile(path, "old complete content");
    let temporarySeen: string[] = [];

    function* interruptedChunks(): Generator<Uint8Array> {
      yield new Uint8Array(1000).fill(7);
      temporarySeen = [...Deno.readDirSync(folder)].map((e) => e.name);
      throw new Error("simulated crash during the write");
    }

    await assert.rejects(
      writeFileAtomic(path, interruptedChunks()),
      /simulated crash/,
    );

    assert.equal(temporarySeen.length, 2, "a temporary file was being written");
    assert.ok(
      temporarySeen.some((name) =>
        name.startsWith(".best.safetensors.") && name.endsWith(".tmp")
      ),
    );
    assert.equal(await Deno.readTextFile(path), "old complete content");
    assert.deepEqual(await listFolder(folder), ["best.safetensors"]);
  });
});

Deno.test("writeFileAtomic() into a missing folder fails without side effects", async () => {
  await withTempDir(async (folder) => {
    await assert.rejects(
      writeFileAtomic(join(folder, "missing", "x.json"), "{}"),
      Deno.errors.NotFound,
    );
    assert.deepEqual(await listFolder(folder), []);
  });
});

Deno.test("saveTrainingState() and loadTrainingState() round-trip every field", async () => {
  await withTempDir(async (folder) => {
    const state = stateAt(4, 11);
    await saveTrainingState(folder, state);
    const loaded = await loadTrainingState(folder);

    assert.equal(loaded.epoch, 4);
    assert.deepEqual(loaded.adam, state.adam);
    assert.deepEqual(loaded.random, state.random);
    assert.deepEqual(loaded.earlyStopping, state.earlyStopping);
    assert.deepEqual(loaded.history, state.history);
    assert.deepEqual(loaded.extra, state.extra);
    for (const key of ["parameters"] as const) {
      assert.deepEqual(loaded[key], state[key]);
    }

    const resumed = Random.fromState(loaded.random);
    const original = Random.fromState(state.random);
    assert.equal(resumed.nextUint32(), original.nextUint32());
  });
});

Deno.test("saveTrainingState() keeps only the newest arrays file and no leftovers", async () => {
  await withTempDir(async (folder) => {
    await saveTrainingState(folder, stateAt(0, 1));
    await saveTrainingState(folder, stateAt(1, 2));
    // What a save killed mid-write leaves behind.
    await Deno.writeTextFile(
      join(folder, ".state-epoch2.safetensors.4242.1a2b.tmp"),
      "partial",
    );
    await Deno.writeTextFile(join(folder, ".state.json.4242.ff.tmp"), "{");
    await saveTrainingState(folder, stateAt(2, 3));

    assert.deepEqual(await listFolder(folder), [
      "state-epoch2.safetensors",
      TRAINING_STATE_FILE,
    ]);
    assert.equal((await loadTrainingState(folder)).epoch, 2);
  });
});

Deno.test("loadTrainingState() detects a half-updated or damaged pair", async () => {
  await withTempDir(async (folder) => {
    await saveTrainingState(folder, stateAt(3, 5));
    const jsonPath = join(folder, TRAINING_STATE_FILE);
    const json = JSON.parse(await Deno.readTextFile(jsonPath));
    const arrays = join(folder, json.tensors_file);

    // An arrays file from another save under the name state.json points to.
    const other = await Deno.makeTempDir();
    await saveTrainingState(other, stateAt(3, 6));
    await Deno.copyFile(join(other, "state-epoch3.safetensors"), arrays);
    await Deno.remove(other, { recursive: true });
    await assert.rejects(
      loadTrainingState(folder),
      (error: Error) =>
        error instanceof CheckpointError &&
        error.message.startsWith(`${arrays}: does not match state.json`) &&
        error.message.includes("half written"),
    );

    await Deno.writeTextFile(jsonPath, '{"format": "msca-deno training');
    await assert.rejects(
      loadTrainingState(folder),
      (error: Error) =>
        error instanceof CheckpointError &&
        error.message.startsWith(`${jsonPath}: corrupt training state`),
    );

    await Deno.writeTextFile(jsonPath, '{"epoch": 3}');
    await assert.rejects(
      loadTrainingState(folder),
      /not an msca-deno training state/,
    );
  });
});

Deno.test("loadTrainingState() on a folder without state says there is nothing to resume", async () => {
  await withTempDir(async (folder) => {
    await assert.rejects(
      loadTrainingState(folder),
      (error: Error) =>
        error instanceof CheckpointError &&
        error.message ===
          `${
            join(folder, TRAINING_STATE_FILE)
          }: no such training state file (nothing to resume)`,
    );
  });
});

Deno.test("saveTrainingState() refuses numbers JSON cannot keep", async () => {
  await withTempDir(async (folder) => {
    const state = stateAt(0, 1);
    state.earlyStopping = { best_score: -Infinity };
    await assert.rejects(
      saveTrainingState(folder, state),
      /earlyStopping\.best_score is -Infinity/,
    );
  });
});

Deno.test("removeTrainingState() leaves nothing to resume and keeps other files", async () => {
  await withTempDir(async (folder) => {
    await saveTrainingState(folder, stateAt(3, 1));
    await Deno.writeTextFile(join(folder, "summary.json"), "{}");
    await removeTrainingState(folder);
    assert.deepEqual(await listFolder(folder), ["summary.json"]);
    await removeTrainingState(folder);
    await assert.rejects(loadTrainingState(folder), /nothing to resume/);
  });
});
