import { GatewayError } from "../../errors";
import type { Command } from "../command";

export const verifyCommand: Command = {
  name: "verify",
  summary: "(not implemented yet)",
  usage: "usage: modelgate verify",
  run() {
    return Promise.reject(new GatewayError("usage", "modelgate verify is not implemented yet"));
  },
};
