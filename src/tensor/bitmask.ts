/**
 * A 0/1 mask of `length` entries packed one bit per entry (entry k is bit k & 7 of byte k >> 3): SparsePEFT's
 * non-zero pattern of a base weight, 0.81 GB for Llama-2-7B's seven projections where float32 took 26 GB.
 */
export class BitMask {
  readonly bits: Uint8Array;

  constructor(
    readonly length: number,
    bits?: Uint8Array,
  ) {
    this.bits = bits ?? new Uint8Array(Math.ceil(length / 8));
    if (this.bits.length !== Math.ceil(length / 8)) throw new Error(`BitMask: ${this.bits.length} bytes for ${length} entries`);
  }

  /** The mask whose entry k is 1 where one(k). */
  static from(length: number, one: (k: number) => boolean): BitMask {
    const m = new BitMask(length);
    for (let k = 0; k < length; k++) if (one(k)) m.bits[k >> 3] |= 1 << (k & 7);
    return m;
  }

  /** entry k: 0 or 1 */
  get(k: number): number {
    return (this.bits[k >> 3] >> (k & 7)) & 1;
  }

  /** The entries as one byte each (0/1). */
  unpack(): Uint8Array {
    const out = new Uint8Array(this.length);
    for (let k = 0; k < this.length; k++) out[k] = this.get(k);
    return out;
  }

  /** The mask of 0/1 bytes. */
  static pack(bytes: Uint8Array): BitMask {
    return BitMask.from(bytes.length, (k) => bytes[k] !== 0);
  }
}
