/**
 * The WGSL sources of `kernels/`, one per kernel, imported as text so that
 * they travel with the module graph (no file reads at run time).
 *
 * @module
 */

import type { KernelSource } from "./webgpu_device.ts";
import adamCode from "../../kernels/adam.wgsl" with { type: "text" };
import attentionFusionCode from "../../kernels/attention_fusion.wgsl" with {
  type: "text",
};
import attentionFusionBackwardCode from "../../kernels/attention_fusion_backward.wgsl" with {
  type: "text",
};
import binaryCode from "../../kernels/binary.wgsl" with { type: "text" };
import bprCode from "../../kernels/bpr.wgsl" with { type: "text" };
import bprBackwardCode from "../../kernels/bpr_backward.wgsl" with {
  type: "text",
};
import broadcastCode from "../../kernels/broadcast.wgsl" with { type: "text" };
import copyBlockCode from "../../kernels/copy_block.wgsl" with { type: "text" };
import fillCode from "../../kernels/fill.wgsl" with { type: "text" };
import gatedProjectionCode from "../../kernels/gated_projection.wgsl" with {
  type: "text",
};
import gatedProjectionBackwardCode from "../../kernels/gated_projection_backward.wgsl" with {
  type: "text",
};
import gatherRowsCode from "../../kernels/gather_rows.wgsl" with {
  type: "text",
};
import gatherRowsBackwardCode from "../../kernels/gather_rows_backward.wgsl" with {
  type: "text",
};
import infoNceCode from "../../kernels/info_nce.wgsl" with { type: "text" };
import infoNceBackwardCode from "../../kernels/info_nce_backward.wgsl" with {
  type: "text",
};
import infoNceRowsCode from "../../kernels/info_nce_rows.wgsl" with {
  type: "text",
};
import infoNceWeightsCode from "../../kernels/info_nce_weights.wgsl" with {
  type: "text",
};
import logsumexpRowsCode from "../../kernels/logsumexp_rows.wgsl" with {
  type: "text",
};
import logsumexpRowsBackwardCode from "../../kernels/logsumexp_rows_backward.wgsl" with {
  type: "text",
};
import matmulCode from "../../kernels/matmul.wgsl" with { type: "text" };
import normalizeRowsCode from "../../kernels/normalize_rows.wgsl" with {
  type: "text",
};
import normalizeRowsBackwardCode from "../../kernels/normalize_rows_backward.wgsl" with {
  type: "text",
};
import rowDotCode from "../../kernels/row_dot.wgsl" with { type: "text" };
import scaleCode from "../../kernels/scale.wgsl" with { type: "text" };
import scoreTopKCode from "../../kernels/score_top_k.wgsl" with {
  type: "text",
};
import softmaxRowsCode from "../../kernels/softmax_rows.wgsl" with {
  type: "text",
};
import softmaxRowsBackwardCode from "../../kernels/softmax_rows_backward.wgsl" with {
  type: "text",
};
import spmmCode from "../../kernels/spmm.wgsl" with { type: "text" };
import sumToCode from "../../kernels/sum_to.wgsl" with { type: "text" };
import unaryCode from "../../kernels/unary.wgsl" with { type: "text" };
import unaryBackwardCode from "../../kernels/unary_backward.wgsl" with {
  type: "text",
};

/** Every kernel by its file name. */
export const kernels = {
  adam: { name: "adam", code: adamCode },
  attentionFusion: { name: "attention_fusion", code: attentionFusionCode },
  attentionFusionBackward: {
    name: "attention_fusion_backward",
    code: attentionFusionBackwardCode,
  },
  binary: { name: "binary", code: binaryCode },
  bpr: { name: "bpr", code: bprCode },
  bprBackward: { name: "bpr_backward", code: bprBackwardCode },
  broadcast: { name: "broadcast", code: broadcastCode },
  copyBlock: { name: "copy_block", code: copyBlockCode },
  fill: { name: "fill", code: fillCode },
  gatedProjection: { name: "gated_projection", code: gatedProjectionCode },
  gatedProjectionBackward: {
    name: "gated_projection_backward",
    code: gatedProjectionBackwardCode,
  },
  gatherRows: { name: "gather_rows", code: gatherRowsCode },
  gatherRowsBackward: {
    name: "gather_rows_backward",
    code: gatherRowsBackwardCode,
  },
  infoNce: { name: "info_nce", code: infoNceCode },
  infoNceBackward: { name: "info_nce_backward", code: infoNceBackwardCode },
  infoNceRows: { name: "info_nce_rows", code: infoNceRowsCode },
  infoNceWeights: { name: "info_nce_weights", code: infoNceWeightsCode },
  logsumexpRows: { name: "logsumexp_rows", code: logsumexpRowsCode },
  logsumexpRowsBackward: {
    name: "logsumexp_rows_backward",
    code: logsumexpRowsBackwardCode,
  },
  matmul: { name: "matmul", code: matmulCode },
  normalizeRows: { name: "normalize_rows", code: normalizeRowsCode },
  normalizeRowsBackward: {
    name: "normalize_rows_backward",
    code: normalizeRowsBackwardCode,
  },
  rowDot: { name: "row_dot", code: rowDotCode },
  scale: { name: "scale", code: scaleCode },
  scoreTopK: { name: "score_top_k", code: scoreTopKCode },
  softmaxRows: { name: "softmax_rows", code: softmaxRowsCode },
  softmaxRowsBackward: {
    name: "softmax_rows_backward",
    code: softmaxRowsBackwardCode,
  },
  spmm: { name: "spmm", code: spmmCode },
  sumTo: { name: "sum_to", code: sumToCode },
  unary: { name: "unary", code: unaryCode },
  unaryBackward: { name: "unary_backward", code: unaryBackwardCode },
} satisfies Record<string, KernelSource>;
