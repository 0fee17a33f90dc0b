// info_nce_backward: gradients of the mean InfoNCE (spec 6) with
// P_bc = exp(x̂_b · ŷ_c / τ − lse_b) and k = g / (τ B):
//   SIDE 0:  dx̂_b = k Σ_c (P_bc − δ_bc) ŷ_c
//   SIDE 1:  dŷ_c = k Σ_b (P_bc − δ_bc) x̂_b
// P is recomputed, never stored. CPU twin: cpuBackend.infoNceBackward.
//
// Thread layout: one workgroup per output row r. The partners are walked
// WORKGROUP_SIZE at a time: thread t first computes the weight P − δ of
// partner q0 + t into workgroup memory, then each thread adds the weighted
// partner rows into its own output columns t, t + WORKGROUP_SIZE, … (up to
// COLUMNS_PER_THREAD of them).
// Dispatch: rows workgroups, folded into (x, y) by WebGpuDevice.grid
// (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
  inverse_temperature: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> logsumexp: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64;
override SIDE: u32 = 0;
// The TypeScript side checks cols ≤ WORKGROUP_SIZE · COLUMNS_PER_THREAD.
const COLUMNS_PER_THREAD: u32 = 8u;

var<workgroup> weights: array<f32, WORKGROUP_SIZE>;

fn similarity(b: u32, c: u32) -> f32 {
  var dot = 0.0;
  for (var j = 0u; j < params.cols; j++) {
    dot = fma(x[b * params.cols + j], y[c * params.cols + j], dot);
  }
  return dot * params.inverse_temperature;
}

fn partner(q: u32, j: u32) -> f32 {
  if (SIDE == 0u) {
    return y[q * params.cols + j];
  }
  return x[q * params.cols + j];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let r = group.x + group.y * groups.x;
  let in_range = r < params.rows;
  var sums: array<f32, COLUMNS_PER_THREAD>;
  for (var q0 = 0u; q0 < params.rows; q0 += WORKGROUP_SIZE) {
    let q = q0 + thread;
    var weight = 0.0;
    if (in_range && q < params.rows) {
      if (SIDE == 0u) {
        weight = exp(similarity(r, q) - logsumexp[r]);
      } else {
        weight = exp(similarity(q, r) - logsumexp[q]);
      }
      if (q == r) {
        weight -= 1.0;
      }
    }
    weights[thread] = weight;
    workgroupBarrier();
    let count = min(WORKGROUP_SIZE, params.rows - q0);
    for (var slot = 0u; slot < COLUMNS_PER_THREAD; slot++) {
      let j = thread + slot * WORKGROUP_SIZE;
      if (in_range && j < params.cols) {
        var sum = sums[slot];
        for (var t = 0u; t < count; t++) {
          sum = fma(weights[t], partner(q0 + t, j), sum);
        }
        sums[slot] = sum;
      }
    }
    workgroupBarrier();
  }
  if (!in_range) {
    return;
  }
  let k = grad[0] * params.inverse_temperature / f32(params.rows);
  for (var slot = 0u; slot < COLUMNS_PER_THREAD; slot++) {
    let j = thread + slot * WORKGROUP_SIZE;
    if (j < params.cols) {
      out[r * params.cols + j] = k * sums[slot];
    }
  }
}
