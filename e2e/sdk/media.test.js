// Rerank, images and audio through baimo to the built-in simulator: a
// rerank client in the Cohere/Jina JSON shape (no official one in npm
// here), client.images.generate and edit, client.audio.transcriptions and
// translations with a WAV made here (so the duration comes from the file),
// client.audio.speech streamed back; each usage record in its own unit at
// the catalog's price (catalog/sim.yaml), the tenant's statement by unit,
// and hostile inputs refused with OpenAI-shaped 4xx errors.
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import {
  admin,
  assertErrorShape,
  assertLinesPriced,
  balance,
  baseURL,
  client,
  nanos,
  prepaidTenant,
  requestID,
  returnedID,
  statement,
  usageRecord,
} from './helpers.js';

// The Cohere-shaped reranker is a channel only the e2e configuration has.
const formatsSkip = process.env.BAIMO_FORMATS === '1' ? false : 'BAIMO_FORMATS is not set: no fake Cohere channel';

// The simulator's media models as catalog/sim.yaml prices them (CNY).
const prices = {
  'sim-rerank': { input: ['0.8', 1_000_000] },
  'sim-image': { image: ['0.2', 1] },
  'sim-image@1024x1792/hd': { image: ['0.6', 1] },
  'sim-image@/hd': { image: ['0.4', 1] },
  'sim-whisper': { audio_second: ['0.006', 1] },
  'sim-tts': { character: ['100', 1_000_000] },
};

/**
 * wav returns a 16-bit mono PCM WAV of seconds of a 440 Hz tone at rate
 * samples a second; declared, if given, is the data size its header claims.
 */
function wav(seconds, { rate = 8000, declared } = {}) {
  const samples = Math.round(seconds * rate);
  const data = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) data.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), i * 2);
  const size = declared ?? data.length;
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(Math.min(36 + size, 0xffffffff), 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28); // byte rate
  h.writeUInt16LE(2, 32); // block align
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(size, 40);
  return Buffer.concat([h, data]);
}

/** post sends a JSON or multipart body with key and returns status and parsed body. */
async function post(path, key, body, headers = {}) {
  const isForm = body instanceof FormData;
  const res = await fetch(`${baseURL}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, ...(isForm ? {} : { 'Content-Type': 'application/json' }), ...headers },
    body: isForm ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Callers assert on the status and show the text.
  }
  return { status: res.status, json, text, headers: res.headers };
}

/**
 * declaredUpload starts a multipart upload to /v1/audio/transcriptions whose
 * Content-Length is length, sends only its first part and waits for the
 * answer; it returns {status, text}.
 */
function declaredUpload(key, length) {
  const u = new URL(`${baseURL}/v1/audio/transcriptions`);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        headers: {
          Authorization: `Bearer ${key}`,
          'Content-Type': 'multipart/form-data; boundary=xyz',
          'Content-Length': String(length),
        },
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode, text });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s: the gateway waits for the body')));
    req.on('error', reject);
    req.write('--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\nsim-whisper\r\n');
  });
}

/** assertRefused checks an OpenAI-shaped 4xx error. */
function assertRefused(r, status, what, param) {
  assert.equal(r.status, status, `${what}: status ${r.status}, want ${status}: ${r.text}`);
  assertErrorShape(r.json?.error, what);
  assert.equal(r.json.error.type, 'invalid_request_error', `${what}: ${r.text}`);
  if (param !== undefined) assert.equal(r.json.error.param, param, `${what}: ${r.text}`);
}

describe('media endpoints through the gateway', () => {
  // One tenant for the billed calls, so that its statement is theirs alone.
  let t;
  const recs = [];
  const tenant = async () => (t ??= await prepaidTenant('media'));

  test('rerank in the Cohere/Jina shape: ordered results, billed per token', async () => {
    const { key, keyID } = await tenant();
    const id = requestID();
    const documents = ['a red fox runs', 'the sky is blue', { text: 'the quick red fox is red' }, 'nothing here'];
    const r = await post('/v1/rerank', key, { model: 'sim-rerank', query: 'red fox', documents, top_n: 3, return_documents: false }, {
      'X-Request-Id': id,
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.results.length, 3, 'top_n results');
    const scores = r.json.results.map((x) => x.relevance_score);
    assert.deepEqual(scores, [...scores].sort((a, b) => b - a), 'by relevance, best first');
    for (const x of r.json.results) assert.ok(Number.isInteger(x.index) && x.index >= 0 && x.index < documents.length);
    assert.ok(![1, 3].includes(r.json.results[0].index), 'a document about the query ranks first');
    const rec = await usageRecord(returnedID(r, id), { keyID });
    assert.equal(rec.endpoint, 'rerank');
    assert.equal(rec.model, 'sim-rerank');
    assert.equal(rec.status, 200);
    assert.equal(rec.input_tokens, r.json.usage.total_tokens, 'billed for the tokens the vendor reports');
    assert.equal(rec.output_tokens, 0);
    assertLinesPriced(rec, prices['sim-rerank'], { input: rec.input_tokens });
    recs.push(rec);
  });

  test('rerank on a Cohere upstream: billed per search unit at the price the operator set', { skip: formatsSkip }, async () => {
    const { key, keyID } = await tenant();
    // Cohere bills searches (a query over up to 100 documents), not tokens:
    // the operator prices cohere-rerank per search unit, from now on.
    const set = await admin('POST', '/admin/prices', {
      model: 'cohere-rerank',
      vendor: 'cohere',
      kind: 'rerank',
      effective_from: 'now',
      currency: 'CNY',
      unit: 'per_1m',
      source: 'e2e',
      checked: '2026-12-07',
      prices: { search_call: { price: '2', per: 1000 } },
    });
    assert.equal(set.status, 201, `POST /admin/prices: ${set.text}`);
    const wait = Date.parse(set.json.effective_from) - Date.now() + 50;
    assert.ok(wait < 30_000, `the price starts within 30 s: ${set.json.effective_from}`);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const documents = Array.from({ length: 150 }, (_, i) => `document ${i} about foxes`);
    const id = requestID();
    const r = await post('/v1/rerank', key, { model: 'cohere-rerank', query: 'foxes', documents, top_n: 5 }, { 'X-Request-Id': id });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.results.length, 5);
    assert.equal(r.json.meta.billed_units.search_units, 2, 'Cohere bills 150 documents as 2 searches');
    const rec = await usageRecord(returnedID(r, id), { keyID });
    assert.equal(rec.endpoint, 'rerank');
    assert.equal(rec.channel, 'up-cohere');
    assert.equal(rec.upstream_model, 'rerank-v3.5');
    assert.equal(rec.search_calls, 2, `search units recorded: ${JSON.stringify(rec)}`);
    assertLinesPriced(rec, { search_call: ['2', 1000] }, { search_call: 2 });
    assert.equal(nanos(rec.cost), nanos('0.004'));
    recs.push(rec);
  });

  test('rerank refuses a request without documents, in the OpenAI error shape', async () => {
    const { key } = await tenant();
    const r = await post('/v1/rerank', key, { model: 'sim-rerank', query: 'x', documents: [] });
    assert.ok(r.status === 400, `status ${r.status}: ${r.text}`);
    assertErrorShape(r.json?.error, 'rerank without documents');
  });

  test('images.generate: billed per image at the price of its size and quality', async () => {
    const { key, keyID } = await tenant();
    const c = client(key);
    for (const [params, variant, endpoint] of [
      [{ n: 2 }, 'sim-image', 'images'],
      [{ n: 1, size: '1024x1792', quality: 'hd' }, 'sim-image@1024x1792/hd', 'images@1024x1792/hd'],
      [{ n: 3, quality: 'hd' }, 'sim-image@/hd', 'images@/hd'], // size/quality, the size not given
    ]) {
      const id = requestID();
      const { data, response } = await c.images
        .generate({ model: 'sim-image', prompt: 'a red fox in the snow', response_format: 'b64_json', ...params }, { headers: { 'X-Request-Id': id } })
        .withResponse();
      assert.equal(data.data.length, params.n);
      const png = Buffer.from(data.data[0].b64_json, 'base64');
      assert.equal(png.subarray(1, 4).toString(), 'PNG', 'a PNG image');
      const rec = await usageRecord(returnedID(response, id), { keyID });
      assert.equal(rec.endpoint, endpoint);
      assert.equal(rec.images, params.n, `images counted: ${JSON.stringify(rec)}`);
      assertLinesPriced(rec, prices[variant], { image: params.n });
      recs.push(rec);
    }
  });

  test('images.edit: a multipart upload, billed per image', async () => {
    const { key, keyID } = await tenant();
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
    const id = requestID();
    const { data, response } = await client(key)
      .images.edit(
        { model: 'sim-image', image: await toFile(png, 'fox.png', { type: 'image/png' }), prompt: 'add a hat', n: 1 },
        { headers: { 'X-Request-Id': id } },
      )
      .withResponse();
    assert.equal(data.data.length, 1);
    const rec = await usageRecord(returnedID(response, id), { keyID });
    assert.equal(rec.images, 1);
    assertLinesPriced(rec, prices['sim-image'], { image: 1 });
    recs.push(rec);
  });

  test('images: n out of bounds or not an integer is a 400 naming n', async () => {
    const { key } = await tenant();
    for (const n of [-1, 0, 11, 1e12, 1.5, '2', -9007199254740993]) {
      const r = await post('/v1/images/generations', key, { model: 'sim-image', prompt: 'x', n });
      assertRefused(r, 400, `n = ${JSON.stringify(n)}`, 'n');
    }
    await assert.rejects(client(key).images.generate({ model: 'sim-image', prompt: 'x', n: 100 }), OpenAI.BadRequestError);
  });

  for (const [name, path] of [
    ['transcriptions', '/v1/audio/transcriptions'],
    ['translations', '/v1/audio/translations'],
  ]) {
    test(`audio.${name}: billed for the seconds the WAV holds, rounded up`, async () => {
      const { key, keyID } = await tenant();
      const c = client(key);
      const id = requestID();
      const file = await toFile(wav(2.5), 'tone.wav', { type: 'audio/wav' });
      const { data, response } = await c.audio[name].create({ model: 'sim-whisper', file }, { headers: { 'X-Request-Id': id } }).withResponse();
      assert.equal(typeof data.text, 'string');
      assert.ok(data.text.length > 0);
      const rec = await usageRecord(returnedID(response, id), { keyID });
      assert.equal(rec.endpoint, path === '/v1/audio/transcriptions' ? 'transcriptions' : 'translations', JSON.stringify(rec));
      assert.equal(rec.audio_seconds, 3, `2.5 s billed as 3: ${JSON.stringify(rec)}`);
      assertLinesPriced(rec, prices['sim-whisper'], { audio_second: 3 });
      recs.push(rec);
    });
  }

  test('a WAV whose header claims more data than it holds is billed for what it holds', async () => {
    const { key, keyID } = await tenant();
    const id = requestID();
    const file = await toFile(wav(1.2, { declared: 0x7ffffff0 }), 'liar.wav', { type: 'audio/wav' });
    const { response } = await client(key).audio.transcriptions.create({ model: 'sim-whisper', file }, { headers: { 'X-Request-Id': id } }).withResponse();
    const rec = await usageRecord(returnedID(response, id), { keyID });
    assert.equal(rec.audio_seconds, 2, `1.2 s of samples, whatever the header says: ${JSON.stringify(rec)}`);
    assertLinesPriced(rec, prices['sim-whisper'], { audio_second: 2 });
    recs.push(rec);
  });

  test('audio uploads that are not audio, lie about their format or are too large are refused', async () => {
    const { key } = await tenant();
    const form = (bytes, name = 'a.wav') => {
      const f = new FormData();
      f.set('model', 'sim-whisper');
      f.set('file', new Blob([bytes]), name);
      return f;
    };
    // Not audio at all.
    assertRefused(await post('/v1/audio/transcriptions', key, form(Buffer.from('hello, this is not audio'))), 400, 'not audio');
    // A WAV header with a byte rate of zero: no duration can be read.
    const zeroRate = wav(1);
    zeroRate.writeUInt32LE(0, 28);
    assertRefused(await post('/v1/audio/transcriptions', key, form(zeroRate)), 400, 'byte rate 0');
    // A WAV whose byte rate is raised a hundredfold, so that 3 s would read
    // as 0.03 s: its header contradicts itself, and it is not billed as short.
    const fast = wav(3);
    fast.writeUInt32LE(8000 * 2 * 100, 28);
    assertRefused(await post('/v1/audio/transcriptions', key, form(fast)), 400, 'byte rate raised');
    // A WAV cut inside its header.
    assertRefused(await post('/v1/audio/transcriptions', key, form(wav(1).subarray(0, 30))), 400, 'truncated header');
    // No file part.
    const noFile = new FormData();
    noFile.set('model', 'sim-whisper');
    assertRefused(await post('/v1/audio/transcriptions', key, noFile), 400, 'no file');
    // Over limits.max_upload_bytes (25 MiB): refused from its Content-Length,
    // before the body is read (the client has sent only its first bytes).
    const r = await declaredUpload(key, (25 << 20) + 1);
    assert.equal(r.status, 413, `an upload over the limit: ${r.status} ${r.text.slice(0, 300)}`);
    assertErrorShape(JSON.parse(r.text).error, 'upload over the limit');
    // A multipart body that is not one.
    const bad = await fetch(`${baseURL}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'multipart/form-data; boundary=xyz' },
      body: '--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\nsim-whisper\r\n--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF',
    });
    assert.equal(bad.status, 400, 'a multipart body cut short');
    assertErrorShape((await bad.json()).error, 'cut multipart');
  });

  test('audio.speech: streamed back, billed per character', async () => {
    const { key, keyID } = await tenant();
    const input = 'The quick brown fox jumps over the lazy dog.';
    const id = requestID();
    const { data, response } = await client(key)
      .audio.speech.create({ model: 'sim-tts', input, voice: 'alloy', response_format: 'wav' }, { headers: { 'X-Request-Id': id } })
      .withResponse();
    let chunks = 0;
    const parts = [];
    for await (const chunk of data.body) {
      chunks++;
      parts.push(Buffer.from(chunk));
    }
    const audio = Buffer.concat(parts);
    assert.equal(audio.subarray(0, 4).toString(), 'RIFF', 'a WAV comes back');
    assert.ok(audio.length > 44 + 1000, `audio data follows the header: ${audio.length} bytes`);
    assert.ok(chunks >= 1);
    const rec = await usageRecord(returnedID(response, id), { keyID });
    assert.equal(rec.endpoint, 'speech');
    assert.equal(rec.characters, input.length);
    assertLinesPriced(rec, prices['sim-tts'], { character: input.length });
    recs.push(rec);
  });

  test('audio.speech: an input over 4,096 characters is a 400 naming input', async () => {
    const { key } = await tenant();
    const r = await post('/v1/audio/speech', key, { model: 'sim-tts', input: 'x'.repeat(4097), voice: 'alloy' });
    assertRefused(r, 400, 'input too long', 'input');
  });

  test('the statement shows each model by unit, and the balance what was billed', async () => {
    const { tenant: id } = await tenant();
    assert.ok(recs.length >= 8, `the billed tests ran first (${recs.length} records)`);
    const st = await statement(id);
    const total = recs.reduce((s, r) => s + nanos(r.cost), 0n);
    assert.equal(BigInt(st.exact_total_nanos), total, `statement total: ${JSON.stringify(st)}`);
    const want = {};
    for (const r of recs) {
      for (const l of r.lines) {
        want[r.model] ??= {};
        want[r.model][l.kind] = (want[r.model][l.kind] ?? 0) + l.quantity;
      }
    }
    for (const [model, kinds] of Object.entries(want)) {
      const line = st.lines.find((l) => l.model === model);
      assert.ok(line, `a statement line for ${model}: ${JSON.stringify(st)}`);
      const got = Object.fromEntries(line.kinds.map((k) => [k.kind, k.quantity]));
      assert.deepEqual(got, kinds, `${model} by unit`);
    }
    const bal = await balance(id);
    assert.equal(nanos(bal.posted), nanos('100') - total, JSON.stringify(bal));
  });
});
