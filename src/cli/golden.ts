/**
 * `deno task golden [FIXTURE_DIR] [--device cpu|webgpu]`: runs the golden
 * check (src/golden.ts) on a fixture the reference wrote and prints the
 * table of worst errors. Exit code 0 when every quantity is within
 * tolerance, 1 when one is not, 2 on a usage or input error.
 *
 * @module
 */

import { givenOptions, parseCommandLine } from "./args.ts";
import { formatGoldenTable, runGoldenCheck } from "../golden.ts";
import { openBackend } from "../trainer.ts";

const DEFAULT_FIXTURE = "tests/fixtures/msca-tiny";

const USAGE = `Usage: deno task golden [FIXTURE_DIR] [--device cpu|webgpu]

Runs the steps recorded in a golden fixture (default ${DEFAULT_FIXTURE})
and compares graphs, views, losses, gradients, parameters and metrics
with the reference's numbers.`;

async function main(argv: string[]): Promise<number> {
  const line = parseCommandLine(argv, {
    flags: { help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  });
  if (line.flags.help) {
    console.log(USAGE);
    return 0;
  }
  if (line.positionals.length > 1) {
    throw new TypeError(
      `expected at most one fixture folder, got ${line.positionals.join(" ")}`,
    );
  }
  const ignored = givenOptions(line, ["device"]);
  if (ignored.length > 0) {
    throw new TypeError(
      `${ignored.join(", ")}: a golden check takes its model, dataset and ` +
        "hyper-parameters from the fixture's meta.json; expected only a " +
        "fixture folder (e.g. tests/fixtures/lightgcn-tiny) and --device",
    );
  }
  const fixture = line.positionals[0] ?? DEFAULT_FIXTURE;
  const device = line.values.device ?? "cpu";
  if (device !== "cpu" && device !== "webgpu") {
    throw new TypeError(`--device must be cpu or webgpu, got "${device}"`);
  }
  const backend = await openBackend(device);
  const report = await runGoldenCheck(fixture, { backend });
  for (const text of formatGoldenTable(report)) console.log(text);
  return report.passed ? 0 : 1;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    code = 2;
  }
  Deno.exit(code);
}
