// info_nce_rows: the row pieces of the batch InfoNCE (spec 6) from the
// similarity matrix S = x̂ ŷᵀ [rows, rows], computed by matmul.wgsl:
//   lse_b = logsumexp_c(S_bc / τ),  term_b = lse_b − S_bb / τ,
// and S overwritten with P_bc = exp(S_bc / τ − lse_b), which the backward
// (info_nce_weights.wgsl) reuses. The loss is the mean of term_b. CPU
// twin: cpuBackend.infoNce. info_nce.wgsl computes the same without
// storing S, for batches whose S does not fit.
//
// Thread layout: one thread per row.
// Dispatch: ceil(rows / WORKGROUP_SIZE) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  inverse_temperature: f32,
}

@group(0) @binding(0) var<storage, read_write> similarities: array<f32>;
@group(0) @binding(1) var<storage, read_write> logsumexp: array<f32>;
@group(0) @binding(2) var<storage, read_write> term: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let b = (group.x + group.y * groups.x) * WORKGROUP_SIZE + thread;
  if (b >= params.rows) {
    return;
  }
  let start = b * params.rows;
  let scale = params.inverse_temperature;
  var largest = similarities[start] * scale;
  for (var c = 1u; c < params.rows; c++) {
    largest = max(largest, similarities[start + c] * scale);
  }
  var sum = 0.0;
  for (var c = 0u; c < params.rows; c++) {
    sum += exp(similarities[start + c] * scale - largest);
  }
  let lse = largest + log(sum);
  logsumexp[b] = lse;
  term[b] = lse - similarities[start + b] * scale;
  for (var c = 0u; c < params.rows; c++) {
    similarities[start + c] = exp(similarities[start + c] * scale - lse);
  }
}
