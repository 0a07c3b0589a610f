import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { closeGracefully } from "../../../src/http/middleware/shutdown";

function startHolding(): Promise<{ server: http.Server; port: number; held: http.ServerResponse[]; entered: () => Promise<void> }> {
  const held: http.ServerResponse[] = [];
  let signal: (() => void) | undefined;
  const server = http.createServer((_req, res) => {
    held.push(res);
    signal?.();
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        held,
        entered: () =>
          new Promise<void>((r) => {
            if (held.length > 0) r();
            else signal = r;
          }),
      });
    });
  });
}

function getStatus(port: number): Promise<number | "reset"> {
  return new Promise((resolve) => {
    http
      .get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
        res.resume();
        res.on("end", () => {
          resolve(res.statusCode ?? 0);
        });
      })
      .on("error", () => {
        resolve("reset");
      });
  });
}

describe("closeGracefully", () => {
  it("lets a request in flight finish and resolves unforced", async () => {
    const { server, port, held, entered } = await startHolding();
    const answer = getStatus(port);
    await entered();
    const closing = closeGracefully(server, 10_000);
    held[0]!.end("done");
    expect(await answer).toBe(200);
    await expect(closing).resolves.toEqual({ forced: false });
    expect(server.listening).toBe(false);
  });

  it("destroys requests still running at the timeout", async () => {
    const { server, port, entered } = await startHolding();
    const answer = getStatus(port);
    await entered();
    await expect(closeGracefully(server, 50)).resolves.toEqual({ forced: true });
    expect(await answer).toBe("reset");
  });
});
