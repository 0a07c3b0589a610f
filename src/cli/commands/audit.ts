import { GatewayError } from "../../errors";
import type { Command } from "../command";

export const auditCommand: Command = {
  name: "audit",
  summary: "(not implemented yet)",
  usage: "usage: modelgate audit",
  run() {
    return Promise.reject(new GatewayError("usage", "modelgate audit is not implemented yet"));
  },
};
