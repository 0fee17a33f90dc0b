import assert from "node:assert/strict";
import { formatGoldenTable, runGoldenCheck } from "../src/golden.ts";
import { cpuBackend } from "../src/engine/cpu.ts";
import type { Backend } from "../src/engine/backend.ts";

const FIXTURES = {
  LightGCN: "tests/fixtures/lightgcn-tiny",
  BPR: "tests/fixtures/bpr-tiny",
};

/** Quantities each fixture must compare, so a skipped file cannot pass. */
const REQUIRED: Record<string, string[]> = {
  LightGCN: [
    "graph.norm_adj.structure",
    "graph.norm_adj.values",
    "step0.final_user",
    "step0.final_item",
    "step0.grad.embedding_dict.user_emb",
    "step0.grad.embedding_dict.item_emb",
    "loss.loss",
    "after.embedding_dict.user_emb",
    "after.embedding_dict.item_emb",
    "metrics.valid",
    "metrics.test",
  ],
  BPR: [
    "step0.final_user",
    "step0.final_item",
    "step0.grad.user_embedding.weight",
    "step0.grad.item_embedding.weight",
    "loss.loss",
    "after.user_embedding.weight",
    "after.item_embedding.weight",
    "metrics.valid",
    "metrics.test",
  ],
};

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);

async function checkFixture(model: keyof typeof FIXTURES, backend: Backend) {
  const report = await runGoldenCheck(FIXTURES[model], { backend });
  const failures = formatGoldenTable(report).filter((l) => l.includes("FAIL"));
  assert.deepEqual(failures, []);
  assert.equal(report.model, model);
  assert.deepEqual(
    report.rows.map((row) => row.quantity).sort(),
    [...REQUIRED[model]].sort(),
  );
  assert.ok(report.passed);
}

for (const model of ["LightGCN", "BPR"] as const) {
  Deno.test(`${model} matches the reference's golden fixture on the CPU`, async () => {
    await checkFixture(model, cpuBackend);
  });

  Deno.test({
    name: `${model} matches the reference's golden fixture on WebGPU`,
    ignore: !adapter,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const { createWebGpuBackend } = await import("../src/engine/webgpu.ts");
      const backend = await createWebGpuBackend();
      try {
        await checkFixture(model, backend);
      } finally {
        backend.destroy();
      }
    },
  });
}

Deno.test("LightGCN golden check fails when the reference loss is changed", async () => {
  const folder = await Deno.makeTempDir({ prefix: "msca-baselines-" });
  try {
    await copyFolder(FIXTURES.LightGCN, folder);
    const meta = JSON.parse(await Deno.readTextFile(`${folder}/meta.json`));
    meta.steps[2].loss *= 1 + 1e-4;
    await Deno.writeTextFile(`${folder}/meta.json`, JSON.stringify(meta));
    const report = await runGoldenCheck(folder, { backend: cpuBackend });
    assert.deepEqual(
      report.rows.filter((row) => !row.passed).map((row) => row.quantity),
      ["loss.loss"],
    );
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
