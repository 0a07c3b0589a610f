/** Byte builders for tar archives (ustar / GNU / pax), for the tar and MLflow tests. */

export interface TarSpec {
  name: string;
  data?: Uint8Array | string;
  /** Typeflag character; default "0". */
  type?: string;
  prefix?: string;
  gnu?: boolean;
  /** No magic at all (a v7 header). */
  v7?: boolean;
  /** Header size field, when it should lie about the data. */
  size?: number;
  /** Raw size field text (12 bytes), for malformed numbers. */
  sizeField?: string;
  rawName?: Uint8Array;
  badChecksum?: boolean;
  /** Write a signed checksum (as old tars did) instead of the unsigned one. */
  signedChecksum?: boolean;
  /** Bytes written at offset 345 (the ustar prefix / GNU atime area). */
  prefixArea?: Uint8Array;
}

const enc = new TextEncoder();

function toBytes(d: Uint8Array | string | undefined): Uint8Array {
  if (d === undefined) return new Uint8Array(0);
  return typeof d === "string" ? enc.encode(d) : d;
}

function put(block: Uint8Array, at: number, text: string | Uint8Array, width: number): void {
  const bytes = typeof text === "string" ? enc.encode(text) : text;
  block.set(bytes.subarray(0, width), at);
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

export function tarHeader(spec: TarSpec): Uint8Array {
  const data = toBytes(spec.data);
  const b = new Uint8Array(512);
  put(b, 0, spec.rawName ?? spec.name, 100);
  put(b, 100, octal(0o644, 8), 8);
  put(b, 108, octal(0, 8), 8);
  put(b, 116, octal(0, 8), 8);
  put(b, 124, spec.sizeField ?? octal(spec.size ?? data.length, 12), 12);
  put(b, 136, octal(1_700_000_000, 12), 12);
  put(b, 156, spec.type ?? "0", 1);
  if (!spec.v7) {
    if (spec.gnu) put(b, 257, "ustar  \0", 8);
    else put(b, 257, "ustar\x0000", 8);
  }
  if (spec.prefix !== undefined) put(b, 345, spec.prefix, 155);
  if (spec.prefixArea !== undefined) b.set(spec.prefixArea, 345);
  let sum = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : (b[i] as number);
    sum += v;
    signed += v >= 0x80 ? v - 256 : v;
  }
  const stored = spec.signedChecksum ? signed : sum;
  put(b, 148, (stored + (spec.badChecksum ? 1 : 0)).toString(8).padStart(6, "0") + "\0 ", 8);
  return b;
}

function padded(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / 512) * 512);
  out.set(data);
  return out;
}

/** A pax extended header's data: "<len> key=value\n" records. */
export function paxRecords(records: Record<string, string>): string {
  let out = "";
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(body) + 1;
    while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
    out += `${len}${body}`;
  }
  return out;
}

export type TarPart = TarSpec | { raw: Uint8Array };

export function buildTar(parts: TarPart[], options: { endBlocks?: number; trailing?: Uint8Array } = {}): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    if ("raw" in p) {
      chunks.push(p.raw);
      continue;
    }
    chunks.push(tarHeader(p));
    chunks.push(padded(toBytes(p.data)));
  }
  chunks.push(new Uint8Array(512 * (options.endBlocks ?? 2)));
  if (options.trailing) chunks.push(options.trailing);
  return new Uint8Array(Buffer.concat(chunks));
}
