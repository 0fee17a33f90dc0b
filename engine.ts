/**
 * The tensor engine of msca-deno: float32 tensors on a backend (plain
 * TypeScript on the CPU, or WebGPU), the ops MSCA, LightGCN and BPR need
 * with reverse-mode autodiff, PyTorch-style layers and initialisers, and
 * Adam.
 *
 * Tensors go to {@linkcode cpuBackend} unless given another backend:
 * {@linkcode selectBackend} turns `"cpu"`, `"webgpu"` or `"auto"` into one,
 * and {@linkcode createWebGpuBackend} opens WebGPU directly. Both throw
 * {@linkcode WebGpuUnavailableError} for `"webgpu"` on a machine without
 * an adapter, never falling back to the CPU in silence.
 *
 * @example
 * ```ts
 * import { Adam, Parameter, squaredNorm, sub, tensor } from "./engine.ts";
 * const w = new Parameter("w", [0, 0], [2]);
 * const target = tensor([1, 2], [2]);
 * const optimizer = new Adam([w], { learningRate: 0.1 });
 * for (let step = 0; step < 10; step++) {
 *   const loss = squaredNorm(sub(w, target));
 *   loss.backward();
 *   optimizer.step();
 *   optimizer.zeroGrad();
 * }
 * ```
 *
 * @module
 */

export { Random, type RandomState } from "./src/random.ts";
export type { CsrMatrix } from "./src/graph/csr.ts";
export type {
  AdamStep,
  Backend,
  BinaryOperation,
  BprForward,
  IndexStorage,
  InfoNceForward,
  InverseIndex,
  SparseStorage,
  Storage,
  UnaryOperation,
} from "./src/engine/backend.ts";
export {
  CpuBackend,
  cpuBackend,
  type CpuBackendOptions,
  CpuIndexStorage,
  type CpuPrecision,
  CpuSparseStorage,
  CpuStorage,
  createCpuBackend,
  type FloatArray,
} from "./src/engine/cpu.ts";
export {
  createWebGpuBackend,
  defaultMatmulTiling,
  type MatmulTiling,
  type TopKResult,
  WebGpuBackend,
  type WebGpuBackendOptions,
  WebGpuIndexStorage,
  WebGpuSparseStorage,
  WebGpuStorage,
} from "./src/engine/webgpu.ts";
export {
  DEVICE_CHOICES,
  type DeviceChoice,
  type DeviceSelection,
  selectBackend,
  type SelectBackendOptions,
} from "./src/engine/webgpu_choice.ts";
export {
  type BufferBinding,
  type KernelSource,
  requestWebGpuDevice,
  WebGpuDevice,
  type WebGpuDeviceOptions,
  WebGpuUnavailableError,
} from "./src/engine/webgpu_device.ts";
export {
  type BackwardFunction,
  formatShape,
  full,
  type GraphNode,
  IndexTensor,
  indices,
  isGradEnabled,
  matrixShape,
  noGrad,
  Parameter,
  record,
  Tensor,
  tensor,
  tidy,
  toBackend,
  zeros,
} from "./src/engine/tensor.ts";
export {
  add,
  type AttentionFusion,
  attentionFusion,
  bprLoss,
  type BprOptions,
  concatCols,
  concatRows,
  exp,
  gatedProjection,
  gatherRows,
  infoNce,
  log,
  logSigmoid,
  logsumexpRows,
  matmul,
  type MatmulOptions,
  MAX_FUSED_VIEWS,
  mean,
  meanOf,
  meanRows,
  mul,
  norm,
  NORM_FLOOR,
  normalizeRows,
  rowDot,
  scale,
  sigmoid,
  softmaxRows,
  sparseConstant,
  SparseTensor,
  splitCols,
  splitRows,
  spmm,
  sqrt,
  squaredNorm,
  sub,
  sum,
  sumRows,
  tanh,
  transposeCsr,
} from "./src/engine/ops.ts";
export {
  Embedding,
  type EmbeddingInit,
  type EmbeddingOptions,
  Linear,
  type LinearOptions,
} from "./src/engine/nn.ts";
export {
  linearDefault,
  uniform,
  xavierNormal,
  xavierUniform,
} from "./src/engine/init.ts";
export {
  type CheckedFunction,
  type CheckedInput,
  checkGradients,
  type GradientCheckOptions,
  type GradientCheckResult,
} from "./src/engine/gradcheck.ts";
export {
  Adam,
  type AdamOptions,
  type AdamParameterState,
  type AdamState,
} from "./src/engine/adam.ts";
