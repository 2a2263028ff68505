// The official openai SDK's Responses API (client.responses) against baimo:
// non-streamed and streamed answers with their event types, a conversation
// carried by previous_response_id on Anthropic- and Gemini-kind channels
// (the gateway stores the turns and replays them upstream), background
// responses polled to completion and cancelled, retrieve, delete,
// input_items, function tools and structured output; each turn's usage
// record, its price and the tenant's statement and balance.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import OpenAI from 'openai';
import {
  assertLinesPriced,
  balance,
  baseURL,
  client,
  nanos,
  prepaidTenant,
  requestID,
  statement,
  usageRecord,
} from './helpers.js';
import { skip } from './kinds.js';

// sim-chat's price in catalog/sim.yaml: CNY per million tokens.
const chatPrices = { input: ['2', 1_000_000], output: ['8', 1_000_000] };

const tools = [
  {
    type: 'function',
    name: 'get_weather',
    description: 'The weather of a place',
    parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
    strict: false,
  },
];

/** create sends one response request with a fresh request id; it returns the response and the id. */
async function create(c, body) {
  const id = requestID();
  const { data } = await c.responses.create(body, { headers: { 'X-Request-Id': id } }).withResponse();
  return { data, id };
}

/** assertTurnRecord checks a Responses record against the answer's usage and the catalog price. */
function assertTurnRecord(rec, data, { model, channel, keyID, stream = false }) {
  assert.equal(rec.endpoint, 'responses');
  assert.equal(rec.model, model);
  assert.equal(rec.channel, channel);
  assert.equal(rec.upstream_model, 'sim-chat');
  assert.equal(rec.key_id, keyID);
  assert.equal(rec.stream, stream);
  assert.equal(rec.status, 200);
  assert.equal(rec.complete, true);
  assert.equal(rec.source, 'vendor');
  assert.equal(rec.input_tokens, data.usage.input_tokens, 'the record bills the input the answer reports');
  assert.equal(rec.output_tokens, data.usage.output_tokens);
  assert.equal(rec.cached_input_tokens, data.usage.input_tokens_details?.cached_tokens ?? 0);
  assert.equal(data.usage.total_tokens, data.usage.input_tokens + data.usage.output_tokens);
  return assertLinesPriced(rec, chatPrices, { input: rec.input_tokens - rec.cached_input_tokens, output: rec.output_tokens });
}

describe('responses API through the openai sdk', { skip }, () => {
  test('not streamed, on an Anthropic-kind channel, with instructions', async () => {
    const t = await prepaidTenant('resp-plain');
    const c = client(t.key);
    const { data, id } = await create(c, {
      model: 'via-anthropic',
      instructions: 'Answer briefly.',
      input: 'Tell me about the weather in three short sentences.',
    });
    assert.equal(data.object, 'response');
    assert.match(data.id, /^resp_/);
    assert.equal(data.status, 'completed');
    assert.equal(data.instructions, 'Answer briefly.');
    assert.ok(data.output_text.trim().length > 0, 'output_text is the text of the answer');
    assert.equal(data.output[0].type, 'message');
    assert.equal(data.output[0].role, 'assistant');
    const rec = await usageRecord(id, { keyID: t.keyID });
    assertTurnRecord(rec, data, { model: 'via-anthropic', channel: 'up-anthropic', keyID: t.keyID });

    const got = await c.responses.retrieve(data.id);
    assert.equal(got.id, data.id);
    assert.equal(got.status, 'completed');
    assert.equal(got.output_text, data.output_text);
  });

  test('streamed, with the event types in order and the text of the deltas', async () => {
    const t = await prepaidTenant('resp-stream');
    const c = client(t.key);
    const id = requestID();
    const { data: stream } = await c.responses
      .create({ model: 'via-gemini', input: 'Tell me about the weather.', stream: true }, { headers: { 'X-Request-Id': id } })
      .withResponse();
    const types = [];
    let text = '';
    let last = -1;
    let completed = null;
    let doneText = null;
    for await (const ev of stream) {
      types.push(ev.type);
      assert.ok(ev.sequence_number > last, `sequence numbers rise: ${ev.sequence_number} after ${last}`);
      last = ev.sequence_number;
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.output_text.done') doneText = ev.text;
      if (ev.type === 'response.completed') completed = ev.response;
    }
    assert.equal(types[0], 'response.created');
    assert.equal(types.at(-1), 'response.completed');
    const order = [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ];
    let at = 0;
    for (const want of order) {
      const i = types.indexOf(want, at);
      assert.ok(i >= at, `${want} after the events before it: ${types.join(', ')}`);
      at = i;
    }
    assert.ok(types.filter((x) => x === 'response.output_text.delta').length > 1, 'the text comes in several deltas');
    assert.ok(text.trim().length > 0);
    assert.equal(doneText, text, 'output_text.done holds the deltas joined');
    assert.ok(completed, 'response.completed carries the response');
    assert.equal(completed.status, 'completed');
    assert.equal(completed.output[0].content[0].text, text);
    const rec = await usageRecord(id, { keyID: t.keyID });
    assertTurnRecord(rec, completed, { model: 'via-gemini', channel: 'up-gemini', keyID: t.keyID, stream: true });

    // A streamed response is stored like any other.
    const got = await c.responses.retrieve(completed.id);
    assert.equal(got.output_text, text);
  });

  for (const kind of ['anthropic', 'gemini']) {
    test(`a conversation by previous_response_id on a ${kind}-kind channel, each turn billed for its replayed input`, async () => {
      const t = await prepaidTenant(`resp-conv-${kind}`);
      const c = client(t.key);
      const model = `via-${kind}`;
      const turns = [];
      let prev = null;
      for (const say of ['My name is Ada. Remember it.', 'What is my name?', 'Say it once more, in capitals.']) {
        const body = { model, input: say, ...(prev ? { previous_response_id: prev } : {}) };
        const { data, id } = await create(c, body);
        assert.equal(data.status, 'completed', JSON.stringify(data));
        assert.equal(data.previous_response_id, prev);
        const rec = await usageRecord(id, { keyID: t.keyID });
        const cost = assertTurnRecord(rec, data, { model, channel: `up-${kind}`, keyID: t.keyID });
        turns.push({ data, rec, cost });
        prev = data.id;
      }
      // Each follow-up sends the whole conversation upstream: its input is
      // at least the previous turn's input and output plus the new words.
      for (let i = 1; i < turns.length; i++) {
        const before = turns[i - 1].rec;
        const now = turns[i].rec;
        assert.ok(
          now.input_tokens > before.input_tokens + before.output_tokens,
          `turn ${i + 1} bills ${now.input_tokens} input tokens, more than turn ${i}'s ${before.input_tokens} in and ${before.output_tokens} out it replays`,
        );
      }
      // Each turn's input items are the input it was sent with, as OpenAI
      // lists them; the replayed turns belong to the responses before it.
      for (const [i, say] of ['My name is Ada. Remember it.', 'What is my name?', 'Say it once more, in capitals.'].entries()) {
        const items = [];
        for await (const it of c.responses.inputItems.list(turns[i].data.id)) items.push(it);
        assert.equal(items.length, 1, JSON.stringify(items));
        assert.equal(items[0].type, 'message');
        assert.equal(items[0].role, 'user');
        assert.deepEqual(items[0].content, [{ type: 'input_text', text: say }], 'content as OpenAI lists it: parts');
      }

      // The tenant's statement and balance show exactly the three turns.
      const total = turns.reduce((s, x) => s + x.cost, 0n);
      const st = await statement(t.tenant);
      assert.equal(BigInt(st.exact_total_nanos), total, `statement total: ${JSON.stringify(st)}`);
      const line = st.lines.find((l) => l.model === model);
      assert.ok(line, `a statement line for ${model}: ${JSON.stringify(st)}`);
      assert.equal(line.requests, 3);
      const kinds = Object.fromEntries(line.kinds.map((k) => [k.kind, k.quantity]));
      assert.equal(kinds.input, turns.reduce((s, x) => s + x.rec.input_tokens, 0));
      assert.equal(kinds.output, turns.reduce((s, x) => s + x.rec.output_tokens, 0));
      const bal = await balance(t.tenant);
      assert.equal(nanos(bal.posted), nanos('100') - total, `balance after the conversation: ${JSON.stringify(bal)}`);
    });
  }

  test('a follow-up on another model is a 400 naming previous_response_id', async () => {
    const t = await prepaidTenant('resp-other');
    const c = client(t.key);
    const { data } = await create(c, { model: 'via-anthropic', input: 'Hello.' });
    await assert.rejects(
      c.responses.create({ model: 'via-gemini', input: 'Again.', previous_response_id: data.id }),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `a 400, got ${err}`);
        assert.equal(err.param, 'previous_response_id');
        return true;
      },
    );
  });

  test('background: queued at once, polled until completed, billed like any request', async () => {
    const t = await prepaidTenant('resp-bg');
    const c = client(t.key);
    const { data, id } = await create(c, { model: 'via-anthropic', input: 'Write a short note.', background: true });
    assert.equal(data.background, true);
    assert.ok(['queued', 'in_progress', 'completed'].includes(data.status), data.status);
    let got = data;
    const deadline = Date.now() + 20_000;
    while (got.status === 'queued' || got.status === 'in_progress') {
      assert.ok(Date.now() < deadline, `still ${got.status} after 20 s`);
      await new Promise((r) => setTimeout(r, 100));
      got = await c.responses.retrieve(data.id);
    }
    assert.equal(got.status, 'completed', JSON.stringify(got));
    assert.ok(got.output_text.trim().length > 0);
    const rec = await usageRecord(id, { keyID: t.keyID });
    const cost = assertTurnRecord(rec, got, { model: 'via-anthropic', channel: 'up-anthropic', keyID: t.keyID });
    const st = await statement(t.tenant);
    assert.equal(BigInt(st.exact_total_nanos), cost);
  });

  test('background on a slow upstream, cancelled while it runs', { skip: process.env.BAIMO_SLOW ? false : 'no slow channel' }, async () => {
    const t = await prepaidTenant('resp-cancel');
    const c = client(t.key);
    const { data, id } = await create(c, { model: 'via-slow', input: 'Write a long essay.', background: true });
    assert.ok(['queued', 'in_progress'].includes(data.status), `the slow upstream has not answered yet: ${data.status}`);
    const cancelled = await c.responses.cancel(data.id);
    assert.equal(cancelled.id, data.id);
    let got = cancelled;
    const deadline = Date.now() + 20_000;
    while (got.status === 'queued' || got.status === 'in_progress') {
      assert.ok(Date.now() < deadline, `still ${got.status} 20 s after cancel`);
      await new Promise((r) => setTimeout(r, 100));
      got = await c.responses.retrieve(data.id);
    }
    assert.equal(got.status, 'cancelled', JSON.stringify(got));
    // The hold is released: what the tenant paid is what its record says.
    const rec = await usageRecord(id, { keyID: t.keyID });
    assert.equal(rec.endpoint, 'responses');
    const bal = await balance(t.tenant);
    assert.equal(bal.pending, '0', `no hold left after the cancel: ${JSON.stringify(bal)}`);
    assert.equal(nanos(bal.posted), nanos('100') - nanos(rec.cost ?? '0'), JSON.stringify({ bal, rec }));
  });

  test('delete: the response is gone, and a follow-up on it is refused', async () => {
    const t = await prepaidTenant('resp-del');
    const c = client(t.key);
    const { data } = await create(c, { model: 'via-gemini', input: 'Hello.' });
    const del = await c.responses.delete(data.id);
    // The SDK passes the body through: OpenAI's {id, object, deleted}.
    assert.equal(del?.id, data.id, JSON.stringify(del));
    assert.equal(del.deleted, true);
    await assert.rejects(c.responses.retrieve(data.id), OpenAI.NotFoundError);
    await assert.rejects(c.responses.delete(data.id), OpenAI.NotFoundError);
    await assert.rejects(c.responses.create({ model: 'via-gemini', input: 'Again.', previous_response_id: data.id }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError || err instanceof OpenAI.NotFoundError, `a 400 or 404, got ${err}`);
      return true;
    });
  });

  test('another tenant cannot see a response', async () => {
    const a = await prepaidTenant('resp-a');
    const b = await prepaidTenant('resp-b');
    const { data } = await create(client(a.key), { model: 'via-anthropic', input: 'Private.' });
    await assert.rejects(client(b.key).responses.retrieve(data.id), OpenAI.NotFoundError);
    await assert.rejects(client(b.key).responses.inputItems.list(data.id), OpenAI.NotFoundError);
    await assert.rejects(client(b.key).responses.cancel(data.id), OpenAI.NotFoundError);
  });

  for (const kind of ['anthropic', 'gemini']) {
    test(`function tools on a ${kind}-kind channel, and the tool's output sent back`, async () => {
      const t = await prepaidTenant(`resp-tools-${kind}`);
      const c = client(t.key);
      const model = `via-${kind}`;
      const { data } = await create(c, { model, input: 'What is the weather?', tools, tool_choice: 'required' });
      const call = data.output.find((x) => x.type === 'function_call');
      assert.ok(call, `a function_call item: ${JSON.stringify(data.output)}`);
      assert.equal(call.name, 'get_weather');
      assert.deepEqual(JSON.parse(call.arguments), { query: 'weather' });
      assert.ok(call.call_id);
      const { data: next, id } = await create(c, {
        model,
        previous_response_id: data.id,
        input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"sky":"clear"}' }],
        tools,
      });
      assert.equal(next.status, 'completed', JSON.stringify(next));
      assert.ok(next.output_text.trim().length > 0);
      const rec = await usageRecord(id, { keyID: t.keyID });
      assertTurnRecord(rec, next, { model, channel: `up-${kind}`, keyID: t.keyID });
    });
  }

  test('structured output: text.format json_schema is accepted and echoed', async () => {
    const c = client();
    const format = {
      type: 'json_schema',
      name: 'weather',
      schema: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'], additionalProperties: false },
      strict: true,
    };
    for (const model of ['sim-chat', 'via-gemini']) {
      const { data } = await create(c, { model, input: 'The weather, as JSON.', text: { format } });
      assert.equal(data.status, 'completed', `${model}: ${JSON.stringify(data)}`);
      assert.equal(data.text.format.type, 'json_schema', model);
      assert.equal(data.text.format.name, 'weather', model);
      assert.equal(data.text.format.strict, true, model);
    }
    // Anthropic's Messages API has no response format: a clear 400 naming it.
    await assert.rejects(c.responses.create({ model: 'via-anthropic', input: 'x', text: { format } }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `a 400, got ${err}`);
      assert.equal(err.code, 'unsupported_feature');
      assert.match(err.message, /structured output/);
      return true;
    });
  });

  test('reasoning effort is accepted on every kind and echoed', async () => {
    const c = client();
    for (const model of ['sim-chat', 'via-anthropic', 'via-gemini']) {
      const { data } = await create(c, { model, input: 'Think, then answer.', reasoning: { effort: 'low' } });
      assert.equal(data.status, 'completed', `${model}: ${JSON.stringify(data)}`);
      assert.equal(data.reasoning?.effort, 'low', model);
      assert.equal(typeof data.usage.output_tokens_details?.reasoning_tokens, 'number', `${model}: reasoning tokens reported`);
    }
  });

  test('errors come in the OpenAI shape', async () => {
    const c = client();
    await assert.rejects(c.responses.retrieve('resp_doesnotexist'), OpenAI.NotFoundError);
    await assert.rejects(c.responses.create({ model: 'no-such-model', input: 'x' }), (err) => {
      assert.ok(err.status === 404 || err.status === 400, `a 404 or 400, got ${err.status}`);
      assert.equal(typeof err.error?.message, 'string');
      return true;
    });
    const res = await fetch(`${baseURL}/v1/responses`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${process.env.BAIMO_KEY}`, 'Content-Type': 'application/json' },
      body: '{"model":"via-anthropic","input":',
    });
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.equal(body.error.type, 'invalid_request_error');
  });
});
