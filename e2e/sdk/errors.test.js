// Each error the gateway returns, seen through the official openai SDK: the
// SDK's error class, the HTTP status and OpenAI's error shape.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import OpenAI from 'openai';
import { assertErrorShape, baseURL, chatMessages, client, createKey, requestID, returnedID, usageRecord } from './helpers.js';

let chatOnly;
before(async () => {
  chatOnly = await createKey('e2e-errors-chat-only', ['sim-chat']);
});

/** expectAPIError runs fn, which must reject with an SDK APIError, and returns that error. */
async function expectAPIError(fn, what) {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof OpenAI.APIError, `${what}: an APIError, got ${err}`);
    assertErrorShape(err.error, what);
    return err;
  }
  assert.fail(`${what}: the request succeeded`);
}

const chat = (c, body, opts) => c.chat.completions.create({ model: 'sim-chat', messages: chatMessages, ...body }, opts);

test('bad key: 401 AuthenticationError, code invalid_api_key', async () => {
  const err = await expectAPIError(() => chat(client('sk-baimo-not-a-real-key-000000000000')), 'bad key');
  assert.ok(err instanceof OpenAI.AuthenticationError, `AuthenticationError, got ${err.constructor.name}`);
  assert.equal(err.status, 401);
  assert.equal(err.code, 'invalid_api_key');
});

test('missing key: 401 in OpenAI shape', async () => {
  const res = await fetch(`${baseURL}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'sim-chat', messages: chatMessages }),
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(res.status, 401);
  const body = await res.json();
  assertErrorShape(body.error, 'missing key');
  assert.equal(body.error.code, 'invalid_api_key');
});

test('model not allowed for the key: 403 PermissionDeniedError, code model_not_allowed', async () => {
  const err = await expectAPIError(
    () => client(chatOnly.key).embeddings.create({ model: 'sim-embed', input: 'x', encoding_format: 'float' }),
    'model not allowed',
  );
  assert.ok(err instanceof OpenAI.PermissionDeniedError, `PermissionDeniedError, got ${err.constructor.name}`);
  assert.equal(err.status, 403);
  assert.equal(err.code, 'model_not_allowed');
});

test('unknown model: 404 NotFoundError, code model_not_found', async () => {
  const err = await expectAPIError(() => chat(client(), { model: 'no-such-model' }), 'unknown model');
  assert.ok(err instanceof OpenAI.NotFoundError, `NotFoundError, got ${err.constructor.name}`);
  assert.equal(err.status, 404);
  assert.equal(err.code, 'model_not_found');
});

test('malformed JSON: 400 invalid_request_error', async () => {
  const res = await fetch(`${baseURL}/v1/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${client().apiKey}`, 'Content-Type': 'application/json' },
    body: '{"model": "sim-chat", "messages": [',
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(res.status, 400);
  const body = await res.json();
  assertErrorShape(body.error, 'malformed JSON');
  assert.equal(body.error.type, 'invalid_request_error');
});

for (const [field, body] of [
  ['model', { model: 42 }],
  ['stream', { stream: 'yes' }],
]) {
  test(`invalid field ${field}: 400 BadRequestError naming the field`, async () => {
    const err = await expectAPIError(() => chat(client(), body), `invalid ${field}`);
    assert.ok(err instanceof OpenAI.BadRequestError, `BadRequestError, got ${err.constructor.name}`);
    assert.equal(err.status, 400);
    assert.equal(err.type, 'invalid_request_error');
    assert.equal(err.param, field);
  });
}

test('upstream 500: 502 (or the 500 passed on), recorded with its status', async () => {
  const id = requestID();
  const err = await expectAPIError(
    () => chat(client(), { sim: { status: 500 } }, { headers: { 'X-Request-Id': id } }),
    'upstream 500',
  );
  assert.ok([500, 502].includes(err.status), `status 502 or 500, got ${err.status}`);
  assert.ok(err instanceof OpenAI.InternalServerError, `InternalServerError, got ${err.constructor.name}`);
  const rec = await usageRecord(returnedID(err, id), { model: 'sim-chat' });
  assert.equal(rec.status, err.status);
  assert.ok(rec.error_class, 'a failed request records an error class');
});

test('upstream 429: passed on as 429 RateLimitError', async () => {
  const id = requestID();
  const err = await expectAPIError(
    () => chat(client(), { sim: { status: 429 } }, { headers: { 'X-Request-Id': id } }),
    'upstream 429',
  );
  assert.ok(err instanceof OpenAI.RateLimitError, `RateLimitError, got ${err.constructor.name}`);
  assert.equal(err.status, 429);
  const rec = await usageRecord(returnedID(err, id), { model: 'sim-chat' });
  assert.equal(rec.status, 429);
});

test('upstream 500 on a stream: an error before any chunk', async () => {
  const err = await expectAPIError(
    () => chat(client(), { stream: true, sim: { status: 500 } }),
    'upstream 500, streamed',
  );
  assert.ok([500, 502].includes(err.status), `status 502 or 500, got ${err.status}`);
});

test('body over the limit: 413 in OpenAI shape', async () => {
  // 16 MiB, over the default limit (limits.max_body_bytes, 8 MiB).
  const content = 'x'.repeat(16 << 20);
  const err = await expectAPIError(
    () => chat(client(), { messages: [{ role: 'user', content }] }),
    'body over the limit',
  );
  assert.equal(err.status, 413);
  assert.equal(err.type, 'invalid_request_error');
});
