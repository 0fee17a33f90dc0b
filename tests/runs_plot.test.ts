import assert from "node:assert/strict";
import { join } from "node:path";
import {
  combinationLabel,
  gridSvg,
  lineChartSvg,
  type PlotEpoch,
  writeRunPlots,
} from "../src/plot.ts";

/**
 * Checks that a document is well-formed XML as far as SVG needs: balanced,
 * properly nested tags, quoted attributes, escaped text. Returns the count
 * of each element name.
 */
function checkWellFormed(xml: string): Map<string, number> {
  const counts = new Map<string, number>();
  const open: string[] = [];
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let position = 0;
  while (position < xml.length) {
    const next = xml.indexOf("<", position);
    const textEnd = next === -1 ? xml.length : next;
    const text = xml.slice(position, textEnd);
    assert.ok(!/&(?!#\d+;|amp;|lt;|gt;|quot;|apos;)/.test(text), text);
    assert.ok(!text.includes(">"), `stray '>' in ${JSON.stringify(text)}`);
    if (next === -1) break;
    token.lastIndex = next;
    const match = token.exec(xml);
    assert.ok(match, `malformed tag at ${xml.slice(next, next + 60)}`);
    const [, closing, name, , selfClosing] = match;
    if (closing) {
      assert.equal(open.pop(), name, `</${name}> closes the wrong element`);
    } else {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      if (!selfClosing) open.push(name);
    }
    position = token.lastIndex;
  }
  assert.deepEqual(open, [], "every element is closed");
  return counts;
}

function epochs(count: number): PlotEpoch[] {
  return Array.from({ length: count }, (_, epoch) => ({
    epoch,
    train_loss: 0.7 / (epoch + 1),
    valid: { "recall@20": 0.01 * epoch, "ndcg@20": 0.005 * epoch },
    test: { "recall@20": 0.009 * epoch, "ndcg@20": 0.004 * epoch },
  }));
}

Deno.test("lineChartSvg() draws well-formed SVG with one line per series", () => {
  const svg = lineChartSvg({
    title: "Loss & <metrics>",
    xLabel: "epoch",
    yLabel: "value",
    series: [
      { name: "train", points: [[0, 1], [1, 0.5], [2, NaN], [3, 0.25]] },
      { name: 'valid "R@20"', points: [[0, 0.1], [3, 0.3]], dashed: true },
    ],
  });

  const counts = checkWellFormed(svg);
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.equal(counts.get("svg"), 1);
  assert.equal(counts.get("polyline"), 2);
  assert.equal(counts.get("circle"), 3 + 2, "the NaN point is left out");
  assert.ok(svg.includes("Loss &#38; &#60;metrics&#62;"));
  assert.ok(svg.includes('data-name="train"'));
  assert.ok(svg.includes('data-name="valid &#34;R@20&#34;"'));
  assert.ok(svg.includes('stroke-dasharray="6 4"'));
  for (const tick of ["0", "1", "2", "3"]) {
    assert.ok(svg.includes(`>${tick}</text>`), `x tick ${tick}`);
  }
  assert.ok(svg.includes(">epoch</text>") && svg.includes(">value</text>"));
});

Deno.test("lineChartSvg() maps the data range onto the plot area", () => {
  const svg = lineChartSvg({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    series: [{ name: "s", points: [[0, 0], [10, 1]] }],
    width: 500,
    height: 300,
  });
  const points = svg.match(/points="([^"]+)"/)![1].split(" ").map((p) =>
    p.split(",").map(Number)
  );
  assert.equal(points.length, 2);
  const [[x0, y0], [x1, y1]] = points;
  assert.ok(x0 < x1 && y0 > y1, "x grows rightwards, y upwards");
  assert.equal(x0, 78, "x = 0 sits on the y axis");
  assert.equal(y1, 48, "y = 1 (top tick) sits at the top margin");
});

Deno.test("lineChartSvg() without points says there is no data", () => {
  const svg = lineChartSvg({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    series: [],
  });
  checkWellFormed(svg);
  assert.ok(svg.includes("no data to plot"));
});

Deno.test("gridSvg() draws one bar per finite value and marks the best", () => {
  const svg = gridSvg({
    title: "grid",
    yLabel: "recall@20",
    categories: ["n_layers=1", "n_layers=2", "n_layers=3"],
    series: [
      { name: "valid recall@20", values: [0.08, 0.09, null] },
      { name: "test recall@20", values: [0.07, 0.085, 0.06] },
    ],
    highlight: 1,
  });
  const counts = checkWellFormed(svg);
  assert.equal(svg.match(/class="bar"/g)!.length, 5);
  assert.equal(svg.match(/class="highlight"/g)!.length, 1);
  assert.ok(svg.includes("★ best valid"));
  assert.ok(counts.get("rect")! >= 5);
  assert.throws(
    () =>
      gridSvg({
        title: "g",
        yLabel: "y",
        categories: ["a", "b"],
        series: [{ name: "s", values: [1] }],
      }),
    /series "s" has 1 values for 2 categories/,
  );
});

Deno.test("combinationLabel() names every hyper-parameter", () => {
  assert.equal(
    combinationLabel({ n_layers: 2, cl_weight: 0.01 }),
    "n_layers=2 cl_weight=0.01",
  );
  assert.equal(combinationLabel({}), "(defaults)");
});

Deno.test("writeRunPlots() writes loss, metrics and grid charts", async () => {
  const folder = await Deno.makeTempDir({ prefix: "msca-plot-" });
  try {
    const written = await writeRunPlots(folder, {
      epochs: epochs(5),
      best_epoch: 3,
      combinations: [
        {
          parameters: { seed: 1 },
          best_valid: { "recall@20": 0.1 },
          test_at_best_valid: { "recall@20": 0.09 },
        },
        {
          parameters: { seed: 2 },
          best_valid: { "recall@20": 0.12 },
          test_at_best_valid: { "recall@20": 0.1 },
        },
      ],
      best_combination: 1,
    });
    assert.deepEqual(written, [
      join(folder, "loss.svg"),
      join(folder, "metrics.svg"),
      join(folder, "grid.svg"),
    ]);

    const loss = await Deno.readTextFile(join(folder, "loss.svg"));
    assert.equal(checkWellFormed(loss).get("polyline"), 1);
    const metrics = await Deno.readTextFile(join(folder, "metrics.svg"));
    assert.equal(checkWellFormed(metrics).get("polyline"), 4);
    for (
      const name of [
        "valid recall@20",
        "test recall@20",
        "valid ndcg@20",
        "test ndcg@20",
      ]
    ) {
      assert.ok(metrics.includes(`data-name="${name}"`), name);
    }
    assert.ok(metrics.includes(">best valid (epoch 3)</text>"));
    const grid = await Deno.readTextFile(join(folder, "grid.svg"));
    checkWellFormed(grid);
    assert.ok(grid.includes("seed=2"));
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("writeRunPlots() reads a grid summary shaped like the trainer's result", async () => {
  const folder = await Deno.makeTempDir({ prefix: "msca-plot-" });
  try {
    const combination = (layers: number, score: number) => ({
      parameters: { seed: 999, n_layers: layers },
      result: {
        epochs: epochs(3 + layers),
        best_epoch: 1 + layers,
        best_valid: { "recall@20": score },
        test_at_best_valid: { "recall@20": score - 0.01 },
      },
    });
    await writeRunPlots(folder, {
      combinations: [combination(1, 0.1), combination(2, 0.2)],
      best_by_valid: 1,
    });
    const metrics = await Deno.readTextFile(join(folder, "metrics.svg"));
    assert.ok(metrics.includes(">best valid (epoch 3)</text>"));
    assert.equal(
      metrics.match(/<circle /g)!.length,
      4 * 5,
      "the best combination's five epochs on four lines",
    );
    const grid = await Deno.readTextFile(join(folder, "grid.svg"));
    assert.equal(grid.match(/class="bar"/g)!.length, 4);
    assert.ok(grid.includes(">n_layers=2</text>"), "constant seed left out");
    assert.ok(grid.includes("0.1900</title>"));
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("deno task plot redraws a run folder and reports a bad one in one line", async () => {
  const folder = await Deno.makeTempDir({ prefix: "msca-plot-" });
  const cli = new URL("../src/cli/plot.ts", import.meta.url).pathname;
  const run = (...args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", cli, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
  try {
    await Deno.writeTextFile(
      join(folder, "summary.json"),
      JSON.stringify({ epochs: epochs(3), best_epoch: 2 }),
    );
    const good = await run(folder);
    assert.equal(good.code, 0, new TextDecoder().decode(good.stderr));
    assert.match(new TextDecoder().decode(good.stdout), /wrote .*metrics\.svg/);
    checkWellFormed(await Deno.readTextFile(join(folder, "metrics.svg")));

    const missing = await run(join(folder, "nothing"));
    const stderr = new TextDecoder().decode(missing.stderr).trim();
    assert.equal(missing.code, 1);
    assert.equal(stderr.split("\n").length, 1, stderr);
    assert.match(stderr, /^error: .*nothing\/summary\.json: not found/);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});
