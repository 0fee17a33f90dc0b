// attention_fusion: MSCA's fusion of V views (spec 5) after the query's
// linear product Z = [x_1; …; x_V] W₁ᵀ (done by matmul). For row r:
//   q_v = w₂ · tanh(Z_v[r] + b₁),  a = softmax_v(q),
//   Ê[r] = Σ_v (1 − a_v) x_v[r].
// View v of a stacked input occupies rows v · rows .. (v + 1) · rows.
// CPU twin: cpuBackend.attentionFusion.
//
// Thread layout: one thread per row, walking its V · cols values (cols is
// the embedding width, 64 in MSCA; V ≤ MAX_VIEWS).
// Dispatch: ceil(rows / WORKGROUP_SIZE) workgroups, folded into (x, y) by
// WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
  views: u32,
}

// query holds b₁ (values 0 .. cols) then w₂ (cols .. 2 cols), as in the
// backward kernel.
@group(0) @binding(0) var<storage, read> views: array<f32>;
@group(0) @binding(1) var<storage, read> preactivation: array<f32>;
@group(0) @binding(2) var<storage, read> query: array<f32>;
@group(0) @binding(3) var<storage, read_write> fused: array<f32>;
@group(0) @binding(4) var<storage, read_write> attention: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

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
  var weight: array<f32, MAX_VIEWS>;
  var largest = -3.4e38;
  for (var v = 0u; v < params.views; v++) {
    let base = (v * params.rows + r) * params.cols;
    var score = 0.0;
    for (var j = 0u; j < params.cols; j++) {
      let h = stable_tanh(preactivation[base + j] + query[j]);
      score = fma(query[params.cols + j], h, score);
    }
    weight[v] = score;
    largest = max(largest, score);
  }
  var total = 0.0;
  for (var v = 0u; v < params.views; v++) {
    weight[v] = exp(weight[v] - largest);
    total += weight[v];
  }
  for (var v = 0u; v < params.views; v++) {
    weight[v] /= total;
    attention[r * params.views + v] = weight[v];
  }
  for (var j = 0u; j < params.cols; j++) {
    var sum = 0.0;
    for (var v = 0u; v < params.views; v++) {
      sum = fma(1.0 - weight[v], views[(v * params.rows + r) * params.cols + j],
        sum);
    }
    fused[r * params.cols + j] = sum;
  }
}
