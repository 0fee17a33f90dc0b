/**
 * Gradients through the WebGPU backend against the CPU backend: one
 * MSCA-shaped step (graph propagation, gated modality projection,
 * three-view attention fusion, BPR, InfoNCE, regularisation) built with
 * the engine's ops on each backend, then two Adam steps. The gated
 * projection and the fusion appear twice: composed from small ops, and
 * through their fused kernels.
 */

import assert from "node:assert/strict";
import { Adam } from "../src/engine/adam.ts";
import type { Backend } from "../src/engine/backend.ts";
import { cpuBackend } from "../src/engine/cpu.ts";
import {
  add,
  attentionFusion,
  bprLoss,
  concatCols,
  concatRows,
  exp,
  gatedProjection,
  gatherRows,
  infoNce,
  log,
  logsumexpRows,
  matmul,
  mean,
  meanOf,
  mul,
  scale,
  sigmoid,
  softmaxRows,
  sparseConstant,
  splitCols,
  splitRows,
  spmm,
  squaredNorm,
  sub,
  tanh,
} from "../src/engine/ops.ts";
import { indices, Parameter, type Tensor } from "../src/engine/tensor.ts";
import { createWebGpuBackend } from "../src/engine/webgpu.ts";
import type { CsrMatrix } from "../src/graph/csr.ts";
import { Random } from "../src/random.ts";

const adapter = await navigator.gpu?.requestAdapter();

const users = 10;
const items = 13;
const width = 8;
const featureWidth = 20;
const random = new Random(11);

function values(length: number, scale = 0.5): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = (random.nextFloat() * 2 - 1) * scale;
  }
  return out;
}

function randomGraph(rows: number, cols: number, density: number): CsrMatrix {
  const rowOffsets = new Int32Array(rows + 1);
  const columns: number[] = [];
  const weights: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (random.nextFloat() < density) {
        columns.push(c);
        weights.push(random.nextFloat());
      }
    }
    rowOffsets[r + 1] = columns.length;
  }
  return {
    rows,
    cols,
    rowOffsets,
    columnIndices: Int32Array.from(columns),
    values: Float32Array.from(weights),
  };
}

const initial: Record<string, [Float32Array, number[]]> = {
  "user_embedding.weight": [values(users * width), [users, width]],
  "item_id_embedding.weight": [values(items * width), [items, width]],
  "image_embedding.weight": [
    values(items * featureWidth),
    [items, featureWidth],
  ],
  "image_trs.weight": [values(width * featureWidth), [width, featureWidth]],
  "image_trs.bias": [values(width), [width]],
  "gate_v.0.weight": [values(width * width), [width, width]],
  "gate_v.0.bias": [values(width), [width]],
  "query_common.0.weight": [values(width * width), [width, width]],
  "query_common.0.bias": [values(width), [width]],
  "query_common.2.weight": [values(width), [1, width]],
};
const adjacency = randomGraph(users + items, users + items, 0.25);
const itemGraph = randomGraph(items, items, 0.3);
const userItem = randomGraph(users, items, 0.3);
const batchUsers = Int32Array.from([0, 3, 3, 9, 5, 1, 0]);
const batchPositives = Int32Array.from([1, 12, 4, 4, 0, 7, 2]);
const batchNegatives = Int32Array.from([5, 5, 11, 2, 8, 0, 12]);

/** One MSCA-shaped loss on `backend`; returns the loss and parameters. */
function buildStep(backend: Backend, parameters: Map<string, Parameter>) {
  const p = (name: string) => parameters.get(name)!;
  const linear = (x: Tensor, weight: string, bias?: string) => {
    const product = matmul(x, p(weight), { transposeB: true });
    return bias === undefined ? product : add(product, p(bias));
  };
  const graph = sparseConstant(adjacency, backend);
  const items2items = sparseConstant(itemGraph, backend);
  const users2items = sparseConstant(userItem, backend);

  // Collaborative view: mean of two propagation layers.
  const x0 = concatRows([
    p("user_embedding.weight"),
    p("item_id_embedding.weight"),
  ]);
  const x1 = spmm(graph, x0);
  const x2 = spmm(graph, x1);
  const collaborative = meanOf([x1, x2]);

  // Gated modality view: E_i ⊙ σ(G(T(F))), propagated.
  const projected = linear(
    p("image_embedding.weight"),
    "image_trs.weight",
    "image_trs.bias",
  );
  const gated = mul(
    p("item_id_embedding.weight"),
    sigmoid(linear(projected, "gate_v.0.weight", "gate_v.0.bias")),
  );
  const modalityItems = spmm(items2items, gated);
  const modality = concatRows([
    spmm(users2items, modalityItems),
    modalityItems,
  ]);

  // Three-view attention fusion: Σ V − Σ a_v V.
  const views = [modality, scale(x1, 0.5), x2];
  const scores = views.map((view) =>
    linear(
      tanh(linear(view, "query_common.0.weight", "query_common.0.bias")),
      "query_common.2.weight",
    )
  );
  const weights = splitCols(softmaxRows(concatCols(scores)), [1, 1, 1]);
  let fused = sub(views[0], mul(weights[0], views[0]));
  for (let v = 1; v < 3; v++) {
    fused = add(fused, sub(views[v], mul(weights[v], views[v])));
  }
  const final = add(collaborative, scale(fused, 0.3));
  const [finalUsers, finalItems] = splitRows(final, [users, items]);
  const [collaborativeUsers] = splitRows(collaborative, [users, items]);
  const [modalityUsers] = splitRows(modality, [users, items]);

  const u = indices(batchUsers, backend);
  const bpr = bprLoss(
    gatherRows(finalUsers, u),
    gatherRows(finalItems, indices(batchPositives, backend)),
    gatherRows(finalItems, indices(batchNegatives, backend)),
  );
  const contrastive = infoNce(
    gatherRows(collaborativeUsers, u),
    gatherRows(modalityUsers, u),
    0.2,
  );
  let regularisation = squaredNorm(p("user_embedding.weight"));
  for (const parameter of parameters.values()) {
    if (parameter.name === "user_embedding.weight") continue;
    regularisation = add(regularisation, squaredNorm(parameter));
  }
  // exp, log and logsumexp are not in MSCA's step; cover them here too.
  const extra = mean(
    log(exp(logsumexpRows(concatCols(scores)))),
  );
  // The same two pieces through their fused kernels.
  const gatedFused = gatedProjection(
    p("item_id_embedding.weight"),
    projected,
    p("gate_v.0.weight"),
    p("gate_v.0.bias"),
  );
  const fusion = attentionFusion(
    views,
    p("query_common.0.weight"),
    p("query_common.0.bias"),
    p("query_common.2.weight"),
  );
  fusion.attention.free();
  const fusedKernels = add(
    mean(mul(gatedFused, gated)),
    mean(mul(fusion.fused, fused)),
  );
  return add(
    add(add(bpr, scale(contrastive, 0.05)), scale(fusedKernels, 0.5)),
    add(scale(regularisation, 1e-3), scale(extra, 0.01)),
  );
}

function makeParameters(backend: Backend): Map<string, Parameter> {
  const parameters = new Map<string, Parameter>();
  for (const [name, [data, shape]] of Object.entries(initial)) {
    parameters.set(name, new Parameter(name, data, shape, backend));
  }
  return parameters;
}

function assertClose(
  actual: Float32Array,
  expected: Float32Array,
  label: string,
  tolerance: number,
): void {
  assert.equal(actual.length, expected.length, label);
  let scaleOf = 0;
  for (const e of expected) scaleOf = Math.max(scaleOf, Math.abs(e));
  for (let i = 0; i < actual.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    assert.ok(
      error <= tolerance * (Math.abs(expected[i]) + scaleOf) + 1e-7,
      `${label}[${i}]: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

Deno.test({
  name: "an MSCA-shaped step has equal loss and gradients on WebGPU and CPU",
  ignore: !adapter,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const gpu = await createWebGpuBackend();
    const onCpu = makeParameters(cpuBackend);
    const onGpu = makeParameters(gpu);
    const optimizers = [
      new Adam([...onCpu.values()], { learningRate: 0.01 }),
      new Adam([...onGpu.values()], { learningRate: 0.01 }),
    ];
    for (let step = 0; step < 2; step++) {
      const lossCpu = buildStep(cpuBackend, onCpu);
      const submitted = gpu.gpu.submissions;
      const lossGpu = buildStep(gpu, onGpu);
      lossGpu.backward();
      // The whole forward and backward is recorded, not yet submitted.
      assert.equal(gpu.gpu.submissions, submitted);
      assertClose(
        await lossGpu.toArray(),
        await lossCpu.toArray(),
        `loss at step ${step}`,
        1e-5,
      );
      lossCpu.backward();
      for (const [name, parameter] of onCpu) {
        const gpuGrad = onGpu.get(name)!.grad;
        assert.ok(parameter.grad !== null && gpuGrad !== null, name);
        assertClose(
          await gpuGrad.toArray(),
          await parameter.grad.toArray(),
          `step ${step} d/d ${name}`,
          1e-4,
        );
      }
      for (const optimizer of optimizers) {
        optimizer.step();
        optimizer.zeroGrad();
      }
    }
    for (const [name, parameter] of onCpu) {
      assertClose(
        await onGpu.get(name)!.toArray(),
        await parameter.toArray(),
        `${name} after two Adam steps`,
        1e-4,
      );
    }
    gpu.destroy();
  },
});
