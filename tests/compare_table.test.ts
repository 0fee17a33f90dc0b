import assert from "node:assert/strict";
import { expandGrid, loadConfigSync, type RunConfig } from "../src/config.ts";
import { loadDataset } from "../src/data/dataset.ts";
import { evaluate, mostPopular } from "../src/evaluation.ts";
import {
  COMPARE_METRICS,
  compareJson,
  compareMarkdown,
  compareModels,
  type CompareRun,
  MOST_POPULAR,
  summarise,
} from "../src/compare.ts";

const DATA = "tests/fixtures/msca-tiny/data";
const dataset = loadDataset({ data_path: DATA, dataset: "tiny" });

function runs(
  model: string,
  seeds: string,
  extra: Record<string, string> = {},
): RunConfig[] {
  return expandGrid(loadConfigSync({
    model,
    dataset: "tiny",
    args: {
      data_path: DATA,
      graph_cache_dir: "",
      epochs: "2",
      train_batch_size: "64",
      embedding_size: "8",
      seed: seeds,
      ...extra,
    },
  }));
}

function run(seed: number, recall: number, seconds: number): CompareRun {
  return {
    model: "M",
    seed,
    best_epoch: seed,
    epochs_run: 3,
    stopped_by: seed === 1 ? "budget" : "early stopping",
    train_seconds_per_epoch: seconds,
    eval_seconds_per_epoch: 0,
    seconds: 1,
    best_valid: {},
    test_at_best_valid: { "recall@20": recall },
  };
}

Deno.test("summarise() gives the mean and the sample sd over seeds", () => {
  const row = summarise("M", [run(1, 0.1, 1), run(2, 0.2, 2), run(3, 0.3, 3)]);
  assert.ok(Math.abs(row.mean["recall@20"] - 0.2) < 1e-12);
  assert.ok(Math.abs(row.sd!["recall@20"] - 0.1) < 1e-12);
  assert.equal(row.train_seconds_per_epoch, 2);
  assert.equal(row.best_epoch, 2);
  assert.deepEqual(row.stopped_by, { budget: 1, "early stopping": 2 });
  assert.equal(summarise("M", [run(1, 0.1, 1)]).sd, null);
});

Deno.test("compareModels() trains every model and seed on one split and adds the most-popular floor", async () => {
  const configs = [...runs("LightGCN", "1,2"), ...runs("BPR", "1,2")];
  const seen: string[] = [];
  const result = await compareModels(configs, dataset, {
    onRun: (r) => seen.push(`${r.model} ${r.seed}`),
  });

  assert.deepEqual(seen, ["LightGCN 1", "LightGCN 2", "BPR 1", "BPR 2"]);
  assert.deepEqual(result.seeds, [1, 2]);
  assert.deepEqual(result.rows.map((r) => r.name), [
    "LightGCN",
    "BPR",
    MOST_POPULAR,
  ]);
  for (const r of result.runs) {
    assert.equal(r.epochs_run, 2);
    assert.equal(r.stopped_by, "epochs");
    assert.ok(r.best_epoch === 0 || r.best_epoch === 1);
  }
  const lightGcn = result.runs.filter((r) => r.model === "LightGCN");
  assert.notDeepEqual(
    lightGcn[0].test_at_best_valid,
    lightGcn[1].test_at_best_valid,
    "different seeds train different models",
  );
  const mean = (lightGcn[0].test_at_best_valid["ndcg@20"] +
    lightGcn[1].test_at_best_valid["ndcg@20"]) / 2;
  assert.ok(Math.abs(result.rows[0].mean["ndcg@20"] - mean) < 1e-12);

  const floor = await evaluate(dataset, "test", mostPopular(dataset), {
    topk: configs[0].topk,
  });
  assert.deepEqual(result.rows[2].mean, floor.metrics);

  const markdown = compareMarkdown(result);
  assert.ok(markdown[0].startsWith("# Model comparison on tiny"));
  const header = markdown.find((line) => line.startsWith("| model"))!;
  for (const title of ["Recall@10", "Recall@20", "NDCG@10", "NDCG@20"]) {
    assert.ok(header.includes(title), title);
  }
  const bprLine = markdown.find((line) => line.startsWith("| BPR "))!;
  assert.match(bprLine, /\d\.\d{4} ± \d\.\d{4}/);
  const parsed = JSON.parse(compareJson(result));
  assert.equal(parsed.runs.length, 4);
  assert.deepEqual(Object.keys(parsed.configs), ["LightGCN", "BPR"]);
});

Deno.test("compareModels() stops a run at its budget and marks it", async () => {
  const result = await compareModels(
    runs("BPR", "5", { epochs: "3" }),
    dataset,
    {
      budgetSeconds: 1e-9,
    },
  );
  assert.equal(result.runs[0].epochs_run, 1);
  assert.equal(result.runs[0].stopped_by, "budget");
  assert.equal(result.runs[0].best_epoch, 0);
  assert.ok(compareMarkdown(result).some((line) => line.includes("budget")));
});

Deno.test("compareModels() refuses settings that cannot fill the table", async () => {
  await assert.rejects(
    compareModels(runs("BPR", "1", { topk: "5,20" }), dataset),
    new RegExp(`lack ${COMPARE_METRICS[0]}, ${COMPARE_METRICS[2]}`),
  );
  await assert.rejects(
    compareModels([...runs("BPR", "1"), ...runs("BPR", "1")], dataset),
    /BPR seed 1 appears twice/,
  );
  await assert.rejects(compareModels([], dataset), /at least one/);
});

async function cli(args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      "src/cli/compare.ts",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

Deno.test("deno task compare prints the table and saves it as Markdown and JSON in a new run folder", async () => {
  const folder = await Deno.makeTempDir({ prefix: "msca-compare-" });
  try {
    const common = [
      "-d",
      "tiny",
      "--data_path",
      DATA,
      "--graph_cache_dir=",
      "--checkpoint_dir",
      folder,
      "--epochs",
      "2",
      "--embedding_size",
      "8",
    ];
    const result = await cli([
      ...common,
      "-m",
      "LightGCN,BPR",
      "--seeds",
      "1,2",
      "--n_layers",
      "1",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /Note: --n_layers applies to LightGCN only/);
    assert.match(result.stdout, /\| LightGCN +\| +\d\.\d{4} ± /);
    assert.match(result.stdout, /\| MostPop +\| +\d\.\d{4} +\|/);

    const runs = [...Deno.readDirSync(folder)].map((entry) => entry.name);
    assert.equal(runs.length, 1);
    assert.match(runs[0], /^compare-tiny-\d{8}T\d{6}$/);
    const saved = JSON.parse(
      await Deno.readTextFile(`${folder}/${runs[0]}/compare.json`),
    );
    assert.deepEqual(saved.seeds, [1, 2]);
    assert.equal(saved.configs.LightGCN.n_layers, 1);
    const markdown = await Deno.readTextFile(`${folder}/${runs[0]}/compare.md`);
    assert.ok(markdown.includes("| BPR "));

    const again = await cli([...common, "-m", "BPR", "--budget", "0"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal([...Deno.readDirSync(folder)].length, 2);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("deno task compare rejects bad options with one error line", async () => {
  const cases: [string[], RegExp][] = [
    [["-m", "BPR,BPR"], /names BPR twice/],
    [["-m", "BPR", "--n_layers", "2"], /--n_layers applies to none of BPR/],
    [["-m", "Nope"], /unknown model "Nope"/],
    [["--seeds", "1,x"], /--seeds "1,x": expected comma-separated integers/],
    [["--budget", "-3"], /--budget "-3": expected a number of seconds/],
    [["-m", "BPR", "--search", "mmrec"], /compare trains one setting/],
  ];
  for (const [args, message] of cases) {
    const result = await cli(["-d", "tiny", "--data_path", DATA, ...args]);
    assert.equal(result.code, 1, args.join(" "));
    assert.match(result.stderr, message);
    assert.equal(result.stderr.trim().split("\n").length, 1);
  }
});
