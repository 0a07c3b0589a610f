import { GatewayError } from "../../errors";
import type { Command } from "../command";

export const tokenCommand: Command = {
  name: "token",
  summary: "(not implemented yet)",
  usage: "usage: modelgate token",
  run() {
    return Promise.reject(new GatewayError("usage", "modelgate token is not implemented yet"));
  },
};
