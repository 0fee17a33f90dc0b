// gated_projection: the gate of a modality view (spec 5) after its linear
// product Z = T_m(F_m) W_gᵀ (done by matmul):
//   f[r, j] = E[r, j] · σ(Z[r, j] + b[j]).
// CPU twin: cpuBackend.gatedProjection.
//
// Thread layout: one thread per value of the [rows, cols] result.
// Dispatch: ceil(rows · cols / WORKGROUP_SIZE) workgroups, folded into
// (x, y) by WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<storage, read> item: array<f32>;
@group(0) @binding(1) var<storage, read> preactivation: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> gated: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

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
  gated[i] = item[i] * sigmoid(preactivation[i] + bias[i % params.cols]);
}
