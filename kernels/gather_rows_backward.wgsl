// gather_rows_backward: out[r, c] = Σ grad[positions[q], c] for q in
// offsets[r] .. offsets[r + 1], the positions that picked table row r, in
// ascending order. Deterministic and free of float atomics (core WGSL has
// none): the inverse index is built once on the host. CPU twin:
// cpuBackend.gatherRowsBackward.
//
// Thread layout: one thread per output value (table row r, column c).
// Dispatch: ceil(rows · cols / WORKGROUP_SIZE) workgroups, folded into
// (x, y) by WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read> offsets: array<i32>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
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
  let c = i % params.cols;
  var sum = 0.0;
  for (var q = u32(offsets[r]); q < u32(offsets[r + 1u]); q++) {
    sum += grad[u32(positions[q]) * params.cols + c];
  }
  out[i] = sum;
}
