/**
 * The YAML files of `configs/`, imported as text so that they travel with
 * the module graph: {@linkcode loadConfig} reads them without file access,
 * also when this package runs from a registry (an `https:` module).
 *
 * A file added to `configs/` needs a line here; a test compares this table
 * with the folder.
 *
 * @module
 */

import overall from "../configs/overall.yaml" with { type: "text" };
import baby from "../configs/dataset/baby.yaml" with { type: "text" };
import elec from "../configs/dataset/elec.yaml" with { type: "text" };
import microlens from "../configs/dataset/microlens.yaml" with {
  type: "text",
};
import sports from "../configs/dataset/sports.yaml" with { type: "text" };
import synthetic from "../configs/dataset/synthetic.yaml" with {
  type: "text",
};
import bpr from "../configs/model/BPR.yaml" with { type: "text" };
import lightGcn from "../configs/model/LightGCN.yaml" with { type: "text" };
import msca from "../configs/model/MSCA.yaml" with { type: "text" };

/**
 * The text of each shipped config file, keyed by its path under `configs/`
 * without `.yaml`: `overall`, `dataset/<name>`, `model/<name>`.
 *
 * @example
 * ```ts
 * import { EMBEDDED_CONFIGS } from "./configs_embedded.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(EMBEDDED_CONFIGS["model/MSCA"], /knn_k/);
 * ```
 */
export const EMBEDDED_CONFIGS: Readonly<Record<string, string>> = Object
  .freeze({
    "overall": overall,
    "dataset/baby": baby,
    "dataset/elec": elec,
    "dataset/microlens": microlens,
    "dataset/sports": sports,
    "dataset/synthetic": synthetic,
    "model/BPR": bpr,
    "model/LightGCN": lightGcn,
    "model/MSCA": msca,
  });

/**
 * Where the embedded files came from: the `configs/` folder next to `src/`,
 * as a URL (`file:` in a checkout, `https:` from a registry). Messages about
 * a shipped file name it under this URL.
 */
export const EMBEDDED_CONFIGS_URL: URL = new URL(
  "../configs/",
  import.meta.url,
);
