import { GatewayError } from "../../errors";
import type { Command } from "../command";

export const pushCommand: Command = {
  name: "push",
  summary: "(not implemented yet)",
  usage: "usage: modelgate push",
  run() {
    return Promise.reject(new GatewayError("usage", "modelgate push is not implemented yet"));
  },
};
