import assert from "node:assert/strict";
import {
  formatDuration,
  graphProgress,
  ProgressReporter,
} from "../src/progress.ts";

/** A reporter on a fake clock that records what it writes. */
function recorder(terminal: boolean) {
  const output: string[] = [];
  let clock = 0;
  const reporter = new ProgressReporter({
    terminal,
    write: (text) => output.push(text),
    now: () => clock,
    columns: 100,
    plainIntervalSeconds: 10,
  });
  return {
    reporter,
    output,
    advance: (ms: number) => (clock += ms),
  };
}

Deno.test("ProgressReporter on a terminal redraws one bar line with rate and ETA", () => {
  const { reporter, output, advance } = recorder(true);
  reporter.report("epoch 3", 0, 10, "batches");
  for (let batch = 1; batch <= 10; batch++) {
    advance(500);
    reporter.report("epoch 3", batch, 10, "batches");
  }

  assert.ok(output.length >= 10, "redrawn at each slow enough update");
  assert.ok(output.slice(0, -1).every((text) => text.startsWith("\r")));
  assert.ok(output.every((text) => !text.slice(0, -1).includes("\n")));
  assert.equal(
    output[3],
    "\repoch 3 [████████████████░░░░░░░░░░░░░░░░░░░░░░░░] 4/10 batches  " +
      "2.00 batches/s  ETA 3.0s\x1b[K",
  );
  assert.match(output.at(-2)!, /10\/10 batches {2}2\.00 batches\/s {2}5\.0s/);
  assert.equal(output.at(-1), "\n", "the finished bar ends its line");
});

Deno.test("ProgressReporter on a terminal skips redraws closer than 100 ms", () => {
  const { reporter, output, advance } = recorder(true);
  reporter.report("epoch 0", 0, 100, "batches");
  for (let batch = 1; batch <= 100; batch++) {
    advance(10);
    reporter.report("epoch 0", batch, 100, "batches");
  }
  assert.ok(output.length <= 12, `${output.length} redraws`);
  assert.match(output.at(-2)!, /100\/100 batches/);
});

Deno.test("ProgressReporter without a terminal writes plain lines only", () => {
  const { reporter, output, advance } = recorder(false);
  reporter.report("epoch 1", 0, 30, "batches");
  for (let batch = 1; batch <= 30; batch++) {
    advance(1000);
    reporter.report("epoch 1", batch, 30, "batches");
  }

  assert.deepEqual(output, [
    "epoch 1: 10/30 batches, 1.00 batches/s, ETA 20.0s\n",
    "epoch 1: 20/30 batches, 1.00 batches/s, ETA 10.0s\n",
    "epoch 1: 30 batches in 30.0s (1.00 batches/s)\n",
  ]);
  assert.ok(output.every((line) => !line.includes("\r")));
});

Deno.test("ProgressReporter counts the rate from the first report when it is not 0", () => {
  const { reporter, output, advance } = recorder(false);
  reporter.report("epoch 2", 1, 5, "batches");
  for (let batch = 2; batch <= 5; batch++) {
    advance(4000);
    reporter.report("epoch 2", batch, 5, "batches");
  }
  assert.deepEqual(output, [
    "epoch 2: 4/5 batches, 0.25 batches/s, ETA 4.0s\n",
    "epoch 2: 5 batches in 16.0s (0.25 batches/s)\n",
  ]);
});

Deno.test("ProgressReporter closes a phase when the next one starts", () => {
  const { reporter, output, advance } = recorder(false);
  reporter.report("epoch 0", 1, 4, "batches");
  advance(2000);
  reporter.report("epoch 1", 1, 4, "batches");
  reporter.close();
  reporter.close();
  assert.deepEqual(output, [
    "epoch 0: stopped at 1/4 batches after 2.0s\n",
    "epoch 1: stopped at 1/4 batches after 0.0s\n",
  ]);
});

Deno.test("graphProgress() shows graph building as percentage phases", () => {
  const plain = recorder(false);
  const onProgress = graphProgress(plain.reporter);
  onProgress({ graph: "structural", stage: "building", fraction: 0.25 });
  plain.advance(12_000);
  onProgress({ graph: "structural", stage: "building", fraction: 0.5 });
  plain.advance(3_000);
  onProgress({ graph: "structural", stage: "building", fraction: 1 });
  onProgress({ graph: "structural", stage: "built", fraction: 1 });
  onProgress({ graph: "image", stage: "cached", fraction: 1 });
  assert.deepEqual(plain.output, [
    "structural graph: 50%, ETA 24.0s\n",
    "structural graph: built in 15.0s\n",
    "image graph: read from cache in 0.0s\n",
  ]);

  const terminal = recorder(true);
  const onTerminal = graphProgress(terminal.reporter);
  terminal.advance(1000);
  onTerminal({ graph: "text", stage: "building", fraction: 0.4 });
  terminal.advance(1000);
  onTerminal({ graph: "text", stage: "building", fraction: 0.8 });
  assert.match(terminal.output.at(-1)!, /^\rtext graph \[█+░+\] 80% {2}ETA/);
});

Deno.test("formatDuration() writes seconds, minutes and hours", () => {
  assert.equal(formatDuration(0.42), "0.4s");
  assert.equal(formatDuration(59.94), "59.9s");
  assert.equal(formatDuration(245), "4m05s");
  assert.equal(formatDuration(7380), "2h03m");
  assert.equal(formatDuration(Infinity), "?");
});
