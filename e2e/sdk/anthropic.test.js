// The official @anthropic-ai/sdk through baimo's /v1/messages, against
// upstreams of each kind: answers, streams, tools, token counting and errors,
// with the usage each answer shows checked against the usage record.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { apiKey, baseURL, requestID, usageRecord } from './helpers.js';
import { assertRecord, kinds, simArgs, skip } from './kinds.js';

function client(key = apiKey) {
  return new Anthropic({ apiKey: key, baseURL, maxRetries: 0, timeout: 30_000 });
}

const weatherTool = {
  name: 'get_weather',
  description: 'The weather of a place',
  input_schema: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
};

const params = (model, extra = {}) => ({
  model,
  max_tokens: 64,
  system: 'You are a test.',
  messages: [{ role: 'user', content: 'Tell me about the weather in three short sentences.' }],
  tools: [weatherTool],
  ...extra,
});

/** assertUsageMatches checks that the record holds the usage the client saw. */
function assertUsageMatches(rec, u) {
  const input = u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0);
  assert.equal(rec.input_tokens, input, 'recorded input = input + cache read + cache write');
  assert.equal(rec.cached_input_tokens, u.cache_read_input_tokens ?? 0);
  assert.equal(rec.output_tokens, u.output_tokens);
}

describe('anthropic sdk', { skip }, () => {
  for (const k of kinds) {
    test(`${k.kind} upstream, not streamed`, async () => {
      const id = requestID();
      const { data, response } = await client()
        .messages.create(params(k.model), { headers: { 'X-Request-Id': id } })
        .withResponse();
      assert.equal(response.status, 200);
      assert.equal(data.type, 'message');
      assert.equal(data.role, 'assistant');
      assert.equal(data.model, 'sim-chat', 'the upstream model, as in a passthrough');
      assert.equal(data.content[0].type, 'text');
      assert.ok(data.content[0].text.trim().length > 0, 'non-empty text');
      assert.equal(data.stop_reason, 'end_turn');
      assert.ok(data.usage.input_tokens > 0 && data.usage.output_tokens > 0, JSON.stringify(data.usage));
      const rec = await usageRecord(id, { model: k.model });
      assertRecord(rec, k, { stream: false });
      assert.equal(rec.endpoint, 'messages');
      assertUsageMatches(rec, data.usage);
    });

    test(`${k.kind} upstream, streamed`, async () => {
      const id = requestID();
      const stream = client().messages.stream(params(k.model), { headers: { 'X-Request-Id': id } });
      const events = [];
      let text = '';
      for await (const ev of stream) {
        events.push(ev.type);
        if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
      }
      const msg = await stream.finalMessage();
      assert.equal(events[0], 'message_start');
      assert.equal(events.at(-1), 'message_stop');
      assert.ok(events.includes('message_delta'), 'a message_delta carries the stop reason and usage');
      assert.ok(text.trim().length > 0, 'streamed text');
      assert.equal(msg.stop_reason, 'end_turn');
      const rec = await usageRecord(id, { model: k.model });
      assertRecord(rec, k, { stream: true });
      assertUsageMatches(rec, msg.usage);
    });

    test(`${k.kind} upstream, forced tool`, async () => {
      const id = requestID();
      const { data } = await client()
        .messages.create(params(k.model, { tool_choice: { type: 'tool', name: 'get_weather' } }), {
          headers: { 'X-Request-Id': id },
        })
        .withResponse();
      if (k.callsTools) {
        const call = data.content.find((c) => c.type === 'tool_use');
        assert.ok(call, `a tool_use block: ${JSON.stringify(data.content)}`);
        assert.equal(call.name, 'get_weather');
        assert.deepEqual(call.input, simArgs);
        assert.ok(call.id, 'the call has an id');
        assert.equal(data.stop_reason, 'tool_use');
      }
      const rec = await usageRecord(id, { model: k.model });
      assertRecord(rec, k, { stream: false });
      assertUsageMatches(rec, data.usage);
    });

    test(`${k.kind} upstream, forced tool, streamed`, async () => {
      const id = requestID();
      const stream = client().messages.stream(params(k.model, { tool_choice: { type: 'tool', name: 'get_weather' } }), {
        headers: { 'X-Request-Id': id },
      });
      const msg = await stream.finalMessage();
      if (k.callsTools) {
        const call = msg.content.find((c) => c.type === 'tool_use');
        assert.ok(call, `a tool_use block: ${JSON.stringify(msg.content)}`);
        assert.equal(call.name, 'get_weather');
        assert.deepEqual(call.input, simArgs);
        assert.equal(msg.stop_reason, 'tool_use');
      }
      const rec = await usageRecord(id, { model: k.model });
      assertRecord(rec, k, { stream: true });
      assertUsageMatches(rec, msg.usage);
    });

    test(`${k.kind} upstream, a tool result in the conversation`, async () => {
      const id = requestID();
      const { data } = await client()
        .messages.create(
          params(k.model, {
            messages: [
              { role: 'user', content: 'What is the weather?' },
              { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: simArgs }] },
              { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'Sunny, 21 C.' }] },
            ],
          }),
          { headers: { 'X-Request-Id': id } },
        )
        .withResponse();
      assert.equal(data.content[0].type, 'text');
      const rec = await usageRecord(id, { model: k.model });
      assertUsageMatches(rec, data.usage);
    });
  }

  test('count_tokens', async () => {
    const r = await client().messages.countTokens({
      model: 'via-anthropic',
      system: 'You are a test.',
      messages: [{ role: 'user', content: 'Tell me about the weather in three short sentences.' }],
    });
    assert.ok(Number.isInteger(r.input_tokens) && r.input_tokens > 5, JSON.stringify(r));
  });

  test('a wrong key: 401 in Anthropic error shape', async () => {
    await assert.rejects(client('sk-baimo-wrong').messages.create(params('via-anthropic')), (err) => {
      assert.ok(err instanceof Anthropic.AuthenticationError, `an AuthenticationError, got ${err}`);
      assert.equal(err.status, 401);
      assert.equal(err.error?.type, 'error');
      assert.equal(err.error?.error?.type, 'authentication_error');
      return true;
    });
  });

  test('models.list: every served model in Anthropic shape, a page at a time', async () => {
    // limit 1 makes the SDK follow last_id with after_id through every page.
    const ids = [];
    for await (const m of client().models.list({ limit: 1 })) {
      assert.equal(m.type, 'model');
      assert.equal(typeof m.display_name, 'string');
      assert.ok(!Number.isNaN(Date.parse(m.created_at)), `created_at is a date: ${JSON.stringify(m)}`);
      ids.push(m.id);
    }
    for (const want of ['sim-chat', ...kinds.map((k) => k.model)]) {
      assert.ok(ids.includes(want), `${want} listed: ${ids}`);
    }
    assert.equal(new Set(ids).size, ids.length, `no model listed twice: ${ids}`);
    const one = await client().models.retrieve('via-anthropic');
    assert.equal(one.id, 'via-anthropic');
    assert.equal(one.type, 'model');
  });

  test('an unknown model: 404 not_found_error', async () => {
    await assert.rejects(client().messages.create(params('no-such-model')), (err) => {
      assert.ok(err instanceof Anthropic.NotFoundError, `a NotFoundError, got ${err}`);
      assert.equal(err.error?.error?.type, 'not_found_error');
      return true;
    });
  });

  test('a feature the upstream lacks: 400 naming it', async () => {
    // Anthropic's server tools (web search) have no Gemini equivalent.
    await assert.rejects(
      client().messages.create(params('via-gemini', { tools: [{ type: 'web_search_20250305', name: 'web_search' }] })),
      (err) => {
        assert.ok(err instanceof Anthropic.BadRequestError, `a BadRequestError, got ${err}`);
        assert.equal(err.error?.error?.type, 'invalid_request_error');
        assert.match(err.error?.error?.message ?? '', /web_search/);
        return true;
      },
    );
  });
});
