#!/usr/bin/env node
// The `modelgate` command. The TypeScript sources are compiled to dist/ by `npm run build`,
// which `npm ci` runs through the `prepare` script, so a fresh clone needs no extra step.
"use strict";
const path = require("node:path");
let main;
try {
  main = require(path.join(__dirname, "..", "dist", "src", "cli", "main.js")).main;
} catch (err) {
  if (err && err.code === "MODULE_NOT_FOUND") {
    process.stderr.write("modelgate: not built yet; run `npm ci` (or `npm run build`) first\n");
    process.exit(2);
  }
  throw err;
}
// A reader that stops early (`modelgate scan ... | head`) closes the pipe: stop quietly, as other
// command-line tools do, instead of dying on an unhandled EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err) => {
    if (err && err.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw err;
  });
}
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
