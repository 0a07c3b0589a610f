import type { Server } from "node:http";

/**
 * Graceful stop: stop accepting connections, close idle keep-alive sockets, let requests in
 * flight finish for up to `timeoutMs`, then destroy what is left (an upload cut this way is
 * discarded by the upload route: its temp file is removed and nothing is promoted). Resolves
 * with how the stop went once the server has closed.
 */
export function closeGracefully(server: Server, timeoutMs: number): Promise<{ forced: boolean }> {
  return new Promise((resolve, reject) => {
    let forced = false;
    const timer = setTimeout(() => {
      forced = true;
      server.closeAllConnections();
    }, timeoutMs);
    timer.unref();
    server.close((err) => {
      clearTimeout(timer);
      if (err !== undefined && (err as NodeJS.ErrnoException).code !== "ERR_SERVER_NOT_RUNNING") reject(err);
      else resolve({ forced });
    });
    server.closeIdleConnections();
  });
}
