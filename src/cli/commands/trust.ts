import { GatewayError } from "../../errors";
import type { Command } from "../command";

export const trustCommand: Command = {
  name: "trust",
  summary: "(not implemented yet)",
  usage: "usage: modelgate trust",
  run() {
    return Promise.reject(new GatewayError("usage", "modelgate trust is not implemented yet"));
  },
};
