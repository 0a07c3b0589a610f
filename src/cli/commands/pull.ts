import { createHash, type Hash } from "node:crypto";
import { constants as fsConstants, promises as fsp } from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { GatewayError, isGatewayError, messageOf } from "../../errors";
import { MAX_PULL_METADATA_BYTES } from "../../limits";
import { formatDigest, hashFileInto, parseDigest, sameDigest, sha256File } from "../../digest";
import { parseCommandArgs } from "../args";
import type { Command } from "../command";
import { COMMAND_HELP } from "./help";
import {
  apiUrl,
  authHeaders,
  discard,
  DownloadError,
  gatewayUrl,
  getFollowingRedirects,
  headerOf,
  isSuccess,
  readBodyCapped,
  receiveToFile,
  serverError,
  type GatewayAnswer,
} from "../gatewayClient";

const MetadataSchema = z.object({
  digest: z.string(),
  name: z.string(),
  size: z.number().int().nonnegative(),
  // `name`: the name this envelope signed (absent in older records: the record's name applies).
  signatures: z.array(z.object({ envelope: z.string(), source: z.string(), name: z.string().optional() })),
});

/** Partial downloads live next to --out (same filesystem, so the final rename is atomic). */
function partialPath(out: string, hex: string): string {
  return path.join(path.dirname(out), `.${path.basename(out)}.${hex.slice(0, 16)}.partial`);
}

/**
 * Size of the partial file, 0 when there is none. lstat, not stat: a symlink planted at the
 * partial path (in a shared directory) must not make pull append to, and rename, its target.
 */
async function sizeOf(p: string): Promise<number> {
  let st;
  try {
    st = await fsp.lstat(p);
  } catch {
    return 0;
  }
  if (!st.isFile()) throw new GatewayError("io_error", `${p} exists and is not a regular file (a symlink?); remove it and pull again`);
  return st.size;
}

/** Open the partial file for writing without following a symlink at its path (O_NOFOLLOW). */
async function openPartial(p: string, append: boolean): Promise<fsp.FileHandle> {
  const { O_WRONLY, O_CREAT, O_APPEND, O_TRUNC } = fsConstants;
  const noFollow = (fsConstants as { O_NOFOLLOW?: number }).O_NOFOLLOW ?? 0;
  try {
    return await fsp.open(p, O_WRONLY | O_CREAT | noFollow | (append ? O_APPEND : O_TRUNC), 0o644);
  } catch (err) {
    throw new GatewayError("io_error", `cannot write the partial file ${p}: ${messageOf(err)}`, undefined, { cause: err });
  }
}

/** Feed the first `length` bytes of the partial file `p` into `hash` (a resumed download's bytes on disk). */
async function hashPrefix(p: string, length: number, hash: Hash): Promise<void> {
  if ((await hashFileInto(p, hash, length)) !== length) throw new GatewayError("io_error", `the partial file ${p} changed while it was read; pull again`);
}

async function fsyncFile(p: string): Promise<void> {
  const handle = await fsp.open(p, "r+");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The metadata body as JSON, read to at most MAX_PULL_METADATA_BYTES (an endless body is refused). */
async function readMetadataJson(answer: GatewayAnswer): Promise<unknown> {
  const text = await readBodyCapped(answer, MAX_PULL_METADATA_BYTES);
  if (text === undefined) throw new GatewayError("integrity_error", `the server's metadata is larger than ${String(MAX_PULL_METADATA_BYTES)} bytes`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new GatewayError("integrity_error", "the server's metadata is not JSON");
  }
}

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+)$/;

export const pullCommand: Command = {
  ...COMMAND_HELP.pull,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      out: { type: "string" },
      url: { type: "string" },
      allowlist: { type: "string" },
    });
    const [digestArg, ...extra] = positionals;
    if (digestArg === undefined || extra.length > 0) throw new GatewayError("usage", "pull takes exactly one <digest>");
    if (values.out === undefined) throw new GatewayError("usage", "--out <path> is required");
    let hex: string;
    try {
      hex = parseDigest(digestArg);
    } catch (err) {
      throw new GatewayError("usage", messageOf(err));
    }
    const base = gatewayUrl(values.url, io);
    const out = path.resolve(io.cwd, values.out);
    const headers = authHeaders(io);
    const blobUrl = apiUrl(base, `/v1/artifacts/${formatDigest(hex)}`);

    // The metadata comes first: its size bounds the download (an endless body must not fill the
    // disk before the sha256 check), and with --allowlist trust is decided locally from the stored
    // envelopes, before any byte is downloaded. The trust layer is loaded only then.
    const trust = values.allowlist === undefined ? undefined : await import("../../trust");
    const allowlist = values.allowlist === undefined || trust === undefined ? undefined : trust.loadAllowlist(path.resolve(io.cwd, values.allowlist));
    const metaAnswer = await getFollowingRedirects(apiUrl(base, `/v1/artifacts/${formatDigest(hex)}/metadata`), headers);
    if (!isSuccess(metaAnswer)) throw await serverError(metaAnswer);
    const meta = MetadataSchema.safeParse(await readMetadataJson(metaAnswer));
    if (!meta.success || meta.data.digest !== formatDigest(hex))
      throw new GatewayError(
        "integrity_error",
        "the server's metadata does not describe the requested digest (no expected size: refusing an unbounded download)",
      );
    const expected = meta.data.size;
    if (allowlist !== undefined && trust !== undefined) {
      const verification = trust.recheckTrust({ envelopes: meta.data.signatures, digestHex: hex, name: meta.data.name, allowlist, now: new Date() });
      io.stderr(`trusted locally: ${verification.name} signed by source ${verification.source.id}\n`);
    }

    const partial = partialPath(out, hex);
    let have = await sizeOf(partial);
    if (have > expected) {
      // Longer than the artifact: it can never verify, start afresh.
      await fsp.rm(partial, { force: true });
      have = 0;
    }
    const answer = await getFollowingRedirects(blobUrl, { ...headers, ...(have > 0 ? { Range: `bytes=${String(have)}-` } : {}) });
    let append = false;
    if (answer.status === 206) {
      const m = CONTENT_RANGE.exec(headerOf(answer, "content-range") ?? "");
      if (!m || Number(m[1]) !== have || Number(m[3]) !== expected || Number(m[2]) !== expected - 1) {
        // Neither append nor keep: a partial this server will not resume would fail every rerun.
        discard(answer);
        await fsp.rm(partial, { force: true });
        throw new GatewayError("integrity_error", "the server resumed at another offset than asked; the partial file was removed");
      }
      append = true;
      io.stderr(`resuming at byte ${String(have)}\n`);
    } else if (answer.status === 416 && have > 0) {
      // The partial file already holds every byte (or more): verify it as it is.
      discard(answer);
      append = true;
    } else if (!isSuccess(answer)) {
      throw await serverError(answer);
    } else if (answer.status === 204) {
      discard(answer);
      throw new GatewayError("io_error", "the server sent no body");
    } else {
      have = 0;
    }

    let downloadedHex: string | undefined;
    if (answer.status !== 416) {
      const remaining = expected - have;
      const contentLength = headerOf(answer, "content-length");
      if (contentLength !== undefined && Number(contentLength) !== remaining) {
        discard(answer);
        await fsp.rm(partial, { force: true });
        throw new GatewayError(
          "integrity_error",
          `the server announced ${contentLength} bytes, the artifact has ${String(remaining)} left; the partial file was removed`,
        );
      }
      // The bytes already in a resumed partial are hashed first; the rest while they arrive (one
      // pass over every byte), written in large blocks with background flushes (receiveToFile).
      const hash = createHash("sha256");
      let handle: fsp.FileHandle;
      try {
        if (append) await hashPrefix(partial, have, hash);
        handle = await openPartial(partial, append);
      } catch (err) {
        discard(answer);
        throw err;
      }
      try {
        await receiveToFile(answer, handle, { maxBytes: remaining, hash });
      } catch (err) {
        await handle.close().catch(() => undefined);
        if (err instanceof DownloadError && err.reason === "too_large") {
          await fsp.rm(partial, { force: true });
          throw new GatewayError("integrity_error", `the server sent more than the ${String(remaining)} bytes expected; the partial file was removed`);
        }
        throw new GatewayError(
          "io_error",
          `download interrupted after ${String(await sizeOf(partial))} bytes (${messageOf(err)}); run the same command again to resume`,
        );
      }
      try {
        await handle.close();
      } catch (err) {
        throw new GatewayError("io_error", `cannot write the partial file ${partial}: ${messageOf(err)}`);
      }
      downloadedHex = hash.digest("hex");
    }

    const digestHex = downloadedHex ?? (await sha256File(partial)).digestHex;
    if (!sameDigest(digestHex, hex)) {
      await fsp.rm(partial, { force: true });
      throw new GatewayError("integrity_error", `downloaded bytes hash to ${formatDigest(digestHex)}, not ${formatDigest(hex)}; the partial file was removed`);
    }
    try {
      await fsyncFile(partial);
      await fsp.rename(partial, out);
    } catch (err) {
      if (isGatewayError(err)) throw err;
      throw new GatewayError("io_error", `cannot move the verified file to ${values.out}: ${messageOf(err)}`);
    }
    io.stdout(`${formatDigest(hex)}  ${values.out}\n`);
    return 0;
  },
};
