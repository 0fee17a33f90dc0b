// normalize_rows_backward: with n = ‖x[r]‖₂,
//   dx[r] = (g[r] − y[r] (y[r]·g[r])) / n   where n > floor,
//   dx[r] = g[r] / floor                     otherwise.
// CPU twin: cpuBackend.normalizeRowsBackward.
//
// Thread layout: one thread per row.
// Dispatch: ceil(rows / WORKGROUP_SIZE) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
  floor: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let r = (group.x + group.y * groups.x) * WORKGROUP_SIZE + thread;
  if (r >= params.rows) {
    return;
  }
  let start = r * params.cols;
  var squares = 0.0;
  var projection = 0.0;
  for (var c = 0u; c < params.cols; c++) {
    squares = fma(x[start + c], x[start + c], squares);
    projection = fma(y[start + c], grad[start + c], projection);
  }
  let norm = sqrt(squares);
  if (norm > params.floor) {
    for (var c = 0u; c < params.cols; c++) {
      out[start + c] = (grad[start + c] - y[start + c] * projection) / norm;
    }
  } else {
    for (var c = 0u; c < params.cols; c++) {
      out[start + c] = grad[start + c] / params.floor;
    }
  }
}
