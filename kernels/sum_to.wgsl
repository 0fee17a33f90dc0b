// sum_to: partial sums along the middle axis of x seen as
// [outer, segment, inner]:
//   out[o, q, i] = factor · Σ f(x[o, s, i]) for s in q·chunk ..
//   min(segment, (q + 1)·chunk), with f(v) = v, or v² when SQUARE.
// Repeated until one chunk covers the segment, it gives row sums
// (outer = rows, segment = cols, inner = 1), column sums (outer = 1,
// segment = rows, inner = cols), the total and the squared norm.
// CPU twins: cpuBackend.sumTo and cpuBackend.squaredNorm.
//
// Thread layout: one thread per output value; neighbouring threads take
// neighbouring i, so column sums read neighbouring words.
// Dispatch: ceil(outer · ceil(segment / chunk) · inner / WORKGROUP_SIZE)
// workgroups, folded into (x, y) by WebGpuDevice.grid (linear index
// x + y · num_workgroups.x).

struct Params {
  outer: u32,
  segment: u32,
  inner: u32,
  chunk: u32,
  factor: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 256;
override SQUARE: bool = false;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let t = (group.x + group.y * groups.x) * WORKGROUP_SIZE + thread;
  let chunks = (params.segment + params.chunk - 1u) / params.chunk;
  if (t >= params.outer * max(chunks, 1u) * params.inner) {
    return;
  }
  let i = t % params.inner;
  let q = (t / params.inner) % max(chunks, 1u);
  let o = t / (params.inner * max(chunks, 1u));
  let begin = q * params.chunk;
  let end = min(params.segment, begin + params.chunk);
  var sum = 0.0;
  for (var s = begin; s < end; s++) {
    let v = x[(o * params.segment + s) * params.inner + i];
    if (SQUARE) {
      sum = fma(v, v, sum);
    } else {
      sum += v;
    }
  }
  out[t] = params.factor * sum;
}
