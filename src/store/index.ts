export * from "./types";
export { FsArtifactStore } from "./fsStore";
export { namesOf } from "./names";
export { HashCounter, sameDigest, assertHexDigest } from "./hashing";
