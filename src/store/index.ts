export * from "./types";
export { FsArtifactStore } from "./fsStore";
export { namesOf } from "./names";
export { writeHashed } from "./hashing";
export { mergeApproval, recordPolicyAcceptance, sameApproval } from "./record";
