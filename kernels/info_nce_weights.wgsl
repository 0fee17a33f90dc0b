// info_nce_weights: the weights of the InfoNCE backward from the kept
// probabilities P [rows, rows] of info_nce_rows.wgsl:
//   W_bc = g (P_bc − δ_bc) / (τ B),
// so that dx̂ = W ŷ and dŷ = Wᵀ x̂ (two calls of matmul.wgsl).
// CPU twin: cpuBackend.infoNceBackward.
//
// Thread layout: one thread per value of W.
// Dispatch: ceil(rows² / WORKGROUP_SIZE) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  inverse_temperature: f32,
}

@group(0) @binding(0) var<storage, read> probabilities: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 256;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let i = (group.x + group.y * groups.x) * WORKGROUP_SIZE + thread;
  if (i >= params.rows * params.rows) {
    return;
  }
  let k = grad[0] * params.inverse_temperature / f32(params.rows);
  var p = probabilities[i];
  if (i / params.rows == i % params.rows) {
    p -= 1.0;
  }
  weights[i] = k * p;
}
