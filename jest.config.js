/** @type {import('jest').Config} */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  // Transpile only (tsconfig.jest.json sets isolatedModules): a type-checking ts-jest keeps a
  // TypeScript program of the whole project in every worker, ~100 MB more heap each, and freeing a
  // heap that size at exit took the workers past jest's 500 ms exit deadline on a loaded machine
  // ("A worker process has failed to exit gracefully"; no handle was left open). Types are
  // checked by `npm run typecheck` (tsconfig.json covers test/).
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.jest.json" }] },
  testTimeout: 30000,
  maxWorkers: 2,
  // toFailWithCode and the other shared matchers (test/support/matchers.ts).
  setupFilesAfterEnv: ["<rootDir>/test/support/matchers.ts"],
};
