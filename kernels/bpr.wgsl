// bpr: per-row pieces of the BPR loss (spec 6):
//   d_b = u_b · p_b − u_b · n_b,
//   term_b = −log(ε + σ(d_b)), or softplus(−d_b) when ε = 0.
// The loss is the mean of term_b. CPU twin: cpuBackend.bpr.
//
// Thread layout: one thread per row.
// Dispatch: ceil(rows / WORKGROUP_SIZE) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
  epsilon: f32,
}

@group(0) @binding(0) var<storage, read> user: array<f32>;
@group(0) @binding(1) var<storage, read> positive: array<f32>;
@group(0) @binding(2) var<storage, read> negative: array<f32>;
@group(0) @binding(3) var<storage, read_write> difference: array<f32>;
@group(0) @binding(4) var<storage, read_write> term: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64;

fn sigmoid(v: f32) -> f32 {
  if (v >= 0.0) {
    return 1.0 / (1.0 + exp(-v));
  }
  let e = exp(v);
  return e / (1.0 + e);
}

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
  var d = 0.0;
  for (var j = 0u; j < params.cols; j++) {
    let index = b * params.cols + j;
    d = fma(user[index], positive[index] - negative[index], d);
  }
  difference[b] = d;
  if (params.epsilon == 0.0) {
    // softplus(−d) = max(−d, 0) + log(1 + exp(−|d|))
    term[b] = max(-d, 0.0) + log(1.0 + exp(-abs(d)));
  } else {
    term[b] = -log(params.epsilon + sigmoid(d));
  }
}
