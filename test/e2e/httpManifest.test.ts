import { readFileSync } from "node:fs";
import * as path from "node:path";
import type { InspectionReport } from "../../src/inspect/report";
import { makePublisher, type Publisher } from "../support/publisher";
import { listFiles, startGateway, uploadBytes, type Gateway } from "./gateway";
import { fixturePath, MANIFEST, policyKeyOf, type ManifestEntry } from "./manifest";

/**
 * Every case of test/fixtures/manifest.json uploaded through the gateway (real inspector, store,
 * allowlist): the manifest's verdict is the HTTP answer, with the case's content policy coming
 * from the source that signed it and the file's extension from the signed name. Accepted cases
 * answer 201/200; rejected ones 422 with the manifest's finding code in the report.
 */

const POLICIES = [...new Set(MANIFEST.map(policyKeyOf))];
const PUBLISHERS = POLICIES.map(() => makePublisher());
const sourceOf = (e: ManifestEntry): { id: string; publisher: Publisher } => {
  const i = POLICIES.indexOf(policyKeyOf(e));
  return { id: `p${String(i)}`, publisher: PUBLISHERS[i] ?? makePublisher() };
};

let env: Gateway;

beforeAll(async () => {
  env = await startGateway(
    POLICIES.map((key, i) => ({
      id: `p${String(i)}`,
      publisher: PUBLISHERS[i] ?? makePublisher(),
      ...(key === "" ? {} : { pickle: JSON.parse(key) as unknown }),
    })),
  );
});

afterAll(async () => {
  await env.close();
});

interface Outcome {
  file: string;
  policy: string;
  status: number;
  code: string | undefined;
  hasCodes: boolean;
}

async function uploadCase(e: ManifestEntry): Promise<Outcome> {
  const bytes = readFileSync(fixturePath(e.file));
  const source = sourceOf(e);
  const res = await uploadBytes(env.app, source.publisher, `${source.id}/${path.basename(e.file)}`, bytes, path.basename(e.file));
  const body = res.body as { inspection?: InspectionReport; error?: { code: string; details?: { inspection?: InspectionReport } } };
  const report = body.inspection ?? body.error?.details?.inspection;
  const codes = new Set(report?.findings.map((f) => f.code));
  const wanted = [e.code, ...(e.alsoCodes ?? [])].filter((c): c is string => c !== null);
  return { file: e.file, policy: policyKeyOf(e), status: res.status, code: body.error?.code, hasCodes: wanted.every((c) => codes.has(c as never)) };
}

describe("the gateway's verdict on every manifest fixture", () => {
  it("answers each case as the manifest says, and stores exactly the accepted ones", async () => {
    const outcomes: Outcome[] = [];
    // A few uploads in flight at once: the cases are independent (one source per policy).
    const queue = [...MANIFEST];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let e = queue.shift(); e !== undefined; e = queue.shift()) outcomes.push(await uploadCase(e));
      }),
    );
    for (const e of MANIFEST) {
      const got = outcomes.find((o) => o.file === e.file && o.policy === policyKeyOf(e));
      const accepted = got !== undefined && (got.status === 201 || got.status === 200);
      const expected =
        e.expect === "accept" ? { accepted: true, code: undefined } : { accepted: false, code: expect.stringMatching(/^(unsafe|malformed)_artifact$/) };
      expect({ file: e.file, policy: policyKeyOf(e), accepted, code: got?.code, status: accepted ? 201 : got?.status, hasCodes: got?.hasCodes }).toEqual({
        file: e.file,
        policy: policyKeyOf(e),
        ...expected,
        status: e.expect === "accept" ? 201 : 422,
        hasCodes: true,
      });
    }
    const blobs = (await listFiles(env.dataDir)).filter((f) => f.startsWith("blobs") && !f.endsWith(".json"));
    expect(blobs).toHaveLength(new Set(MANIFEST.filter((e) => e.expect === "accept").map((e) => e.file)).size);
    expect(await listFiles(path.join(env.dataDir, "tmp"))).toEqual([]);
  }, 60_000);
});
