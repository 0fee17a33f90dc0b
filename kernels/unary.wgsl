// unary: out = f(x) for f in sigmoid, tanh, logSigmoid, exp, log, sqrt,
// written in overflow-safe forms. CPU twin: cpuBackend.unary.
//
// FUNCTION: 0 = sigmoid, 1 = tanh, 2 = logSigmoid, 3 = exp, 4 = log,
// 5 = sqrt (the order of UNARY_FUNCTIONS in webgpu.ts).
//
// Thread layout: one thread per value.
// Dispatch: ceil(count / WORKGROUP_SIZE) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  count: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 256;
override FUNCTION: u32 = 0;

fn sigmoid(v: f32) -> f32 {
  if (v >= 0.0) {
    return 1.0 / (1.0 + exp(-v));
  }
  let e = exp(v);
  return e / (1.0 + e);
}

fn apply(v: f32) -> f32 {
  switch FUNCTION {
    case 0u: {
      return sigmoid(v);
    }
    case 1u: {
      // tanh through exp(−2|v|), which cannot overflow.
      let e = exp(-2.0 * abs(v));
      return sign(v) * (1.0 - e) / (1.0 + e);
    }
    case 2u: {
      // log σ(v) = min(v, 0) − log(1 + exp(−|v|))
      return min(v, 0.0) - log(1.0 + exp(-abs(v)));
    }
    case 3u: {
      return exp(v);
    }
    case 4u: {
      return log(v);
    }
    default: {
      return sqrt(v);
    }
  }
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
  out[i] = apply(x[i]);
}
