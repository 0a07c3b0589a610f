import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { GatewayError, messageOf } from "../../errors";
import { MAX_ENVELOPE_BYTES, MAX_SIGNATURE_HEADER_BYTES } from "../../limits";
import { apiUrl, authHeaders, gatewayUrl, isSuccess, multipartAround, readUploadResult, serverError, uploadFile, type GatewayAnswer } from "../gatewayClient";
import { parseCommandArgs } from "../args";
import type { Command } from "../command";
import { COMMAND_HELP } from "./help";

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
    let answer: GatewayAnswer;
    if (values.multipart !== true && signatureHeader.length <= MAX_SIGNATURE_HEADER_BYTES) {
      // Raw PUT: the body is the file, the envelope rides in a header the server checks first.
      const headers: Record<string, string> = { ...authHeaders(io), "Content-Type": "application/octet-stream", "Modelgate-Signature": signatureHeader };
      if (values.name !== undefined) headers["Modelgate-Name"] = values.name;
      answer = await uploadFile({ method: "PUT", url, headers, file: filePath });
    } else {
      const { contentType, head, tail } = multipartAround({ signature: envelope, name: values.name }, path.basename(filePath));
      const headers = { ...authHeaders(io), "Content-Type": contentType };
      answer = await uploadFile({ method: "POST", url, headers, head, file: filePath, tail });
    }
    if (!isSuccess(answer)) throw await serverError(answer);
    const result = await readUploadResult(answer);
    io.stdout(`${result.digest}\n`);
    io.stderr(`${result.created ? "stored" : "already stored"}: ${result.name} (${String(result.size)} bytes, source ${result.source})\n`);
    return 0;
  },
};
