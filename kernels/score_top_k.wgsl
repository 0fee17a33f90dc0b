// score_top_k: for each user of a block, the K best items by the score
// u · e_i (spec 5), with the user's excluded (train) items scored −1e10
// (spec 8), ties broken towards the smaller item index. The users × items
// score matrix is never stored: each workgroup scores one user's items
// and keeps only its K best. CPU twin: scoreTopKCpu in webgpu_top_k.ts.
//
// Thread layout: one workgroup per user. Thread t scans the items
// t, t + WORKGROUP_SIZE, … in increasing order, walking a pointer through
// the user's sorted excluded items, and keeps a sorted private list of its
// K best. The WORKGROUP_SIZE lists then merge in a tree through workgroup
// memory (WORKGROUP_SIZE · K pairs; the TypeScript side picks
// WORKGROUP_SIZE, a power of 2, so that they fit).
// Dispatch: users workgroups, folded into (x, y) by WebGpuDevice.grid
// (linear index x + y · num_workgroups.x).

struct Params {
  users: u32,
  items: u32,
  cols: u32,
}

@group(0) @binding(0) var<storage, read> user_table: array<f32>;
@group(0) @binding(1) var<storage, read> user_index: array<i32>;
@group(0) @binding(2) var<storage, read> item_table: array<f32>;
@group(0) @binding(3) var<storage, read> excluded_offsets: array<i32>;
@group(0) @binding(4) var<storage, read> excluded_items: array<i32>;
@group(0) @binding(5) var<storage, read_write> top_items: array<i32>;
@group(0) @binding(6) var<storage, read_write> top_scores: array<f32>;
// 1 where a user's scores held a NaN (the model diverged), else 0.
@group(0) @binding(7) var<storage, read_write> nan_seen: array<u32>;
@group(0) @binding(8) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 32;
override K: u32 = 50;
const MAX_K: u32 = 128u;
const EXCLUDED_SCORE: f32 = -1e10;
const NO_ITEM: i32 = 2147483647;

var<workgroup> any_nan: atomic<u32>;
var<workgroup> shared_scores: array<f32, WORKGROUP_SIZE * K>;
var<workgroup> shared_items: array<i32, WORKGROUP_SIZE * K>;

// Bit test rather than v != v, which a compiler may assume false.
fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn better(score_a: f32, item_a: i32, score_b: f32, item_b: i32) -> bool {
  return score_a > score_b || (score_a == score_b && item_a < item_b);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let slot = group.x + group.y * groups.x;
  let in_range = slot < params.users;
  var scores: array<f32, MAX_K>;
  var items: array<i32, MAX_K>;
  for (var r = 0u; r < K; r++) {
    scores[r] = -3.0e38;
    items[r] = NO_ITEM;
  }
  if (in_range) {
    let user = u32(user_index[slot]);
    var next = u32(excluded_offsets[slot]);
    let end = u32(excluded_offsets[slot + 1u]);
    for (var item = thread; item < params.items; item += WORKGROUP_SIZE) {
      while (next < end && u32(excluded_items[next]) < item) {
        next++;
      }
      var score = EXCLUDED_SCORE;
      if (next >= end || u32(excluded_items[next]) != item) {
        score = 0.0;
        for (var j = 0u; j < params.cols; j++) {
          score = fma(
            user_table[user * params.cols + j],
            item_table[item * params.cols + j],
            score,
          );
        }
      }
      if (is_nan(score)) {
        atomicOr(&any_nan, 1u);
      }
      if (better(score, i32(item), scores[K - 1u], items[K - 1u])) {
        var r = K - 1u;
        while (r > 0u && better(score, i32(item), scores[r - 1u],
          items[r - 1u])) {
          scores[r] = scores[r - 1u];
          items[r] = items[r - 1u];
          r--;
        }
        scores[r] = score;
        items[r] = i32(item);
      }
    }
  }
  for (var r = 0u; r < K; r++) {
    shared_scores[thread * K + r] = scores[r];
    shared_items[thread * K + r] = items[r];
  }
  workgroupBarrier();
  for (var half = WORKGROUP_SIZE / 2u; half > 0u; half /= 2u) {
    if (thread < half) {
      // Merge list thread + half into list thread, keeping K.
      var left = thread * K;
      var right = (thread + half) * K;
      let left_end = left + K;
      let right_end = right + K;
      for (var r = 0u; r < K; r++) {
        let take_left = right >= right_end || (left < left_end && better(
          shared_scores[left],
          shared_items[left],
          shared_scores[right],
          shared_items[right],
        ));
        if (take_left) {
          scores[r] = shared_scores[left];
          items[r] = shared_items[left];
          left++;
        } else {
          scores[r] = shared_scores[right];
          items[r] = shared_items[right];
          right++;
        }
      }
    }
    workgroupBarrier();
    if (thread < half) {
      for (var r = 0u; r < K; r++) {
        shared_scores[thread * K + r] = scores[r];
        shared_items[thread * K + r] = items[r];
      }
    }
    workgroupBarrier();
  }
  let nan_found = atomicLoad(&any_nan);
  if (in_range && thread == 0u) {
    nan_seen[slot] = nan_found;
    for (var r = 0u; r < K; r++) {
      // Fewer than K items: the missing places read item −1.
      top_items[slot * K + r] = select(
        shared_items[r],
        -1,
        shared_items[r] == NO_ITEM,
      );
      top_scores[slot * K + r] = shared_scores[r];
    }
  }
}
