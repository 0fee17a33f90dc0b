// spmm: Y = S · X for a constant CSR matrix S [rows, inner] and a dense
// X [inner, cols]. CPU twin: cpuBackend.spmm. The transpose (for the
// backward) is uploaded as its own CSR matrix, so no atomics are needed.
//
// Thread layout: a workgroup of WORKGROUP_COLS × WORKGROUP_ROWS threads
// handles WORKGROUP_ROWS rows of S; within a row, thread x walks the columns
// x, x + WORKGROUP_COLS, … so that a 64-wide embedding row is read by 64
// neighbouring threads at once.
//
// Dispatch: ceil(rows / WORKGROUP_ROWS) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<storage, read> row_offsets: array<i32>;
@group(0) @binding(1) var<storage, read> column_indices: array<i32>;
@group(0) @binding(2) var<storage, read> values: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

override WORKGROUP_ROWS: u32 = 4;
override WORKGROUP_COLS: u32 = 64;

@compute @workgroup_size(WORKGROUP_COLS, WORKGROUP_ROWS)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_id) local: vec3<u32>,
) {
  let row = (group.x + group.y * groups.x) * WORKGROUP_ROWS + local.y;
  if (row >= params.rows) {
    return;
  }
  let begin = u32(row_offsets[row]);
  let end = u32(row_offsets[row + 1u]);
  for (var col = local.x; col < params.cols; col += WORKGROUP_COLS) {
    var sum = 0.0;
    for (var entry = begin; entry < end; entry++) {
      let source = u32(column_indices[entry]);
      sum = fma(values[entry], x[source * params.cols + col], sum);
    }
    y[row * params.cols + col] = sum;
  }
}
