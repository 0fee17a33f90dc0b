import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assignTensors,
  checkDatasetFingerprint,
  CheckpointError,
  datasetFingerprint,
  decodeSafetensors,
  encodeSafetensors,
  loadCheckpoint,
  PACKAGE_VERSION,
  saveCheckpoint,
  type TensorMap,
  tensorsOf,
  writeSafetensors,
} from "../src/checkpoint.ts";
import { Random } from "../src/random.ts";

const encoder = new TextEncoder();

function tensorMap(
  entries: [string, number[], number[]][],
): TensorMap {
  return new Map(
    entries.map(([name, shape, values]) => [
      name,
      { shape, data: new Float32Array(values) },
    ]),
  );
}

/** A safetensors file assembled byte by byte from the format's description. */
function handBuiltFile(headerJson: string, data: Uint8Array): Uint8Array {
  const header = encoder.encode(headerJson);
  const bytes = new Uint8Array(8 + header.length + data.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
  bytes.set(header, 8);
  bytes.set(data, 8 + header.length);
  return bytes;
}

function float32Bytes(values: number[]): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((value, i) => view.setFloat32(i * 4, value, true));
  return bytes;
}

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

async function rejectsWith(
  promise: Promise<unknown>,
  ...fragments: string[]
): Promise<CheckpointError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(
      error instanceof CheckpointError,
      `expected a CheckpointError, got ${error}`,
    );
    for (const fragment of fragments) {
      assert.ok(
        error.message.includes(fragment),
        `message ${JSON.stringify(error.message)} lacks ${
          JSON.stringify(fragment)
        }`,
      );
    }
    return error;
  }
  throw new assert.AssertionError({ message: "expected a rejection" });
}

Deno.test("encodeSafetensors() writes the exact byte layout of a tiny file", () => {
  const bytes = encodeSafetensors(
    tensorMap([["b", [], [-2]], ["a", [1, 2], [1, 0.5]]]),
    { note: "hi" },
  );

  const json = '{"__metadata__":{"note":"hi"},' +
    '"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"F32","shape":[],"data_offsets":[8,12]}}';
  const padded = Math.ceil(json.length / 8) * 8;
  assert.equal(padded % 8, 0);
  const expected = new Uint8Array(8 + padded + 12);
  new DataView(expected.buffer).setBigUint64(0, BigInt(padded), true);
  expected.set(encoder.encode(json.padEnd(padded, " ")), 8);
  expected.set(float32Bytes([1, 0.5, -2]), 8 + padded);

  assert.deepEqual(bytes, expected);
  assert.equal((8 + padded) % 8, 0, "data section starts 8-byte aligned");
  assert.notEqual(json.length % 8, 0, "the example exercises the padding");
});

Deno.test("decodeSafetensors() reads a file built by hand from the spec", () => {
  // Unpadded header, keys out of order, data in an order other than names.
  const header = '{"z.weight":{"dtype":"F32","shape":[2,1],' +
    '"data_offsets":[0,8]},"__metadata__":{"format":"pt"},' +
    '"a.bias":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}}';
  const bytes = handBuiltFile(header, float32Bytes([7, 8, 1, 2, 3]));

  const { tensors, metadata } = decodeSafetensors(bytes, "hand.safetensors");

  assert.deepEqual(metadata, { format: "pt" });
  assert.deepEqual([...tensors.keys()], ["a.bias", "z.weight"]);
  assert.deepEqual(tensors.get("z.weight")!.shape, [2, 1]);
  assert.deepEqual([...tensors.get("z.weight")!.data], [7, 8]);
  assert.deepEqual([...tensors.get("a.bias")!.data], [1, 2, 3]);
});

Deno.test("decodeSafetensors() accepts empty tensors and scalars", () => {
  const bytes = encodeSafetensors(
    tensorMap([["empty", [0, 3], []], ["scalar", [], [4]]]),
  );
  const { tensors } = decodeSafetensors(bytes);
  assert.deepEqual(tensors.get("empty")!.shape, [0, 3]);
  assert.equal(tensors.get("empty")!.data.length, 0);
  assert.deepEqual([...tensors.get("scalar")!.data], [4]);
});

Deno.test("decodeSafetensors() rejects holes, overlaps and other dtypes", () => {
  const hole = handBuiltFile(
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
    float32Bytes([0, 1]),
  );
  assert.throws(
    () => decodeSafetensors(hole, "hole.safetensors"),
    (error: Error) =>
      error instanceof CheckpointError &&
      error.message.startsWith("hole.safetensors: ") &&
      error.message.includes("without holes"),
  );

  const half = handBuiltFile(
    '{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}',
    new Uint8Array(4),
  );
  assert.throws(
    () => decodeSafetensors(half, "half.safetensors"),
    /half\.safetensors: tensor "a" has dtype "F16"; msca-deno reads F32/,
  );

  const wrongSize = handBuiltFile(
    '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}',
    float32Bytes([0, 1]),
  );
  assert.throws(
    () => decodeSafetensors(wrongSize, "size.safetensors"),
    /size\.safetensors: .*needs 12 bytes but its data_offsets span 8/,
  );

  const extra = handBuiltFile(
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    float32Bytes([0, 1]),
  );
  assert.throws(
    () => decodeSafetensors(extra, "extra.safetensors"),
    /extra\.safetensors: .*4 bytes after the last tensor/,
  );
});

Deno.test("saveCheckpoint() and loadCheckpoint() round-trip weights and metadata", async () => {
  await withTempDir(async (folder) => {
    const random = new Random(7);
    const values = (n: number) =>
      Array.from({ length: n }, () => random.nextNormal());
    const tensors = tensorMap([
      ["user_embedding.weight", [5, 3], values(15)],
      ["query_common.2.weight", [1, 3], values(3)],
      ["image_trs.bias", [3], values(3)],
    ]);
    const path = join(folder, "best.safetensors");
    const config = { embedding_size: 3, metrics: ["Recall"], tau: 0.2 };
    // Left by an earlier save killed mid-write; the next save clears it.
    await Deno.writeTextFile(
      join(folder, ".best.safetensors.1234.abcd.tmp"),
      "partial",
    );
    const metrics = { valid: { "recall@20": 0.25 }, test: { "ndcg@20": 0.1 } };

    await saveCheckpoint(path, {
      tensors,
      metadata: {
        model: "MSCA",
        config,
        datasetFingerprint: "inter-sha256=ab;image=5x4",
        epoch: 3,
        metrics,
      },
    });
    const checkpoint = await loadCheckpoint(path);

    assert.equal(checkpoint.path, path);
    assert.deepEqual(checkpoint.metadata, {
      model: "MSCA",
      config,
      datasetFingerprint: "inter-sha256=ab;image=5x4",
      epoch: 3,
      metrics,
      version: PACKAGE_VERSION,
    });
    assert.deepEqual([...checkpoint.tensors.keys()], [
      "image_trs.bias",
      "query_common.2.weight",
      "user_embedding.weight",
    ]);
    for (const [name, tensor] of tensors) {
      assert.deepEqual(checkpoint.tensors.get(name)!.shape, tensor.shape);
      assert.deepEqual(checkpoint.tensors.get(name)!.data, tensor.data);
    }
    assert.deepEqual(await listFolder(folder), ["best.safetensors"]);
  });
});

Deno.test("loadCheckpoint() names the file when it is truncated", async () => {
  await withTempDir(async (folder) => {
    const path = join(folder, "cut.safetensors");
    await saveCheckpoint(path, {
      tensors: tensorMap([["w", [4, 4], new Array(16).fill(1)]]),
      metadata: {
        model: "MSCA",
        config: {},
        datasetFingerprint: "x",
        epoch: 0,
        metrics: {},
      },
    });
    const bytes = await Deno.readFile(path);

    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 10));
    await rejectsWith(loadCheckpoint(path), path, "truncated", "promises 64");

    await Deno.writeFile(path, bytes.subarray(0, 40));
    await rejectsWith(loadCheckpoint(path), path, "truncated");

    await Deno.writeFile(path, bytes.subarray(0, 5));
    await rejectsWith(loadCheckpoint(path), path, "5 bytes");

    await Deno.writeFile(path, new Uint8Array(0));
    await rejectsWith(loadCheckpoint(path), path, "0 bytes");
  });
});

Deno.test("loadCheckpoint() names the file when it is corrupt or foreign", async () => {
  await withTempDir(async (folder) => {
    const corrupt = join(folder, "corrupt.safetensors");
    const good = encodeSafetensors(tensorMap([["w", [1], [1]]]));
    good[8 + 5] = "}".charCodeAt(0);
    await Deno.writeFile(corrupt, good);
    await rejectsWith(loadCheckpoint(corrupt), corrupt, "invalid JSON");

    const npy = join(folder, "image_feat.npy");
    const npyHeader = "{'descr': '<f4', 'fortran_order': False, " +
      "'shape': (2, 2), }".padEnd(117) + "\n";
    await Deno.writeFile(
      npy,
      new Uint8Array([
        0x93,
        ...encoder.encode("NUMPY"),
        1,
        0,
        npyHeader.length,
        0,
        ...encoder.encode(npyHeader),
        ...float32Bytes([1, 2, 3, 4]),
      ]),
    );
    await rejectsWith(loadCheckpoint(npy), npy, "NumPy .npy");

    const text = join(folder, "baby.inter");
    await Deno.writeFile(
      text,
      encoder.encode("userID\titemID\tx_label\n0\t1\t0\n"),
    );
    await rejectsWith(loadCheckpoint(text), text, "text file");

    const json = join(folder, "summary.json");
    await Deno.writeFile(json, encoder.encode('{"best_epoch": 3}\n'));
    await rejectsWith(loadCheckpoint(json), json, "not a safetensors file");

    const plain = join(folder, "plain.safetensors");
    await writeSafetensors(plain, tensorMap([["w", [1], [1]]]));
    await rejectsWith(
      loadCheckpoint(plain),
      plain,
      "not an msca-deno checkpoint",
      "model, config",
    );

    const missing = join(folder, "nothing.safetensors");
    await rejectsWith(loadCheckpoint(missing), missing, "no such file");
    await rejectsWith(loadCheckpoint(folder), folder);
  });
});

Deno.test("checkDatasetFingerprint() rejects a checkpoint made on other data", async () => {
  const inter = encoder.encode("userID\titemID\tx_label\n0\t0\t0\n");
  const other = encoder.encode("userID\titemID\tx_label\n0\t1\t0\n");
  const shapes = { image: [2, 8], text: [2, 4] } as const;
  const fingerprint = await datasetFingerprint(inter, shapes);
  assert.match(fingerprint, /^inter-sha256=[0-9a-f]{64};image=2x8;text=2x4$/);
  assert.equal(await datasetFingerprint(inter, shapes), fingerprint);

  const checkpoint = {
    path: "saved/run/best.safetensors",
    tensors: new Map(),
    metadata: {
      model: "MSCA",
      config: {},
      datasetFingerprint: fingerprint,
      epoch: 0,
      metrics: {},
      version: "0.1.0",
    },
  };
  checkDatasetFingerprint(checkpoint, fingerprint, "tiny");

  const otherFingerprint = await datasetFingerprint(other, shapes);
  assert.throws(
    () => checkDatasetFingerprint(checkpoint, otherFingerprint, "tiny"),
    /saved\/run\/best\.safetensors: made on another dataset than "tiny": the interaction file differs/,
  );
  const textOnly = await datasetFingerprint(inter, { text: [2, 4] });
  assert.throws(
    () => checkDatasetFingerprint(checkpoint, textOnly, "tiny"),
    /image features 2x8 in the checkpoint, absent now/,
  );
});

/** A stand-in for the engine's Parameter: name, shape, read and assign. */
class FakeParameter {
  values: Float32Array;
  constructor(readonly name: string, readonly shape: number[]) {
    this.values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  }
  toArray(): Promise<Float32Array> {
    return Promise.resolve(this.values.slice());
  }
  assign(values: Float32Array): void {
    this.values.set(values);
  }
}

Deno.test("tensorsOf() and assignTensors() move a model's state_dict both ways", async () => {
  const source = [
    new FakeParameter("user_embedding.weight", [3, 2]),
    new FakeParameter("gate_v.0.bias", [2]),
  ];
  source[0].values.set([1, 2, 3, 4, 5, 6]);
  source[1].values.set([-1, 1]);
  const tensors = await tensorsOf(source);
  assert.deepEqual(tensors.get("gate_v.0.bias")!.shape, [2]);

  const target = [
    new FakeParameter("gate_v.0.bias", [2]),
    new FakeParameter("user_embedding.weight", [3, 2]),
  ];
  assignTensors(target, tensors, "best.safetensors");
  assert.deepEqual([...target[0].values], [-1, 1]);
  assert.deepEqual([...target[1].values], [1, 2, 3, 4, 5, 6]);
});

Deno.test("assignTensors() refuses tensors that do not fit the model", () => {
  const tensors = tensorMap([
    ["user_embedding.weight", [3, 2], [1, 2, 3, 4, 5, 6]],
    ["extra.weight", [1], [0]],
  ]);
  assert.throws(
    () =>
      assignTensors(
        [
          new FakeParameter("user_embedding.weight", [3, 2]),
          new FakeParameter("text_trs.bias", [2]),
        ],
        tensors,
        "run/best.safetensors",
      ),
    /^CheckpointError: run\/best\.safetensors: its tensors do not fit the model: missing text_trs\.bias; unexpected extra\.weight;/,
  );
  const bigger = new FakeParameter("user_embedding.weight", [2, 3]);
  assert.throws(
    () =>
      assignTensors(
        [bigger],
        new Map([[
          "user_embedding.weight",
          tensors.get("user_embedding.weight")!,
        ]]),
        "run/best.safetensors",
      ),
    /tensor "user_embedding\.weight" has shape \[3,2\] but the model expects \[2,3\]/,
  );
  assert.deepEqual([...bigger.values], [0, 0, 0, 0, 0, 0], "left untouched");
});
