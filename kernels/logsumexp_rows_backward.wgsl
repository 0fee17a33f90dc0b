// logsumexp_rows_backward: dx[r, c] = g[r] exp(x[r, c] − y[r]).
// CPU twin: cpuBackend.logsumexpRowsBackward.
//
// Thread layout: one thread per value.
// Dispatch: ceil(rows · cols / WORKGROUP_SIZE) workgroups, folded into
// (x, y) by WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 256;

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
  let r = i / params.cols;
  out[i] = grad[r] * exp(x[i] - y[r]);
}
