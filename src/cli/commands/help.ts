import { SCOPES } from "../../auth/types";
import { PRESET_NAMES } from "../../pickle/presets";

/**
 * Name, one-line summary and `--help` text of every command, kept apart from the commands'
 * code so that `modelgate --help`, `modelgate <cmd> --help` and the command table in index.ts
 * load none of the commands' dependencies (express, multer, pino, prom-client, lzma-native).
 * Only light modules may be imported here: the two lists the texts quote are plain constants.
 */
export interface CommandHelp {
  name: string;
  summary: string;
  /** Full usage text printed by `modelgate <name> --help`. */
  usage: string;
}

export type CommandName = "serve" | "keygen" | "sign" | "verify" | "trust" | "push" | "pull" | "scan" | "token" | "audit";

export const COMMAND_HELP: Readonly<Record<CommandName, CommandHelp>> = {
  serve: {
    name: "serve",
    summary: "run the gateway HTTP server",
    usage: `usage: modelgate serve [--host <addr>] [--port <n>] [--data <dir>] [--allowlist <path>]

  --host       address to bind (env HOST, default 127.0.0.1)
  --port       port (env PORT, default 8080)
  --data       data directory (env MODELGATE_DATA_DIR, default ./data)
  --allowlist  allowlist.json (env MODELGATE_ALLOWLIST, default ./allowlist.json)

Refuses to start when the allowlist is invalid. SIGHUP (or editing the file) reloads it;
an invalid new allowlist is refused and the previous one stays in force. The tokens file
(MODELGATE_TOKENS_FILE) is reloaded the same way, so \`token revoke\` applies without a restart.`,
  },
  keygen: {
    name: "keygen",
    summary: "generate an Ed25519 signing key pair",
    usage: `usage: modelgate keygen --out <prefix>

  writes <prefix>.key (PEM PKCS#8 private key, mode 0600) and <prefix>.pub (PEM SPKI public
  key), prints the key id (sha256 of the raw public key); never overwrites existing files`,
  },
  sign: {
    name: "sign",
    summary: "sign a model file for publishing (writes a DSSE envelope)",
    usage: `usage: modelgate sign <file> --key <keyfile> [--name <name>] [--out <sigfile>]

  --key   PEM PKCS#8 Ed25519 private key (modelgate keygen, openssl genpkey -algorithm ed25519)
  --name  artifact name in the statement (default: the file's base name); a relative
          path of '/'-separated segments, no '.' or '..', NFC, no control or invisible characters
  --out   envelope file (default <file>.sig.json); replaced atomically

  The file is hashed while streaming; prints its sha256 digest.`,
  },
  verify: {
    name: "verify",
    summary: "check a model file and its signature against the allowlist",
    usage: `usage: modelgate verify <file> --sig <sigfile> [--name <name>] [--allowlist <path>]

  --sig        DSSE envelope (as written by modelgate sign)
  --name       expected artifact name (default: the statement's subject name)
  --allowlist  allowlist.json (env MODELGATE_ALLOWLIST, default ./allowlist.json)

  exit 0: trusted and valid (prints the source); 1: rejected (prints the code); 2: usage or I/O error`,
  },
  trust: {
    name: "trust",
    summary: "add a trusted key to allowlist.json, or list sources and keys",
    usage: `usage: modelgate trust add --source <id> --pub <pubfile> [--allowlist <path>]
       modelgate trust list [--allowlist <path>]

  add    trust a public key (PEM SPKI or base64 raw 32 bytes) for a source, creating the
         source when new; the key is copied into keys/ beside allowlist.json unless it already
         lives under that directory; allowlist.json is rewritten atomically (2-space JSON)
  list   show sources, their constraints, key ids and key states

  --allowlist  allowlist.json (env MODELGATE_ALLOWLIST, default ./allowlist.json)`,
  },
  push: {
    name: "push",
    summary: "upload a signed artifact to a gateway",
    usage: `usage: modelgate push <file> --sig <envelope.json> [--name <name>] [--url <url>] [--multipart]

  --sig        the DSSE envelope made by \`modelgate sign\` (sent before the body, so an
               untrusted upload is refused before its body is stored)
  --name       the artifact name (must equal the signed statement's subject name)
  --url        gateway base URL (env MODELGATE_URL, default http://127.0.0.1:8080)
  --multipart  upload with POST multipart/form-data instead of the raw PUT (envelope in the
               Modelgate-Signature header); also used when the envelope is too big for a header

Env MODELGATE_TOKEN: API token sent as a Bearer token. Prints the digest on success;
exits 1 with the server's error code when the upload is refused.`,
  },
  pull: {
    name: "pull",
    summary: "download an artifact by digest and verify it",
    usage: `usage: modelgate pull <digest> --out <path> [--url <url>] [--allowlist <path>]

  <digest>     sha256:<64 hex> (or bare 64 hex)
  --out        where to put the verified file (written only after verification)
  --url        gateway base URL (env MODELGATE_URL, default http://127.0.0.1:8080)
  --allowlist  also verify the stored signature envelopes locally against this allowlist

Downloads to a partial file next to --out, checks the sha256, then renames into place;
an interrupted download resumes (HTTP Range) when run again. Env MODELGATE_TOKEN: API token.`,
  },
  scan: {
    name: "scan",
    summary: "inspect model files without loading them (exit 1 if any is rejected)",
    usage: `usage: modelgate scan <file>... [--json] [--jobs <n>] [--allow-global <pattern>]... [--preset <name>]... [--policy <allowlist.json> --source <id>] [--allow-remote-code] [--allow-custom-operators] [--allow-keras-class <pattern>]...

Inspect model files without loading them and print a verdict per file.

  --json                    print {"files": [{path, verdict, format, findings, imports, omittedFindings?}]} on stdout
  --jobs <n>                inspect up to n files at once on n worker threads (default 1: one by one, in
                            this process); output stays in the order of the files. Each worker has the
                            heap of MODELGATE_INSPECT_WORKER_MEMORY_MB; a file that exhausts it is rejected
  --allow-global <pattern>  also allow this pickle import: "module.name" or "module.*" (repeatable);
                            the hard floor (os, subprocess, builtins.eval, ...) can never be allowed
  --preset <name>           also allow a named preset's exact imports (repeatable): ${PRESET_NAMES.join(", ")}
  --policy <allowlist.json> use the content policy of a source in this allowlist (with --source)
  --source <id>             the source whose policy applies
  --allow-remote-code       admit Hugging Face configs whose auto_map / custom_pipelines name code
                            (remote_code findings become innocuous; .py members stay embedded_code)
  --allow-custom-operators  admit ONNX nodes of operator domains onnxruntime does not implement
                            (custom_operator findings become innocuous; external data is still checked)
  --allow-keras-class <pattern>  admit a Keras v3 class outside keras.*: "module.Class" or "module.*"
                            (repeatable; unknown_class findings become innocuous)

Exit status: 0 every file accepted, 1 any file rejected, 2 usage or I/O error.`,
  },
  token: {
    name: "token",
    summary: "create, list or revoke API tokens (the file stores hashes only)",
    usage: `usage: modelgate token create --id <id> --scope <scope,...> [--tokens <file>]
       modelgate token list [--tokens <file>]
       modelgate token revoke --id <id> [--tokens <file>]

Manage API tokens. The tokens file (default: $MODELGATE_TOKENS_FILE) stores only the SHA-256 of
each token. \`create\` prints the new token once on stdout: store it now, it cannot be shown again.
Scopes: ${SCOPES.join(", ")}.`,
  },
  audit: {
    name: "audit",
    summary: "verify the audit log's hash chain",
    usage: `usage: modelgate audit verify [<file>] [--head <sha256>]

Check the audit log's hash chain. Prints the entry count and the head hash (exit 0), or the
first broken, edited, reordered or truncated entry (exit 1). <file> defaults to
$MODELGATE_AUDIT_LOG, else <$MODELGATE_DATA_DIR or ./data>/audit.log. --head: a head hash
printed earlier; the log must still contain it (detects entries cut from the end).`,
  },
};
