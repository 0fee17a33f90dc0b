/**
 * Every WGSL kernel of the WebGPU backend against its CPU twin (the float32
 * CPU backend, or `selectTopK` for evaluation), on random shapes that
 * include sizes not multiples of the tiles, one row, and empty inputs.
 * Runs on whatever adapter the machine has (Mesa llvmpipe in CI); the
 * tests are reported as ignored where there is none.
 */

import assert from "node:assert/strict";
import { cpuBackend } from "../src/engine/cpu.ts";
import type { Backend, Storage } from "../src/engine/backend.ts";
import { createWebGpuBackend, WebGpuBackend } from "../src/engine/webgpu.ts";
import type { CsrMatrix } from "../src/graph/csr.ts";
import { MASKED_SCORE, rankTopK, selectTopK } from "../src/evaluation.ts";
import type { Dataset } from "../src/data/dataset.ts";
import { Random } from "../src/random.ts";

const adapter = await navigator.gpu?.requestAdapter();
const gpu = adapter ? await createWebGpuBackend() : null;
/** The same kernels with 64 KiB bindings, so that large-tensor paths run. */
const splitting = adapter
  ? await createWebGpuBackend({ bindingLimitBytes: 64 * 1024 })
  : null;

function gpuTest(name: string, body: () => Promise<void>): void {
  Deno.test({
    name,
    ignore: gpu === null,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: body,
  });
}

function randomValues(random: Random, length: number, scale = 1) {
  const values = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    values[i] = (random.nextFloat() * 2 - 1) * scale;
  }
  return values;
}

/** Uploads the same values to the GPU and the CPU backend. */
function twin(backend: Backend, values: Float32Array): [Storage, Storage] {
  return [backend.uploadFloat32(values), cpuBackend.uploadFloat32(values)];
}

function assertClose(
  actual: Float32Array,
  expected: Float32Array,
  label: string,
  tolerance = 1e-5,
): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) || !Number.isFinite(e)) {
      assert.ok(Object.is(a, e), `${label}[${i}]: ${a} vs ${e}`);
      continue;
    }
    const error = Math.abs(a - e);
    assert.ok(
      error <= tolerance * (1 + Math.abs(e)),
      `${label}[${i}]: ${a} vs ${e} (error ${error})`,
    );
  }
}

async function assertSame(
  backend: Backend,
  actual: Storage,
  expected: Storage,
  label: string,
  tolerance = 1e-5,
): Promise<void> {
  assertClose(
    await backend.read(actual),
    await cpuBackend.read(expected),
    label,
    tolerance,
  );
  backend.free(actual);
}

const random = new Random(4);

gpuTest(
  "matmul() matches the CPU for every transpose and odd shapes",
  async () => {
    const shapes = [
      [1, 1, 1],
      [67, 129, 70],
      [3, 200, 1],
      [130, 17, 65],
      [0, 5, 4],
      [4, 0, 3],
      [5, 6, 0],
    ];
    for (const backend of [gpu!, splitting!]) {
      for (const [m, k, n] of shapes) {
        for (const transposeA of [false, true]) {
          for (const transposeB of [false, true]) {
            const [a, aCpu] = twin(backend, randomValues(random, m * k));
            const [b, bCpu] = twin(backend, randomValues(random, k * n));
            await assertSame(
              backend,
              backend.matmul(a, b, m, k, n, transposeA, transposeB),
              cpuBackend.matmul(aCpu, bCpu, m, k, n, transposeA, transposeB),
              `${backend === gpu ? "" : "split "}[${m}×${k}]·[${k}×${n}] ` +
                `${transposeA} ${transposeB}`,
              1e-4,
            );
            backend.free(a);
            backend.free(b);
          }
        }
      }
    }
  },
);

gpuTest("matmul() splits operands larger than one binding", async () => {
  // 64 KiB bindings hold 16384 values: A [300 × 100] and B [300 × 90]
  // need row windows, and the transposed products inner-dimension ones.
  const backend = splitting!;
  for (
    const [m, k, n, transposeA, transposeB] of [
      [300, 100, 30, false, false],
      [100, 300, 90, true, false],
      [30, 300, 90, false, false],
      [300, 30, 100, false, true],
    ] as const
  ) {
    const [a, aCpu] = twin(backend, randomValues(random, m * k));
    const [b, bCpu] = twin(backend, randomValues(random, k * n));
    await assertSame(
      backend,
      backend.matmul(a, b, m, k, n, transposeA, transposeB),
      cpuBackend.matmul(aCpu, bCpu, m, k, n, transposeA, transposeB),
      `split [${m}×${k}]·[${k}×${n}] ${transposeA} ${transposeB}`,
      1e-4,
    );
  }
  const [wide] = twin(backend, randomValues(random, 20000));
  assert.throws(
    () => backend.matmul(wide, wide, 1, 20000, 1, false, true),
    /maxStorageBufferBindingSize/,
  );
});

function randomCsr(rows: number, cols: number, density: number): CsrMatrix {
  const rowOffsets = new Int32Array(rows + 1);
  const columns: number[] = [];
  const values: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (random.nextFloat() < density) {
        columns.push(c);
        values.push(random.nextFloat() * 2 - 1);
      }
    }
    rowOffsets[r + 1] = columns.length;
  }
  return {
    rows,
    cols,
    rowOffsets,
    columnIndices: Int32Array.from(columns),
    values: Float32Array.from(values),
  };
}

gpuTest("spmm() matches the CPU with empty rows and any width", async () => {
  for (
    const [rows, inner, cols, density] of [
      [50, 40, 64, 0.1],
      [33, 70, 70, 0.05],
      [1, 5, 3, 1],
      [0, 4, 64, 0.5],
      [6, 6, 64, 0],
    ]
  ) {
    const matrix = randomCsr(rows, inner, density);
    const sparse = gpu!.uploadCsr(matrix);
    const [x, xCpu] = twin(gpu!, randomValues(random, inner * cols));
    await assertSame(
      gpu!,
      gpu!.spmm(sparse, x, cols),
      cpuBackend.spmm(cpuBackend.uploadCsr(matrix), xCpu, cols),
      `spmm ${rows}×${inner}·${cols}`,
    );
    gpu!.free(sparse);
    gpu!.free(x);
  }
});

gpuTest("binary() matches the CPU for every broadcast layout", async () => {
  const rows = 37;
  const cols = 70;
  const shapes: [number, number, number, number][] = [
    [rows, cols, rows, cols],
    [rows, cols, 1, cols],
    [rows, cols, rows, 1],
    [rows, cols, 1, 1],
    [1, cols, rows, 1],
    [1, 1, rows, cols],
    [1, 1, 1, 1],
    [0, cols, 0, cols],
    [0, cols, 0, 1],
  ];
  for (const backend of [gpu!, splitting!]) {
    for (const operation of ["add", "sub", "mul"] as const) {
      for (const [aRows, aCols, bRows, bCols] of shapes) {
        const [a, aCpu] = twin(backend, randomValues(random, aRows * aCols));
        const [b, bCpu] = twin(backend, randomValues(random, bRows * bCols));
        await assertSame(
          backend,
          backend.binary(operation, a, aRows, aCols, b, bRows, bCols),
          cpuBackend.binary(operation, aCpu, aRows, aCols, bCpu, bRows, bCols),
          `${operation} [${aRows}×${aCols}] [${bRows}×${bCols}]`,
        );
      }
    }
  }
  // Large enough to be split into row windows by `splitting`.
  const [a, aCpu] = twin(splitting!, randomValues(random, 300 * 100));
  const [b, bCpu] = twin(splitting!, randomValues(random, 300));
  await assertSame(
    splitting!,
    splitting!.binary("mul", a, 300, 100, b, 300, 1),
    cpuBackend.binary("mul", aCpu, 300, 100, bCpu, 300, 1),
    "split mul by a column",
  );
});

gpuTest(
  "unary() and unaryBackward() match the CPU, large inputs included",
  async () => {
    const values = randomValues(random, 1000, 8);
    values.set([0, -0, 90, -90, 40, -40, 1e-8]);
    const positive = values.map(Math.abs).map((v) => v + 1e-3);
    for (const backend of [gpu!, splitting!]) {
      for (
        const operation of [
          "sigmoid",
          "tanh",
          "logSigmoid",
          "exp",
          "log",
          "sqrt",
        ] as const
      ) {
        const input = operation === "log" || operation === "sqrt"
          ? positive
          : values;
        const [x, xCpu] = twin(backend, input);
        const [g, gCpu] = twin(backend, randomValues(random, input.length));
        const y = backend.unary(operation, x);
        const yCpu = cpuBackend.unary(operation, xCpu);
        assertClose(
          await backend.read(y),
          await cpuBackend.read(yCpu),
          operation,
          2e-5,
        );
        await assertSame(
          backend,
          backend.unaryBackward(operation, x, y, g),
          cpuBackend.unaryBackward(operation, xCpu, yCpu, gCpu),
          `${operation} backward`,
          2e-5,
        );
      }
    }
    const empty = gpu!.uploadFloat32(new Float32Array(0));
    assert.equal((await gpu!.read(gpu!.unary("exp", empty))).length, 0);
  },
);

gpuTest("scale() and fill() match the CPU, split or not", async () => {
  for (const backend of [gpu!, splitting!]) {
    for (const length of [0, 1, 1000, 40000]) {
      const [x, xCpu] = twin(backend, randomValues(random, length));
      await assertSame(
        backend,
        backend.scale(x, -2.5),
        cpuBackend.scale(xCpu, -2.5),
        `scale ${length}`,
      );
      for (const value of [0, 3.25]) {
        await assertSame(
          backend,
          backend.fill(length, value),
          cpuBackend.fill(length, value),
          `fill ${length} ${value}`,
        );
      }
    }
  }
});

gpuTest(
  "sumTo() and squaredNorm() match the CPU in every direction",
  async () => {
    for (const backend of [gpu!, splitting!]) {
      for (
        const [rows, cols] of [[1, 1], [300, 50], [1, 600], [600, 1], [0, 4]]
      ) {
        const [x, xCpu] = twin(backend, randomValues(random, rows * cols));
        for (
          const [targetRows, targetCols] of [
            [rows, cols],
            [rows, 1],
            [1, cols],
            [1, 1],
          ]
        ) {
          await assertSame(
            backend,
            backend.sumTo(x, rows, cols, targetRows, targetCols),
            cpuBackend.sumTo(xCpu, rows, cols, targetRows, targetCols),
            `sumTo [${rows}×${cols}] → [${targetRows}×${targetCols}]`,
            1e-4,
          );
        }
        await assertSame(
          backend,
          backend.squaredNorm(x),
          cpuBackend.squaredNorm(xCpu),
          `squaredNorm [${rows}×${cols}]`,
          1e-4,
        );
      }
    }
    // Row sums are not split: a clear error names the limit.
    const wide = splitting!.uploadFloat32(new Float32Array(20000));
    assert.throws(
      () => splitting!.sumTo(wide, 200, 100, 200, 1),
      /sumTo: an operand of 80000 bytes exceeds/,
    );
    // 70000 values are five 16384-value windows for `splitting`.
    const [x, xCpu] = twin(splitting!, randomValues(random, 70000));
    await assertSame(
      splitting!,
      splitting!.squaredNorm(x),
      cpuBackend.squaredNorm(xCpu),
      "split squaredNorm",
      1e-4,
    );
    await assertSame(
      splitting!,
      splitting!.sumTo(x, 700, 100, 1, 1),
      cpuBackend.sumTo(xCpu, 700, 100, 1, 1),
      "split total",
      1e-4,
    );
    await assertSame(
      splitting!,
      splitting!.sumTo(x, 700, 100, 1, 100),
      cpuBackend.sumTo(xCpu, 700, 100, 1, 100),
      "split column sums",
      1e-4,
    );
  },
);

gpuTest("broadcast() matches the CPU", async () => {
  for (
    const [rows, cols, targetRows, targetCols] of [
      [1, 70, 33, 70],
      [33, 1, 33, 70],
      [1, 1, 5, 6],
      [4, 5, 4, 5],
      [1, 3, 0, 3],
    ]
  ) {
    const [x, xCpu] = twin(gpu!, randomValues(random, rows * cols));
    await assertSame(
      gpu!,
      gpu!.broadcast(x, rows, cols, targetRows, targetCols),
      cpuBackend.broadcast(xCpu, rows, cols, targetRows, targetCols),
      `broadcast [${rows}×${cols}] → [${targetRows}×${targetCols}]`,
    );
  }
});

gpuTest("row-wise kernels and their backwards match the CPU", async () => {
  for (const [rows, cols] of [[1, 1], [70, 64], [9, 3], [0, 8]]) {
    const values = randomValues(random, rows * cols, 5);
    if (rows > 2) values.fill(0, cols, 2 * cols); // a zero row
    if (rows > 3) values.fill(80, 2 * cols, 3 * cols); // large magnitudes
    const [x, xCpu] = twin(gpu!, values);
    const [other, otherCpu] = twin(gpu!, randomValues(random, rows * cols));
    const [g, gCpu] = twin(gpu!, randomValues(random, rows * cols));
    const [gRow, gRowCpu] = twin(gpu!, randomValues(random, rows));
    const label = `[${rows}×${cols}]`;
    await assertSame(
      gpu!,
      gpu!.rowDot(x, other, rows, cols),
      cpuBackend.rowDot(xCpu, otherCpu, rows, cols),
      `rowDot ${label}`,
      1e-4,
    );
    const normalized = gpu!.normalizeRows(x, rows, cols, 1e-12);
    const normalizedCpu = cpuBackend.normalizeRows(xCpu, rows, cols, 1e-12);
    assertClose(
      await gpu!.read(normalized),
      await cpuBackend.read(normalizedCpu),
      `normalizeRows ${label}`,
    );
    // The zero row's gradient is g / 1e-12: compare it relatively.
    await assertSame(
      gpu!,
      gpu!.normalizeRowsBackward(x, normalized, g, rows, cols, 1e-12),
      cpuBackend.normalizeRowsBackward(
        xCpu,
        normalizedCpu,
        gCpu,
        rows,
        cols,
        1e-12,
      ),
      `normalizeRowsBackward ${label}`,
      1e-5,
    );
    const softmax = gpu!.softmaxRows(x, rows, cols);
    const softmaxCpu = cpuBackend.softmaxRows(xCpu, rows, cols);
    assertClose(
      await gpu!.read(softmax),
      await cpuBackend.read(softmaxCpu),
      `softmaxRows ${label}`,
    );
    await assertSame(
      gpu!,
      gpu!.softmaxRowsBackward(softmax, g, rows, cols),
      cpuBackend.softmaxRowsBackward(softmaxCpu, gCpu, rows, cols),
      `softmaxRowsBackward ${label}`,
    );
    const lse = gpu!.logsumexpRows(x, rows, cols);
    const lseCpu = cpuBackend.logsumexpRows(xCpu, rows, cols);
    assertClose(
      await gpu!.read(lse),
      await cpuBackend.read(lseCpu),
      `logsumexpRows ${label}`,
    );
    await assertSame(
      gpu!,
      gpu!.logsumexpRowsBackward(x, lse, gRow, rows, cols),
      cpuBackend.logsumexpRowsBackward(xCpu, lseCpu, gRowCpu, rows, cols),
      `logsumexpRowsBackward ${label}`,
    );
  }
});

gpuTest(
  "gatherRows() and its backward match the CPU with repeats",
  async () => {
    for (
      const [tableRows, cols, picks] of [[20, 64, 50], [7, 3, 1], [5, 4, 0]]
    ) {
      const [table, tableCpu] = twin(
        gpu!,
        randomValues(random, tableRows * cols),
      );
      const index = new Int32Array(picks);
      for (let p = 0; p < picks; p++) index[p] = random.nextInt(tableRows);
      // Inverse index: for each row, the positions that picked it.
      const offsets = new Int32Array(tableRows + 1);
      for (const row of index) offsets[row + 1]++;
      for (let r = 0; r < tableRows; r++) offsets[r + 1] += offsets[r];
      const fill = offsets.slice(0, tableRows);
      const positions = new Int32Array(picks);
      index.forEach((row, p) => positions[fill[row]++] = p);
      await assertSame(
        gpu!,
        gpu!.gatherRows(table, cols, gpu!.uploadInt32(index)),
        cpuBackend.gatherRows(tableCpu, cols, cpuBackend.uploadInt32(index)),
        `gatherRows ${picks} of ${tableRows}`,
      );
      const [g, gCpu] = twin(gpu!, randomValues(random, picks * cols));
      await assertSame(
        gpu!,
        gpu!.gatherRowsBackward(g, cols, {
          rows: tableRows,
          count: picks,
          offsets: gpu!.uploadInt32(offsets),
          positions: gpu!.uploadInt32(positions),
        }),
        cpuBackend.gatherRowsBackward(gCpu, cols, {
          rows: tableRows,
          count: picks,
          offsets: cpuBackend.uploadInt32(offsets),
          positions: cpuBackend.uploadInt32(positions),
        }),
        `gatherRowsBackward ${picks} of ${tableRows}`,
      );
    }
  },
);

gpuTest("concatenation and slicing match the CPU", async () => {
  const rows = 9;
  const widths = [3, 64, 1];
  const parts = widths.map((width) =>
    twin(gpu!, randomValues(random, rows * width))
  );
  await assertSame(
    gpu!,
    gpu!.concatCols(parts.map(([part]) => part), rows, widths),
    cpuBackend.concatCols(parts.map(([, part]) => part), rows, widths),
    "concatCols",
  );
  await assertSame(
    gpu!,
    gpu!.concatRows(parts.map(([part]) => part)),
    cpuBackend.concatRows(parts.map(([, part]) => part)),
    "concatRows",
  );
  const [x, xCpu] = twin(gpu!, randomValues(random, rows * 68));
  for (const [start, count] of [[0, 9], [2, 5], [8, 1], [4, 0]]) {
    await assertSame(
      gpu!,
      gpu!.sliceRows(x, 68, start, count),
      cpuBackend.sliceRows(xCpu, 68, start, count),
      `sliceRows ${start} ${count}`,
    );
  }
  for (const [start, count] of [[0, 68], [3, 64], [67, 1], [5, 0]]) {
    await assertSame(
      gpu!,
      gpu!.sliceCols(x, rows, 68, start, count),
      cpuBackend.sliceCols(xCpu, rows, 68, start, count),
      `sliceCols ${start} ${count}`,
    );
  }
});

gpuTest("infoNce() and its backward match the CPU, fused or not", async () => {
  // `splitting` keeps no similarity matrix beyond 128 rows: 130 rows run
  // the fused kernels there, the matmul path everywhere else.
  for (
    const [backend, rows, cols] of [
      [gpu!, 70, 64],
      [gpu!, 1, 5],
      [gpu!, 3, 100],
      [splitting!, 130, 16],
      [splitting!, 100, 64],
    ] as const
  ) {
    const [x0, x0Cpu] = twin(backend, randomValues(random, rows * cols));
    const [y0, y0Cpu] = twin(backend, randomValues(random, rows * cols));
    const x = backend.normalizeRows(x0, rows, cols, 1e-12);
    const y = backend.normalizeRows(y0, rows, cols, 1e-12);
    const xCpu = cpuBackend.normalizeRows(x0Cpu, rows, cols, 1e-12);
    const yCpu = cpuBackend.normalizeRows(y0Cpu, rows, cols, 1e-12);
    const forward = backend.infoNce(x, y, rows, cols, 0.2);
    assert.equal(
      forward.probabilities === undefined,
      backend === splitting && rows > 128,
      "fused kernels exactly where the similarity matrix does not fit",
    );
    const forwardCpu = cpuBackend.infoNce(xCpu, yCpu, rows, cols, 0.2);
    const label = `[${rows}×${cols}]`;
    assertClose(
      await backend.read(forward.loss),
      await cpuBackend.read(forwardCpu.loss),
      `infoNce loss ${label}`,
    );
    assertClose(
      await backend.read(forward.logsumexp),
      await cpuBackend.read(forwardCpu.logsumexp),
      `infoNce logsumexp ${label}`,
    );
    const [g, gCpu] = twin(backend, new Float32Array([1.5]));
    const grads = backend.infoNceBackward(x, y, forward, g, rows, cols, 0.2);
    const gradsCpu = cpuBackend.infoNceBackward(
      xCpu,
      yCpu,
      forwardCpu,
      gCpu,
      rows,
      cols,
      0.2,
    );
    await assertSame(backend, grads.x, gradsCpu.x, `infoNce dx ${label}`);
    await assertSame(backend, grads.y, gradsCpu.y, `infoNce dy ${label}`);
  }
  const empty = gpu!.uploadFloat32(new Float32Array(0));
  const { loss } = gpu!.infoNce(empty, empty, 0, 4, 0.2);
  assert.ok(Number.isNaN((await gpu!.read(loss))[0]), "mean of no rows");
});

gpuTest(
  "bpr() and its backward match the CPU for ε = 0 and ε > 0",
  async () => {
    for (const [rows, cols] of [[70, 64], [1, 3]]) {
      for (const epsilon of [0, 1e-10]) {
        const [u, uCpu] = twin(gpu!, randomValues(random, rows * cols, 2));
        const [p, pCpu] = twin(gpu!, randomValues(random, rows * cols, 2));
        const [n, nCpu] = twin(gpu!, randomValues(random, rows * cols, 2));
        const forward = gpu!.bpr(u, p, n, rows, cols, epsilon);
        const forwardCpu = cpuBackend.bpr(
          uCpu,
          pCpu,
          nCpu,
          rows,
          cols,
          epsilon,
        );
        const label = `[${rows}×${cols}] ε=${epsilon}`;
        assertClose(
          await gpu!.read(forward.loss),
          await cpuBackend.read(forwardCpu.loss),
          `bpr ${label}`,
          1e-5,
        );
        const [g, gCpu] = twin(gpu!, new Float32Array([0.75]));
        const grads = gpu!.bprBackward(
          u,
          p,
          n,
          forward.difference,
          g,
          rows,
          cols,
          epsilon,
        );
        const gradsCpu = cpuBackend.bprBackward(
          uCpu,
          pCpu,
          nCpu,
          forwardCpu.difference,
          gCpu,
          rows,
          cols,
          epsilon,
        );
        for (const part of ["user", "positive", "negative"] as const) {
          await assertSame(
            gpu!,
            grads[part],
            gradsCpu[part],
            `bpr d${part} ${label}`,
            1e-5,
          );
        }
      }
    }
  },
);

gpuTest(
  "gatedProjection() and its backward match the CPU on odd shapes",
  async () => {
    for (const [rows, cols] of [[1, 3], [70, 64], [13, 5], [0, 4]]) {
      const [e, eCpu] = twin(gpu!, randomValues(random, rows * cols, 2));
      const [z, zCpu] = twin(gpu!, randomValues(random, rows * cols, 8));
      const [b, bCpu] = twin(gpu!, randomValues(random, cols));
      const [g, gCpu] = twin(gpu!, randomValues(random, rows * cols));
      const label = `[${rows}×${cols}]`;
      await assertSame(
        gpu!,
        gpu!.gatedProjection(e, z, b, rows, cols),
        cpuBackend.gatedProjection(eCpu, zCpu, bCpu, rows, cols),
        `gatedProjection ${label}`,
      );
      const grads = gpu!.gatedProjectionBackward(e, z, b, g, rows, cols);
      const gradsCpu = cpuBackend.gatedProjectionBackward(
        eCpu,
        zCpu,
        bCpu,
        gCpu,
        rows,
        cols,
      );
      for (const part of ["item", "preactivation"] as const) {
        await assertSame(
          gpu!,
          grads[part],
          gradsCpu[part],
          `gatedProjectionBackward d${part} ${label}`,
        );
      }
      for (const storage of [e, z, b, g]) gpu!.free(storage);
    }
  },
);

gpuTest(
  "attentionFusion() and its backward match the CPU for 1 to 3 views, split or not",
  async () => {
    // [150, 64, 3] runs in three row windows on `splitting`.
    const shapes = [
      [1, 3, 3],
      [70, 64, 3],
      [65, 7, 2],
      [9, 5, 1],
      [0, 4, 3],
      [150, 64, 3],
    ];
    for (const backend of [gpu!, splitting!]) {
      for (const [rows, cols, views] of shapes) {
        const stacked = views * rows * cols;
        const [x, xCpu] = twin(backend, randomValues(random, stacked, 2));
        const [z, zCpu] = twin(backend, randomValues(random, stacked, 4));
        const [b, bCpu] = twin(backend, randomValues(random, cols));
        const [w, wCpu] = twin(backend, randomValues(random, cols, 2));
        const [g, gCpu] = twin(backend, randomValues(random, rows * cols));
        const label = `${
          backend === gpu ? "" : "split "
        }[${rows}×${cols}] × ${views}`;
        const forward = backend.attentionFusion(x, z, b, w, rows, cols, views);
        const forwardCpu = cpuBackend.attentionFusion(
          xCpu,
          zCpu,
          bCpu,
          wCpu,
          rows,
          cols,
          views,
        );
        assertClose(
          await backend.read(forward.attention),
          await cpuBackend.read(forwardCpu.attention),
          `attentionFusion attention ${label}`,
        );
        await assertSame(
          backend,
          forward.fused,
          forwardCpu.fused,
          `attentionFusion fused ${label}`,
        );
        // Both backwards read the CPU's attention, so that only the
        // backward kernels are compared.
        const [a] = twin(backend, await cpuBackend.read(forwardCpu.attention));
        const grads = backend.attentionFusionBackward(
          x,
          z,
          b,
          w,
          a,
          g,
          rows,
          cols,
          views,
        );
        const gradsCpu = cpuBackend.attentionFusionBackward(
          xCpu,
          zCpu,
          bCpu,
          wCpu,
          forwardCpu.attention,
          gCpu,
          rows,
          cols,
          views,
        );
        for (
          const part of ["views", "preactivation", "queryVectorRows"] as const
        ) {
          await assertSame(
            backend,
            grads[part],
            gradsCpu[part],
            `attentionFusionBackward d${part} ${label}`,
            1e-4,
          );
        }
        for (const storage of [x, z, b, w, g, a, forward.attention]) {
          backend.free(storage);
        }
      }
    }
  },
);

gpuTest("adam() matches the CPU over three steps, split or not", async () => {
  for (const backend of [gpu!, splitting!]) {
    for (const length of [1, 1000, 40000]) {
      const [theta, thetaCpu] = twin(backend, randomValues(random, length));
      const m = backend.fill(length, 0);
      const v = backend.fill(length, 0);
      const mCpu = cpuBackend.fill(length, 0);
      const vCpu = cpuBackend.fill(length, 0);
      for (let t = 1; t <= 3; t++) {
        const [g, gCpu] = twin(backend, randomValues(random, length));
        const step = {
          learningRate: 1e-3,
          beta1: 0.9,
          beta2: 0.999,
          epsilon: 1e-8,
          biasCorrection1: 1 - 0.9 ** t,
          biasCorrection2: 1 - 0.999 ** t,
        };
        backend.adam(theta, g, m, v, step);
        cpuBackend.adam(thetaCpu, gCpu, mCpu, vCpu, step);
      }
      assertClose(
        await backend.read(theta),
        await cpuBackend.read(thetaCpu),
        `adam θ ${length}`,
      );
      assertClose(
        await backend.read(v),
        await cpuBackend.read(vCpu),
        `adam v ${length}`,
      );
    }
  }
});

gpuTest("scoreTopK() ranks like selectTopK() with masks and ties", async () => {
  const users = 40;
  const items = 300;
  const cols = 8;
  const userValues = randomValues(random, users * cols);
  const itemValues = randomValues(random, items * cols);
  // Items 10..19 repeat item 0, so scores tie and the smaller index wins.
  for (let i = 10; i < 20; i++) {
    itemValues.copyWithin(i * cols, 0, cols);
  }
  const block = Int32Array.from([3, 0, 39, 17, 3]);
  const offsets = new Int32Array(block.length + 1);
  const masked: number[] = [];
  for (let r = 0; r < block.length; r++) {
    for (let item = 0; item < items; item++) {
      if (random.nextFloat() < 0.1 || (r === 1 && item < 15)) masked.push(item);
    }
    offsets[r + 1] = masked.length;
  }
  const maskedItems = Int32Array.from(masked);
  const userTable = gpu!.uploadFloat32(userValues);
  const itemTable = gpu!.uploadFloat32(itemValues);
  const userRows = cpuBackend.gatherRows(
    cpuBackend.uploadFloat32(userValues),
    cols,
    cpuBackend.uploadInt32(block),
  );
  const scores = await cpuBackend.read(
    cpuBackend.matmul(
      userRows,
      cpuBackend.uploadFloat32(itemValues),
      block.length,
      cols,
      items,
      false,
      true,
    ),
  );
  for (let r = 0; r < block.length; r++) {
    for (let e = offsets[r]; e < offsets[r + 1]; e++) {
      scores[r * items + maskedItems[e]] = MASKED_SCORE;
    }
  }
  for (const k of [1, 20, 50, 128]) {
    const expected = selectTopK(scores, block.length, items, k);
    const result = await gpu!.scoreTopK(userTable, itemTable, cols, block, k, {
      offsets,
      items: maskedItems,
    });
    // Scores may differ in the last bit (fma), which can swap near-ties:
    // compare each list's scores, and the items where scores are apart.
    for (let r = 0; r < block.length; r++) {
      for (let place = 0; place < k; place++) {
        const expectedItem = expected[r * k + place];
        const gotItem = result.items[r * k + place];
        const expectedScore = scores[r * items + expectedItem];
        assertClose(
          new Float32Array([result.scores[r * k + place]]),
          new Float32Array([expectedScore]),
          `top-${k} score of user ${block[r]} at ${place}`,
        );
        if (gotItem !== expectedItem) {
          assert.ok(
            Math.abs(scores[r * items + gotItem] - expectedScore) < 1e-5,
            `top-${k} user ${block[r]} place ${place}: ${gotItem} vs ` +
              `${expectedItem}`,
          );
        }
      }
    }
  }
  // The exact ties: item 0 and its copies 10..19 score the same, so in a
  // full ranking they stand together, in index order.
  const tied = await gpu!.scoreTopK(
    gpu!.uploadFloat32(itemValues.slice(0, cols)),
    itemTable,
    cols,
    Int32Array.from([0]),
    items,
    { offsets: Int32Array.from([0, 0]), items: new Int32Array(0) },
  );
  const first = tied.items.indexOf(0);
  assert.deepEqual(
    Array.from(tied.items.subarray(first, first + 11)),
    [0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
  );
  await assert.rejects(
    () =>
      gpu!.scoreTopK(userTable, itemTable, cols, block, 0, {
        offsets,
        items: maskedItems,
      }),
    RangeError,
  );
});

gpuTest("scoreTopK() reports a NaN score instead of ranking it", async () => {
  const itemValues = new Float32Array([1, 0, NaN, 0, 0, 1]);
  await assert.rejects(
    () =>
      gpu!.scoreTopK(
        gpu!.uploadFloat32(new Float32Array([1, 1])),
        gpu!.uploadFloat32(itemValues),
        2,
        Int32Array.from([0]),
        2,
        { offsets: Int32Array.from([0, 0]), items: new Int32Array(0) },
      ),
    /NaN/,
  );
});

gpuTest(
  "a storage used after free() is an error; freeing twice is not",
  async () => {
    const x = gpu!.uploadFloat32(new Float32Array([1, 2]));
    gpu!.free(x);
    gpu!.free(x);
    assert.throws(() => gpu!.scale(x, 2), /after free/);
    assert.throws(
      () => gpu!.scale(cpuBackend.uploadFloat32(new Float32Array(1)), 2),
      TypeError,
    );
    assert.ok(gpu instanceof WebGpuBackend);
    await gpu!.synchronize();
  },
);

gpuTest(
  "rankTopK() gives the same lists through topKBlock on WebGPU",
  async () => {
    // Small integer embeddings: every score is exact in float32, so the two
    // paths must agree item for item, ties included.
    const userCount = 30;
    const itemCount = 90;
    const cols = 4;
    const integers = (length: number) =>
      Float32Array.from({ length }, () => random.nextInt(5) - 2);
    const userValues = integers(userCount * cols);
    const itemValues = integers(itemCount * cols);
    const trainOffsets = new Int32Array(userCount + 1);
    const trainItems: number[] = [];
    for (let u = 0; u < userCount; u++) {
      for (let i = 0; i < itemCount; i++) {
        if (random.nextFloat() < 0.1) trainItems.push(i);
      }
      trainOffsets[u + 1] = trainItems.length;
    }
    const dataset = {
      itemCount,
      trainOffsets,
      trainItems: Int32Array.from(trainItems),
    } as unknown as Dataset;
    const cpuSource = {
      async scoreBlock(block: Int32Array) {
        const rows = cpuBackend.gatherRows(
          cpuBackend.uploadFloat32(userValues),
          cols,
          cpuBackend.uploadInt32(block),
        );
        return await cpuBackend.read(
          cpuBackend.matmul(
            rows,
            cpuBackend.uploadFloat32(itemValues),
            block.length,
            cols,
            itemCount,
            false,
            true,
          ),
        );
      },
    };
    const gpuSource = {
      scoreBlock: () => Promise.reject(new Error("topKBlock is used instead")),
      topKBlock: gpu!.topKBlock(
        gpu!.uploadFloat32(userValues),
        gpu!.uploadFloat32(itemValues),
        cols,
      ),
    };
    const users = Int32Array.from({ length: userCount }, (_, u) => u);
    for (const k of [1, 10, 50]) {
      assert.deepEqual(
        await rankTopK(dataset, gpuSource, users, k, 7),
        await rankTopK(dataset, cpuSource, users, k, 7),
        `top ${k}`,
      );
    }
  },
);
