import assert from "node:assert/strict";
import {
  Embedding,
  Linear,
  linearDefault,
  tensor,
  xavierNormal,
  xavierUniform,
} from "../engine.ts";
import { Random } from "../src/random.ts";

function extremes(
  values: Float32Array,
): { low: number; high: number; mean: number } {
  let low = Infinity;
  let high = -Infinity;
  let total = 0;
  for (const v of values) {
    low = Math.min(low, v);
    high = Math.max(high, v);
    total += v;
  }
  return { low, high, mean: total / values.length };
}

Deno.test("xavierUniform() stays within sqrt(6 / (fan_in + fan_out)) and fills the range", () => {
  const values = xavierUniform([300, 64], new Random(1));
  const bound = Math.sqrt(6 / (300 + 64));
  const { low, high, mean } = extremes(values);
  assert.ok(low >= -bound && high <= bound, `${low}, ${high} vs ±${bound}`);
  assert.ok(low < -0.99 * bound && high > 0.99 * bound);
  assert.ok(Math.abs(mean) < 0.01 * bound);
});

Deno.test("xavierNormal() has standard deviation sqrt(2 / (fan_in + fan_out))", () => {
  const values = xavierNormal([500, 100], new Random(2));
  const std = Math.sqrt(2 / 600);
  let squares = 0;
  for (const v of values) squares += v * v;
  const measured = Math.sqrt(squares / values.length);
  assert.ok(Math.abs(measured / std - 1) < 0.02, `${measured} vs ${std}`);
});

Deno.test("linearDefault() bounds weight and bias by 1 / sqrt(fan_in)", () => {
  const random = new Random(3);
  const weight = linearDefault([64, 4096], 4096, random);
  const bias = linearDefault([64], 4096, random);
  const bound = 1 / 64;
  for (const values of [weight, bias]) {
    const { low, high } = extremes(values);
    assert.ok(low >= -bound && high <= bound);
  }
  const { low, high } = extremes(weight);
  assert.ok(low < -0.99 * bound && high > 0.99 * bound);
  assert.equal(bias.length, 64);
});

Deno.test("initialisers are reproducible from a seed and differ across seeds", () => {
  assert.deepEqual(
    xavierUniform([20, 8], new Random(5)),
    xavierUniform([20, 8], new Random(5)),
  );
  assert.deepEqual(
    xavierNormal([20, 8], new Random(5)),
    xavierNormal([20, 8], new Random(5)),
  );
  assert.deepEqual(
    linearDefault([8, 20], 20, new Random(5)),
    linearDefault([8, 20], 20, new Random(5)),
  );
  assert.notDeepEqual(
    xavierUniform([20, 8], new Random(5)),
    xavierUniform([20, 8], new Random(6)),
  );
});

Deno.test("Embedding and Linear use PyTorch state_dict names and shapes", () => {
  const random = new Random(9);
  const users = new Embedding("user_embedding", 10, 4, { random });
  assert.equal(users.weight.name, "user_embedding.weight");
  assert.deepEqual(users.weight.shape, [10, 4]);
  const layer = new Linear("image_trs", 12, 4, random);
  assert.deepEqual(layer.parameters().map((p) => [p.name, p.shape]), [
    ["image_trs.weight", [4, 12]],
    ["image_trs.bias", [4]],
  ]);
  const query = new Linear("query_common.2", 4, 1, random, { bias: false });
  assert.deepEqual(query.parameters().map((p) => p.name), [
    "query_common.2.weight",
  ]);
});

Deno.test("Linear.forward() computes x Wᵀ + b", async () => {
  const layer = new Linear("gate_v.0", 3, 2, new Random(1));
  layer.weight.assign([1, 2, 3, 4, 5, 6]);
  layer.bias!.assign([0.5, -1]);
  const y = await layer.forward(tensor([1, 0, -1, 2, 1, 0], [2, 3])).toArray();
  assert.deepEqual(Array.from(y), [
    1 - 3 + 0.5,
    4 - 6 - 1,
    2 + 2 + 0.5,
    8 + 5 - 1,
  ]);
});

Deno.test("Embedding without random or values is an error", () => {
  assert.throws(
    () => new Embedding("item_id_embedding", 3, 2),
    /give either options.random or options.values/,
  );
});
