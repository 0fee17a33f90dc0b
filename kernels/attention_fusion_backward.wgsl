// attention_fusion_backward: for row r, with h_v = tanh(Z_v[r] + b₁),
// γ_v = −g[r] · x_v[r] and δ_v = a_v (γ_v − Σ_u a_u γ_u):
//   dx_v[r] = (1 − a_v) g[r],   dZ_v[r] = δ_v w₂ ⊙ (1 − h_v²),
//   w2_rows[r] = Σ_v δ_v h_v  (this row's share of dw₂).
// dw₂ and db₁ are column sums of w2_rows and dZ (sum_to, no atomics).
// CPU twin: cpuBackend.attentionFusionBackward.
//
// Thread layout: one thread per row, walking its V · cols values.
// Dispatch: ceil(rows / WORKGROUP_SIZE) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
  views: u32,
}

// query holds b₁ (values 0 .. cols) then w₂ (cols .. 2 cols), so that the
// kernel stays within 8 storage bindings, WebGPU's portable limit.
@group(0) @binding(0) var<storage, read> views: array<f32>;
@group(0) @binding(1) var<storage, read> preactivation: array<f32>;
@group(0) @binding(2) var<storage, read> query: array<f32>;
@group(0) @binding(3) var<storage, read> attention: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> views_grad: array<f32>;
@group(0) @binding(6) var<storage, read_write> preactivation_grad: array<f32>;
@group(0) @binding(7) var<storage, read_write> query_vector_rows: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64;
const MAX_VIEWS: u32 = 3u;

// tanh through exp(−2|v|), which cannot overflow.
fn stable_tanh(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

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
  let row = r * params.cols;
  var delta: array<f32, MAX_VIEWS>;
  var weighted = 0.0;
  for (var v = 0u; v < params.views; v++) {
    let base = (v * params.rows + r) * params.cols;
    var dot = 0.0;
    for (var j = 0u; j < params.cols; j++) {
      dot = fma(grad[row + j], views[base + j], dot);
    }
    delta[v] = -dot;
    weighted = fma(attention[r * params.views + v], -dot, weighted);
  }
  for (var v = 0u; v < params.views; v++) {
    let a = attention[r * params.views + v];
    delta[v] = a * (delta[v] - weighted);
  }
  for (var j = 0u; j < params.cols; j++) {
    var share = 0.0;
    for (var v = 0u; v < params.views; v++) {
      let i = (v * params.rows + r) * params.cols + j;
      let a = attention[r * params.views + v];
      let h = stable_tanh(preactivation[i] + query[j]);
      let w = query[params.cols + j];
      views_grad[i] = (1.0 - a) * grad[row + j];
      preactivation_grad[i] = delta[v] * w * (1.0 - h * h);
      share = fma(delta[v], h, share);
    }
    query_vector_rows[row + j] = share;
  }
}
