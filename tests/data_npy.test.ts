import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { DataError } from "../src/data/errors.ts";
import {
  encodeNpyHeader,
  readFloat32Npy,
  readInt32Npy,
  readNpy,
  writeNpy,
} from "../src/data/npy.ts";

const FIXTURE = fileURLToPath(
  new URL("./fixtures/msca-tiny/", import.meta.url),
);

/** A `.npy` file with a hand-written header dict (format 1.0). */
function rawNpy(dict: string, body: Uint8Array = new Uint8Array(0)) {
  const padded = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const text = dict.padEnd(padded - 11, " ") + "\n";
  const bytes = new Uint8Array(padded + body.length);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(bytes.buffer).setUint16(8, text.length, true);
  bytes.set(new TextEncoder().encode(text), 10);
  bytes.set(body, padded);
  return bytes;
}

function assertDataError(run: () => unknown, file: string, pattern: RegExp) {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof DataError, `expected DataError, got ${error}`);
    assert.ok(
      error.message.startsWith(`${file}: `),
      `message should name ${file}: ${error.message}`,
    );
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("readNpy() reads the fixture's <f4 features and <i8 indices", () => {
  const image = readFloat32Npy(`${FIXTURE}data/tiny/image_feat.npy`);
  assert.deepEqual(image.shape, [150, 12]);
  assert.equal(image.dtype, "<f4");
  assert.equal(image.data.length, 1800);

  const batch = readInt32Npy(`${FIXTURE}expected/step0.batch.npy`);
  assert.deepEqual(batch.shape, [3, 16]);
  assert.equal(batch.dtype, "<i8");
  assert.ok(batch.data.every((value) => value >= 0 && value < 150));
});

Deno.test("readNpy() returns an aligned <f4 body as a view without copying", () => {
  const bytes = writeNpy({ shape: [2, 3], data: new Float32Array(6).fill(1) });
  const array = readNpy(bytes);
  assert.equal(array.data.buffer, bytes.buffer);
});

Deno.test("writeNpy() and readNpy() round-trip every dtype and format version", () => {
  const values = [0.5, -2.25, 1024, 3.140625, -0, 65504];
  for (const version of [1, 2, 3] as const) {
    for (const dtype of ["<f4", "<f8", "<f2"] as const) {
      const bytes = writeNpy(
        { shape: [2, 3], data: new Float32Array(values) },
        { dtype, version },
      );
      assert.equal(bytes[6], version);
      assert.equal(bytes.length % 64, (2 * 3 * Number(dtype[2])) % 64);
      const array = readNpy(bytes);
      assert.equal(array.dtype, dtype);
      assert.deepEqual(array.shape, [2, 3]);
      assert.deepEqual(Array.from(array.data), values);
    }
    for (const dtype of ["<i4", "<i8"] as const) {
      const data = new Int32Array([0, -1, 2147483647, -2147483648, 7]);
      const array = readNpy(writeNpy({ shape: [5], data }, { dtype, version }));
      assert.equal(array.dtype, dtype);
      assert.deepEqual(array.shape, [5]);
      assert.deepEqual(array.data, data);
    }
  }
});

Deno.test("writeNpy() rounds float16 to nearest even and saturates to Infinity", () => {
  // 1 + 2^-11 is halfway between 1 and the next float16: ties go to even.
  const data = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000, 1e-9]);
  const array = readNpy(writeNpy({ shape: [4], data }, { dtype: "<f2" }));
  assert.deepEqual(Array.from(array.data), [1, 1 + 2 ** -9, Infinity, 0]);
});

Deno.test("readNpy() accepts scalars and empty arrays; headers pad to 64 bytes", () => {
  const scalar = readNpy(writeNpy({ shape: [], data: new Float64Array([4]) }));
  assert.deepEqual(scalar.shape, []);
  assert.equal(scalar.data[0], 4);

  const empty = readNpy(writeNpy({ shape: [0, 5], data: new Float32Array() }));
  assert.deepEqual(empty.shape, [0, 5]);

  const header = encodeNpyHeader([1, 2], "<f4", 2);
  assert.equal(header[6], 2);
  assert.equal(header.length % 64, 0);
});

Deno.test("readNpy() rejects a missing file with DataError naming it", () => {
  const path = `${Deno.makeTempDirSync()}/absent.npy`;
  assertDataError(() => readNpy(path), path, /file not found/);
});

Deno.test("readNpy() rejects bytes that are not a .npy file", () => {
  const bytes = new TextEncoder().encode("userID\titemID\n0\t1\n");
  assertDataError(
    () => readNpy(bytes, { name: "feat.npy" }),
    "feat.npy",
    /not a \.npy file: expected it to start with/,
  );
  assertDataError(
    () => readNpy(new Uint8Array(), { name: "empty.npy" }),
    "empty.npy",
    /not a \.npy file.*empty file/,
  );
});

Deno.test("readNpy() rejects truncated data and truncated headers", () => {
  const bytes = writeNpy({ shape: [4, 4], data: new Float32Array(16) });
  assertDataError(
    () => readNpy(bytes.subarray(0, bytes.length - 3), { name: "cut.npy" }),
    "cut.npy",
    /truncated \.npy file: the header says shape \(4, 4\) of <f4 \(64 data bytes\), but only 61/,
  );
  assertDataError(
    () => readNpy(bytes.subarray(0, 40), { name: "head.npy" }),
    "head.npy",
    /truncated \.npy header/,
  );
});

Deno.test("readNpy() rejects object, big-endian, structured and other dtypes", () => {
  const cases: [string, RegExp][] = [
    ["|O", /object dtype '\|O'/],
    [">f4", /big-endian dtype '>f4'.*expected little-endian/],
    ["<u2", /unsupported dtype '<u2'; expected one of <f2, <f4, <f8, <i4, <i8/],
    ["<c8", /unsupported dtype '<c8'/],
  ];
  for (const [descr, pattern] of cases) {
    const bytes = rawNpy(
      `{'descr': '${descr}', 'fortran_order': False, 'shape': (2,), }`,
      new Uint8Array(16),
    );
    assertDataError(() => readNpy(bytes, { name: "d.npy" }), "d.npy", pattern);
  }
  const structured = rawNpy(
    "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
    new Uint8Array(4),
  );
  assertDataError(
    () => readNpy(structured, { name: "s.npy" }),
    "s.npy",
    /structured \(record\) dtype/,
  );
});

Deno.test("readNpy() rejects a Fortran-order matrix but not a Fortran vector", () => {
  const matrix = rawNpy(
    "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
    new Uint8Array(16),
  );
  assertDataError(
    () => readNpy(matrix, { name: "f.npy" }),
    "f.npy",
    /Fortran-order.*expected C order/,
  );
  const vector = rawNpy(
    "{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }",
    new Uint8Array(16),
  );
  assert.deepEqual(readNpy(vector).shape, [4]);
});

Deno.test("readNpy() rejects an <i8 value beyond int32 and a wrong kind", () => {
  const body = new Uint8Array(8);
  new DataView(body.buffer).setBigInt64(0, 2n ** 40n, true);
  const big = rawNpy(
    "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
    body,
  );
  assertDataError(
    () => readNpy(big, { name: "i.npy" }),
    "i.npy",
    /outside the int32 range/,
  );

  const floats = writeNpy({ shape: [1], data: new Float32Array(1) });
  assertDataError(
    () => readInt32Npy(floats, { name: "x.npy" }),
    "x.npy",
    /expected an integer array/,
  );
  const ints = writeNpy({ shape: [1], data: new Int32Array(1) });
  assertDataError(
    () => readFloat32Npy(ints, { name: "y.npy" }),
    "y.npy",
    /expected a float array/,
  );
});

Deno.test("writeNpy() refuses a shape that does not match the data", () => {
  assert.throws(
    () => writeNpy({ shape: [2, 2], data: new Float32Array(3) }),
    RangeError,
  );
  assert.throws(
    () => writeNpy({ shape: [1], data: new Int32Array(1) }, { dtype: "<f4" }),
    RangeError,
  );
});
