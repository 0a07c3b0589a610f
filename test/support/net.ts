import * as http from "node:http";
import * as net from "node:net";

/** A loopback port that was free a moment ago (for servers started by a command, not by the test). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  return port;
}

/** GET `url` until the server answers (10 s at most). */
export async function waitForHttp(url: string): Promise<Response> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await fetch(url);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** A real server on an ephemeral loopback port. */
export async function listen(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${String(port)}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/**
 * Answer with `status` and a body that never ends (up to 1 GiB of `fill` bytes after `prefix`),
 * for clients that must stop reading; `sent()` tells how many bytes of the endless part went out.
 */
export function endlessAnswer(
  status: number,
  headers: http.OutgoingHttpHeaders,
  options: { fill?: number; prefix?: string } = {},
): { handler: http.RequestListener; sent: () => number } {
  let sent = 0;
  const handler: http.RequestListener = (req, res) => {
    req.resume();
    res.writeHead(status, headers); // no Content-Length: chunked
    if (options.prefix !== undefined) res.write(options.prefix);
    const chunk = Buffer.alloc(64 * 1024, options.fill ?? 7);
    const pump = (): void => {
      while (!res.destroyed && sent < 1024 * 1024 * 1024) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once("drain", pump);
          return;
        }
      }
      res.end();
    };
    res.on("close", () => {
      res.destroy();
    });
    pump();
  };
  return { handler, sent: () => sent };
}
