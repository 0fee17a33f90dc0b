import assert from "node:assert/strict";
import {
  Adam,
  type Backend,
  cpuBackend,
  type CpuStorage,
  createCpuBackend,
  mul,
  Parameter,
  sum,
  tensor,
} from "../engine.ts";

const reference = createCpuBackend({ precision: "float64" });

/** Sets `grad` of `parameter` to `g` exactly: d(Σ θ ⊙ g)/dθ = g. */
function setGrad(parameter: Parameter, g: number[], backend: Backend): void {
  parameter.zeroGrad();
  sum(mul(parameter, tensor(g, parameter.shape, backend))).backward();
}

function valuesOf(parameter: Parameter): number[] {
  return Array.from((parameter.storage as CpuStorage).data);
}

const gradients = [[0.1, -0.2, 0.0], [0.3, 0.05, -1.0], [-0.2, 0.4, 0.5]];

// Worked by hand with lr 0.01, β = (0.9, 0.999), ε = 1e-8 from θ₀ =
// (0.5, −1, 2): m_t = 0.9 m + 0.1 g, v_t = 0.999 v + 0.001 g²,
// θ_t = θ − 0.01 (m_t / (1 − 0.9^t)) / (sqrt(v_t / (1 − 0.999^t)) + 1e-8).
// Step 1 reduces to θ − 0.01 g / (|g| + 1e-8): 0.5 − 0.001 / 0.10000001.
const expected = [
  [0.4900000009999999, -0.9900000004999999, 2.0],
  [0.480822190220559, -0.9853053191100446, 2.0074413681304595],
  [0.4782431522889793, -0.9893235649207833, 2.009727771852661],
];
const expectedMoments = {
  first: [0.015099999999999995, 0.028299999999999992, -0.039999999999999994],
  second: [0.0001398900100000001, 0.0002024175400000002, 0.0012490000000000012],
};

Deno.test("Adam matches hand-computed values for three steps with bias correction", async () => {
  const theta = new Parameter("w", [0.5, -1, 2], [3], reference);
  const optimizer = new Adam([theta], { learningRate: 0.01 });
  for (let step = 0; step < 3; step++) {
    setGrad(theta, gradients[step], reference);
    optimizer.step();
    const got = valuesOf(theta);
    for (let i = 0; i < 3; i++) {
      assert.ok(
        Math.abs(got[i] - expected[step][i]) < 1e-12,
        `step ${step + 1} value ${i}: ${got[i]} vs ${expected[step][i]}`,
      );
    }
  }
  const state = await optimizer.state();
  assert.equal(state.parameters.w.step, 3);
  for (let i = 0; i < 3; i++) {
    assert.ok(
      Math.abs(state.parameters.w.firstMoment[i] - expectedMoments.first[i]) <
        1e-7,
    );
    assert.ok(
      Math.abs(state.parameters.w.secondMoment[i] - expectedMoments.second[i]) <
        1e-9,
    );
  }
});

Deno.test("Adam on the float32 backend stays within float32 rounding of the hand values", () => {
  const theta = new Parameter("w", [0.5, -1, 2], [3], cpuBackend);
  const optimizer = new Adam([theta], { learningRate: 0.01 });
  for (let step = 0; step < 3; step++) {
    setGrad(theta, gradients[step], cpuBackend);
    optimizer.step();
  }
  const got = valuesOf(theta);
  for (let i = 0; i < 3; i++) {
    assert.ok(
      Math.abs(got[i] - expected[2][i]) < 1e-6,
      `${got[i]} vs ${expected[2][i]}`,
    );
  }
});

Deno.test("Adam skips a parameter without gradient and keeps its step count", async () => {
  const a = new Parameter("a", [1], [], reference);
  const b = new Parameter("b", [1], [], reference);
  const optimizer = new Adam([a, b], { learningRate: 0.1 });
  setGrad(a, [1], reference);
  optimizer.step();
  assert.deepEqual(valuesOf(b), [1]);
  const state = await optimizer.state();
  assert.equal(state.parameters.a.step, 1);
  assert.equal(state.parameters.b, undefined);
});

Deno.test("Adam state saved after two steps and restored continues identically", async () => {
  const run = new Parameter("w", [0.5, -1, 2], [3], reference);
  const optimizer = new Adam([run], { learningRate: 0.01 });
  for (let step = 0; step < 2; step++) {
    setGrad(run, gradients[step], reference);
    optimizer.step();
  }
  const saved = await optimizer.state();

  const resumed = new Parameter("w", valuesOf(run), [3], reference);
  const restored = new Adam([resumed], { learningRate: 0.5 });
  restored.loadState(saved);
  assert.equal(restored.learningRate, 0.01);
  setGrad(resumed, gradients[2], reference);
  restored.step();
  const got = valuesOf(resumed);
  // Moments come back through float32, so agreement is to float32 rounding.
  for (let i = 0; i < 3; i++) {
    assert.ok(Math.abs(got[i] - expected[2][i]) < 1e-7);
  }
});

Deno.test("Adam.loadState() rejects unknown parameters and wrong sizes", async () => {
  const w = new Parameter("w", [1, 2], [2], reference);
  const optimizer = new Adam([w]);
  setGrad(w, [1, 1], reference);
  optimizer.step();
  const state = await optimizer.state();
  const other = new Adam([new Parameter("v", [1, 2], [2], reference)]);
  assert.throws(() => other.loadState(state), /names parameter "w".*it has v/);
  const small = new Adam([new Parameter("w", [1], [1], reference)]);
  assert.throws(
    () => small.loadState(state),
    /moment of "w" has 2 values; the parameter \[1\] has 1/,
  );
  const betas = new Adam([w], { beta1: 0.8 });
  assert.throws(() => betas.loadState(state), /saved beta1 0.9 differs/);
});

Deno.test("setLearningRate() changes the step size of later updates", () => {
  const w = new Parameter("w", [0], [], reference);
  const optimizer = new Adam([w], { learningRate: 0.1 });
  optimizer.setLearningRate(0.5);
  setGrad(w, [2], reference);
  optimizer.step();
  // Step 1 moves by lr · g / (|g| + ε) ≈ lr.
  assert.ok(Math.abs(valuesOf(w)[0] + 0.5) < 1e-8);
  assert.throws(
    () => optimizer.setLearningRate(-1),
    /learning rate must be a finite number >= 0, got -1/,
  );
});

Deno.test("Adam rejects duplicate parameter names", () => {
  const w = new Parameter("w", [0], [], reference);
  assert.throws(() => new Adam([w, w]), /"w" appears twice/);
});
