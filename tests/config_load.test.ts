import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { tmpdir } from "node:os";
import {
  CONFIG_KEYS,
  ConfigError,
  expandGrid,
  formatConfig,
  listDatasets,
  listModels,
  loadConfig,
} from "../src/config.ts";

const OVERALL = `
device: auto
seed: 999
data_path: data/
checkpoint_dir: saved/
graph_cache_dir: .graph_cache/
save_recommended_topk: true
USER_ID_FIELD: userID
ITEM_ID_FIELD: itemID
inter_splitting_label: x_label
field_separator: "\\t"
vision_feature_file: image_feat.npy
text_feature_file: text_feat.npy
filter_out_cod_start_users: true
embedding_size: 64
epochs: 1000
stopping_step: 20
train_batch_size: 2048
learner: adam
learning_rate: 0.001
learning_rate_scheduler: [1.0, 50]
eval_step: 1
use_neg_sampling: true
metrics: [Recall, NDCG, Precision, MAP]
topk: [5, 10, 20, 50]
valid_metric: Recall@20
eval_batch_size: 4096
hyper_parameters: [seed]
search: none
`;

/** Writes a config folder (and data files) into a fresh temporary folder. */
function scratch(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "config-test-"));
  const all: Record<string, string> = {
    "configs/overall.yaml": OVERALL,
    "configs/model/Toy.yaml": "n_layers: 2\nreg_weight: 0.1\n",
    ...files,
  };
  for (const [path, text] of Object.entries(all)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

async function rejectsWith(
  promise: Promise<unknown>,
  ...patterns: (string | RegExp)[]
): Promise<ConfigError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${error}`);
    for (const pattern of patterns) {
      if (typeof pattern === "string") {
        assert.ok(
          error.message.includes(pattern),
          `"${error.message}" lacks "${pattern}"`,
        );
      } else assert.match(error.message, pattern);
    }
    return error;
  }
  assert.fail("expected a ConfigError");
}

Deno.test(
  "loadConfig() merges overall < dataset < model < command line",
  async () => {
    const root = scratch({
      "configs/dataset/toyset.yaml": "epochs: 50\neval_step: 2\n" +
        "stopping_step: 7\nn_layers: 4\n",
      "configs/model/Toy.yaml": "n_layers: 3\nreg_weight: 0.1\neval_step: 3\n",
    });
    try {
      const config = await loadConfig({
        model: "Toy",
        dataset: "toyset",
        configDir: join(root, "configs"),
        args: ["--eval_step", "5", "--seed=7"],
      });
      assert.equal(config.model, "Toy");
      assert.equal(config.dataset, "toyset");
      assert.equal(config.train_batch_size, 2048); // overall only
      assert.equal(config.epochs, 50); // dataset beats overall
      assert.equal(config.stopping_step, 7);
      assert.equal(config.n_layers, 3); // model beats dataset
      assert.equal(config.eval_step, 5); // command line beats model
      assert.deepEqual(config.seed, [7]); // seed is always a grid list
      assert.equal(config.inter_file_name, "toyset.inter");
    } finally {
      rmSync(root, { recursive: true });
    }
  },
);

Deno.test(
  "loadConfig() gives each paper dataset MSCA's best settings",
  async () => {
    const table = {
      baby: [2, 0.4, 0.005, 3e-7],
      sports: [3, 0.3, 0.005, 5e-8],
      elec: [4, 0.2, 0.01, 5e-10],
      microlens: [4, 0.3, 0.01, 5e-9],
    };
    for (const [dataset, expected] of Object.entries(table)) {
      const config = await loadConfig({ model: "MSCA", dataset });
      const [run, ...others] = expandGrid(config);
      assert.equal(others.length, 0);
      assert.deepEqual(
        [run.n_layers, run.fusion_coeff, run.cl_weight, run.reg_weight],
        expected,
        dataset,
      );
      assert.deepEqual(
        [run.knn_k, run.tau, run.embedding_size, run.learning_rate],
        [10, 0.2, 64, 0.001],
      );
      assert.equal(run.train_batch_size, 2048);
      assert.equal(run.inter_file_name, `${dataset}.inter`);
      assert.equal(run.freeze_features, false);
    }
  },
);

Deno.test(
  "--search paper trains the paper's whole grid, seed first",
  async () => {
    const config = await loadConfig({
      dataset: "sports",
      args: ["--search", "paper"],
    });
    assert.deepEqual(config.hyper_parameters, [
      "seed",
      "n_layers",
      "fusion_coeff",
      "cl_weight",
      "reg_weight",
    ]);
    const runs = expandGrid(config);
    assert.equal(runs.length, 4 * 10 * 5 * 5);
    assert.deepEqual(
      new Set(runs.map((run) => run.fusion_coeff)).size,
      10,
    );
    assert.deepEqual(
      [...new Set(runs.map((run) => run.reg_weight))],
      [5e-6, 5e-7, 5e-8, 5e-9, 5e-10],
    );
    // The search grid replaces the dataset's best settings, and a command-line
    // value still wins over the grid.
    const narrowed = await loadConfig({
      dataset: "sports",
      args: ["--search", "paper", "--n_layers", "3"],
    });
    assert.deepEqual(narrowed.n_layers, [3]);
    assert.equal(expandGrid(narrowed).length, 10 * 5 * 5);
  },
);

Deno.test(
  "LightGCN and BPR train one setting, and --search mmrec MMRec's grid",
  async () => {
    const lightGcn = await loadConfig({ model: "LightGCN", dataset: "baby" });
    assert.equal(expandGrid(lightGcn).length, 1);
    assert.equal(lightGcn.knn_k, undefined);
    const lightGcnGrid = expandGrid(
      await loadConfig({
        model: "LightGCN",
        dataset: "baby",
        args: ["--search=mmrec"],
      }),
    );
    assert.equal(lightGcnGrid.length, 20);
    assert.deepEqual(
      [...new Set(lightGcnGrid.map((run) => run.n_layers))],
      [1, 2, 3, 4],
    );
    const bpr = expandGrid(
      await loadConfig({
        model: "BPR",
        dataset: "baby",
        args: ["--search", "mmrec"],
      }),
    );
    assert.deepEqual(
      bpr.map((run) => run.reg_weight),
      [2, 1, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5],
    );
    assert.ok(bpr.every((run) => run.embedding_size === 64));
  },
);

Deno.test(
  "every model and dataset file loads, and overall.yaml sets every key",
  async () => {
    for (const model of listModels()) {
      for (
        const dataset of ["baby", "sports", "elec", "microlens", "synthetic"]
      ) {
        const config = await loadConfig({ model, dataset });
        assert.equal(config.model, model);
      }
    }
    const config = await loadConfig({ model: "MSCA", dataset: "baby" });
    for (const key of Object.keys(CONFIG_KEYS)) {
      assert.ok(key in config, `MSCA on baby has no ${key}`);
    }
    assert.deepEqual(listModels(), ["BPR", "LightGCN", "MSCA"]);
  },
);

Deno.test(
  "grid expansion varies the first key slowest, as MMRec's product does",
  async () => {
    const config = await loadConfig({
      dataset: "baby",
      args: [
        "--hyper_parameters",
        "n_layers,seed,cl_weight",
        "--seed",
        "[1, 2]",
        "--n_layers",
        "1,3",
        "--cl_weight",
        "0.1,0.2",
      ],
    });
    assert.deepEqual(config.hyper_parameters, [
      "seed",
      "n_layers",
      "cl_weight",
    ]);
    const runs = expandGrid(config);
    assert.deepEqual(
      runs.map((run) => [run.seed, run.n_layers, run.cl_weight]),
      [
        [1, 1, 0.1],
        [1, 1, 0.2],
        [1, 3, 0.1],
        [1, 3, 0.2],
        [2, 1, 0.1],
        [2, 1, 0.2],
        [2, 3, 0.1],
        [2, 3, 0.2],
      ],
    );
    assert.ok(runs.every((run) => run.knn_k === 10));
  },
);

Deno.test(
  "a dataset folder without a config file loads with MMRec's defaults",
  async () => {
    const root = scratch({
      "data/mine/mine.inter": "userID\titemID\tx_label\n",
    });
    try {
      const configDir = join(root, "configs");
      const dataPath = join(root, "data");
      const config = await loadConfig({
        model: "Toy",
        dataset: "mine",
        configDir,
        args: ["--data_path", dataPath],
      });
      assert.equal(config.inter_file_name, "mine.inter");
      assert.equal(config.USER_ID_FIELD, "userID");
      assert.equal(config.vision_feature_file, "image_feat.npy");
      assert.equal(config.field_separator, "\t");
      assert.deepEqual(listDatasets(configDir, dataPath), ["mine"]);
    } finally {
      rmSync(root, { recursive: true });
    }
  },
);

Deno.test("an unknown model or dataset names the choices", async () => {
  await rejectsWith(
    loadConfig({ model: "msca" }),
    'unknown model "msca"',
    "choose one of: BPR, LightGCN, MSCA",
    'did you mean "MSCA"?',
  );
  const root = scratch({ "data/mine/mine.inter": "userID\titemID\tx_label\n" });
  try {
    await rejectsWith(
      loadConfig({
        model: "Toy",
        dataset: "mien",
        configDir: join(root, "configs"),
        args: ["--data_path", join(root, "data")],
      }),
      'unknown dataset "mien"',
      "choose one of: mine",
      'did you mean "mine"?',
    );
  } finally {
    rmSync(root, { recursive: true });
  }
  await rejectsWith(
    loadConfig({ dataset: "../etc" }),
    'dataset name "../etc"',
  );
});

Deno.test("an unknown key names the nearest known key", async () => {
  await rejectsWith(
    loadConfig({ dataset: "baby", args: ["--lerning_rate", "0.01"] }),
    'unknown config key "lerning_rate" on the command line',
    'did you mean "learning_rate"?',
  );
  await rejectsWith(
    loadConfig({ dataset: "baby", args: { knn: 3 } }),
    'unknown config key "knn"',
    'did you mean "knn_k"?',
  );
  const root = scratch({ "configs/dataset/toyset.yaml": "Epochs: 3\n" });
  try {
    const error = await rejectsWith(
      loadConfig({
        model: "Toy",
        dataset: "toyset",
        configDir: join(root, "configs"),
      }),
      'unknown config key "Epochs"',
      "toyset.yaml",
      'did you mean "epochs"?',
    );
    assert.equal(error.key, "Epochs");
  } finally {
    rmSync(root, { recursive: true });
  }
  await rejectsWith(
    loadConfig({ dataset: "baby", args: ["--gpu_id", "0"] }),
    '"gpu_id" on the command line is an MMRec key',
    "device",
  );
});

Deno.test(
  "a value of the wrong type names the key, the expected type and the value",
  async () => {
    await rejectsWith(
      loadConfig({ dataset: "baby", args: ["--n_layers", "two"] }),
      'n_layers on the command line: expected an integer ≥ 1, got "two"',
    );
    await rejectsWith(
      loadConfig({ dataset: "baby", args: ["--learning_rate=0"] }),
      "learning_rate on the command line: expected a number > 0, got 0",
    );
    await rejectsWith(
      loadConfig({ dataset: "baby", args: ["--freeze_features", "yes"] }),
      "freeze_features",
      "expected true or false",
    );
    await rejectsWith(
      loadConfig({ dataset: "baby", args: ["--device", "cuda"] }),
      "device on the command line: expected one of auto, cpu, webgpu, " +
        'got "cuda"',
    );
    await rejectsWith(
      loadConfig({ dataset: "baby", args: ["--topk", "10,x"] }),
      "topk on the command line: expected a non-empty list of integers " +
        '≥ 1, got [10,"x"]',
    );
    await rejectsWith(
      loadConfig({ dataset: "baby", args: ["--learning_rate_scheduler", "1"] }),
      "expected a list of 2 numbers > 0, got [1]",
    );
    await rejectsWith(
      loadConfig({ dataset: "baby", args: ["--metrics", "Recall,HR"] }),
      "expected a list of Recall, NDCG, Precision, MAP",
    );
    const root = scratch({ "configs/dataset/toyset.yaml": "epochs: many\n" });
    try {
      await rejectsWith(
        loadConfig({
          model: "Toy",
          dataset: "toyset",
          configDir: join(root, "configs"),
        }),
        /epochs in \S*toyset\.yaml: expected an integer ≥ 1, got "many"/,
      );
    } finally {
      rmSync(root, { recursive: true });
    }
  },
);

Deno.test(
  "a list for a key outside hyper_parameters says how to search it",
  async () => {
    await rejectsWith(
      loadConfig({ dataset: "baby", args: ["--knn_k", "5,10"] }),
      "knn_k on the command line: expected an integer ≥ 1, got [5,10]",
      "--hyper_parameters seed,knn_k",
    );
    await rejectsWith(
      loadConfig({
        dataset: "baby",
        args: ["--hyper_parameters", "seed,epochs"],
      }),
      'lists "epochs", which cannot be searched',
    );
    await rejectsWith(
      loadConfig({ dataset: "baby", args: ["--search", "grid"] }),
      'search "grid" on the command line is not a grid of MSCA',
      "choose one of: none, paper",
    );
  },
);

Deno.test(
  "a parameter of another model is an error naming the model's own",
  async () => {
    await rejectsWith(
      loadConfig({ model: "BPR", dataset: "baby", args: ["--knn_k", "5"] }),
      "--knn_k is not a parameter of BPR (its parameters: reg_weight)",
    );
  },
);

Deno.test(
  "valid_metric must name a metric and a K from the lists",
  async () => {
    const config = await loadConfig({
      dataset: "baby",
      args: ["--valid_metric", "ndcg@10", "--metrics", "ndcg,recall"],
    });
    assert.equal(config.valid_metric, "NDCG@10");
    assert.deepEqual(config.metrics, ["NDCG", "Recall"]);
    await rejectsWith(
      loadConfig({ dataset: "baby", args: ["--valid_metric", "Recall@30"] }),
      "K from topk (5, 10, 20, 50)",
      '"Recall@30"',
    );
  },
);

Deno.test("malformed YAML names the file and the line", async () => {
  const root = scratch({
    "configs/dataset/toyset.yaml": "epochs: 3\ntopk: [5, 10\nseed: 1\n",
    "configs/dataset/listy.yaml": "- epochs\n",
  });
  try {
    const configDir = join(root, "configs");
    const error = await rejectsWith(
      loadConfig({ model: "Toy", dataset: "toyset", configDir }),
      /toyset\.yaml:3:\d+: malformed YAML: /,
    );
    assert.ok(error.file?.endsWith("toyset.yaml"));
    await rejectsWith(
      loadConfig({ model: "Toy", dataset: "listy", configDir }),
      'listy.yaml: expected a mapping of "key: value" lines, got a list',
    );
  } finally {
    rmSync(root, { recursive: true });
  }
});

Deno.test(
  "formatConfig() prints one key=value line per key, MMRec style",
  async () => {
    const text = formatConfig(await loadConfig({ dataset: "baby" }));
    const lines = text.split("\n");
    assert.equal(lines[0], "model=MSCA");
    assert.equal(lines[1], "dataset=baby");
    assert.ok(lines.includes("seed=[999]"));
    assert.ok(lines.includes("topk=[5, 10, 20, 50]"));
    assert.ok(lines.includes("reg_weight=3e-7"));
    assert.ok(lines.includes('field_separator="\\t"'));
  },
);

Deno.test(
  "a run's config loads back unchanged, as a checkpoint stores it",
  async () => {
    const config = await loadConfig({
      dataset: "sports",
      args: [
        "--search",
        "paper",
        "--topk",
        "10,20",
        "--valid_metric",
        "NDCG@10",
      ],
    });
    const run = expandGrid(config)[123];
    const reloaded = expandGrid(
      await loadConfig({ args: JSON.parse(JSON.stringify(run)) }),
    );
    assert.equal(reloaded.length, 1);
    assert.deepEqual(reloaded[0], run);
  },
);
