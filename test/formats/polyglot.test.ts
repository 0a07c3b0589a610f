import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspectPath } from "../../src/formats/inspectFile";
import { ContentPolicySchema } from "../../src/inspect/policy";
import type { InspectionReport } from "../../src/inspect/report";
import { op, osSystemPickle } from "./torchBuilder";
import { buildZip } from "./zipBuilder";
import { npyFloat32 } from "../support/bytes";

/**
 * Files that parse as two things: a pickle at offset 0 and a zip directory at the end, a zip with
 * a pickle before its first local header, a numpy file with a zip glued on. Each is a polyglot.
 */

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "polyglot-test-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
async function inspectBytes(bytes: Uint8Array): Promise<InspectionReport> {
  const path = join(dir, `f${String(counter++)}`);
  writeFileSync(path, bytes);
  return inspectPath(path, { policy: ContentPolicySchema.parse({}) });
}

function rejectingCodes(r: InspectionReport): string[] {
  return r.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code);
}

const benignPickle = Uint8Array.from([...op.proto(2), ...op.emptyList, ...op.stop]);

/** A zip whose offsets count from the start of the whole file, so `prefix` sits before its first header. */
function zipAfter(prefix: Uint8Array): Uint8Array {
  return buildZip([{ name: "data.pkl", data: benignPickle }], { prefix });
}

/** A zip glued after other bytes, its offsets relative to its own start (as `cat a b` makes it). */
function glued(first: Uint8Array): Uint8Array {
  return Buffer.concat([first, buildZip([{ name: "data.pkl", data: benignPickle }])]);
}

describe("polyglots", () => {
  it("a pickle at offset 0 with a zip directory at the end", async () => {
    const r = await inspectBytes(glued(benignPickle));
    expect(rejectingCodes(r)).toContain("polyglot");
  });

  it("a zip with a pickle before its first local header", async () => {
    // Sniffed as the pickle it starts with; the zip directory at its end makes it a polyglot.
    expect(rejectingCodes(await inspectBytes(zipAfter(benignPickle)))).toContain("polyglot");
  });

  it("a zip with a malicious pickle before its first local header", async () => {
    expect(rejectingCodes(await inspectBytes(zipAfter(osSystemPickle())))).toEqual(expect.arrayContaining(["polyglot", "dangerous_global"]));
  });

  it("a zip with non-pickle bytes before its first local header is malformed, not a polyglot", async () => {
    expect(rejectingCodes(await inspectBytes(zipAfter(Uint8Array.from([0xde, 0xad, 0xbe, 0xef]))))).toEqual(["malformed_container"]);
  });

  it("an npy with a zip glued on", async () => {
    const plain = npyFloat32(2);
    expect((await inspectBytes(plain)).verdict).toBe("accept");
    expect(rejectingCodes(await inspectBytes(glued(plain)))).toContain("polyglot");
  });

  it("a broken protocol-0 pickle that runs os.system before failing is a pickle, not text (nullifAI)", async () => {
    const broken = Buffer.concat([Buffer.from("cos\nsystem\n(S'echo hi'\ntR"), Buffer.from("\nthis is not pickle\n")]);
    const inZip = await inspectBytes(buildZip([{ name: "notes.txt", data: broken }]));
    expect(rejectingCodes(inZip)).toContain("dangerous_global");
    expect(rejectingCodes(await inspectBytes(broken))).toContain("dangerous_global");
  });

  it("the committed fixtures: pickle+zip and pickle-prefixed torch zip", async () => {
    for (const file of ["test/fixtures/pickle/pickle_zip_polyglot.pkl", "test/fixtures/torch/pickle_prefixed_zip.pt"]) {
      expect(rejectingCodes(await inspectBytes(readFileSync(file)))).toContain("polyglot");
    }
  });
});
