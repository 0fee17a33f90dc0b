// matmul: C = op(A) · op(B), or C += op(A) · op(B) when ACCUMULATE, where
// op transposes an operand stored transposed. CPU twin: cpuBackend.matmul.
//
// Thread layout: a workgroup of WORKGROUP_COLS × WORKGROUP_ROWS threads
// computes one TILE_ROWS × TILE_COLS tile of C; each thread owns
// THREAD_ROWS × THREAD_COLS outputs, strided by the workgroup size so that
// neighbouring threads read neighbouring words of workgroup memory. The
// inner dimension is walked TILE_K at a time through two tiles in
// workgroup memory, loaded by all threads together.
//
// Dispatch: (ceil(n / TILE_COLS), ceil(m / TILE_ROWS)) workgroups. The
// TypeScript side passes the tile sizes as the override constants below
// and sizes the dispatch from the same values.
//
// Operands are addressed with a leading dimension and an element offset so
// that a window of a tensor too large for one binding can be bound and
// multiplied piece by piece (see webgpu.ts, "Large tensors").

struct Params {
  m: u32,
  n: u32,
  k: u32,
  lda: u32,
  ldb: u32,
  ldc: u32,
  a_offset: u32,
  b_offset: u32,
  c_offset: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

override WORKGROUP_ROWS: u32 = 16;
override WORKGROUP_COLS: u32 = 16;
// At most 4 each: the accumulators are a 16-element array.
override THREAD_ROWS: u32 = 4;
override THREAD_COLS: u32 = 4;
override TILE_K: u32 = 16;
override TRANSPOSE_A: bool = false;
override TRANSPOSE_B: bool = false;
override ACCUMULATE: bool = false;

override TILE_ROWS: u32 = WORKGROUP_ROWS * THREAD_ROWS;
override TILE_COLS: u32 = WORKGROUP_COLS * THREAD_COLS;
override THREADS: u32 = WORKGROUP_ROWS * WORKGROUP_COLS;

// tile_a[r * TILE_K + k] = op(A)[row0 + r, k0 + k]
var<workgroup> tile_a: array<f32, TILE_ROWS * TILE_K>;
// tile_b[k * TILE_COLS + j] = op(B)[k0 + k, col0 + j]
var<workgroup> tile_b: array<f32, TILE_K * TILE_COLS>;

fn load_a(row: u32, inner: u32) -> f32 {
  if (row >= params.m || inner >= params.k) {
    return 0.0;
  }
  if (TRANSPOSE_A) {
    return a[params.a_offset + inner * params.lda + row];
  }
  return a[params.a_offset + row * params.lda + inner];
}

fn load_b(inner: u32, col: u32) -> f32 {
  if (inner >= params.k || col >= params.n) {
    return 0.0;
  }
  if (TRANSPOSE_B) {
    return b[params.b_offset + col * params.ldb + inner];
  }
  return b[params.b_offset + inner * params.ldb + col];
}

@compute @workgroup_size(WORKGROUP_COLS, WORKGROUP_ROWS)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(local_invocation_id) local: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let row0 = group.y * TILE_ROWS;
  let col0 = group.x * TILE_COLS;
  var sums: array<f32, 16>;
  var a_values: array<f32, 4>;
  var b_values: array<f32, 4>;
  for (var k0 = 0u; k0 < params.k; k0 += TILE_K) {
    // Consecutive threads read consecutive words of the stored operand.
    for (var e = thread; e < TILE_ROWS * TILE_K; e += THREADS) {
      if (TRANSPOSE_A) {
        let r = e % TILE_ROWS;
        let kk = e / TILE_ROWS;
        tile_a[r * TILE_K + kk] = load_a(row0 + r, k0 + kk);
      } else {
        let r = e / TILE_K;
        let kk = e % TILE_K;
        tile_a[r * TILE_K + kk] = load_a(row0 + r, k0 + kk);
      }
    }
    for (var e = thread; e < TILE_K * TILE_COLS; e += THREADS) {
      if (TRANSPOSE_B) {
        let kk = e % TILE_K;
        let j = e / TILE_K;
        tile_b[kk * TILE_COLS + j] = load_b(k0 + kk, col0 + j);
      } else {
        let kk = e / TILE_COLS;
        let j = e % TILE_COLS;
        tile_b[kk * TILE_COLS + j] = load_b(k0 + kk, col0 + j);
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      for (var i = 0u; i < THREAD_ROWS; i++) {
        a_values[i] = tile_a[(local.y + i * WORKGROUP_ROWS) * TILE_K + kk];
      }
      for (var j = 0u; j < THREAD_COLS; j++) {
        b_values[j] = tile_b[kk * TILE_COLS + local.x + j * WORKGROUP_COLS];
      }
      for (var i = 0u; i < THREAD_ROWS; i++) {
        for (var j = 0u; j < THREAD_COLS; j++) {
          sums[i * 4u + j] = fma(a_values[i], b_values[j], sums[i * 4u + j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < THREAD_ROWS; i++) {
    let row = row0 + local.y + i * WORKGROUP_ROWS;
    for (var j = 0u; j < THREAD_COLS; j++) {
      let col = col0 + local.x + j * WORKGROUP_COLS;
      if (row < params.m && col < params.n) {
        let index = params.c_offset + row * params.ldc + col;
        if (ACCUMULATE) {
          c[index] = c[index] + sums[i * 4u + j];
        } else {
          c[index] = sums[i * 4u + j];
        }
      }
    }
  }
}
