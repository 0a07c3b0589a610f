import { spawn } from "node:child_process";
import { BIN, ROOT, ensureBuilt } from "../helpers/binary";

export { BIN, ROOT, ensureBuilt };

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** One `modelgate ...` process, asynchronously (a server child keeps running meanwhile). */
export function modelgate(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (status) => {
      resolve({ status, stdout, stderr });
    });
  });
}
