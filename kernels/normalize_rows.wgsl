// normalize_rows: y[r] = x[r] / max(‖x[r]‖₂, floor); a zero row stays
// zero. CPU twin: cpuBackend.normalizeRows.
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
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

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
  for (var c = 0u; c < params.cols; c++) {
    squares = fma(x[start + c], x[start + c], squares);
  }
  let norm = max(sqrt(squares), params.floor);
  for (var c = 0u; c < params.cols; c++) {
    y[start + c] = x[start + c] / norm;
  }
}
