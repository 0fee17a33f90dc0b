import assert from "node:assert/strict";
import {
  Adam,
  add,
  type Backend,
  bprLoss,
  concatRows,
  CpuIndexStorage,
  CpuStorage,
  createCpuBackend,
  exp,
  gatherRows,
  indices,
  infoNce,
  isGradEnabled,
  Linear,
  matmul,
  meanOf,
  mul,
  noGrad,
  norm,
  Parameter,
  scale,
  sparseConstant,
  splitRows,
  spmm,
  squaredNorm,
  sum,
  type Tensor,
  tensor,
  tidy,
} from "../engine.ts";
import { Random } from "../src/random.ts";

/** A float32 CPU backend that counts storages not yet freed. */
function countingBackend(): { backend: Backend; live: Set<object> } {
  const inner = createCpuBackend();
  const live = new Set<object>();
  const track = (value: unknown): unknown => {
    if (value instanceof CpuStorage || value instanceof CpuIndexStorage) {
      live.add(value);
    } else if (value !== null && typeof value === "object") {
      for (const part of Object.values(value)) track(part);
    }
    return value;
  };
  const backend = new Proxy(inner, {
    get(target, property) {
      const value = Reflect.get(target, property);
      if (typeof value !== "function") return value;
      if (property === "free") {
        return (storage: object) => {
          live.delete(storage);
          target.free(storage as CpuStorage);
        };
      }
      return (...args: unknown[]) => track(value.apply(target, args));
    },
  });
  return { backend, live };
}

Deno.test("backward() frees every intermediate and leaks no storage", () => {
  const { backend, live } = countingBackend();
  const random = new Random(3);
  const users = new Parameter(
    "user_embedding.weight",
    Array.from({ length: 24 }, () => random.nextFloat() - 0.5),
    [6, 4],
    backend,
  );
  const items = new Parameter(
    "item_embedding.weight",
    Array.from({ length: 20 }, () => random.nextFloat() - 0.5),
    [5, 4],
    backend,
  );
  const layer = new Linear("gate_v.0", 4, 4, random, { backend });
  const graph = sparseConstant({
    rows: 11,
    cols: 11,
    rowOffsets: new Int32Array([0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]),
    columnIndices: new Int32Array([6, 7, 8, 9, 10, 0, 1, 7, 2, 3, 4, 5]),
    values: new Float32Array(12).fill(0.5),
  }, backend);
  const baseline = live.size;
  const parameters = [users, items, ...layer.parameters()];
  const optimizer = new Adam(parameters, { learningRate: 0.01 });
  const batchUsers = indices([0, 3, 3, 5], backend);
  const positives = indices([1, 1, 4, 0], backend);
  const negatives = indices([2, 0, 3, 3], backend);

  for (let step = 0; step < 2; step++) {
    const all = concatRows([users, layer.forward(items)]);
    const propagated = meanOf([spmm(graph, all), all]);
    const [finalUsers, finalItems] = splitRows(propagated, [6, 5]);
    const u = gatherRows(finalUsers, batchUsers);
    const p = gatherRows(finalItems, positives);
    const n = gatherRows(finalItems, negatives);
    const loss = add(
      add(bprLoss(u, p, n), infoNce(u, p, 0.2)),
      mul(squaredNorm(users), tensor([1e-3], [], backend)),
    );
    loss.backward();
    optimizer.step();
    optimizer.zeroGrad();
    loss.free();
  }

  batchUsers.free();
  positives.free();
  negatives.free();
  optimizer.free();
  // What remains: the parameters and the graph (constant scalars were
  // created inside the loop as leaves and are the only other survivors).
  const leaves = [...live].length - baseline;
  assert.equal(
    leaves,
    2,
    `expected only the two 1e-3 constants, got ${leaves}`,
  );
  graph.free();
});

Deno.test("an intermediate read after backward() throws a message naming retain()", async () => {
  const w = new Parameter("w", [1, 2, 3, 4], [2, 2]);
  const hidden = matmul(w, w);
  const loss = sum(hidden);
  loss.backward();
  assert.equal(hidden.isFreed, true);
  await assert.rejects(
    () => hidden.toArray(),
    /freed after backward\(\).*matmul.*retain\(\)/,
  );
  assert.equal(await loss.item(), 54);
});

Deno.test("retain() keeps an intermediate readable after backward()", async () => {
  const w = new Parameter("w", [1, 2, 3, 4], [2, 2]);
  const hidden = matmul(w, w).retain();
  sum(hidden).backward();
  assert.deepEqual(Array.from(await hidden.toArray()), [7, 10, 15, 22]);
});

Deno.test("gradients accumulate across backward() calls until zeroGrad()", async () => {
  const w = new Parameter("w", [1, -2], [2]);
  squaredNorm(w).backward();
  squaredNorm(w).backward();
  assert.deepEqual(Array.from(await w.grad!.toArray()), [4, -8]);
  w.zeroGrad();
  assert.equal(w.grad, null);
  sum(w).backward();
  assert.deepEqual(Array.from(await w.grad!.toArray()), [1, 1]);
});

Deno.test("backward({ retainGraph: true }) allows a second pass", async () => {
  const w = new Parameter("w", [3], []);
  const loss = squaredNorm(matmul(w, w));
  loss.backward({ retainGraph: true });
  loss.backward();
  // d(w⁴)/dw = 4 w³ = 108, twice
  assert.equal(await w.grad!.item(), 216);
});

Deno.test("noGrad() records nothing and restores recording afterwards", async () => {
  const w = new Parameter("w", [1, 2], [2]);
  const y = noGrad(() => squaredNorm(w));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.node, null);
  assert.equal(isGradEnabled(), true);
  assert.throws(() =>
    noGrad(() => {
      throw new Error("inside");
    }), /inside/);
  assert.equal(isGradEnabled(), true);
  const pending = noGrad(async () => {
    await Promise.resolve();
    return isGradEnabled();
  });
  assert.equal(await pending, false);
  assert.equal(isGradEnabled(), true);
  assert.throws(() => y.backward(), /noGrad/);
});

Deno.test("backward() needs a one-value tensor", () => {
  const w = new Parameter("w", [1, 2], [2]);
  assert.throws(() => mul(w, w).backward(), /one-value tensor.*\[2\]/);
});

Deno.test("a constant input gets no gradient and no graph", () => {
  const x = tensor([1, 2], [2]);
  const y = mul(x, x);
  assert.equal(y.requiresGrad, false);
  assert.equal(y.node, null);
});

Deno.test("composite ops under noGrad() leave no temporaries behind", () => {
  const { backend, live } = countingBackend();
  const x = tensor([1, 2, 3, 4, 5, 6], [3, 2], backend);
  const y = tensor([1, 0, 0, 1, 1, 1], [3, 2], backend);
  const results = noGrad(() => [infoNce(x, y, 0.2), norm(x)]);
  for (const result of [...results, x, y]) result.free();
  assert.equal(live.size, 0);
});

Deno.test("tidy() frees the temporaries of a no-grad computation but keeps what it returns", async () => {
  const x = tensor([1, 2, 3, 4], [2, 2]);
  const temporaries: Tensor[] = [];
  const { kept, list } = tidy(() =>
    noGrad(() => {
      const doubled = scale(x, 2);
      const summed = add(doubled, x);
      temporaries.push(doubled, summed);
      return { kept: mul(summed, x), list: [exp(x)] };
    })
  );
  assert.deepEqual([...await kept.toArray()], [3, 12, 27, 48]);
  assert.equal(list[0].isFreed, false);
  for (const temporary of temporaries) assert.ok(temporary.isFreed);
  assert.equal(x.isFreed, false);
});
