import { GatewayError } from "../../errors";
import type { Command } from "../command";

export const keygenCommand: Command = {
  name: "keygen",
  summary: "(not implemented yet)",
  usage: "usage: modelgate keygen",
  run() {
    return Promise.reject(new GatewayError("usage", "modelgate keygen is not implemented yet"));
  },
};
