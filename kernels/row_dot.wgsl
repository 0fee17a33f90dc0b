// row_dot: out[r] = Σ_c a[r, c] b[r, c]. CPU twin: cpuBackend.rowDot.
//
// Thread layout: one thread per row (rows are 64 wide in MSCA).
// Dispatch: ceil(rows / WORKGROUP_SIZE) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

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
  var sum = 0.0;
  for (var c = 0u; c < params.cols; c++) {
    sum = fma(a[r * params.cols + c], b[r * params.cols + c], sum);
  }
  out[r] = sum;
}
