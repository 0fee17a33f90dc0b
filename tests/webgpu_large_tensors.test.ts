/**
 * A whole MSCA training step on the WebGPU backend when a feature table is
 * larger than one storage binding (the Electronics image table, 1.03 GB,
 * against llvmpipe's 128 MiB). The binding limit is lowered to 64 KiB so
 * that a small synthetic image table (150 items × 200 values, 120 KB), its
 * gradient and its Adam moments exceed it while every other tensor stays
 * below it; two steps (loss, backward, Adam) must then match the CPU
 * backend. Reported as ignored where the machine has no WebGPU adapter.
 */

import assert from "node:assert/strict";
import { Adam } from "../src/engine/adam.ts";
import type { Backend } from "../src/engine/backend.ts";
import { cpuBackend } from "../src/engine/cpu.ts";
import type { Parameter } from "../src/engine/tensor.ts";
import { createWebGpuBackend } from "../src/engine/webgpu.ts";
import { createDataset } from "../src/data/dataset.ts";
import { type Batch, BatchSampler } from "../src/data/sampler.ts";
import { generateSynthetic } from "../src/data/synth.ts";
import { buildGraphs } from "../src/graph/graphs.ts";
import { createModel } from "../src/models/registry.ts";
import type { Recommender } from "../src/models/model.ts";
import { Random } from "../src/random.ts";

const adapter = await navigator.gpu?.requestAdapter();

/** The lowered binding limit; 64 rows of the image table fit in it. */
const bindingLimitBytes = 64 * 1024;
/** Loss parts: relative error (the golden fixtures' tolerance). */
const lossTolerance = 1e-5;
/** Arrays: error per entry relative to the CPU array's largest value. */
const arrayTolerance = 1e-4;
const imageName = "image_embedding.weight";

const synthetic = generateSynthetic({
  name: "large-tensors",
  userCount: 60,
  itemCount: 150,
  interactionCount: 900,
  imageDim: 200,
  textDim: 40,
  seed: 404,
});
const dataset = createDataset({
  name: "large-tensors",
  users: synthetic.users,
  items: synthetic.items,
  labels: synthetic.labels,
  features: { image: synthetic.image, text: synthetic.text },
});
const hyper = {
  embedding_size: 16,
  n_layers: 2,
  fusion_coeff: 0.4,
  tau: 0.2,
  cl_weight: 0.05,
  reg_weight: 1e-4,
};

async function mscaOn(
  backend: Backend,
  initialValues?: Map<string, Float32Array>,
): Promise<Recommender> {
  const graphs = await buildGraphs(dataset, {
    knn_k: 10,
    cacheDir: null,
    modelKind: "MSCA",
  });
  return createModel("MSCA", {
    dataset,
    graphs,
    config: hyper,
    backend,
    random: new Random(7),
    initialValues,
  });
}

/** One step as `trainStep` runs it, returning every loss part. */
async function step(
  model: Recommender,
  optimizer: Adam,
  batch: Batch,
): Promise<Record<string, number>> {
  const output = model.loss(batch);
  const parts = Object.entries(output.parts);
  for (const [, part] of parts) part.retain();
  optimizer.zeroGrad();
  output.loss.backward();
  output.release();
  optimizer.step();
  const values: Record<string, number> = {};
  for (const [name, part] of parts) {
    values[name] = await part.item();
    part.free();
  }
  return values;
}

function assertArrayClose(
  actual: Float32Array,
  expected: Float32Array,
  label: string,
): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  let scale = 0;
  for (const value of expected) scale = Math.max(scale, Math.abs(value));
  const bound = arrayTolerance * scale;
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    assert.ok(
      error <= bound,
      `${label}[${i}]: webgpu ${actual[i]} vs cpu ${expected[i]} (error ` +
        `${error}, bound ${bound})`,
    );
  }
}

Deno.test({
  name: "MSCA trains on WebGPU like on the CPU when the image table exceeds " +
    "one binding",
  ignore: !adapter,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await createWebGpuBackend({ bindingLimitBytes });
    const onCpu = await mscaOn(cpuBackend);
    const initial = new Map<string, Float32Array>();
    for (const [name, tensor] of onCpu.stateDict()) {
      initial.set(name, await tensor.toArray());
    }
    const onGpu = await mscaOn(gpu, initial);
    try {
      // Without this the split paths would not run and the test would
      // prove nothing.
      assert.equal(gpu.gpu.maxBindingBytes, bindingLimitBytes);
      const imageBytes = initial.get(imageName)!.length * 4;
      assert.ok(
        imageBytes > 1.5 * bindingLimitBytes,
        `the image table (${imageBytes} bytes) must exceed one binding ` +
          `(${bindingLimitBytes} bytes)`,
      );
      for (const [name, values] of initial) {
        if (name === imageName) continue;
        assert.ok(
          values.length * 4 <= bindingLimitBytes,
          `${name} (${values.length * 4} bytes) must fit one binding`,
        );
      }

      const optimizers = [onCpu, onGpu].map((model) =>
        new Adam(model.trainableParameters(), { learningRate: 1e-3 })
      );
      const sampler = new BatchSampler(dataset, 64, new Random(5));
      const batches = [...sampler.epoch()].slice(0, 2);
      assert.equal(batches.length, 2);
      for (const [index, batch] of batches.entries()) {
        const cpuParts = await step(onCpu, optimizers[0], batch);
        const gpuParts = await step(onGpu, optimizers[1], batch);
        assert.deepEqual(
          Object.keys(gpuParts).sort(),
          Object.keys(cpuParts).sort(),
        );
        for (const [part, expected] of Object.entries(cpuParts)) {
          const actual = gpuParts[part];
          const error = Math.abs(actual - expected) /
            Math.max(Math.abs(expected), Number.MIN_VALUE);
          assert.ok(
            error <= lossTolerance || actual === expected,
            `step ${index} loss part ${part}: webgpu ${actual} vs cpu ` +
              `${expected} (relative error ${error})`,
          );
        }
      }

      // The last step's gradients (split matmul backward, accumulation)
      // and the parameters after both updates (split Adam).
      const gpuState = onGpu.stateDict();
      for (const [name, tensor] of onCpu.stateDict()) {
        const cpuGrad = (tensor as Parameter).grad;
        const gpuGrad = (gpuState.get(name) as Parameter).grad;
        assert.ok(cpuGrad !== null && gpuGrad !== null, `${name}: gradient`);
        assertArrayClose(
          await gpuGrad.toArray(),
          await cpuGrad.toArray(),
          `grad ${name}`,
        );
        assertArrayClose(
          await gpuState.get(name)!.toArray(),
          await tensor.toArray(),
          `${name} after two steps`,
        );
      }

      const [cpuAdam, gpuAdam] = await Promise.all(
        optimizers.map((optimizer) => optimizer.state()),
      );
      const cpuMoments = cpuAdam.parameters[imageName];
      const gpuMoments = gpuAdam.parameters[imageName];
      assert.equal(gpuMoments.step, 2);
      assertArrayClose(
        gpuMoments.firstMoment,
        cpuMoments.firstMoment,
        `${imageName} first moment`,
      );
      assertArrayClose(
        gpuMoments.secondMoment,
        cpuMoments.secondMoment,
        `${imageName} second moment`,
      );

      // Every 64-row window of the image table was updated, by more than
      // the tolerance, so a window skipped on the GPU could not pass.
      const before = initial.get(imageName)!;
      const after = await gpuState.get(imageName)!.toArray();
      let scale = 0;
      for (const value of before) scale = Math.max(scale, Math.abs(value));
      const cols = dataset.features.image!.cols;
      for (let row = 0; row < dataset.itemCount; row += 64) {
        let moved = 0;
        const end = Math.min(dataset.itemCount, row + 64) * cols;
        for (let i = row * cols; i < end; i++) {
          moved = Math.max(moved, Math.abs(after[i] - before[i]));
        }
        assert.ok(
          moved > arrayTolerance * scale,
          `image rows from ${row}: moved at most ${moved}`,
        );
      }
      for (const optimizer of optimizers) {
        optimizer.zeroGrad();
        optimizer.free();
      }
    } finally {
      onCpu.dispose();
      onGpu.dispose();
      gpu.destroy();
    }
  },
});
