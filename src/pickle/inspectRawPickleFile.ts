import { extname } from "node:path";
import { withFileSource } from "../bytes/source";
import type { Inspector } from "../inspect/inspector";
import { summarize } from "../inspect/report";
import { inspectPickleSource } from "./inspect";

/**
 * Inspector for a file that is a raw pickle (or a sequence of pickles): the whole file must be
 * pickle opcodes. `modelgate scan` uses the all-formats inspector once it exists; this one is
 * the pickle issue's piece of it.
 */
export const inspectRawPickleFile: Inspector = (path, options) => {
  try {
    const root = withFileSource(path, (source) => inspectPickleSource(source, "", { policy: options.policy }));
    const ext = extname(options.fileName ?? path);
    return Promise.resolve(summarize(root, "pickle", ext.length > 1 ? ext.slice(1) : undefined));
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
};
