/**
 * Reading and writing NumPy `.npy` files (format versions 1.0, 2.0, 3.0).
 *
 * Floats (`<f2`, `<f4`, `<f8`) are read as a `Float32Array`; integers
 * (`<i4`, `<i8`) as an `Int32Array`, which is an error for an `<i8` value
 * outside the int32 range. Only little-endian, C-order arrays of these
 * dtypes are accepted; anything else is a {@linkcode DataError} naming the
 * file. A `<f4` body that starts at a 4-byte boundary (numpy pads headers to
 * 64 bytes) is returned as a view on the file's bytes, without a copy.
 *
 * The host is assumed little-endian, as every platform Deno ships for is.
 *
 * @module
 */

import { DataError } from "./errors.ts";
import { readWholeFile } from "./files.ts";

/** The dtypes {@linkcode readNpy} and {@linkcode writeNpy} understand. */
export type NpyDtype = "<f2" | "<f4" | "<f8" | "<i4" | "<i8";

/** The element width in bytes of each supported dtype. */
const ITEM_SIZE: Record<NpyDtype, number> = {
  "<f2": 2,
  "<f4": 4,
  "<f8": 8,
  "<i4": 4,
  "<i8": 8,
};

const SUPPORTED = Object.keys(ITEM_SIZE).join(", ");

/** The magic string every `.npy` file starts with: `\x93NUMPY`. */
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

/** A float array read from a `.npy` file (dtype `<f2`, `<f4` or `<f8`). */
export interface NpyFloatArray {
  /** The array's shape (`[]` for a scalar). */
  shape: number[];
  /** The dtype stored in the file. */
  dtype: "<f2" | "<f4" | "<f8";
  /** The values in C order, cast to float32. */
  data: Float32Array;
}

/** An integer array read from a `.npy` file (dtype `<i4` or `<i8`). */
export interface NpyIntArray {
  /** The array's shape (`[]` for a scalar). */
  shape: number[];
  /** The dtype stored in the file. */
  dtype: "<i4" | "<i8";
  /** The values in C order as int32 (range-checked for `<i8`). */
  data: Int32Array;
}

/** What {@linkcode readNpy} returns: a float or an integer array. */
export type NpyArray = NpyFloatArray | NpyIntArray;

/** Options of {@linkcode readNpy}. */
export interface ReadNpyOptions {
  /** Name to use in error messages when reading bytes (default `<bytes>`). */
  name?: string;
}

/**
 * Reads a `.npy` array from a file path or from the file's bytes.
 *
 * @param source A path (string or file URL) or the bytes of a `.npy` file.
 * @param options `name` labels in-memory bytes in error messages.
 * @returns The shape, the stored dtype and the values in C order.
 * @throws {DataError} If the file is missing, not a `.npy` file, truncated,
 * Fortran-ordered, big-endian or of an unsupported dtype.
 * @example
 * ```ts
 * import { readNpy, writeNpy } from "./npy.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = writeNpy({ shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) });
 * const array = readNpy(bytes);
 * assert.equal(array.dtype, "<f4");
 * assert.deepEqual(array.shape, [2, 2]);
 * ```
 */
export function readNpy(
  source: string | URL | Uint8Array,
  options: ReadNpyOptions = {},
): NpyArray {
  let bytes: Uint8Array;
  let name: string;
  if (source instanceof Uint8Array) {
    bytes = source;
    name = options.name ?? "<bytes>";
  } else {
    name = options.name ?? (source instanceof URL ? source.pathname : source);
    bytes = readWholeFile(source, "a .npy file");
  }

  const header = parseHeader(bytes, name);

  const count = header.shape.reduce((product, size) => product * size, 1);
  const itemSize = ITEM_SIZE[header.dtype];
  const expectedBytes = count * itemSize;
  const availableBytes = bytes.length - header.dataOffset;
  if (availableBytes < expectedBytes) {
    throw new DataError(
      name,
      `truncated .npy file: the header says shape ${
        pythonShape(header.shape)
      } of ${header.dtype} (${expectedBytes} data bytes), but only ` +
        `${availableBytes} bytes follow the header`,
    );
  }
  if (availableBytes > expectedBytes) {
    throw new DataError(
      name,
      `${availableBytes - expectedBytes} unexpected bytes after the data: ` +
        `the header says shape ${
          pythonShape(header.shape)
        } of ${header.dtype} (${expectedBytes} data bytes)`,
    );
  }

  const start = bytes.byteOffset + header.dataOffset;
  switch (header.dtype) {
    case "<f4":
      return {
        shape: header.shape,
        dtype: header.dtype,
        data: start % 4 === 0
          ? new Float32Array(bytes.buffer, start, count)
          : new Float32Array(copyBytes(bytes, header.dataOffset, count * 4)),
      };
    case "<f8": {
      const wide = start % 8 === 0
        ? new Float64Array(bytes.buffer, start, count)
        : new Float64Array(copyBytes(bytes, header.dataOffset, count * 8));
      return {
        shape: header.shape,
        dtype: "<f8",
        data: Float32Array.from(wide),
      };
    }
    case "<f2": {
      const half = start % 2 === 0
        ? new Uint16Array(bytes.buffer, start, count)
        : new Uint16Array(copyBytes(bytes, header.dataOffset, count * 2));
      const table = halfTable();
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = table[half[i]];
      return { shape: header.shape, dtype: "<f2", data };
    }
    case "<i4":
      return {
        shape: header.shape,
        dtype: "<i4",
        data: start % 4 === 0
          ? new Int32Array(bytes.buffer, start, count)
          : new Int32Array(copyBytes(bytes, header.dataOffset, count * 4)),
      };
    case "<i8": {
      const words = start % 4 === 0
        ? new Int32Array(bytes.buffer, start, count * 2)
        : new Int32Array(copyBytes(bytes, header.dataOffset, count * 8));
      const data = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const low = words[2 * i];
        // An int64 fits in int32 when its high word is the low word's sign.
        if (words[2 * i + 1] !== low >> 31) {
          throw new DataError(
            name,
            `<i8 value at flat index ${i} is outside the int32 range; ` +
              `expected indices below 2^31`,
          );
        }
        data[i] = low;
      }
      return { shape: header.shape, dtype: "<i8", data };
    }
  }
}

/**
 * Reads a `.npy` float array (`<f2`, `<f4`, `<f8`) as float32.
 *
 * @param source A path or the bytes of a `.npy` file.
 * @param options `name` labels in-memory bytes in error messages.
 * @returns The float array.
 * @throws {DataError} As {@linkcode readNpy}, and for an integer dtype.
 * @example
 * ```ts
 * import { readFloat32Npy, writeNpy } from "./npy.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = writeNpy({ shape: [3], data: new Float64Array([1, 2, 3]) });
 * assert.equal(readFloat32Npy(bytes).data[2], 3);
 * ```
 */
export function readFloat32Npy(
  source: string | URL | Uint8Array,
  options: ReadNpyOptions = {},
): NpyFloatArray {
  const array = readNpy(source, options);
  if (array.data instanceof Float32Array) return array as NpyFloatArray;
  throw new DataError(
    nameOf(source, options),
    `dtype ${array.dtype}; expected a float array (<f2, <f4 or <f8)`,
  );
}

/**
 * Reads a `.npy` integer array (`<i4`, `<i8`) as int32.
 *
 * @param source A path or the bytes of a `.npy` file.
 * @param options `name` labels in-memory bytes in error messages.
 * @returns The integer array.
 * @throws {DataError} As {@linkcode readNpy}, and for a float dtype.
 * @example
 * ```ts
 * import { readInt32Npy, writeNpy } from "./npy.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new Int32Array([4, 5]);
 * const bytes = writeNpy({ shape: [2], data }, { dtype: "<i8" });
 * assert.equal(readInt32Npy(bytes).data[1], 5);
 * ```
 */
export function readInt32Npy(
  source: string | URL | Uint8Array,
  options: ReadNpyOptions = {},
): NpyIntArray {
  const array = readNpy(source, options);
  if (array.data instanceof Int32Array) return array as NpyIntArray;
  throw new DataError(
    nameOf(source, options),
    `dtype ${array.dtype}; expected an integer array (<i4 or <i8)`,
  );
}

/** An array to write with {@linkcode writeNpy}. */
export interface NpyInput {
  /** The shape; its product must equal `data.length`. */
  shape: readonly number[];
  /** The values in C order. */
  data: Float32Array | Float64Array | Int32Array;
}

/** Options of {@linkcode writeNpy}. */
export interface WriteNpyOptions {
  /**
   * The dtype to store. Defaults to `<f4` for a `Float32Array`, `<f8` for a
   * `Float64Array` and `<i4` for an `Int32Array`. Floats may be stored as
   * `<f2`, `<f4` or `<f8`; integers as `<i4` or `<i8`.
   */
  dtype?: NpyDtype;
  /**
   * The format version: 1 (header up to 65,535 bytes), 2 (4-byte header
   * length) or 3 (as 2, UTF-8 header). Defaults to the lowest that fits.
   */
  version?: 1 | 2 | 3;
}

/**
 * Encodes an array as the bytes of a `.npy` file (C order, little-endian,
 * header padded so the data starts at a multiple of 64 bytes).
 *
 * @param array Shape and values.
 * @param options Dtype to store and format version.
 * @returns The file's bytes.
 * @throws {RangeError} If the shape does not match the data length, or the
 * dtype does not suit the data (integers as floats or the reverse).
 * @example
 * ```ts
 * import { writeNpy } from "./npy.ts";
 *
 * const data = new Float32Array([0.5, 1.5]);
 * const bytes = writeNpy({ shape: [1, 2], data }, { dtype: "<f2" });
 * const path = Deno.makeTempFileSync({ suffix: ".npy" });
 * Deno.writeFileSync(path, bytes);
 * Deno.removeSync(path);
 * ```
 */
export function writeNpy(
  array: NpyInput,
  options: WriteNpyOptions = {},
): Uint8Array {
  const dtype = options.dtype ?? defaultDtype(array.data);
  const count = array.shape.reduce((product, size) => product * size, 1);
  if (count !== array.data.length) {
    throw new RangeError(
      `writeNpy(): shape ${
        pythonShape(array.shape)
      } holds ${count} values but data has ${array.data.length}`,
    );
  }
  const header = encodeNpyHeader(array.shape, dtype, options.version);
  const body = encodeBody(array.data, dtype);

  const bytes = new Uint8Array(header.length + body.length);
  bytes.set(header);
  bytes.set(body, header.length);
  return bytes;
}

/**
 * The header of a `.npy` file (magic, version, length, dict, padding), for
 * writers that stream a large body to a file themselves.
 *
 * @param shape The array's shape.
 * @param dtype The dtype of the body that follows.
 * @param version Format version; defaults to the lowest that fits.
 * @returns The header bytes, a multiple of 64 long.
 * @example
 * ```ts
 * import { encodeNpyHeader } from "./npy.ts";
 * import assert from "node:assert/strict";
 *
 * const header = encodeNpyHeader([10, 4096], "<f4");
 * assert.equal(header.length % 64, 0);
 * ```
 */
export function encodeNpyHeader(
  shape: readonly number[],
  dtype: NpyDtype,
  version?: 1 | 2 | 3,
): Uint8Array {
  if (!(dtype in ITEM_SIZE)) {
    throw new RangeError(
      `encodeNpyHeader(): dtype '${dtype}' is not one of ${SUPPORTED}`,
    );
  }
  for (const size of shape) {
    if (!Number.isInteger(size) || size < 0) {
      throw new RangeError(
        `encodeNpyHeader(): shape ${
          pythonShape(shape)
        } must hold non-negative integers`,
      );
    }
  }

  const dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${
    pythonShape(shape)
  }, }`;
  const paddedLength = (prefix: number) =>
    Math.ceil((prefix + dict.length + 1) / 64) * 64;
  const fitsVersion1 = paddedLength(10) - 10 <= 65535;
  const chosen = version ?? (fitsVersion1 ? 1 : 2);
  if (chosen === 1 && !fitsVersion1) {
    throw new RangeError(
      "encodeNpyHeader(): the header is too long for format 1.0; use 2 or 3",
    );
  }
  const prefix = chosen === 1 ? 10 : 12;
  const padded = paddedLength(prefix);
  const text = dict + " ".repeat(padded - prefix - dict.length - 1) + "\n";

  const bytes = new Uint8Array(padded);
  bytes.set(MAGIC);
  bytes[6] = chosen;
  bytes[7] = 0;
  const view = new DataView(bytes.buffer);
  if (chosen === 1) view.setUint16(8, text.length, true);
  else view.setUint32(8, text.length, true);
  bytes.set(new TextEncoder().encode(text), prefix);
  return bytes;
}

interface Header {
  dtype: NpyDtype;
  shape: number[];
  dataOffset: number;
}

function parseHeader(bytes: Uint8Array, name: string): Header {
  const isNpy = bytes.length >= 10 &&
    MAGIC.every((byte, i) => bytes[i] === byte);
  if (!isNpy) {
    const start = Array.from(bytes.subarray(0, 8))
      .map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
    throw new DataError(
      name,
      `not a .npy file: expected it to start with the bytes 93 4e 55 4d ` +
        `50 59 ("\\x93NUMPY"), found ${start || "an empty file"}`,
    );
  }

  const major = bytes[6];
  const minor = bytes[7];
  if (![1, 2, 3].includes(major) || minor !== 0) {
    throw new DataError(
      name,
      `unsupported .npy format version ${major}.${minor}; ` +
        `expected 1.0, 2.0 or 3.0`,
    );
  }
  const prefix = major === 1 ? 10 : 12;
  if (bytes.length < prefix) {
    throw new DataError(name, "truncated .npy header");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, prefix);
  const headerLength = major === 1
    ? view.getUint16(8, true)
    : view.getUint32(8, true);
  const dataOffset = prefix + headerLength;
  if (dataOffset > bytes.length) {
    throw new DataError(
      name,
      `truncated .npy header: it announces ${headerLength} bytes but the ` +
        `file has ${bytes.length - prefix} after the length field`,
    );
  }
  const decoder = new TextDecoder(major === 3 ? "utf-8" : "latin1");
  const text = decoder.decode(bytes.subarray(prefix, dataOffset));

  const dtype = parseDtype(text, name);
  const shape = parseShape(text, name);
  checkOrder(text, shape, name);
  return { dtype, shape, dataOffset };
}

function parseDtype(text: string, name: string): NpyDtype {
  if (/['"]descr['"]\s*:\s*\[/.test(text)) {
    throw new DataError(
      name,
      `structured (record) dtype is not supported; expected a plain ` +
        `numeric array of ${SUPPORTED}`,
    );
  }
  const match = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text);
  if (!match) {
    throw new DataError(
      name,
      `malformed .npy header (no 'descr' entry): ${text.trim()}`,
    );
  }
  const descr = match[1];
  if (descr in ITEM_SIZE) return descr as NpyDtype;
  if (descr.endsWith("O")) {
    throw new DataError(
      name,
      `object dtype '${descr}' (pickled Python objects) is not supported; ` +
        `expected a numeric array of ${SUPPORTED}`,
    );
  }
  if (descr.startsWith(">")) {
    throw new DataError(
      name,
      `big-endian dtype '${descr}' is not supported; expected little-endian ` +
        `(${SUPPORTED}); convert with arr.astype(arr.dtype.newbyteorder('<'))`,
    );
  }
  throw new DataError(
    name,
    `unsupported dtype '${descr}'; expected one of ${SUPPORTED}`,
  );
}

function parseShape(text: string, name: string): number[] {
  const match = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!match) {
    throw new DataError(
      name,
      `malformed .npy header (no 'shape' tuple): ${text.trim()}`,
    );
  }
  const parts = match[1].split(",").map((part) => part.trim())
    .filter((part) => part !== "");
  return parts.map((part) => {
    const size = /^(\d+)L?$/.exec(part);
    if (!size) {
      throw new DataError(
        name,
        `malformed .npy header: shape entry '${part}' is not a ` +
          `non-negative integer`,
      );
    }
    return Number(size[1]);
  });
}

function checkOrder(text: string, shape: number[], name: string): void {
  const match = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  if (!match) {
    throw new DataError(
      name,
      `malformed .npy header (no 'fortran_order' entry): ${text.trim()}`,
    );
  }
  // For 0-d and 1-d arrays both orders are the same bytes.
  if (match[1] === "True" && shape.length > 1) {
    throw new DataError(
      name,
      `Fortran-order (column-major) array of shape ${
        pythonShape(shape)
      }; expected C order: save it with np.save(path, ` +
        `np.ascontiguousarray(array))`,
    );
  }
}

function pythonShape(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
}

function nameOf(
  source: string | URL | Uint8Array,
  options: ReadNpyOptions,
): string {
  if (options.name !== undefined) return options.name;
  if (source instanceof Uint8Array) return "<bytes>";
  return source instanceof URL ? source.pathname : source;
}

function copyBytes(
  bytes: Uint8Array,
  offset: number,
  length: number,
): ArrayBuffer {
  return bytes.slice(offset, offset + length).buffer;
}

function defaultDtype(data: NpyInput["data"]): NpyDtype {
  if (data instanceof Float32Array) return "<f4";
  if (data instanceof Float64Array) return "<f8";
  return "<i4";
}

function encodeBody(data: NpyInput["data"], dtype: NpyDtype): Uint8Array {
  const isInteger = data instanceof Int32Array;
  const wantsInteger = dtype === "<i4" || dtype === "<i8";
  if (isInteger !== wantsInteger) {
    throw new RangeError(
      `writeNpy(): cannot store ${data.constructor.name} as ${dtype}; ` +
        (isInteger ? "expected <i4 or <i8" : "expected <f2, <f4 or <f8"),
    );
  }
  switch (dtype) {
    case "<f4":
      return bytesOf(
        data instanceof Float32Array ? data : Float32Array.from(data),
      );
    case "<f8":
      return bytesOf(
        data instanceof Float64Array ? data : Float64Array.from(data),
      );
    case "<f2": {
      const half = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) half[i] = toHalf(data[i]);
      return bytesOf(half);
    }
    case "<i4":
      return bytesOf(data);
    case "<i8": {
      const words = new Int32Array(data.length * 2);
      for (let i = 0; i < data.length; i++) {
        words[2 * i] = data[i];
        words[2 * i + 1] = data[i] >> 31;
      }
      return bytesOf(words);
    }
  }
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

let halfValues: Float32Array | undefined;

/** float16 bit pattern -> value, for all 65,536 patterns. */
function halfTable(): Float32Array {
  if (halfValues) return halfValues;
  halfValues = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    let value: number;
    if (exponent === 0) value = fraction * 2 ** -24;
    else if (exponent === 31) value = fraction ? NaN : Infinity;
    else value = (1 + fraction / 1024) * 2 ** (exponent - 15);
    halfValues[bits] = sign * value;
  }
  return halfValues;
}

const floatScratch = new Float32Array(1);
const bitsScratch = new Uint32Array(floatScratch.buffer);

/** float32 -> float16 bits, rounding to nearest even like numpy. */
function toHalf(value: number): number {
  floatScratch[0] = value;
  const bits = bitsScratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 255) return sign | 0x7c00 | (mantissa ? 0x200 : 0);

  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 31) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1))) half++;
    return sign | half;
  }

  // A carry out of the mantissa correctly bumps the exponent (up to Inf).
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half++;
  return sign | half;
}
