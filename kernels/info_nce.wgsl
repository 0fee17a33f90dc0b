// info_nce: the batch InfoNCE of spec 6 on rows already normalised, fused
// so that the B × B similarity matrix is never stored:
//   s_bc = x̂_b · ŷ_c / τ,  lse_b = logsumexp_c s_bc,
//   term_b = lse_b − s_bb   (the loss is the mean of term_b).
// CPU twin: cpuBackend.infoNce.
//
// Thread layout: one workgroup per row b. Thread t visits the partners
// c = t, t + WORKGROUP_SIZE, … keeping a running maximum and a sum of
// exponentials relative to it; the workgroup then merges the pairs in a
// tree through workgroup memory.
// Dispatch: rows workgroups, folded into (x, y) by WebGpuDevice.grid
// (linear index x + y · num_workgroups.x). WORKGROUP_SIZE is a power of 2.

struct Params {
  rows: u32,
  cols: u32,
  inverse_temperature: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> logsumexp: array<f32>;
@group(0) @binding(3) var<storage, read_write> term: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64;

var<workgroup> maxima: array<f32, WORKGROUP_SIZE>;
var<workgroup> sums: array<f32, WORKGROUP_SIZE>;

fn similarity(b: u32, c: u32) -> f32 {
  var dot = 0.0;
  for (var j = 0u; j < params.cols; j++) {
    dot = fma(x[b * params.cols + j], y[c * params.cols + j], dot);
  }
  return dot * params.inverse_temperature;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let b = group.x + group.y * groups.x;
  // Workgroups past the last row still reach every barrier.
  let in_range = b < params.rows;
  var largest = -3.0e38;
  var sum = 0.0;
  if (in_range) {
    for (var c = thread; c < params.rows; c += WORKGROUP_SIZE) {
      let s = similarity(b, c);
      if (s > largest) {
        sum = sum * exp(largest - s) + 1.0;
        largest = s;
      } else {
        sum += exp(s - largest);
      }
    }
  }
  maxima[thread] = largest;
  sums[thread] = sum;
  workgroupBarrier();
  for (var half = WORKGROUP_SIZE / 2u; half > 0u; half /= 2u) {
    if (thread < half) {
      let other_max = maxima[thread + half];
      let other_sum = sums[thread + half];
      let joined = max(maxima[thread], other_max);
      sums[thread] = sums[thread] * exp(maxima[thread] - joined) +
        other_sum * exp(other_max - joined);
      maxima[thread] = joined;
    }
    workgroupBarrier();
  }
  if (in_range && thread == 0u) {
    let lse = maxima[0] + log(sums[0]);
    logsumexp[b] = lse;
    term[b] = lse - similarity(b, b);
  }
}
