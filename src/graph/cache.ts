/**
 * A disk cache for built graphs, keyed by a SHA-256 content hash of the
 * inputs and of every parameter that shapes the graph (spec 4; STYLE.md:
 * never keyed by some parameters only, never written into the data folder).
 *
 * File layout of `<cacheDir>/graphs/<key>.bin`, little-endian:
 * the 8-byte magic `MSCACSR1`, then `rows`, `cols`, `nonZeros` (uint32),
 * 4 reserved bytes, `rowOffsets` (int32 × rows + 1), `columnIndices`
 * (int32 × nonZeros), `values` (float32 × nonZeros), and the SHA-256 of
 * everything before it. A file that fails any check is rebuilt.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import type { CsrMatrix } from "./csr.ts";

/**
 * Version of the graph builders; bump it whenever a builder's output could
 * change, so that old cache files are never read again.
 */
export const GRAPH_CACHE_VERSION = 1;

const MAGIC = new TextEncoder().encode("MSCACSR1");
const HEADER_BYTES = 24;
const CHECKSUM_BYTES = 32;

/** One input of a cache key: a string, a number or raw array bytes. */
export type CacheKeyPart = string | number | ArrayBufferView;

/**
 * Hashes the parts of a cache key with SHA-256. Each part is framed by its
 * type and length, so `["ab", "c"]` and `["a", "bc"]` differ.
 *
 * @param parts Strings, numbers and typed arrays, in a fixed order.
 * @returns The lowercase hexadecimal digest (64 characters).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const key = graphCacheKey(["structural", 10, new Int32Array([1, 2])]);
 * assert.equal(key.length, 64);
 * ```
 */
export function graphCacheKey(parts: CacheKeyPart[]): string {
  const hash = createHash("sha256");
  const frame = new DataView(new ArrayBuffer(9));
  for (const part of parts) {
    let bytes: Uint8Array;
    let tag: number;
    if (typeof part === "string") {
      bytes = new TextEncoder().encode(part);
      tag = 1;
    } else if (typeof part === "number") {
      bytes = new TextEncoder().encode(String(part));
      tag = 2;
    } else {
      bytes = new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
      tag = 3;
    }
    frame.setUint8(0, tag);
    frame.setFloat64(1, bytes.byteLength, true);
    hash.update(new Uint8Array(frame.buffer));
    hash.update(bytes);
  }
  return hash.digest("hex");
}

/**
 * The path of a cached graph: `<cacheDir>/graphs/<key>.bin`.
 *
 * @param cacheDir The cache root (for example the `checkpoint_dir`).
 * @param key A digest from {@linkcode graphCacheKey}.
 * @returns The file path.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(graphCachePath("saved", "ab12"), "saved/graphs/ab12.bin");
 * ```
 */
export function graphCachePath(cacheDir: string, key: string): string {
  return join(cacheDir, "graphs", `${key}.bin`);
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

/**
 * Serialises a graph in the cache file layout (see the module docs).
 *
 * @param graph The graph.
 * @returns The file bytes, checksum included.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeGraph({
 *   rows: 1, cols: 1, rowOffsets: new Int32Array([0, 1]),
 *   columnIndices: new Int32Array([0]), values: new Float32Array([1]),
 * });
 * assert.equal(decodeGraph(bytes)?.values[0], 1);
 * ```
 */
export function encodeGraph(graph: CsrMatrix): Uint8Array {
  const nonZeros = graph.columnIndices.length;
  const payload = HEADER_BYTES + 4 * (graph.rows + 1) + 8 * nonZeros;
  const bytes = new Uint8Array(payload + CHECKSUM_BYTES);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, 0);
  view.setUint32(8, graph.rows, true);
  view.setUint32(12, graph.cols, true);
  view.setUint32(16, nonZeros, true);
  let offset = HEADER_BYTES;
  for (let r = 0; r <= graph.rows; r++, offset += 4) {
    view.setInt32(offset, graph.rowOffsets[r], true);
  }
  for (let e = 0; e < nonZeros; e++, offset += 4) {
    view.setInt32(offset, graph.columnIndices[e], true);
  }
  for (let e = 0; e < nonZeros; e++, offset += 4) {
    view.setFloat32(offset, graph.values[e], true);
  }
  bytes.set(sha256(bytes.subarray(0, payload)), payload);
  return bytes;
}

/**
 * Parses a cache file; anything malformed (wrong magic, wrong length, bad
 * checksum, offsets or columns out of range) gives `null`.
 *
 * @param bytes The file bytes.
 * @returns The graph, or `null` when the bytes are not a valid graph file.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(decodeGraph(new Uint8Array(3)), null);
 * ```
 */
export function decodeGraph(bytes: Uint8Array): CsrMatrix | null {
  if (bytes.byteLength < HEADER_BYTES + CHECKSUM_BYTES) return null;
  for (let b = 0; b < MAGIC.length; b++) {
    if (bytes[b] !== MAGIC[b]) return null;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rows = view.getUint32(8, true);
  const cols = view.getUint32(12, true);
  const nonZeros = view.getUint32(16, true);
  const payload = HEADER_BYTES + 4 * (rows + 1) + 8 * nonZeros;
  if (bytes.byteLength !== payload + CHECKSUM_BYTES) return null;
  const checksum = sha256(bytes.subarray(0, payload));
  for (let b = 0; b < CHECKSUM_BYTES; b++) {
    if (checksum[b] !== bytes[payload + b]) return null;
  }

  const rowOffsets = new Int32Array(rows + 1);
  const columnIndices = new Int32Array(nonZeros);
  const values = new Float32Array(nonZeros);
  let offset = HEADER_BYTES;
  for (let r = 0; r <= rows; r++, offset += 4) {
    rowOffsets[r] = view.getInt32(offset, true);
  }
  for (let e = 0; e < nonZeros; e++, offset += 4) {
    columnIndices[e] = view.getInt32(offset, true);
  }
  for (let e = 0; e < nonZeros; e++, offset += 4) {
    values[e] = view.getFloat32(offset, true);
  }
  if (rowOffsets[0] !== 0 || rowOffsets[rows] !== nonZeros) return null;
  for (let r = 0; r < rows; r++) {
    if (rowOffsets[r + 1] < rowOffsets[r]) return null;
  }
  for (let e = 0; e < nonZeros; e++) {
    if (columnIndices[e] < 0 || columnIndices[e] >= cols) return null;
  }
  return { rows, cols, rowOffsets, columnIndices, values };
}

/**
 * Reads a cached graph.
 *
 * @param path The cache file.
 * @returns The graph, or `null` when the file is missing or corrupt.
 * @example
 * ```ts ignore
 * const graph = await readCachedGraph("saved/graphs/ab12.bin");
 * ```
 */
export async function readCachedGraph(
  path: string,
): Promise<CsrMatrix | null> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  return decodeGraph(bytes);
}

/**
 * Writes a graph to the cache atomically (a temporary file renamed into
 * place), creating the folder when needed.
 *
 * @param path The cache file.
 * @param graph The graph.
 * @example
 * ```ts ignore
 * await writeCachedGraph("saved/graphs/ab12.bin", graph);
 * ```
 */
export async function writeCachedGraph(
  path: string,
  graph: CsrMatrix,
): Promise<void> {
  const folder = join(path, "..");
  await Deno.mkdir(folder, { recursive: true });
  const temporary = await Deno.makeTempFile({ dir: folder, suffix: ".tmp" });
  try {
    await Deno.writeFile(temporary, encodeGraph(graph));
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/**
 * Returns the cached graph of a key, or builds, stores and returns it.
 * A missing or corrupt file is rebuilt and overwritten.
 *
 * @param cacheDir The cache root, or `null` to build without caching.
 * @param key A digest from {@linkcode graphCacheKey}.
 * @param build Builds the graph on a miss.
 * @returns The graph and whether it came from the cache.
 * @example
 * ```ts ignore
 * const { graph, hit } = await cachedGraph("saved", key, () => build());
 * ```
 */
export async function cachedGraph(
  cacheDir: string | null,
  key: string,
  build: () => CsrMatrix | Promise<CsrMatrix>,
): Promise<{ graph: CsrMatrix; hit: boolean }> {
  if (cacheDir === null) return { graph: await build(), hit: false };
  const path = graphCachePath(cacheDir, key);
  const cached = await readCachedGraph(path);
  if (cached !== null) return { graph: cached, hit: true };
  const graph = await build();
  await writeCachedGraph(path, graph);
  return { graph, hit: false };
}
