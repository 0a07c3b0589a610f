import { randomUUID } from "node:crypto";

/**
 * Byte builders shared by the suites that hand-roll files the real libraries would not write
 * (lying lengths, odd headers). Container and pickle assemblers with many options live next to
 * them: ./bytes/ would be their home once they are shared outside their folder; today
 * test/pickle/builders.ts (buildPickle), test/formats/zipBuilder.ts (buildZip),
 * test/formats/builders/tar.ts (buildTar) and test/formats/torchBuilder.ts are used in place.
 */

/** A safetensors file: 8-byte LE header length, the header text (padded with `pad` spaces), then the data. */
export function safetensorsBytes(header: string | object, data: Uint8Array, pad = 0): Uint8Array {
  const text = (typeof header === "string" ? header : JSON.stringify(header)) + " ".repeat(pad);
  const h = Buffer.from(text, "utf8");
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(BigInt(h.length), 0);
  h.copy(out, 8);
  out.set(data, 8 + h.length);
  return new Uint8Array(out);
}

/** A valid safetensors file of one U8 tensor of `dataBytes` zeros, made unique by a metadata id (header padded to 8 bytes). */
export function uniqueSafetensors(dataBytes: number): Buffer {
  let json = JSON.stringify({ __metadata__: { id: randomUUID() }, w: { dtype: "U8", shape: [dataBytes], data_offsets: [0, dataBytes] } });
  json += " ".repeat((8 - (json.length % 8)) % 8);
  return Buffer.from(safetensorsBytes(json, new Uint8Array(dataBytes)));
}

/**
 * A version 1.0 .npy of `count` little-endian float32 zeros, as numpy.save writes it: the magic,
 * the version, a 118-byte header (10 bytes of preamble + 118: data aligned to 64), then the data.
 */
export function npyFloat32(count: number): Uint8Array {
  const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${String(count)},), }`.padEnd(117, " ") + "\n";
  return Buffer.concat([Buffer.from([0x93]), Buffer.from("NUMPY"), Buffer.from([1, 0, 118, 0]), Buffer.from(header), Buffer.alloc(count * 4)]);
}
