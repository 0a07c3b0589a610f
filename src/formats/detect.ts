import type { ByteSource } from "../bytes/source";

/**
 * Detection by content, never by name (CVE-2025-10155: a pickle renamed to a "safe" extension
 * walked past a scanner that trusted the extension). Every magic number modelgate knows lives
 * in this one table; the dispatcher (dispatch.ts) maps each detected format to its inspector.
 *
 * Detection only looks at a few bytes; it proves nothing. Every format's inspector re-reads and
 * validates the whole structure, and a file that also carries a zip directory at its end is a
 * polyglot (see `hasZipTail`).
 */

/** Formats modelgate inspects. */
export type InspectedFormat =
  "zip" | "tar" | "npy" | "safetensors" | "gzip" | "bz2" | "xz" | "lzma" | "zlib" | "lz4" | "pytorch-legacy" | "pickle" | "onnx" | "gguf";

/** Formats modelgate recognises but does not inspect: rejected as unsupported_format, by name. */
export type UnsupportedFormat = "hdf5" | "7z" | "rar" | "tflite" | "tensorflow-savedmodel";

export type DetectedFormat = InspectedFormat | UnsupportedFormat;

export const UNSUPPORTED_FORMATS: ReadonlySet<string> = new Set<UnsupportedFormat>(["hdf5", "7z", "rar", "tflite", "tensorflow-savedmodel"]);

export const COMPRESSED_FORMATS: ReadonlySet<string> = new Set<DetectedFormat>(["gzip", "bz2", "xz", "lzma", "zlib", "lz4"]);

/** How many leading bytes detection reads (a tar header block; its "ustar" magic sits at 257). */
export const DETECT_HEAD_BYTES = 512;

export function readHead(source: ByteSource, n = DETECT_HEAD_BYTES): Uint8Array {
  const head = new Uint8Array(Math.min(n, source.size));
  const got = source.readAt(head, 0);
  return head.subarray(0, got);
}

function startsWith(head: Uint8Array, magic: readonly number[], at = 0): boolean {
  if (head.length < at + magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (head[at + i] !== magic[i]) return false;
  return true;
}

function ascii(text: string): number[] {
  return Array.from(text, (c) => c.charCodeAt(0));
}

/** torch's legacy magic number 0x1950a86a20f9469cfc6c as a LONG1 argument (10 bytes LE). */
const TORCH_LEGACY_MAGIC = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/**
 * The first pickle of a legacy (five-pickle) torch.save file as pickle protocols 2 to 5 write
 * `pickle.dump(MAGIC_NUMBER)`: PROTO p, a FRAME header at protocol 4 and 5, LONG1 of 10 bytes.
 */
export function isLegacyTorchHead(head: Uint8Array): boolean {
  const protocol = head[1] ?? 0;
  if (head[0] !== 0x80 || protocol < 2 || protocol > 5) return false;
  const at = protocol >= 4 && head[2] === 0x95 ? 11 : 2;
  return startsWith(head, [0x8a, 0x0a, ...TORCH_LEGACY_MAGIC], at);
}

/** Python's str.strip() whitespace for ASCII text (str.isspace: also the separators 0x1c-0x1f). */
function isPyAsciiSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
}

/**
 * tarfile's nti (Lib/tarfile.py) on a header's numeric field, with Python's own int(text, 8):
 * GNU base-256 (first byte 0x80 positive, 0xff negative), else the ASCII text up to the first
 * NUL, stripped, "" read as 0, an optional sign, an optional 0o prefix and octal digits with
 * single underscores between them. undefined where nti raises InvalidHeaderError.
 */
export function tarfileNti(field: Uint8Array): bigint | undefined {
  const first = field[0] ?? 0;
  if (first === 0x80 || first === 0xff) {
    let n = 0n;
    for (let i = 1; i < field.length; i++) n = (n << 8n) | BigInt(field[i] ?? 0);
    return first === 0xff ? n - (1n << BigInt(8 * (field.length - 1))) : n;
  }
  const nul = field.indexOf(0);
  const bytes = Array.from(nul < 0 ? field : field.subarray(0, nul));
  if (bytes.some((b) => b >= 0x80)) return undefined; // nts(s, "ascii", "strict") raises
  let lo = 0;
  let hi = bytes.length;
  while (lo < hi && isPyAsciiSpace(bytes[lo] ?? 0)) lo++;
  while (hi > lo && isPyAsciiSpace(bytes[hi - 1] ?? 0)) hi--;
  const text = String.fromCharCode(...bytes.slice(lo, hi));
  if (text === "") return 0n;
  // int(text, 8) also takes a "0o" prefix, with an underscore after it.
  const m = /^([+-]?)(?:0[oO]_?)?([0-7](?:_?[0-7])*)$/.exec(text);
  if (!m) return undefined;
  const value = BigInt(`0o${(m[2] ?? "0").replace(/_/g, "")}`);
  return m[1] === "-" ? -value : value;
}

/**
 * Whether Python's tarfile takes this first block as a tar header (TarInfo.frombuf, as
 * tarfile.open(mode="r:") reads it in torch's legacy_load): a whole 512-byte block, not all NUL,
 * whose stored checksum (nti of bytes 148-156) equals the unsigned or signed sum of the block with
 * the checksum field read as spaces (calc_chksums). No magic is needed: tarfile reads v7 headers.
 * The other numeric fields are not required to parse here: a file this accepts and tarfile does
 * not is only rejected by the strict tar reader (fail closed), never read as something else.
 */
export function tarfileWouldOpen(head: Uint8Array): boolean {
  if (head.length < 512) return false;
  const stored = tarfileNti(head.subarray(148, 156));
  if (stored === undefined) return false;
  let unsigned = 256;
  let signed = 256;
  let allZero = true;
  for (let i = 0; i < 512; i++) {
    const b = head[i] ?? 0;
    if (b !== 0) allZero = false;
    if (i >= 148 && i < 156) continue;
    unsigned += b;
    signed += b >= 0x80 ? b - 0x100 : b;
  }
  if (allZero) return false;
  return stored === BigInt(unsigned) || stored === BigInt(signed);
}

function u32At(head: Uint8Array, at: number): number {
  return ((head[at] ?? 0) | ((head[at + 1] ?? 0) << 8) | ((head[at + 2] ?? 0) << 16)) + (head[at + 3] ?? 0) * 0x1000000;
}

/**
 * A legacy .lzma ("alone") header as xz-utils and Python's lzma.FORMAT_ALONE write it: the
 * properties byte (lc/lp/pb), a dictionary size, an 8-byte uncompressed size (or all 0xff).
 * Checked strictly because 0x5d is also a protocol-1 pickle's EMPTY_LIST.
 */
function isLzmaAlone(head: Uint8Array): boolean {
  if (head.length < 13) return false;
  const props = head[0] ?? 0xff;
  if (props >= 9 * 5 * 5) return false;
  const dict = u32At(head, 1);
  // xz-utils writes 2^n or 2^n + 2^(n-1) dictionaries, at least 4 KiB.
  let valid = false;
  for (let n = 12; n <= 31 && !valid; n++) valid = dict === 2 ** n || dict === 2 ** n + 2 ** (n - 1);
  if (!valid) return false;
  const sizeUnknown = head.subarray(5, 13).every((b) => b === 0xff);
  // A declared size must be a plausible u64 (high byte 0).
  return sizeUnknown || head[12] === 0;
}

/**
 * The format of a source by its magic bytes, or undefined when none matches (the dispatcher then
 * asks the pickle analyzer whether it is a pickle, then whether it is text).
 */
export function detectMagic(head: Uint8Array): DetectedFormat | undefined {
  // torch.load's own zip test (_is_zipfile) is a local header at offset 0.
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04])) return "zip";
  // Tar before every other format, an empty zip's end record included: torch.load
  // (weights_only=False) hands any file not starting with a local header to _legacy_load, which
  // tries tarfile.open first; whatever else the bytes are is a polyglot (dispatch.ts reports it).
  // "ustar" with a bad checksum is still a tar, to refuse.
  if (tarfileWouldOpen(head) || startsWith(head, ascii("ustar"), 257)) return "tar";
  if (startsWith(head, [0x50, 0x4b, 0x05, 0x06])) return "zip";
  if (startsWith(head, [0x93, ...ascii("NUMPY")])) return "npy";
  if (startsWith(head, [0x1f, 0x8b, 0x08])) return "gzip";
  if (startsWith(head, ascii("BZh")) && (head[3] ?? 0) >= 0x31 && (head[3] ?? 0) <= 0x39 && startsWith(head, [0x31, 0x41, 0x59, 0x26, 0x53, 0x59], 4)) {
    return "bz2";
  }
  // An empty bz2 stream ("BZh9" + end-of-stream marker) carries no block.
  if (startsWith(head, ascii("BZh")) && startsWith(head, [0x17, 0x72, 0x45, 0x38, 0x50, 0x90], 4)) return "bz2";
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return "xz";
  if (startsWith(head, [0x04, 0x22, 0x4d, 0x18])) return "lz4";
  if (startsWith(head, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) return "7z";
  if (startsWith(head, ascii("Rar!\x1a\x07"))) return "rar";
  // GGUF: gguf_init_from_file reads the magic "GGUF" at 0 (src/formats/models/gguf.ts).
  if (startsWith(head, ascii("GGUF"))) return "gguf";
  if (startsWith(head, [0x89, ...ascii("HDF\r\n\x1a\n")])) return "hdf5";
  // TFLite: a FlatBuffer whose file identifier "TFL3" follows the u32 root offset
  // (tensorflow/lite/schema/schema.fbs `file_identifier "TFL3"`; tf.lite.Interpreter checks it).
  if (startsWith(head, ascii("TFL3"), 4)) return "tflite";
  if (isLegacyTorchHead(head)) return "pytorch-legacy";
  // safetensors: u64 LE header length N, then a JSON object starting at byte 8, inside the file.
  // The declared length is not compared with the file here: the inspector reports a length past
  // the end as malformed safetensors rather than unknown content.
  if (head.length >= 10 && head[8] === 0x7b && [0x22, 0x7d, 0x20, 0x0a].includes(head[9] ?? 0)) {
    const lo = u32At(head, 0);
    const hi = u32At(head, 4);
    if (hi < 0x200000 && (hi > 0 || lo >= 2)) return "safetensors";
  }
  // zlib: CMF 0x78 (deflate, 32K window), a header checksum, and FDICT clear: no compressor a
  // model tool uses sets a preset dictionary, and with it set "x " (text such as `x = 1`) would
  // pass the checksum. "x" is no pickle opcode.
  const flg = head[1] ?? 0;
  if (head.length >= 2 && head[0] === 0x78 && (flg & 0x20) === 0 && ((0x78 << 8) | flg) % 31 === 0) return "zlib";
  if (isLzmaAlone(head)) return "lzma";
  return undefined;
}

/**
 * HDF5 files may start with a user block: the HDF5 library (H5FD_locate_signature) looks for the
 * superblock signature at 0, 512, 1024, 2048, ... every power of two below the end of the file,
 * so h5py and Keras' legacy `load_model(".h5")` open a file whose signature sits at 2^n anywhere
 * in it. At most 64 reads of 8 bytes.
 */
export function hdf5SignatureAt(source: ByteSource): boolean {
  const sig = [0x89, ...ascii("HDF\r\n\x1a\n")];
  const buf = new Uint8Array(8);
  for (let at = 512; at + 8 <= source.size; at *= 2) {
    if (source.readAt(buf, at) === 8 && startsWith(buf, sig)) return true;
  }
  return false;
}
