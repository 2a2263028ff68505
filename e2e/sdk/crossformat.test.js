// The official openai SDK against Anthropic- and Gemini-kind upstreams (and
// an OpenAI-kind one reached by the same path): chat, streams and tool calls
// translated, the usage each answer shows checked against the usage record.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import OpenAI from 'openai';
import { chatMessages, client, requestID, usageRecord } from './helpers.js';
import { assertRecord, kinds, simArgs, skip } from './kinds.js';

const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather of a place',
      parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
    },
  },
];

function assertUsageMatches(rec, u) {
  assert.ok(u, 'the answer carries usage');
  assert.equal(rec.input_tokens, u.prompt_tokens);
  assert.equal(rec.cached_input_tokens, u.prompt_tokens_details?.cached_tokens ?? 0);
  assert.equal(rec.output_tokens, u.completion_tokens);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
}

describe('openai sdk to every upstream kind', { skip }, () => {
  for (const k of kinds) {
    test(`${k.kind} upstream, not streamed, with tools`, async () => {
      const id = requestID();
      const { data } = await client()
        .chat.completions.create({ model: k.model, messages: chatMessages, tools, max_tokens: 64 }, { headers: { 'X-Request-Id': id } })
        .withResponse();
      assert.equal(data.object, 'chat.completion');
      assert.ok(data.choices[0].message.content.trim().length > 0);
      assert.equal(data.choices[0].finish_reason, 'stop');
      const rec = await usageRecord(id, { model: k.model });
      assertRecord(rec, k, { stream: false });
      assertUsageMatches(rec, data.usage);
    });

    test(`${k.kind} upstream, streamed with include_usage`, async () => {
      const id = requestID();
      const { data: stream } = await client()
        .chat.completions.create(
          { model: k.model, messages: chatMessages, tools, stream: true, stream_options: { include_usage: true } },
          { headers: { 'X-Request-Id': id } },
        )
        .withResponse();
      let text = '';
      let finish = null;
      const usages = [];
      for await (const chunk of stream) {
        if (chunk.usage) usages.push(chunk.usage);
        for (const c of chunk.choices) {
          text += c.delta?.content ?? '';
          finish = c.finish_reason ?? finish;
        }
      }
      assert.ok(text.trim().length > 0);
      assert.equal(finish, 'stop');
      assert.equal(usages.length, 1, 'one chunk carries usage');
      const rec = await usageRecord(id, { model: k.model });
      assertRecord(rec, k, { stream: true });
      assertUsageMatches(rec, usages[0]);
    });

    test(`${k.kind} upstream, tool_choice required`, async () => {
      const id = requestID();
      const { data } = await client()
        .chat.completions.create(
          { model: k.model, messages: chatMessages, tools, tool_choice: 'required' },
          { headers: { 'X-Request-Id': id } },
        )
        .withResponse();
      if (k.callsTools) {
        const calls = data.choices[0].message.tool_calls ?? [];
        assert.equal(calls.length, 1, JSON.stringify(data.choices[0]));
        assert.equal(calls[0].function.name, 'get_weather');
        assert.deepEqual(JSON.parse(calls[0].function.arguments), simArgs);
        assert.equal(data.choices[0].finish_reason, 'tool_calls');
      }
      const rec = await usageRecord(id, { model: k.model });
      assertUsageMatches(rec, data.usage);
    });
  }

  test('a feature the upstream lacks: 400 naming it', async () => {
    await assert.rejects(
      client().chat.completions.create({ model: 'via-anthropic', messages: chatMessages, seed: 7 }),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `a BadRequestError, got ${err}`);
        assert.match(err.message, /seed/);
        return true;
      },
    );
  });
});
