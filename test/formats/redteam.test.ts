import { BufferSource } from "../../src/bytes/source";
import { Cursor } from "../../src/bytes/cursor";
import { disassemble } from "../../src/pickle/pickleReader";
import { deflateSync } from "node:zlib";
import type { InspectionReport } from "../../src/inspect/report";
import { stateDictPickle } from "./torchBuilder";
import { buildZip, type ZipEntrySpec } from "./zipBuilder";
import { useInspectBytes } from "../support/inspectBytes";

/**
 * Red-team regressions: inputs a real Python loader would make import (and call) something
 * outside the safe set, which an earlier version of the inspector accepted. Each input was
 * checked against the loader with a harmless payload (builtins.print).
 */

const inspectBytes = useInspectBytes("redteam-test");

function ascii(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** A pickle in printable ASCII that pickle.load runs: SHORT_BINBYTES (length ' ' = 32) first, no PROTO. */
const TEXT_PICKLE = ascii(`C ${"x".repeat(32)}0cbuiltins\nprint\n(S'PWNED'\ntR.`);
/** The same payload as protocol 4 opcodes with no PROTO: SHORT_BINUNICODE first. */
const NO_PROTO_PICKLE = Uint8Array.from([0x8c, 8, ...ascii("builtins"), 0x8c, 5, ...ascii("print"), 0x93, 0x8c, 2, ...ascii("hi"), 0x85, 0x52, 0x2e]);
/** Protocol 0 call of builtins.print, then an invalid opcode: pickle.load prints, then fails. */
const CALL_THEN_GARBAGE = ascii(`cbuiltins\nprint\n(S'PWNED'\ntRZjunk`);

function torchEntries(dataPklName: string, dataPkl: Uint8Array, extra: ZipEntrySpec[] = []): ZipEntrySpec[] {
  return [
    { name: `archive/${dataPklName}`, data: dataPkl },
    { name: "archive/data/0", data: new Uint8Array(24) },
    { name: "archive/version", data: "3\n" },
    ...extra,
  ];
}

const benign = stateDictPickle([{ name: "w", key: "0", numel: 6 }]);

describe("pickle sniffing by content", () => {
  it.each([
    ["SHORT_BINBYTES-first ASCII pickle", TEXT_PICKLE],
    ["SHORT_BINUNICODE-first pickle without PROTO", NO_PROTO_PICKLE],
    ["protocol 0 call followed by garbage", CALL_THEN_GARBAGE],
  ])("a zip member holding a %s is inspected as a pickle", async (_label, bytes) => {
    const r = await inspectBytes(buildZip([{ name: "m/notes.txt", data: bytes }]), "bundle.zip");
    expect(r.verdict).toBe("reject");
    expect(r.findings.map((f) => f.code)).toContain("unknown_global");
  });

  it("text that parses as an import that is never called stays data", async () => {
    const r = await inspectBytes(
      buildZip([
        { name: "m/notes.txt", data: "cats\ndogs\nare friends\n" },
        { name: "m/w.pkl", data: benign },
      ]),
      "bundle.zip",
    );
    expect(r.findings.map((f) => f.code)).not.toContain("unknown_global");
  });
});

describe("torch zip record names are case-insensitive (miniz lookup)", () => {
  it("archive/DATA.PKL is torch's data.pkl and is scanned", async () => {
    const r = await inspectBytes(buildZip(torchEntries("DATA.PKL", TEXT_PICKLE)), "model.pt");
    expect(r.verdict).toBe("reject");
    expect(r.findings.map((f) => f.code)).toContain("unknown_global");
  });

  it("a benign data.pkl next to a DATA.PKL torch may read instead is rejected", async () => {
    const r = await inspectBytes(buildZip(torchEntries("data.pkl", benign, [{ name: "archive/DATA.PKL", data: TEXT_PICKLE }])), "model.pt");
    expect(r.verdict).toBe("reject");
    expect(r.findings.map((f) => f.code)).toEqual(expect.arrayContaining(["malformed_container", "unknown_global"]));
  });

  it("two entries differing only in case are malformed even when both are harmless", async () => {
    const r = await inspectBytes(buildZip(torchEntries("data.pkl", benign, [{ name: "archive/Version", data: "3\n" }])), "model.pt");
    expect(r.verdict).toBe("reject");
    expect(r.findings.map((f) => f.code)).toContain("malformed_container");
  });

  it("the plain checkpoint is still accepted", async () => {
    const r = await inspectBytes(buildZip(torchEntries("data.pkl", benign)), "model.pt");
    expect(r.verdict).toBe("accept");
  });
});

describe("MLflow pytorch flavor: pickle_module_info.txt", () => {
  const mlmodel = [
    "artifact_path: model",
    "flavors:",
    "  python_function:",
    "    data: data",
    "    loader_module: mlflow.pytorch",
    "    pickle_module_name: mlflow.pytorch.pickle_module",
    "    python_version: 3.11.2",
    "  pytorch:",
    "    code: null",
    "    model_data: data",
    "    pytorch_version: 1.13.0",
    "mlflow_version: 2.9.2",
    "",
  ].join("\n");
  const bundle = (info: string): Uint8Array =>
    buildZip([
      { name: "model/MLmodel", data: mlmodel },
      { name: "model/data/model.pth", data: buildZip(torchEntries("data.pkl", benign)) },
      { name: "model/data/pickle_module_info.txt", data: info },
    ]);

  it("mlflow's own pickle module is accepted", async () => {
    const r = await inspectBytes(bundle("mlflow.pytorch.pickle_module"), "model.zip");
    expect(r.verdict).toBe("accept");
  });

  it.each(["antigravity", "mlflow.pytorch.pickle_module\n", "os"])("any other module name (%j) is embedded code: mlflow.pytorch imports it", async (name) => {
    const r = await inspectBytes(bundle(name), "model.zip");
    expect(r.verdict).toBe("reject");
    expect(r.findings.filter((f) => f.severity === "dangerous").map((f) => f.code)).toContain("embedded_code");
  });
});

describe("protocol 0 numbers are read as CPython's C unpickler reads them", () => {
  const firstArg = (text: string): unknown => disassemble(new Cursor(new BufferSource(ascii(text)), { errorCode: "malformed_pickle", what: "t" }))[0]?.arg;
  const codeOf = (text: string): string | undefined => {
    try {
      firstArg(text);
    } catch (err) {
      return (err as { code?: string }).code;
    }
    return undefined;
  };

  it.each([
    ["I0100\n.", 64], // strtol base 0: octal (joblib would read 64 bytes of a shape the scan sized as 100)
    ["I0x10\n.", 16],
    ["I 12\n.", 12],
    ["I1_0\n.", 10],
    ["I-010\n.", -8],
    ["I001\n.", 1],
    ["I1\u0000zz\n.", 1],
    ["I00\n.", false],
    ["I 1\n.", true],
    ["L0x10L\n.", 16n],
    ["L1_0\n.", 10n],
    ["p 10\n.", 10],
    ["p+10\n.", 10],
    ["p1_0\n.", 10],
    ["p010\n.", 10],
    ["p10 \n.", 10],
    ["g10\r\n.", 10],
    ["F1_0.5\n.", 10.5], // Python's float(): joblib's pure-Python unpickler accepts it
  ])("%j", (text, want) => {
    expect(firstArg(text)).toEqual(want);
  });

  it.each(["F1__0.5\n.", "F_1.0\n.", "I09\n.", "I0_10\n.", "L010L\n.", "p0x1\n.", "p_1\n.", "p1__0\n.", "p-1\n."])(
    "%j is malformed, as the loader refuses it",
    (text) => {
      expect(codeOf(text)).toBe("malformed_pickle");
    },
  );

  it.each([
    // Ten NONE, POP opcodes first: the memo index rule admits index 10 only after ten opcodes.
    ["PUT with a space", `N0N0N0N0N0S'x'\np 10\n0cbuiltins\nprint\n(S'PWNED'\ntR.`],
    ["PUT with an underscore", `N0N0N0N0N0S'x'\np1_0\n0cbuiltins\nprint\n(S'PWNED'\ntR.`],
    ["GET ended by CRLF", `S'x'\np1\n0g1\r\n0cbuiltins\nprint\n(S'PWNED'\ntR.`],
    ["INT with a space", `I 1\n0cbuiltins\nprint\n(S'PWNED'\ntR.`],
  ])("a text member whose pickle has a %s is still inspected as a pickle", async (_label, text) => {
    const r = await inspectBytes(buildZip([{ name: "m/readme.txt", data: text }]), "bundle.zip");
    expect(r.verdict).toBe("reject");
    expect(r.findings.map((f) => f.code)).toContain("unknown_global");
  });
});

describe("joblib's pre-0.10 ZF format", () => {
  it("a member joblib.load would inflate and unpickle is never an opaque member, even when the policy allows those", async () => {
    const pickle = ascii(`\x80\x02cbuiltins\nprint\n(S'PWNED'\ntR.`);
    // write_zfile: "ZF", the hex length padded to 19 characters, then zlib data.
    const header = ascii(`ZF${`0x${pickle.length.toString(16)}`.padEnd(19, " ")}`);
    const zfile = new Uint8Array([...header, ...deflateSync(pickle)]);
    const r = await inspectBytes(buildZip([{ name: "m/model.joblib", data: zfile }]), "bundle.zip", { allowOpaqueMembers: true });
    expect(r.verdict).toBe("reject");
    expect(r.findings.map((f) => f.code)).toContain("unsupported_format");
  });
});

describe("opcodes straddling a FRAME end (the C unpickler reads on)", () => {
  const frame = (body: number[]): number[] => [0x95, body.length, 0, 0, 0, 0, 0, 0, 0, ...body];
  const su = (s: string): number[] => [0x8c, s.length, ...ascii(s)];
  const tail = [...su("print"), 0x93, ...su("PWNED"), 0x85, 0x52, 0x2e];
  it.each([
    ["a text line", Uint8Array.from([...frame([...ascii("I1")]), ...ascii("\n0"), ...su("builtins"), ...tail])],
    ["an argument", Uint8Array.from([...frame(su("builtins").slice(0, 5)), ...su("builtins").slice(5), ...tail])],
  ])("a member whose %s crosses its frame is a pickle, not an opaque member, under allowOpaqueMembers", async (_label, bytes) => {
    const r = await inspectBytes(buildZip([{ name: "m/blob.bin", data: bytes }]), "bundle.zip", { allowOpaqueMembers: true });
    expect(r.verdict).toBe("reject");
    expect(r.findings.map((f) => f.code)).not.toContain("opaque_member");
  });
});

describe("code members of generic archives, judged by name as Python's importer does", () => {
  const codeOf = (r: InspectionReport): string[] => r.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code);

  it.each([
    "tiny/modeling_tiny.py",
    "tiny/MODELING.PY",
    "run.pyw",
    "__pycache__/m.cpython-311.pyc",
    "m.pyo",
    "ext/_fast.cpython-311-x86_64-linux-gnu.so",
    "ext/_fast.pyd",
    "evil.pth",
  ])("%s is embedded_code, whatever its bytes", async (name) => {
    const r = await inspectBytes(
      buildZip([
        { name: "tiny/config.json", data: "{}\n" },
        { name, data: "just text\n" },
      ]),
      "bundle.zip",
    );
    expect(r.verdict).toBe("reject");
    expect(codeOf(r)).toEqual(["embedded_code"]);
    expect(r.findings.find((f) => f.code === "embedded_code")?.location).toContain(name);
  });

  it("allowEmbeddedCode admits them (still reported); allowOpaqueMembers does not", async () => {
    const zip = buildZip([{ name: "modeling_tiny.py", data: "class TinyModel: pass\n" }]);
    const allowed = await inspectBytes(zip, "bundle.zip", { allowEmbeddedCode: true });
    expect(allowed.verdict).toBe("accept");
    expect(allowed.findings.find((f) => f.code === "embedded_code")?.severity).toBe("innocuous");
    expect((await inspectBytes(zip, "bundle.zip", { allowOpaqueMembers: true })).verdict).toBe("reject");
  });

  it("names that only contain a code extension are data", async () => {
    const r = await inspectBytes(
      buildZip([
        { name: "notes.py.txt", data: "text\n" },
        { name: "so/readme.md", data: "# hi\n" },
      ]),
      "bundle.zip",
    );
    expect(r.verdict).toBe("accept");
  });
});
