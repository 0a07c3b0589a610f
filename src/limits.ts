/**
 * Every bound modelgate puts on hostile input, in one place, each with the threat it stops.
 * Parsers take a limits object (defaulting to these) so tests can hit each bound exactly:
 * one test at the limit, one just past it. Reaching a limit is `limit_exceeded`: reject.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

// ---- trust ----------------------------------------------------------------------------------

/** A DSSE envelope is a few KB; a cap stops JSON bombs and memory exhaustion in the parser. */
export const MAX_ENVELOPE_BYTES = 256 * KiB;
/** Signatures per envelope: bounds verification work an attacker can make us do (CWE-400). */
export const MAX_SIGNATURES_PER_ENVELOPE = 32;
/** allowlist.json is operator-written but may be edited by tools: bound its size anyway. */
export const MAX_ALLOWLIST_BYTES = 4 * MiB;
/**
 * Nesting depth of the envelope and statement JSON (objects and arrays). The deepest legitimate
 * path is statement -> subject[] -> subject -> digest, 4 levels; the strict scanner keeps an
 * explicit stack, and this bound stops a `[[[[…` payload from costing memory or reaching a
 * recursive consumer (zod, JSON.parse's own recursion).
 */
export const MAX_TRUST_JSON_DEPTH = 16;

// ---- HTTP / upload --------------------------------------------------------------------------

/** Default cap on an uploaded artifact, enforced while bytes arrive (env MODELGATE_MAX_UPLOAD_BYTES). */
export const DEFAULT_MAX_UPLOAD_BYTES = 20 * GiB;
/** Multipart: an upload has `signature`, `artifact`, `name`; anything more is abuse. */
export const MAX_MULTIPART_PARTS = 8;
export const MAX_MULTIPART_FIELDS = 4;
/** Largest non-file field (the envelope as a field, the name). */
export const MAX_MULTIPART_FIELD_BYTES = MAX_ENVELOPE_BYTES;
export const MAX_MULTIPART_FIELD_NAME_BYTES = 100;
/** Artifact names are short identifiers, not payloads. */
export const MAX_ARTIFACT_NAME_LENGTH = 512;
/** Listing page size: bounds work per request. */
export const MAX_LIST_LIMIT = 1000;
/**
 * After refusing an upload mid-body, we read (and discard) at most this much of the rest; a bigger
 * or unsized (chunked) rest gets the answer at once, then at most this much more is drained before
 * the connection is cut, so a hostile 20 GiB body costs no more than this (CWE-400).
 */
export const MAX_DRAIN_BYTES = 16 * MiB;
/** How long a refused upload's connection stays open (draining) after the answer: slow-loris bound. */
export const MAX_LINGER_MS = 2_000;
/** Multipart framing and text fields on top of the artifact bytes, for the Content-Length pre-check. */
export const MAX_MULTIPART_OVERHEAD_BYTES = MAX_MULTIPART_FIELDS * MAX_MULTIPART_FIELD_BYTES + MAX_ENVELOPE_BYTES + 64 * KiB;

// ---- operations: tokens, audit, rate limits ------------------------------------------------

/** A presented bearer token longer than this is rejected before hashing: stops header abuse. */
export const MAX_TOKEN_LENGTH = 256;
/** The tokens file is read whole at start and by `token create`: bound it anyway. */
export const MAX_TOKENS_FILE_BYTES = 1 * MiB;
/** One audit log line; reading the tail and verifying never buffers more than this per line. */
export const MAX_AUDIT_LINE_BYTES = 1 * MiB;
/** Entries per GET /v1/audit page: bounds work per request. */
export const MAX_AUDIT_PAGE = 1000;
/** Rate-limit buckets kept at once (per token id or IP): stops memory exhaustion by IP rotation. */
export const MAX_RATE_LIMIT_KEYS = 100_000;

// ---- pickle analyzer ------------------------------------------------------------------------

export interface PickleLimits {
  /** Opcodes in one stream: stops CPU exhaustion by endless tiny opcodes. */
  maxOpsPerStream: number;
  /** Memo entries alive at once: stops memory exhaustion through PUT/MEMOIZE floods. */
  maxMemoEntries: number;
  /** Symbolic stack depth: stops memory exhaustion and deep recursion in value rendering. */
  maxStackDepth: number;
  /** MARK nesting: same threat as the stack, through marks. */
  maxMarkDepth: number;
  /** Sum of decoded string/bytes argument lengths kept as values: stops memory exhaustion. */
  maxDecodedStringBytes: number;
  /** Pickles concatenated in one sequence (bytes after STOP): stops endless tiny pickles. */
  maxStreamsPerSequence: number;
  /** Wall-clock budget for one analysis, in ms: a last line against pathological inputs. */
  timeBudgetMs: number;
  /** Largest single argument we copy out of the input (strings, bytes); longer ones are skipped by length, never allocated. */
  maxRetainedArgumentBytes: number;
}

export const DEFAULT_PICKLE_LIMITS: Readonly<PickleLimits> = Object.freeze({
  maxOpsPerStream: 50_000_000,
  // CPython memoizes every str/dict/list/object: a 100 MB data pickle has millions of entries.
  // The machine keeps placeholders for containers past its retention budget (src/pickle/machine.ts).
  maxMemoEntries: 16_000_000,
  maxStackDepth: 100_000,
  maxMarkDepth: 10_000,
  maxDecodedStringBytes: 256 * MiB,
  maxStreamsPerSequence: 1_000,
  timeBudgetMs: 10 * 60 * 1000,
  maxRetainedArgumentBytes: 64 * KiB,
});

// ---- inspection workers ---------------------------------------------------------------------

/**
 * Wall-clock budget of one whole inspection in a worker (src/inspect/workerPool.ts), past which
 * the worker is terminated and the artifact is refused with `limit_exceeded`. A backstop behind
 * the pickle analyzer's own `timeBudgetMs` (which stops one analysis cooperatively, between
 * opcodes): it also bounds the time spent outside the analyzer (decompression, a zip or tar of
 * many pickles each under its own budget) and a loop no cooperative check reaches (CWE-400).
 */
export const INSPECTION_TIME_BUDGET_MS = DEFAULT_PICKLE_LIMITS.timeBudgetMs + 60_000;
/**
 * Default V8 old-generation heap of one inspection worker, in MiB (env
 * MODELGATE_INSPECT_WORKER_MEMORY_MB): content that exhausts it is refused (malformed), and only
 * that worker dies. Sized above the worst case of one pickle analysis at the default limits
 * (about 1.4 GiB, README "Memory of one inspection").
 */
export const DEFAULT_INSPECT_WORKER_MEMORY_MB = 2048;

// ---- containers -----------------------------------------------------------------------------

export interface ContainerLimits {
  /** Zip/tar entries per archive: stops central-directory floods (CWE-400). */
  maxEntries: number;
  /** Uncompressed bytes of one entry: zip bomb (CWE-409). */
  maxEntryUncompressedBytes: number;
  /** Uncompressed bytes of all entries of one artifact together: zip bomb (CWE-409). */
  maxTotalUncompressedBytes: number;
  /** Uncompressed/compressed ratio of one compressed entry or stream: zip bomb (CWE-409). */
  maxCompressionRatio: number;
  /** Archives inside archives: stops recursive zip quines and deep nesting. */
  maxNestingDepth: number;
  /** safetensors JSON header: the format itself caps it at 100 MB; we are stricter. */
  maxSafetensorsHeaderBytes: number;
  /** .npy header (v1 is at most 64 KiB; v2/v3 could claim 4 GiB). */
  maxNpyHeaderBytes: number;
  /** MLmodel / YAML / JSON members parsed in memory. */
  maxTextMemberBytes: number;
  /** Entry name length: stops absurd names and memory waste. */
  maxEntryNameBytes: number;
}

export const DEFAULT_CONTAINER_LIMITS: Readonly<ContainerLimits> = Object.freeze({
  maxEntries: 65_536,
  maxEntryUncompressedBytes: 64 * GiB,
  maxTotalUncompressedBytes: 256 * GiB,
  maxCompressionRatio: 1_000,
  maxNestingDepth: 3,
  maxSafetensorsHeaderBytes: 16 * MiB,
  maxNpyHeaderBytes: 64 * KiB,
  maxTextMemberBytes: 4 * MiB,
  maxEntryNameBytes: 4 * KiB,
});

/** Zip EOCD search window: the record (22 bytes) plus the longest comment (65535). */
export const ZIP_EOCD_SEARCH_BYTES = 65_535 + 22;
/** Deflated zip members up to this size are inflated in memory; larger ones go to a temp file. */
export const ZIP_INFLATE_IN_MEMORY_BYTES = 4 * MiB;
/** Bytes sniffed for text/JSON/YAML data members (beyond this, text is checked in streaming chunks). */
export const DATA_SNIFF_BYTES = 64 * KiB;

export const UNITS = { KiB, MiB, GiB } as const;

// ---- data formats (npy header literal, safetensors JSON, tar) --------------------------------

/** Bracket nesting in an .npy header literal: structured dtypes nest a few levels; stops deep recursion. */
export const MAX_PY_LITERAL_DEPTH = 32;
/** Values in an .npy header literal: stops CPU/memory exhaustion by headers of millions of tiny items. */
export const MAX_PY_LITERAL_NODES = 100_000;
/** Array dimensions of an .npy shape (numpy 2's NPY_MAXDIMS is 64): a larger shape is not loadable. */
export const MAX_NPY_DIMS = 64;
/** Nesting of the safetensors JSON header (its schema needs 3 levels): stops deep recursion. */
export const MAX_SAFETENSORS_JSON_DEPTH = 8;
/** A tar pax extended header or GNU long-name block, parsed in memory: stops memory exhaustion. */
export const MAX_TAR_EXTENDED_HEADER_BYTES = 1024 * 1024;
/** Trailing zero padding checked after a tar's end-of-archive blocks, read in bounded chunks. */
export const TAR_TRAILER_CHUNK_BYTES = 64 * 1024;

// ---- decompression layers and joblib (formats: decompress.ts, joblib.ts) ----------------------

/**
 * Output a compressed stream may produce before maxCompressionRatio applies: a few KB of zlib
 * or bz2 legitimately expand to a small all-zero array far beyond 1000:1; a bomb needs volume.
 */
export const DECOMPRESSION_RATIO_GRACE_BYTES = 1 * MiB;
/** liblzma decoder memory (dictionary): an lzma/xz header may ask for gigabytes (CWE-789). xz -9 needs 65 MiB. */
export const MAX_LZMA_DECODER_MEMORY_BYTES = 256 * MiB;
/** gzip FNAME / FCOMMENT header strings: zero-terminated, so an unterminated one would be scanned to the end. */
export const MAX_GZIP_HEADER_FIELD_BYTES = 64 * KiB;
/**
 * Opcodes followed when checking whether bytes joblib skips as array data would run as pickle
 * opcodes under pickle.load: bounds the walk over a huge array of opcode-like bytes (CPU).
 * Reaching it is treated as a disagreement (fail closed).
 */
export const MAX_JOBLIB_POLYGLOT_SCAN_OPS = 1_000_000;
/** joblib array wrappers in one file: each costs a report node; stops report floods by tiny arrays. */
export const MAX_JOBLIB_ARRAYS = 100_000;
/**
 * Raw (non-object) joblib arrays listed as their own report node; past it they are only counted
 * (details.arraysNotListed). Keeps the stored report of a 1000-tree forest small.
 */
export const MAX_JOBLIB_ARRAY_NODES = 256;
/**
 * Nesting of numpy dtypes checked inside one another (a structured dtype's fields, a subarray's
 * base): bounds the recursion a forged dtype state can make the dtype check do (stack depth).
 * numpy's own pickles of real models nest a few levels.
 */
export const MAX_NUMPY_DTYPE_DEPTH = 16;
/** YAML alias expansions when reading MLmodel / conda.yaml: stops billion-laughs documents (CWE-776). */
export const MAX_YAML_ALIAS_COUNT = 100;
/**
 * `Modelgate-Signature` header of the raw upload route (base64 of the envelope JSON): node refuses
 * more than 16 KiB of headers anyway; our own cap keeps the decode small and the answer a stable
 * `too_large`. Larger envelopes go through the multipart route.
 */
export const MAX_SIGNATURE_HEADER_BYTES = 12 * KiB;

// ---- inspection report size (report.ts summarize, members.ts appendMemberNode) ---------------

/**
 * Innocuous member nodes kept in one report, across every archive level. Further members with no
 * rejecting finding and no pickle are only counted (archive node details.omittedMembers). A 6.7 MB
 * zip of 60k text members made a 42 MB report that is stored as metadata, re-read on every fetch
 * and sent in the 201 body (memory exhaustion, CWE-400).
 */
export const MAX_REPORT_MEMBER_NODES = 256;
/**
 * Pickle nodes listed per member of a torch tar checkpoint (`storages`, `tensors`: one pickle per
 * storage or tensor, up to maxEntries each). Past it, a pickle with no rejecting finding and only
 * innocuous imports is counted (member node details.omittedPickles): 65k storages of ~50 bytes
 * would otherwise make a report many times the artifact (CWE-400).
 */
export const MAX_REPORT_PICKLE_NODES_PER_MEMBER = 64;
/**
 * Findings in a report's flat `findings` list. Past it, rejecting findings are kept first (the
 * first occurrence of each code and severity always), the rest only counted (omittedFindings).
 * The verdict is decided on every finding before the list is cut.
 */
export const MAX_REPORT_FINDINGS = 1000;

// ---- CLI pull (src/cli/commands/pull.ts) ------------------------------------------------------

/**
 * Bytes of the metadata JSON `modelgate pull` reads before the download (it gives the expected
 * size that bounds the download). A broken or hostile server sending an endless metadata body
 * must not exhaust the client's memory (CWE-400); a record is far smaller (report, envelopes).
 */
export const MAX_PULL_METADATA_BYTES = 64 * MiB;

// ---- CLI answers (src/cli/gatewayClient.ts) ----------------------------------------------------

/**
 * Bytes of an error answer `modelgate push` and `pull` read to find the server's code: the
 * gateway's are a few hundred bytes; anything longer is not one of its answers and is reported as
 * an answer without an error body (exit `internal`), without reading the rest. An inspection
 * refusal (422) carries the report and is read to MAX_SERVER_ANSWER_BYTES, as an upload answer is.
 */
export const MAX_SERVER_ERROR_BODY_BYTES = 1 * MiB;

/** Bytes of the upload answer `modelgate push` reads (it carries the inspection report, capped server-side). */
export const MAX_SERVER_ANSWER_BYTES = 64 * MiB;

/**
 * Redirects `modelgate pull` follows (as many as fetch did): a server answering with a redirect
 * loop must not keep the client busy forever.
 */
export const MAX_CLIENT_REDIRECTS = 20;

/**
 * Milliseconds a `modelgate pull` request may go without a byte received before it fails
 * `io_error` (fetch's own header and body timeouts, which pull used before, were 300 s): a server
 * that stalls, by accident or on purpose, must not hang the client forever. push has none: the
 * server inspects the upload before it answers, for as long as its inspection budget allows.
 */
export const SERVER_IDLE_TIMEOUT_MS = 300_000;

// ---- loader configs read by name (Keras config.json, transformers *config.json) ------------

/**
 * Top-level protobuf fields read when sniffing ONNX / SavedModel (src/formats/protobuf.ts): stops
 * CPU exhaustion by a member of millions of tiny fields. A longer valid prefix is named ONNX.
 */
export const MAX_PROTOBUF_SNIFF_FIELDS = 100_000;

// ---- ONNX models (src/formats/models/onnx.ts) ---------------------------------------------------

/**
 * Message nesting an ONNX model may use (graphs in If/Loop/Scan attributes, functions, tensors):
 * protobuf's C++ parser (onnx.load, onnxruntime) stops at its default recursion limit of 100, so
 * a deeper model loads nowhere; the limit also bounds the reader's stack against a crafted chain.
 */
export const ONNX_MAX_MESSAGE_DEPTH = 100;
/**
 * Protobuf fields read in one model: stops CPU exhaustion by a 2 GB model of tiny fields. Real
 * models hold a few fields per node and tensor (large tensors are one skipped field).
 */
export const ONNX_MAX_FIELDS = 50_000_000;
/** Nodes in all graphs, subgraphs and functions of one model: the largest real graphs have ~10^5. */
export const ONNX_MAX_NODES = 5_000_000;
/** Tensors with external data in one model: each is remembered until the archive check (memory bound). */
export const ONNX_MAX_EXTERNAL_TENSORS = 1_000_000;
/** Bytes of one string the inspector reads (domain, op_type, tensor name, external_data key or value): real ones are short. */
export const ONNX_MAX_STRING_BYTES = 64 * 1024;
/**
 * A `config.json` / `*_config.json` member parsed whole to find Keras objects and transformers'
 * `auto_map` (src/formats/models/loaderConfigs.ts): stops memory exhaustion by a huge JSON member. Real
 * ones are KBs (a tokenizer_config.json listing every added token reaches a few MB). Larger is
 * `limit_exceeded`: the file a loader reads by name is never skipped.
 */
export const MAX_LOADER_CONFIG_BYTES = 32 * MiB;

// ---- pickle machine memory (src/pickle/machine.ts) ----------------------------------------------

/**
 * Items one large list/tuple/dict/set keeps (the rest are counted, the container is marked
 * `truncated`): a pickle that APPENDS millions of items to one list must not make us keep them all.
 */
export const MAX_RETAINED_ITEMS = 4096;
/**
 * Items all large containers of one stream keep together: retaining is what a data pickle's
 * analysis spends its time on (the garbage collector walks everything kept), so a stream of many
 * large containers must not cost CPU without bound.
 */
export const MAX_RETAINED_TOTAL = 50_000;
/**
 * Items all containers of one stream keep together, small ones included: the memory bound against
 * a flood of small containers (README "Memory of one inspection": ~200 MiB at this bound).
 */
export const MAX_RETAINED_HARD = 2_000_000;
/**
 * Memo stores of one stream that keep their value as it is (strings kept as offsets aside);
 * past it the memo keeps only what the events depend on (machine.ts `memoPlaceholder`). Without
 * it a flood of memoized tuples, lists or floats kept one object per memo entry: 1.6 GB at
 * maxMemoEntries (memory exhaustion, CWE-400; README "Memory of one inspection").
 */
export const MAX_MEMO_VALUES_KEPT = 2_000_000;
/**
 * Distinct imports and object callables the memo shares one placeholder for past
 * MAX_MEMO_VALUES_KEPT; past it they are unknown (fail closed). Stops a flood of distinct
 * memoized globals from growing the shared map without bound.
 */
export const MAX_MEMO_SHARED = 4096;
/**
 * Memo indices below this can hold a lazily decoded string (the offsets array is 8 bytes per
 * index: at most 128 MiB); a huge memo index from a hostile pickle must not size that array.
 */
export const MAX_LAZY_STRING_INDEX = 1 << 24;

// ---- pickle value-light scanner (src/pickle/valueLightScanner.ts): past these the full machine takes the stream --

/**
 * Largest stack / mark array the scanner preallocates; larger configured limits use the full
 * machine, so a configured depth never makes the scanner allocate more than this up front.
 */
export const MAX_SCANNER_PREALLOCATED = 1 << 20;
/**
 * Memo indices the scanner holds (4 bytes each, 64 MiB at most, in pages allocated as written);
 * a MEMOIZE / PUT beyond goes to the full machine. MEMOIZE never reaches it under the default
 * maxMemoEntries.
 */
export const MAX_SCANNER_MEMO_INDEX = 1 << 24;
/** Distinct imports / calls one stream may record in the scanner before the full machine takes over (memory). */
export const MAX_SCANNER_DISTINCT = 4096;

// ---- pickle analysis report (src/pickle/analyzer.ts) ------------------------------------------

/** Distinct call sites kept in details.calls (the findings already name every rejected one): bounds report size. */
export const MAX_PICKLE_CALL_SITES = 256;
/** Findings kept per analysis; past it one more finding says how many were left out (report size, CWE-400). */
export const MAX_PICKLE_FINDINGS = 1000;
/** Import records kept per analysis (distinct imports per stream); past it they are counted only (memory). */
export const MAX_PICKLE_IMPORT_RECORDS = 10_000;
/** Classifications cached (a pickle of millions of distinct names must not grow the cache without bound). */
export const MAX_PICKLE_CLASSIFY_CACHE = 10_000;
/** Persistent ids shown in details.persistentIdSamples (report size). */
export const MAX_PICKLE_PERSISTENT_SAMPLES = 16;

// ---- formats ------------------------------------------------------------------------------------

/**
 * Files an MLflow `-r`/`-c` requirements include chain may reach, each read once
 * (src/formats/models/mlflow.ts): a chain or cycle of includes in a hostile artifact must not make the
 * inspector read member after member.
 */
export const MAX_MLFLOW_REQUIREMENT_FILES = 16;

// ---- GGUF and chat templates (src/formats/models/gguf.ts, chatTemplate.ts) ---------------------

/**
 * Tensor infos one GGUF file may declare; each is kept (name, shape, offset) to check the data
 * layout. Real files hold a few thousand (a 671B MoE ~1,800 per file); the count is also bounded by
 * the bytes left in the file (24 bytes per info at least), so a hostile count allocates nothing.
 */
export const MAX_GGUF_TENSORS = 1 << 18;
/** Metadata key/value pairs of one GGUF file (real: 20-60): a flood of tiny pairs must not cost CPU and memory without bound. */
export const MAX_GGUF_KV = 1 << 16;
/** A GGUF metadata key (the GGUF spec caps keys at 65535 bytes); keys are kept in memory to find duplicates. */
export const MAX_GGUF_KEY_BYTES = 65_535;
/** Nesting of GGUF arrays of arrays (gguf-py reads any depth; ggml's reader none): stops a deep-recursion payload. */
export const MAX_GGUF_ARRAY_DEPTH = 8;
/** Elements of one GGUF array (ggml's GGUF_MAX_ARRAY_ELEMENTS): besides the file-size bound, a CPU bound on a string array walked element by element. */
export const MAX_GGUF_ARRAY_ELEMENTS = 1 << 30;
/**
 * One chat template, read into memory and parsed (real ones are 0.1-20 KB): a larger one is
 * `limit_exceeded`; the template a server renders is never skipped.
 */
export const MAX_CHAT_TEMPLATE_BYTES = 1 * MiB;
/** Refused constructs listed per template (report size); the verdict is decided on the first. */
export const MAX_CHAT_TEMPLATE_FINDINGS = 64;
/** Largest literal `range(n)` a template may ask for (jinja2's sandbox MAX_RANGE): a renderer without a sandbox would build the whole list. */
export const MAX_TEMPLATE_RANGE = 100_000;

// ---- store and fetch -----------------------------------------------------------------------------

/**
 * An artifact's metadata record (src/store/fsStore.ts). Records are small (envelopes are capped,
 * reports are capped); a bigger one is refused on write (`too_large`) and on read was not written
 * by us (`integrity_error`): a tampered data dir must not make a fetch read gigabytes.
 */
export const MAX_RECORD_BYTES = 64 * MiB;
/**
 * Refusals the fetch route remembers per (artifact, source, name, policy) so repeated fetches do
 * not inspect again (src/gateway/reinspect.ts): the cache must not grow without bound under
 * requests for many artifacts.
 */
export const MAX_REMEMBERED_REFUSALS = 256;

// ---- trust: keys and allowlist entries ----------------------------------------------------------

/** Base64 length of one DSSE signature: an Ed25519 signature is 88 characters; stops huge `sig` strings. */
export const MAX_SIG_BASE64_LENGTH = 128;
/** A public key file is a few hundred bytes; anything large is a mistake and is not read whole. */
export const MAX_KEY_FILE_BYTES = 16 * KiB;
/** Sources in allowlist.json: bounds the per-signature verification work (each source is tried). */
export const MAX_ALLOWLIST_SOURCES = 1000;
/** Keys (and threshold) per allowlist source: bounds signature checks per source. */
export const MAX_ALLOWLIST_KEYS_PER_SOURCE = 64;
