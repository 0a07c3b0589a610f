import { GatewayError } from "../../errors";
import type { Command } from "../command";

export const signCommand: Command = {
  name: "sign",
  summary: "(not implemented yet)",
  usage: "usage: modelgate sign",
  run() {
    return Promise.reject(new GatewayError("usage", "modelgate sign is not implemented yet"));
  },
};
