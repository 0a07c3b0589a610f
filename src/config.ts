import { z } from "zod";
import { GatewayError } from "./errors";
import { DEFAULT_MAX_UPLOAD_BYTES } from "./limits";

/**
 * Configuration: environment variables, overridden by CLI flags, validated once at start into one
 * typed Config. Nothing below src/ reads process.env but this file (and the CLI, which passes env in).
 */
const EnvSchema = z.object({
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  MODELGATE_DATA_DIR: z.string().min(1).default("./data"),
  MODELGATE_ALLOWLIST: z.string().min(1).default("./allowlist.json"),
  MODELGATE_MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(DEFAULT_MAX_UPLOAD_BYTES),
  MODELGATE_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type Config = {
  host: string;
  port: number;
  dataDir: string;
  allowlistPath: string;
  maxUploadBytes: number;
  logLevel: z.infer<typeof EnvSchema>["MODELGATE_LOG_LEVEL"];
};

export interface ConfigOverrides {
  host?: string | undefined;
  port?: string | undefined;
  dataDir?: string | undefined;
  allowlistPath?: string | undefined;
}

export function loadConfig(env: NodeJS.ProcessEnv, overrides: ConfigOverrides = {}): Config {
  const merged = {
    ...env,
    ...(overrides.host !== undefined ? { HOST: overrides.host } : {}),
    ...(overrides.port !== undefined ? { PORT: overrides.port } : {}),
    ...(overrides.dataDir !== undefined ? { MODELGATE_DATA_DIR: overrides.dataDir } : {}),
    ...(overrides.allowlistPath !== undefined ? { MODELGATE_ALLOWLIST: overrides.allowlistPath } : {}),
  };
  const parsed = EnvSchema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new GatewayError("invalid_config", `invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  return {
    host: e.HOST,
    port: e.PORT,
    dataDir: e.MODELGATE_DATA_DIR,
    allowlistPath: e.MODELGATE_ALLOWLIST,
    maxUploadBytes: e.MODELGATE_MAX_UPLOAD_BYTES,
    logLevel: e.MODELGATE_LOG_LEVEL,
  };
}
