// Batches through baimo with the official SDKs: openai's files and batches
// (upload a JSONL, create, poll, fetch the output, cancel, list) and
// @anthropic-ai/sdk's messages.batches (create, retrieve, results, cancel).
// Each runs against every target the gateway has: the built-in simulator
// (lines through the request path) and, when e2e/e2e_test.go sets
// BAIMO_BATCH_VENDOR_MODEL, a channel whose vendor takes the batch on its own
// batch API (baimo's fake one, `baimo sim`'s /v1/files and /v1/batches).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { toFile } from 'openai';
import { randomUUID } from 'node:crypto';
import { admin, baseURL, client } from './helpers.js';

const targets = [{ name: 'built-in simulator', model: 'sim-chat', mode: 'realtime', faults: {}, paced: true }];
if (process.env.BAIMO_BATCH_VENDOR_MODEL) {
  // The fake vendor fails the first retrieve and gives every result twice:
  // baimo polls again and keeps (and bills) each line once. Its lines run
  // at `baimo sim`'s pace, none: a line slows down only by its own "sim".
  targets.push({
    name: 'vendor batch API',
    model: process.env.BAIMO_BATCH_VENDOR_MODEL,
    mode: 'vendor',
    faults: { sim_poll_errors: '1', sim_duplicate: '1' },
    paced: false,
  });
}

const POLL_MS = 200;
const DONE_WITHIN_MS = 60_000;

/** poll calls get until done(it) holds, at most DONE_WITHIN_MS. */
async function poll(get, done, what) {
  const deadline = Date.now() + DONE_WITHIN_MS;
  for (;;) {
    const it = await get();
    if (done(it)) return it;
    if (Date.now() > deadline) assert.fail(`${what} not done within ${DONE_WITHIN_MS} ms: ${JSON.stringify(it)}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** outputTokens is what line i asks the simulator to produce. */
const outputTokens = (i) => 3 + (i % 5);

function chatLines(model, n, sim = {}) {
  return Array.from({ length: n }, (_, i) => ({
    custom_id: `line-${i}`,
    method: 'POST',
    url: '/v1/chat/completions',
    body: {
      model,
      max_tokens: 64,
      messages: [{ role: 'user', content: `Line ${i}: say something short.` }],
      sim: { output_tokens: outputTokens(i), ...sim },
    },
  }));
}

const jsonl = (lines) => lines.map((l) => JSON.stringify(l)).join('\n') + '\n';

// The batches run for a tenant of their own, prepaid, so that what it holds
// and what it spent are theirs alone (the other test files run meanwhile).
const tenantID = `e2e-batches-${randomUUID().slice(0, 8)}`;
const TOPUP = '100';
{
  // In the gateway's billing currency, which the default tenant has.
  let r = await admin('GET', '/admin/tenants/default/balance');
  assert.equal(r.status, 200, `GET /admin/tenants/default/balance: ${r.text}`);
  r = await admin('POST', '/admin/tenants', { id: tenantID, name: 'e2e batches', kind: 'prepaid', currency: r.json.currency });
  assert.equal(r.status, 201, `POST /admin/tenants: ${r.text}`);
  r = await admin('POST', `/admin/tenants/${tenantID}/topup`, { amount: TOPUP, note: 'e2e batches' });
  assert.equal(r.status, 200, `topup: ${r.text}`);
}
const keyResp = await admin('POST', '/admin/keys', { name: 'e2e-batches', tenant_id: tenantID });
assert.equal(keyResp.status, 201, `POST /admin/keys: ${keyResp.text}`);
const apiKey = keyResp.json.key;

/** account returns the tenant's balance (amounts as decimal strings). */
async function account() {
  const r = await admin('GET', `/admin/tenants/${tenantID}/balance`);
  assert.equal(r.status, 200, `GET /admin/tenants/${tenantID}/balance: ${r.text}`);
  return r.json;
}

/** nanos reads a decimal amount as integer nanos (exact). */
function nanos(s) {
  const neg = s.startsWith('-');
  const [whole, frac = ''] = (neg ? s.slice(1) : s).split('.');
  const n = BigInt(whole) * 1_000_000_000n + BigInt((frac + '000000000').slice(0, 9));
  return neg ? -n : n;
}

/** ended lists the batches the tests ran to their end, to total their cost. */
const ended = [];

for (const t of targets) {
  describe(`openai sdk batches, ${t.name}`, () => {
    test('files.create, batches.create, poll until completed, files.content: every line answered with its usage', async () => {
      const openai = client(apiKey);
      const n = 12;
      const file = await openai.files.create({
        file: await toFile(Buffer.from(jsonl(chatLines(t.model, n))), 'lines.jsonl'),
        purpose: 'batch',
      });
      assert.match(file.id, /^file-/);
      assert.equal(file.purpose, 'batch');
      assert.ok(file.bytes > 0);
      const got = await openai.files.retrieve(file.id);
      assert.equal(got.id, file.id);

      let b = await openai.batches.create({
        input_file_id: file.id,
        endpoint: '/v1/chat/completions',
        completion_window: '24h',
        metadata: { baimo_mode: t.mode, job: 'e2e', ...t.faults },
      });
      assert.match(b.id, /^batch_/);
      assert.equal(b.object, 'batch');
      assert.equal(b.input_file_id, file.id);
      assert.ok(['validating', 'in_progress'].includes(b.status), b.status);
      assert.equal(b.request_counts.total, n);
      assert.equal(b.metadata.job, 'e2e');

      b = await poll(() => openai.batches.retrieve(b.id), (x) => !['validating', 'in_progress', 'finalizing'].includes(x.status), `batch ${b.id}`);
      assert.equal(b.status, 'completed', JSON.stringify(b));
      assert.deepEqual(b.request_counts, { total: n, completed: n, failed: 0 });
      assert.ok(b.output_file_id, 'an output file');
      assert.equal(b.error_file_id, null, 'no error file when no line failed');
      assert.ok(b.completed_at >= b.created_at);
      assert.equal(b.baimo.mode, t.mode, 'the lines ran where the batch asked');

      const text = await (await openai.files.content(b.output_file_id)).text();
      const out = text.trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(out.length, n, 'one output line per input line');
      const byID = new Map(out.map((o) => [o.custom_id, o]));
      let input = 0;
      let output = 0;
      for (let i = 0; i < n; i++) {
        const o = byID.get(`line-${i}`);
        assert.ok(o, `line-${i} in the output`);
        assert.match(o.id, /^batch_req_/);
        assert.equal(o.error, null);
        assert.equal(o.response.status_code, 200);
        const body = o.response.body;
        assert.equal(body.object, 'chat.completion');
        assert.ok(body.choices[0].message.content.trim().length > 0, `line-${i} has an answer`);
        assert.equal(body.usage.completion_tokens, outputTokens(i), `line-${i}: the output it asked for`);
        assert.ok(body.usage.prompt_tokens > 0, `line-${i}: prompt tokens`);
        input += body.usage.prompt_tokens;
        output += body.usage.completion_tokens;
      }
      assert.equal(b.usage.input_tokens, input, 'the batch usage sums its lines');
      assert.equal(b.usage.output_tokens, output, 'the batch usage sums its lines');
      assert.ok(nanos(b.baimo.cost) > 0n, `the batch cost something: ${b.baimo.cost}`);
      ended.push(b.baimo.cost);

      const files = [];
      for await (const f of openai.files.list()) files.push(f.id);
      assert.ok(files.includes(file.id) && files.includes(b.output_file_id), 'files.list has the input and the output');
    });

    test('batches.cancel on a second batch, batches.list', async () => {
      const openai = client(apiKey);
      // More slow lines (about 1 s each) than the gateway runs at once (64):
      // most have not started when the cancel comes.
      const n = 200;
      const file = await openai.files.create({
        file: await toFile(Buffer.from(jsonl(chatLines(t.model, n, { output_tokens: 10, tpot_ms: 100 }))), 'slow.jsonl'),
        purpose: 'batch',
      });
      const b = await openai.batches.create({
        input_file_id: file.id,
        endpoint: '/v1/chat/completions',
        completion_window: '24h',
        metadata: { baimo_mode: t.mode },
      });
      const c = await openai.batches.cancel(b.id);
      assert.equal(c.id, b.id);
      assert.ok(['cancelling', 'cancelled'].includes(c.status), c.status);
      const end = await poll(() => openai.batches.retrieve(b.id), (x) => x.status !== 'cancelling', `cancel of ${b.id}`);
      assert.equal(end.status, 'cancelled', JSON.stringify(end));
      assert.ok(end.cancelled_at >= end.cancelling_at);
      assert.ok(end.request_counts.completed < n, `not every line ran: ${JSON.stringify(end.request_counts)}`);
      ended.push(end.baimo.cost);
      await assert.rejects(openai.batches.cancel('batch_nosuchbatch'), (e) => e.status === 404);

      const ids = [];
      for await (const x of openai.batches.list({ limit: 2 })) ids.push(x.id);
      assert.ok(ids.includes(b.id), 'batches.list has the cancelled batch');
      assert.equal(new Set(ids).size, ids.length, 'pages do not repeat a batch');
    });
  });

  describe(`anthropic sdk message batches, ${t.name}`, () => {
    const anthropic = new Anthropic({ apiKey, baseURL, maxRetries: 0, timeout: 30_000 });
    // The Anthropic format has no "sim" field to pass to an OpenAI-shaped
    // upstream: a line's output is bounded by its max_tokens instead (the
    // simulator writes 16 tokens unless told fewer).
    const requests = (n, maxTokens = outputTokens) =>
      Array.from({ length: n }, (_, i) => ({
        custom_id: `req-${i}`,
        params: {
          model: t.model,
          max_tokens: maxTokens(i),
          messages: [{ role: 'user', content: `Request ${i}: one short sentence.` }],
        },
      }));

    test('messages.batches.create, retrieve until ended, results: every request succeeded with its usage', async () => {
      const n = 8;
      let b = await anthropic.messages.batches.create({ requests: requests(n) });
      assert.match(b.id, /^msgbatch_/);
      assert.equal(b.type, 'message_batch');
      assert.equal(b.processing_status, 'in_progress');
      b = await poll(() => anthropic.messages.batches.retrieve(b.id), (x) => x.processing_status === 'ended', `message batch ${b.id}`);
      assert.equal(b.baimo.mode, t.mode === 'vendor' ? 'vendor' : 'auto', 'the lines ran where the model allows');
      assert.deepEqual(b.request_counts, { processing: 0, succeeded: n, errored: 0, canceled: 0, expired: 0 });
      assert.ok(b.results_url, 'a results URL');
      const seen = new Set();
      for await (const r of await anthropic.messages.batches.results(b.id)) {
        const i = Number(r.custom_id.slice('req-'.length));
        assert.equal(r.result.type, 'succeeded', JSON.stringify(r));
        const m = r.result.message;
        assert.equal(m.type, 'message');
        assert.ok(m.content[0].text.trim().length > 0, `${r.custom_id} has an answer`);
        assert.equal(m.usage.output_tokens, outputTokens(i), `${r.custom_id}: the output its max_tokens allows`);
        assert.ok(m.usage.input_tokens > 0);
        seen.add(r.custom_id);
      }
      assert.equal(seen.size, n, 'a result for every request');
      ended.push(b.baimo.cost);
    });

    test('messages.batches.cancel', async () => {
      // More lines (each about 0.5 s: the simulator's pace, 16 tokens) than
      // the gateway runs at once (64): most have not started when the cancel comes.
      const n = 200;
      const b = await anthropic.messages.batches.create({ requests: requests(n, () => 256) });
      const c = await anthropic.messages.batches.cancel(b.id);
      assert.equal(c.id, b.id);
      assert.ok(['canceling', 'ended'].includes(c.processing_status), c.processing_status);
      const end = await poll(() => anthropic.messages.batches.retrieve(b.id), (x) => x.processing_status === 'ended', `cancel of ${b.id}`);
      assert.ok(end.cancel_initiated_at, 'the cancel is dated');
      if (t.paced) {
        // The vendor's lines take no time: it may have answered them all
        // before the cancel reached it.
        assert.ok(end.request_counts.canceled > 0, `some requests were cancelled: ${JSON.stringify(end.request_counts)}`);
      }
      const counts = end.request_counts;
      assert.equal(counts.succeeded + counts.errored + counts.canceled + counts.expired, n);
      let results = 0;
      for await (const r of await anthropic.messages.batches.results(b.id)) {
        assert.ok(['succeeded', 'canceled'].includes(r.result.type), JSON.stringify(r.result));
        results++;
      }
      assert.equal(results, n, 'a result for every request, cancelled ones included');
      ended.push(end.baimo.cost);
      const listed = [];
      for await (const x of anthropic.messages.batches.list({ limit: 5 })) listed.push(x.id);
      assert.ok(listed.includes(b.id), 'messages.batches.list has it');
    });
  });
}

// Once every batch ended, nothing stays held and the tenant paid exactly what
// its batches cost, each line once.
test('batches: holds released, the tenant charged exactly the batches\' cost', async () => {
  const acct = await poll(account, (a) => nanos(a.pending) === 0n, 'release of the holds');
  assert.equal(nanos(acct.pending), 0n, JSON.stringify(acct));
  const cost = ended.reduce((sum, c) => sum + nanos(c), 0n);
  assert.ok(cost > 0n);
  assert.equal(nanos(TOPUP) - nanos(acct.posted), cost, `spent = the batches' cost: ${JSON.stringify(acct)}`);
});
