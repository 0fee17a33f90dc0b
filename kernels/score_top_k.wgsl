// score_top_k: for each user of a block, the K best items by the score
// u · e_i (spec 5), with the user's excluded (train) items scored −1e10
// (spec 8), ties broken towards the smaller item index. The users × items
// score matrix is never stored: each workgroup scores one user's items and
// keeps only its K best. CPU twin: masking plus selectTopK in
// src/evaluation.ts.
//
// Thread layout: one workgroup per user. Thread t scans the items
// t, t + WORKGROUP_SIZE, … in increasing order, walking a pointer through
// the user's sorted excluded items, and keeps its K best, sorted, in its
// own slice of the `lists` scratch buffer. The WORKGROUP_SIZE lists then
// merge in a tree: in each round thread t merges list t + half into list
// t in place, from the back, after counting how many of list t survive.
// The lists live in a storage buffer rather than workgroup memory, whose
// zero-initialisation takes llvmpipe minutes to compile at this size.
// Dispatch: users workgroups, folded into (x, y) by WebGpuDevice.grid
// (linear index x + y · num_workgroups.x). WORKGROUP_SIZE is a power of 2.

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
// (score bits, item) pairs: users · WORKGROUP_SIZE lists of k.
@group(0) @binding(5) var<storage, read_write> lists: array<vec2<u32>>;
// (item, score bits) of each user's k best; item −1 past the item count.
@group(0) @binding(6) var<storage, read_write> best: array<vec2<u32>>;
// 1 where a user's scores held a NaN (the model diverged), else 0.
@group(0) @binding(7) var<storage, read_write> nan_seen: array<u32>;
@group(0) @binding(8) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 32;
const EXCLUDED_SCORE: f32 = -1e10;
const EMPTY_SCORE: f32 = -3.0e38;
const NO_ITEM: u32 = 0xffffffffu;

var<workgroup> any_nan: atomic<u32>;

// Bit test rather than v != v, which a compiler may assume false.
fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Higher score first; equal scores: smaller item first (NO_ITEM last).
fn better(a: vec2<u32>, b: vec2<u32>) -> bool {
  let score_a = bitcast<f32>(a.x);
  let score_b = bitcast<f32>(b.x);
  return score_a > score_b || (score_a == score_b && a.y < b.y);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let slot = group.x + group.y * groups.x;
  let in_range = slot < params.users;
  let k = params.k;
  let base = (slot * WORKGROUP_SIZE + thread) * k;
  if (in_range) {
    for (var r = 0u; r < k; r++) {
      lists[base + r] = vec2<u32>(bitcast<u32>(EMPTY_SCORE), NO_ITEM);
    }
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
      let entry = vec2<u32>(bitcast<u32>(score), item);
      if (better(entry, lists[base + k - 1u])) {
        var r = k - 1u;
        while (r > 0u && better(entry, lists[base + r - 1u])) {
          lists[base + r] = lists[base + r - 1u];
          r--;
        }
        lists[base + r] = entry;
      }
    }
  }
  storageBarrier();
  workgroupBarrier();
  for (var half = WORKGROUP_SIZE / 2u; half > 0u; half /= 2u) {
    if (in_range && thread < half) {
      let other = base + half * k;
      // How many of this list are among the k best of both.
      var kept = 0u;
      var taken = 0u;
      for (var r = 0u; r < k; r++) {
        if (better(lists[base + kept], lists[other + taken])) {
          kept++;
        } else {
          taken++;
        }
      }
      // Merge from the back: place p is never left of an unread entry.
      var p = k;
      while (taken > 0u) {
        p--;
        if (kept > 0u &&
          !better(lists[base + kept - 1u], lists[other + taken - 1u])) {
          kept--;
          lists[base + p] = lists[base + kept];
        } else {
          taken--;
          lists[base + p] = lists[other + taken];
        }
      }
    }
    storageBarrier();
    workgroupBarrier();
  }
  let nan_found = atomicLoad(&any_nan);
  if (in_range && thread == 0u) {
    nan_seen[slot] = nan_found;
    for (var r = 0u; r < k; r++) {
      let entry = lists[base + r];
      best[slot * k + r] = vec2<u32>(entry.y, entry.x);
    }
  }
}
