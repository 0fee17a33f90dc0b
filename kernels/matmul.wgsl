// matmul: C = op(A) · op(B), or C += op(A) · op(B) when accumulating,
// where op transposes an operand stored transposed. CPU twin:
// cpuBackend.matmul.
//
// Thread layout: a workgroup of WORKGROUP_COLS × WORKGROUP_ROWS threads
// computes one TILE_ROWS × TILE_COLS tile of C; each thread owns a 4 × 4
// block of it (rows 4·y .. 4·y + 3, columns 4·x .. 4·x + 3 of the tile)
// held in four vec4 sums. The inner dimension is walked TILE_K at a time
// through two tiles in workgroup memory, loaded by all threads together:
// op(A) k-major, so that a thread reads its 4 rows as one vec4, and op(B)
// row-major, so that it reads its 4 columns as one vec4.
//
// Dispatch: (ceil(n / TILE_COLS), ceil(m / TILE_ROWS)) workgroups. The
// TypeScript side passes the tile sizes as the override constants below
// and sizes the dispatch from the same values.
//
// Operands are addressed with a leading dimension and an element offset so
// that a window of a tensor too large for one binding can be bound and
// multiplied piece by piece (see webgpu.ts, "Large tensors").
//
// Compile time on llvmpipe: the tiles are arrays of vec4 and the
// transposes, accumulation and TILE_K loop bound are uniforms, not
// override constants. Arrays of f32 of the same size, or constant trip
// counts, take llvmpipe 30 s and more to build one pipeline; this way one
// pipeline serves every call and builds in about 3 s.

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
  // 1 when A is stored [k, m].
  transpose_a: u32,
  // 1 when B is stored [n, k].
  transpose_b: u32,
  // 1 to add the product to C.
  accumulate: u32,
  // TILE_K again.
  tile_k: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

override WORKGROUP_ROWS: u32 = 16;
override WORKGROUP_COLS: u32 = 16;
// A multiple of 4.
override TILE_K: u32 = 16;

override TILE_ROWS: u32 = WORKGROUP_ROWS * 4u;
override TILE_COLS: u32 = WORKGROUP_COLS * 4u;
override THREADS: u32 = WORKGROUP_ROWS * WORKGROUP_COLS;

// Value (k, r) of the A tile, op(A)[row0 + r, k0 + k], is component r % 4
// of tile_a[(k · TILE_ROWS + r) / 4].
var<workgroup> tile_a: array<vec4<f32>, TILE_ROWS * TILE_K / 4u>;
// Value (k, j) of the B tile, op(B)[k0 + k, col0 + j], is component j % 4
// of tile_b[(k · TILE_COLS + j) / 4].
var<workgroup> tile_b: array<vec4<f32>, TILE_K * TILE_COLS / 4u>;

fn load_a(row: u32, inner: u32) -> f32 {
  if (row >= params.m || inner >= params.k) {
    return 0.0;
  }
  if (params.transpose_a == 1u) {
    return a[params.a_offset + inner * params.lda + row];
  }
  return a[params.a_offset + row * params.lda + inner];
}

fn load_b(inner: u32, col: u32) -> f32 {
  if (inner >= params.k || col >= params.n) {
    return 0.0;
  }
  if (params.transpose_b == 1u) {
    return b[params.b_offset + col * params.ldb + inner];
  }
  return b[params.b_offset + inner * params.ldb + col];
}

fn store(row: u32, col0: u32, sums: vec4<f32>) {
  if (row >= params.m) {
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    let col = col0 + j;
    if (col < params.n) {
      let index = params.c_offset + row * params.ldc + col;
      if (params.accumulate == 1u) {
        c[index] = c[index] + sums[j];
      } else {
        c[index] = sums[j];
      }
    }
  }
}

@compute @workgroup_size(WORKGROUP_COLS, WORKGROUP_ROWS)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(local_invocation_id) local: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let row0 = group.y * TILE_ROWS;
  let col0 = group.x * TILE_COLS;
  var sums0 = vec4<f32>();
  var sums1 = vec4<f32>();
  var sums2 = vec4<f32>();
  var sums3 = vec4<f32>();
  for (var k0 = 0u; k0 < params.k; k0 += params.tile_k) {
    // Consecutive threads read consecutive words of the stored operand.
    for (var e = thread; e < TILE_ROWS * TILE_K; e += THREADS) {
      var r = e / TILE_K;
      var kk = e % TILE_K;
      if (params.transpose_a == 1u) {
        r = e % TILE_ROWS;
        kk = e / TILE_ROWS;
      }
      let slot = kk * TILE_ROWS + r;
      tile_a[slot / 4u][slot % 4u] = load_a(row0 + r, k0 + kk);
    }
    for (var e = thread; e < TILE_K * TILE_COLS; e += THREADS) {
      var kk = e / TILE_COLS;
      var j = e % TILE_COLS;
      if (params.transpose_b == 1u) {
        kk = e % TILE_K;
        j = e / TILE_K;
      }
      let slot = kk * TILE_COLS + j;
      tile_b[slot / 4u][slot % 4u] = load_b(k0 + kk, col0 + j);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < params.tile_k; kk++) {
      let left = tile_a[(kk * TILE_ROWS) / 4u + local.y];
      let right = tile_b[(kk * TILE_COLS) / 4u + local.x];
      sums0 = fma(vec4<f32>(left.x), right, sums0);
      sums1 = fma(vec4<f32>(left.y), right, sums1);
      sums2 = fma(vec4<f32>(left.z), right, sums2);
      sums3 = fma(vec4<f32>(left.w), right, sums3);
    }
    workgroupBarrier();
  }
  let row = row0 + 4u * local.y;
  let col = col0 + 4u * local.x;
  store(row, col, sums0);
  store(row + 1u, col, sums1);
  store(row + 2u, col, sums2);
  store(row + 3u, col, sums3);
}
