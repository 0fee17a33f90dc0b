// broadcast: repeats x [rows or 1, cols or 1] to [rows, cols]. CPU twin:
// cpuBackend.broadcast.
//
// LAYOUT as in binary.wgsl: 0 = full, 1 = row vector, 2 = column vector,
// 3 = scalar.
//
// Thread layout: one thread per output value.
// Dispatch: ceil(rows · cols / WORKGROUP_SIZE) workgroups, folded into
// (x, y) by WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 256;
override LAYOUT: u32 = 0;

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
  var source = i;
  switch LAYOUT {
    case 1u: {
      source = i % params.cols;
    }
    case 2u: {
      source = i / params.cols;
    }
    case 3u: {
      source = 0u;
    }
    default: {
    }
  }
  out[i] = x[source];
}
