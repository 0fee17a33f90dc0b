/**
 * `deno task plot <run folder>…`: redraws a run's charts (`loss.svg`,
 * `metrics.svg`, and `grid.svg` after a grid search) from its
 * `summary.json`.
 *
 * @module
 */

import { join } from "node:path";
import { type PlotSummary, writeRunPlots } from "../plot.ts";

const USAGE = "usage: deno task plot <run folder> [<run folder> …]\n" +
  "Redraws loss.svg, metrics.svg (and grid.svg for a grid search) in each " +
  "run folder from its summary.json.";

/** A problem with the command line or a run folder, shown as one line. */
class PlotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PlotError";
  }
}

/**
 * Reads a run's `summary.json` and checks it holds what the charts need.
 *
 * @param runDir The run folder.
 * @returns The parsed summary.
 * @throws {PlotError} The file is missing, not JSON, or has no epochs.
 */
async function readSummary(runDir: string): Promise<PlotSummary> {
  const path = join(runDir, "summary.json");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new PlotError(
      error instanceof Deno.errors.NotFound
        ? `${path}: not found; expected a run folder written by ` +
          `'deno task train' (it holds summary.json)`
        : `${path}: cannot read it: ${(error as Error).message}`,
    );
  }
  let summary: unknown;
  try {
    summary = JSON.parse(text);
  } catch (error) {
    throw new PlotError(
      `${path}: not valid JSON (${(error as Error).message})`,
    );
  }
  const record = summary as Record<string, unknown>;
  if (
    typeof summary !== "object" || summary === null ||
    !(Array.isArray(record.epochs) || Array.isArray(record.combinations))
  ) {
    throw new PlotError(
      `${path}: no per-epoch records; expected an "epochs" or ` +
        `"combinations" list`,
    );
  }
  return summary as PlotSummary;
}

async function main(args: string[]): Promise<number> {
  if (args.includes("-h") || args.includes("--help")) {
    console.log(USAGE);
    return 0;
  }
  const unknownFlag = args.find((arg) => arg.startsWith("-"));
  if (unknownFlag !== undefined) {
    throw new PlotError(`unknown option ${unknownFlag}\n${USAGE}`);
  }
  if (args.length === 0) throw new PlotError(`no run folder given\n${USAGE}`);

  for (const runDir of args) {
    const summary = await readSummary(runDir);
    for (const path of await writeRunPlots(runDir, summary)) {
      console.log(`wrote ${path}`);
    }
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`error: ${message}`);
    Deno.exit(1);
  }
}
