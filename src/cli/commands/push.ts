import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { GatewayError, messageOf, type ErrorCode } from "../../errors";
import { HTTP_STATUS } from "../../http/errorStatus";
import { MAX_ENVELOPE_BYTES, MAX_SERVER_ANSWER_BYTES, MAX_SERVER_ERROR_BODY_BYTES, MAX_SIGNATURE_HEADER_BYTES } from "../../limits";
import { multipartAround, readJsonCapped, uploadFile } from "../gatewayClient";
import { parseCommandArgs } from "../args";
import { findingLines, printable } from "../findingLines";
import type { CliIo, Command } from "../command";
import { COMMAND_HELP } from "./help";

const DEFAULT_URL = "http://127.0.0.1:8080";

/** --url, else env MODELGATE_URL, else the local default; only http(s) URLs. */
export function gatewayUrl(flag: string | undefined, io: CliIo): URL {
  // An empty MODELGATE_URL (`MODELGATE_URL= modelgate push ...`) means unset, as for other tools.
  const fromEnv = io.env.MODELGATE_URL !== undefined && io.env.MODELGATE_URL !== "" ? io.env.MODELGATE_URL : undefined;
  const text = flag ?? fromEnv ?? DEFAULT_URL;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new GatewayError("usage", `--url must be an http(s) URL, got '${text}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new GatewayError("usage", `--url must be http or https, got '${url.protocol}'`);
  return url;
}

/** The API path under the base URL (a base with a path prefix, e.g. behind a proxy, is kept). */
export function apiUrl(base: URL, apiPath: string): URL {
  const url = new URL(base.toString());
  url.pathname = `${url.pathname.replace(/\/+$/, "")}${apiPath}`;
  return url;
}

/** Bearer token from env MODELGATE_TOKEN (never from a flag: flags end up in shell history). */
export function authHeaders(io: CliIo): Record<string, string> {
  const token = io.env.MODELGATE_TOKEN;
  return token !== undefined && token !== "" ? { Authorization: `Bearer ${token}` } : {};
}

const ErrorBodySchema = z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) });

/** The part of an inspection report (a 422's `details.inspection`) the finding lines print. */
const InspectionDetailsSchema = z.object({
  inspection: z.object({
    findings: z.array(
      z.object({
        code: z.string(),
        severity: z.enum(["innocuous", "suspicious", "dangerous", "malformed"]),
        message: z.string(),
        location: z.string().optional(),
        offset: z.number().optional(),
      }),
    ),
    imports: z.array(z.object({ module: z.string(), name: z.string(), safety: z.enum(["innocuous", "unknown", "dangerous"]) })).default([]),
    omittedFindings: z.object({ count: z.number(), byCode: z.record(z.string(), z.number()) }).optional(),
  }),
});

/** An inspection refusal (422) carries the report, as large as an upload answer's; others are small. */
const INSPECTION_REFUSAL_STATUS = HTTP_STATUS.unsafe_artifact;

/**
 * Turn a non-2xx answer into the server's own code (unknown codes become `internal`). An
 * inspection refusal also lists its rejecting findings (code, member path, import), as `scan`
 * prints them, one per line after the message.
 */
export async function serverError(res: Response): Promise<GatewayError> {
  const cap = res.status === INSPECTION_REFUSAL_STATUS ? MAX_SERVER_ANSWER_BYTES : MAX_SERVER_ERROR_BODY_BYTES;
  const result = ErrorBodySchema.safeParse(await readJsonCapped(res, cap).catch(() => undefined));
  const parsed = result.success ? result.data : undefined;
  if (parsed === undefined) return new GatewayError("internal", `server answered HTTP ${String(res.status)} without an error body`);
  const known = Object.prototype.hasOwnProperty.call(HTTP_STATUS, parsed.error.code);
  const code = (known ? parsed.error.code : "internal") as ErrorCode;
  const inspection = InspectionDetailsSchema.safeParse(parsed.error.details);
  const lines = inspection.success ? findingLines(inspection.data.inspection, { rejectingOnly: true }) : [];
  return new GatewayError(code, [printable(`${parsed.error.message} (HTTP ${String(res.status)})`), ...lines].join("\n"));
}

export async function request(url: URL, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    throw new GatewayError("io_error", `cannot reach ${url.origin}: ${messageOf(cause ?? err)}`);
  }
}

const PushResultSchema = z.object({ digest: z.string(), size: z.number(), name: z.string(), source: z.string() });

export const pushCommand: Command = {
  ...COMMAND_HELP.push,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      sig: { type: "string" },
      name: { type: "string" },
      url: { type: "string" },
      multipart: { type: "boolean" },
    });
    const [file, ...extra] = positionals;
    if (file === undefined || extra.length > 0) throw new GatewayError("usage", "push takes exactly one <file>");
    if (values.sig === undefined) throw new GatewayError("usage", "--sig <envelope.json> is required");
    const base = gatewayUrl(values.url, io);
    const filePath = path.resolve(io.cwd, file);
    const sigPath = path.resolve(io.cwd, values.sig);

    let envelope: string;
    try {
      const st = await fsp.stat(sigPath);
      if (!st.isFile() || st.size > MAX_ENVELOPE_BYTES)
        throw new GatewayError("usage", `${values.sig} is not a signature envelope file (at most ${String(MAX_ENVELOPE_BYTES)} bytes)`);
      envelope = await fsp.readFile(sigPath, "utf8");
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      throw new GatewayError("io_error", `cannot read ${values.sig}: ${messageOf(err)}`);
    }
    const url = apiUrl(base, "/v1/artifacts");
    const signatureHeader = Buffer.from(envelope, "utf8").toString("base64");
    let res: Response;
    if (values.multipart !== true && signatureHeader.length <= MAX_SIGNATURE_HEADER_BYTES) {
      // Raw PUT: the body is the file, the envelope rides in a header the server checks first.
      const headers: Record<string, string> = { ...authHeaders(io), "Content-Type": "application/octet-stream", "Modelgate-Signature": signatureHeader };
      if (values.name !== undefined) headers["Modelgate-Name"] = values.name;
      res = await uploadFile({ method: "PUT", url, headers, file: filePath });
    } else {
      const { contentType, head, tail } = multipartAround({ signature: envelope, name: values.name }, path.basename(filePath));
      const headers = { ...authHeaders(io), "Content-Type": contentType };
      res = await uploadFile({ method: "POST", url, headers, head, file: filePath, tail });
    }
    if (!res.ok) throw await serverError(res);
    const body = PushResultSchema.safeParse(await readJsonCapped(res, MAX_SERVER_ANSWER_BYTES));
    if (!body.success) throw new GatewayError("internal", "the server's answer is not an upload result");
    io.stdout(`${body.data.digest}\n`);
    io.stderr(`${res.status === 201 ? "stored" : "already stored"}: ${body.data.name} (${String(body.data.size)} bytes, source ${body.data.source})\n`);
    return 0;
  },
};
