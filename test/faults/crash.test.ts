import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { verifyAuditLog } from "../../src/audit/fileLog";
import { sha256Hex } from "../support/publisher";
import { startServeProcess, type ServeProcess } from "../support/binary";
import { uniqueSafetensors } from "../support/bytes";
import { beginUpload, get, trustNewPublisher, until, uploadWhole } from "./serverProcess";

/**
 * SIGKILL in the middle of uploads, then restart: the store holds only complete verified
 * artifacts, the temp area is empty, the killed uploads are not served, and the audit chain
 * verifies (an incomplete last line from the kill is cut and set aside at start).
 */
describe("crash safety (SIGKILL mid-upload)", () => {
  let dir: string;
  let server: ServeProcess | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mg-faults-kill-"));
  });
  afterEach(async () => {
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGKILL");
      await server.exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it("restarts with only complete artifacts, no temp files and a valid audit chain", async () => {
    const dataDir = path.join(dir, "data");
    const allowlist = path.join(dir, "allowlist.json");
    const key = trustNewPublisher(allowlist);
    server = await startServeProcess({ dataDir, allowlist });

    const complete = uniqueSafetensors(256 * 1024);
    expect((await uploadWhole(server.port, key, "faults/complete.safetensors", complete)).status).toBe(201);

    // Three uploads stop half-way; the server has staged part of each when it is killed.
    const partial = [0, 1, 2].map(() => uniqueSafetensors(4 * 1024 * 1024));
    const inFlight = partial.map((bytes, i) => {
      const u = beginUpload(server!.port, key, `faults/partial-${i.toString()}.safetensors`, bytes);
      u.req.write(bytes.subarray(0, 2 * 1024 * 1024));
      u.answer.catch(() => undefined);
      u.req.on("error", () => undefined);
      return u;
    });
    const tmp = path.join(dataDir, "tmp");
    const stagedBytes = async (): Promise<number> => {
      let total = 0;
      for (const f of await readdir(tmp)) total += (await stat(path.join(tmp, f))).size;
      return total;
    };
    await until(async () => (await stagedBytes()) >= 3 * 1024 * 1024, "the partial uploads to be staged");
    server.child.kill("SIGKILL");
    await server.exited;
    for (const u of inFlight) u.req.destroy();
    expect((await readdir(tmp)).length).toBeGreaterThan(0); // the kill left temp files behind

    server = await startServeProcess({ dataDir, allowlist });
    expect(await readdir(tmp)).toEqual([]);
    const list = await get(server.port, "/v1/artifacts?limit=100");
    const items = (JSON.parse(list.body.toString()) as { items: { digest: string }[] }).items;
    expect(items.map((i) => i.digest)).toEqual([`sha256:${sha256Hex(complete)}`]);
    const blob = await get(server.port, `/v1/artifacts/sha256:${sha256Hex(complete)}`);
    expect(blob.status).toBe(200);
    expect(sha256Hex(blob.body)).toBe(sha256Hex(complete));
    for (const bytes of partial) expect((await get(server.port, `/v1/artifacts/sha256:${sha256Hex(bytes)}`)).status).toBe(404);
    // The store still takes uploads after the crash.
    expect((await uploadWhole(server.port, key, "faults/after.safetensors", uniqueSafetensors(1024))).status).toBe(201);

    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    const audit = await verifyAuditLog(path.join(dataDir, "audit.log"));
    expect(audit).toMatchObject({ ok: true });
    expect(audit.count).toBeGreaterThanOrEqual(2);
  });
});
