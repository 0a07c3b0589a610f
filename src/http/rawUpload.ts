import type { RequestHandler } from "express";
import { GatewayError } from "../errors";
import { MAX_SIGNATURE_HEADER_BYTES } from "../limits";
import { parseArtifactName, preflightEnvelope, utf8Strict, type ArtifactName } from "../trust";
import { runUpload, type UploadRouteDeps } from "./uploadRoute";
import type { UploadState } from "./uploadStorage";

export const SIGNATURE_HEADER = "modelgate-signature";
export const NAME_HEADER = "modelgate-name";

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The envelope JSON from the `Modelgate-Signature` header (standard base64, padded or not). */
export function envelopeFromHeader(header: string | undefined): string {
  if (header === undefined || header.trim() === "") {
    throw new GatewayError("bad_request", "the Modelgate-Signature header (base64 of the DSSE envelope JSON) is missing");
  }
  const value = header.trim();
  if (value.length > MAX_SIGNATURE_HEADER_BYTES) {
    throw new GatewayError(
      "too_large",
      `the Modelgate-Signature header exceeds ${String(MAX_SIGNATURE_HEADER_BYTES)} bytes; send larger envelopes through the multipart route`,
      {
        maxBytes: MAX_SIGNATURE_HEADER_BYTES,
      },
    );
  }
  if (!BASE64.test(value) || value.length % 4 === 1) throw new GatewayError("bad_request", "the Modelgate-Signature header is not base64");
  // Strict UTF-8 (malformed_signature), not Buffer's toString, which turns bad bytes into U+FFFD.
  return utf8Strict(Buffer.from(value, "base64"), "the envelope in the Modelgate-Signature header");
}

/** The optional `Modelgate-Name` header, through the name rule (`invalid_name`). */
function nameFromHeader(header: string | undefined, state: UploadState): ArtifactName | undefined {
  if (header === undefined) return undefined;
  // Kept for the audit entry of the refusal (JSON-escaped there), validated next.
  state.requestedName = header;
  return parseArtifactName(header, "the Modelgate-Name header");
}

/**
 * PUT /v1/artifacts: the artifact bytes are the whole request body (application/octet-stream),
 * the envelope travels in `Modelgate-Signature` (base64 of its JSON), the name in the optional
 * `Modelgate-Name`. No multipart parsing, so the body goes from the socket to the hash and the
 * temp file directly. The same checks in the same order as POST: media type, declared length,
 * the envelope preflighted against the allowlist BEFORE a byte of the body is stored, the size
 * cap while the bytes arrive (the store's staged upload), then the publish use case through runUpload.
 */
export function rawUploadHandler(deps: UploadRouteDeps): RequestHandler {
  return runUpload(deps, async (req, _res, state) => {
    if (!req.is("application/octet-stream")) {
      throw new GatewayError(
        "unsupported_media_type",
        "PUT /v1/artifacts takes the artifact bytes as application/octet-stream, the envelope in Modelgate-Signature",
      );
    }
    const header = req.get("content-length");
    if (header !== undefined && /^\d{1,16}$/.test(header) && Number(header) > deps.maxUploadBytes) {
      throw new GatewayError("too_large", `request body of ${header} bytes exceeds the upload limit of ${String(deps.maxUploadBytes)} bytes`, {
        maxBytes: deps.maxUploadBytes,
      });
    }
    const envelope = envelopeFromHeader(req.get(SIGNATURE_HEADER));
    const name = nameFromHeader(req.get(NAME_HEADER), state);
    // Refuse an untrusted upload before its body touches the disk (the answer closes the connection).
    state.preflight = preflightEnvelope(envelope, deps.allowlist.current(), deps.now());
    const upload = deps.store.begin({ maxBytes: deps.maxUploadBytes });
    state.upload = upload;
    await upload.receive(req);
    return { envelope, name, upload };
  });
}
