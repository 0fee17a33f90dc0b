/**
 * A seeded pseudo-random generator of our own, so that the same seed gives
 * the same batches, initial weights and synthetic data on every machine.
 *
 * The generator is xoshiro128** (Blackman and Vigna, 2018) seeded through
 * splitmix32; its whole state is four 32-bit words, which checkpoints save.
 *
 * @module
 */

/** The four 32-bit words of a {@linkcode Random} generator's state. */
export type RandomState = [number, number, number, number];

/** A seeded xoshiro128** generator with saveable state. */
export class Random {
  #state: Uint32Array;

  /**
   * Creates a generator from an integer seed.
   *
   * @param seed Any integer; equal seeds give equal streams.
   * @example
   * ```ts
   * const random = new Random(2026);
   * const u = random.nextFloat(); // in [0, 1)
   * ```
   */
  constructor(seed: number) {
    this.#state = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      // splitmix32 step
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.#state[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /**
   * Restores a generator from a state saved with {@linkcode Random.state}.
   *
   * @param state The four words.
   * @returns A generator that continues the saved stream.
   */
  static fromState(state: RandomState): Random {
    const random = new Random(0);
    random.#state.set(state);
    return random;
  }

  /**
   * The current state, to save in a checkpoint.
   *
   * @returns A copy of the four state words.
   */
  state(): RandomState {
    const s = this.#state;
    return [s[0], s[1], s[2], s[3]];
  }

  /**
   * The next 32-bit unsigned integer of the stream.
   *
   * @returns An integer in [0, 2^32).
   */
  nextUint32(): number {
    const s = this.#state;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /**
   * A uniform float in [0, 1) with 32 random bits.
   *
   * @returns The next float.
   */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  /**
   * A uniform integer in [0, n), without modulo bias.
   *
   * @param n The exclusive upper bound, 1 ≤ n ≤ 2^32.
   * @returns The next integer.
   */
  nextInt(n: number): number {
    if (!(n >= 1 && n <= 4294967296 && Number.isInteger(n))) {
      throw new RangeError(`nextInt() needs an integer bound >= 1, got ${n}`);
    }
    const limit = 4294967296 - (4294967296 % n);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return x % n;
  }

  /**
   * A standard normal sample (Box-Muller, one value per call).
   *
   * @returns The next sample.
   */
  nextNormal(): number {
    const u = 1 - this.nextFloat();
    const v = this.nextFloat();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * Shuffles an array in place (Fisher-Yates).
   *
   * @param values The array to shuffle.
   */
  shuffle(values: { length: number; [i: number]: number }): void {
    for (let i = values.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const t = values[i];
      values[i] = values[j];
      values[j] = t;
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
