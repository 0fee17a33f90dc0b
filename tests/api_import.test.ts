import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));

/**
 * Runs a script that imports both entry points under no permissions at all
 * (`--no-prompt`, no `--allow-*`), with `navigator.gpu` replaced by a trap
 * that records any access, and returns what the subprocess did.
 */
async function importWithoutPermissions(): Promise<
  { code: number; stdout: string; stderr: string }
> {
  const folder = await Deno.makeTempDir();
  try {
    const script = join(folder, "import_entry_points.ts");
    const modUrl = new URL("../mod.ts", import.meta.url).href;
    const engineUrl = new URL("../engine.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `
let gpuTouched = false;
Object.defineProperty(Navigator.prototype, "gpu", {
  configurable: true,
  get() {
    gpuTouched = true;
    return undefined;
  },
});
const msca = await import(${JSON.stringify(modUrl)});
const engine = await import(${JSON.stringify(engineUrl)});
const expected = [
  "loadConfig", "loadDataset", "generateSynthetic", "writeSynthetic",
  "createModel", "train", "evaluate", "saveModel", "loadModel",
  "loadCheckpoint", "recommend", "openBackend",
];
const missing = expected.filter((name) => typeof msca[name] !== "function");
if (missing.length > 0) throw new Error("mod.ts lacks " + missing.join());
const engineExpected = [
  "tensor", "selectBackend", "createWebGpuBackend", "WebGpuUnavailableError",
];
const engineMissing = engineExpected.filter(
  (name) => typeof engine[name] !== "function",
);
if (engineMissing.length > 0) {
  throw new Error("engine.ts lacks " + engineMissing.join());
}
if (msca.WebGpuUnavailableError !== engine.WebGpuUnavailableError) {
  throw new Error("mod.ts lacks engine.ts's WebGpuUnavailableError");
}
if (gpuTouched) throw new Error("navigator.gpu was read at import");
`,
    );
    const command = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--config",
        join(root, "deno.json"),
        script,
      ],
      cwd: folder,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    });
    const output = await command.output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
}

Deno.test(
  "importing mod.ts and engine.ts needs no permission, prints nothing and leaves the GPU alone",
  async () => {
    const { code, stdout, stderr } = await importWithoutPermissions();
    assert.equal(stderr, "", `stderr of the import:\n${stderr}`);
    assert.equal(stdout, "");
    assert.equal(code, 0);
  },
);
