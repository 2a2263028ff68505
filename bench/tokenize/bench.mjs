// Measures the npm tokenizers on the same corpus as the Go benchmarks:
// `tiktoken` (OpenAI's Rust tiktoken compiled to WebAssembly) and
// `js-tiktoken` (pure JavaScript), both encoding ordinary text. Run by run.sh;
// the packages come from e2e/tokenize (npm ci there first).
//
// Usage: node bench.mjs CORPUS [SECONDS_PER_CASE]
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "..", "e2e", "tokenize", "package.json"));
const { get_encoding } = require("tiktoken");
const { Tiktoken } = require("js-tiktoken/lite");

const text = readFileSync(process.argv[2], "utf8");
const bytes = Buffer.byteLength(text, "utf8");
const seconds = Number(process.argv[3] ?? 3);

function measure(name, fn) {
  const n = fn(); // warm up (and JIT)
  let runs = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < seconds * 1e9 || runs < 2) {
    fn();
    runs++;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  const perRun = elapsed / runs;
  const mbps = bytes / (1 << 20) / (perRun / 1e9);
  console.log(JSON.stringify({ name, tokens: n, runs, ms_per_run: +(perRun / 1e6).toFixed(2), mb_per_s: +mbps.toFixed(2) }));
}

for (const enc of ["o200k_base", "cl100k_base"]) {
  const wasm = get_encoding(enc);
  measure(`tiktoken-wasm/${enc}`, () => wasm.encode_ordinary(text).length);
  wasm.free();
  const ranks = require(`js-tiktoken/ranks/${enc}`);
  const js = new Tiktoken(ranks.default ?? ranks);
  measure(`js-tiktoken/${enc}`, () => js.encode(text, [], []).length);
}
