// adam: one Adam update in place (PyTorch semantics, spec 7):
//   m ← m + (1 − β₁)(g − m),  v ← β₂ v + (1 − β₂) g²,
//   θ ← θ − (lr / c₁) · m / (sqrt(v) / sqrt(c₂) + ε).
// CPU twin: cpuBackend.adam.
//
// Thread layout: one thread per parameter value.
// Dispatch: ceil(count / WORKGROUP_SIZE) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  count: u32,
  step_size: f32,
  beta1: f32,
  beta2: f32,
  epsilon: f32,
  sqrt_bias_correction2: f32,
}

@group(0) @binding(0) var<storage, read_write> parameter: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> first_moment: array<f32>;
@group(0) @binding(3) var<storage, read_write> second_moment: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

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
  let g = grad[i];
  let m = first_moment[i] + (1.0 - params.beta1) * (g - first_moment[i]);
  let v = params.beta2 * second_moment[i] + (1.0 - params.beta2) * g * g;
  first_moment[i] = m;
  second_moment[i] = v;
  let denominator = sqrt(v) / params.sqrt_bias_correction2 + params.epsilon;
  parameter[i] = parameter[i] - params.step_size * (m / denominator);
}
