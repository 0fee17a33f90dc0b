// unary_backward: dx = g · f'(x) for the functions of unary.wgsl, from the
// forward input x and output y. CPU twin: cpuBackend.unaryBackward.
//
// sigmoid: g y (1 − y); tanh: g (1 − y²); logSigmoid: g σ(−x);
// exp: g y; log: g / x; sqrt: g / (2 y).
// FUNCTION numbers as in unary.wgsl.
//
// Thread layout: one thread per value.
// Dispatch: ceil(count / WORKGROUP_SIZE) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  count: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 256;
override FUNCTION: u32 = 0;

fn sigmoid(v: f32) -> f32 {
  if (v >= 0.0) {
    return 1.0 / (1.0 + exp(-v));
  }
  let e = exp(v);
  return e / (1.0 + e);
}

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
  switch FUNCTION {
    case 0u: {
      out[i] = g * y[i] * (1.0 - y[i]);
    }
    case 1u: {
      out[i] = g * (1.0 - y[i] * y[i]);
    }
    case 2u: {
      out[i] = g * sigmoid(-x[i]);
    }
    case 3u: {
      out[i] = g * y[i];
    }
    case 4u: {
      out[i] = g / x[i];
    }
    default: {
      out[i] = g / (2.0 * y[i]);
    }
  }
}
