import assert from "node:assert/strict";
import { parseCommandLine } from "../src/cli/args.ts";
import { ConfigError, loadConfig } from "../src/config.ts";

function throwsConfigError(run: () => unknown, text: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${error}`);
    assert.ok(
      error.message.includes(text),
      `"${error.message}" lacks "${text}"`,
    );
    return true;
  });
}

Deno.test(
  "parseCommandLine() reads -m/-d and --key value and --key=value",
  () => {
    const line = parseCommandLine([
      "-m",
      "LightGCN",
      "--dataset=sports",
      "--n_layers",
      "3",
      "--reg_weight=1e-4",
      "--learning_rate",
      "-1e-3",
    ]);
    assert.equal(line.model, "LightGCN");
    assert.equal(line.dataset, "sports");
    assert.deepEqual(line.values, {
      n_layers: "3",
      reg_weight: "1e-4",
      learning_rate: "-1e-3",
    });
    assert.deepEqual(line.positionals, []);
  },
);

Deno.test("parseCommandLine() takes booleans with or without a value", () => {
  const line = parseCommandLine([
    "--freeze_features",
    "--save_recommended_topk",
    "false",
    "--filter_out_cod_start_users=True",
  ]);
  assert.deepEqual(line.values, {
    freeze_features: "true",
    save_recommended_topk: "false",
    filter_out_cod_start_users: "True",
  });
});

Deno.test(
  "parseCommandLine() separates an entry point's own flags and words",
  () => {
    const line = parseCommandLine(
      ["-c", "saved/run/model.safetensors", "--json", "fixture", "--", "-x"],
      {
        flags: {
          checkpoint: { type: "string", short: "c" },
          json: { type: "boolean" },
        },
        allowPositionals: true,
      },
    );
    assert.deepEqual(line.flags, {
      checkpoint: "saved/run/model.safetensors",
      json: true,
    });
    assert.deepEqual(line.positionals, ["fixture", "-x"]);
    assert.deepEqual(line.values, {});
    const golden = parseCommandLine(
      ["--freeze_features", "fixture", "--save_recommended_topk", "False"],
      { allowPositionals: true },
    );
    assert.deepEqual(golden.positionals, ["fixture"]);
    assert.deepEqual(golden.values, {
      freeze_features: "true",
      save_recommended_topk: "False",
    });
  },
);

Deno.test(
  "parseCommandLine() rejects unknown keys, missing values and stray words",
  () => {
    throwsConfigError(
      () => parseCommandLine(["--embeding_size", "32"]),
      'unknown config key "embeding_size" on the command line; did you mean ' +
        '"embedding_size"?',
    );
    throwsConfigError(
      () =>
        parseCommandLine(["--jsn"], { flags: { json: { type: "boolean" } } }),
      'did you mean "json"?',
    );
    throwsConfigError(
      () => parseCommandLine(["--knn_k"]),
      "--knn_k needs a value",
    );
    throwsConfigError(
      () => parseCommandLine(["-m", "--knn_k", "3"]),
      "--model needs a value",
    );
    throwsConfigError(() => parseCommandLine(["-x"]), "unknown option -x");
    throwsConfigError(
      () => parseCommandLine(["baby"]),
      'unexpected argument "baby"',
    );
  },
);

Deno.test(
  "command-line lists read as [a,b] or a,b and are typed by the schema",
  async () => {
    for (const topk of ["[10, 20]", "10,20", "[10,20]"]) {
      const config = await loadConfig({
        dataset: "baby",
        args: ["--topk", topk],
      });
      assert.deepEqual(config.topk, [10, 20]);
    }
    const single = await loadConfig({ dataset: "baby", args: ["--topk=20"] });
    assert.deepEqual(single.topk, [20]);
    const typed = await loadConfig({
      dataset: "baby",
      args: [
        "--metrics",
        "[Recall, NDCG]",
        "--freeze_features",
        "--reg_weight",
        "1e-5",
        "--data_path",
        "my data #1/",
        "--learning_rate_scheduler",
        "[0.96, 50]",
      ],
    });
    assert.deepEqual(typed.metrics, ["Recall", "NDCG"]);
    assert.equal(typed.freeze_features, true);
    assert.equal(typed.reg_weight, 1e-5);
    assert.equal(typed.data_path, "my data #1/");
    assert.deepEqual(typed.learning_rate_scheduler, [0.96, 50]);
    const mapped = await loadConfig({
      dataset: "baby",
      args: { topk: [5, 20], knn_k: "7", model: "MSCA" },
    });
    assert.deepEqual(mapped.topk, [5, 20]);
    assert.equal(mapped.knn_k, 7);
  },
);

Deno.test(
  "loadConfig() reads -m and -d from the words it is given",
  async () => {
    const config = await loadConfig({ args: ["-m", "BPR", "-d", "elec"] });
    assert.equal(config.model, "BPR");
    assert.equal(config.dataset, "elec");
    await assert.rejects(
      loadConfig({ model: "MSCA", args: ["-m", "BPR"] }),
      /two models given: "MSCA" and "BPR"/,
    );
    await assert.rejects(
      loadConfig({ args: ["--topk", "[5, 10"] }),
      /--topk: cannot read "\[5, 10" as a list/,
    );
  },
);
