import type { Readable } from "node:stream";
import type { AuditSink } from "../audit/types";
import { formatDigest, VerifyingStream } from "../digest";
import { GatewayError, isGatewayError, messageOf } from "../errors";
import type { Inspector } from "../inspect/inspector";
import type { GatewayMetrics } from "../metrics/types";
import type { AllowlistProvider } from "../reload/allowlistHolder";
import type { ArtifactRecord, ArtifactStore, ByteRange, ListPage, ListQuery } from "../store/types";
import { recheckTrustAll, type PublishVerification, type TrustedEnvelope } from "../trust";
import type { Call } from "./call";
import { acceptedUnderCurrentPolicy, Reinspector } from "./reinspect";

export interface FetchDeps {
  store: ArtifactStore;
  /** Inspects an artifact again when its source's content policy changed since acceptance. */
  inspect: Inspector;
  allowlist: AllowlistProvider;
  /** Every refused fetch is appended here before the refusal is answered. */
  audit: AuditSink;
  metrics: GatewayMetrics;
  now: () => Date;
}

/** A stored artifact that may be served now, and the verification it is served under. */
export interface AdmittedArtifact {
  record: ArtifactRecord;
  verification: PublishVerification;
}

/** The trust verdict on a stored artifact right now, as GET .../metadata shows it. */
export type TrustStatus =
  { status: "trusted"; source: string; keyIds: string[]; contentPolicy: "current" | "changed" } | { status: "refused"; code: GatewayError["code"] };

/**
 * Fetch with re-check: a stored artifact is served only while one of its stored envelopes still
 * verifies against the allowlist in force (keys get revoked, expire, sources are removed), only
 * while it was accepted under its source's current content policy (else it is inspected again,
 * src/gateway/reinspect.ts), and only as the bytes that were signed (a whole read is re-hashed
 * as it is served; a blob that fails is quarantined). Every refusal is audited before it is
 * answered; an audit log that cannot be written turns it into `unavailable`.
 */
export class ArtifactFetcher {
  private readonly reinspector: Reinspector;

  constructor(private readonly deps: FetchDeps) {
    this.reinspector = new Reinspector({ store: deps.store, inspect: deps.inspect, audit: deps.audit, metrics: deps.metrics });
  }

  /** The record and verification to serve `hex` under; throws the refusal (audited), or not_found. */
  async admit(hex: string, call: Call): Promise<AdmittedArtifact> {
    const { deps } = this;
    const record = await deps.store.readRecord(hex);
    if (record === undefined) throw new GatewayError("not_found", `no artifact ${formatDigest(hex)}`);
    let trustedSignatures: TrustedEnvelope[];
    try {
      trustedSignatures = recheckTrustAll({
        // Each signature against the name it signed (record.name for older entries).
        envelopes: record.signatures,
        digestHex: hex,
        name: record.name,
        allowlist: deps.allowlist.current(),
        now: deps.now(),
      });
    } catch (err) {
      if (!isGatewayError(err)) throw err;
      call.log.warn({ digest: formatDigest(hex), code: err.code, verdict: "refused" }, "fetch refused: artifact no longer trusted");
      return this.refuse(call, err, hex, record);
    }
    const current = acceptedUnderCurrentPolicy(record, trustedSignatures);
    if (current !== undefined) return { record, verification: current.verification };
    // Trusted, but accepted under a content policy its source no longer has: inspect again.
    try {
      const admitted = await this.reinspector.admit(hex, record, trustedSignatures, { requestId: call.caller.requestId });
      call.log.info(
        { digest: formatDigest(hex), source: admitted.verification.source.id, verdict: "accepted" },
        "artifact inspected again under its source's current content policy",
      );
      return admitted;
    } catch (err) {
      if (!isGatewayError(err) || err.code === "unavailable" || err.code === "not_found") throw err;
      if (err.code === "integrity_error") {
        await this.quarantine(call, hex, err.message);
        return this.refuse(call, new GatewayError("integrity_error", "the stored artifact is damaged and was quarantined"), hex, record);
      }
      call.log.warn({ digest: formatDigest(hex), code: err.code, verdict: "refused" }, "fetch refused: the current content policy rejects the artifact");
      return this.refuse(call, err, hex, record);
    }
  }

  /**
   * The size of an admitted artifact's blob as stored: not_found when it is gone, and when it
   * differs from the record's, the blob is damaged: quarantined, `integrity_error`.
   */
  async storedSize(hex: string, record: ArtifactRecord, call: Call): Promise<number> {
    const stat = await this.deps.store.stat(hex);
    if (stat === undefined) throw new GatewayError("not_found", `no artifact ${formatDigest(hex)}`);
    if (stat.size !== record.size) {
      await this.quarantine(call, hex, `size on disk ${String(stat.size)} differs from the record's ${String(record.size)}`);
      throw new GatewayError("integrity_error", "the stored artifact is damaged and was quarantined");
    }
    return stat.size;
  }

  /**
   * The whole blob, with the stream that re-hashes it on the way out: pipe `stream` through
   * `verifier`, which fails with `integrity_error` at the end when the bytes are not the signed
   * ones (then call `damagedWhileServed`).
   */
  async openWhole(hex: string): Promise<{ stream: Readable; verifier: VerifyingStream }> {
    const opened = await this.deps.store.openRead(hex);
    if (opened === undefined) throw new GatewayError("not_found", `no artifact ${formatDigest(hex)}`);
    return { stream: opened.stream, verifier: new VerifyingStream(hex) };
  }

  /** A part of the blob. A part cannot be checked against the whole's digest; clients verify after reassembly. */
  async openPart(hex: string, range: ByteRange): Promise<Readable> {
    const opened = await this.deps.store.openRead(hex, range);
    if (opened === undefined) throw new GatewayError("not_found", `no artifact ${formatDigest(hex)}`);
    return opened.stream;
  }

  /** A blob whose bytes failed the re-hash while it was served: quarantined, and the refusal audited (best effort: the answer is already cut). */
  async damagedWhileServed(hex: string, err: GatewayError, call: Call): Promise<void> {
    await this.quarantine(call, hex, err.message);
    try {
      await this.deps.audit.append({ type: "fetch.refused", requestId: call.caller.requestId, digest: formatDigest(hex), codes: ["integrity_error"] });
    } catch {
      this.deps.metrics.auditWriteFailed();
    }
  }

  /**
   * The stored record and its trust verdict right now. "changed": no signature was accepted
   * under its source's content policy as it is now; the next download inspects the bytes again
   * and serves or refuses them. Nothing is audited: a description serves no bytes.
   */
  async describe(hex: string): Promise<{ record: ArtifactRecord; trust: TrustStatus }> {
    const { deps } = this;
    const record = await deps.store.readRecord(hex);
    if (record === undefined) throw new GatewayError("not_found", `no artifact ${formatDigest(hex)}`);
    let trust: TrustStatus;
    try {
      const all = recheckTrustAll({ envelopes: record.signatures, digestHex: hex, name: record.name, allowlist: deps.allowlist.current(), now: deps.now() });
      const current = acceptedUnderCurrentPolicy(record, all);
      const v = (current ?? all[0]).verification;
      trust = { status: "trusted", source: v.source.id, keyIds: v.keyIds, contentPolicy: current !== undefined ? "current" : "changed" };
    } catch (err) {
      if (!isGatewayError(err)) throw err;
      trust = { status: "refused", code: err.code };
    }
    return { record, trust };
  }

  /** Stored artifacts, newest first (the listing re-checks nothing: it serves no bytes). */
  list(query: ListQuery): Promise<ListPage> {
    return this.deps.store.list(query);
  }

  /** Audit a refusal, then throw it; a failed append throws `unavailable` instead. */
  private async refuse(call: Call, err: GatewayError, hex: string, record?: ArtifactRecord): Promise<never> {
    const { caller } = call;
    try {
      await this.deps.audit.append({
        type: "fetch.refused",
        requestId: caller.requestId,
        ...(caller.tokenId !== undefined ? { tokenId: caller.tokenId } : {}),
        ...(caller.client !== undefined ? { client: caller.client } : {}),
        digest: formatDigest(hex),
        ...(record ? { name: record.name } : {}),
        codes: [err.code],
      });
    } catch (auditErr) {
      this.deps.metrics.auditWriteFailed();
      call.log.error({ err: messageOf(auditErr) }, "audit append failed for a refused fetch");
      throw new GatewayError("unavailable", "the audit log cannot be written; try again later");
    }
    throw err;
  }

  private async quarantine(call: Call, hex: string, reason: string): Promise<void> {
    call.log.error({ digest: formatDigest(hex), reason }, "stored blob failed verification; quarantined");
    try {
      await this.deps.store.quarantine(hex, reason);
    } catch (err) {
      call.log.error({ digest: formatDigest(hex), err: messageOf(err) }, "quarantine failed");
    }
  }
}
