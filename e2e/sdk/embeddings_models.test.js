// Embeddings and the model list through baimo with the official openai SDK.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { client, createKey, requestID, returnedID, usageRecord } from './helpers.js';

/** assertVectors checks an embeddings response for inputs. */
function assertVectors(data, inputs) {
  assert.equal(data.object, 'list');
  assert.equal(data.data.length, inputs.length);
  const dims = data.data[0].embedding.length;
  assert.ok(dims > 0, 'vectors have dimensions');
  data.data.forEach((e, i) => {
    assert.equal(e.object, 'embedding');
    assert.equal(e.index, i);
    assert.ok(Array.isArray(e.embedding), `vector ${i} is an array`);
    assert.equal(e.embedding.length, dims, `vector ${i} has ${dims} dimensions`);
    assert.ok(e.embedding.every(Number.isFinite), `vector ${i} holds finite numbers`);
    assert.ok(e.embedding.some((x) => x !== 0), `vector ${i} is not all zeros`);
  });
  assert.ok(data.usage.prompt_tokens > 0, 'prompt tokens counted');
  return dims;
}

test('embeddings, floats: vectors, usage and the record agree', async () => {
  const id = requestID();
  const inputs = ['the quick brown fox', 'jumps over the lazy dog'];
  const { data, response } = await client()
    .embeddings.create({ model: 'sim-embed', input: inputs, encoding_format: 'float' }, { headers: { 'X-Request-Id': id } })
    .withResponse();
  const rid = returnedID(response, id);
  assertVectors(data, inputs);
  const rec = await usageRecord(rid, { model: 'sim-embed' });
  assert.equal(rec.model, 'sim-embed');
  assert.equal(rec.status, 200);
  assert.equal(rec.stream, false);
  assert.equal(rec.complete, true);
  assert.equal(rec.input_tokens, data.usage.prompt_tokens);
  assert.equal(rec.output_tokens, 0);
});

test('embeddings, the SDK default (base64 on the wire, decoded by the SDK)', async () => {
  // The SDK asks for encoding_format "base64" unless told otherwise and decodes
  // the answer as little-endian float32; an upstream that ignores the field and
  // sends a float array makes it decode garbage. The simulated upstream is
  // deterministic, so both encodings must give the same vector.
  const inputs = ['one input'];
  const floats = await client().embeddings.create({ model: 'sim-embed', input: inputs, encoding_format: 'float' });
  const b64 = await client().embeddings.create({ model: 'sim-embed', input: inputs });
  const want = floats.data[0].embedding;
  const got = b64.data[0].embedding;
  const hint = 'does the upstream honour encoding_format "base64"?';
  assert.equal(got.length, want.length, `base64 answer has ${got.length} dimensions, float answer ${want.length}; ${hint}`);
  want.forEach((w, i) => {
    assert.ok(Math.abs(got[i] - w) <= 1e-6 * Math.max(1, Math.abs(w)), `dimension ${i}: base64 ${got[i]}, float ${w}; ${hint}`);
  });
  assertVectors(b64, inputs);
});

test('models list: every model for an unrestricted key', async () => {
  const ids = [];
  for await (const m of client().models.list()) {
    assert.equal(m.object, 'model');
    ids.push(m.id);
  }
  assert.ok(ids.includes('sim-chat'), `sim-chat listed: ${ids}`);
  assert.ok(ids.includes('sim-embed'), `sim-embed listed: ${ids}`);
  assert.equal(new Set(ids).size, ids.length, `no model listed twice: ${ids}`);
});

let chatOnly;
before(async () => {
  chatOnly = await createKey('e2e-models-chat-only', ['sim-chat']);
});

test('models list: only the models the key may use', async () => {
  const ids = [];
  for await (const m of client(chatOnly.key).models.list()) ids.push(m.id);
  assert.deepEqual(ids, ['sim-chat']);
});
