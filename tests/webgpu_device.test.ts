/**
 * Device setup and the `--device cpu|webgpu|auto` choice.
 */

import assert from "node:assert/strict";
import { cpuBackend } from "../src/engine/cpu.ts";
import { WebGpuBackend } from "../src/engine/webgpu.ts";
import { selectBackend } from "../src/engine/webgpu_choice.ts";
import {
  requestWebGpuDevice,
  WebGpuUnavailableError,
} from "../src/engine/webgpu_device.ts";

const adapter = await navigator.gpu?.requestAdapter();
/** A `navigator.gpu` stand-in for a machine with no adapter. */
const noAdapter = { requestAdapter: () => Promise.resolve(null) };

Deno.test("selectBackend() gives the CPU backend for device cpu", async () => {
  const selection = await selectBackend("cpu");
  assert.equal(selection.backend, cpuBackend);
  assert.equal(selection.device, "cpu");
});

Deno.test("selectBackend() rejects an unknown device by name", async () => {
  await assert.rejects(
    () => selectBackend("cuda"),
    (error: Error) =>
      error instanceof RangeError &&
      error.message === 'unknown device "cuda"; expected one of cpu, ' +
          "webgpu, auto",
  );
});

Deno.test("device webgpu with no adapter is an error, not cpu", async () => {
  await assert.rejects(
    () => selectBackend("webgpu", { gpu: noAdapter }),
    (error: Error) =>
      error instanceof WebGpuUnavailableError &&
      /no WebGPU adapter found/.test(error.message) &&
      /--device cpu/.test(error.message),
  );
});

Deno.test("device auto with no adapter picks cpu and says why", async () => {
  const selection = await selectBackend("auto", { gpu: noAdapter });
  assert.equal(selection.backend, cpuBackend);
  assert.match(selection.reason, /picked cpu, no WebGPU adapter found/);
});

Deno.test({
  name: "device auto times both backends and reports the figures",
  ignore: !adapter,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const selection = await selectBackend("auto", {
      probeShape: [64, 256, 64],
      repeats: 2,
    });
    assert.match(
      selection.reason,
      new RegExp(
        "^device auto: picked (cpu|webgpu), webgpu \\(.+\\) [\\d.]+ ms, " +
          "cpu [\\d.]+ ms per \\[64×256\\]·\\[256×64\\] matmul$",
      ),
    );
    assert.equal(
      selection.backend instanceof WebGpuBackend,
      selection.device === "webgpu",
    );
    if (selection.backend instanceof WebGpuBackend) selection.backend.destroy();
  },
});

Deno.test({
  name: "the device requests the adapter's storage binding and buffer limits",
  ignore: !adapter,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const gpu = await requestWebGpuDevice();
    assert.equal(
      gpu.maxBindingBytes,
      adapter!.limits.maxStorageBufferBindingSize,
    );
    assert.equal(gpu.maxBufferBytes, adapter!.limits.maxBufferSize);
    assert.equal(
      gpu.device.limits.maxStorageBuffersPerShaderStage,
      adapter!.limits.maxStorageBuffersPerShaderStage,
    );
    assert.throws(
      () => gpu.allocate(gpu.maxBufferBytes + 1),
      /exceeds this WebGPU device's largest buffer/,
    );
    // Freed buffers come back from the pool; dispatches batch until read.
    const buffer = gpu.allocate(1000);
    gpu.release(buffer);
    assert.equal(gpu.allocate(1000), buffer);
    gpu.destroy();
  },
});
