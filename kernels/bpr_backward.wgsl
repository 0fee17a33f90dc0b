// bpr_backward: with c_b = −g σ'(d_b) / ((ε + σ(d_b)) B), which is
// −g σ(−d_b) / B when ε = 0:
//   du_b = c_b (p_b − n_b),  dp_b = c_b u_b,  dn_b = −c_b u_b.
// CPU twin: cpuBackend.bprBackward.
//
// Thread layout: one thread per value of the [rows, cols] gradients.
// Dispatch: ceil(rows · cols / WORKGROUP_SIZE) workgroups, folded into
// (x, y) by WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
  epsilon: f32,
}

@group(0) @binding(0) var<storage, read> user: array<f32>;
@group(0) @binding(1) var<storage, read> positive: array<f32>;
@group(0) @binding(2) var<storage, read> negative: array<f32>;
@group(0) @binding(3) var<storage, read> difference: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> user_grad: array<f32>;
@group(0) @binding(6) var<storage, read_write> positive_grad: array<f32>;
@group(0) @binding(7) var<storage, read_write> negative_grad: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 256;

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
  let i = (group.x + group.y * groups.x) * WORKGROUP_SIZE + thread;
  if (i >= params.rows * params.cols) {
    return;
  }
  let d = difference[i / params.cols];
  var coefficient = 0.0;
  if (params.epsilon == 0.0) {
    coefficient = -sigmoid(-d);
  } else {
    let s = sigmoid(d);
    coefficient = -s * (1.0 - s) / (params.epsilon + s);
  }
  coefficient *= grad[0] / f32(params.rows);
  user_grad[i] = coefficient * (positive[i] - negative[i]);
  positive_grad[i] = coefficient * user[i];
  negative_grad[i] = -coefficient * user[i];
}
