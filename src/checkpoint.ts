/**
 * Checkpoints and training state on disk.
 *
 * Model weights are stored as safetensors files
 * (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length `N`, `N` bytes of JSON (padded with spaces to a multiple of 8), then
 * the raw little-endian tensor bytes. Tensor names are the reference's
 * PyTorch `state_dict` names (spec section 3), so a PyTorch user can run
 * `load_state_dict(safetensors.torch.load_file(path))` on our checkpoints.
 *
 * Every file is written through {@linkcode writeFileAtomic}: a temporary file
 * in the same folder, flushed, then renamed over the target, so an
 * interrupted write never leaves a half-written checkpoint behind.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import type { Dataset, Modality } from "./data/dataset.ts";
import type { RandomState } from "./random.ts";
import denoConfig from "../deno.json" with { type: "json" };

/** The package version written into every checkpoint's metadata. */
export const PACKAGE_VERSION: string = denoConfig.version;

/** File name of the best-valid checkpoint inside a run folder. */
export const BEST_CHECKPOINT_FILE = "best.safetensors";

/** File name of the training state's JSON half inside a run folder. */
export const TRAINING_STATE_FILE = "state.json";

/** Largest header the reader accepts, as the reference library does. */
const MAX_HEADER_BYTES = 100_000_000;

/** Header alignment: the data section starts on an 8-byte boundary. */
const HEADER_ALIGNMENT = 8;

/** Bytes per float32 value. */
const F32_BYTES = 4;

/** Tag of our training-state JSON, to tell it from other JSON files. */
const TRAINING_STATE_FORMAT = "msca-deno training state";

/** Version of the training-state layout; bump when it changes. */
const TRAINING_STATE_VERSION = 1;

/**
 * A checkpoint, training-state or safetensors file that cannot be used:
 * missing, truncated, corrupt, foreign, or made on another dataset. The
 * message always names the file and says what is wrong.
 */
export class CheckpointError extends Error {
  /** The file the error is about. */
  readonly path: string;

  /**
   * Creates the error; the message becomes `<path>: <problem>`.
   *
   * @param path The file the error is about.
   * @param problem What is wrong with it (and what was expected).
   */
  constructor(path: string, problem: string) {
    super(`${path}: ${problem}`);
    this.name = "CheckpointError";
    this.path = path;
  }
}

/** One named float32 array with its shape (row-major, like PyTorch). */
export interface NamedTensor {
  /** Dimensions; `[]` for a scalar. */
  shape: number[];
  /** `product(shape)` values, row-major. */
  data: Float32Array;
}

/** Tensors by name, e.g. `"user_embedding.weight"`. */
export type TensorMap = Map<string, NamedTensor>;

/** The contents of a safetensors file. */
export interface SafetensorsContent {
  /** The tensors, in the file's name order. */
  tensors: TensorMap;
  /** The `__metadata__` string map (empty when the file has none). */
  metadata: Record<string, string>;
}

/** What a checkpoint records besides the weights. */
export interface CheckpointMetadata {
  /** Model name as in the config, e.g. `"MSCA"`. */
  model: string;
  /** The full configuration the model was trained with. */
  config: Record<string, unknown>;
  /** {@linkcode datasetFingerprint} of the training data. */
  datasetFingerprint: string;
  /** Epoch (0-based, as MMRec logs it) the weights come from. */
  epoch: number;
  /** Metrics at that epoch, e.g. `{valid: {"recall@20": …}, test: {…}}`. */
  metrics: Record<string, unknown>;
  /** Version of msca-deno that wrote it; defaults to this package's. */
  version?: string;
}

/** A checkpoint read back by {@linkcode loadCheckpoint}. */
export interface Checkpoint {
  /** The file it was read from. */
  path: string;
  /** The weights by `state_dict` name. */
  tensors: TensorMap;
  /** The decoded metadata (`version` always set). */
  metadata: Required<CheckpointMetadata>;
}

/** Training state for `--resume`, saved at the end of every epoch. */
export interface TrainingState {
  /** The last finished epoch (0-based); resume starts at `epoch + 1`. */
  epoch: number;
  /** Current parameter values by `state_dict` name. */
  parameters: TensorMap;
  /** Adam's state (spec 7): step count and both moments per parameter. */
  adam: {
    /** Number of optimiser steps taken so far. */
    step: number;
    /** First moment `m` by parameter name. */
    firstMoment: TensorMap;
    /** Second moment `v` by parameter name. */
    secondMoment: TensorMap;
  };
  /** The batch generator's state ({@linkcode RandomState}). */
  random: RandomState;
  /**
   * Early-stopping counters (best score, best epoch, patience, …). JSON
   * values only: NaN and ±Infinity are refused, as JSON cannot keep them.
   */
  earlyStopping: Record<string, unknown>;
  /** Per-epoch history so far (losses, metrics, seconds). */
  history: unknown;
  /** Anything else the trainer needs to continue (JSON values only). */
  extra?: Record<string, unknown>;
}

/** Content accepted by {@linkcode writeFileAtomic}. */
export type FileContent = string | Uint8Array | Iterable<Uint8Array>;

/**
 * Writes a file atomically: the content goes to a temporary file in the same
 * folder, which is flushed to disk and then renamed over `path`. Readers see
 * either the old file or the complete new one, never a partial write; on any
 * error the temporary file is removed and the target is left untouched.
 *
 * The folder itself is also flushed after the rename where the platform
 * allows opening a folder (Linux, macOS); elsewhere that last step is skipped.
 *
 * @param path The file to create or replace.
 * @param content Text (written as UTF-8), bytes, or chunks of bytes (written
 *   one after another, so large checkpoints need no second copy in memory).
 * @returns Resolves once the file is in place.
 * @example
 * ```ts
 * const folder = await Deno.makeTempDir();
 * await writeFileAtomic(`${folder}/notes.txt`, "hello\n");
 * await Deno.remove(folder, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  content: FileContent,
): Promise<void> {
  const folder = dirname(path);
  const suffix = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const temporary = join(
    folder,
    `.${basename(path)}.${Deno.pid}.${suffix}.tmp`,
  );
  const chunks = typeof content === "string"
    ? [new TextEncoder().encode(content)]
    : content instanceof Uint8Array
    ? [content]
    : content;

  try {
    const file = await Deno.open(temporary, {
      write: true,
      createNew: true,
    });
    try {
      for (const chunk of chunks) await writeAll(file, chunk);
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }

  await syncFolder(folder);
}

/**
 * Removes the temporary files that {@linkcode writeFileAtomic} calls for
 * `path` left behind when their process was killed mid-write.
 */
async function removeLeftoverTemporaryFiles(path: string): Promise<void> {
  const prefix = `.${basename(path)}.`;
  const pattern = /^\d+\.[0-9a-f]+\.tmp$/;
  try {
    for await (const entry of Deno.readDir(dirname(path))) {
      const name = entry.name;
      if (
        entry.isFile && name.startsWith(prefix) &&
        pattern.test(name.slice(prefix.length))
      ) {
        await Deno.remove(join(dirname(path), name)).catch(() => {});
      }
    }
  } catch {
    // A missing folder is reported by the write that follows.
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await file.write(bytes.subarray(written));
  }
}

async function syncFolder(folder: string): Promise<void> {
  let handle: Deno.FsFile | undefined;
  try {
    handle = await Deno.open(folder, { read: true });
    await handle.sync();
  } catch {
    // Opening or syncing a folder is not possible on every platform; the
    // rename itself is still atomic there.
  } finally {
    handle?.close();
  }
}

/**
 * Encodes tensors as a safetensors file, in chunks that view the tensors'
 * own memory. Tensors are laid out in name order (the order the reference
 * library uses for equal dtypes); the header lists `__metadata__` first.
 *
 * @param tensors Float32 tensors by name.
 * @param metadata Optional string-to-string metadata.
 * @returns The file's bytes: header chunk, then one chunk per tensor.
 * @throws {RangeError} A shape that does not match its data, or a reserved
 *   or empty name.
 */
export function encodeSafetensorsChunks(
  tensors: TensorMap,
  metadata: Record<string, string> = {},
): Uint8Array[] {
  const names = [...tensors.keys()].sort(compareNames);
  const entries: string[] = [];
  const metadataEntries = Object.entries(metadata);
  if (metadataEntries.length > 0) {
    for (const [key, value] of metadataEntries) {
      if (typeof value !== "string") {
        throw new TypeError(
          `safetensors metadata must map strings to strings; "${key}" ` +
            `holds a ${typeof value}`,
        );
      }
    }
    entries.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }

  let offset = 0;
  const dataChunks: Uint8Array[] = [];
  for (const name of names) {
    const tensor = tensors.get(name)!;
    validateTensor(name, tensor);
    const byteLength = tensor.data.length * F32_BYTES;
    entries.push(
      `${JSON.stringify(name)}:${
        JSON.stringify({
          dtype: "F32",
          shape: tensor.shape,
          data_offsets: [offset, offset + byteLength],
        })
      }`,
    );
    dataChunks.push(littleEndianBytes(tensor.data));
    offset += byteLength;
  }

  const json = new TextEncoder().encode(`{${entries.join(",")}}`);
  const paddedLength = Math.ceil(json.length / HEADER_ALIGNMENT) *
    HEADER_ALIGNMENT;
  const header = new Uint8Array(8 + paddedLength).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(paddedLength), true);
  header.set(json, 8);
  return [header, ...dataChunks];
}

/**
 * Encodes tensors as one safetensors byte array. See
 * {@linkcode encodeSafetensorsChunks} for the layout.
 *
 * @param tensors Float32 tensors by name.
 * @param metadata Optional string-to-string metadata.
 * @returns The whole file.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeSafetensors(
 *   new Map([["bias", { shape: [2], data: new Float32Array([1, 2]) }]]),
 * );
 * const { tensors } = decodeSafetensors(bytes);
 * assert.equal(tensors.get("bias")!.data[1], 2);
 * ```
 */
export function encodeSafetensors(
  tensors: TensorMap,
  metadata: Record<string, string> = {},
): Uint8Array {
  const chunks = encodeSafetensorsChunks(tensors, metadata);
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/**
 * Decodes a safetensors file holding float32 tensors, checking everything
 * the format promises: header length, JSON header, dtypes, shapes, and that
 * the data offsets cover the data section exactly, without holes.
 *
 * @param bytes The file's content.
 * @param source The file name used in error messages.
 * @returns Tensors (views into `bytes` where alignment allows) and metadata.
 * @throws {CheckpointError} The bytes are not a valid float32 safetensors
 *   file; the message names `source` and the problem.
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = "<bytes>",
): SafetensorsContent {
  const fail = (problem: string): never => {
    throw new CheckpointError(source, problem);
  };
  if (bytes.length < 8) {
    fail(
      `truncated or not a safetensors file: ${bytes.length} bytes, fewer ` +
        `than the 8-byte header length`,
    );
  }

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  const foreign = recogniseForeignFormat(bytes);
  if (
    foreign !== undefined &&
    (headerLength > BigInt(bytes.length - 8) ||
      bytes[8] !== "{".charCodeAt(0))
  ) {
    fail(`not a safetensors file: it looks like ${foreign}`);
  }
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(
      `not a safetensors file: the header length field reads ` +
        `${headerLength} bytes (at most ${MAX_HEADER_BYTES} allowed)`,
    );
  }
  const dataStart = 8 + Number(headerLength);
  if (dataStart > bytes.length) {
    fail(
      `truncated or not a safetensors file: the header should be ` +
        `${headerLength} bytes but only ${bytes.length - 8} follow`,
    );
  }

  let headerText = "";
  try {
    headerText = new TextDecoder("utf-8", { fatal: true }).decode(
      bytes.subarray(8, dataStart),
    );
  } catch {
    fail("corrupt safetensors header: not valid UTF-8");
  }
  if (!headerText.startsWith("{")) {
    fail("not a safetensors file: the header does not start with '{'");
  }
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (error) {
    fail(
      `corrupt safetensors header: invalid JSON (${(error as Error).message})`,
    );
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("corrupt safetensors header: expected a JSON object");
  }

  const metadata: Record<string, string> = {};
  const layout: {
    name: string;
    shape: number[];
    begin: number;
    end: number;
  }[] = [];
  for (const [name, entry] of Object.entries(header as object)) {
    if (name === "__metadata__") {
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        fail("corrupt safetensors header: __metadata__ is not an object");
      }
      for (const [key, value] of Object.entries(entry as object)) {
        if (typeof value !== "string") {
          fail(
            `corrupt safetensors header: metadata "${key}" is not a string`,
          );
        }
        metadata[key] = value;
      }
      continue;
    }
    layout.push({ name, ...readTensorEntry(name, entry, fail) });
  }

  const dataLength = bytes.length - dataStart;
  layout.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expectedBegin = 0;
  for (const { name, begin, end } of layout) {
    if (begin !== expectedBegin) {
      fail(
        `corrupt safetensors header: tensor "${name}" starts at byte ` +
          `${begin} of the data section, expected ${expectedBegin} ` +
          `(tensors must be packed without holes or overlaps)`,
      );
    }
    expectedBegin = end;
  }
  if (expectedBegin > dataLength) {
    fail(
      `truncated: the header promises ${expectedBegin} bytes of tensor ` +
        `data but the file holds ${dataLength}`,
    );
  }
  if (expectedBegin < dataLength) {
    fail(
      `corrupt safetensors file: ${dataLength - expectedBegin} bytes after ` +
        `the last tensor are not described by the header`,
    );
  }

  const tensors: TensorMap = new Map();
  layout.sort((a, b) => compareNames(a.name, b.name));
  for (const { name, shape, begin, end } of layout) {
    const start = bytes.byteOffset + dataStart + begin;
    const count = (end - begin) / F32_BYTES;
    const data = start % F32_BYTES === 0 && hostIsLittleEndian()
      ? new Float32Array(bytes.buffer, start, count)
      : readLittleEndianFloats(
        bytes.subarray(dataStart + begin, dataStart + end),
      );
    tensors.set(name, { shape, data });
  }
  return { tensors, metadata };
}

function readTensorEntry(
  name: string,
  entry: unknown,
  fail: (problem: string) => never,
): { shape: number[]; begin: number; end: number } {
  if (typeof entry !== "object" || entry === null) {
    fail(`corrupt safetensors header: entry "${name}" is not an object`);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<
    string,
    unknown
  >;
  if (dtype !== "F32") {
    fail(
      `tensor "${name}" has dtype ${JSON.stringify(dtype)}; msca-deno reads ` +
        `F32 tensors only (save with tensor.float())`,
    );
  }
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => Number.isSafeInteger(d) && d >= 0)
  ) {
    fail(
      `corrupt safetensors header: tensor "${name}" has shape ` +
        `${JSON.stringify(shape)}, expected a list of non-negative integers`,
    );
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[1] < offsets[0]
  ) {
    fail(
      `corrupt safetensors header: tensor "${name}" has data_offsets ` +
        `${JSON.stringify(offsets)}, expected [begin, end] with begin <= end`,
    );
  }
  const [begin, end] = offsets as number[];
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  if (end - begin !== count * F32_BYTES) {
    fail(
      `corrupt safetensors header: tensor "${name}" of shape ` +
        `[${shape}] needs ${count * F32_BYTES} bytes but its data_offsets ` +
        `span ${end - begin}`,
    );
  }
  return { shape: [...(shape as number[])], begin, end };
}

/** Names a few formats people pass by mistake, from their first bytes. */
function recogniseForeignFormat(bytes: Uint8Array): string | undefined {
  const start = String.fromCharCode(...bytes.subarray(0, 8));
  if (start.startsWith("\x93NUMPY")) return "a NumPy .npy file";
  if (start.startsWith("PK\x03\x04")) {
    return "a zip archive (a PyTorch .pt/.pth or .npz file?)";
  }
  if (start.startsWith("\x80\x02") || start.startsWith("\x80\x04")) {
    return "a Python pickle";
  }
  if (start.startsWith("\x89HDF")) return "an HDF5 file";
  if (start.startsWith("{") || start.startsWith("[")) {
    return "a JSON or text file";
  }
  const printable = (byte: number) =>
    (byte >= 0x20 && byte < 0x7f) || (byte >= 0x09 && byte <= 0x0d);
  if (bytes.subarray(0, 8).every(printable)) return "a text file";
  return undefined;
}

function validateTensor(name: string, tensor: NamedTensor): void {
  if (name === "" || name === "__metadata__") {
    throw new RangeError(
      `a tensor cannot be named ${JSON.stringify(name)} in a safetensors file`,
    );
  }
  if (!(tensor.data instanceof Float32Array)) {
    throw new TypeError(`tensor "${name}" must hold a Float32Array`);
  }
  if (!tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new RangeError(
      `tensor "${name}" has shape [${tensor.shape}]; expected non-negative ` +
        `integers`,
    );
  }
  const count = tensor.shape.reduce((a, b) => a * b, 1);
  if (count !== tensor.data.length) {
    throw new RangeError(
      `tensor "${name}" has shape [${tensor.shape}] (${count} values) but ` +
        `holds ${tensor.data.length} values`,
    );
  }
}

/** Byte order of names as the reference library sorts them (by code unit). */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function hostIsLittleEndian(): boolean {
  return new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
}

function littleEndianBytes(data: Float32Array): Uint8Array {
  if (hostIsLittleEndian()) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  const bytes = new Uint8Array(data.length * F32_BYTES);
  const view = new DataView(bytes.buffer);
  data.forEach((value, i) => view.setFloat32(i * F32_BYTES, value, true));
  return bytes;
}

function readLittleEndianFloats(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = new Float32Array(bytes.length / F32_BYTES);
  for (let i = 0; i < data.length; i++) {
    data[i] = view.getFloat32(i * F32_BYTES, true);
  }
  return data;
}

/**
 * Reads a whole file for the checkpoint readers, turning a missing or
 * unreadable file into a {@linkcode CheckpointError}.
 */
async function readFileOrFail(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CheckpointError(path, `no such ${what}`);
    }
    if (error instanceof Deno.errors.IsADirectory) {
      throw new CheckpointError(path, `is a folder, expected a ${what}`);
    }
    throw new CheckpointError(
      path,
      `cannot read the ${what}: ${(error as Error).message}`,
    );
  }
}

/**
 * Writes tensors to a safetensors file, atomically.
 *
 * @param path The file to write.
 * @param tensors Float32 tensors by name.
 * @param metadata Optional string-to-string metadata.
 * @returns Resolves once the file is in place.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensorsChunks(tensors, metadata));
}

/**
 * Reads a float32 safetensors file.
 *
 * @param path The file to read.
 * @returns Its tensors and metadata.
 * @throws {CheckpointError} The file is missing, truncated, corrupt or not
 *   a float32 safetensors file.
 */
export async function readSafetensors(
  path: string,
): Promise<SafetensorsContent> {
  return decodeSafetensors(await readFileOrFail(path, "file"), path);
}

/**
 * Saves model weights and what they came from as a safetensors checkpoint
 * that PyTorch reads with `safetensors.torch.load_file`. The metadata holds
 * `format: "pt"` (as `safetensors.torch.save_file` writes it), `model`,
 * `config` (JSON), `dataset_fingerprint`, `epoch`, `metrics` (JSON) and
 * `version`.
 *
 * Temporary files of an earlier save of the same path that was killed
 * mid-write are removed first.
 *
 * @param path The file to write (conventionally `*.safetensors`).
 * @param checkpoint The weights by `state_dict` name, and the metadata.
 * @returns Resolves once the file is in place (written atomically).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const folder = await Deno.makeTempDir();
 * const path = `${folder}/best.safetensors`;
 * await saveCheckpoint(path, {
 *   tensors: new Map([
 *     ["user_embedding.weight", {
 *       shape: [2, 2],
 *       data: new Float32Array([0.1, 0.2, 0.3, 0.4]),
 *     }],
 *   ]),
 *   metadata: {
 *     model: "MSCA",
 *     config: { embedding_size: 2 },
 *     datasetFingerprint: "inter-sha256=00;text=3x4",
 *     epoch: 0,
 *     metrics: { valid: { "recall@20": 0.5 } },
 *   },
 * });
 * const checkpoint = await loadCheckpoint(path);
 * assert.equal(checkpoint.metadata.model, "MSCA");
 * await Deno.remove(folder, { recursive: true });
 * ```
 */
export async function saveCheckpoint(
  path: string,
  checkpoint: { tensors: TensorMap; metadata: CheckpointMetadata },
): Promise<void> {
  const { metadata } = checkpoint;
  if (!Number.isInteger(metadata.epoch)) {
    throw new RangeError(
      `checkpoint epoch must be an integer, got ${metadata.epoch}`,
    );
  }
  await removeLeftoverTemporaryFiles(path);
  await writeSafetensors(path, checkpoint.tensors, {
    format: "pt",
    model: metadata.model,
    config: JSON.stringify(metadata.config),
    dataset_fingerprint: metadata.datasetFingerprint,
    epoch: String(metadata.epoch),
    metrics: JSON.stringify(metadata.metrics),
    version: metadata.version ?? PACKAGE_VERSION,
  });
}

/**
 * Loads a checkpoint written by {@linkcode saveCheckpoint}.
 *
 * @param path The checkpoint file.
 * @returns Its weights and decoded metadata.
 * @throws {CheckpointError} The file is missing, truncated, corrupt, not a
 *   safetensors file, or a safetensors file without msca-deno's metadata.
 */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const { tensors, metadata } = await readSafetensors(path);
  const missing = [
    "model",
    "config",
    "dataset_fingerprint",
    "epoch",
    "metrics",
    "version",
  ].filter((key) => !(key in metadata));
  if (missing.length > 0) {
    throw new CheckpointError(
      path,
      `a safetensors file but not an msca-deno checkpoint: its metadata ` +
        `lacks ${missing.join(", ")}`,
    );
  }
  const parseObject = (key: string): Record<string, unknown> => {
    try {
      const value = JSON.parse(metadata[key]);
      if (typeof value === "object" && value !== null) return value;
    } catch {
      // reported below
    }
    throw new CheckpointError(
      path,
      `corrupt checkpoint metadata: "${key}" is not a JSON object`,
    );
  };
  const epoch = Number(metadata.epoch);
  if (!Number.isInteger(epoch)) {
    throw new CheckpointError(
      path,
      `corrupt checkpoint metadata: epoch ${JSON.stringify(metadata.epoch)}`,
    );
  }
  return {
    path,
    tensors,
    metadata: {
      model: metadata.model,
      config: parseObject("config"),
      datasetFingerprint: metadata.dataset_fingerprint,
      epoch,
      metrics: parseObject("metrics"),
      version: metadata.version,
    },
  };
}

/** What {@linkcode tensorsOf} needs of a model parameter. */
export interface ReadableParameter {
  /** The `state_dict` name. */
  readonly name: string;
  /** Its shape. */
  readonly shape: readonly number[];
  /** Reads its values back from the backend. */
  toArray(): Promise<Float32Array>;
}

/** What {@linkcode assignTensors} needs of a model parameter. */
export interface WritableParameter {
  /** The `state_dict` name. */
  readonly name: string;
  /** Its shape. */
  readonly shape: readonly number[];
  /** Overwrites its values. */
  assign(values: Float32Array): void;
}

/**
 * Reads model parameters into a {@linkcode TensorMap} for saving.
 *
 * @param parameters The model's parameters (engine `Parameter`s), or its
 *   `stateDict()` map of name to tensor.
 * @returns Their values by `state_dict` name.
 * @throws {RangeError} Two parameters share a name.
 */
export async function tensorsOf(
  parameters:
    | Iterable<ReadableParameter>
    | Map<string, Omit<ReadableParameter, "name">>,
): Promise<TensorMap> {
  const entries = parameters instanceof Map
    ? [...parameters].map(([name, tensor]) => ({
      name,
      shape: tensor.shape,
      toArray: () => tensor.toArray(),
    }))
    : parameters;
  const tensors: TensorMap = new Map();
  for (const parameter of entries) {
    if (tensors.has(parameter.name)) {
      throw new RangeError(`two parameters are named "${parameter.name}"`);
    }
    tensors.set(parameter.name, {
      shape: [...parameter.shape],
      data: await parameter.toArray(),
    });
  }
  return tensors;
}

/**
 * Loads saved tensors into model parameters, strictly (like PyTorch's
 * `load_state_dict(strict=True)`): every parameter must be present with its
 * shape, and the file must hold no other tensor.
 *
 * @param parameters The model's parameters (engine `Parameter`s).
 * @param tensors Saved values by `state_dict` name.
 * @param source The file they came from, for error messages.
 * @throws {CheckpointError} Missing or unexpected names, or a shape that
 *   differs (a model built with another config).
 */
export function assignTensors(
  parameters: Iterable<WritableParameter>,
  tensors: TensorMap,
  source: string,
): void {
  const list = [...parameters];
  const expected = new Set(list.map((parameter) => parameter.name));
  const missing = [...expected].filter((name) => !tensors.has(name));
  const unexpected = [...tensors.keys()].filter((name) => !expected.has(name));
  if (missing.length > 0 || unexpected.length > 0) {
    throw new CheckpointError(
      source,
      `its tensors do not fit the model:` +
        (missing.length > 0 ? ` missing ${missing.join(", ")};` : "") +
        (unexpected.length > 0 ? ` unexpected ${unexpected.join(", ")};` : "") +
        ` was it saved from another model or config?`,
    );
  }
  for (const parameter of list) {
    const saved = tensors.get(parameter.name)!;
    const sameShape = saved.data.length ===
        parameter.shape.reduce((a, b) => a * b, 1) &&
      sameDimensions(saved.shape, parameter.shape);
    if (!sameShape) {
      throw new CheckpointError(
        source,
        `tensor "${parameter.name}" has shape [${saved.shape}] but the ` +
          `model expects [${parameter.shape}]`,
      );
    }
  }
  for (const parameter of list) {
    parameter.assign(tensors.get(parameter.name)!.data);
  }
}

/** Equal shapes, where a `[c]` vector and a `[1, c]` row count as equal. */
function sameDimensions(a: readonly number[], b: readonly number[]): boolean {
  const squeeze = (shape: readonly number[]) =>
    shape.length === 2 && shape[0] === 1 ? [shape[1]] : [...shape];
  const x = squeeze(a), y = squeeze(b);
  return x.length === y.length && x.every((d, i) => d === y[i]);
}

/** Rows × columns of each modality's feature table. */
export type FeatureShapes = Partial<
  Record<Modality, readonly [number, number]>
>;

/**
 * The feature shapes of a loaded dataset, for {@linkcode datasetFingerprint}.
 *
 * @param dataset A loaded dataset.
 * @returns `[rows, cols]` per modality present.
 */
export function featureShapesOf(dataset: Dataset): FeatureShapes {
  const shapes: FeatureShapes = {};
  for (const modality of ["image", "text"] as const) {
    const table = dataset.features[modality];
    if (table) shapes[modality] = [table.rows, table.cols];
  }
  return shapes;
}

/**
 * A fingerprint of a dataset: the SHA-256 of its interaction file and the
 * shapes of its feature tables, as readable text such as
 * `inter-sha256=9f86…;image=7050x4096;text=7050x384`. Two checkpoints made on
 * the same data have the same fingerprint.
 *
 * @param interactionFile Path to the `.inter` file, or its bytes.
 * @param featureShapes `[rows, cols]` of each modality's features.
 * @returns The fingerprint.
 * @throws {Deno.errors.NotFound} The interaction file does not exist.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const inter = new TextEncoder().encode("userID\titemID\tx_label\n0\t0\t0\n");
 * const fingerprint = await datasetFingerprint(inter, { text: [1, 384] });
 * assert.ok(fingerprint.endsWith(";text=1x384"));
 * ```
 */
export async function datasetFingerprint(
  interactionFile: string | Uint8Array,
  featureShapes: FeatureShapes,
): Promise<string> {
  const bytes = typeof interactionFile === "string"
    ? await Deno.readFile(interactionFile)
    : interactionFile;
  const parts = [
    `inter-sha256=${createHash("sha256").update(bytes).digest("hex")}`,
  ];
  for (const modality of ["image", "text"] as const) {
    const shape = featureShapes[modality];
    if (shape) parts.push(`${modality}=${shape[0]}x${shape[1]}`);
  }
  return parts.join(";");
}

/** The config keys that locate a dataset's interaction file. */
export interface InteractionFileOptions {
  /** Folder holding one folder per dataset (default `data`). */
  data_path?: string | null;
  /** Dataset name. */
  dataset: string;
  /** Interaction file name (default `<dataset>.inter`). */
  inter_file_name?: string | null;
}

/**
 * Where a dataset's interaction file is, as `loadDataset` finds it:
 * `<data_path>/<dataset>/<inter_file_name or dataset.inter>`.
 *
 * @param options The config (a `RunConfig` will do).
 * @returns The path.
 */
export function interactionFilePath(options: InteractionFileOptions): string {
  return join(
    options.data_path ?? "data",
    options.dataset,
    options.inter_file_name ?? `${options.dataset}.inter`,
  );
}

/**
 * The {@linkcode datasetFingerprint} of a loaded dataset: its interaction
 * file (located from the config) and its feature shapes.
 *
 * @param options The config the dataset was loaded with.
 * @param dataset The loaded dataset.
 * @returns The fingerprint.
 */
export function fingerprintOfDataset(
  options: InteractionFileOptions,
  dataset: Dataset,
): Promise<string> {
  return datasetFingerprint(
    interactionFilePath(options),
    featureShapesOf(dataset),
  );
}

/**
 * Checks that a checkpoint was made on the given dataset.
 *
 * @param checkpoint A loaded checkpoint.
 * @param fingerprint {@linkcode datasetFingerprint} of the dataset at hand.
 * @param datasetName Shown in the message, e.g. `"baby"`.
 * @throws {CheckpointError} The fingerprints differ; the message says which
 *   part (interaction file, or which modality's feature shape).
 */
export function checkDatasetFingerprint(
  checkpoint: Checkpoint,
  fingerprint: string,
  datasetName: string,
): void {
  const saved = checkpoint.metadata.datasetFingerprint;
  if (saved === fingerprint) return;
  const parse = (text: string) =>
    new Map(
      text.split(";").map((part) => {
        const at = part.indexOf("=");
        return [part.slice(0, at), part.slice(at + 1)] as const;
      }),
    );
  const before = parse(saved);
  const now = parse(fingerprint);
  const differences: string[] = [];
  for (const key of new Set([...before.keys(), ...now.keys()])) {
    if (before.get(key) === now.get(key)) continue;
    differences.push(
      key === "inter-sha256"
        ? "the interaction file differs"
        : `${key} features ${before.get(key) ?? "absent"} in the checkpoint, ` +
          `${now.get(key) ?? "absent"} now`,
    );
  }
  const trainedOn = checkpoint.metadata.config.dataset;
  throw new CheckpointError(
    checkpoint.path,
    `made on another dataset than "${datasetName}"` +
      (typeof trainedOn === "string" && trainedOn !== datasetName
        ? ` (it was trained on "${trainedOn}")`
        : "") +
      `: ${differences.join("; ")}`,
  );
}

/** Temporary files {@linkcode writeFileAtomic} leaves if killed. */
const STATE_TEMPORARY_FILE =
  /^\.(state-epoch\d+\.safetensors|state\.json)\.\d+\.[0-9a-f]+\.tmp$/;

/** Tensor-name prefixes inside the training state's safetensors file. */
const STATE_GROUPS = {
  parameters: "parameter/",
  firstMoment: "adam.first_moment/",
  secondMoment: "adam.second_moment/",
} as const;

/**
 * Saves the training state of a run for `--resume`: the arrays go to
 * `state-epoch<N>.safetensors`, everything else to `state.json`, which names
 * the arrays file and its SHA-256. Both are written atomically, arrays
 * first, and older arrays files are removed last, so a run killed at any
 * point leaves a consistent pair (the new one or the previous one). The
 * next save also removes temporary files a killed save left behind.
 *
 * @param runDir The run folder.
 * @param state The state after a finished epoch.
 * @returns Resolves once both files are in place.
 */
export async function saveTrainingState(
  runDir: string,
  state: TrainingState,
): Promise<void> {
  const tensors: TensorMap = new Map();
  const addGroup = (prefix: string, group: TensorMap) => {
    for (const [name, tensor] of group) tensors.set(prefix + name, tensor);
  };
  addGroup(STATE_GROUPS.parameters, state.parameters);
  addGroup(STATE_GROUPS.firstMoment, state.adam.firstMoment);
  addGroup(STATE_GROUPS.secondMoment, state.adam.secondMoment);
  assertJsonSafe(state.earlyStopping, "earlyStopping");
  assertJsonSafe(state.history, "history");
  assertJsonSafe(state.extra ?? {}, "extra");

  const tensorsFile = `state-epoch${state.epoch}.safetensors`;
  const chunks = encodeSafetensorsChunks(tensors);
  const hash = createHash("sha256");
  for (const chunk of chunks) hash.update(chunk);
  await writeFileAtomic(join(runDir, tensorsFile), chunks);

  const json = {
    format: TRAINING_STATE_FORMAT,
    format_version: TRAINING_STATE_VERSION,
    msca_version: PACKAGE_VERSION,
    epoch: state.epoch,
    tensors_file: tensorsFile,
    tensors_sha256: hash.digest("hex"),
    adam_step: state.adam.step,
    random: state.random,
    early_stopping: state.earlyStopping,
    history: state.history,
    extra: state.extra ?? {},
  };
  await writeFileAtomic(
    join(runDir, TRAINING_STATE_FILE),
    JSON.stringify(json, null, 1) + "\n",
  );

  // Older arrays files, and temporary files of a run killed mid-write.
  for await (const entry of Deno.readDir(runDir)) {
    const stale = entry.name !== tensorsFile && (
      /^state-epoch\d+\.safetensors$/.test(entry.name) ||
      STATE_TEMPORARY_FILE.test(entry.name)
    );
    if (entry.isFile && stale) {
      await Deno.remove(join(runDir, entry.name)).catch(() => {});
    }
  }
}

/**
 * Refuses values that JSON would silently change (NaN and ±Infinity become
 * `null`, `undefined` disappears), since resume must continue bit for bit.
 */
function assertJsonSafe(value: unknown, path: string): void {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new RangeError(
      `training state ${path} is ${value}, which JSON cannot store; use a ` +
        `finite number or null`,
    );
  }
  if (value === undefined || typeof value === "function") {
    throw new TypeError(`training state ${path} is ${typeof value}`);
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => assertJsonSafe(item, `${path}[${i}]`));
  } else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) assertJsonSafe(item, `${path}.${key}`);
    }
  }
}

/**
 * Removes a run's training state (`state.json` and its arrays file), e.g.
 * once the run has finished and nothing is left to resume. The JSON half
 * goes first, so an interruption leaves no state that looks resumable.
 *
 * @param runDir The run folder.
 * @returns Resolves once the files are gone (missing files are fine).
 */
export async function removeTrainingState(runDir: string): Promise<void> {
  const ignoreMissing = (error: unknown) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  };
  await Deno.remove(join(runDir, TRAINING_STATE_FILE)).catch(ignoreMissing);
  for await (const entry of Deno.readDir(runDir)) {
    if (
      entry.isFile && (/^state-epoch\d+\.safetensors$/.test(entry.name) ||
        STATE_TEMPORARY_FILE.test(entry.name))
    ) {
      await Deno.remove(join(runDir, entry.name)).catch(ignoreMissing);
    }
  }
}

/**
 * Loads the training state saved by {@linkcode saveTrainingState}.
 *
 * @param runDir The run folder.
 * @returns The state as saved.
 * @throws {CheckpointError} No state in the folder, or a state file that is
 *   corrupt or does not match its arrays file.
 */
export async function loadTrainingState(
  runDir: string,
): Promise<TrainingState> {
  const jsonPath = join(runDir, TRAINING_STATE_FILE);
  const text = new TextDecoder().decode(
    await readFileOrFail(jsonPath, "training state file (nothing to resume)"),
  );
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CheckpointError(
      jsonPath,
      `corrupt training state: invalid JSON (${(error as Error).message})`,
    );
  }
  if (json?.format !== TRAINING_STATE_FORMAT) {
    throw new CheckpointError(
      jsonPath,
      `not an msca-deno training state (no "format": ` +
        `"${TRAINING_STATE_FORMAT}")`,
    );
  }
  if (json.format_version !== TRAINING_STATE_VERSION) {
    throw new CheckpointError(
      jsonPath,
      `training state layout ${json.format_version} is not supported ` +
        `(this version reads layout ${TRAINING_STATE_VERSION})`,
    );
  }
  const tensorsFile = json.tensors_file;
  if (
    typeof tensorsFile !== "string" ||
    !/^state-epoch\d+\.safetensors$/.test(tensorsFile)
  ) {
    throw new CheckpointError(
      jsonPath,
      `corrupt training state: tensors_file ${JSON.stringify(tensorsFile)}`,
    );
  }

  const tensorsPath = join(runDir, tensorsFile);
  const bytes = await readFileOrFail(
    tensorsPath,
    `training state arrays file (named by ${TRAINING_STATE_FILE})`,
  );
  const actualHash = createHash("sha256").update(bytes).digest("hex");
  if (actualHash !== json.tensors_sha256) {
    throw new CheckpointError(
      tensorsPath,
      `does not match ${TRAINING_STATE_FILE} (its SHA-256 is ` +
        `${actualHash.slice(0, 12)}…, the state names ` +
        `${String(json.tensors_sha256).slice(0, 12)}…): the state was ` +
        `changed or only half written`,
    );
  }
  const { tensors } = decodeSafetensors(bytes, tensorsPath);

  const group = (prefix: string): TensorMap => {
    const result: TensorMap = new Map();
    for (const [name, tensor] of tensors) {
      if (name.startsWith(prefix)) {
        result.set(name.slice(prefix.length), tensor);
      }
    }
    return result;
  };
  const random = json.random;
  if (
    !Array.isArray(random) || random.length !== 4 ||
    !random.every((word) => Number.isInteger(word))
  ) {
    throw new CheckpointError(
      jsonPath,
      `corrupt training state: random ${JSON.stringify(random)}, expected ` +
        `four 32-bit words`,
    );
  }
  if (!Number.isInteger(json.epoch) || !Number.isInteger(json.adam_step)) {
    throw new CheckpointError(
      jsonPath,
      `corrupt training state: epoch and adam_step must be integers`,
    );
  }
  return {
    epoch: json.epoch as number,
    parameters: group(STATE_GROUPS.parameters),
    adam: {
      step: json.adam_step as number,
      firstMoment: group(STATE_GROUPS.firstMoment),
      secondMoment: group(STATE_GROUPS.secondMoment),
    },
    random: random as RandomState,
    earlyStopping: (json.early_stopping ?? {}) as Record<string, unknown>,
    history: json.history,
    extra: (json.extra ?? {}) as Record<string, unknown>,
  };
}
