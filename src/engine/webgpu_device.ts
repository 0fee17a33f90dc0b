/**
 * The WebGPU device under the WebGPU backend: adapter and device setup with
 * explicit limits, a pipeline cache keyed by kernel name and override
 * constants, cached bind groups, one command encoder that batches many
 * dispatches into one submission, a buffer pool with explicit destruction,
 * and host readback through `mapAsync` only when asked.
 *
 * Nothing here knows about tensors; `webgpu.ts` builds the backend on top.
 *
 * @module
 */

/**
 * Thrown when WebGPU is requested but the runtime has no `navigator.gpu`
 * or the machine offers no adapter. `--device auto` catches it and trains
 * on the CPU; `--device webgpu` lets it stop the run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   requestWebGpuDevice,
 *   WebGpuUnavailableError,
 * } from "./webgpu_device.ts";
 *
 * // Stands in for `navigator.gpu` on a machine without any adapter.
 * const gpu = { requestAdapter: () => Promise.resolve(null) };
 * await assert.rejects(requestWebGpuDevice({ gpu }), WebGpuUnavailableError);
 * ```
 */
export class WebGpuUnavailableError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was missing and what to do instead.
   */
  constructor(message: string) {
    super(message);
    this.name = "WebGpuUnavailableError";
  }
}

/** Options for {@linkcode requestWebGpuDevice}. */
export interface WebGpuDeviceOptions {
  /** Passed to `navigator.gpu.requestAdapter`; default "high-performance". */
  powerPreference?: GPUPowerPreference;
  /**
   * Dispatches recorded before the pending work is submitted on its own;
   * default 1024. Readbacks and {@linkcode WebGpuDevice.flush} submit
   * earlier.
   */
  maxDispatchesPerSubmit?: number;
  /** Bytes of freed buffers kept for reuse; default 512 MiB. */
  poolBytes?: number;
  /**
   * Treat storage bindings above this many bytes as too large, below the
   * device's own limit: lets tests run the split paths of large tensors
   * on small ones. Default: the device's `maxStorageBufferBindingSize`.
   */
  bindingLimitBytes?: number;
  /** The WebGPU entry point; default `navigator.gpu` (tests pass a fake). */
  gpu?: Pick<GPU, "requestAdapter">;
}

/** A WGSL kernel: its file name (without `.wgsl`) and source text. */
export interface KernelSource {
  /** The kernel's name, also its file name under `kernels/`. */
  name: string;
  /** WGSL source. */
  code: string;
}

/** A buffer binding: a whole buffer or a byte window of it. */
export interface BufferBinding {
  /** The buffer. */
  buffer: GPUBuffer;
  /** Byte offset; a multiple of `minStorageBufferOffsetAlignment`. */
  offset?: number;
  /** Bytes bound; default: to the end of the buffer. */
  size?: number;
}

/** Limits we ask for, each up to what the adapter offers. */
const wantedLimits = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
] as const;

/** Usage of every tensor buffer. */
const storageUsage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Bind groups kept before the cache starts over. */
const maxCachedBindGroups = 16384;

/** Buffer sizes are rounded up to this many bytes, so pooled sizes repeat. */
const sizeGranule = 256;

/**
 * Opens the machine's WebGPU adapter and a device with the limits the
 * kernels need (the defaults are 128 MiB per storage binding and 256 MiB
 * per buffer; we ask for all the adapter offers).
 *
 * @param options Adapter preference, batching and pool sizes.
 * @returns The device wrapper.
 * @throws {WebGpuUnavailableError} When `navigator.gpu` is missing or no
 * adapter is found.
 * @example
 * ```ts ignore
 * const gpu = await requestWebGpuDevice();
 * console.log(gpu.description, gpu.isFallbackAdapter);
 * gpu.destroy();
 * ```
 */
export async function requestWebGpuDevice(
  options: WebGpuDeviceOptions = {},
): Promise<WebGpuDevice> {
  const gpu = options.gpu ??
    (typeof navigator === "undefined" ? undefined : navigator.gpu);
  if (gpu === undefined) {
    throw new WebGpuUnavailableError(
      "WebGPU is not available in this runtime (navigator.gpu is missing); " +
        "use --device cpu",
    );
  }
  const adapter = await gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (adapter === null) {
    throw new WebGpuUnavailableError(
      "no WebGPU adapter found on this machine (navigator.gpu." +
        "requestAdapter() returned null; a GPU driver or Mesa's llvmpipe " +
        "software adapter is needed); use --device cpu",
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of wantedLimits) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({ requiredLimits });
  return new WebGpuDevice(adapter, device, options);
}

/** A WebGPU device with the caches and batching the backend relies on. */
export class WebGpuDevice {
  /** The underlying device. */
  readonly device: GPUDevice;
  /** Adapter description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly description: string;
  /** True for a software adapter such as Mesa's llvmpipe. */
  readonly isFallbackAdapter: boolean;
  /** Largest storage binding in bytes (the device's granted limit). */
  readonly maxBindingBytes: number;
  /** Largest buffer in bytes. */
  readonly maxBufferBytes: number;
  /** Alignment of a binding's byte offset. */
  readonly offsetAlignment: number;
  /** Largest workgroup count along one dispatch dimension. */
  readonly maxWorkgroupsPerDimension: number;
  /** Workgroup memory per workgroup in bytes. */
  readonly workgroupStorageBytes: number;

  #modules = new Map<string, GPUShaderModule>();
  #pipelines = new Map<string, GPUComputePipeline>();
  #bindGroups = new Map<string, GPUBindGroup>();
  #bindGroupsOfBuffer = new Map<GPUBuffer, Set<string>>();
  #bufferIds = new WeakMap<GPUBuffer, number>();
  #nextBufferId = 1;
  #uniforms = new Map<string, GPUBuffer>();
  #pool = new Map<number, GPUBuffer[]>();
  #pooledBytes = 0;
  #poolLimit: number;
  #toDestroy: GPUBuffer[] = [];
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #dispatches = 0;
  #maxDispatches: number;
  #liveBytes = 0;
  #submissions = 0;
  #destroyed = false;

  /**
   * Wraps an adapter and a device; use {@linkcode requestWebGpuDevice}.
   *
   * @param adapter The adapter the device came from.
   * @param device The device.
   * @param options Batching and pool sizes.
   */
  constructor(
    adapter: GPUAdapter,
    device: GPUDevice,
    options: WebGpuDeviceOptions = {},
  ) {
    this.device = device;
    this.description = adapter.info.description || adapter.info.vendor;
    this.isFallbackAdapter = adapter.info.isFallbackAdapter;
    this.maxBindingBytes = Math.min(
      device.limits.maxStorageBufferBindingSize,
      options.bindingLimitBytes ?? Infinity,
    );
    this.maxBufferBytes = device.limits.maxBufferSize;
    this.offsetAlignment = device.limits.minStorageBufferOffsetAlignment;
    this.maxWorkgroupsPerDimension =
      device.limits.maxComputeWorkgroupsPerDimension;
    this.workgroupStorageBytes = device.limits.maxComputeWorkgroupStorageSize;
    this.#maxDispatches = options.maxDispatchesPerSubmit ?? 1024;
    this.#poolLimit = options.poolBytes ?? 512 * 1024 * 1024;
  }

  /** Command buffers submitted so far (to check that work is batched). */
  get submissions(): number {
    return this.#submissions;
  }

  /** Bytes held by live (allocated and not released) buffers. */
  get liveBytes(): number {
    return this.#liveBytes;
  }

  /**
   * A compute pipeline for a kernel with the given override constants,
   * compiled once per distinct (kernel, constants) pair.
   *
   * @param kernel The kernel's name and source.
   * @param constants Values of the kernel's `override` declarations.
   * @returns The cached pipeline.
   */
  pipeline(
    kernel: KernelSource,
    constants: Record<string, number> = {},
  ): GPUComputePipeline {
    const names = Object.keys(constants).sort();
    const key = kernel.name + "|" +
      names.map((name) => `${name}=${constants[name]}`).join(",");
    let pipeline = this.#pipelines.get(key);
    if (pipeline !== undefined) return pipeline;
    let module = this.#modules.get(kernel.name);
    if (module === undefined) {
      module = this.device.createShaderModule({
        label: kernel.name,
        code: kernel.code,
      });
      this.#modules.set(kernel.name, module);
    }
    pipeline = this.device.createComputePipeline({
      label: key,
      layout: "auto",
      compute: { module, entryPoint: "main", constants },
    });
    this.#pipelines.set(key, pipeline);
    return pipeline;
  }

  /**
   * A storage buffer of at least `bytes` bytes, from the pool when one of
   * the same rounded size is free. Its contents are undefined.
   *
   * @param bytes Size needed.
   * @returns The buffer; hand it back with {@linkcode release}.
   * @throws {RangeError} Beyond the device's `maxBufferSize`.
   */
  allocate(bytes: number): GPUBuffer {
    const size = this.#bufferSize(bytes);
    this.#liveBytes += size;
    const free = this.#pool.get(size);
    if (free !== undefined && free.length > 0) {
      this.#pooledBytes -= size;
      return free.pop()!;
    }
    return this.device.createBuffer({ size, usage: storageUsage });
  }

  /**
   * A fresh storage buffer holding `data`, written through a mapping at
   * creation, so the write cannot race with work still being recorded.
   *
   * @param data The bytes to upload.
   * @returns The buffer; hand it back with {@linkcode release}.
   */
  upload(data: ArrayBufferView): GPUBuffer {
    const size = this.#bufferSize(data.byteLength);
    const buffer = this.device.createBuffer({
      size,
      usage: storageUsage,
      mappedAtCreation: true,
    });
    new Uint8Array(buffer.getMappedRange()).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    buffer.unmap();
    this.#liveBytes += size;
    return buffer;
  }

  /**
   * Returns a buffer to the pool, or schedules its destruction after the
   * pending work is submitted when the pool is full. Work already recorded
   * that reads the buffer still sees its contents: recorded commands run in
   * order, and a reused buffer is only written by commands recorded later.
   *
   * @param buffer A buffer from {@linkcode allocate} or {@linkcode upload}.
   */
  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    this.#liveBytes -= size;
    if (this.#pooledBytes + size <= this.#poolLimit) {
      let free = this.#pool.get(size);
      if (free === undefined) this.#pool.set(size, free = []);
      free.push(buffer);
      this.#pooledBytes += size;
    } else {
      this.#forgetBindGroups(buffer);
      this.#toDestroy.push(buffer);
    }
  }

  /** Destroys every pooled buffer (after pending work is submitted). */
  trimPool(): void {
    for (const free of this.#pool.values()) {
      for (const buffer of free) {
        this.#forgetBindGroups(buffer);
        this.#toDestroy.push(buffer);
      }
    }
    this.#pool.clear();
    this.#pooledBytes = 0;
    this.flush();
  }

  /**
   * A uniform buffer with the given 32-bit words, shared by every dispatch
   * that passes the same words (shapes repeat from step to step).
   *
   * @param words Unsigned integers, or floats when `floats` is set.
   * @param floats Words to write as float32 bits instead, by position.
   * @returns The cached buffer.
   */
  uniform(words: number[], floats: number[] = []): GPUBuffer {
    const key = words.join(",") + "|" + floats.join(",");
    let buffer = this.#uniforms.get(key);
    if (buffer !== undefined) return buffer;
    buffer = this.#createUniform(words, floats);
    if (this.#uniforms.size > 4096) {
      // Shapes that no longer repeat; recorded work keeps them alive.
      for (const old of this.#uniforms.values()) this.#toDestroy.push(old);
      this.#uniforms.clear();
    }
    this.#uniforms.set(key, buffer);
    return buffer;
  }

  /**
   * A uniform buffer for words that change at every call (an optimiser's
   * bias corrections): not cached, destroyed after the next submission.
   *
   * @param words Unsigned integers.
   * @param floats Float32 words that follow them.
   * @returns The buffer.
   */
  transientUniform(words: number[], floats: number[] = []): GPUBuffer {
    const buffer = this.#createUniform(words, floats);
    this.#toDestroy.push(buffer);
    return buffer;
  }

  /**
   * Records one dispatch of `pipeline` with `bindings` at binding indices
   * 0, 1, 2, … of group 0. The workgroup count may exceed the per-dimension
   * limit: it is folded into x and y, and kernels rebuild the linear
   * workgroup index from `num_workgroups`.
   *
   * @param pipeline From {@linkcode pipeline}.
   * @param bindings Buffers (or windows of buffers) in binding order.
   * @param workgroups Number of workgroups, or [x, y] for 2-D grids.
   */
  dispatch(
    pipeline: GPUComputePipeline,
    bindings: (GPUBuffer | BufferBinding)[],
    workgroups: number | [number, number],
  ): void {
    const [x, y] = typeof workgroups === "number"
      ? this.grid(workgroups)
      : workgroups;
    if (x === 0 || y === 0) return;
    const group = this.#bindGroup(pipeline, bindings);
    const pass = this.#computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(x, y);
    this.#dispatches++;
    if (this.#dispatches >= this.#maxDispatches) this.flush();
  }

  /**
   * Folds a linear workgroup count into an [x, y] grid within the
   * per-dimension limit.
   *
   * @param count Workgroups needed.
   * @returns [x, y] with x · y ≥ count.
   */
  grid(count: number): [number, number] {
    if (count <= this.maxWorkgroupsPerDimension) return [count, 1];
    const y = Math.ceil(count / this.maxWorkgroupsPerDimension);
    return [Math.ceil(count / y), y];
  }

  /**
   * Records a copy between buffers.
   *
   * @param source Source buffer.
   * @param sourceOffset Byte offset in the source (multiple of 4).
   * @param target Target buffer.
   * @param targetOffset Byte offset in the target (multiple of 4).
   * @param bytes Bytes to copy (multiple of 4).
   */
  copy(
    source: GPUBuffer,
    sourceOffset: number,
    target: GPUBuffer,
    targetOffset: number,
    bytes: number,
  ): void {
    if (bytes === 0) return;
    this.#endPass();
    this.#commandEncoder().copyBufferToBuffer(
      source,
      sourceOffset,
      target,
      targetOffset,
      bytes,
    );
  }

  /**
   * Records zeroing of a byte range.
   *
   * @param buffer The buffer.
   * @param offset Byte offset (multiple of 4).
   * @param bytes Bytes to clear (multiple of 4).
   */
  clear(buffer: GPUBuffer, offset: number, bytes: number): void {
    if (bytes === 0) return;
    this.#endPass();
    this.#commandEncoder().clearBuffer(buffer, offset, bytes);
  }

  /** Submits all recorded work in one command buffer. */
  flush(): void {
    this.#endPass();
    if (this.#encoder !== null) {
      this.device.queue.submit([this.#encoder.finish()]);
      this.#submissions++;
      this.#encoder = null;
      this.#dispatches = 0;
    }
    for (const buffer of this.#toDestroy) buffer.destroy();
    this.#toDestroy = [];
  }

  /**
   * Copies a byte range back to the host. Submits pending work and waits
   * for it (one `mapAsync`, about 10 ms in Deno): call it for logged
   * scalars and evaluation results, not inside a training step.
   *
   * @param buffer The buffer.
   * @param offset Byte offset (multiple of 4).
   * @param bytes Byte count (multiple of 4).
   * @returns A copy of the bytes.
   */
  async read(
    buffer: GPUBuffer,
    offset: number,
    bytes: number,
  ): Promise<ArrayBuffer> {
    const [copy] = await this.readMany([{ buffer, offset, size: bytes }]);
    return copy;
  }

  /**
   * Copies several byte ranges back to the host through one staging
   * buffer and one `mapAsync`.
   *
   * @param ranges Buffers with byte offsets and sizes (multiples of 4).
   * @returns A copy of each range, in order.
   */
  async readMany(ranges: Required<BufferBinding>[]): Promise<ArrayBuffer[]> {
    const total = ranges.reduce((sum, range) => sum + range.size, 0);
    if (total === 0) return ranges.map(() => new ArrayBuffer(0));
    const staging = this.device.createBuffer({
      size: total,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    let position = 0;
    for (const range of ranges) {
      this.copy(range.buffer, range.offset, staging, position, range.size);
      position += range.size;
    }
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const mapped = staging.getMappedRange();
    position = 0;
    const copies = ranges.map((range) => {
      const copy = mapped.slice(position, position + range.size);
      position += range.size;
      return copy;
    });
    staging.unmap();
    staging.destroy();
    return copies;
  }

  /** Waits until every submitted piece of work has finished. */
  async finish(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  /** Destroys every buffer this wrapper still holds, and the device. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.trimPool();
    for (const buffer of this.#uniforms.values()) buffer.destroy();
    this.#uniforms.clear();
    this.#bindGroups.clear();
    this.#bindGroupsOfBuffer.clear();
    this.device.destroy();
  }

  #createUniform(words: number[], floats: number[]): GPUBuffer {
    const count = Math.max(
      4,
      Math.ceil((words.length + floats.length) / 4) * 4,
    );
    const data = new ArrayBuffer(count * 4);
    new Uint32Array(data).set(words.map((word) => word >>> 0));
    new Float32Array(data).set(floats, words.length);
    const buffer = this.device.createBuffer({
      size: data.byteLength,
      usage: GPUBufferUsage.UNIFORM,
      mappedAtCreation: true,
    });
    new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data));
    buffer.unmap();
    return buffer;
  }

  #bufferSize(bytes: number): number {
    const size = Math.max(
      sizeGranule,
      Math.ceil(bytes / sizeGranule) * sizeGranule,
    );
    if (size > this.maxBufferBytes) {
      throw new RangeError(
        `a tensor of ${bytes} bytes exceeds this WebGPU device's largest ` +
          `buffer (maxBufferSize ${this.maxBufferBytes} bytes); use ` +
          "--device cpu for this dataset",
      );
    }
    return size;
  }

  #commandEncoder(): GPUCommandEncoder {
    if (this.#encoder === null) {
      this.#encoder = this.device.createCommandEncoder();
    }
    return this.#encoder;
  }

  #computePass(): GPUComputePassEncoder {
    if (this.#pass === null) {
      this.#pass = this.#commandEncoder().beginComputePass();
    }
    return this.#pass;
  }

  #endPass(): void {
    if (this.#pass !== null) {
      this.#pass.end();
      this.#pass = null;
    }
  }

  #bufferId(buffer: GPUBuffer): number {
    let id = this.#bufferIds.get(buffer);
    if (id === undefined) {
      id = this.#nextBufferId++;
      this.#bufferIds.set(buffer, id);
    }
    return id;
  }

  #bindGroup(
    pipeline: GPUComputePipeline,
    bindings: (GPUBuffer | BufferBinding)[],
  ): GPUBindGroup {
    const entries = bindings.map((binding, index) => {
      const window = "buffer" in binding ? binding : { buffer: binding };
      return {
        binding: index,
        resource: {
          buffer: window.buffer,
          offset: window.offset ?? 0,
          size: window.size ?? window.buffer.size - (window.offset ?? 0),
        },
      };
    });
    const key = pipeline.label + "#" +
      entries.map(({ resource }) =>
        `${this.#bufferId(resource.buffer)}:${resource.offset}:${resource.size}`
      ).join(",");
    let group = this.#bindGroups.get(key);
    if (group !== undefined) return group;
    if (this.#bindGroups.size >= maxCachedBindGroups) {
      this.#bindGroups.clear();
      this.#bindGroupsOfBuffer.clear();
    }
    group = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });
    this.#bindGroups.set(key, group);
    for (const { resource } of entries) {
      let keys = this.#bindGroupsOfBuffer.get(resource.buffer);
      if (keys === undefined) {
        this.#bindGroupsOfBuffer.set(resource.buffer, keys = new Set());
      }
      keys.add(key);
    }
    return group;
  }

  #forgetBindGroups(buffer: GPUBuffer): void {
    const keys = this.#bindGroupsOfBuffer.get(buffer);
    if (keys === undefined) return;
    for (const key of keys) this.#bindGroups.delete(key);
    this.#bindGroupsOfBuffer.delete(buffer);
  }
}
