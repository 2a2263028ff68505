// Google's official @google/genai SDK through baimo's /v1beta API, against
// upstreams of each kind: answers, streams, function calls, token counting
// and errors, with the usage each answer shows checked against the usage
// record.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiError, FunctionCallingConfigMode, GoogleGenAI } from '@google/genai';
import { apiKey, baseURL, requestID, usageRecord } from './helpers.js';
import { assertRecord, kinds, simArgs, skip } from './kinds.js';

function client(key = apiKey) {
  return new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: baseURL, timeout: 30_000, retryOptions: { attempts: 1 } } });
}

const weatherTool = {
  functionDeclarations: [
    {
      name: 'get_weather',
      description: 'The weather of a place',
      parameters: { type: 'OBJECT', properties: { query: { type: 'STRING' } }, required: ['query'] },
    },
  ],
};

const contents = [{ role: 'user', parts: [{ text: 'Tell me about the weather in three short sentences.' }] }];

function request(model, id, config = {}) {
  return {
    model,
    contents,
    config: {
      systemInstruction: 'You are a test.',
      maxOutputTokens: 64,
      tools: [weatherTool],
      httpOptions: { headers: { 'X-Request-Id': id } },
      ...config,
    },
  };
}

/** assertUsageMatches checks that the record holds the usage the client saw. */
function assertUsageMatches(rec, u) {
  assert.ok(u, 'the answer carries usageMetadata');
  assert.equal(rec.input_tokens, u.promptTokenCount + (u.toolUsePromptTokenCount ?? 0));
  assert.equal(rec.cached_input_tokens, u.cachedContentTokenCount ?? 0);
  assert.equal(rec.output_tokens, (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0));
  assert.equal(rec.reasoning_tokens, u.thoughtsTokenCount ?? 0);
}

const forceTool = { toolConfig: { functionCallingConfig: { mode: FunctionCallingConfigMode.ANY } } };

describe('google genai sdk', { skip }, () => {
  for (const k of kinds) {
    test(`${k.kind} upstream, not streamed`, async () => {
      const id = requestID();
      const r = await client().models.generateContent(request(k.model, id));
      assert.ok(r.text && r.text.trim().length > 0, `text: ${JSON.stringify(r)}`);
      assert.equal(r.candidates[0].finishReason, 'STOP');
      assert.ok(r.usageMetadata.promptTokenCount > 0);
      const rec = await usageRecord(id, { model: k.model });
      assertRecord(rec, k, { stream: false });
      assert.equal(rec.endpoint, 'generate_content');
      assertUsageMatches(rec, r.usageMetadata);
    });

    test(`${k.kind} upstream, streamed`, async () => {
      const id = requestID();
      const stream = await client().models.generateContentStream(request(k.model, id));
      let text = '';
      let last = null;
      let finish = null;
      for await (const chunk of stream) {
        text += chunk.text ?? '';
        if (chunk.usageMetadata) last = chunk.usageMetadata;
        finish = chunk.candidates?.[0]?.finishReason ?? finish;
      }
      assert.ok(text.trim().length > 0, 'streamed text');
      assert.equal(finish, 'STOP');
      const rec = await usageRecord(id, { model: k.model });
      assertRecord(rec, k, { stream: true });
      assertUsageMatches(rec, last);
    });

    test(`${k.kind} upstream, forced function call`, async () => {
      const id = requestID();
      const r = await client().models.generateContent(request(k.model, id, forceTool));
      if (k.callsTools) {
        const calls = r.functionCalls ?? [];
        assert.equal(calls.length, 1, `one function call: ${JSON.stringify(r.candidates)}`);
        assert.equal(calls[0].name, 'get_weather');
        assert.deepEqual(calls[0].args, simArgs);
      }
      const rec = await usageRecord(id, { model: k.model });
      assertRecord(rec, k, { stream: false });
      assertUsageMatches(rec, r.usageMetadata);
    });

    test(`${k.kind} upstream, forced function call, streamed`, async () => {
      const id = requestID();
      const stream = await client().models.generateContentStream(request(k.model, id, forceTool));
      const calls = [];
      let last = null;
      for await (const chunk of stream) {
        calls.push(...(chunk.functionCalls ?? []));
        if (chunk.usageMetadata) last = chunk.usageMetadata;
      }
      if (k.callsTools) {
        assert.equal(calls.length, 1, `one function call, got ${JSON.stringify(calls)}`);
        assert.equal(calls[0].name, 'get_weather');
        assert.deepEqual(calls[0].args, simArgs);
      }
      const rec = await usageRecord(id, { model: k.model });
      assertRecord(rec, k, { stream: true });
      assertUsageMatches(rec, last);
    });

    test(`${k.kind} upstream, a function response in the conversation`, async () => {
      const id = requestID();
      const r = await client().models.generateContent({
        ...request(k.model, id),
        contents: [
          { role: 'user', parts: [{ text: 'What is the weather?' }] },
          { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: simArgs } }] },
          { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { output: 'Sunny, 21 C.' } } }] },
        ],
      });
      assert.ok(r.text && r.text.length > 0);
      const rec = await usageRecord(id, { model: k.model });
      assertUsageMatches(rec, r.usageMetadata);
    });
  }

  test('countTokens', async () => {
    const r = await client().models.countTokens({ model: 'via-gemini', contents });
    assert.ok(Number.isInteger(r.totalTokens) && r.totalTokens > 5, JSON.stringify(r));
  });

  test('models.list: every served model in Gemini shape, a page at a time', async () => {
    // pageSize 1 makes the pager follow nextPageToken through every page.
    const names = [];
    const pager = await client().models.list({ config: { pageSize: 1 } });
    for await (const m of pager) {
      assert.ok(m.supportedActions?.includes('generateContent'), `generateContent supported: ${JSON.stringify(m)}`);
      names.push(m.name);
    }
    for (const want of ['sim-chat', ...kinds.map((k) => k.model)]) {
      assert.ok(names.includes(`models/${want}`), `models/${want} listed: ${names}`);
    }
    assert.equal(new Set(names).size, names.length, `no model listed twice: ${names}`);
    const one = await client().models.get({ model: 'via-gemini' });
    assert.equal(one.name, 'models/via-gemini');
  });

  test('a wrong key: 401 in Google error shape', async () => {
    await assert.rejects(client('sk-baimo-wrong').models.generateContent(request('via-gemini', requestID())), (err) => {
      assert.ok(err instanceof ApiError, `an ApiError, got ${err}`);
      assert.equal(err.status, 401);
      const body = JSON.parse(err.message);
      assert.equal(body.error.code, 401);
      assert.equal(body.error.status, 'UNAUTHENTICATED');
      return true;
    });
  });

  test('a feature the upstream lacks: 400 naming it', async () => {
    await assert.rejects(
      client().models.generateContent(request('via-anthropic', requestID(), { candidateCount: 2 })),
      (err) => {
        assert.ok(err instanceof ApiError, `an ApiError, got ${err}`);
        assert.equal(err.status, 400);
        assert.match(err.message, /candidateCount/);
        assert.match(err.message, /INVALID_ARGUMENT/);
        return true;
      },
    );
  });
});
