/**
 * Small SVG charts of a training run, drawn without any dependency: train
 * loss per epoch, valid and test metrics per epoch, and a bar chart comparing
 * the combinations of a grid search. The SVG files open in any browser.
 *
 * @module
 */

import { join } from "node:path";
import { writeFileAtomic } from "./checkpoint.ts";

/** One line of a {@linkcode lineChartSvg} chart. */
export interface LineSeries {
  /** Legend text. */
  name: string;
  /** `[x, y]` points; points with a non-finite coordinate are left out. */
  points: [number, number][];
  /** Stroke colour (CSS); defaults to the next colour of the palette. */
  color?: string;
  /** Draw the line dashed (e.g. test next to a solid valid line). */
  dashed?: boolean;
}

/** What {@linkcode lineChartSvg} draws. */
export interface LineChartOptions {
  /** Title above the chart. */
  title: string;
  /** Label under the x axis. */
  xLabel: string;
  /** Label beside the y axis. */
  yLabel: string;
  /** The lines. */
  series: LineSeries[];
  /** Width in pixels (default 720). */
  width?: number;
  /** Height in pixels (default 420). */
  height?: number;
  /** Use whole-number ticks on the x axis (epochs); default true. */
  integerX?: boolean;
  /** Vertical marker lines, e.g. the best valid epoch. */
  markers?: { x: number; label: string }[];
}

/** One group of bars of a {@linkcode gridSvg} chart. */
export interface BarSeries {
  /** Legend text, e.g. `"valid recall@20"`. */
  name: string;
  /** One value per category; `null` draws no bar. */
  values: (number | null)[];
  /** Fill colour (CSS); defaults to the palette. */
  color?: string;
}

/** What {@linkcode gridSvg} draws. */
export interface GridChartOptions {
  /** Title above the chart. */
  title: string;
  /** Label beside the y axis. */
  yLabel: string;
  /** One label per combination, e.g. `"n_layers=2 cl_weight=0.01"`. */
  categories: string[];
  /** The bars of each category, side by side. */
  series: BarSeries[];
  /** Index of the category to mark (the best by valid score), if any. */
  highlight?: number;
  /** Text of the mark (default `"best valid"`). */
  highlightLabel?: string;
}

/** One epoch of a run as `summary.json` records it. */
export interface PlotEpoch {
  /** Epoch number (0-based, as MMRec logs it). */
  epoch: number;
  /** Mean train loss of the epoch. */
  train_loss?: number | null;
  /** Valid metrics, when the epoch was evaluated. */
  valid?: Record<string, number> | null;
  /** Test metrics, when the epoch was evaluated. */
  test?: Record<string, number> | null;
}

/** A run's outcome as `summary.json` records it (the trainer's result). */
export interface RunRecord {
  /** Per-epoch records. */
  epochs?: PlotEpoch[];
  /** Epoch of the best valid score. */
  best_epoch?: number;
  /** Valid metrics at the best valid epoch. */
  best_valid?: Record<string, number> | null;
  /** Test metrics at the best valid epoch. */
  test_at_best_valid?: Record<string, number> | null;
}

/**
 * One grid-search combination as `summary.json` records it: its
 * parameters, and its outcome either inline or under `result`.
 */
export interface CombinationRecord extends RunRecord {
  /** The hyper-parameter values of this combination. */
  parameters: Record<string, unknown>;
  /** The combination's outcome (the trainer's `TrainResult`). */
  result?: RunRecord;
}

/** The parts of a run's `summary.json` the plots use. */
export interface PlotSummary extends RunRecord {
  /** Every combination of a grid search, when there was one. */
  combinations?: CombinationRecord[];
  /** Index into `combinations` of the best by valid score. */
  best_combination?: number;
  /** Same as `best_combination` (the trainer's `GridSearchResult` name). */
  best_by_valid?: number;
}

/** Options of {@linkcode writeRunPlots}. */
export interface RunPlotOptions {
  /** Metric keys drawn in `metrics.svg` (default recall@20, ndcg@20). */
  metrics?: string[];
  /** Metric compared across combinations in `grid.svg` (default recall@20). */
  gridMetric?: string;
}

/** Colour-blind-friendly palette (Okabe and Ito, 2008). */
const PALETTE = [
  "#0072B2",
  "#D55E00",
  "#009E73",
  "#CC79A7",
  "#E69F00",
  "#56B4E9",
  "#000000",
  "#F0E442",
];

/** Above this many points a line is drawn without point markers. */
const MAX_MARKERS = 150;

const FONT = 'font-family="Helvetica, Arial, sans-serif"';

/**
 * Draws a line chart with axes, ticks, grid lines and a legend.
 *
 * @param options Title, axis labels and series.
 * @returns A standalone SVG document.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const svg = lineChartSvg({
 *   title: "train loss",
 *   xLabel: "epoch",
 *   yLabel: "loss",
 *   series: [{ name: "train", points: [[0, 0.7], [1, 0.5], [2, 0.4]] }],
 * });
 * assert.ok(svg.startsWith("<svg"));
 * ```
 */
export function lineChartSvg(options: LineChartOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 420;
  const margin = {
    left: 78,
    right: 24 + legendWidth(options.series.map((line) => line.name)),
    top: 48,
    bottom: 56,
  };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const series = options.series.map((line, i) => ({
    ...line,
    color: line.color ?? PALETTE[i % PALETTE.length],
    points: line.points.filter(([x, y]) =>
      Number.isFinite(x) && Number.isFinite(y)
    ),
  }));
  const all = series.flatMap((line) => line.points);

  const parts = [svgOpen(width, height), title(width, options.title)];
  if (all.length === 0) {
    parts.push(
      text(width / 2, height / 2, "no data to plot", {
        anchor: "middle",
        fill: "#666",
      }),
      "</svg>",
    );
    return parts.join("\n") + "\n";
  }

  const xScale = axisScale(
    all.map(([x]) => x),
    options.integerX ?? true,
  );
  const yScale = axisScale(all.map(([, y]) => y), false);
  const px = (x: number) =>
    margin.left + ((x - xScale.min) / (xScale.max - xScale.min)) * plotWidth;
  const py = (y: number) =>
    margin.top + plotHeight -
    ((y - yScale.min) / (yScale.max - yScale.min)) * plotHeight;

  parts.push(
    ...axes({
      margin,
      plotWidth,
      plotHeight,
      xTicks: xScale.ticks.map((x) => [px(x), xScale.format(x)]),
      yTicks: yScale.ticks.map((y) => [py(y), yScale.format(y)]),
      xLabel: options.xLabel,
      yLabel: options.yLabel,
    }),
  );

  for (const marker of options.markers ?? []) {
    if (marker.x < xScale.min || marker.x > xScale.max) continue;
    const x = fixed(px(marker.x));
    parts.push(
      `<g class="marker">`,
      `<line x1="${x}" y1="${margin.top}" x2="${x}" ` +
        `y2="${margin.top + plotHeight}" stroke="#888" ` +
        `stroke-dasharray="2 3"/>`,
      text(px(marker.x) + 4, margin.top + 12, marker.label, {
        size: 11,
        fill: "#555",
      }),
      "</g>",
    );
  }

  for (const line of series) {
    if (line.points.length === 0) continue;
    const path = line.points.map(([x, y]) => `${fixed(px(x))},${fixed(py(y))}`)
      .join(" ");
    const dash = line.dashed ? ' stroke-dasharray="6 4"' : "";
    parts.push(
      `<g class="series" data-name="${escapeXml(line.name)}">`,
      `<polyline fill="none" stroke="${line.color}" stroke-width="2"` +
        `${dash} points="${path}"/>`,
      // Markers only while they stay apart; long runs get the line alone.
      ...(line.points.length > MAX_MARKERS ? [] : line.points).map(([x, y]) =>
        `<circle cx="${fixed(px(x))}" cy="${fixed(py(y))}" r="2.5" ` +
        `fill="${line.color}"><title>${escapeXml(line.name)}: ` +
        `${formatValue(x)}, ${formatValue(y)}</title></circle>`
      ),
      "</g>",
    );
  }

  parts.push(
    legend(
      series.map((line) => ({
        name: line.name,
        color: line.color,
        dashed: line.dashed ?? false,
      })),
      margin.left + plotWidth + 12,
      margin.top,
      "line",
    ),
  );
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

/**
 * Draws a grouped bar chart comparing grid-search combinations, e.g. valid
 * and test Recall@20 side by side for every combination, the best by valid
 * score marked.
 *
 * @param options Title, categories and bar series.
 * @returns A standalone SVG document.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const svg = gridSvg({
 *   title: "grid search",
 *   yLabel: "recall@20",
 *   categories: ["n_layers=1", "n_layers=2"],
 *   series: [
 *     { name: "valid", values: [0.08, 0.09] },
 *     { name: "test", values: [0.07, 0.085] },
 *   ],
 *   highlight: 1,
 * });
 * assert.ok(svg.includes("n_layers=2"));
 * ```
 */
export function gridSvg(options: GridChartOptions): string {
  const categories = options.categories;
  for (const bars of options.series) {
    if (bars.values.length !== categories.length) {
      throw new RangeError(
        `gridSvg() series "${bars.name}" has ${bars.values.length} values ` +
          `for ${categories.length} categories`,
      );
    }
  }
  // Category labels are rotated by 35 degrees; about 6.2 px per character.
  const longestLabel = Math.max(0, ...categories.map((c) => c.length));
  const labelLength = longestLabel * 6.2;
  const slot = Math.max(40, 16 * options.series.length + 20);
  const margin = {
    left: Math.max(78, labelLength * Math.cos(0.61) - slot / 2 + 12),
    right: 24 + legendWidth(options.series.map((bars) => bars.name)),
    top: 60,
    bottom: 24 + labelLength * Math.sin(0.61),
  };
  const width = Math.ceil(Math.max(
    480,
    margin.left + margin.right + slot * categories.length,
  ));
  const height = Math.ceil(300 + margin.top + margin.bottom);
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const series = options.series.map((bars, i) => ({
    ...bars,
    color: bars.color ?? PALETTE[i % PALETTE.length],
  }));
  const values = series.flatMap((bars) =>
    bars.values.filter((v): v is number => v !== null && Number.isFinite(v))
  );

  const parts = [svgOpen(width, height), title(width, options.title)];
  if (values.length === 0) {
    parts.push(
      text(width / 2, height / 2, "no data to plot", {
        anchor: "middle",
        fill: "#666",
      }),
      "</svg>",
    );
    return parts.join("\n") + "\n";
  }

  const yScale = axisScale([0, ...values], false);
  const py = (y: number) =>
    margin.top + plotHeight -
    ((y - yScale.min) / (yScale.max - yScale.min)) * plotHeight;
  const categoryWidth = plotWidth / categories.length;
  const barWidth = Math.min(
    28,
    (categoryWidth - 10) / Math.max(1, series.length),
  );
  parts.push(
    ...axes({
      margin,
      plotWidth,
      plotHeight,
      xTicks: [],
      yTicks: yScale.ticks.map((y) => [py(y), yScale.format(y)]),
      xLabel: "",
      yLabel: options.yLabel,
    }),
  );

  categories.forEach((category, c) => {
    const center = margin.left + (c + 0.5) * categoryWidth;
    const groupLeft = center - (barWidth * series.length) / 2;
    if (c === options.highlight) {
      parts.push(
        `<rect class="highlight" x="${fixed(center - categoryWidth / 2)}" ` +
          `y="${margin.top}" width="${fixed(categoryWidth)}" ` +
          `height="${plotHeight}" fill="#FFF3C4"/>`,
      );
    }
    series.forEach((bars, s) => {
      const value = bars.values[c];
      if (value === null || !Number.isFinite(value)) return;
      const top = py(Math.max(value, 0));
      const bottom = py(Math.min(value, 0));
      parts.push(
        `<rect class="bar" data-series="${escapeXml(bars.name)}" ` +
          `x="${fixed(groupLeft + s * barWidth)}" y="${fixed(top)}" ` +
          `width="${fixed(barWidth - 2)}" ` +
          `height="${fixed(Math.max(bottom - top, 0.5))}" ` +
          `fill="${bars.color}"><title>${escapeXml(category)} ` +
          `${escapeXml(bars.name)}: ${formatValue(value)}</title></rect>`,
      );
    });
    const labelY = margin.top + plotHeight + 14;
    parts.push(
      `<text x="${fixed(center)}" y="${labelY}" ${FONT} font-size="11" ` +
        `text-anchor="end" transform="rotate(-35 ${fixed(center)} ` +
        `${labelY})">${escapeXml(category)}</text>`,
    );
    if (c === options.highlight) {
      parts.push(
        text(
          center,
          margin.top - 4,
          `★ ${options.highlightLabel ?? "best valid"}`,
          {
            anchor: "middle",
            size: 11,
          },
        ),
      );
    }
  });

  parts.push(
    legend(
      series.map((bars) => ({
        name: bars.name,
        color: bars.color,
        dashed: false,
      })),
      margin.left + plotWidth + 12,
      margin.top,
      "box",
    ),
  );
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

/**
 * Writes the charts of a run into its folder: `loss.svg` (train loss per
 * epoch), `metrics.svg` (valid and test metrics per epoch) and, for a grid
 * search, `grid.svg` (valid and test score of every combination).
 *
 * @param runDir The run folder.
 * @param summary The run's summary (as in `summary.json`).
 * @param options Which metrics to draw.
 * @returns The paths written.
 */
export async function writeRunPlots(
  runDir: string,
  summary: PlotSummary,
  options: RunPlotOptions = {},
): Promise<string[]> {
  const metrics = options.metrics ?? ["recall@20", "ndcg@20"];
  const gridMetric = options.gridMetric ?? "recall@20";
  const combinations = (summary.combinations ?? []).map((combination) => ({
    ...combination.result,
    ...combination,
  }));
  const best = summary.best_combination ?? summary.best_by_valid;
  const run: RunRecord = summary.epochs !== undefined
    ? summary
    : combinations[best ?? 0] ?? {};
  const epochs = run.epochs ?? [];
  const markers = typeof run.best_epoch === "number" && run.best_epoch >= 0
    ? [{ x: run.best_epoch, label: `best valid (epoch ${run.best_epoch})` }]
    : [];
  const written: string[] = [];
  const write = async (name: string, svg: string) => {
    const path = join(runDir, name);
    await writeFileAtomic(path, svg);
    written.push(path);
  };

  await write(
    "loss.svg",
    lineChartSvg({
      title: "Train loss per epoch",
      xLabel: "epoch",
      yLabel: "train loss",
      series: [{
        name: "train loss",
        points: epochs.flatMap((record) =>
          typeof record.train_loss === "number"
            ? [[record.epoch, record.train_loss] as [number, number]]
            : []
        ),
      }],
    }),
  );

  const metricSeries: LineSeries[] = [];
  metrics.forEach((metric, i) => {
    for (const split of ["valid", "test"] as const) {
      metricSeries.push({
        name: `${split} ${metric}`,
        color: PALETTE[i % PALETTE.length],
        dashed: split === "test",
        points: epochs.flatMap((record) => {
          const value = record[split]?.[metric];
          return typeof value === "number"
            ? [[record.epoch, value] as [number, number]]
            : [];
        }),
      });
    }
  });
  await write(
    "metrics.svg",
    lineChartSvg({
      title: "Valid and test metrics per epoch",
      xLabel: "epoch",
      yLabel: "score",
      series: metricSeries,
      markers,
    }),
  );

  if (combinations.length > 0) {
    await write(
      "grid.svg",
      gridSvg({
        title: `Grid search: ${gridMetric} at the best valid epoch`,
        yLabel: gridMetric,
        categories: combinationLabels(
          combinations.map((combination) => combination.parameters),
        ),
        series: [
          {
            name: `valid ${gridMetric}`,
            values: combinations.map((c) => c.best_valid?.[gridMetric] ?? null),
          },
          {
            name: `test ${gridMetric}`,
            values: combinations.map((c) =>
              c.test_at_best_valid?.[gridMetric] ?? null
            ),
          },
        ],
        highlight: best,
      }),
    );
  }
  return written;
}

/**
 * A short label for a grid combination, e.g. `n_layers=2 cl_weight=0.01`.
 *
 * @param parameters The combination's hyper-parameter values.
 * @returns The label.
 */
export function combinationLabel(parameters: Record<string, unknown>): string {
  const entries = Object.entries(parameters);
  if (entries.length === 0) return "(defaults)";
  return entries.map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join(" ");
}

/**
 * Labels for grid combinations that name only the hyper-parameters that
 * vary between them (all of them when none varies).
 */
function combinationLabels(list: Record<string, unknown>[]): string[] {
  const keys = [...new Set(list.flatMap((p) => Object.keys(p)))];
  const varying = keys.filter((key) =>
    new Set(list.map((p) => JSON.stringify(p[key]))).size > 1
  );
  const shown = varying.length > 0 ? varying : keys;
  return list.map((parameters) =>
    combinationLabel(
      Object.fromEntries(shown.map((key) => [key, parameters[key]])),
    )
  );
}

interface Scale {
  min: number;
  max: number;
  ticks: number[];
  format: (value: number) => string;
}

/** An axis range rounded out to "nice" ticks (1, 2 or 5 × 10^k apart). */
function axisScale(values: number[], integer: boolean): Scale {
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (low === high) {
    const pad = integer ? 1 : Math.abs(low) * 0.1 || 1;
    low -= pad;
    high += pad;
  }
  let step = niceStep((high - low) / 5);
  if (integer) step = Math.max(1, Math.round(step));
  const min = Math.floor(low / step + 1e-9) * step;
  const max = Math.ceil(high / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; min + i * step <= max + step * 1e-9; i++) {
    ticks.push(min + i * step);
  }
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const useExponent = Math.abs(max) >= 1e6 || (step < 1e-4);
  return {
    min,
    max,
    ticks,
    format: (value) =>
      useExponent
        ? value.toExponential(1)
        : value.toFixed(Math.min(decimals, 8)),
  };
}

function niceStep(rough: number): number {
  const power = 10 ** Math.floor(Math.log10(rough));
  const fraction = rough / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) *
    power;
}

function axes(layout: {
  margin: { left: number; top: number; bottom: number };
  plotWidth: number;
  plotHeight: number;
  xTicks: [number, string][];
  yTicks: [number, string][];
  xLabel: string;
  yLabel: string;
}): string[] {
  const { margin, plotWidth, plotHeight } = layout;
  const left = margin.left;
  const right = margin.left + plotWidth;
  const top = margin.top;
  const bottom = margin.top + plotHeight;
  const parts = ['<g class="axes" stroke-linecap="square">'];
  for (const [y, label] of layout.yTicks) {
    parts.push(
      `<line x1="${left}" y1="${fixed(y)}" x2="${right}" y2="${fixed(y)}" ` +
        `stroke="#e3e3e3"/>`,
      `<line x1="${left - 5}" y1="${fixed(y)}" x2="${left}" ` +
        `y2="${fixed(y)}" stroke="#333"/>`,
      text(left - 8, y + 4, label, { anchor: "end", size: 11 }),
    );
  }
  for (const [x, label] of layout.xTicks) {
    parts.push(
      `<line x1="${fixed(x)}" y1="${bottom}" x2="${fixed(x)}" ` +
        `y2="${bottom + 5}" stroke="#333"/>`,
      text(x, bottom + 18, label, { anchor: "middle", size: 11 }),
    );
  }
  parts.push(
    `<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" ` +
      `stroke="#333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" ` +
      `stroke="#333"/>`,
  );
  if (layout.xLabel) {
    parts.push(
      text(left + plotWidth / 2, bottom + 40, layout.xLabel, {
        anchor: "middle",
      }),
    );
  }
  const yMiddle = top + plotHeight / 2;
  const yLabelX = fixed(left - 60);
  parts.push(
    `<text x="${yLabelX}" y="${fixed(yMiddle)}" ${FONT} font-size="13" ` +
      `text-anchor="middle" ` +
      `transform="rotate(-90 ${yLabelX} ${fixed(yMiddle)})">` +
      `${escapeXml(layout.yLabel)}</text>`,
    "</g>",
  );
  return parts;
}

function legend(
  entries: { name: string; color: string; dashed: boolean }[],
  left: number,
  top: number,
  kind: "line" | "box",
): string {
  const boxWidth = legendWidth(entries.map((entry) => entry.name));
  const boxHeight = 10 + entries.length * 18;
  const x = left;
  const y = top;
  const parts = [
    `<g class="legend">`,
    `<rect x="${fixed(x)}" y="${y}" width="${fixed(boxWidth)}" ` +
    `height="${boxHeight}" fill="white" fill-opacity="0.85" ` +
    `stroke="#bbb"/>`,
  ];
  entries.forEach((entry, i) => {
    const rowY = y + 14 + i * 18;
    const dash = entry.dashed ? ' stroke-dasharray="6 4"' : "";
    parts.push(
      kind === "line"
        ? `<line x1="${fixed(x + 8)}" y1="${rowY}" x2="${fixed(x + 30)}" ` +
          `y2="${rowY}" stroke="${entry.color}" stroke-width="2"${dash}/>`
        : `<rect x="${fixed(x + 12)}" y="${rowY - 6}" width="14" ` +
          `height="12" fill="${entry.color}"/>`,
      text(x + 36, rowY + 4, entry.name, { size: 12 }),
    );
  });
  parts.push("</g>");
  return parts.join("\n");
}

/** Width of the legend box for these names (12 px font, ~6.6 px a glyph). */
function legendWidth(names: string[]): number {
  return 44 + Math.max(0, ...names.map((name) => name.length)) * 6.6;
}

function svgOpen(width: number, height: number): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" ` +
    `height="${height}" viewBox="0 0 ${width} ${height}">\n` +
    `<rect width="100%" height="100%" fill="white"/>`;
}

function title(width: number, label: string): string {
  return text(width / 2, 28, label, {
    anchor: "middle",
    size: 16,
    weight: "bold",
  });
}

function text(
  x: number,
  y: number,
  label: string,
  style: {
    anchor?: "start" | "middle" | "end";
    size?: number;
    fill?: string;
    weight?: string;
  } = {},
): string {
  return `<text x="${fixed(x)}" y="${fixed(y)}" ${FONT} ` +
    `font-size="${style.size ?? 13}"` +
    (style.anchor ? ` text-anchor="${style.anchor}"` : "") +
    (style.fill ? ` fill="${style.fill}"` : "") +
    (style.weight ? ` font-weight="${style.weight}"` : "") +
    `>${escapeXml(label)}</text>`;
}

function fixed(value: number): string {
  return String(Math.round(value * 100) / 100);
}

function formatValue(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(4);
}

function escapeXml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
