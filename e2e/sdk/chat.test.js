// Chat completions through baimo with the official openai SDK, checked against
// the usage record the gateway wrote for each request.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiKeyID, chatMessages, client, requestID, returnedID, usageRecord } from './helpers.js';

const OUTPUT_TOKENS = 7; // asked of the simulated upstream with sim.output_tokens

/** assertRecordBasics checks the fields every successful chat record has. */
function assertRecordBasics(rec, { stream }) {
  assert.equal(rec.model, 'sim-chat');
  assert.equal(rec.upstream_model, 'sim-chat');
  assert.ok(rec.channel, 'record names a channel');
  assert.equal(rec.stream, stream);
  assert.equal(rec.status, 200);
  assert.equal(rec.complete, true);
  assert.ok(!rec.error_class, `no error class, got ${JSON.stringify(rec.error_class)}`);
  if (apiKeyID) assert.equal(rec.key_id, apiKeyID);
  assert.ok(rec.start, 'record has a start time');
  assert.ok(rec.duration_ms >= 0, 'record has a duration');
}

test('chat, not streamed: answer, usage and the record agree', async () => {
  const id = requestID();
  const { data, response } = await client()
    .chat.completions.create(
      { model: 'sim-chat', messages: chatMessages, sim: { output_tokens: OUTPUT_TOKENS } },
      { headers: { 'X-Request-Id': id } },
    )
    .withResponse();

  assert.equal(response.status, 200);
  const rid = returnedID(response, id);
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, 'sim-chat');
  assert.equal(data.choices.length, 1);
  const [choice] = data.choices;
  assert.equal(choice.message.role, 'assistant');
  assert.equal(typeof choice.message.content, 'string');
  assert.ok(choice.message.content.trim().length > 0, 'non-empty content');
  assert.equal(choice.finish_reason, 'stop');
  assert.ok(data.usage.prompt_tokens > 0, 'prompt tokens counted');
  assert.equal(data.usage.completion_tokens, OUTPUT_TOKENS);
  assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);

  const rec = await usageRecord(rid, { model: 'sim-chat' });
  assertRecordBasics(rec, { stream: false });
  assert.equal(rec.input_tokens, data.usage.prompt_tokens);
  assert.equal(rec.output_tokens, data.usage.completion_tokens);
  assert.equal(rec.source, 'vendor');
});

/** readStream consumes an SDK stream and summarises what reached the client. */
async function readStream(stream) {
  const out = { chunks: [], text: '', usageChunks: [], finish: null, error: null };
  try {
    for await (const chunk of stream) {
      out.chunks.push(chunk);
      if (chunk.usage) out.usageChunks.push(chunk);
      for (const c of chunk.choices) {
        out.text += c.delta?.content ?? '';
        if (c.finish_reason) out.finish = c.finish_reason;
      }
    }
  } catch (err) {
    out.error = err;
  }
  return out;
}

test('chat streamed with include_usage: one usage chunk, equal to the record', async () => {
  const { data: stream, response } = await client()
    .chat.completions.create({
      model: 'sim-chat',
      messages: chatMessages,
      stream: true,
      stream_options: { include_usage: true },
      sim: { output_tokens: OUTPUT_TOKENS },
    })
    .withResponse();
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const id = response.headers.get('x-request-id');
  assert.ok(id, 'a request id is generated and returned when the client sends none');

  const s = await readStream(stream);
  assert.equal(s.error, null, `stream ended in error: ${s.error}`);
  assert.ok(s.text.trim().length > 0, 'streamed content');
  assert.equal(s.finish, 'stop');
  assert.equal(s.usageChunks.length, 1, 'exactly one chunk carries usage');
  const last = s.chunks.at(-1);
  assert.equal(last, s.usageChunks[0], 'the usage chunk is the last one');
  assert.deepEqual(last.choices, [], 'the usage chunk has empty choices');
  const { usage } = last;
  assert.ok(usage.prompt_tokens > 0, 'prompt tokens > 0');
  assert.equal(usage.completion_tokens, OUTPUT_TOKENS);

  const rec = await usageRecord(id, { model: 'sim-chat' });
  assertRecordBasics(rec, { stream: true });
  assert.equal(rec.input_tokens, usage.prompt_tokens);
  assert.equal(rec.output_tokens, usage.completion_tokens);
  assert.equal(rec.source, 'vendor');
  assert.ok(rec.ttft_ms >= 0, 'a stream records its time to first token');
});

test('chat streamed without include_usage: no usage chunk reaches the client, the record has tokens', async () => {
  const id = requestID();
  const { data: stream, response } = await client()
    .chat.completions.create(
      { model: 'sim-chat', messages: chatMessages, stream: true, sim: { output_tokens: OUTPUT_TOKENS } },
      { headers: { 'X-Request-Id': id } },
    )
    .withResponse();
  const rid = returnedID(response, id);

  const s = await readStream(stream);
  assert.equal(s.error, null, `stream ended in error: ${s.error}`);
  assert.ok(s.text.trim().length > 0, 'streamed content');
  assert.equal(s.finish, 'stop');
  assert.equal(s.usageChunks.length, 0, 'no chunk carries usage');
  for (const c of s.chunks) {
    assert.ok(c.choices.length > 0, `no chunk with empty choices reaches the client: ${JSON.stringify(c)}`);
  }

  const rec = await usageRecord(rid, { model: 'sim-chat' });
  assertRecordBasics(rec, { stream: true });
  assert.ok(rec.input_tokens > 0, 'input tokens recorded');
  assert.equal(rec.output_tokens, OUTPUT_TOKENS);
  assert.equal(rec.source, 'vendor', 'the gateway asked the upstream for usage');
});

test('chat stream cut by the upstream: the record is incomplete with the tokens known', async () => {
  const id = requestID();
  const { data: stream, response } = await client()
    .chat.completions.create(
      {
        model: 'sim-chat',
        messages: chatMessages,
        stream: true,
        stream_options: { include_usage: true },
        sim: { cut_after: 3, output_tokens: 20 },
      },
      { headers: { 'X-Request-Id': id } },
    )
    .withResponse();
  const rid = returnedID(response, id);

  const s = await readStream(stream);
  // The client may see an error or a stream that just ends; never a normal finish.
  assert.notEqual(s.finish, 'stop', 'a cut stream does not finish normally');
  assert.equal(s.usageChunks.length, 0, 'no vendor usage reached the client');
  const contentChunks = s.chunks.filter((c) => c.choices.some((x) => x.delta?.content)).length;
  assert.ok(contentChunks <= 3, `at most 3 content chunks before the cut, got ${contentChunks}`);

  const rec = await usageRecord(rid, { model: 'sim-chat' });
  assert.equal(rec.stream, true);
  assert.equal(rec.complete, false, 'a cut stream is recorded as incomplete');
  assert.ok(rec.error_class, 'a cut stream records an error class');
  assert.ok(rec.output_tokens > 0, `the tokens streamed before the cut are recorded, got ${rec.output_tokens}`);
  assert.ok(rec.output_tokens <= 20, `no more output tokens than the upstream could have sent, got ${rec.output_tokens}`);
  assert.notEqual(rec.source, 'vendor', 'the upstream never reported usage, so the counts are baimo\'s');
});

test('API key accepted in x-api-key', async () => {
  const res = await fetch(`${client().baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'x-api-key': client().apiKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'sim-chat', messages: chatMessages }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.object, 'chat.completion');
});

test('legacy completions', async () => {
  const id = requestID();
  const { data, response } = await client()
    .completions.create(
      { model: 'sim-chat', prompt: 'Once upon a time', sim: { output_tokens: OUTPUT_TOKENS } },
      { headers: { 'X-Request-Id': id } },
    )
    .withResponse();
  assert.equal(data.object, 'text_completion');
  assert.ok(data.choices[0].text.trim().length > 0, 'non-empty text');
  assert.equal(data.usage.completion_tokens, OUTPUT_TOKENS);
  const rec = await usageRecord(returnedID(response, id), { model: 'sim-chat' });
  assert.equal(rec.output_tokens, OUTPUT_TOKENS);
  assert.equal(rec.input_tokens, data.usage.prompt_tokens);
});

test('client leaves mid-stream: the record lands, incomplete, with the tokens sent so far', async () => {
  const id = requestID();
  const { data: stream, response } = await client()
    .chat.completions.create(
      {
        model: 'sim-chat',
        messages: chatMessages,
        stream: true,
        sim: { output_tokens: 200, tpot_ms: 20, ttft_ms: 0 },
      },
      { headers: { 'X-Request-Id': id } },
    )
    .withResponse();
  const rid = returnedID(response, id);
  let content = 0;
  for await (const chunk of stream) {
    if (chunk.choices.some((c) => c.delta?.content)) content++;
    if (content === 3) break; // leaving the loop aborts the request
  }
  assert.equal(content, 3);

  const rec = await usageRecord(rid, { model: 'sim-chat' });
  assert.equal(rec.stream, true);
  assert.equal(rec.complete, false, 'a stream the client left is recorded as incomplete');
  assert.equal(rec.error_class, 'client_disconnect');
  assert.ok(rec.output_tokens >= 3, `at least the 3 tokens the client saw are recorded, got ${rec.output_tokens}`);
  assert.ok(rec.output_tokens < 200, `fewer tokens than a whole answer, got ${rec.output_tokens}`);
});
