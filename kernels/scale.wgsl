// scale: out = factor · x. CPU twin: cpuBackend.scale.
//
// Thread layout: one thread per value.
// Dispatch: ceil(count / WORKGROUP_SIZE) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  count: u32,
  factor: f32,
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
  if (i >= params.count) {
    return;
  }
  out[i] = params.factor * x[i];
}
