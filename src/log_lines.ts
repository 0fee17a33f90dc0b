/**
 * The log lines MMRec users know, as plain strings: the trainer reports
 * numbers through callbacks and the entry points print these lines.
 *
 * @module
 */

import { formatMetrics } from "./evaluation.ts";

/** Metric values by MMRec key, e.g. `{"recall@20": 0.1049}`. */
export type Metrics = Record<string, number>;

/**
 * The line after an epoch's training batches.
 *
 * @param epoch The epoch number as logged (MMRec counts from 0).
 * @param seconds Seconds the epoch's training took.
 * @param loss Mean training loss over the epoch's batches.
 * @returns `epoch 1 training [time: 1.23s, train loss: 0.6931]`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trainingLine } from "./log_lines.ts";
 *
 * assert.equal(
 *   trainingLine(1, 1.234, 0.69314),
 *   "epoch 1 training [time: 1.23s, train loss: 0.6931]",
 * );
 * ```
 */
export function trainingLine(
  epoch: number,
  seconds: number,
  loss: number,
): string {
  return `epoch ${epoch} training [time: ${seconds.toFixed(2)}s, ` +
    `train loss: ${loss.toFixed(4)}]`;
}

/**
 * The line after an epoch's evaluation.
 *
 * @param epoch The epoch number as logged.
 * @param seconds Seconds the evaluation (valid and test) took.
 * @param validScore The `valid_metric` value.
 * @returns `epoch 1 evaluating [time: 0.12s, valid_score: 0.1234]`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { evaluationLine } from "./log_lines.ts";
 *
 * assert.equal(
 *   evaluationLine(1, 0.123, 0.12344),
 *   "epoch 1 evaluating [time: 0.12s, valid_score: 0.1234]",
 * );
 * ```
 */
export function evaluationLine(
  epoch: number,
  seconds: number,
  validScore: number,
): string {
  return `epoch ${epoch} evaluating [time: ${seconds.toFixed(2)}s, ` +
    `valid_score: ${validScore.toFixed(4)}]`;
}

/**
 * The valid and test result lines of one evaluation.
 *
 * @param valid Valid metrics.
 * @param test Test metrics.
 * @returns `["valid result: …", "test result: …"]`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resultLines } from "./log_lines.ts";
 *
 * const [valid, test] = resultLines({ "recall@20": 0.5 }, {
 *   "recall@20": 0.25,
 * });
 * assert.equal(valid, "valid result: recall@20: 0.5000");
 * assert.equal(test, "test result: recall@20: 0.2500");
 * ```
 */
export function resultLines(valid: Metrics, test: Metrics): string[] {
  return [
    `valid result: ${formatMetrics(valid)}`,
    `test result: ${formatMetrics(test)}`,
  ];
}

/**
 * The marker MMRec prints when the valid score improves.
 *
 * @param model Model name.
 * @returns `██ MSCA--Best validation results updated!!!`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestUpdatedLine } from "./log_lines.ts";
 *
 * assert.equal(
 *   bestUpdatedLine("MSCA"),
 *   "██ MSCA--Best validation results updated!!!",
 * );
 * ```
 */
export function bestUpdatedLine(model: string): string {
  return `██ ${model}--Best validation results updated!!!`;
}

/**
 * The closing summary of a run (or of the best combination of a search).
 *
 * @param parameters The hyper-parameters of the run, e.g. `{seed: 999}`.
 * @param bestEpoch The epoch of the best valid score, as logged.
 * @param valid Valid metrics at that epoch.
 * @param test Test metrics at that epoch.
 * @returns The banner, the parameters, and the valid and test lines.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestSummaryLines } from "./log_lines.ts";
 *
 * const lines = bestSummaryLines({ seed: 1 }, 3, { "recall@20": 0.5 }, {
 *   "recall@20": 0.4,
 * });
 * assert.equal(lines[0], "█████████████ BEST ████████████████");
 * ```
 */
export function bestSummaryLines(
  parameters: Record<string, unknown>,
  bestEpoch: number,
  valid: Metrics,
  test: Metrics,
): string[] {
  const names = Object.keys(parameters);
  const values = names.map((name) => JSON.stringify(parameters[name]));
  return [
    "█████████████ BEST ████████████████",
    `\tParameters: [${names.map((n) => `'${n}'`).join(", ")}]=(${
      values.join(", ")
    }), best epoch: ${bestEpoch}`,
    `Valid: ${formatMetrics(valid)}`,
    `Test: ${formatMetrics(test)}`,
  ];
}
