/**
 * Test helpers of the graph and evaluation tests: a minimal `.npy` reader
 * and `.inter` loader for the golden fixtures, kept private to the tests so
 * they do not depend on the data loader they are not testing.
 *
 * @module
 */

import type { Dataset, FeatureTable } from "../src/data/dataset.ts";
import type { CsrMatrix } from "../src/graph/csr.ts";

/** A parsed `.npy` array (little-endian `<f8`, `<f4`, `<i8` or `<i4`). */
export interface NpyArray {
  /** Array shape. */
  shape: number[];
  /** Values as float64 (int64 converted). */
  data: Float64Array;
}

/**
 * Reads a small little-endian `.npy` file.
 *
 * @param path The file.
 * @returns Shape and values.
 */
export function readFixtureNpy(path: string): NpyArray {
  const bytes = Deno.readFileSync(path);
  const view = new DataView(bytes.buffer);
  const major = bytes[6];
  const headerLength = major === 1
    ? view.getUint16(8, true)
    : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(
    bytes.subarray(headerStart, headerStart + headerLength),
  );
  const descr = /'descr':\s*'([^']+)'/.exec(header)![1];
  if (/'fortran_order':\s*True/.test(header)) {
    throw new Error(`${path}: Fortran order not supported in tests`);
  }
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)![1];
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) =>
    s !== ""
  ).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const start = headerStart + headerLength;
  const data = new Float64Array(count);
  for (let n = 0; n < count; n++) {
    if (descr === "<f8") data[n] = view.getFloat64(start + 8 * n, true);
    else if (descr === "<f4") data[n] = view.getFloat32(start + 4 * n, true);
    else if (descr === "<i8") {
      data[n] = Number(view.getBigInt64(start + 8 * n, true));
    } else if (descr === "<i4") data[n] = view.getInt32(start + 4 * n, true);
    else throw new Error(`${path}: dtype ${descr} not supported in tests`);
  }
  return { shape, data };
}

function features(path: string): FeatureTable {
  const array = readFixtureNpy(path);
  return {
    rows: array.shape[0],
    cols: array.shape[1],
    data: Float32Array.from(array.data),
  };
}

/**
 * Loads a fixture dataset folder (`<name>.inter`, `image_feat.npy`,
 * `text_feat.npy`) into a {@linkcode Dataset}, with the cold-start filter.
 *
 * @param folder The dataset folder, e.g. `tests/fixtures/msca-tiny/data/tiny`.
 * @returns The dataset.
 */
export function loadFixtureDataset(folder: string): Dataset {
  const name = folder.split("/").filter((s) => s !== "").at(-1)!;
  const lines = Deno.readTextFileSync(`${folder}/${name}.inter`).trim()
    .split("\n");
  const header = lines[0].split("\t");
  const userColumn = header.indexOf("userID");
  const itemColumn = header.indexOf("itemID");
  const labelColumn = header.indexOf("x_label");
  const splits: [number, number][][] = [[], [], []];
  let userCount = 0, itemCount = 0;
  for (const line of lines.slice(1)) {
    const fields = line.split("\t");
    const user = Number(fields[userColumn]);
    const item = Number(fields[itemColumn]);
    splits[Number(fields[labelColumn])].push([user, item]);
    userCount = Math.max(userCount, user + 1);
    itemCount = Math.max(itemCount, item + 1);
  }
  const trainUsers = new Set(splits[0].map(([u]) => u));
  const interactions = (rows: [number, number][]) => ({
    users: Int32Array.from(rows.map(([u]) => u)),
    items: Int32Array.from(rows.map(([, i]) => i)),
  });
  const lists: number[][] = Array.from({ length: userCount }, () => []);
  for (const [u, i] of splits[0]) lists[u].push(i);
  const trainOffsets = new Int32Array(userCount + 1);
  const trainItems: number[] = [];
  for (let u = 0; u < userCount; u++) {
    trainItems.push(...lists[u].sort((a, b) => a - b));
    trainOffsets[u + 1] = trainItems.length;
  }
  return {
    name,
    userCount,
    itemCount,
    train: interactions(splits[0]),
    valid: interactions(splits[1].filter(([u]) => trainUsers.has(u))),
    test: interactions(splits[2].filter(([u]) => trainUsers.has(u))),
    features: {
      image: features(`${folder}/image_feat.npy`),
      text: features(`${folder}/text_feat.npy`),
    },
    trainOffsets,
    trainItems: Int32Array.from(trainItems),
  };
}

/**
 * Compares a CSR graph with a reference coordinate list: the same edges,
 * values within `relative` of each reference value.
 *
 * @param graph Our graph.
 * @param prefix Path prefix of `<prefix>.{rows,cols,vals}.npy`.
 * @param relative Relative tolerance.
 * @returns A list of problems, empty when the graphs agree.
 */
export function compareWithReference(
  graph: CsrMatrix,
  prefix: string,
  relative = 1e-6,
): string[] {
  const rows = readFixtureNpy(`${prefix}.rows.npy`).data;
  const cols = readFixtureNpy(`${prefix}.cols.npy`).data;
  const vals = readFixtureNpy(`${prefix}.vals.npy`).data;
  const expected = new Map<string, number>();
  for (let e = 0; e < rows.length; e++) {
    expected.set(`${rows[e]},${cols[e]}`, vals[e]);
  }
  const problems: string[] = [];
  const seen = new Set<string>();
  for (let r = 0; r < graph.rows; r++) {
    for (let e = graph.rowOffsets[r]; e < graph.rowOffsets[r + 1]; e++) {
      if (
        e > graph.rowOffsets[r] &&
        graph.columnIndices[e] <= graph.columnIndices[e - 1]
      ) {
        problems.push(`row ${r}: columns not strictly ascending`);
      }
      const key = `${r},${graph.columnIndices[e]}`;
      seen.add(key);
      const reference = expected.get(key);
      if (reference === undefined) {
        problems.push(`extra edge (${key}) = ${graph.values[e]}`);
      } else if (
        Math.abs(graph.values[e] - reference) > relative * Math.abs(reference)
      ) {
        problems.push(
          `edge (${key}): ${graph.values[e]}, expected ${reference}`,
        );
      }
    }
  }
  for (const key of expected.keys()) {
    if (!seen.has(key)) problems.push(`missing edge (${key})`);
  }
  return problems;
}
