import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/**
 * Random access to bytes, synchronously. Parsers read the regions they need through positional
 * reads (a zip's tail, one entry, one pickle), never the whole file, so memory stays bounded.
 */
export interface ByteSource {
  readonly size: number;
  /** Fill `target` from `position`; returns the bytes read (fewer only at the end of the source). */
  readAt(target: Uint8Array, position: number): number;
}

export class BufferSource implements ByteSource {
  readonly size: number;
  constructor(private readonly bytes: Uint8Array) {
    this.size = bytes.length;
  }
  readAt(target: Uint8Array, position: number): number {
    if (position >= this.size) return 0;
    const n = Math.min(target.length, this.size - position);
    target.set(this.bytes.subarray(position, position + n));
    return n;
  }
}

/** A window [offset, offset+length) of another source, e.g. one stored zip entry. */
export class SliceSource implements ByteSource {
  constructor(
    private readonly parent: ByteSource,
    private readonly offset: number,
    readonly size: number,
  ) {
    if (offset < 0 || size < 0 || offset + size > parent.size) {
      throw new RangeError(`slice [${offset}, ${offset + size}) outside a source of ${parent.size} bytes`);
    }
  }
  readAt(target: Uint8Array, position: number): number {
    if (position >= this.size) return 0;
    const want = Math.min(target.length, this.size - position);
    return this.parent.readAt(want === target.length ? target : target.subarray(0, want), this.offset + position);
  }
}

/** A file opened for positional reads. Close it when done (or use withFileSource). */
export class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | undefined;
  constructor(readonly path: string) {
    this.fd = openSync(path, "r");
    this.size = fstatSync(this.fd).size;
  }
  readAt(target: Uint8Array, position: number): number {
    if (this.fd === undefined) throw new Error(`file ${this.path} is closed`);
    let done = 0;
    while (done < target.length && position + done < this.size) {
      const n = readSync(this.fd, target, done, target.length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export function withFileSource<T>(path: string, use: (source: FileSource) => T): T {
  const source = new FileSource(path);
  try {
    return use(source);
  } finally {
    source.close();
  }
}
