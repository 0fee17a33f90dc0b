/**
 * The error every data reader throws for bad input.
 *
 * @module
 */

/**
 * Bad input data: a missing or malformed `.inter` file, a feature file that
 * is not a usable `.npy` array, and the like. The message starts with the
 * file's path and says what was found and what was expected, so a CLI can
 * print it as it is.
 *
 * @example
 * ```ts
 * import { DataError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new DataError("data/baby/baby.inter", "file is empty");
 * assert.equal(error.message, "data/baby/baby.inter: file is empty");
 * assert.equal(error.file, "data/baby/baby.inter");
 * ```
 */
export class DataError extends Error {
  /** The path of the offending file (or a name for in-memory bytes). */
  readonly file: string;

  /**
   * Creates the error.
   *
   * @param file Path of the offending file.
   * @param problem What was wrong and what was expected.
   */
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "DataError";
    this.file = file;
  }
}
