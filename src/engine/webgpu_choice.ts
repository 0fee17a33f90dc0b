/**
 * The `--device cpu|webgpu|auto` choice (config key `device`): which
 * backend a run trains on, and why.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { cpuBackend } from "./cpu.ts";
import { createWebGpuBackend, type WebGpuBackendOptions } from "./webgpu.ts";
import { WebGpuUnavailableError } from "./webgpu_device.ts";

/**
 * The values `--device` (config key `device`) accepts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEVICE_CHOICES } from "./webgpu_choice.ts";
 *
 * assert.deepEqual(DEVICE_CHOICES, ["cpu", "webgpu", "auto"]);
 * ```
 */
export const DEVICE_CHOICES = ["cpu", "webgpu", "auto"] as const;

/** One of {@linkcode DEVICE_CHOICES}. */
export type DeviceChoice = typeof DEVICE_CHOICES[number];

/** What {@linkcode selectBackend} picked. */
export interface DeviceSelection {
  /** The backend to create tensors on. */
  backend: Backend;
  /** `"cpu"` or `"webgpu"`. */
  device: "cpu" | "webgpu";
  /** One line saying what was picked and why, for the run's log. */
  reason: string;
}

/** Options of {@linkcode selectBackend}. */
export interface SelectBackendOptions extends WebGpuBackendOptions {
  /**
   * `[m, k, n]` of the matmul `auto` times on both backends; default
   * `[512, 1024, 64]`, a slice of MSCA's feature projection.
   */
  probeShape?: [number, number, number];
  /** Timed repetitions per backend after one warm-up; default 3. */
  repeats?: number;
}

/**
 * Turns a `device` setting into a backend.
 *
 * - `cpu`: the CPU backend.
 * - `webgpu`: the WebGPU backend; a machine without an adapter is an
 *   error, never a silent fall back to the CPU.
 * - `auto`: times the same matmul on both backends (after a warm-up that
 *   builds the GPU pipeline) and picks the faster; the CPU when there is no
 *   adapter. The reason says which and the times measured.
 *
 * @param device `"cpu"`, `"webgpu"` or `"auto"`.
 * @param options WebGPU options and the `auto` probe.
 * @returns The backend, its name and the reason.
 * @throws {RangeError} For any other `device` value, naming the choices.
 * @throws {WebGpuUnavailableError} For `webgpu` on a machine without an
 * adapter.
 * @example Time both backends and keep the faster
 * ```ts ignore
 * const { backend, reason } = await selectBackend("auto");
 * console.log(reason);
 * ```
 * @example Train on the CPU where there is no adapter
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectBackend } from "./webgpu_choice.ts";
 *
 * // Stands in for `navigator.gpu` on a machine without any adapter.
 * const gpu = { requestAdapter: () => Promise.resolve(null) };
 * const { device, reason } = await selectBackend("auto", { gpu });
 * assert.equal(device, "cpu");
 * assert.match(reason, /^device auto: picked cpu, no WebGPU adapter/);
 * await assert.rejects(selectBackend("cuda"), RangeError);
 * ```
 */
export async function selectBackend(
  device: string,
  options: SelectBackendOptions = {},
): Promise<DeviceSelection> {
  if (!(DEVICE_CHOICES as readonly string[]).includes(device)) {
    throw new RangeError(
      `unknown device "${device}"; expected one of ` +
        DEVICE_CHOICES.join(", "),
    );
  }
  if (device === "cpu") {
    return { backend: cpuBackend, device: "cpu", reason: "device cpu" };
  }
  if (device === "webgpu") {
    const backend = await createWebGpuBackend(options);
    return {
      backend,
      device: "webgpu",
      reason: `device webgpu: ${backend.description}`,
    };
  }
  let gpu;
  try {
    gpu = await createWebGpuBackend(options);
  } catch (error) {
    if (!(error instanceof WebGpuUnavailableError)) throw error;
    return {
      backend: cpuBackend,
      device: "cpu",
      reason: `device auto: picked cpu, ${error.message}`,
    };
  }
  const shape = options.probeShape ?? [512, 1024, 64];
  const repeats = options.repeats ?? 3;
  const gpuTime = await timeMatmul(gpu, shape, repeats);
  const cpuTime = await timeMatmul(cpuBackend, shape, repeats);
  const [m, k, n] = shape;
  const times = `webgpu (${gpu.description}) ${gpuTime.toFixed(1)} ms, ` +
    `cpu ${cpuTime.toFixed(1)} ms per [${m}×${k}]·[${k}×${n}] matmul`;
  if (gpuTime < cpuTime) {
    return {
      backend: gpu,
      device: "webgpu",
      reason: `device auto: picked webgpu, ${times}`,
    };
  }
  gpu.destroy();
  return {
    backend: cpuBackend,
    device: "cpu",
    reason: `device auto: picked cpu, ${times}`,
  };
}

/** Mean milliseconds of one `[m, k]·[k, n]` matmul, after a warm-up. */
async function timeMatmul(
  backend: Backend,
  [m, k, n]: [number, number, number],
  repeats: number,
): Promise<number> {
  const left = new Float32Array(m * k);
  const right = new Float32Array(k * n);
  for (let i = 0; i < left.length; i++) left[i] = ((i * 7) % 13) / 13 - 0.5;
  for (let i = 0; i < right.length; i++) right[i] = ((i * 5) % 11) / 11 - 0.5;
  const a = backend.uploadFloat32(left);
  const b = backend.uploadFloat32(right);
  // The warm-up builds pipelines and settles the pools.
  backend.free(backend.matmul(a, b, m, k, n, false, false));
  await backend.synchronize();
  const start = performance.now();
  for (let r = 0; r < repeats; r++) {
    backend.free(backend.matmul(a, b, m, k, n, false, false));
  }
  await backend.synchronize();
  const elapsed = (performance.now() - start) / repeats;
  backend.free(a);
  backend.free(b);
  return elapsed;
}
