import type { ByteSource } from "../../bytes/source";
import { GatewayError } from "../../errors";

/**
 * A bzip2 decoder (the format of bzip2 1.0.x, which Python's bz2 module and so joblib's
 * compress="bz2" write), reading from a ByteSource and handing decoded bytes to a sink. Written
 * here because unbzip2-stream decodes ~1.5 MB/s (bit-at-a-time over arrays of numbers) and
 * would make a 1 GB dump take many minutes. Every structure is checked the way libbz2 checks it
 * (block and stream CRCs, symbol counts, selectors, code lengths, origPtr, block size), plus
 * what libbz2 tolerates and we do not: randomised blocks (obsolete since bzip2 0.9.5), and any
 * byte after the last stream that does not start another stream. Concatenated streams are read
 * in full, as Python's BZ2File reads them.
 */

const BLOCK_MAGIC_HI = 0x314159;
const BLOCK_MAGIC_LO = 0x265359;
const EOS_MAGIC_HI = 0x177245;
const EOS_MAGIC_LO = 0x385090;
const MAX_GROUPS = 6;
const MIN_GROUPS = 2;
const GROUP_SIZE = 50;
const MAX_ALPHA_SIZE = 258;
const MAX_CODE_LEN = 20;
/** libbz2 1.0.8's BZ_MAX_SELECTORS: 2 + (900000 / BZ_G_SIZE). */
const MAX_SELECTORS = 18002;
const INPUT_WINDOW = 1 << 20;
const OUTPUT_CHUNK = 1 << 20;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function fail(message: string, offset: number): never {
  throw new GatewayError("malformed_container", `bz2 stream: ${message} near offset ${offset.toString()}`, { offset, compression: "bz2" });
}

class BitReader {
  private readonly window = new Uint8Array(INPUT_WINDOW);
  private windowPos = 0;
  private windowEnd = 0;
  private next = 0;
  private bitBuf = 0;
  bitCount = 0;

  constructor(private readonly source: ByteSource) {}

  /** Offset of the next unread byte (bits already buffered belong to earlier bytes). */
  get byteOffset(): number {
    return this.next - (this.windowEnd - this.windowPos);
  }

  private refill(): boolean {
    if (this.next >= this.source.size) return false;
    const n = Math.min(INPUT_WINDOW, this.source.size - this.next);
    const got = this.source.readAt(n === INPUT_WINDOW ? this.window : this.window.subarray(0, n), this.next);
    if (got !== n) fail(`short read of ${n.toString()} bytes`, this.next);
    this.next += n;
    this.windowPos = 0;
    this.windowEnd = n;
    return true;
  }

  /** n <= 24 bits, most significant first. */
  bits(n: number): number {
    while (this.bitCount < n) {
      if (this.windowPos >= this.windowEnd && !this.refill()) fail("truncated", this.byteOffset);
      this.bitBuf = ((this.bitBuf << 8) | (this.window[this.windowPos++] as number)) >>> 0;
      this.bitCount += 8;
    }
    this.bitCount -= n;
    const v = (this.bitBuf >>> this.bitCount) & ((1 << n) - 1);
    this.bitBuf &= (1 << this.bitCount) - 1;
    return v;
  }

  bit(): number {
    return this.bits(1);
  }

  u32(): number {
    return (this.bits(16) * 0x10000 + this.bits(16)) >>> 0;
  }

  /** Drop the bits left in the current byte. */
  alignToByte(): void {
    const drop = this.bitCount % 8;
    this.bitCount -= drop;
    this.bitBuf &= (1 << this.bitCount) - 1;
  }

  /** True when every byte of the source has been consumed (call after alignToByte). */
  atEnd(): boolean {
    return this.bitCount === 0 && this.windowPos >= this.windowEnd && this.next >= this.source.size;
  }
}

export interface Bzip2Info {
  streams: number;
  blocks: number;
  uncompressedBytes: number;
}

/**
 * Decode the bzip2 stream(s) filling `source`, calling `sink` with decoded chunks (valid only
 * during the call). Throws `malformed_container` on anything libbz2 would reject and on the
 * stricter points above; the sink throws to stop on output limits.
 */
export function decodeBzip2(source: ByteSource, sink: (chunk: Uint8Array) => void): Bzip2Info {
  const br = new BitReader(source);
  const out = new Uint8Array(OUTPUT_CHUNK);
  let outLen = 0;
  let produced = 0;
  const flush = (): void => {
    if (outLen > 0) sink(out.subarray(0, outLen));
    produced += outLen;
    outLen = 0;
  };

  let tt = new Uint32Array(0);
  const selectors = new Uint8Array(MAX_SELECTORS);
  const lengths = Array.from({ length: MAX_GROUPS }, () => new Uint8Array(MAX_ALPHA_SIZE));
  const limits = Array.from({ length: MAX_GROUPS }, () => new Int32Array(MAX_CODE_LEN + 2));
  const bases = Array.from({ length: MAX_GROUPS }, () => new Int32Array(MAX_CODE_LEN + 2));
  const perms = Array.from({ length: MAX_GROUPS }, () => new Uint16Array(MAX_ALPHA_SIZE));
  const minLens = new Uint8Array(MAX_GROUPS);
  const seqToUnseq = new Uint8Array(256);
  const mtf = new Uint8Array(256);
  const unzftab = new Int32Array(256);
  const cftab = new Int32Array(257);

  let streams = 0;
  let blocks = 0;
  for (;;) {
    const streamStart = br.byteOffset;
    if (br.bits(8) !== 0x42 || br.bits(8) !== 0x5a || br.bits(8) !== 0x68)
      fail(streams === 0 ? "bad magic" : "data after the end of the stream that is not another bz2 stream", streamStart);
    const level = br.bits(8) - 0x30;
    if (level < 1 || level > 9) fail(`block size digit ${level.toString()}`, streamStart + 3);
    const blockMax = level * 100000;
    if (tt.length < blockMax) tt = new Uint32Array(blockMax);
    streams++;
    let combinedCrc = 0;

    for (;;) {
      const blockStart = br.byteOffset;
      const hi = br.bits(24);
      const lo = br.bits(24);
      if (hi === EOS_MAGIC_HI && lo === EOS_MAGIC_LO) {
        const storedCombined = br.u32();
        if (storedCombined !== combinedCrc >>> 0) fail("stream CRC mismatch", br.byteOffset);
        br.alignToByte();
        break;
      }
      if (hi !== BLOCK_MAGIC_HI || lo !== BLOCK_MAGIC_LO) fail("bad block magic", blockStart);
      blocks++;
      const storedCrc = br.u32();
      if (br.bit() !== 0) fail("randomised blocks (bzip2 < 0.9.5) are not accepted", blockStart);
      const origPtr = br.bits(24);

      // Symbol map: 16 ranges of 16 byte values.
      let numInUse = 0;
      const used16 = br.bits(16);
      for (let i = 0; i < 16; i++) {
        if ((used16 & (0x8000 >>> i)) === 0) continue;
        const bitsUsed = br.bits(16);
        for (let j = 0; j < 16; j++) if ((bitsUsed & (0x8000 >>> j)) !== 0) seqToUnseq[numInUse++] = i * 16 + j;
      }
      if (numInUse === 0) fail("block uses no symbols", blockStart);
      const alphaSize = numInUse + 2;
      const eob = numInUse + 1;

      const nGroups = br.bits(3);
      if (nGroups < MIN_GROUPS || nGroups > MAX_GROUPS) fail(`${nGroups.toString()} Huffman groups`, blockStart);
      const nSelectors = br.bits(15);
      if (nSelectors < 1 || nSelectors > MAX_SELECTORS) fail(`${nSelectors.toString()} selectors`, blockStart);
      const selectorMtf = [0, 1, 2, 3, 4, 5];
      for (let i = 0; i < nSelectors; i++) {
        let j = 0;
        while (br.bit() === 1) {
          j++;
          if (j >= nGroups) fail("selector out of range", br.byteOffset);
        }
        const v = selectorMtf[j] as number;
        for (let k = j; k > 0; k--) selectorMtf[k] = selectorMtf[k - 1] as number;
        selectorMtf[0] = v;
        selectors[i] = v;
      }

      for (let g = 0; g < nGroups; g++) {
        const len = lengths[g] as Uint8Array;
        let curr = br.bits(5);
        for (let s = 0; s < alphaSize; s++) {
          for (;;) {
            if (curr < 1 || curr > MAX_CODE_LEN) fail("code length out of range", br.byteOffset);
            if (br.bit() === 0) break;
            curr += br.bit() === 0 ? 1 : -1;
          }
          len[s] = curr;
        }
        // hbCreateDecodeTables
        let minLen = 32;
        let maxLen = 0;
        for (let s = 0; s < alphaSize; s++) {
          const l = len[s] as number;
          if (l > maxLen) maxLen = l;
          if (l < minLen) minLen = l;
        }
        const perm = perms[g] as Uint16Array;
        const base = bases[g] as Int32Array;
        const limit = limits[g] as Int32Array;
        let pp = 0;
        for (let l = minLen; l <= maxLen; l++) for (let s = 0; s < alphaSize; s++) if (len[s] === l) perm[pp++] = s;
        base.fill(0);
        limit.fill(0);
        for (let s = 0; s < alphaSize; s++) {
          const at = (len[s] as number) + 1;
          base[at] = (base[at] as number) + 1;
        }
        for (let l = 1; l < base.length; l++) base[l] = (base[l] as number) + (base[l - 1] as number);
        let vec = 0;
        for (let l = minLen; l <= maxLen; l++) {
          vec += (base[l + 1] as number) - (base[l] as number);
          limit[l] = vec - 1;
          vec <<= 1;
        }
        for (let l = minLen + 1; l <= maxLen; l++) base[l] = (((limit[l - 1] as number) + 1) << 1) - (base[l] as number);
        for (let l = maxLen + 1; l <= MAX_CODE_LEN + 1; l++) limit[l] = 0x7fffffff;
        minLens[g] = minLen;
      }

      // MTF / RLE2 symbols.
      for (let i = 0; i < 256; i++) mtf[i] = i;
      unzftab.fill(0);
      let nblock = 0;
      let groupIndex = -1;
      let groupLeft = 0;
      let limit = limits[0] as Int32Array;
      let base = bases[0] as Int32Array;
      let perm = perms[0] as Uint16Array;
      let minLen = 0;
      let runLength = 0;
      let runWeight = 1;
      for (;;) {
        if (groupLeft === 0) {
          groupIndex++;
          if (groupIndex >= nSelectors) fail("more symbols than selectors", br.byteOffset);
          const g = selectors[groupIndex] as number;
          limit = limits[g] as Int32Array;
          base = bases[g] as Int32Array;
          perm = perms[g] as Uint16Array;
          minLen = minLens[g] as number;
          groupLeft = GROUP_SIZE;
        }
        groupLeft--;
        let zn = minLen;
        let zvec = br.bits(zn);
        while (zvec > (limit[zn] as number)) {
          zn++;
          if (zn > MAX_CODE_LEN) fail("invalid Huffman code", br.byteOffset);
          zvec = (zvec << 1) | br.bit();
        }
        const idx = zvec - (base[zn] as number);
        if (idx < 0 || idx >= alphaSize) fail("invalid Huffman code", br.byteOffset);
        const sym = perm[idx] as number;

        if (sym <= 1) {
          // RUNA / RUNB: bijective base-2 run length of the front symbol.
          runLength += (sym + 1) * runWeight;
          runWeight <<= 1;
          if (runLength > blockMax) fail("run longer than the block", br.byteOffset);
          continue;
        }
        if (runLength > 0) {
          if (nblock + runLength > blockMax) fail("block longer than its declared size", br.byteOffset);
          const uc = seqToUnseq[mtf[0] as number] as number;
          unzftab[uc] = (unzftab[uc] as number) + runLength;
          tt.fill(uc, nblock, nblock + runLength);
          nblock += runLength;
          runLength = 0;
          runWeight = 1;
        }
        if (sym === eob) break;
        if (nblock >= blockMax) fail("block longer than its declared size", br.byteOffset);
        const pos = sym - 1;
        const v = mtf[pos] as number;
        mtf.copyWithin(1, 0, pos);
        mtf[0] = v;
        const uc = seqToUnseq[v] as number;
        unzftab[uc] = (unzftab[uc] as number) + 1;
        tt[nblock++] = uc;
      }
      if (origPtr >= nblock) fail(`origPtr ${origPtr.toString()} outside a block of ${nblock.toString()} symbols`, blockStart);

      // Inverse BWT: tt[i] keeps its byte in the low 8 bits and the next index above it.
      cftab[0] = 0;
      for (let i = 0; i < 256; i++) cftab[i + 1] = (cftab[i] as number) + (unzftab[i] as number);
      for (let i = 0; i < nblock; i++) {
        const uc = (tt[i] as number) & 0xff;
        const at = cftab[uc] as number;
        tt[at] = ((tt[at] as number) | (i << 8)) >>> 0;
        cftab[uc] = at + 1;
      }

      // Walk the permutation, undo RLE1 (4 equal bytes then a count), CRC the output.
      let crc = 0xffffffff;
      let tPos = (tt[origPtr] as number) >>> 8;
      let last = -1;
      let run = 0;
      for (let i = 0; i < nblock; i++) {
        const entry = tt[tPos] as number;
        const b = entry & 0xff;
        tPos = entry >>> 8;
        if (run === 4) {
          for (let k = 0; k < b; k++) {
            crc = ((crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ last) & 0xff] as number)) >>> 0;
            out[outLen++] = last;
            if (outLen === OUTPUT_CHUNK) flush();
          }
          run = 0;
          continue;
        }
        if (b === last) run++;
        else {
          run = 1;
          last = b;
        }
        crc = ((crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ b) & 0xff] as number)) >>> 0;
        out[outLen++] = b;
        if (outLen === OUTPUT_CHUNK) flush();
      }
      // The low bytes must be cleared before the next block reuses tt.
      tt.fill(0, 0, nblock);
      crc = ~crc >>> 0;
      if (crc !== storedCrc) fail("block CRC mismatch", blockStart);
      combinedCrc = (((combinedCrc << 1) | (combinedCrc >>> 31)) ^ crc) >>> 0;
    }
    if (br.atEnd()) break;
  }
  flush();
  return { streams, blocks, uncompressedBytes: produced };
}
