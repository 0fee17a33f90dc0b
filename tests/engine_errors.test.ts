import assert from "node:assert/strict";
import {
  add,
  attentionFusion,
  bprLoss,
  concatCols,
  concatRows,
  createCpuBackend,
  gatedProjection,
  gatherRows,
  indices,
  infoNce,
  matmul,
  meanOf,
  mul,
  Parameter,
  rowDot,
  sparseConstant,
  splitCols,
  splitRows,
  spmm,
  sub,
  tensor,
  zeros,
} from "../engine.ts";

const shapeCases: [string, () => unknown, RegExp][] = [
  [
    "matmul",
    () => matmul(zeros([2, 3]), zeros([4, 5])),
    /matmul\(\): shapes \[2, 3\] and \[4, 5\] .*inner dimensions.*3 vs 4/,
  ],
  [
    "matmul with transposeB",
    () => matmul(zeros([2, 3]), zeros([3, 5]), { transposeB: true }),
    /matmul\(\): shapes \[2, 3\] and \[3, 5\] .*3 vs 5, b transposed/,
  ],
  [
    "add",
    () => add(zeros([2, 3]), zeros([3, 2])),
    /add\(\): shapes \[2, 3\] and \[3, 2\]/,
  ],
  [
    "sub",
    () => sub(zeros([2, 3]), zeros([2])),
    /sub\(\): shapes \[2, 3\] and \[2\]/,
  ],
  [
    "mul",
    () => mul(zeros([4, 1]), zeros([3, 1])),
    /mul\(\): shapes \[4, 1\] and \[3, 1\]/,
  ],
  [
    "rowDot",
    () => rowDot(zeros([2, 3]), zeros([2, 4])),
    /rowDot\(\): shapes \[2, 3\] and \[2, 4\]/,
  ],
  [
    "concatRows",
    () => concatRows([zeros([2, 3]), zeros([2, 4])]),
    /concatRows\(\): shapes \[2, 3\] and \[2, 4\] .*same number of columns/,
  ],
  [
    "concatCols",
    () => concatCols([zeros([2, 3]), zeros([3, 3])]),
    /concatCols\(\): shapes \[2, 3\] and \[3, 3\] .*same number of rows/,
  ],
  [
    "meanOf",
    () => meanOf([zeros([2, 3]), zeros([3, 2])]),
    /meanOf\(\): shapes \[2, 3\] and \[3, 2\]/,
  ],
  [
    "infoNce",
    () => infoNce(zeros([4, 3]), zeros([5, 3]), 0.2),
    /infoNce\(\): shapes \[4, 3\] and \[5, 3\]/,
  ],
  [
    "bprLoss",
    () => bprLoss(zeros([4, 3]), zeros([4, 3]), zeros([4, 2])),
    /bprLoss\(\): shapes \[4, 3\] and \[4, 2\]/,
  ],
  [
    "gatedProjection",
    () =>
      gatedProjection(zeros([4, 3]), zeros([4, 3]), zeros([3, 2]), zeros([3])),
    /gatedProjection\(\): shapes \[4, 3\] and \[3, 2\] .*\[3, 3\] gate/,
  ],
  [
    "attentionFusion",
    () =>
      attentionFusion(
        [zeros([4, 3]), zeros([5, 3])],
        zeros([3, 3]),
        zeros([3]),
        zeros([1, 3]),
      ),
    /attentionFusion\(\): shapes \[4, 3\] and \[5, 3\] .*equal shape/,
  ],
  [
    "spmm",
    () =>
      spmm(
        sparseConstant({
          rows: 2,
          cols: 3,
          rowOffsets: new Int32Array([0, 0, 0]),
          columnIndices: new Int32Array(0),
          values: new Float32Array(0),
        }),
        zeros([4, 2]),
      ),
    /spmm\(\): shapes \[2, 3\] \(sparse\) and \[4, 2\] .*3 rows/,
  ],
  [
    "splitRows",
    () => splitRows(zeros([5, 2]), [2, 2]),
    /splitRows\(\): sizes \[2, 2\] add up to 4 .*\[5, 2\] has 5/,
  ],
  [
    "splitCols",
    () => splitCols(zeros([5, 2]), [3]),
    /splitCols\(\): sizes \[3\] add up to 3 .*\[5, 2\] has 2/,
  ],
  [
    "tensor",
    () => tensor([1, 2, 3], [2, 2]),
    /tensor\(\): shape \[2, 2\] needs 4 values, got 3/,
  ],
  [
    "Parameter",
    () => new Parameter("w", [1, 2, 3], [2, 2]),
    /Parameter "w": shape \[2, 2\] needs 4 values, got 3/,
  ],
  [
    "a 3-D shape",
    () => zeros([2, 2, 2]),
    /shape \[2, 2, 2\] has 3 dimensions; expected at most 2/,
  ],
];

for (const [name, call, message] of shapeCases) {
  Deno.test(`${name} with mismatched shapes throws an error naming the op and both shapes`, () => {
    assert.throws(call, (error: Error) => {
      assert.ok(error instanceof RangeError, `${error}`);
      assert.match(error.message, message);
      return true;
    });
  });
}

Deno.test("gatherRows() rejects indices outside the table, naming the range", () => {
  assert.throws(
    () => gatherRows(zeros([3, 2]), indices([0, 3])),
    /gatherRows\(\): index values span \[0, 3\] but the table \[3, 2\] has rows \[0, 3\)/,
  );
  assert.throws(() => gatherRows(zeros([3, 2]), indices([-1])), RangeError);
});

Deno.test("indices() rejects values that are not 32-bit integers", () => {
  assert.throws(
    () => indices([1.5]),
    /value 1.5 at position 0 is not a 32-bit integer/,
  );
});

Deno.test("ops refuse tensors of two backends", () => {
  const other = createCpuBackend({ precision: "float64" });
  assert.throws(
    () => add(zeros([2]), zeros([2], other)),
    /add\(\): inputs live on different backends \(cpu and cpu-float64\)/,
  );
});

Deno.test("sparseConstant() rejects an inconsistent CSR matrix", () => {
  assert.throws(
    () =>
      sparseConstant({
        rows: 2,
        cols: 2,
        rowOffsets: new Int32Array([0, 1, 2]),
        columnIndices: new Int32Array([0, 2]),
        values: new Float32Array([1, 1]),
      }),
    /column index 2 at entry 1 is outside \[0, 2\)/,
  );
  assert.throws(
    () =>
      sparseConstant({
        rows: 2,
        cols: 2,
        rowOffsets: new Int32Array([0, 1]),
        columnIndices: new Int32Array([0]),
        values: new Float32Array([1]),
      }),
    /rowOffsets has 2 entries; expected rows \+ 1 = 3/,
  );
});

Deno.test("infoNce() rejects a non-positive temperature", () => {
  assert.throws(
    () => infoNce(zeros([2, 2]), zeros([2, 2]), 0),
    /temperature must be positive, got 0/,
  );
});
