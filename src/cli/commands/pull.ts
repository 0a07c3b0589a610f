import { GatewayError } from "../../errors";
import type { Command } from "../command";

export const pullCommand: Command = {
  name: "pull",
  summary: "(not implemented yet)",
  usage: "usage: modelgate pull",
  run() {
    return Promise.reject(new GatewayError("usage", "modelgate pull is not implemented yet"));
  },
};
