import { createHash } from "node:crypto";
import { z } from "zod";
import { formatDigest } from "../digest";
import { invalidGlobalPattern } from "../pickle/globalPattern";
import { PRESET_NAMES } from "../pickle/presets";

/**
 * A source's content policy, as it appears under `pickle` in allowlist.json and as the CLI's
 * `--allow-global` builds it. The pickle issue's built-in safe set and hard floor live in
 * src/pickle/; this is only what an operator may add on top, per source.
 */
export const ContentPolicySchema = z
  .strictObject({
    /** Extra allowed imports: exact "module.name" or a module prefix pattern "sklearn.*". */
    // Validated here, at every boundary that reads a policy (allowlist.json load and reload), with
    // the pickle policy's own rule: an unusable pattern refuses the allowlist instead of failing
    // each later upload of that source as a malformed artifact.
    allowGlobals: z
      .array(
        z
          .string()
          .min(1)
          .max(256)
          .superRefine((pattern, ctx) => {
            const why = invalidGlobalPattern(pattern);
            if (why !== undefined) ctx.addIssue({ code: "custom", message: why });
          }),
      )
      .max(1000)
      .default([]),
    /**
     * Named exact import lists generated from the real package ("sklearn": the classes and
     * reconstructors real scikit-learn pickles import). Optional, so that a policy without it
     * keeps its digest.
     */
    presets: z
      .array(z.enum(PRESET_NAMES, { error: (issue) => `unknown preset ${JSON.stringify(issue.input)} (known presets: ${PRESET_NAMES.join(", ")})` }))
      .max(16)
      .optional(),
    /** TorchScript archives (code/, constants.pkl) carry executable code: off unless named. */
    allowTorchScript: z.boolean().default(false),
    /** MLflow code/, python_model.pkl, custom loader modules: off unless named. */
    allowEmbeddedCode: z.boolean().default(false),
    /** Archive members of unknown binary content: off unless named. */
    allowOpaqueMembers: z.boolean().default(false),
    /** MLflow environments that install from URLs, VCS, paths or other indexes: off unless named. */
    allowDirectRequirements: z.boolean().default(false),
    /** Hugging Face configs whose auto_map / custom_pipelines name code transformers downloads and runs: off unless named. */
    allowRemoteCode: z.boolean().default(false),
    /** ONNX nodes whose operator domain needs a custom operator library (native code) on the host: off unless named. Optional, so that a policy without it keeps its digest. */
    allowCustomOperators: z.boolean().optional(),
    /** Keras v3 classes outside `keras.*` that config.json may name ("module.Class" or "module.*"): deserialize_keras_object imports their module. Optional, so that a policy without it keeps its digest. */
    keras: z
      .object({
        allowClasses: z
          .array(
            z
              .string()
              .max(512)
              .superRefine((pattern, c) => {
                const problem = invalidGlobalPattern(pattern);
                if (problem !== undefined) c.addIssue({ code: "custom", message: problem });
              }),
          )
          .max(1024)
          .default([]),
      })
      .strict()
      .optional(),
  })
  .describe("per-source content policy");

export type ContentPolicy = z.infer<typeof ContentPolicySchema>;

export const DEFAULT_CONTENT_POLICY: Readonly<ContentPolicy> = Object.freeze({
  allowGlobals: [],
  allowTorchScript: false,
  allowEmbeddedCode: false,
  allowOpaqueMembers: false,
  allowDirectRequirements: false,
  allowRemoteCode: false,
});

/**
 * A fingerprint of what a content policy admits: "sha256:<hex>" of its canonical JSON (patterns
 * sorted and deduplicated, every flag explicit; `presets` sorted and deduplicated, and left out
 * when empty so that the digests of policies written before presets existed do not change). Stored with each signature of a record, so a
 * fetch can tell whether the source's policy changed since the bytes were inspected under it.
 */
export function contentPolicyDigest(policy: ContentPolicy): string {
  // Every fetch asks for the digest of its sources' policies; a policy object lives as long as
  // the allowlist that parsed it, so each is hashed once.
  const known = policyDigests.get(policy);
  if (known !== undefined) return known;
  const presets = [...new Set(policy.presets ?? [])].sort();
  const canonical = JSON.stringify({
    allowGlobals: [...new Set(policy.allowGlobals)].sort(),
    ...(presets.length > 0 ? { presets } : {}),
    allowTorchScript: policy.allowTorchScript,
    allowEmbeddedCode: policy.allowEmbeddedCode,
    allowOpaqueMembers: policy.allowOpaqueMembers,
    allowDirectRequirements: policy.allowDirectRequirements,
    // Only written when set, so every digest stored before this flag existed stays valid.
    ...(policy.allowRemoteCode ? { allowRemoteCode: true } : {}),
    ...(policy.allowCustomOperators === true ? { allowCustomOperators: true } : {}),
    ...((policy.keras?.allowClasses.length ?? 0) > 0 ? { keras: { allowClasses: [...new Set(policy.keras?.allowClasses)].sort() } } : {}),
  });
  const digest = formatDigest(createHash("sha256").update(canonical).digest("hex"));
  policyDigests.set(policy, digest);
  return digest;
}

const policyDigests = new WeakMap<ContentPolicy, string>();
