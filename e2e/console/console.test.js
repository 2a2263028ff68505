// The web console in a real browser: Debian's chromium, driven by
// playwright-core, against a running `baimo serve` (started by
// e2e/console_test.go, which passes BAIMO_URL, BAIMO_ADMIN_KEY, CHROMIUM and
// ARTIFACTS). The flow is what a new operator does: sign in, create a tenant
// and a key, top up, send requests through the simulator, find them in the
// log and the overview, export CSV and check its total against the ledger,
// add a channel and see it serve, then sign in as the tenant and see only
// its own data. Every page visited is saved as a screenshot under ARTIFACTS.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const base = process.env.BAIMO_URL;
const adminKey = process.env.BAIMO_ADMIN_KEY;
const artifacts = process.env.ARTIFACTS || fs.mkdtempSync(path.join(os.tmpdir(), "baimo-console-shots-"));
fs.mkdirSync(artifacts, { recursive: true });

const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

async function browser(locale) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "baimo-chromium-"));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: flags,
    viewport: { width: 1360, height: 900 }, locale, acceptDownloads: true, timezoneId: "UTC",
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  return { ctx, page, errors, close: async () => { await ctx.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
}

let shot = 0;
async function visit(page, url, name) {
  const res = await page.goto(base + url);
  assert.equal(res.status(), 200, `${url} answered ${res.status()}`);
  await page.waitForSelector("body[data-ready]");
  await snap(page, name);
}

async function snap(page, name) {
  shot++;
  await page.screenshot({ path: path.join(artifacts, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
}

async function api(method, url, body, key = adminKey) {
  const res = await fetch(base + url, {
    method, headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) };
}

async function chat(key, model, stream) {
  const res = await api("POST", "/v1/chat/completions", {
    model, stream, messages: [{ role: "user", content: "你好, console" }],
  }, key);
  assert.equal(res.status, 200, res.text);
}

async function signIn(page, key) {
  await page.goto(base + "/ui/login");
  await page.fill("input[name=key]", key);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
}

// poll retries fn until it returns a truthy value (records are written in
// batches, a fraction of a second after the answer).
async function poll(fn, what) {
  for (let i = 0; i < 100; i++) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test("an operator and a tenant use the console", async (t) => {
  const suffix = Math.random().toString(36).slice(2, 8);
  const tenant = `acme-${suffix}`, other = `globex-${suffix}`;
  const op = await browser("en-US");
  t.after(() => op.close());
  const { page } = op;
  let secret = "", requestIDs = [];

  await t.test("sign in as the operator", async () => {
    await signIn(page, adminKey);
    assert.match(page.url(), /\/ui\/overview$/);
    await page.waitForSelector("body[data-ready]");
    await snap(page, "overview-empty");
  });

  await t.test("create a tenant and a key, top up", async () => {
    await visit(page, "/ui/tenants", "tenants");
    await page.fill("#create-tenant input[name=id]", tenant);
    await page.fill("#create-tenant input[name=name]", "Acme Test");
    await page.selectOption("#create-tenant select[name=kind]", "prepaid");
    await Promise.all([page.waitForNavigation(), page.click("#create-tenant button[type=submit]")]);
    assert.match(page.url(), new RegExp(`/ui/tenants/${tenant}\\?done=tenant_created$`));
    await page.fill("#create-key input[name=name]", "browser-key");
    await Promise.all([page.waitForNavigation(), page.click("#create-key button[type=submit]")]);
    secret = (await page.textContent("#new-key")).trim();
    assert.match(secret, /^sk-baimo-/);
    await snap(page, "tenant-new-key");
    // The secret is shown once: the next view of the page does not have it.
    await page.goto(base + `/ui/tenants/${tenant}`);
    assert.equal(await page.locator("#new-key").count(), 0);
    assert.ok(!(await page.content()).includes(secret), "the key's secret shows again");
    await page.selectOption("#money select[name=op]", "topup");
    await page.fill("#money input[name=amount]", "100");
    await Promise.all([page.waitForNavigation(), page.click("#money button[type=submit]")]);
    assert.match(page.url(), /done=topup/);
    assert.match(await page.textContent("#available"), /^100(\.0+)? CNY$/);
    await snap(page, "tenant");
  });

  await t.test("send requests through the simulator and find them in the log", async () => {
    await chat(secret, "sim-chat", false);
    await chat(secret, "sim-chat", true);
    await chat(secret, "sim-chat", false);
    // Another tenant's traffic, which the first tenant must never see.
    assert.equal((await api("POST", "/admin/tenants", { id: other, kind: "postpaid", currency: "CNY", credit_limit: "50" })).status, 201);
    const k2 = (await api("POST", "/admin/keys", { name: "other", tenant_id: other })).json();
    await chat(k2.key, "sim-chat", false);
    await poll(async () => {
      const r = (await api("GET", `/admin/usage?tenant_id=${tenant}`)).json();
      return r.data.length === 3;
    }, "three records of the tenant");
    await visit(page, `/ui/requests?tenant_id=${tenant}`, "requests");
    const rows = page.locator("#log tbody tr");
    assert.equal(await rows.count(), 3);
    requestIDs = await page.locator("#log tbody tr td:nth-child(2) a").allTextContents();
    await page.click(`#log a:text("${requestIDs[0]}")`);
    await page.waitForSelector("#attempts");
    assert.equal(await page.locator("#attempts tbody tr").count(), 1);
    assert.ok(await page.locator("#lines tbody tr").count() >= 1, "the request shows no rated line");
    assert.match(await page.textContent("main"), /reported by the vendor|counted exactly|estimated/);
    await snap(page, "request");
  });

  await t.test("the overview counts them", async () => {
    await visit(page, "/ui/overview", "overview");
    const kpi = await page.textContent(".kpis .kpi:first-child .v");
    assert.ok(Number(kpi.replace(/,/g, "")) >= 4, `overview shows ${kpi} requests`);
    assert.ok(await page.locator("#chart-requests canvas").count() >= 1, "no chart drawn");
  });

  await t.test("export CSV from the explorer: its total equals the ledger's", async () => {
    await visit(page, `/ui/usage?group_by=model&bucket=hour&range=24h&tenant_id=${tenant}`, "usage");
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv")]);
    const csv = fs.readFileSync(await download.path(), "utf8").trim().split("\n").map((l) => l.split(","));
    const head = csv[0], total = csv[csv.length - 1];
    assert.equal(total[head.indexOf("group")], "TOTAL");
    assert.equal(total[head.indexOf("requests")], "3");
    const now = new Date(), from = new Date(now.getTime() - 48 * 3600e3), to = new Date(now.getTime() + 3600e3);
    const st = (await api("GET", `/admin/tenants/${tenant}/statement?from=${from.toISOString()}&to=${to.toISOString()}`)).json();
    const nanos = (s) => { const [i, f = ""] = s.split("."); return BigInt(i) * 1000000000n + BigInt((f + "000000000").slice(0, 9)); };
    assert.equal(nanos(total[head.indexOf("cost")]), BigInt(st.exact_total_nanos), "CSV total differs from the ledger's statement");
    assert.ok(st.exact_total_nanos > 0, "nothing was charged");
    // And the ledger's balance moved by the same amount.
    const bal = (await api("GET", `/admin/tenants/${tenant}/balance`)).json();
    assert.equal(nanos(bal.posted), 100n * 1000000000n - BigInt(st.exact_total_nanos));
  });

  await t.test("add a channel and see it serve", async () => {
    const res = await api("GET", "/admin/channels");
    if (res.status === 404) {
      t.skip("this build has no channel API");
      return;
    }
    await visit(page, "/ui/channels", "channels");
    const name = `sim2-${suffix}`;
    await page.fill("#create-channel input[name=name]", name);
    await page.selectOption("#create-channel select[name=kind]", "openai");
    await page.fill("#create-channel input[name=base_url]", process.env.SIM_URL + "/v1");
    await page.fill("#create-channel input[name=models]", `browser-model=sim-chat`);
    await page.fill("#create-channel input[name=api_key]", "sk-upstream-secret-not-shown");
    await Promise.all([page.waitForNavigation(), page.click("#create-channel button[type=submit]")]);
    assert.match(page.url(), /done=channel_created/);
    assert.ok(!(await page.content()).includes("sk-upstream-secret-not-shown"), "the channel's key is shown");
    await snap(page, "channels-added");
    const allowed = await poll(async () => (await api("GET", "/v1/models", undefined, secret)).json().data.some((m) => m.id === "browser-model"), "the new channel's model");
    assert.ok(allowed);
    await chat(secret, "browser-model", false);
    await poll(async () => (await api("GET", `/admin/usage?channel=${name}`)).json().data.length === 1, "a record served by the new channel");
    // Probe it from its card: the simulator's model list answers.
    await page.goto(base + "/ui/channels");
    await Promise.all([page.waitForNavigation(), page.click(`#channel-${name} form[action="/ui/channels/${name}/probe"]:not(:has(input[name=key])) button`)]);
    const probe = await page.textContent("#probe-result");
    assert.match(probe, new RegExp(`${name}.*k0.*ok.*HTTP 200.*\\d+ ms`, "s"), probe);
    await snap(page, "channels-probed");
  });

  await t.test("every operator page", async () => {
    for (const [url, name] of [["/ui/usage?group_by=tenant&range=7d", "usage-by-tenant"], ["/ui/keys", "keys"], ["/ui/codes", "codes"],
      ["/ui/channels", "channels"], ["/ui/prices", "prices"], ["/ui/prices/model/deepseek-chat", "price-history"],
      ["/ui/prices/compare", "compare"], ["/ui/prices/buys?model=deepseek-chat&amount=1", "buys"],
      ["/ui/prices/versions", "versions"], ["/ui/audit", "audit"], [`/ui/tenants/${tenant}/statement`, "statement"],
      ["/ui/pools", "pools"], ["/ui/batches", "batches"]]) {
      await visit(page, url, name);
    }
    await page.click("a.lang");
    await page.waitForSelector("body[data-ready]");
    assert.equal(await page.getAttribute("html", "lang"), "zh-CN");
    await visit(page, "/ui/overview", "overview-zh");
    assert.match(await page.textContent("h1"), /概览/);
    assert.deepEqual(op.errors, [], "the pages logged errors");
  });

  await t.test("the tenant signs in with its key and sees only its own data", async () => {
    const tb = await browser("zh-CN");
    t.after(() => tb.close());
    await signIn(tb.page, secret);
    assert.match(tb.page.url(), /\/ui\/portal$/);
    await tb.page.waitForSelector("body[data-ready]");
    await snap(tb.page, "portal-zh");
    await visit(tb.page, "/ui/portal/requests", "portal-requests");
    const ids = await tb.page.locator("#log tbody tr td:nth-child(2) a").allTextContents();
    const own = (await api("GET", `/admin/usage?tenant_id=${tenant}`)).json().data.map((r) => r.request_id);
    assert.ok(requestIDs.every((id) => own.includes(id)));
    assert.deepEqual(ids.sort(), own.sort());
    for (const url of ["/ui/portal", "/ui/portal/requests", "/ui/portal/keys", "/ui/portal/statement"]) {
      await tb.page.goto(base + url);
      const html = await tb.page.content();
      assert.ok(!html.includes(other), `${url} shows the other tenant`);
    }
    await visit(tb.page, "/ui/portal/keys", "portal-keys");
    const res = await tb.page.goto(base + "/ui/overview");
    assert.equal(res.status(), 403);
    assert.deepEqual(tb.errors.filter((e) => !e.includes("403")), [], "the portal logged errors");
  });
});
