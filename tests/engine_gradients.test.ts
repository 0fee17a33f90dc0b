import assert from "node:assert/strict";
import {
  add,
  attentionFusion,
  bprLoss,
  concatCols,
  concatRows,
  exp,
  gatedProjection,
  gatherRows,
  indices,
  infoNce,
  log,
  logSigmoid,
  logsumexpRows,
  matmul,
  mean,
  meanOf,
  meanRows,
  mul,
  norm,
  normalizeRows,
  Parameter,
  record,
  rowDot,
  scale,
  sigmoid,
  softmaxRows,
  sparseConstant,
  splitCols,
  splitRows,
  spmm,
  sqrt,
  squaredNorm,
  sub,
  sum,
  sumRows,
  tanh,
  Tensor,
  tensor,
} from "../engine.ts";
import {
  type CheckedFunction,
  type CheckedInput,
  checkGradients,
  type GradientCheckOptions,
} from "../src/engine/gradcheck.ts";
import type { CsrMatrix } from "../src/graph/csr.ts";
import { Random } from "../src/random.ts";

const random = new Random(20260101);

/** Random values in [low, high). */
function values(count: number, low = -1, high = 1): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = low + (high - low) * random.nextFloat();
  }
  return out;
}

function input(shape: number[], low = -1, high = 1): CheckedInput {
  const size = shape.reduce((a, b) => a * b, 1);
  return { shape, values: values(size, low, high) };
}

function assertGradients(
  build: CheckedFunction,
  inputs: CheckedInput[],
  options: GradientCheckOptions = {},
): void {
  const result = checkGradients(build, inputs, options);
  assert.deepEqual(result.failures, [], result.failures.join("\n"));
  assert.ok(result.checked > 0, "no value was checked");
  assert.ok(
    result.float32OutputError < 1e-4,
    `float32 forward differs from float64 by ${result.float32OutputError}`,
  );
  assert.ok(
    result.float32GradientError < 1e-3,
    `float32 backward differs from float64 by ${result.float32GradientError}`,
  );
}

function randomCsr(rows: number, cols: number, density: number): CsrMatrix {
  const offsets = new Int32Array(rows + 1);
  const columns: number[] = [];
  const entries: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (random.nextFloat() < density) {
        columns.push(c);
        entries.push(random.nextFloat() - 0.5);
      }
    }
    offsets[r + 1] = columns.length;
  }
  return {
    rows,
    cols,
    rowOffsets: offsets,
    columnIndices: Int32Array.from(columns),
    values: Float32Array.from(entries),
  };
}

Deno.test("the gradient check catches a wrong backward", () => {
  const wrongSquare: CheckedFunction = ([x], backend) => {
    const out = new Tensor(
      backend.binary(
        "mul",
        x.storage,
        x.rows,
        x.cols,
        x.storage,
        x.rows,
        x.cols,
      ),
      x.shape,
      backend,
    );
    // Claims d(x²)/dx = x instead of 2x.
    return record(out, "wrongSquare", [x], (g) => [
      backend.binary("mul", g, x.rows, x.cols, x.storage, x.rows, x.cols),
    ]);
  };
  const result = checkGradients(wrongSquare, [input([2, 3])]);
  assert.equal(result.failures.length, 6, "a wrong derivative went unnoticed");
});

for (
  const [transposeA, transposeB] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ]
) {
  Deno.test(
    `matmul() backward matches finite differences (transposeA ${transposeA}, transposeB ${transposeB})`,
    () => {
      const [m, k, n] = [9, 6, 10];
      assertGradients(
        ([a, b]) => matmul(a, b, { transposeA, transposeB }),
        [
          input(transposeA ? [k, m] : [m, k]),
          input(transposeB ? [n, k] : [k, n]),
        ],
      );
    },
  );
}

Deno.test("matmul() backward matches finite differences on tail sizes", () => {
  assertGradients(([a, b]) => matmul(a, b), [input([5, 7]), input([7, 3])]);
  assertGradients(([a, b]) => matmul(a, b, { transposeA: true }), [
    input([7, 5]),
    input([7, 3]),
  ]);
});

Deno.test("spmm() backward matches finite differences", () => {
  const matrix = randomCsr(7, 5, 0.4);
  assertGradients(
    ([x], backend) => spmm(sparseConstant(matrix, backend), x),
    [input([5, 4])],
  );
});

Deno.test("spmm() backward matches finite differences for a symmetric graph", () => {
  const upper = randomCsr(6, 6, 0.5);
  const dense = new Float32Array(36);
  for (let r = 0; r < 6; r++) {
    for (let e = upper.rowOffsets[r]; e < upper.rowOffsets[r + 1]; e++) {
      const c = upper.columnIndices[e];
      dense[r * 6 + c] += upper.values[e];
      dense[c * 6 + r] += upper.values[e];
    }
  }
  const offsets = new Int32Array(7);
  const columns: number[] = [];
  const entries: number[] = [];
  for (let r = 0; r < 6; r++) {
    for (let c = 0; c < 6; c++) {
      if (dense[r * 6 + c] !== 0) {
        columns.push(c);
        entries.push(dense[r * 6 + c]);
      }
    }
    offsets[r + 1] = columns.length;
  }
  const symmetric: CsrMatrix = {
    rows: 6,
    cols: 6,
    rowOffsets: offsets,
    columnIndices: Int32Array.from(columns),
    values: Float32Array.from(entries),
  };
  assert.ok(sparseConstant(symmetric).symmetric);
  assertGradients(
    ([x], backend) => spmm(sparseConstant(symmetric, backend), x),
    [input([6, 3])],
  );
});

const broadcastCases: [string, number[], number[]][] = [
  ["equal shapes", [3, 4], [3, 4]],
  ["a [c] row vector", [3, 4], [4]],
  ["a [1, c] row vector", [3, 4], [1, 4]],
  ["a [r, 1] column", [3, 4], [3, 1]],
  ["a scalar", [3, 4], []],
  ["a broadcast left operand", [1, 4], [3, 4]],
  ["a column times a row", [3, 1], [1, 4]],
  ["two vectors", [4], [4]],
];

for (const [name, op] of [["add", add], ["sub", sub], ["mul", mul]] as const) {
  for (const [description, aShape, bShape] of broadcastCases) {
    Deno.test(
      `${name}() backward matches finite differences with ${description}`,
      () => {
        assertGradients(([a, b]) => op(a, b), [input(aShape), input(bShape)]);
      },
    );
  }
}

Deno.test("add() backward accumulates when both operands are one tensor", () => {
  assertGradients(([a]) => mul(add(a, a), a), [input([2, 3])]);
});

Deno.test("scale() backward matches finite differences", () => {
  assertGradients(([x]) => scale(x, -2.5), [input([3, 2])]);
});

const unaryCases: [string, (x: Tensor) => Tensor, number, number][] = [
  ["sigmoid", sigmoid, -6, 6],
  ["tanh", tanh, -3, 3],
  ["logSigmoid", logSigmoid, -30, 30],
  ["exp", exp, -3, 3],
  ["log", log, 0.1, 5],
  ["sqrt", sqrt, 0.1, 5],
];

for (const [name, op, low, high] of unaryCases) {
  Deno.test(`${name}() backward matches finite differences`, () => {
    assertGradients(([x]) => op(x), [input([4, 5], low, high)]);
  });
}

Deno.test("logSigmoid() stays finite at large magnitudes", async () => {
  const y = await logSigmoid(tensor([-1000, 1000, 0], [3])).toArray();
  assert.equal(y[0], -1000);
  assert.equal(Math.abs(y[1]), 0);
  assert.ok(Math.abs(y[2] + Math.log(2)) < 1e-7);
});

Deno.test("normalizeRows() backward matches finite differences", () => {
  assertGradients(([x]) => normalizeRows(x), [input([4, 5])]);
});

Deno.test("normalizeRows() backward matches finite differences with zero rows", () => {
  const x = input([4, 3]);
  const zeroRows = [1, 3];
  for (const r of zeroRows) {
    for (let c = 0; c < 3; c++) (x.values as Float64Array)[r * 3 + c] = 0;
  }
  // On a zero row the norm stays below the floor 1e-12 for steps below it,
  // where the function is x / 1e-12 (PyTorch's F.normalize gradient).
  assertGradients(([t]) => normalizeRows(t), [x], {
    step: (_, index) => zeroRows.includes(Math.floor(index / 3)) ? 1e-15 : 1e-6,
    relativeTolerance: 1e-5,
  });
});

Deno.test("normalizeRows() keeps a zero row zero", async () => {
  const y = await normalizeRows(tensor([0, 0, 3, 4], [2, 2])).toArray();
  assert.deepEqual(Array.from(y), [
    0,
    0,
    0.6000000238418579,
    0.800000011920929,
  ]);
});

Deno.test("softmaxRows() backward matches finite differences", () => {
  assertGradients(([x]) => softmaxRows(x), [input([3, 5], -2, 2)]);
});

Deno.test("softmaxRows() backward matches finite differences at magnitudes near 1e3", () => {
  const x = input([3, 5], 999, 1001);
  for (let c = 0; c < 5; c++) (x.values as Float64Array)[10 + c] -= 2000;
  assertGradients(([t]) => softmaxRows(t), [x], { absoluteTolerance: 1e-5 });
});

Deno.test("logsumexpRows() backward matches finite differences", () => {
  assertGradients(([x]) => logsumexpRows(x), [input([4, 6], -2, 2)]);
});

Deno.test("logsumexpRows() backward matches finite differences at magnitudes near 1e3", () => {
  const x = input([3, 4], 998, 1002);
  for (let c = 0; c < 4; c++) (x.values as Float64Array)[4 + c] -= 2000;
  assertGradients(([t]) => logsumexpRows(t), [x], { absoluteTolerance: 1e-5 });
});

Deno.test("logsumexpRows() and softmaxRows() are finite at magnitudes near 1e3", async () => {
  const x = tensor([1000, 1000, -1000, -1000], [2, 2]);
  const lse = await logsumexpRows(x).toArray();
  assert.ok(Math.abs(lse[0] - (1000 + Math.log(2))) < 1e-3);
  assert.ok(Math.abs(lse[1] - (-1000 + Math.log(2))) < 1e-3);
  assert.deepEqual(Array.from(await softmaxRows(x).toArray()), [
    0.5,
    0.5,
    0.5,
    0.5,
  ]);
});

const reductionCases: [string, (x: Tensor) => Tensor][] = [
  ["sum", sum],
  ["mean", mean],
  ["sumRows", sumRows],
  ["meanRows", meanRows],
  ["squaredNorm", squaredNorm],
  ["norm", norm],
];

for (const [name, op] of reductionCases) {
  Deno.test(`${name}() backward matches finite differences`, () => {
    assertGradients(([x]) => op(x), [input([4, 3])]);
  });
}

Deno.test("rowDot() backward matches finite differences", () => {
  assertGradients(([a, b]) => rowDot(a, b), [input([5, 4]), input([5, 4])]);
});

Deno.test("gatherRows() backward matches finite differences with repeated indices", () => {
  const rows = [2, 0, 2, 2, 4, 0];
  assertGradients(
    ([x], backend) => gatherRows(x, indices(rows, backend)),
    [input([6, 3])],
  );
});

Deno.test("gatherRows() backward sums repeated rows and leaves others zero", async () => {
  const table = new Parameter("table", [1, 2, 3, 4, 5, 6], [3, 2]);
  sum(gatherRows(table, indices([2, 0, 2, 2]))).backward();
  assert.deepEqual(Array.from(await table.grad!.toArray()), [1, 1, 0, 0, 3, 3]);
});

Deno.test("concatRows() backward matches finite differences", () => {
  assertGradients(
    ([a, b, c]) => concatRows([a, b, c]),
    [input([2, 3]), input([1, 3]), input([3, 3])],
  );
});

Deno.test("concatCols() backward matches finite differences", () => {
  assertGradients(
    ([a, b, c]) => concatCols([a, b, c]),
    [input([3, 2]), input([3, 1]), input([3, 4])],
  );
});

Deno.test("splitRows() backward matches finite differences with an unused block", () => {
  assertGradients(([x]) => {
    const [first, , third] = splitRows(x, [1, 2, 2]);
    return concatRows([third, scale(first, 3)]);
  }, [input([5, 3])]);
});

Deno.test("splitCols() backward matches finite differences with an unused block", () => {
  assertGradients(([x]) => {
    const [first, , third] = splitCols(x, [2, 1, 1]);
    return concatCols([third, scale(first, -2)]);
  }, [input([3, 4])]);
});

Deno.test("meanOf() backward matches finite differences", () => {
  assertGradients(
    ([a, b, c]) => meanOf([a, b, c, a]),
    [input([3, 2]), input([3, 2]), input([3, 2])],
  );
});

Deno.test("infoNce() backward matches finite differences", () => {
  assertGradients(
    ([x, y]) => infoNce(x, y, 0.2),
    [input([6, 4]), input([6, 4])],
  );
});

Deno.test("infoNce() backward matches finite differences with repeated rows", () => {
  const x = input([5, 3]);
  const y = input([5, 3]);
  for (let c = 0; c < 3; c++) {
    (x.values as Float64Array)[3 + c] = (x.values as Float64Array)[c];
    (y.values as Float64Array)[3 + c] = (y.values as Float64Array)[c];
  }
  assertGradients(([a, b]) => infoNce(a, b, 0.5), [x, y]);
});

Deno.test("infoNce() equals its definition through logsumexpRows()", async () => {
  const x = tensor(values(12), [4, 3]);
  const y = tensor(values(12), [4, 3]);
  const fused = await infoNce(x, y, 0.2).item();
  const xUnit = normalizeRows(x);
  const yUnit = normalizeRows(y);
  const similarities = scale(matmul(xUnit, yUnit, { transposeB: true }), 5);
  const positives = scale(rowDot(xUnit, yUnit), 5);
  const composed = await mean(sub(logsumexpRows(similarities), positives))
    .item();
  assert.ok(Math.abs(fused - composed) < 1e-5, `${fused} vs ${composed}`);
});

for (const epsilon of [0, 1e-10]) {
  Deno.test(`bprLoss() backward matches finite differences with epsilon ${epsilon}`, () => {
    assertGradients(
      ([u, p, n]) => bprLoss(u, p, n, { epsilon }),
      [input([6, 4]), input([6, 4]), input([6, 4])],
    );
  });
}

Deno.test("bprLoss() equals mean(−log σ(u·p − u·n))", async () => {
  const u = tensor(values(8), [2, 4]);
  const p = tensor(values(8), [2, 4]);
  const n = tensor(values(8), [2, 4]);
  const fused = await bprLoss(u, p, n).item();
  const composed = await scale(
    mean(logSigmoid(sub(rowDot(u, p), rowDot(u, n)))),
    -1,
  ).item();
  assert.ok(Math.abs(fused - composed) < 1e-6, `${fused} vs ${composed}`);
});

Deno.test("a Linear-and-gate composite backward matches finite differences", () => {
  assertGradients(
    ([features, weight, bias, items]) =>
      mul(
        items,
        sigmoid(add(matmul(features, weight, { transposeB: true }), bias)),
      ),
    [input([5, 7]), input([3, 7]), input([3]), input([5, 3])],
  );
});

Deno.test("gatedProjection() backward matches finite differences", () => {
  for (const rows of [1, 5]) {
    assertGradients(
      ([items, projected, weight, bias]) =>
        gatedProjection(items, projected, weight, bias),
      [input([rows, 3]), input([rows, 3]), input([3, 3]), input([3])],
    );
  }
});

Deno.test("gatedProjection() equals E ⊙ σ(T W_gᵀ + b_g) composed", async () => {
  const items = tensor(values(15), [5, 3]);
  const projected = tensor(values(15), [5, 3]);
  const weight = tensor(values(9), [3, 3]);
  const bias = tensor(values(3), [3]);
  const fused = await gatedProjection(items, projected, weight, bias)
    .toArray();
  const composed = await mul(
    items,
    sigmoid(add(matmul(projected, weight, { transposeB: true }), bias)),
  ).toArray();
  for (let i = 0; i < fused.length; i++) {
    assert.ok(Math.abs(fused[i] - composed[i]) < 1e-6, `${i}`);
  }
});

for (const viewCount of [1, 2, 3]) {
  Deno.test(
    `attentionFusion() backward matches finite differences with ${viewCount} view${
      viewCount === 1 ? "" : "s"
    }`,
    () => {
      for (const rows of [1, 4]) {
        const views = Array.from(
          { length: viewCount },
          () => input([rows, 3], -2, 2),
        );
        assertGradients(
          (inputs) =>
            attentionFusion(
              inputs.slice(0, viewCount),
              inputs[viewCount],
              inputs[viewCount + 1],
              inputs[viewCount + 2],
            ).fused,
          [...views, input([3, 3]), input([3]), input([1, 3], -2, 2)],
        );
      }
    },
  );
}

Deno.test("attentionFusion() equals Σ V − Σ a_v V with a softmax across views", async () => {
  const views = [0, 1, 2].map(() => tensor(values(12, -2, 2), [4, 3]));
  const weight = tensor(values(9), [3, 3]);
  const bias = tensor(values(3), [3]);
  const vector = tensor(values(3, -2, 2), [1, 3]);
  const { fused, attention } = attentionFusion(views, weight, bias, vector);
  const scores = views.map((view) =>
    matmul(
      tanh(add(matmul(view, weight, { transposeB: true }), bias)),
      vector,
      { transposeB: true },
    )
  );
  const expected = softmaxRows(concatCols(scores));
  const weights = splitCols(expected, [1, 1, 1]);
  const composed = sub(
    add(add(views[0], views[1]), views[2]),
    add(
      add(mul(views[0], weights[0]), mul(views[1], weights[1])),
      mul(views[2], weights[2]),
    ),
  );
  for (
    const [actual, wanted] of [[fused, composed], [attention, expected]]
  ) {
    const a = await actual.toArray();
    const b = await wanted.toArray();
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) {
      assert.ok(Math.abs(a[i] - b[i]) < 1e-6, `${i}: ${a[i]} vs ${b[i]}`);
    }
  }
  assert.equal(attention.requiresGrad, false);
});

Deno.test("attentionFusion() rejects no views and more than three", () => {
  const view = tensor(values(6), [2, 3]);
  const weight = tensor(values(9), [3, 3]);
  const bias = tensor(values(3), [3]);
  for (const views of [[], [view, view, view, view]]) {
    assert.throws(
      () => attentionFusion(views, weight, bias, bias),
      RangeError,
    );
  }
});
