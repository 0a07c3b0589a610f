export * from "./types";
export { FsArtifactStore } from "./fsStore";
export { HashCounter, sameDigest, assertHexDigest } from "./hashing";
