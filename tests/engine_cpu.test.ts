import assert from "node:assert/strict";
import {
  cpuBackend,
  createCpuBackend,
  gatherRows,
  indices,
  matmul,
  sparseConstant,
  spmm,
  sum,
  tensor,
  transposeCsr,
  zeros,
} from "../engine.ts";
import type { CsrMatrix } from "../src/graph/csr.ts";
import { Random } from "../src/random.ts";

const random = new Random(11);

function randomValues(count: number): Float64Array {
  return Float64Array.from({ length: count }, () => random.nextFloat() - 0.5);
}

/** Naive `op(A) op(B)` in float64. */
function naiveProduct(
  a: Float64Array,
  b: Float64Array,
  m: number,
  k: number,
  n: number,
  transposeA: boolean,
  transposeB: boolean,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let total = 0;
      for (let p = 0; p < k; p++) {
        const left = transposeA ? a[p * m + i] : a[i * k + p];
        const right = transposeB ? b[j * k + p] : b[p * n + j];
        total += left * right;
      }
      out[i * n + j] = total;
    }
  }
  return out;
}

const shapes = [[1, 1, 1], [0, 3, 2], [3, 0, 2], [5, 7, 3], [4, 4, 4], [
  9,
  13,
  6,
], [37, 45, 29]];
const reference = createCpuBackend({ precision: "float64" });

Deno.test("the CPU matmul kernels agree with a naive product on every transpose and tail size", async () => {
  for (const [m, k, n] of shapes) {
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        const a = randomValues(m * k);
        const b = randomValues(k * n);
        const expected = naiveProduct(a, b, m, k, n, transposeA, transposeB);
        for (const backend of [cpuBackend, reference]) {
          const product = matmul(
            tensor(a, transposeA ? [k, m] : [m, k], backend),
            tensor(b, transposeB ? [n, k] : [k, n], backend),
            { transposeA, transposeB },
          );
          assert.deepEqual(product.shape, [m, n]);
          const got = backend === reference
            ? reference.readFloat64(product.storage)
            : await product.toArray();
          const tolerance = backend === cpuBackend ? 1e-5 : 1e-12;
          for (let i = 0; i < m * n; i++) {
            assert.ok(
              Math.abs(got[i] - expected[i]) < tolerance,
              `[${m}, ${k}, ${n}] tA ${transposeA} tB ${transposeB} entry ${i}`,
            );
          }
        }
      }
    }
  }
});

function randomCsr(rows: number, cols: number, density: number): CsrMatrix {
  const offsets = new Int32Array(rows + 1);
  const columns: number[] = [];
  const values: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (random.nextFloat() < density) {
        columns.push(c);
        values.push(random.nextFloat());
      }
    }
    offsets[r + 1] = columns.length;
  }
  return {
    rows,
    cols,
    rowOffsets: offsets,
    columnIndices: Int32Array.from(columns),
    values: Float32Array.from(values),
  };
}

function densify(matrix: CsrMatrix): Float64Array {
  const dense = new Float64Array(matrix.rows * matrix.cols);
  for (let r = 0; r < matrix.rows; r++) {
    for (let e = matrix.rowOffsets[r]; e < matrix.rowOffsets[r + 1]; e++) {
      dense[r * matrix.cols + matrix.columnIndices[e]] = matrix.values[e];
    }
  }
  return dense;
}

Deno.test("spmm() agrees with the dense product, including empty and long rows", async () => {
  for (const density of [0.1, 0.3, 0.8]) {
    const matrix = randomCsr(23, 17, density);
    const x = randomValues(17 * 5);
    const expected = naiveProduct(densify(matrix), x, 23, 17, 5, false, false);
    const got = await spmm(sparseConstant(matrix), tensor(x, [17, 5]))
      .toArray();
    for (let i = 0; i < expected.length; i++) {
      assert.ok(Math.abs(got[i] - expected[i]) < 1e-5, `density ${density}`);
    }
  }
});

Deno.test("transposeCsr() gives the transpose with ascending columns", () => {
  const matrix = randomCsr(9, 6, 0.4);
  const transposed = transposeCsr(matrix);
  const dense = densify(matrix);
  const denseTransposed = densify(transposed);
  for (let r = 0; r < 9; r++) {
    for (let c = 0; c < 6; c++) {
      assert.equal(denseTransposed[c * 9 + r], dense[r * 6 + c]);
    }
  }
  for (let r = 0; r < transposed.rows; r++) {
    for (
      let e = transposed.rowOffsets[r] + 1;
      e < transposed.rowOffsets[r + 1];
      e++
    ) {
      assert.ok(transposed.columnIndices[e] > transposed.columnIndices[e - 1]);
    }
  }
});

Deno.test("gatherRows() of an empty index gives an empty result and zero gradient", async () => {
  const table = tensor([1, 2, 3, 4], [2, 2]);
  table.requiresGrad = true;
  const picked = gatherRows(table, indices([]));
  assert.deepEqual(picked.shape, [0, 2]);
  sum(picked).backward();
  assert.deepEqual(Array.from(await table.grad!.toArray()), [0, 0, 0, 0]);
});

Deno.test("the float64 CPU backend keeps float64 precision", () => {
  const x = tensor([1 + 1e-12], [], reference);
  assert.equal(reference.readFloat64(x.storage)[0], 1 + 1e-12);
  assert.equal(cpuBackend.name, "cpu");
  assert.equal(reference.name, "cpu-float64");
});

Deno.test("a freed tensor is an error on use", async () => {
  const x = zeros([2]);
  x.free();
  await assert.rejects(() => x.toArray(), /freed by free\(\)/);
});

Deno.test("matmul() in float32 stays within 1e-5 of float64 over a 4096-long inner dimension", async () => {
  const [m, k, n] = [6, 4096, 10];
  const a = randomValues(m * k);
  const b = randomValues(n * k);
  const expected = naiveProduct(a, b, m, k, n, false, true);
  const got = await matmul(tensor(a, [m, k]), tensor(b, [n, k]), {
    transposeB: true,
  }).toArray();
  const scale = Math.max(...expected.map(Math.abs));
  for (let i = 0; i < m * n; i++) {
    assert.ok(Math.abs(got[i] - expected[i]) < 1e-5 * scale, `entry ${i}`);
  }
});
