/**
 * `deno task synth`: writes a seeded synthetic dataset in MMRec's layout.
 *
 * ```sh
 * deno task synth [--preset synthetic|baby|sports|elec] [--seed N]
 *                 [--out data] [--name NAME]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  DEFAULT_SYNTHETIC_SEED,
  generateSynthetic,
  SYNTHETIC_PRESETS,
  type SyntheticPreset,
  writeSynthetic,
} from "../data/synth.ts";

const USAGE = `Usage: deno task synth [options]

Writes <out>/<name>/<name>.inter, image_feat.npy, text_feat.npy and
synthetic.json (a seeded synthetic dataset in MMRec's layout).

Options:
  --preset NAME  synthetic (default; 600 users, 300 items), or baby,
                 sports, elec (the real datasets' sizes, 4096-d image and
                 384-d text features)
  --seed N       generator seed (default ${DEFAULT_SYNTHETIC_SEED})
  --out DIR      data folder to write into (default data)
  --name NAME    dataset name (default: the preset's, e.g. synthetic-sports)
  --help         show this help`;

/**
 * Runs the CLI.
 *
 * @param args Command-line arguments.
 * @returns The exit code.
 */
export function main(args: string[]): number {
  let values;
  try {
    values = parseArgs({
      args,
      options: {
        preset: { type: "string", default: "synthetic" },
        seed: { type: "string", default: String(DEFAULT_SYNTHETIC_SEED) },
        out: { type: "string", default: "data" },
        name: { type: "string" },
        help: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    console.error(`synth: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }

  const presets = Object.keys(SYNTHETIC_PRESETS);
  if (!presets.includes(values.preset)) {
    console.error(
      `synth: unknown preset '${values.preset}'; expected one of ${
        presets.join(", ")
      }`,
    );
    return 2;
  }
  const seed = Number(values.seed);
  if (!/^-?\d+$/.test(values.seed) || !Number.isSafeInteger(seed)) {
    console.error(`synth: --seed '${values.seed}' is not an integer`);
    return 2;
  }
  const preset = SYNTHETIC_PRESETS[values.preset as SyntheticPreset];
  const name = values.name ?? preset.name;
  if (!/^[\w.-]+$/.test(name)) {
    console.error(
      `synth: --name '${name}' must be a plain folder name ` +
        `(letters, digits, '_', '-', '.')`,
    );
    return 2;
  }

  const started = performance.now();
  const data = generateSynthetic({ ...preset, name, seed });
  const folder = join(values.out, name);
  const files = writeSynthetic(data, folder);
  const seconds = (performance.now() - started) / 1000;

  const splitCounts = [0, 0, 0];
  for (const label of data.labels) splitCounts[label]++;
  console.log(
    `Wrote dataset '${name}' (preset ${values.preset}, seed ${seed}) to ` +
      `${folder} in ${seconds.toFixed(1)} s:`,
  );
  console.log(
    `  ${data.options.userCount} users, ${data.options.itemCount} items, ` +
      `${data.users.length} interactions (train ${splitCounts[0]}, valid ` +
      `${splitCounts[1]}, test ${splitCounts[2]})`,
  );
  for (const file of files) {
    const size = Deno.statSync(file).size;
    console.log(`  ${file} (${formatBytes(size)})`);
  }
  console.log(
    `Train on it with: deno task train -d ${name}` +
      (values.out === "data" ? "" : ` --data_path ${values.out}`),
  );
  return 0;
}

function formatBytes(size: number): string {
  if (size >= 2 ** 30) return `${(size / 2 ** 30).toFixed(2)} GiB`;
  if (size >= 2 ** 20) return `${(size / 2 ** 20).toFixed(1)} MiB`;
  if (size >= 2 ** 10) return `${(size / 2 ** 10).toFixed(1)} KiB`;
  return `${size} B`;
}

if (import.meta.main) {
  Deno.exit(main(Deno.args));
}
