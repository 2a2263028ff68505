// Shared by the cross-format tests: e2e/e2e_test.go configures one channel of
// each kind (openai, anthropic, gemini) in front of `baimo sim`, serving the
// public models via-openai, via-anthropic and via-gemini (all sim-chat
// upstream), and sets BAIMO_FORMATS=1.
import assert from 'node:assert/strict';

/** formats is true when the gateway has the channels of every kind. */
export const formats = process.env.BAIMO_FORMATS === '1';
export const skip = formats ? false : 'BAIMO_FORMATS is not set: the gateway has no channels of each kind (run through e2e/e2e_test.go)';

/** kinds are the upstream kinds, each with its public model and channel. */
export const kinds = ['openai', 'anthropic', 'gemini'].map((kind) => ({
  kind,
  model: `via-${kind}`,
  channel: `up-${kind}`,
  // The simulator calls a forced tool only in the Anthropic and Gemini formats.
  callsTools: kind !== 'openai',
}));

/** The arguments every simulated tool call carries. */
export const simArgs = { query: 'weather' };

/** assertRecord checks the fields every successful cross-format record has. */
export function assertRecord(rec, k, { stream }) {
  assert.equal(rec.model, k.model);
  assert.equal(rec.upstream_model, 'sim-chat');
  assert.equal(rec.channel, k.channel);
  assert.equal(rec.stream, stream);
  assert.equal(rec.status, 200);
  assert.equal(rec.complete, true);
  assert.ok(!rec.error_class, `no error class, got ${JSON.stringify(rec.error_class)}`);
  assert.equal(rec.source, 'vendor', 'usage reported by the upstream');
  assert.ok(rec.input_tokens > 0 && rec.output_tokens > 0, `tokens recorded: ${JSON.stringify(rec)}`);
}
