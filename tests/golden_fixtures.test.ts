import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { formatGoldenTable, runGoldenCheck } from "../src/golden.ts";
import { cpuBackend } from "../src/engine/cpu.ts";
import { modelNames } from "../src/models/registry.ts";
import { readMeta } from "../src/golden.ts";

const FIXTURES = [
  "tests/fixtures/msca-tiny",
  "tests/fixtures/lightgcn-tiny",
  "tests/fixtures/bpr-tiny",
].filter((folder) => existsSync(`${folder}/meta.json`));

/** Fixtures whose model is registered (LightGCN and BPR land separately). */
const RUNNABLE = FIXTURES.filter((folder) =>
  modelNames().includes(readMeta(folder).model ?? "MSCA")
);

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);

function failures(report: Awaited<ReturnType<typeof runGoldenCheck>>) {
  return formatGoldenTable(report).filter((line) => line.includes("FAIL"));
}

for (const fixture of RUNNABLE) {
  Deno.test(`golden check passes on ${fixture} on the CPU`, async () => {
    const report = await runGoldenCheck(fixture, { backend: cpuBackend });
    assert.deepEqual(failures(report), []);
    assert.ok(report.passed);
    assert.ok(report.rows.some((row) => row.quantity.startsWith("after.")));
    assert.ok(report.rows.some((row) => row.quantity === "metrics.test"));
  });

  Deno.test({
    name: `golden check passes on ${fixture} on WebGPU`,
    ignore: !adapter,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const { createWebGpuBackend } = await import("../src/engine/webgpu.ts");
      const backend = await createWebGpuBackend();
      try {
        const report = await runGoldenCheck(fixture, { backend });
        assert.deepEqual(failures(report), []);
        assert.ok(report.passed);
      } finally {
        backend.destroy();
      }
    },
  });
}

Deno.test("golden check fails when a reference value is changed", async () => {
  const folder = await Deno.makeTempDir();
  try {
    await copyFolder("tests/fixtures/msca-tiny", folder);
    const meta = JSON.parse(await Deno.readTextFile(`${folder}/meta.json`));
    meta.steps[1].C_i *= 1 + 1e-4;
    meta.test["recall@20"] += 0.0001;
    await Deno.writeTextFile(`${folder}/meta.json`, JSON.stringify(meta));
    const report = await runGoldenCheck(folder, { backend: cpuBackend });
    assert.equal(report.passed, false);
    const failed = report.rows.filter((row) => !row.passed);
    assert.deepEqual(
      failed.map((row) => row.quantity).sort(),
      ["loss.C_i", "metrics.test"],
    );
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("golden check skips quantities whose expected files are absent", async () => {
  const folder = await Deno.makeTempDir();
  try {
    await copyFolder("tests/fixtures/msca-tiny", folder);
    for (const entry of Deno.readDirSync(`${folder}/expected`)) {
      if (/^(graph\.|after\.|step0\.grad\.)/.test(entry.name)) {
        await Deno.remove(`${folder}/expected/${entry.name}`);
      }
    }
    const report = await runGoldenCheck(folder, { backend: cpuBackend });
    assert.ok(report.passed);
    assert.ok(
      report.rows.every((row) =>
        !/^(graph|after|step0\.grad)\./.test(
          row.quantity,
        )
      ),
    );
    assert.ok(report.rows.some((row) => row.quantity === "step0.collab"));
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

async function copyFolder(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const source = `${from}/${entry.name}`;
    const target = `${to}/${entry.name}`;
    if (entry.isDirectory) await copyFolder(source, target);
    else await Deno.copyFile(source, target);
  }
}
