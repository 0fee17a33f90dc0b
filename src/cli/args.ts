/**
 * The command line of every entry point, MMRec style: `-m/--model`,
 * `-d/--dataset`, and any config key as `--key value` or `--key=value`
 * (lists as `--topk [5,10]` or `--topk 5,10`, booleans as
 * `--freeze_features true` or a bare `--freeze_features`). Each entry point
 * may declare flags of its own (`-c/--checkpoint`, `--json`, …).
 *
 * Values stay text here; `loadConfig` reads them as YAML scalars or flow
 * lists and checks them against the config schema. Key names are checked
 * here already, so a typo fails before any work starts.
 *
 * @module
 */

import { checkKeyName, CONFIG_KEYS, ConfigError } from "../config.ts";

/** A flag an entry point adds to the config keys. */
export interface FlagSpec {
  /** `boolean` flags take no value (`--json`); `string` flags take one. */
  type: "boolean" | "string";
  /** One-letter alias, without the dash (`c` for `-c`). */
  short?: string;
}

/** Options of {@linkcode parseCommandLine}. */
export interface ParseOptions {
  /** Flags of this entry point, by long name. */
  flags?: Record<string, FlagSpec>;
  /** Whether bare words are allowed (a fixture folder, say). */
  allowPositionals?: boolean;
}

/** A parsed command line. */
export interface CommandLine {
  /** `-m/--model`, when given. */
  model?: string;
  /** `-d/--dataset`, when given. */
  dataset?: string;
  /** Config keys set on the command line, values as typed (text). */
  values: Record<string, string>;
  /** The entry point's own flags that were given. */
  flags: Record<string, string | boolean>;
  /** Bare words, in order (only with `allowPositionals`). */
  positionals: string[];
}

/**
 * Parses the words after the entry point.
 *
 * @param argv The arguments, e.g. `Deno.args`.
 * @param options The entry point's own flags; whether bare words are allowed.
 * @returns Model, dataset, config values (as text), flags and bare words.
 * @throws {ConfigError} For an unknown key (naming the nearest one), a key
 *   without a value, or a bare word where none is allowed.
 * @example
 * ```ts
 * import { parseCommandLine } from "./args.ts";
 * import assert from "node:assert/strict";
 *
 * const line = parseCommandLine(
 *   ["-m", "MSCA", "--topk=[10,20]", "--json"],
 *   { flags: { json: { type: "boolean" } } },
 * );
 * assert.equal(line.model, "MSCA");
 * assert.equal(line.values.topk, "[10,20]");
 * assert.equal(line.flags.json, true);
 * ```
 */
export function parseCommandLine(
  argv: readonly string[],
  options: ParseOptions = {},
): CommandLine {
  const flags = options.flags ?? {};
  const line: CommandLine = { values: {}, flags: {}, positionals: [] };
  const shortNames: Record<string, string> = { m: "model", d: "dataset" };
  for (const [name, spec] of Object.entries(flags)) {
    if (spec.short) shortNames[spec.short] = name;
  }

  for (let index = 0; index < argv.length; index++) {
    const word = argv[index];
    if (word === "--") {
      for (const rest of argv.slice(index + 1)) {
        addPositional(line, rest, options.allowPositionals);
      }
      break;
    }
    const parsed = splitOption(word, shortNames);
    if (parsed === undefined) {
      addPositional(line, word, options.allowPositionals);
      continue;
    }
    const { name, inlineValue } = parsed;
    const isFlag = Object.hasOwn(flags, name);
    if (!isFlag && name !== "model" && name !== "dataset") {
      checkKeyName(name, "on the command line", Object.keys(flags));
    }
    // A boolean config key may stand alone (`--freeze_features`) and takes
    // the next word only when that is true/false or bare words are not
    // allowed; a boolean flag of the entry point (`--json`) never does.
    const needsValue = isFlag
      ? flags[name].type === "string"
      : !isBooleanKey(name);
    const next = argv[index + 1];
    const takesNext = next !== undefined && !isOption(next) && (
      needsValue ||
      (!isFlag && (isBooleanWord(next) || !options.allowPositionals))
    );

    let value = inlineValue;
    if (value === undefined && takesNext) {
      value = next;
      index++;
    }
    if (value === undefined && needsValue) {
      throw new ConfigError(`--${name} needs a value`, { key: name });
    }

    if (name === "model") line.model = value;
    else if (name === "dataset") line.dataset = value;
    else if (Object.hasOwn(flags, name)) {
      line.flags[name] = flags[name].type === "boolean"
        ? readBoolean(name, value ?? "true")
        : value!;
    } else line.values[name] = value ?? "true";
  }
  return line;
}

/** `--name`, `--name=value`, `-m`, `-m=value`; undefined for a bare word. */
function splitOption(
  word: string,
  shortNames: Record<string, string>,
): { name: string; inlineValue?: string } | undefined {
  const long = /^--([^=]+)(?:=(.*))?$/s.exec(word);
  if (long) return { name: long[1], inlineValue: long[2] };
  const short = /^-([A-Za-z])(?:=(.*))?$/s.exec(word);
  if (!short) return undefined;
  const name = shortNames[short[1]];
  if (name === undefined) {
    throw new ConfigError(
      `unknown option -${short[1]}; short options: ` +
        Object.keys(shortNames).map((letter) => `-${letter}`).join(", "),
    );
  }
  return { name, inlineValue: short[2] };
}

/** Whether a word starts a new option rather than being a value (`-1e-3`). */
function isOption(word: string): boolean {
  return /^--./.test(word) || /^-[A-Za-z]/.test(word);
}

function isBooleanKey(name: string): boolean {
  return Object.hasOwn(CONFIG_KEYS, name) &&
    CONFIG_KEYS[name as keyof typeof CONFIG_KEYS].type === "boolean";
}

function isBooleanWord(word: string): boolean {
  return /^(true|false)$/i.test(word);
}

function readBoolean(name: string, text: string): boolean {
  if (!isBooleanWord(text)) {
    throw new ConfigError(
      `--${name}: expected true or false, got ${JSON.stringify(text)}`,
      { key: name },
    );
  }
  return text.toLowerCase() === "true";
}

function addPositional(line: CommandLine, word: string, allowed = false) {
  if (!allowed) {
    throw new ConfigError(
      `unexpected argument ${JSON.stringify(word)}; set config keys as ` +
        "--key value",
    );
  }
  line.positionals.push(word);
}

/**
 * The `-m`, `-d` and config-key options a command line gave, as typed,
 * for commands that must refuse options they would otherwise ignore.
 *
 * @param line A parsed command line.
 * @param allowed Config keys the caller does take.
 * @returns Options such as `-m` or `--epochs`, in that order.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { givenOptions, parseCommandLine } from "./args.ts";
 *
 * const line = parseCommandLine(["-m", "BPR", "--epochs", "3"]);
 * assert.deepEqual(givenOptions(line), ["-m", "--epochs"]);
 * assert.deepEqual(givenOptions(line, ["epochs"]), ["-m"]);
 * ```
 */
export function givenOptions(
  line: CommandLine,
  allowed: readonly string[] = [],
): string[] {
  return [
    ...(line.model === undefined ? [] : ["-m"]),
    ...(line.dataset === undefined ? [] : ["-d"]),
    ...Object.keys(line.values).filter((key) => !allowed.includes(key))
      .map((key) => `--${key}`),
  ];
}
