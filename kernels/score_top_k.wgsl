// score_top_k: for each user of a block, the K best items by the score
// u · e_i (spec 5), with the user's excluded (train) items scored −1e10
// (spec 8), ties broken towards the smaller item index. The users × items
// score matrix is never stored: each workgroup scores one user's items
// and keeps only its K best. CPU twin: scoreTopKCpu in webgpu_top_k.ts.
//
// Thread layout: one workgroup per user. Thread t scans the items
// t, t + WORKGROUP_SIZE, … in increasing order, walking a pointer through
// the user's sorted excluded items, and keeps its K best, sorted, in its
// own slice of workgroup memory. The WORKGROUP_SIZE lists then merge in a
// tree: in each round thread t merges list t + half into list t in place,
// from the back, after counting how many of list t survive. Lists live in
// workgroup memory rather than private arrays, whose dynamic indexing
// compiles badly (WORKGROUP_SIZE · K pairs; the TypeScript side picks
// WORKGROUP_SIZE, a power of 2, so that they fit).
// Dispatch: users workgroups, folded into (x, y) by WebGpuDevice.grid
// (linear index x + y · num_workgroups.x).

struct Params {
  users: u32,
  items: u32,
  cols: u32,
  k: u32,
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
// Sizes the lists; loops run to params.k (= K_CAPACITY) instead, since
// loops with a constant trip count are unrolled by some compilers (llvmpipe
// then takes minutes to build the pipeline).
override K_CAPACITY: u32 = 50;
const EXCLUDED_SCORE: f32 = -1e10;
const NO_ITEM: i32 = 2147483647;

var<workgroup> any_nan: atomic<u32>;
var<workgroup> shared_scores: array<f32, WORKGROUP_SIZE * K_CAPACITY>;
var<workgroup> shared_items: array<i32, WORKGROUP_SIZE * K_CAPACITY>;

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
  let base = thread * params.k;
  for (var r = 0u; r < params.k; r++) {
    shared_scores[base + r] = -3.0e38;
    shared_items[base + r] = NO_ITEM;
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
      let last = base + params.k - 1u;
      if (better(score, i32(item), shared_scores[last], shared_items[last])) {
        var r = params.k - 1u;
        while (r > 0u && better(
          score,
          i32(item),
          shared_scores[base + r - 1u],
          shared_items[base + r - 1u],
        )) {
          shared_scores[base + r] = shared_scores[base + r - 1u];
          shared_items[base + r] = shared_items[base + r - 1u];
          r--;
        }
        shared_scores[base + r] = score;
        shared_items[base + r] = i32(item);
      }
    }
  }
  workgroupBarrier();
  for (var half = WORKGROUP_SIZE / 2u; half > 0u; half /= 2u) {
    if (thread < half) {
      let other = (thread + half) * params.k;
      // How many of this list are among the params.k best of both.
      var kept = 0u;
      var taken = 0u;
      for (var r = 0u; r < params.k; r++) {
        if (better(
          shared_scores[base + kept],
          shared_items[base + kept],
          shared_scores[other + taken],
          shared_items[other + taken],
        )) {
          kept++;
        } else {
          taken++;
        }
      }
      // Merge from the back: place p is never left of an unread entry.
      var p = params.k;
      while (taken > 0u) {
        p--;
        let use_own = kept > 0u && better(
          shared_scores[base + kept - 1u],
          shared_items[base + kept - 1u],
          shared_scores[other + taken - 1u],
          shared_items[other + taken - 1u],
        ) == false;
        if (use_own) {
          kept--;
          shared_scores[base + p] = shared_scores[base + kept];
          shared_items[base + p] = shared_items[base + kept];
        } else {
          taken--;
          shared_scores[base + p] = shared_scores[other + taken];
          shared_items[base + p] = shared_items[other + taken];
        }
      }
    }
    workgroupBarrier();
  }
  let nan_found = atomicLoad(&any_nan);
  if (in_range && thread == 0u) {
    nan_seen[slot] = nan_found;
    for (var r = 0u; r < params.k; r++) {
      // Fewer than params.k items: the missing places read item −1.
      top_items[slot * params.k + r] = select(
        shared_items[r],
        -1,
        shared_items[r] == NO_ITEM,
      );
      top_scores[slot * params.k + r] = shared_scores[r];
    }
  }
}
