import assert from "node:assert/strict";
import { join } from "node:path";
import type { Dataset } from "../src/data/dataset.ts";
import { decodeGraph, encodeGraph, graphCacheKey } from "../src/graph/cache.ts";
import {
  buildGraphs,
  type GraphProgress,
  modalityGraph,
  normalizedAdjacency,
  structuralGraph,
} from "../src/graph/graphs.ts";
import { loadFixtureDataset } from "./graph_fixture.ts";

const tiny = loadFixtureDataset("tests/fixtures/msca-tiny/data/tiny");

async function cacheFiles(cacheDir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(join(cacheDir, "graphs"))) {
    names.push(entry.name);
  }
  return names.sort();
}

function stages(events: GraphProgress[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const event of events) {
    if (event.stage !== "building") result[event.graph] = event.stage;
  }
  return result;
}

Deno.test("encodeGraph() and decodeGraph() round-trip, and damaged bytes decode to null", () => {
  const graph = normalizedAdjacency(tiny);
  const bytes = encodeGraph(graph);
  assert.deepEqual(decodeGraph(bytes), graph);
  const flipped = bytes.slice();
  flipped[100] ^= 1;
  assert.equal(decodeGraph(flipped), null);
  assert.equal(decodeGraph(bytes.subarray(0, bytes.length - 1)), null);
  assert.equal(
    decodeGraph(new TextEncoder().encode("not a graph at all")),
    null,
  );
});

Deno.test("graphCacheKey() changes with any part and frames parts by length", () => {
  const base = graphCacheKey(["structural", 10, new Int32Array([1, 2, 3])]);
  assert.equal(
    base,
    graphCacheKey(["structural", 10, new Int32Array([1, 2, 3])]),
  );
  assert.notEqual(
    base,
    graphCacheKey(["structural", 11, new Int32Array([1, 2, 3])]),
  );
  assert.notEqual(
    base,
    graphCacheKey(["structural", 10, new Int32Array([1, 2, 4])]),
  );
  assert.notEqual(graphCacheKey(["ab", "c"]), graphCacheKey(["a", "bc"]));
  assert.notEqual(graphCacheKey(["1"]), graphCacheKey([1]));
});

Deno.test("buildGraphs() builds MSCA's graphs once, then reads them from the cache", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    const events: GraphProgress[] = [];
    const options = {
      knn_k: 10,
      cacheDir,
      modelKind: "MSCA" as const,
      onProgress: (event: GraphProgress) => events.push(event),
    };
    const first = await buildGraphs(tiny, options);
    assert.deepEqual(stages(events), {
      adjacency: "built",
      user_item: "built",
      structural: "built",
      image: "built",
      text: "built",
    });
    assert.equal((await cacheFiles(cacheDir)).length, 5);
    const imageBuilding = events.filter((event) =>
      event.graph === "image" && event.stage === "building"
    ).map((event) => event.fraction);
    assert.equal(imageBuilding[0], 0);
    assert.equal(imageBuilding.at(-1), 1);
    assert.ok(
      events.some((event) =>
        event.graph === "structural" && event.stage === "building"
      ),
    );
    assert.deepEqual(first.structural, structuralGraph(tiny, 10));
    assert.deepEqual(
      first.modality.image,
      await modalityGraph(tiny.features.image!, 10),
    );

    events.length = 0;
    const second = await buildGraphs(tiny, options);
    assert.deepEqual(Object.values(stages(events)), Array(5).fill("cached"));
    assert.deepEqual(second, first);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("buildGraphs() rebuilds exactly the graphs whose parameters or inputs changed", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    const events: GraphProgress[] = [];
    const build = (dataset: Dataset, k: number) =>
      buildGraphs(dataset, {
        knn_k: k,
        cacheDir,
        modelKind: "MSCA",
        onProgress: (event) => events.push(event),
      });
    await build(tiny, 10);

    events.length = 0;
    await build(tiny, 5);
    assert.deepEqual(stages(events), {
      adjacency: "cached",
      user_item: "cached",
      structural: "built",
      image: "built",
      text: "built",
    });

    const image = tiny.features.image!;
    const changedImage = { ...image, data: image.data.slice() };
    changedImage.data[0] += 0.5;
    events.length = 0;
    await build({
      ...tiny,
      features: { ...tiny.features, image: changedImage },
    }, 10);
    assert.deepEqual(stages(events), {
      adjacency: "cached",
      user_item: "cached",
      structural: "cached",
      image: "built",
      text: "cached",
    });

    const items = tiny.train.items.slice();
    items[0] = (items[0] + 1) % tiny.itemCount;
    events.length = 0;
    await build({ ...tiny, train: { users: tiny.train.users, items } }, 10);
    assert.deepEqual(stages(events), {
      adjacency: "built",
      user_item: "built",
      structural: "built",
      image: "cached",
      text: "cached",
    });

    events.length = 0;
    const lightGcn = await buildGraphs(tiny, {
      knn_k: 10,
      cacheDir,
      modelKind: "LightGCN",
      onProgress: (event) => events.push(event),
    });
    assert.deepEqual(stages(events), { adjacency: "built" });
    assert.deepEqual(Object.keys(lightGcn), ["modality", "adjacency"]);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("buildGraphs() rebuilds a corrupt cache file instead of failing", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    const options = { knn_k: 10, cacheDir, modelKind: "MSCA" as const };
    const first = await buildGraphs(tiny, options);
    const names = await cacheFiles(cacheDir);
    for (const [n, name] of names.entries()) {
      const path = join(cacheDir, "graphs", name);
      if (n % 2 === 0) await Deno.writeTextFile(path, "garbage");
      else {
        const bytes = await Deno.readFile(path);
        await Deno.writeFile(path, bytes.subarray(0, bytes.length >> 1));
      }
    }
    const events: GraphProgress[] = [];
    const second = await buildGraphs(tiny, {
      ...options,
      onProgress: (event) => events.push(event),
    });
    assert.deepEqual(Object.values(stages(events)), Array(5).fill("built"));
    assert.deepEqual(second, first);
    assert.deepEqual(await cacheFiles(cacheDir), names);
    const third: GraphProgress[] = [];
    await buildGraphs(tiny, { ...options, onProgress: (e) => third.push(e) });
    assert.deepEqual(Object.values(stages(third)), Array(5).fill("cached"));
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("buildGraphs() writes nothing without a cache folder and rejects unknown models", async () => {
  const graphs = await buildGraphs(tiny, {
    knn_k: 10,
    cacheDir: null,
    modelKind: "MSCA",
  });
  assert.deepEqual(Object.keys(graphs.modality).sort(), ["image", "text"]);
  assert.deepEqual(
    await buildGraphs(tiny, { knn_k: 10, cacheDir: null, modelKind: "BPR" }),
    { modality: {} },
  );
  await assert.rejects(
    () =>
      buildGraphs(tiny, {
        knn_k: 10,
        cacheDir: null,
        // @ts-expect-error: an unknown model, as a config could hold
        modelKind: "FREEDOM",
      }),
    /Unknown model "FREEDOM".*MSCA, LightGCN, BPR/,
  );
});

Deno.test("buildGraphs() gives the same modality graphs with kNN workers and without", async () => {
  const options = { knn_k: 10, cacheDir: null, modelKind: "MSCA" as const };
  const inThread = await buildGraphs(tiny, { ...options, knnWorkers: 0 });
  const withWorkers = await buildGraphs(tiny, {
    ...options,
    knnWorkers: 2,
    blockRows: 32,
  });
  assert.deepEqual(withWorkers, inThread);
  await assert.rejects(
    () => buildGraphs(tiny, { ...options, knnWorkers: -1 }),
    /knnWorkers must be a non-negative integer, got -1/,
  );
});
