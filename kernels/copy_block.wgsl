// copy_block: out[r, out_col + c] = x[r, in_col + c] for a block of rows ×
// cols, each matrix with its own row length. Serves concatCols and
// sliceCols (CPU twins: cpuBackend.concatCols, cpuBackend.sliceCols).
//
// Thread layout: one thread per copied value.
// Dispatch: ceil(rows · cols / WORKGROUP_SIZE) workgroups, folded into
// (x, y) by WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
  in_width: u32,
  in_col: u32,
  out_width: u32,
  out_col: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

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
  let c = i % params.cols;
  out[r * params.out_width + params.out_col + c] =
    x[r * params.in_width + params.in_col + c];
}
