import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  createDataset,
  type Dataset,
  datasetStatistics,
  loadDataset,
} from "../src/data/dataset.ts";
import { DataError } from "../src/data/errors.ts";
import { parseInter } from "../src/data/inter.ts";
import { readFloat32Npy, writeNpy } from "../src/data/npy.ts";

const FIXTURE_DATA = fileURLToPath(
  new URL("./fixtures/msca-tiny/data", import.meta.url),
);
const FIXTURE = join(FIXTURE_DATA, "tiny");

/** A copy of the fixture dataset in a fresh temp folder. */
function copyFixture(): { dataPath: string; folder: string } {
  const dataPath = Deno.makeTempDirSync({ prefix: "msca_data_" });
  const folder = join(dataPath, "tiny");
  Deno.mkdirSync(folder);
  for (const file of ["tiny.inter", "image_feat.npy", "text_feat.npy"]) {
    Deno.copyFileSync(join(FIXTURE, file), join(folder, file));
  }
  return { dataPath, folder };
}

/** Writes a mutated copy of the fixture and expects `loadDataset` to fail. */
function assertLoadFails(
  mutate: (folder: string) => string,
  pattern: RegExp,
  extra: Record<string, unknown> = {},
) {
  const { dataPath, folder } = copyFixture();
  try {
    const file = mutate(folder);
    assert.throws(
      () => loadDataset({ data_path: dataPath, dataset: "tiny", ...extra }),
      (error: unknown) => {
        assert.ok(error instanceof DataError, `not a DataError: ${error}`);
        assert.ok(
          error.message.startsWith(`${file}: `),
          `message should start with ${file}: ${error.message}`,
        );
        assert.match(error.message, pattern);
        return true;
      },
    );
  } finally {
    Deno.removeSync(dataPath, { recursive: true });
  }
}

/** Replaces the text of the fixture's `.inter` file; returns its path. */
function rewriteInter(folder: string, edit: (text: string) => string) {
  const path = join(folder, "tiny.inter");
  Deno.writeTextFileSync(path, edit(Deno.readTextFileSync(path)));
  return path;
}

function replaceLine(text: string, line: number, content: string): string {
  const lines = text.split("\n");
  lines[line - 1] = content;
  return lines.join("\n");
}

/** Overwrites one feature file with the given array; returns its path. */
function writeFeatures(
  folder: string,
  file: string,
  shape: number[],
  data: Float32Array,
  dtype?: "<f4" | "<f8" | "<f2",
): string {
  const path = join(folder, file);
  Deno.writeFileSync(path, writeNpy({ shape, data }, { dtype }));
  return path;
}

function fixtureImage(): Float32Array {
  return readFloat32Npy(join(FIXTURE, "image_feat.npy")).data.slice();
}

Deno.test("loadDataset() loads the fixture with its counts and splits", () => {
  const dataset = loadDataset({ data_path: FIXTURE_DATA, dataset: "tiny" });
  assert.equal(dataset.name, "tiny");
  assert.equal(dataset.userCount, 60);
  assert.equal(dataset.itemCount, 150);
  const total = dataset.train.users.length + dataset.valid.users.length +
    dataset.test.users.length;
  assert.equal(total, 393);
  assert.equal(dataset.train.users.length, 273);
  assert.equal(dataset.valid.users.length, 60);
  assert.equal(dataset.test.users.length, 60);
  assert.equal(dataset.features.image?.cols, 12);
  assert.equal(dataset.features.text?.cols, 8);
  assert.equal(dataset.features.image?.rows, 150);
});

Deno.test("loadDataset() builds a sorted train CSR that matches the rows", () => {
  const dataset = loadDataset({ data_path: FIXTURE_DATA, dataset: "tiny" });
  const { trainOffsets, trainItems } = dataset;
  assert.equal(trainOffsets.length, dataset.userCount + 1);
  assert.equal(trainOffsets[dataset.userCount], trainItems.length);

  const expected = new Map<number, Set<number>>();
  dataset.train.users.forEach((user, row) => {
    if (!expected.has(user)) expected.set(user, new Set());
    expected.get(user)!.add(dataset.train.items[row]);
  });
  for (let user = 0; user < dataset.userCount; user++) {
    const own = Array.from(
      trainItems.subarray(trainOffsets[user], trainOffsets[user + 1]),
    );
    const want = [...(expected.get(user) ?? [])].sort((a, b) => a - b);
    assert.deepEqual(own, want, `user ${user}`);
  }
});

Deno.test("loadDataset() follows MMRec's column, file and separator keys", () => {
  const { dataPath, folder } = copyFixture();
  try {
    const text = Deno.readTextFileSync(join(folder, "tiny.inter"))
      .replaceAll("\t", ",")
      .replace("userID,itemID", "uid,iid").replace("x_label", "split");
    Deno.writeTextFileSync(join(folder, "renamed.csv"), text);
    Deno.renameSync(join(folder, "image_feat.npy"), join(folder, "img.npy"));
    const dataset = loadDataset({
      data_path: dataPath,
      dataset: "tiny",
      inter_file_name: "renamed.csv",
      USER_ID_FIELD: "uid",
      ITEM_ID_FIELD: "iid",
      inter_splitting_label: "split",
      field_separator: ",",
      vision_feature_file: "img.npy",
    });
    assert.equal(dataset.userCount, 60);
    assert.equal(dataset.train.users.length, 273);
    assert.equal(dataset.features.image?.cols, 12);
  } finally {
    Deno.removeSync(dataPath, { recursive: true });
  }
});

Deno.test("parseInter() ignores column order, CRLF, blank lines and 12.0-style IDs", () => {
  const text = "rating\tx_label\titemID\tuserID\r\n" +
    "5\t0\t3\t1\r\n\r\n4\t2\t7.0\t0\r\n";
  const rows = parseInter(new TextEncoder().encode(text), "t.inter");
  assert.deepEqual(Array.from(rows.users), [1, 0]);
  assert.deepEqual(Array.from(rows.items), [3, 7]);
  assert.deepEqual(Array.from(rows.labels), [0, 2]);
});

Deno.test("loadDataset() drops cold-start valid/test rows unless told not to", () => {
  const users = new Int32Array([0, 0, 1, 2, 2]);
  const items = new Int32Array([0, 1, 2, 3, 0]);
  const labels = new Uint8Array([0, 2, 1, 0, 1]);
  const filtered = createDataset({ name: "c", users, items, labels });
  assert.equal(filtered.userCount, 3);
  assert.deepEqual(Array.from(filtered.valid.users), [2]);
  assert.deepEqual(Array.from(filtered.test.users), [0]);
  assert.equal(filtered.coldStartRowsDropped, 1);

  const kept = createDataset({
    name: "c",
    users,
    items,
    labels,
    filterColdStartUsers: false,
  });
  assert.deepEqual(Array.from(kept.valid.users), [1, 2]);

  const { dataPath, folder } = copyFixture();
  try {
    rewriteInter(folder, (text) => text + "60\t3\t5\t1\t1\n60\t4\t5\t2\t2\n");
    const dataset = loadDataset({ data_path: dataPath, dataset: "tiny" });
    assert.equal(dataset.userCount, 61);
    assert.equal(dataset.valid.users.length, 60);
    assert.equal(dataset.coldStartRowsDropped, 2);
    const unfiltered = loadDataset({
      data_path: dataPath,
      dataset: "tiny",
      filter_out_cod_start_users: false,
    });
    assert.equal(unfiltered.valid.users.length, 61);
  } finally {
    Deno.removeSync(dataPath, { recursive: true });
  }
});

Deno.test("loadDataset() accepts image only, text only, <f8 and <f2 features", () => {
  const cases: [string, (folder: string) => void, (d: Dataset) => void][] = [
    ["image only", (folder) => Deno.removeSync(join(folder, "text_feat.npy")), (
      dataset,
    ) => {
      assert.equal(dataset.features.text, undefined);
      assert.equal(dataset.features.image?.cols, 12);
    }],
    ["text only", (folder) => Deno.removeSync(join(folder, "image_feat.npy")), (
      dataset,
    ) => {
      assert.equal(dataset.features.image, undefined);
      assert.equal(dataset.features.text?.cols, 8);
    }],
    ["<f8", (folder) => {
      writeFeatures(folder, "image_feat.npy", [150, 12], fixtureImage(), "<f8");
    }, (dataset) => {
      assert.deepEqual(dataset.features.image?.data, fixtureImage());
    }],
    ["<f2", (folder) => {
      writeFeatures(folder, "image_feat.npy", [150, 12], fixtureImage(), "<f2");
    }, (dataset) => {
      const image = dataset.features.image!.data;
      const reference = fixtureImage();
      for (let i = 0; i < image.length; i++) {
        assert.ok(
          Math.abs(image[i] - reference[i]) <= 1e-3 *
              Math.max(1, Math.abs(reference[i])),
        );
      }
    }],
  ];
  for (const [label, mutate, check] of cases) {
    const { dataPath, folder } = copyFixture();
    try {
      mutate(folder);
      const dataset = loadDataset({ data_path: dataPath, dataset: "tiny" });
      assert.equal(dataset.itemCount, 150, label);
      check(dataset);
    } finally {
      Deno.removeSync(dataPath, { recursive: true });
    }
  }
});

Deno.test("loadDataset() names the folder when the dataset or features are missing", () => {
  assertLoadFails(
    (folder) => {
      Deno.removeSync(folder, { recursive: true });
      return folder;
    },
    /dataset folder not found; expected a folder holding tiny\.inter/,
  );
  assertLoadFails((folder) => {
    Deno.removeSync(join(folder, "image_feat.npy"));
    Deno.removeSync(join(folder, "text_feat.npy"));
    return folder;
  }, /no feature file found; expected image_feat\.npy and\/or text_feat\.npy/);
});

Deno.test("loadDataset() rejects a missing or empty .inter file", () => {
  assertLoadFails((folder) => {
    const path = join(folder, "tiny.inter");
    Deno.removeSync(path);
    return path;
  }, /file not found; expected the interactions file/);
  assertLoadFails(
    (folder) => rewriteInter(folder, () => ""),
    /file is empty; expected a header row naming the columns 'userID', 'itemID', 'x_label'/,
  );
  assertLoadFails(
    (folder) => rewriteInter(folder, (text) => text.split("\n")[0] + "\n"),
    /has a header but no interaction rows/,
  );
});

Deno.test("loadDataset() rejects a missing column, naming what the header has", () => {
  assertLoadFails(
    (folder) =>
      rewriteInter(folder, (text) => text.replace("x_label", "split")),
    /missing column 'x_label'; the header \(separator "\\t"\) has 'userID', 'itemID', 'rating', 'timestamp', 'split'/,
  );
});

Deno.test("loadDataset() explains a comma file read with a tab separator", () => {
  assertLoadFails(
    (folder) => rewriteInter(folder, (text) => text.replaceAll("\t", ",")),
    /does not split on the separator "\\t".*looks ","-separated: convert it or set field_separator to ","/,
  );
});

Deno.test("loadDataset() rejects non-integer and negative IDs with the line", () => {
  assertLoadFails(
    (folder) =>
      rewriteInter(folder, (t) => replaceLine(t, 3, "0\tabc\t5\t1\t0")),
    /line 3: itemID is "abc"; expected a non-negative integer/,
  );
  assertLoadFails(
    (folder) =>
      rewriteInter(folder, (t) => replaceLine(t, 4, "0\t1.5\t5\t1\t0")),
    /line 4: itemID is "1\.5"; expected a non-negative integer/,
  );
  assertLoadFails(
    (folder) =>
      rewriteInter(folder, (t) => replaceLine(t, 5, "-3\t1\t5\t1\t0")),
    /line 5: userID is "-3"; IDs cannot be negative/,
  );
  assertLoadFails(
    (folder) => rewriteInter(folder, (t) => replaceLine(t, 5, "\t1\t5\t1\t0")),
    /line 5: userID is ""; the field is empty/,
  );
  assertLoadFails(
    (folder) => rewriteInter(folder, (t) => replaceLine(t, 6, "7\t1")),
    /line 6 has 2 field\(s\); expected at least 5 fields/,
  );
});

Deno.test("loadDataset() rejects an x_label outside 0-2 and data with no train rows", () => {
  assertLoadFails(
    (folder) =>
      rewriteInter(folder, (t) => replaceLine(t, 2, "0\t148\t5\t1\t3")),
    /line 2: x_label is 3; expected 0 \(train\), 1 \(valid\) or 2 \(test\)/,
  );
  assertLoadFails(
    (folder) =>
      rewriteInter(folder, (t) => replaceLine(t, 2, "0\t148\t5\t1\t-1")),
    /line 2: x_label is "-1"; expected 0 \(train\), 1 \(valid\) or 2 \(test\)/,
  );
  assertLoadFails(
    (folder) =>
      rewriteInter(folder, (text) => text.replace(/\t0(\r?\n)/g, "\t1$1")),
    /no train rows \(label 0\) among 393 rows/,
  );
});

Deno.test("loadDataset() rejects truncated and non-.npy feature files", () => {
  assertLoadFails((folder) => {
    const path = join(folder, "image_feat.npy");
    const bytes = Deno.readFileSync(path);
    Deno.writeFileSync(path, bytes.subarray(0, bytes.length - 100));
    return path;
  }, /truncated \.npy file/);
  assertLoadFails((folder) => {
    const path = join(folder, "text_feat.npy");
    Deno.writeTextFileSync(path, "0.1,0.2,0.3\n");
    return path;
  }, /not a \.npy file/);
});

Deno.test("loadDataset() rejects integer, 1-D, 3-D and wrongly sized feature arrays", () => {
  assertLoadFails((folder) => {
    const path = join(folder, "image_feat.npy");
    Deno.writeFileSync(
      path,
      writeNpy({ shape: [150, 2], data: new Int32Array(300).fill(1) }),
    );
    return path;
  }, /dtype <i4; expected a float array/);
  assertLoadFails(
    (folder) => writeFeatures(folder, "image_feat.npy", [1800], fixtureImage()),
    /feature array has shape \(1800\); expected a 2-D array/,
  );
  assertLoadFails(
    (folder) =>
      writeFeatures(
        folder,
        "text_feat.npy",
        [150, 2, 4],
        new Float32Array(1200),
      ),
    /shape \(150, 2, 4\); expected a 2-D array/,
  );
  assertLoadFails(
    (folder) =>
      writeFeatures(
        folder,
        "image_feat.npy",
        [149, 12],
        fixtureImage().subarray(0, 149 * 12),
      ),
    /has 149 rows; expected one row per item: 150 \(max itemID \+ 1 in .*tiny\.inter\)/,
  );
});

Deno.test("loadDataset() names the row holding NaN or Inf features", () => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    assertLoadFails((folder) => {
      const image = fixtureImage();
      image[42 * 12 + 5] = bad;
      return writeFeatures(folder, "image_feat.npy", [150, 12], image);
    }, new RegExp(`row 42 \\(item 42\\) holds ${bad} at column 5`));
  }
});

Deno.test("loadDataset() names an all-zero feature row", () => {
  assertLoadFails((folder) => {
    const image = fixtureImage();
    image.fill(0, 17 * 12, 18 * 12);
    return writeFeatures(folder, "image_feat.npy", [150, 12], image);
  }, /row 17 \(item 17\) is all zeros; expected a non-zero feature vector/);
});

Deno.test("datasetStatistics() gives MMRec's lines for the dataset and each split", () => {
  const dataset = loadDataset({ data_path: FIXTURE_DATA, dataset: "tiny" });
  const lines = datasetStatistics(dataset);
  assert.equal(lines[0], "tiny");
  assert.ok(lines.includes("The number of users: 60"));
  assert.ok(lines.includes("The number of inters: 393"));
  assert.ok(lines.includes("Average actions of users: 6.55"));
  const training = lines.indexOf("====Training====");
  assert.ok(training > 0);
  assert.equal(lines[training + 6], "The number of inters: 273");
  const testing = lines.indexOf("====Testing====");
  assert.equal(lines[testing + 2], "The number of users: 60");
  assert.equal(lines[testing + 3], "Average actions of users: 1.0");
  assert.ok(lines.some((line) => line.startsWith("The sparsity")));
});
