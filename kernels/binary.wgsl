// binary: out = a ∘ b for ∘ in add, sub, mul, with 2-D broadcasting.
// CPU twin: cpuBackend.binary.
//
// Each operand is read in one of four layouts, fixed per pipeline by the
// override constants A_LAYOUT and B_LAYOUT: 0 = full [rows, cols],
// 1 = row vector [1, cols], 2 = column vector [rows, 1], 3 = scalar [1, 1].
// OPERATION: 0 = add, 1 = sub, 2 = mul.
//
// Thread layout: one thread per output value.
// Dispatch: ceil(rows · cols / WORKGROUP_SIZE) workgroups, folded into
// (x, y) by WebGpuDevice.grid (linear index x + y · num_workgroups.x).

struct Params {
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 256;
override OPERATION: u32 = 0;
override A_LAYOUT: u32 = 0;
override B_LAYOUT: u32 = 0;

fn operand_index(operand_layout: u32, i: u32) -> u32 {
  switch operand_layout {
    case 1u: {
      return i % params.cols;
    }
    case 2u: {
      return i / params.cols;
    }
    case 3u: {
      return 0u;
    }
    default: {
      return i;
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
  if (i >= params.rows * params.cols) {
    return;
  }
  let left = a[operand_index(A_LAYOUT, i)];
  let right = b[operand_index(B_LAYOUT, i)];
  switch OPERATION {
    case 1u: {
      out[i] = left - right;
    }
    case 2u: {
      out[i] = left * right;
    }
    default: {
      out[i] = left + right;
    }
  }
}
