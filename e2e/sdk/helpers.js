// Shared helpers for the end-to-end tests: they drive a running baimo with the
// official openai SDK. e2e/e2e_test.go starts the gateway and sets:
//   BAIMO_URL        base URL of the gateway, e.g. http://127.0.0.1:8080
//   BAIMO_KEY        an API key allowed every model
//   BAIMO_ADMIN_KEY  the admin key
//   BAIMO_KEY_ID     (optional) the id of BAIMO_KEY, to check usage records
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';

function mustEnv(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set; run these tests through e2e/e2e_test.go or set BAIMO_URL, BAIMO_KEY and BAIMO_ADMIN_KEY`);
  }
  return v;
}

export const baseURL = mustEnv('BAIMO_URL').replace(/\/+$/, '');
export const apiKey = mustEnv('BAIMO_KEY');
export const adminKey = mustEnv('BAIMO_ADMIN_KEY');
export const apiKeyID = process.env.BAIMO_KEY_ID || '';

/** client returns an SDK client for key that never retries, so each test sees the first answer. */
export function client(key = apiKey) {
  return new OpenAI({ apiKey: key, baseURL: `${baseURL}/v1`, maxRetries: 0, timeout: 30_000 });
}

/** requestID returns a fresh X-Request-Id for one request. */
export function requestID() {
  return `e2e-${randomUUID()}`;
}

/**
 * returnedID checks that the X-Request-Id a response carries honours the one
 * the client sent, and returns it: the usage record is filed under it. baimo
 * keeps the client's id and may append "." and a random suffix, so that a
 * client reusing an id still gets two records (two bills), never one.
 */
export function returnedID(response, sent) {
  const got = response.headers.get('x-request-id');
  assert.ok(got, 'the response carries X-Request-Id');
  if (got !== sent) {
    assert.ok(got.startsWith(`${sent}.`), `X-Request-Id ${got} honours the id sent, ${sent}`);
  }
  return got;
}

/** admin calls the admin API and returns the status and parsed JSON body. */
export async function admin(method, path, body) {
  const res = await fetch(`${baseURL}${path}`, {
    method,
    headers: { Authorization: `Bearer ${adminKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Leave json null; callers assert on status and show text.
  }
  return { status: res.status, json, text };
}

/** createKey creates an API key through the admin API and returns {id, key, ...}. */
export async function createKey(name, models) {
  const body = models === undefined ? { name } : { name, models };
  const r = await admin('POST', '/admin/keys', body);
  assert.equal(r.status, 201, `POST /admin/keys: ${r.text}`);
  assert.match(r.json.key, /^sk-baimo-/, 'a new key starts with sk-baimo-');
  assert.ok(r.json.id, 'a new key has an id');
  return r.json;
}

/**
 * usageRecord polls GET /admin/usage until the record of the request with id
 * appears (records are written in batches) and returns it. id may be the
 * X-Request-Id the client sent or the one the response returned. It fails
 * after timeoutMs.
 */
export async function usageRecord(id, { model, keyID = apiKeyID, timeoutMs = 10_000 } = {}) {
  const q = new URLSearchParams({ limit: '1000' });
  if (model) q.set('model', model);
  if (keyID) q.set('key_id', keyID);
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const r = await admin('GET', `/admin/usage?${q}`);
    assert.equal(r.status, 200, `GET /admin/usage: ${r.text}`);
    assert.ok(Array.isArray(r.json.data), `GET /admin/usage has a data array: ${r.text}`);
    // The id sent, or the id baimo filed it under (the sent id, "." and a suffix).
    const rec = r.json.data.find((x) => x.request_id === id || x.request_id?.startsWith(`${id}.`));
    if (rec) return rec;
    last = `${r.json.data.length} records, none with request_id ${id}`;
    if (Date.now() > deadline) {
      assert.fail(`no usage record for ${id} after ${timeoutMs} ms: ${last}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * assertErrorShape checks an OpenAI-shaped error object: message, type, param
 * and code are all present (param and code may be null), and the message
 * names no address and shows no key.
 */
export function assertErrorShape(error, what) {
  assert.ok(error && typeof error === 'object', `${what}: an error object, got ${JSON.stringify(error)}`);
  for (const k of ['message', 'type', 'param', 'code']) {
    assert.ok(k in error, `${what}: error has "${k}": ${JSON.stringify(error)}`);
  }
  assert.equal(typeof error.message, 'string', `${what}: message is a string`);
  assert.ok(error.message.length > 0, `${what}: message is not empty`);
  assert.equal(typeof error.type, 'string', `${what}: type is a string`);
  // An internal address, or something as long as a whole key, has no place in a message.
  assert.doesNotMatch(error.message, /\b\d{1,3}(\.\d{1,3}){3}\b|localhost|\[::1\]/i, `${what}: message names an address`);
  assert.doesNotMatch(error.message, /sk-[A-Za-z0-9_-]{20,}/, `${what}: message shows a key`);
}

/** chatMessages is the prompt the tests send. */
export const chatMessages = [
  { role: 'system', content: 'You are a test.' },
  { role: 'user', content: 'Tell me about the weather in three short sentences.' },
];

/**
 * nanos parses a decimal amount ("0.000194", "-1.5") into an exact BigInt
 * count of billionths, so that amounts are compared without floats.
 */
export function nanos(amount) {
  const m = /^(-?)(\d+)(?:\.(\d{1,9}))?$/.exec(String(amount));
  assert.ok(m, `an amount with at most 9 decimals: ${JSON.stringify(amount)}`);
  const v = BigInt(m[2]) * 1_000_000_000n + BigInt((m[3] ?? '').padEnd(9, '0'));
  return m[1] ? -v : v;
}

/**
 * prepaidTenant creates a prepaid CNY tenant with a unique id, tops it up
 * with topUp and gives it an API key; it returns {tenant, key, keyID}. A
 * tenant of its own lets a test read its statement and balance while other
 * tests run.
 */
export async function prepaidTenant(prefix, topUp = '100') {
  const tenant = `${prefix}-${randomUUID().slice(0, 8)}`;
  let r = await admin('POST', '/admin/tenants', { id: tenant, name: `e2e ${tenant}`, kind: 'prepaid', currency: 'CNY' });
  assert.equal(r.status, 201, `POST /admin/tenants: ${r.text}`);
  r = await admin('POST', `/admin/tenants/${tenant}/topup`, { amount: topUp });
  assert.equal(r.status, 200, `POST /admin/tenants/${tenant}/topup: ${r.text}`);
  r = await admin('POST', '/admin/keys', { name: `e2e-${tenant}`, tenant_id: tenant });
  assert.equal(r.status, 201, `POST /admin/keys: ${r.text}`);
  return { tenant, key: r.json.key, keyID: r.json.id };
}

/** statement returns the tenant's statement from the beginning. */
export async function statement(tenant) {
  const r = await admin('GET', `/admin/tenants/${tenant}/statement`);
  assert.equal(r.status, 200, `GET /admin/tenants/${tenant}/statement: ${r.text}`);
  return r.json;
}

/** balance returns the tenant's balance. */
export async function balance(tenant) {
  const r = await admin('GET', `/admin/tenants/${tenant}/balance`);
  assert.equal(r.status, 200, `GET /admin/tenants/${tenant}/balance: ${r.text}`);
  return r.json;
}

/**
 * assertLinesPriced checks that a usage record's cost is the sum of its
 * lines, each its quantity times the price the test expects for its kind
 * (prices: {kind: [price, per]} as catalog/sim.yaml sets them), and that the
 * record has a line for each kind in quantities.
 */
export function assertLinesPriced(rec, prices, quantities) {
  assert.equal(rec.currency, 'CNY', `record currency: ${JSON.stringify(rec)}`);
  const lines = rec.lines ?? [];
  let sum = 0n;
  for (const l of lines) {
    const p = prices[l.kind];
    assert.ok(p, `a line of a kind the catalog prices this model in: ${JSON.stringify(l)}`);
    assert.equal(nanos(l.price), nanos(p[0]), `price of ${l.kind}`);
    assert.equal(l.per, p[1], `per of ${l.kind}`);
    const want = (BigInt(l.quantity) * nanos(p[0])) / BigInt(p[1]);
    assert.equal(nanos(l.amount), want, `amount of ${l.kind}: ${l.quantity} × ${p[0]} / ${p[1]}`);
    sum += want;
  }
  for (const [kind, q] of Object.entries(quantities)) {
    const l = lines.find((x) => x.kind === kind);
    if (q === 0) {
      assert.ok(!l || l.quantity === 0, `no ${kind} line: ${JSON.stringify(lines)}`);
      continue;
    }
    assert.ok(l, `a ${kind} line: ${JSON.stringify(lines)}`);
    assert.equal(l.quantity, q, `${kind} quantity`);
  }
  assert.equal(nanos(rec.cost), sum, `cost is the sum of the lines: ${JSON.stringify(rec)}`);
  return sum;
}
