export * from "./types";
export { FsArtifactStore } from "./fsStore";
export { namesOf } from "./names";
export { writeHashed, sameDigest, assertHexDigest } from "./hashing";
