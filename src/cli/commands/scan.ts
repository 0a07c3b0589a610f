import { GatewayError } from "../../errors";
import type { Command } from "../command";

export const scanCommand: Command = {
  name: "scan",
  summary: "(not implemented yet)",
  usage: "usage: modelgate scan",
  run() {
    return Promise.reject(new GatewayError("usage", "modelgate scan is not implemented yet"));
  },
};
