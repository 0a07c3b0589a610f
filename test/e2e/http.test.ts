import { readFileSync } from "node:fs";
import * as path from "node:path";
import request from "supertest";
import type { InspectionReport } from "../../src/inspect/report";
import { makePublisher, sha256Hex, signFor } from "../support/publisher";
import { listFiles, startGateway, uploadBytes, type Gateway } from "./gateway";
import { fixturePath, manifestCase } from "./manifest";

/**
 * The gateway with the REAL inspector: createApp + inspectFile + FsArtifactStore on a temp dir +
 * an allowlist trusting keys made here. Real fixtures from test/fixtures/manifest.json go through
 * upload -> trust -> inspection -> promotion, and come back by digest byte for byte.
 */

/** Three sources: the default content policy, sklearn imports allowed, TorchScript allowed. */
const research = makePublisher();
const sklearn = makePublisher();
const scripted = makePublisher();
const PUBLISHERS = { research, sklearn, scripted } as const;
type SourceId = keyof typeof PUBLISHERS;

let env: Gateway;

beforeAll(async () => {
  env = await startGateway([
    { id: "research", publisher: research, names: ["research/**"] },
    { id: "sklearn", publisher: sklearn, names: ["sklearn/**"], pickle: { allowGlobals: ["sklearn.*"] } },
    { id: "scripted", publisher: scripted, names: ["scripted/**"], pickle: { allowTorchScript: true } },
  ]);
});

afterAll(async () => {
  await env.close();
});

function upload(source: SourceId, file: string): { bytes: Buffer; name: string; req: request.Test } {
  const bytes = readFileSync(fixturePath(file));
  const name = `${source}/${path.basename(file)}`;
  return { bytes, name, req: uploadBytes(env.app, PUBLISHERS[source], name, bytes, path.basename(file)) };
}

/** [fixture, source, manifest policy key] -> 201. */
const ACCEPTED: [string, SourceId, string][] = [
  ["torch/state_dict.pt", "research", ""],
  ["torch/legacy.pt", "research", ""],
  ["torch/checkpoint.pt", "research", ""],
  ["joblib/arrays.joblib.z", "research", ""],
  ["joblib/arrays.joblib.lz4", "research", ""],
  ["numpy/arrays.npz", "research", ""],
  ["numpy/v1_f32.npy", "research", ""],
  ["safetensors/benign.safetensors", "research", ""],
  ["pickle/plain_p4.pkl", "research", ""],
  ["joblib/sklearn_pipeline.joblib", "sklearn", JSON.stringify({ allowGlobals: ["sklearn.*"] })],
  ["mlflow/sklearn_model.zip", "sklearn", JSON.stringify({ allowGlobals: ["sklearn.*"] })],
  ["mlflow/sklearn_model.tar.gz", "sklearn", JSON.stringify({ allowGlobals: ["sklearn.*"] })],
  ["torch/torchscript.pt", "scripted", JSON.stringify({ allowTorchScript: true })],
  ["other/model.gguf", "research", ""],
  ["other/gguf_benign_v3.gguf", "research", ""],
];

/** [fixture, source, manifest policy key, HTTP code] -> 422. */
const REJECTED: [string, SourceId, string, "unsafe_artifact" | "malformed_artifact"][] = [
  ["torch/malicious_data_pkl.pt", "research", "", "unsafe_artifact"],
  ["torch/legacy_malicious_sysinfo.pt", "research", "", "unsafe_artifact"],
  ["joblib/malicious.joblib", "research", "", "unsafe_artifact"],
  ["joblib/malicious.joblib.lz4", "research", "", "unsafe_artifact"],
  ["pickle/pickle_zip_polyglot.pkl", "research", "", "unsafe_artifact"],
  ["torch/pickle_prefixed_zip.pt", "research", "", "unsafe_artifact"],
  ["torch/torchscript.pt", "research", "", "unsafe_artifact"],
  ["mlflow/sklearn_model.zip", "research", "", "unsafe_artifact"],
  ["mlflow/malicious_model_pkl.zip", "sklearn", JSON.stringify({ allowGlobals: ["sklearn.*"] }), "unsafe_artifact"],
  ["numpy/object_malicious.npz", "research", "", "unsafe_artifact"],
  ["other/random.bin", "research", "", "malformed_artifact"],
  ["other/gguf_ssti_template.gguf", "research", "", "unsafe_artifact"],
  ["other/gguf_misaligned.gguf", "research", "", "malformed_artifact"],
  ["safetensors/overlapping_spans.safetensors", "research", "", "malformed_artifact"],
  ["torch/bad_crc.pt", "research", "", "malformed_artifact"],
  ["other/empty.bin", "research", "", "malformed_artifact"],
  ["other/model.h5", "research", "", "malformed_artifact"],
  ["other/opaque_member.zip", "research", "", "unsafe_artifact"],
  ["other/nested_tar_in_zip.zip", "research", "", "unsafe_artifact"],
  ["joblib/bomb.joblib.bz2", "research", "", "malformed_artifact"],
  ["pickle/deep_marks.pkl", "research", "", "malformed_artifact"],
];

describe("upload -> inspect (real inspector) -> store -> fetch", () => {
  it.each(ACCEPTED)("accepts %s from source %s and serves it back by digest", async (file, source, policyKey) => {
    expect(manifestCase(file, policyKey).expect).toBe("accept");
    const { bytes, name, req } = upload(source, file);
    const res = await req;
    expect([file, res.status, res.body]).toEqual([
      file,
      201,
      expect.objectContaining({ digest: `sha256:${sha256Hex(bytes)}`, name, source, keyIds: [PUBLISHERS[source].keyId] }),
    ]);
    const body = res.body as { digest: string; inspection: InspectionReport; format: string };
    expect(body.inspection.verdict).toBe("accept");
    expect(body.format).toBe(body.inspection.format);

    const fetched = await request(env.app)
      .get(`/v1/artifacts/${body.digest}`)
      .buffer(true)
      .parse((r, cb) => {
        const chunks: Buffer[] = [];
        r.on("data", (c: Buffer) => chunks.push(c));
        r.on("end", () => {
          cb(null, Buffer.concat(chunks));
        });
      });
    expect(fetched.status).toBe(200);
    expect(Buffer.compare(fetched.body as Buffer, bytes)).toBe(0);
    expect(fetched.headers["docker-content-digest"]).toBe(body.digest);

    const meta = await request(env.app).get(`/v1/artifacts/${body.digest}/metadata`);
    expect(meta.status).toBe(200);
    const record = meta.body as {
      digest: string;
      name: string;
      inspection: InspectionReport;
      signatures: { source: string; envelope: string }[];
      trust: { status: string };
    };
    expect(record).toMatchObject({ digest: body.digest, name, trust: { status: "trusted" } });
    expect(record.inspection).toEqual(body.inspection);
    expect(record.signatures).toHaveLength(1);
    expect(record.signatures[0]?.source).toBe(source);
    const envelope = JSON.parse(record.signatures[0]?.envelope ?? "{}") as { payloadType?: string; signatures?: { keyid?: string }[] };
    expect(envelope.payloadType).toBe("application/vnd.in-toto+json");
    expect(envelope.signatures?.[0]?.keyid).toBe(PUBLISHERS[source].keyId);
  });

  it.each(REJECTED)("refuses %s from source %s, with the report in details and nothing stored", async (file, source, policyKey, code) => {
    const expected = manifestCase(file, policyKey);
    expect(expected.expect).toBe("reject");
    const before = await listFiles(env.dataDir);
    const { bytes, req } = upload(source, file);
    const res = await req;
    const body = res.body as { error: { code: string; details?: { inspection?: InspectionReport } } };
    expect([file, res.status, body.error.code]).toEqual([file, 422, code]);
    const report = body.error.details?.inspection;
    expect(report?.verdict).toBe("reject");
    expect(report?.findings.map((f) => f.code)).toContain(expected.code);
    expect(await listFiles(env.dataDir)).toEqual(before);
    const meta = await request(env.app).get(`/v1/artifacts/sha256:${sha256Hex(bytes)}/metadata`);
    const acceptedEarlier = ACCEPTED.find(([f]) => f === file);
    if (acceptedEarlier === undefined) {
      expect(meta.status).toBe(404);
    } else {
      // The same bytes, accepted earlier under a laxer source: refusing this upload adds no signature.
      expect(meta.status).toBe(200);
      expect((meta.body as { signatures: { source: string }[] }).signatures.map((s) => s.source)).toEqual([acceptedEarlier[1]]);
    }
    expect(env.audit.events.at(-1)).toMatchObject({
      type: "upload.rejected",
      codes: [code],
      digest: `sha256:${sha256Hex(bytes)}`,
      inspection: { verdict: "reject" },
    });
  });

  it("leaves only the accepted blobs and their records in the data directory", async () => {
    const files = (await listFiles(env.dataDir)).filter((f) => f.startsWith("blobs/"));
    const hexes = new Set(ACCEPTED.map(([file]) => sha256Hex(readFileSync(fixturePath(file)))));
    const expected = [...hexes]
      .flatMap((h) => [`blobs/sha256/${h.slice(0, 2)}/${h}`, `blobs/sha256/${h.slice(0, 2)}/${h}.json`])
      .map((p) => p.split("/").join(path.sep));
    expect(files).toEqual(expected.sort());
  });

  it("inspects under the signed name: a pickle signed as .safetensors is refused (CVE-2025-10155)", async () => {
    const bytes = readFileSync(fixturePath("pickle/plain_p4.pkl"));
    const name = "research/renamed.safetensors";
    const envelope = signFor(research, bytes, name);
    const before = await listFiles(env.dataDir);
    // The multipart file name claims .pkl; the signed name is the one consumers see, and it decides.
    const res = await request(env.app).post("/v1/artifacts").field("signature", envelope).attach("artifact", bytes, "plain_p4.pkl");
    const body = res.body as { error: { code: string; details?: { inspection?: InspectionReport } } };
    expect([res.status, body.error.code]).toEqual([422, "unsafe_artifact"]);
    expect(body.error.details?.inspection?.findings.map((f) => f.code)).toContain("extension_mismatch");
    expect(await listFiles(env.dataDir)).toEqual(before);
  });

  it("a second trusted source uploading the same bytes is inspected under its own policy and adds its signature", async () => {
    const file = "joblib/arrays.joblib.z";
    const bytes = readFileSync(fixturePath(file));
    const first = await request(env.app).get(`/v1/artifacts/sha256:${sha256Hex(bytes)}/metadata`);
    expect(first.status).toBe(200);
    const { req } = upload("sklearn", file);
    const res = await req;
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ digest: `sha256:${sha256Hex(bytes)}`, source: "sklearn", keyIds: [sklearn.keyId], inspection: { verdict: "accept" } });
    const meta = await request(env.app).get(`/v1/artifacts/sha256:${sha256Hex(bytes)}/metadata`);
    const record = meta.body as { signatures: { source: string }[]; trust: { status: string } };
    expect(record.signatures.map((s) => s.source)).toEqual(["research", "sklearn"]);
    expect(record.trust.status).toBe("trusted");
  });
});
