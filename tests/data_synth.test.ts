import assert from "node:assert/strict";
import { join } from "node:path";
import { type Dataset, loadDataset } from "../src/data/dataset.ts";
import { readNpy } from "../src/data/npy.ts";
import { DataError } from "../src/data/errors.ts";
import {
  ensureDefaultDataset,
  ensureSyntheticDataset,
  generateSynthetic,
  SYNTHETIC_PRESETS,
  type SyntheticOptions,
  writeSynthetic,
} from "../src/data/synth.ts";
import { main as synthCli } from "../src/cli/synth.ts";

const SMALL: SyntheticOptions = {
  name: "small",
  userCount: 300,
  itemCount: 200,
  interactionCount: 3000,
  imageDim: 16,
  textDim: 8,
  seed: 11,
};

function withTempDir<T>(run: (dir: string) => T): T {
  const dir = Deno.makeTempDirSync({ prefix: "msca_synth_" });
  try {
    return run(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function filesOf(folder: string): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  for (const entry of Deno.readDirSync(folder)) {
    files[entry.name] = Deno.readFileSync(join(folder, entry.name));
  }
  return files;
}

Deno.test("writeSynthetic() gives the same bytes for the same seed", () => {
  withTempDir((dir) => {
    writeSynthetic(generateSynthetic(SMALL), join(dir, "a"));
    writeSynthetic(generateSynthetic(SMALL), join(dir, "b"));
    writeSynthetic(generateSynthetic({ ...SMALL, seed: 12 }), join(dir, "c"));
    const a = filesOf(join(dir, "a"));
    const b = filesOf(join(dir, "b"));
    const c = filesOf(join(dir, "c"));
    assert.deepEqual(Object.keys(a).sort(), [
      "image_feat.npy",
      "small.inter",
      "synthetic.json",
      "text_feat.npy",
    ]);
    for (const name of Object.keys(a)) {
      assert.deepEqual(a[name], b[name], name);
    }
    assert.notDeepEqual(a["small.inter"], c["small.inter"]);
    assert.notDeepEqual(a["image_feat.npy"], c["image_feat.npy"]);
  });
});

Deno.test("generateSynthetic() writes a valid MMRec layout with exact counts", () => {
  withTempDir((dir) => {
    writeSynthetic(generateSynthetic(SMALL), join(dir, "small"));
    const header = Deno.readTextFileSync(join(dir, "small", "small.inter"))
      .split("\n")[0];
    assert.equal(header, "userID\titemID\trating\ttimestamp\tx_label");
    const image = readNpy(join(dir, "small", "image_feat.npy"));
    assert.deepEqual(image.shape, [200, 16]);
    assert.equal(image.dtype, "<f4");

    const dataset = loadDataset({ data_path: dir, dataset: "small" });
    assert.equal(dataset.userCount, 300);
    assert.equal(dataset.itemCount, 200);
    assert.equal(
      dataset.train.users.length + dataset.valid.users.length +
        dataset.test.users.length,
      3000,
    );
    assert.equal(dataset.features.text?.cols, 8);
  });
});

Deno.test("generateSynthetic() splits each user 8:1:1 in time order, items all in train", () => {
  const data = generateSynthetic({ ...SYNTHETIC_PRESETS.synthetic, seed: 5 });
  const perUser = new Map<number, number[]>();
  for (let row = 0; row < data.users.length; row++) {
    const labels = perUser.get(data.users[row]) ?? [];
    labels.push(data.labels[row]);
    perUser.set(data.users[row], labels);
    if (row > 0 && data.users[row] === data.users[row - 1]) {
      assert.ok(data.timestamps[row] > data.timestamps[row - 1]);
    }
  }
  assert.equal(perUser.size, 600);
  for (const [user, labels] of perUser) {
    assert.ok(labels.length >= 5, `user ${user} has ${labels.length} rows`);
    const sorted = [...labels].sort();
    assert.deepEqual(labels, sorted, `user ${user}: labels out of order`);
    for (const split of [0, 1, 2]) {
      assert.ok(labels.includes(split), `user ${user} lacks split ${split}`);
    }
  }
  const trainShare = data.labels.filter((label) => label === 0).length /
    data.labels.length;
  assert.ok(trainShare > 0.75 && trainShare < 0.85, `train ${trainShare}`);

  const trainItems = new Set<number>();
  data.items.forEach((item, row) => {
    if (data.labels[row] === 0) trainItems.add(item);
  });
  assert.equal(trainItems.size, 300);
});

Deno.test("the default synthetic dataset rewards a personalised model over most-popular", () => {
  withTempDir((dir) => {
    const folder = ensureDefaultDataset(dir);
    assert.equal(folder, join(dir, "synthetic"));
    const dataset = loadDataset({ data_path: dir, dataset: "synthetic" });
    assert.equal(dataset.userCount, 600);
    assert.equal(dataset.itemCount, 300);

    const popularity = new Float64Array(dataset.itemCount);
    for (const item of dataset.train.items) popularity[item]++;
    const popular = recallAt20(dataset, () => popularity);
    const neighbours = recallAt20(dataset, itemKnnScores(dataset));
    // 300 items: the top 20 are 7% of the catalogue, so most-popular
    // already finds a quarter of the test items; item-kNN finds half.
    assert.ok(
      neighbours > 1.6 * popular && neighbours > 0.4,
      `item-kNN recall@20 ${neighbours} vs most-popular ${popular}`,
    );
  });
});

Deno.test("ensureDefaultDataset() generates once, then returns at once", () => {
  withTempDir((dir) => {
    const first = ensureSyntheticDataset(dir, "synthetic");
    assert.equal(first.generated, true);
    const inter = join(first.folder, "synthetic.inter");
    const written = Deno.statSync(inter).mtime?.getTime();

    const started = performance.now();
    const second = ensureSyntheticDataset(dir, "synthetic");
    assert.equal(second.generated, false);
    assert.ok(performance.now() - started < 100);
    assert.equal(Deno.statSync(inter).mtime?.getTime(), written);

    // Our own output of an older generator version is regenerated.
    const meta = join(first.folder, "synthetic.json");
    const older = { ...JSON.parse(Deno.readTextFileSync(meta)), version: 0 };
    Deno.writeTextFileSync(meta, JSON.stringify(older));
    assert.equal(ensureSyntheticDataset(dir, "synthetic").generated, true);
  });
});

Deno.test("deno task synth writes a preset and rejects unknown presets", () => {
  withTempDir((dir) => {
    const log = console.log;
    const error = console.error;
    const printed: string[] = [];
    console.log = (...parts: unknown[]) => printed.push(parts.join(" "));
    console.error = (...parts: unknown[]) => printed.push(parts.join(" "));
    try {
      assert.equal(
        synthCli(["--out", dir, "--seed", "3", "--name", "mine"]),
        0,
      );
      assert.equal(synthCli(["--preset", "movielens"]), 2);
      assert.equal(synthCli(["--seed", "x"]), 2);
    } finally {
      console.log = log;
      console.error = error;
    }
    assert.ok(printed[0].startsWith("Wrote dataset 'mine' (preset synthetic"));
    assert.ok(printed.some((line) => line.includes("mine.inter")));
    assert.ok(
      printed.some((line) =>
        line.includes("unknown preset 'movielens'; expected one of synthetic")
      ),
    );
    const dataset = loadDataset({ data_path: dir, dataset: "mine" });
    assert.equal(dataset.userCount, 600);
  });
});

/** Mean over test users of hits in the top 20 / min(20, relevant). */
function recallAt20(
  dataset: Dataset,
  scoresOf: (user: number) => Float64Array,
): number {
  const relevant = new Map<number, Set<number>>();
  dataset.test.users.forEach((user, row) => {
    if (!relevant.has(user)) relevant.set(user, new Set());
    relevant.get(user)!.add(dataset.test.items[row]);
  });

  let total = 0;
  for (const [user, items] of relevant) {
    const scores = Float64Array.from(scoresOf(user));
    const start = dataset.trainOffsets[user];
    const end = dataset.trainOffsets[user + 1];
    for (let i = start; i < end; i++) {
      scores[dataset.trainItems[i]] = -Infinity;
    }
    const top = Array.from(scores.keys())
      .sort((a, b) => scores[b] - scores[a] || a - b)
      .slice(0, 20);
    const hits = top.filter((item) => items.has(item)).length;
    total += hits / Math.min(20, items.size);
  }
  return total / relevant.size;
}

/** Cosine item-item co-occurrence scores summed over a user's train items. */
function itemKnnScores(dataset: Dataset): (user: number) => Float64Array {
  const { itemCount, trainOffsets, trainItems } = dataset;
  const together = new Float64Array(itemCount * itemCount);
  const degree = new Float64Array(itemCount);
  for (let user = 0; user < dataset.userCount; user++) {
    const own = trainItems.subarray(trainOffsets[user], trainOffsets[user + 1]);
    for (const a of own) {
      degree[a]++;
      for (const b of own) if (a !== b) together[a * itemCount + b]++;
    }
  }
  return (user) => {
    const scores = new Float64Array(itemCount);
    for (let i = trainOffsets[user]; i < trainOffsets[user + 1]; i++) {
      const a = trainItems[i];
      for (let b = 0; b < itemCount; b++) {
        const count = together[a * itemCount + b];
        if (count > 0) scores[b] += count / Math.sqrt(degree[a] * degree[b]);
      }
    }
    return scores;
  };
}

Deno.test("ensureDefaultDataset() never overwrites a folder it did not generate with the default seed", () => {
  withTempDir((dir) => {
    ensureSyntheticDataset(dir, "synthetic", 5);
    const meta = join(dir, "synthetic", "synthetic.json");
    const before = Deno.readTextFileSync(meta);
    assert.throws(
      () => ensureDefaultDataset(dir),
      (error: Error) =>
        error instanceof DataError && error.message.startsWith(meta) &&
        error.message.includes("seed 5"),
    );
    assert.equal(Deno.readTextFileSync(meta), before);

    const foreign = join(dir, "foreign");
    Deno.mkdirSync(join(foreign, "synthetic"), { recursive: true });
    Deno.writeTextFileSync(join(foreign, "synthetic", "notes.txt"), "mine");
    assert.throws(() => ensureDefaultDataset(foreign), DataError);
    assert.deepEqual(
      [...Deno.readDirSync(join(foreign, "synthetic"))].map((e) => e.name),
      ["notes.txt"],
    );
  });
});
