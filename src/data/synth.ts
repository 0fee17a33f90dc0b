/**
 * Seeded synthetic datasets in MMRec's layout, with planted structure that a
 * multimodal recommender can find.
 *
 * The generative story:
 *
 * - Topics have centroids in a shared latent space of `latentDim`
 *   dimensions. Each item belongs to one topic; its latent vector is the
 *   topic centroid plus item-specific noise. Items carry a Zipf popularity
 *   (random ranks, exponent `popularityExponent`).
 * - Each user prefers one to three topics (random weights); the user's
 *   latent vector is the weighted mix of their centroids plus user-specific
 *   noise.
 * - A user's interaction is, with probability `noiseRate`, an item drawn by
 *   global popularity (noise); otherwise a topic drawn from the user's
 *   preferences, a few candidate items drawn from it by popularity, and the
 *   candidate that maximises latent affinity plus Gumbel noise.
 * - Interaction counts per user are at least 5 (like MMRec's 5-core data)
 *   with a log-normal tail, scaled to the preset's total; every item gets at
 *   least one train interaction.
 * - Image and text features are noisy linear views of the item latents,
 *   mixed with a nuisance "style" latent that has nothing to do with
 *   preferences; text rows are L2-normalised like sentence embeddings.
 * - Each user's interactions are in time order; the last ~10 % are test,
 *   the ~10 % before them valid, the rest train (MMRec's 8:1:1 per user).
 *
 * The same options and seed give the same bytes on every machine (all
 * randomness comes from {@linkcode Random}).
 *
 * @module
 */

import { join } from "node:path";
import type { FeatureTable } from "./dataset.ts";
import { DataError } from "./errors.ts";
import { encodeNpyHeader } from "./npy.ts";
import { Random } from "../random.ts";

/** What to generate. */
export interface SyntheticOptions {
  /** Dataset name: the folder and `<name>.inter`. */
  name: string;
  /** Number of users `U`. */
  userCount: number;
  /** Number of items `I`. */
  itemCount: number;
  /** Total interactions across the three splits. */
  interactionCount: number;
  /** Image feature width. */
  imageDim: number;
  /** Text feature width. */
  textDim: number;
  /** Seed of the generator. */
  seed: number;
  /** Dimensions of the shared latent space (default 16). */
  latentDim?: number;
  /** Number of topics (default one per 50 items, at least 4). */
  topicCount?: number;
  /** Share of interactions drawn by popularity alone (default 0.1). */
  noiseRate?: number;
  /** Zipf exponent of item popularity (default 0.8). */
  popularityExponent?: number;
  /** Standard deviation of the image feature noise (default 1). */
  imageNoise?: number;
  /** Standard deviation of the text feature noise (default 0.5). */
  textNoise?: number;
}

/** Names of the built-in presets. */
export type SyntheticPreset = "synthetic" | "baby" | "sports" | "elec";

/**
 * The presets: `synthetic` is the small default dataset (trains to early
 * stopping on a laptop CPU in minutes); `baby`, `sports` and `elec` copy the
 * user, item and interaction counts of the real Amazon datasets (spec 10)
 * and their 4096-d image and 384-d text features, for benchmarks.
 */
export const SYNTHETIC_PRESETS: Readonly<
  Record<SyntheticPreset, Readonly<Omit<SyntheticOptions, "seed">>>
> = {
  synthetic: {
    name: "synthetic",
    userCount: 600,
    itemCount: 300,
    interactionCount: 6000,
    imageDim: 128,
    textDim: 32,
  },
  baby: {
    name: "synthetic-baby",
    userCount: 19445,
    itemCount: 7050,
    interactionCount: 160792,
    imageDim: 4096,
    textDim: 384,
  },
  sports: {
    name: "synthetic-sports",
    userCount: 35598,
    itemCount: 18357,
    interactionCount: 296337,
    imageDim: 4096,
    textDim: 384,
  },
  elec: {
    name: "synthetic-elec",
    userCount: 192403,
    itemCount: 63001,
    interactionCount: 1689188,
    imageDim: 4096,
    textDim: 384,
  },
};

/** The seed of the default dataset. */
export const DEFAULT_SYNTHETIC_SEED = 2026;

/**
 * Version of the generative story; bumped whenever output bytes change, so
 * {@linkcode ensureSyntheticDataset} regenerates stale folders.
 */
export const SYNTHETIC_VERSION = 2;

/** A generated dataset in memory. */
export interface SyntheticDataset {
  /** The options it was generated from, defaults filled in. */
  options: Required<SyntheticOptions>;
  /** User ID of each row (rows grouped by user, in time order). */
  users: Int32Array;
  /** Item ID of each row. */
  items: Int32Array;
  /** Rating (1–5) of each row; MSCA ignores it. */
  ratings: Int32Array;
  /** Unix time of each row. */
  timestamps: Int32Array;
  /** Split of each row: 0 train, 1 valid, 2 test. */
  labels: Uint8Array;
  /** Image features, one row per item. */
  image: FeatureTable;
  /** Text features, one row per item (L2-normalised rows). */
  text: FeatureTable;
}

/**
 * Generates a synthetic dataset in memory.
 *
 * @param options Sizes, seed and the knobs of the generative story.
 * @returns Rows and feature tables.
 * @throws {RangeError} If the sizes cannot hold a valid dataset (fewer
 * than 3 interactions per user, or more per user than there are items).
 * @example
 * ```ts
 * import { generateSynthetic, SYNTHETIC_PRESETS } from "./synth.ts";
 * import assert from "node:assert/strict";
 *
 * const data = generateSynthetic({ ...SYNTHETIC_PRESETS.synthetic, seed: 7 });
 * assert.equal(data.users.length, 6000);
 * assert.equal(data.image.cols, 128);
 * ```
 */
export function generateSynthetic(
  options: SyntheticOptions,
): SyntheticDataset {
  const full = withDefaults(options);
  const { userCount, itemCount, latentDim } = full;
  const random = new Random(full.seed);

  const topicCount = full.topicCount;
  const centroids = normals(random, topicCount * latentDim, 1);

  const itemTopic = new Int32Array(itemCount);
  const itemLatent = new Float32Array(itemCount * latentDim);
  for (let item = 0; item < itemCount; item++) {
    const topic = random.nextInt(topicCount);
    itemTopic[item] = topic;
    for (let k = 0; k < latentDim; k++) {
      itemLatent[item * latentDim + k] = centroids[topic * latentDim + k] +
        0.6 * normal(random);
    }
  }
  const ranks = new Int32Array(itemCount);
  for (let item = 0; item < itemCount; item++) ranks[item] = item;
  random.shuffle(ranks);
  const popularity = new Float64Array(itemCount);
  for (let item = 0; item < itemCount; item++) {
    popularity[item] = (ranks[item] + 1) ** -full.popularityExponent;
  }
  const globalSampler = new WeightedSampler(
    Int32Array.from({ length: itemCount }, (_, item) => item),
    popularity,
  );
  const topicSamplers = topicItemSamplers(itemTopic, topicCount, popularity);

  const preferences = userPreferences(random, userCount, topicCount);
  const userLatent = new Float32Array(userCount * latentDim);
  for (let user = 0; user < userCount; user++) {
    for (let k = 0; k < latentDim; k++) {
      let value = 0.6 * normal(random);
      for (const [topic, weight] of preferences[user]) {
        value += weight * centroids[topic * latentDim + k];
      }
      userLatent[user * latentDim + k] = value;
    }
  }

  const counts = interactionCounts(random, full);
  const forced = coverItems(random, full, counts, itemTopic, preferences);

  const total = counts.reduce((sum, count) => sum + count, 0);
  const rows = {
    users: new Int32Array(total),
    items: new Int32Array(total),
    ratings: new Int32Array(total),
    timestamps: new Int32Array(total),
    labels: new Uint8Array(total),
  };
  const taken = new Int32Array(itemCount).fill(-1);
  const candidates = 8;
  let row = 0;
  for (let user = 0; user < userCount; user++) {
    const count = counts[user];
    const [trainCount, validCount] = splitSizes(count);
    const start = row;
    for (const item of forced[user] ?? []) {
      taken[item] = user;
      rows.items[row++] = item;
    }
    while (row < start + count) {
      let item = -1;
      for (let attempt = 0; attempt < 50 && item < 0; attempt++) {
        const choice = random.nextFloat() < full.noiseRate
          ? globalSampler.sample(random)
          : affinityChoice(
            random,
            topicSamplers[pickTopic(random, preferences[user])],
            candidates,
            userLatent,
            itemLatent,
            user,
            latentDim,
          );
        if (taken[choice] !== user) item = choice;
      }
      while (item < 0) {
        const choice = random.nextInt(itemCount);
        if (taken[choice] !== user) item = choice;
      }
      taken[item] = user;
      rows.items[row++] = item;
    }

    let time = 1_300_000_000 + random.nextInt(100_000_000);
    for (let i = 0; i < count; i++) {
      const index = start + i;
      rows.users[index] = user;
      rows.ratings[index] = RATINGS[random.nextInt(RATINGS.length)];
      time += 3600 + random.nextInt(30 * 86400);
      rows.timestamps[index] = time;
      rows.labels[index] = i < trainCount
        ? 0
        : i < trainCount + validCount
        ? 1
        : 2;
    }
  }

  return {
    options: full,
    ...rows,
    image: featureView(random, itemLatent, full, full.imageDim, 1.0, false),
    text: featureView(random, itemLatent, full, full.textDim, 0.6, true),
  };
}

/**
 * Writes a generated dataset in MMRec's layout: `<name>.inter` (columns
 * `userID itemID rating timestamp x_label`), `image_feat.npy`,
 * `text_feat.npy` (`<f4`), and `synthetic.json` describing how it was
 * made. Each file is written beside its target and renamed into place;
 * `synthetic.json` comes last, marking the folder complete.
 *
 * @param data The generated dataset.
 * @param folder The dataset folder (created if missing).
 * @returns The paths written.
 * @example
 * ```ts
 * import { generateSynthetic, writeSynthetic } from "./synth.ts";
 * import assert from "node:assert/strict";
 *
 * const data = generateSynthetic({
 *   name: "toy", userCount: 50, itemCount: 40, interactionCount: 400,
 *   imageDim: 8, textDim: 4, seed: 1,
 * });
 * const dataPath = Deno.makeTempDirSync();
 * const files = writeSynthetic(data, `${dataPath}/toy`);
 * assert.equal(files.length, 4);
 * Deno.removeSync(dataPath, { recursive: true });
 * ```
 */
export function writeSynthetic(
  data: SyntheticDataset,
  folder: string,
): string[] {
  Deno.mkdirSync(folder, { recursive: true });
  const name = data.options.name;
  const written: string[] = [];

  const interPath = join(folder, `${name}.inter`);
  writeAtomically(interPath, (file) => {
    const encoder = new TextEncoder();
    writeAll(
      file,
      encoder.encode("userID\titemID\trating\ttimestamp\tx_label\n"),
    );
    const chunk = 65536;
    for (let start = 0; start < data.users.length; start += chunk) {
      const lines: string[] = [];
      const end = Math.min(start + chunk, data.users.length);
      for (let row = start; row < end; row++) {
        lines.push(
          `${data.users[row]}\t${data.items[row]}\t${data.ratings[row]}\t` +
            `${data.timestamps[row]}\t${data.labels[row]}\n`,
        );
      }
      writeAll(file, encoder.encode(lines.join("")));
    }
  });
  written.push(interPath);

  const tables: [string, FeatureTable][] = [
    ["image_feat.npy", data.image],
    ["text_feat.npy", data.text],
  ];
  for (const [fileName, table] of tables) {
    const path = join(folder, fileName);
    writeAtomically(path, (file) => {
      writeAll(file, encodeNpyHeader([table.rows, table.cols], "<f4"));
      writeAll(
        file,
        new Uint8Array(
          table.data.buffer,
          table.data.byteOffset,
          table.data.byteLength,
        ),
      );
    });
    written.push(path);
  }

  const metaPath = join(folder, "synthetic.json");
  writeAtomically(metaPath, (file) => {
    writeAll(file, new TextEncoder().encode(metaText(data.options)));
  });
  written.push(metaPath);
  return written;
}

/** What {@linkcode ensureSyntheticDataset} did. */
export interface EnsureResult {
  /** The dataset folder, `<dataPath>/<name>`. */
  folder: string;
  /** Whether it was generated now (false: an up-to-date copy was there). */
  generated: boolean;
}

/**
 * Makes sure a preset's dataset exists under `dataPath`, generating it if
 * it is missing or was made by another generator version or seed.
 *
 * @param dataPath The `data_path` folder.
 * @param preset Which preset.
 * @param seed Generator seed.
 * @returns The folder and whether it was generated now.
 * @example
 * ```ts
 * import { ensureSyntheticDataset } from "./synth.ts";
 * import assert from "node:assert/strict";
 *
 * const dataPath = Deno.makeTempDirSync();
 * const first = ensureSyntheticDataset(dataPath, "synthetic");
 * const again = ensureSyntheticDataset(dataPath, "synthetic");
 * assert.equal(first.generated, true);
 * assert.equal(again.generated, false);
 * Deno.removeSync(dataPath, { recursive: true });
 * ```
 */
export function ensureSyntheticDataset(
  dataPath: string,
  preset: SyntheticPreset = "synthetic",
  seed: number = DEFAULT_SYNTHETIC_SEED,
): EnsureResult {
  const options = { ...SYNTHETIC_PRESETS[preset], seed };
  const folder = join(dataPath, options.name);
  const metaFile = join(folder, "synthetic.json");
  const wanted = metaText(withDefaults(options));
  let existing: string | undefined;
  try {
    existing = Deno.readTextFileSync(metaFile);
  } catch {
    existing = undefined;
  }
  if (existing === wanted) return { folder, generated: false };
  refuseToOverwrite(folder, metaFile, existing, wanted);
  writeSynthetic(generateSynthetic(options), folder);
  return { folder, generated: true };
}

/**
 * Makes sure the default dataset `synthetic` exists under `dataPath`
 * (`data/synthetic` by default configuration), generating it on first use.
 * Returns at once when an up-to-date copy is present.
 *
 * @param dataPath The `data_path` folder.
 * @returns The dataset folder.
 * @example
 * ```ts
 * import { ensureDefaultDataset } from "./synth.ts";
 * import assert from "node:assert/strict";
 *
 * const dataPath = Deno.makeTempDirSync();
 * const folder = ensureDefaultDataset(dataPath); // dataPath/synthetic
 * assert.ok(folder.endsWith("synthetic"));
 * Deno.removeSync(dataPath, { recursive: true });
 * ```
 */
export function ensureDefaultDataset(dataPath: string): string {
  return ensureSyntheticDataset(dataPath, "synthetic").folder;
}

const RATINGS = [5, 5, 5, 5, 4, 4, 4, 3, 2, 1];

function withDefaults(options: SyntheticOptions): Required<SyntheticOptions> {
  const full: Required<SyntheticOptions> = {
    latentDim: 16,
    topicCount: Math.max(4, Math.round(options.itemCount / 50)),
    noiseRate: 0.1,
    popularityExponent: 0.8,
    imageNoise: 1,
    textNoise: 0.5,
    ...options,
  };
  const perUser = full.interactionCount / full.userCount;
  if (!(perUser >= 3)) {
    throw new RangeError(
      `synthetic dataset '${full.name}': ${full.interactionCount} ` +
        `interactions for ${full.userCount} users; expected at least 3 per ` +
        `user (train, valid and test)`,
    );
  }
  if (full.itemCount < 10 || perUser > full.itemCount / 4) {
    throw new RangeError(
      `synthetic dataset '${full.name}': ${full.itemCount} items for ` +
        `${perUser} interactions per user; expected at least 10 items and ` +
        `4 times as many items as interactions per user`,
    );
  }
  for (const key of ["imageDim", "textDim", "latentDim"] as const) {
    if (!Number.isInteger(full[key]) || full[key] < 1) {
      throw new RangeError(
        `synthetic dataset '${full.name}': ${key} is ${
          full[key]
        }; expected a positive integer`,
      );
    }
  }
  return full;
}

/**
 * Regenerating is only safe over our own output of another generator
 * version: a folder of someone else's files, or one generated with another
 * seed (`deno task synth --seed 5`), is the user's data.
 */
function refuseToOverwrite(
  folder: string,
  metaFile: string,
  existing: string | undefined,
  wanted: string,
): void {
  if (existing === undefined) {
    let entries: Deno.DirEntry[] = [];
    try {
      entries = [...Deno.readDirSync(folder)];
    } catch {
      return;
    }
    if (entries.length === 0) return;
    throw new DataError(
      folder,
      "holds files that were not generated by msca-deno (no " +
        "synthetic.json); expected no folder here, so the default dataset " +
        "can be generated: move it or train on it under another name",
    );
  }
  const seedOf = (text: string): unknown => {
    try {
      return JSON.parse(text).seed;
    } catch {
      return undefined;
    }
  };
  if (seedOf(existing) !== seedOf(wanted)) {
    throw new DataError(
      metaFile,
      `this synthetic dataset was generated with seed ${seedOf(existing)}; ` +
        `expected the default's ${seedOf(wanted)}, so it is left alone: ` +
        "move the folder, or use `deno task synth --name <other>`",
    );
  }
}

function metaText(options: Required<SyntheticOptions>): string {
  const sorted = Object.fromEntries(
    Object.entries(options).sort(([a], [b]) => a < b ? -1 : 1),
  );
  return JSON.stringify(
    { generator: "msca-deno synth", version: SYNTHETIC_VERSION, ...sorted },
    null,
    2,
  ) + "\n";
}

/** Counts of train, valid, test rows of a user with `count` rows (8:1:1). */
function splitSizes(count: number): [number, number, number] {
  const test = Math.max(1, Math.round(0.1 * count));
  const valid = Math.max(1, Math.round(0.1 * count));
  return [count - valid - test, valid, test];
}

/** Interactions per user: at least 5 (or fewer if the total is small). */
function interactionCounts(
  random: Random,
  options: Required<SyntheticOptions>,
): Int32Array {
  const { userCount, interactionCount, itemCount } = options;
  const minimum = Math.min(5, Math.floor(interactionCount / userCount));
  const cap = Math.floor(itemCount / 2);
  const extra = new Float64Array(userCount);
  let extraSum = 0;
  for (let user = 0; user < userCount; user++) {
    extra[user] = Math.exp(normal(random));
    extraSum += extra[user];
  }

  const counts = new Int32Array(userCount);
  const scale = (interactionCount - minimum * userCount) / extraSum;
  let accumulated = 0;
  let deficit = 0;
  for (let user = 0; user < userCount; user++) {
    const before = Math.round(accumulated);
    accumulated += extra[user] * scale;
    const count = minimum + Math.round(accumulated) - before;
    counts[user] = Math.min(count, cap);
    deficit += count - counts[user];
  }
  for (let user = 0; deficit > 0; user = (user + 1) % userCount) {
    if (counts[user] < cap) {
      counts[user]++;
      deficit--;
    }
  }
  return counts;
}

/** One to three preferred topics per user, with weights summing to 1. */
function userPreferences(
  random: Random,
  userCount: number,
  topicCount: number,
): [number, number][][] {
  const preferences: [number, number][][] = [];
  for (let user = 0; user < userCount; user++) {
    const size = 1 + (random.nextFloat() < 0.5 ? 1 : 0) +
      (random.nextFloat() < 0.2 ? 1 : 0);
    const topics: [number, number][] = [];
    let sum = 0;
    while (topics.length < Math.min(size, topicCount)) {
      const topic = random.nextInt(topicCount);
      if (topics.some(([other]) => other === topic)) continue;
      const weight = -Math.log(1 - random.nextFloat());
      topics.push([topic, weight]);
      sum += weight;
    }
    for (const entry of topics) entry[1] /= sum;
    preferences.push(topics);
  }
  return preferences;
}

function pickTopic(random: Random, topics: [number, number][]): number {
  let u = random.nextFloat();
  for (const [topic, weight] of topics) {
    u -= weight;
    if (u < 0) return topic;
  }
  return topics[topics.length - 1][0];
}

/**
 * Gives every item one train interaction: each item, in random order, goes
 * to a user who prefers its topic and still has a train slot free.
 */
function coverItems(
  random: Random,
  options: Required<SyntheticOptions>,
  counts: Int32Array,
  itemTopic: Int32Array,
  preferences: [number, number][][],
): (number[] | undefined)[] {
  const { userCount, itemCount, topicCount } = options;
  const topicUsers: number[][] = Array.from({ length: topicCount }, () => []);
  preferences.forEach((topics, user) => {
    for (const [topic] of topics) topicUsers[topic].push(user);
  });
  const room = Int32Array.from(counts, (count) => splitSizes(count)[0]);

  const forced: (number[] | undefined)[] = new Array(userCount);
  const order = Int32Array.from({ length: itemCount }, (_, item) => item);
  random.shuffle(order);
  for (const item of order) {
    const fans = topicUsers[itemTopic[item]];
    let chosen = -1;
    for (let attempt = 0; attempt < 20 && chosen < 0; attempt++) {
      const user = fans.length > 0
        ? fans[random.nextInt(fans.length)]
        : random.nextInt(userCount);
      if (room[user] > 0) chosen = user;
    }
    for (let attempt = 0; attempt < 1000 && chosen < 0; attempt++) {
      const user = random.nextInt(userCount);
      if (room[user] > 0) chosen = user;
    }
    if (chosen < 0) continue;
    room[chosen]--;
    (forced[chosen] ??= []).push(item);
  }
  return forced;
}

/** Draws items by weight (cumulative sums and binary search). */
class WeightedSampler {
  readonly items: Int32Array;
  #cumulative: Float64Array;

  constructor(items: Int32Array, weights: Float64Array) {
    this.items = items;
    this.#cumulative = new Float64Array(items.length);
    let sum = 0;
    for (let i = 0; i < items.length; i++) {
      sum += weights[items[i]];
      this.#cumulative[i] = sum;
    }
  }

  sample(random: Random): number {
    const cumulative = this.#cumulative;
    const target = random.nextFloat() * cumulative[cumulative.length - 1];
    let low = 0;
    let high = cumulative.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (cumulative[middle] <= target) low = middle + 1;
      else high = middle;
    }
    return this.items[low];
  }
}

function topicItemSamplers(
  itemTopic: Int32Array,
  topicCount: number,
  popularity: Float64Array,
): WeightedSampler[] {
  const members: number[][] = Array.from({ length: topicCount }, () => []);
  itemTopic.forEach((topic, item) => members[topic].push(item));
  return members.map((items) => {
    // An empty topic falls back to all items, so no draw can fail.
    const list = items.length > 0
      ? Int32Array.from(items)
      : Int32Array.from({ length: itemTopic.length }, (_, item) => item);
    return new WeightedSampler(list, popularity);
  });
}

/** Among a few popular candidates of a topic, the best by affinity + Gumbel. */
function affinityChoice(
  random: Random,
  sampler: WeightedSampler,
  candidates: number,
  userLatent: Float32Array,
  itemLatent: Float32Array,
  user: number,
  latentDim: number,
): number {
  let best = -1;
  let bestScore = -Infinity;
  const scale = 1 / Math.sqrt(latentDim);
  for (let c = 0; c < candidates; c++) {
    const item = sampler.sample(random);
    let dot = 0;
    for (let k = 0; k < latentDim; k++) {
      dot += userLatent[user * latentDim + k] *
        itemLatent[item * latentDim + k];
    }
    const uniform = (random.nextUint32() + 0.5) / 4294967296;
    const gumbel = -Math.log(-Math.log(uniform));
    const score = 2 * dot * scale + gumbel;
    if (score > bestScore) {
      bestScore = score;
      best = item;
    }
  }
  return best;
}

/**
 * A feature table as a noisy view of the item latents: latent and nuisance
 * style vectors through random projections, plus Gaussian noise.
 */
function featureView(
  random: Random,
  itemLatent: Float32Array,
  options: Required<SyntheticOptions>,
  width: number,
  styleWeight: number,
  normalize: boolean,
): FeatureTable {
  const { itemCount, latentDim } = options;
  const noise = normalize ? options.textNoise : options.imageNoise;
  const styleDim = latentDim;
  const projection = normals(
    random,
    latentDim * width,
    1 / Math.sqrt(latentDim),
  );
  const styleProjection = normals(
    random,
    styleDim * width,
    styleWeight / Math.sqrt(styleDim),
  );

  const data = new Float32Array(itemCount * width);
  const row = new Float64Array(width);
  const style = new Float64Array(styleDim);
  for (let item = 0; item < itemCount; item++) {
    for (let k = 0; k < styleDim; k++) style[k] = normal(random);
    fillNormals(random, row, noise);
    for (let k = 0; k < latentDim; k++) {
      const latent = itemLatent[item * latentDim + k];
      const offset = k * width;
      for (let j = 0; j < width; j++) row[j] += latent * projection[offset + j];
    }
    for (let k = 0; k < styleDim; k++) {
      const value = style[k];
      const offset = k * width;
      for (let j = 0; j < width; j++) {
        row[j] += value * styleProjection[offset + j];
      }
    }
    let norm = 1;
    if (normalize) {
      let squares = 0;
      for (let j = 0; j < width; j++) squares += row[j] * row[j];
      norm = Math.sqrt(squares) || 1;
    }
    for (let j = 0; j < width; j++) data[item * width + j] = row[j] / norm;
  }
  return { rows: itemCount, cols: width, data };
}

function normal(random: Random): number {
  return random.nextNormal();
}

/** Fills `out` with N(0, scale²) samples, two per Box–Muller draw. */
function fillNormals(random: Random, out: Float64Array, scale: number): void {
  for (let i = 0; i < out.length; i += 2) {
    const radius = scale * Math.sqrt(-2 * Math.log(1 - random.nextFloat()));
    const angle = 2 * Math.PI * random.nextFloat();
    out[i] = radius * Math.cos(angle);
    if (i + 1 < out.length) out[i + 1] = radius * Math.sin(angle);
  }
}

function normals(random: Random, count: number, scale: number): Float64Array {
  const out = new Float64Array(count);
  fillNormals(random, out, scale);
  return out;
}

function writeAtomically(path: string, write: (file: Deno.FsFile) => void) {
  const temporary = `${path}.partial`;
  const file = Deno.openSync(temporary, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
    write(file);
  } finally {
    file.close();
  }
  Deno.renameSync(temporary, path);
}

function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) {
    offset += file.writeSync(bytes.subarray(offset));
  }
}
