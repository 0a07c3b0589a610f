import type { Inspector } from "../inspect/inspector";
import { summarize } from "../inspect/report";

/**
 * The inspector the gateway and `modelgate scan` call. Placeholder until the formats issue lands:
 * it recognises nothing, so everything is rejected as unknown_format (fail closed).
 */
export const inspectFile: Inspector = (_path, options) => {
  const root = {
    kind: "file",
    path: "",
    findings: [
      { code: "unknown_format" as const, severity: "malformed" as const, message: "content inspection is not available yet: nothing is accepted" },
    ],
    children: [],
  };
  return Promise.resolve(summarize(root, "unknown", options.fileName?.split(".").pop()));
};
