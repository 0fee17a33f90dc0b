/**
 * `deno task train [-m MSCA] [-d synthetic] [--key value …]`: trains a model
 * on a dataset, like MMRec's `main.py`. With no `-d` it uses the synthetic
 * dataset, generated into `data/` on first use.
 *
 * A bad config, command line or dataset ends in one line, `error: …`, on
 * stderr and exit code 1, before anything is written.
 *
 * @module
 */

import { parseCommandLine } from "./src/cli/args.ts";
import {
  ConfigError,
  DEFAULT_DATASET,
  describeKeys,
  expandGrid,
  formatConfig,
  loadConfig,
} from "./src/config.ts";
import { datasetStatistics, loadDataset } from "./src/data/dataset.ts";
import { DataError } from "./src/data/errors.ts";
import { ensureDefaultDataset } from "./src/data/synth.ts";
import { buildGraphs } from "./src/graph/graphs.ts";
import { modelEntry } from "./src/models/registry.ts";
import {
  epochLogLines,
  finalLogLines,
  gridSearch,
  gridTableLines,
  NonFiniteLossError,
  openBackend,
} from "./src/trainer.ts";

const USAGE = `Usage: deno task train [-m MODEL] [-d DATASET] [--key value …]

  -m, --model     MSCA (default), LightGCN or BPR
  -d, --dataset   a file in configs/dataset/ or a folder under data_path
                  holding <name>.inter (default: ${DEFAULT_DATASET})
  -h, --help      this text

Config keys (overall < dataset < model < command line), set as --key value
or --key=value; lists as --topk 10,20 or --topk [10,20]:
`;

async function main(argv: string[]): Promise<void> {
  const commandLine = parseCommandLine(argv, {
    flags: { help: { type: "boolean", short: "h" } },
  });
  if (commandLine.flags.help) {
    console.log(USAGE + describeKeys());
    return;
  }
  const config = await loadConfig({ args: commandLine });
  console.log(formatConfig(config) + "\n");

  if (config.dataset === DEFAULT_DATASET) {
    ensureDefaultDataset(config.data_path);
  }
  const dataset = loadDataset(config);
  for (const line of datasetStatistics(dataset)) console.log(line);

  // The trainer reuses these for every combination with the same knn_k.
  const [firstRun] = expandGrid(config);
  const graphs = await buildGraphs(dataset, {
    knn_k: firstRun.knn_k,
    cacheDir: config.graph_cache_dir === "" ? null : config.graph_cache_dir,
    modelKind: modelEntry(config.model).graphKind,
  });

  const search = await gridSearch(config, dataset, {
    graphs,
    backend: await openBackend(config.device),
    callbacksFor: (index, count, parameters) => {
      if (count > 1) {
        console.log(
          `\ncombination ${index + 1}/${count}: ` +
            JSON.stringify(parameters),
        );
      }
      return {
        onEpoch: (record) => {
          for (const line of epochLogLines(record, config.model)) {
            console.log(line);
          }
        },
      };
    },
  });
  const closing = search.combinations.length > 1
    ? gridTableLines(search)
    : finalLogLines(search.combinations[0].result);
  for (const line of closing) console.log(line);
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    if (
      error instanceof ConfigError || error instanceof DataError ||
      error instanceof NonFiniteLossError
    ) {
      console.error(`error: ${error.message}`);
      Deno.exit(1);
    }
    throw error;
  }
}
