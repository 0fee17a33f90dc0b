import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EMBEDDED_CONFIGS } from "../src/configs_embedded.ts";
import {
  ConfigError,
  listDatasets,
  listModels,
  loadConfig,
} from "../src/config.ts";

const CONFIG_DIR = fileURLToPath(new URL("../configs/", import.meta.url));

/** Every YAML file under `configs/`, keyed like the embedded table. */
function filesOnDisk(): Record<string, string> {
  const files: Record<string, string> = {
    overall: readFileSync(join(CONFIG_DIR, "overall.yaml"), "utf8"),
  };
  for (const folder of ["dataset", "model"]) {
    for (const name of readdirSync(join(CONFIG_DIR, folder))) {
      if (!name.endsWith(".yaml")) continue;
      files[`${folder}/${name.slice(0, -".yaml".length)}`] = readFileSync(
        join(CONFIG_DIR, folder, name),
        "utf8",
      );
    }
  }
  return files;
}

Deno.test("the embedded configs are exactly the YAML files of configs/", () => {
  const onDisk = filesOnDisk();
  assert.deepEqual(
    Object.keys(EMBEDDED_CONFIGS).sort(),
    Object.keys(onDisk).sort(),
  );
  for (const [name, text] of Object.entries(onDisk)) {
    assert.equal(EMBEDDED_CONFIGS[name], text, `${name}.yaml differs`);
  }
});

Deno.test(
  "loadConfig() without configDir matches configDir pointing at configs/",
  async () => {
    assert.deepEqual(listModels(), listModels(CONFIG_DIR));
    assert.deepEqual(
      listDatasets(undefined, "no-such-data/"),
      listDatasets(CONFIG_DIR, "no-such-data/"),
    );
    for (const model of listModels()) {
      for (const dataset of listDatasets(undefined, "no-such-data/")) {
        assert.deepEqual(
          await loadConfig({ model, dataset }),
          await loadConfig({ model, dataset, configDir: CONFIG_DIR }),
          `${model} on ${dataset}`,
        );
      }
    }
  },
);

Deno.test(
  "loadConfig() needs no read permission for the shipped configs",
  async () => {
    const folder = Deno.makeTempDirSync();
    const script = join(folder, "load.ts");
    const configModule = new URL("../src/config.ts", import.meta.url).href;
    Deno.writeTextFileSync(
      script,
      `import { loadConfig } from "${configModule}";\n` +
        'const config = await loadConfig({ model: "MSCA", dataset: "sports" });\n' +
        "console.log(config.model, config.dataset, config.n_layers);\n",
    );
    try {
      // yaml (npm) reads process.env, hence --allow-env; nothing else.
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-prompt",
          "--allow-env",
          "--config",
          fileURLToPath(new URL("../deno.json", import.meta.url)),
          script,
        ],
        cwd: folder,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      assert.equal(new TextDecoder().decode(output.stdout), "MSCA sports 3\n");
    } finally {
      Deno.removeSync(folder, { recursive: true });
    }
  },
);

Deno.test(
  "an unknown model with embedded configs still names the choices",
  async () => {
    await assert.rejects(
      loadConfig({ model: "LightGNC" }),
      (error) =>
        error instanceof ConfigError &&
        error.message.includes("choose one of: BPR, LightGCN, MSCA") &&
        error.message.includes('did you mean "LightGCN"?'),
    );
  },
);
