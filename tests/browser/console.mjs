// The web console in a real Chromium (Debian's, driven by playwright-core),
// with an axe-core accessibility check of each page. Run by
// crates/imrelay/tests/it/console_browser.rs, which starts `imrelay serve`
// with its in-process mock and passes everything in the environment:
//
//   IMRELAY_URL, IMRELAY_API_KEY, IMRELAY_MOCK_URL, FAULT_TARGET
//   ADMIN_USER, ADMIN_PASSWORD            a user of every channel
//   TEAM_USER, TEAM_PASSWORD, TEAM_CHANNEL a user of one channel
//   MAIN_CHANNEL                          the channel the admin posts to
//   SCREENSHOTS   where failure screenshots go
//   DOCS_IMAGES   (optional) where the README's screenshots go on success
//   CHROMIUM      (default /usr/bin/chromium)
//
// Exit status 0 when every scenario passed; otherwise 1, with the failure,
// the page's URL and the screenshot paths on stderr.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const env = (name) => {
  const v = process.env[name];
  if (!v) { throw new Error(`environment variable ${name} is not set`); }
  return v;
};
const BASE = env("IMRELAY_URL");
const KEY = env("IMRELAY_API_KEY");
const MOCK = env("IMRELAY_MOCK_URL");
const SHOTS = env("SCREENSHOTS");
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

const pages = [];        // every page opened, for failure screenshots
const problems = [];     // console errors, page errors, bad headers
const axeChecked = [];
// Pages this test opens on purpose to see them refused (403/404): the
// browser logs their status as an error, which is expected there only.
const refusedOnPurpose = new Set();

async function gotoRefused(page, url) {
  refusedOnPurpose.add(url);
  return page.goto(url);
}

function check(cond, what) {
  if (!cond) { throw new Error(what); }
}

async function api(method, p, body) {
  const r = await fetch(BASE + p, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

async function waitFor(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) { return last; }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function postMessage(channel, text, labels) {
  const r = await api("POST", "/v1/messages", { channel, text, labels });
  check(r.status === 202, `POST /v1/messages answered ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json.id;
}

async function messageState(id) {
  const r = await api("GET", `/v1/messages/${id}`);
  return r.json && r.json.state;
}

async function newPage(browser, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" && !refusedOnPurpose.has(m.location().url)) {
      problems.push(`${name}: console error: ${m.text()} (${m.location().url})`);
    }
  });
  page.on("pageerror", (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on("response", (r) => {
    if (r.url().startsWith(BASE + "/ui") && r.headers()["content-security-policy"] !== CSP) {
      problems.push(`${name}: ${r.url()} has no or another CSP: ${r.headers()["content-security-policy"]}`);
    }
  });
  // Purge asks first; the scenarios confirm.
  page.on("dialog", (d) => d.accept());
  pages.push({ name, page });
  return page;
}

async function axe(page, label) {
  // Evaluated through the DevTools protocol, which the page's CSP does not
  // govern; the page itself never runs inline script.
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }));
  });
  const critical = result.filter((v) => v.impact === "critical");
  axeChecked.push(`${label}: ${result.length} violation(s), ${critical.length} critical`
    + (result.length ? ` (${result.map((v) => `${v.id}/${v.impact}`).join(", ")})` : ""));
  check(critical.length === 0, `axe: critical violations on ${label}: ${JSON.stringify(critical)}`);
}

async function login(page, user, password) {
  await page.goto(BASE + "/ui/");
  check(new URL(page.url()).pathname === "/ui/login", `not sent to the login page: ${page.url()}`);
  await axe(page, "login");
  await page.fill("#user", user);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL(BASE + "/ui/"), page.click("form.login button[type=submit]")]);
}

async function text(page, selector) {
  return (await page.textContent(selector)) || "";
}

async function run(browser) {
  const admin = await newPage(browser, "admin");
  await login(admin, env("ADMIN_USER"), env("ADMIN_PASSWORD"));
  await axe(admin, "overview");
  const main = env("MAIN_CHANNEL");

  // The overview's numbers move while messages are posted (the page polls).
  const before = Number(await text(admin, '[data-k="accepted"]'));
  for (let i = 0; i < 3; i++) { await postMessage(main, `overview tick ${i}`); }
  await admin.waitForFunction(
    (n) => Number(document.querySelector('[data-k="accepted"]').textContent) >= n + 3,
    before, { timeout: 30000 });
  await admin.waitForFunction(
    () => Number(document.querySelector('[data-k="delivered"]').textContent) > 0, null, { timeout: 30000 });

  // A delivery the platform refuses for good is dead-lettered.
  const fault = await fetch(MOCK + "/_mock/faults", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ target: env("FAULT_TARGET"), code: 310000, count: 1 }),
  });
  check(fault.ok, `the mock refused the fault rule: ${fault.status}`);
  const marker = `disk full on db-7 ${Date.now()}`;
  const deadId = await postMessage(main, marker, { host: "db-7", alertname: "DiskFull" });
  await waitFor("the message to be dead-lettered", async () => (await messageState(deadId)) === "dead");

  // Find it by text, read the platform's reason.
  await admin.goto(BASE + "/ui/messages");
  await axe(admin, "messages");
  await admin.fill("#f-text", "DB-7");
  await admin.selectOption("#f-state", "dead");
  await Promise.all([admin.waitForURL(/\/ui\/messages\?/), admin.click("form.filters button[type=submit]")]);
  const link = admin.locator(`a[href="/ui/messages/${deadId}"]`);
  check(await link.count() === 1, "the dead message is not in the search results");
  await Promise.all([admin.waitForURL(BASE + `/ui/messages/${deadId}`), link.click()]);
  const timeline = await text(admin, "ol.timeline");
  check(timeline.includes("310000"), `the timeline lacks the platform code: ${timeline}`);
  check(/security check failed/.test(timeline), `the timeline lacks the code's meaning: ${timeline}`);
  await axe(admin, "message");

  // The dead letters page: inspect it, replay it, see it delivered.
  await admin.goto(BASE + "/ui/dlq");
  await axe(admin, "dead letters");
  const entry = admin.locator(`tr:has(a[href="/ui/messages/${deadId}"]) a[href^="/ui/dlq/"]`);
  check(await entry.count() === 1, "the dead letter is not listed");
  await Promise.all([admin.waitForURL(/\/ui\/dlq\/\d+$/), entry.first().click()]);
  const facts = await text(admin, "dl.facts");
  check(facts.includes("310000") && /security check failed/.test(facts), `no platform reason on the dead letter: ${facts}`);
  await axe(admin, "dead letter");
  await Promise.all([admin.waitForURL(/\/ui\/dlq\?notice=replayed&n=1/), admin.click("form.inline button:not(.danger)")]);
  await waitFor("the replayed message to be delivered", async () => (await messageState(deadId)) === "delivered");
  await admin.goto(BASE + `/ui/messages/${deadId}`);
  check((await text(admin, "dl.facts")).match(/delivered|已送达/), "the message page does not show it delivered");

  // Create a silence from the message.
  await admin.selectOption("#s-duration", "1h");
  await admin.fill("#s-comment", "browser test");
  await Promise.all([admin.waitForURL(/notice=silenced/), admin.click("form.silence button[type=submit]")]);
  await admin.goto(BASE + "/ui/silences");
  const silences = await text(admin, "main");
  check(silences.includes("db-7") && silences.includes("browser test"), `the silence is not listed: ${silences}`);
  await axe(admin, "silences");

  await admin.goto(BASE + "/ui/channels");
  check((await text(admin, "main")).includes("***"), "secrets are not masked on the channels page");
  await axe(admin, "channels");

  // The audit trail: the replay above is in it, with who did it.
  await admin.goto(BASE + "/ui/audit?action=dlq");
  const audit = await text(admin, "main");
  check(audit.includes("dlq.replay") && audit.includes(env("ADMIN_USER")), `the replay is not in the audit trail: ${audit}`);
  await axe(admin, "audit");

  // Templates: the live preview and its byte count follow the text; a long
  // text shows the parts it would be split into.
  await admin.goto(BASE + "/ui/templates");
  await axe(admin, "templates");
  const bytesNow = async () => Number(await admin.getAttribute("#preview .bytes", "data-bytes"));
  const b0 = await bytesNow();
  check(b0 > 0, "the preview shows no byte count");
  await admin.fill("#r-text", "a longer text than before, so the count moves: 数据库 db-1 磁盘已满");
  await admin.waitForFunction(
    (b) => Number(document.querySelector("#preview .bytes").getAttribute("data-bytes")) > b, b0, { timeout: 10000 });
  await admin.click("button[data-sample]:nth-of-type(2)");
  await admin.waitForFunction(() => document.querySelectorAll("#preview h3").length > 1, null, { timeout: 10000 });
  await axe(admin, "templates (split)");

  // The route editor: a route's template beside a sample notification;
  // changing the text changes what each destination gets and its size.
  await admin.goto(BASE + "/ui/templates");
  const routeBytes = async () => Number(await admin.getAttribute("#route-preview .bytes", "data-bytes"));
  const r0 = await routeBytes();
  check(r0 > 0, "the route editor shows no byte count");
  await admin.fill("#e-source", "{{ names }}: EDITED in the browser");
  await admin.waitForFunction(
    (b) => {
      const el = document.querySelector("#route-preview .bytes");
      return el && Number(el.getAttribute("data-bytes")) !== b
        && document.querySelector("#route-preview").textContent.includes("EDITED in the browser");
    }, r0, { timeout: 10000 });
  await axe(admin, "templates (route editor)");

  // A phone-width overview: nothing wider than the screen.
  await admin.setViewportSize({ width: 390, height: 844 });
  await admin.goto(BASE + "/ui/");
  const overflow = await admin.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the overview is ${overflow}px wider than a phone screen`);
  await admin.setViewportSize({ width: 1280, height: 900 });

  // A user of one channel cannot see or act on another, by URL either.
  const team = await newPage(browser, "team");
  await login(team, env("TEAM_USER"), env("TEAM_PASSWORD"));
  const other = await gotoRefused(team, BASE + `/ui/messages/${deadId}`);
  check(other.status() === 404, `another channel's message answered ${other.status()}`);
  const list = await gotoRefused(team, BASE + `/ui/messages?channel=${encodeURIComponent(main)}`);
  check(list.status() === 403, `another channel's list answered ${list.status()}`);
  await team.goto(BASE + "/ui/messages?text=db-7");
  check(!(await text(team, "main")).includes(deadId), "the search shows another channel's message");
  // Another dead letter of the other channel: the team user can neither
  // open it nor replay it by posting its id.
  await fetch(MOCK + "/_mock/faults", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ target: env("FAULT_TARGET"), code: 310000, count: 1 }),
  });
  const otherDead = await postMessage(main, `not the team's ${Date.now()}`, { host: "db-8" });
  await waitFor("the other message to be dead-lettered", async () => (await messageState(otherDead)) === "dead");
  const dl = (await api("GET", `/v1/dlq?message_id=${otherDead}`)).json.items[0].delivery_id;
  check((await gotoRefused(team, BASE + `/ui/dlq/${dl}`)).status() === 404, "another channel's dead letter opened");
  await team.goto(BASE + "/ui/dlq");
  check(!(await text(team, "main")).includes(otherDead), "the dead letters show another channel's");
  const csrf = await team.getAttribute('input[name="csrf"]', "value");
  const replayed = await team.evaluate(async ({ csrf, dl }) => {
    const body = new URLSearchParams({ csrf, id: String(dl) });
    const r = await fetch("/ui/dlq/replay", { method: "POST", body });
    return new URL(r.url).search;
  }, { csrf, dl });
  check(replayed.includes("n=0"), `the replay of another channel's dead letter answered ${replayed}`);
  check((await messageState(otherDead)) === "dead", "another channel's dead letter was replayed");
  check((await gotoRefused(team, BASE + "/ui/silences")).status() === 403, "a one-channel user may manage silences");
  check((await gotoRefused(team, BASE + "/ui/audit")).status() === 404, "a one-channel user may read the audit trail");
  const teamChannel = env("TEAM_CHANNEL");
  await team.goto(BASE + "/ui/channels");
  const shown = await team.$$eval("section.channel h2", (hs) => hs.map((h) => h.textContent));
  check(JSON.stringify(shown) === JSON.stringify([teamChannel]), `the channels page shows ${shown}`);

  // Chinese, switched from the header.
  await Promise.all([admin.waitForURL(BASE + "/ui/"), admin.goto(BASE + "/ui/lang/zh?next=%2Fui%2F")]);
  check((await text(admin, "h1")) === "概览", `the switch did not change the language: ${await text(admin, "h1")}`);
  await axe(admin, "overview (zh)");
  await admin.goto(BASE + "/ui/lang/en?next=%2Fui%2F");

  check(problems.length === 0, `problems in the browser:\n  ${problems.join("\n  ")}`);

  const docs = process.env.DOCS_IMAGES;
  if (docs) {
    fs.mkdirSync(docs, { recursive: true });
    await admin.goto(BASE + "/ui/");
    await admin.waitForSelector("svg.chart");
    await admin.screenshot({ path: path.join(docs, "console-overview.png"), fullPage: true });
    await admin.goto(BASE + `/ui/messages/${deadId}`);
    await admin.screenshot({ path: path.join(docs, "console-message.png"), fullPage: true });
    await admin.goto(BASE + "/ui/templates");
    await admin.selectOption("#e-sample", "non_ascii");
    await admin.waitForFunction(() => document.querySelector("#route-preview").textContent.includes("磁盘空间不足"), null, { timeout: 10000 });
    await admin.screenshot({ path: path.join(docs, "console-templates.png"), fullPage: false });
    console.log(`screenshots saved in ${docs}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
let failed = false;
try {
  await run(browser);
  console.log(`console browser tests passed; axe:\n  ${axeChecked.join("\n  ")}`);
} catch (e) {
  failed = true;
  console.error(`console browser test FAILED: ${e.stack || e}`);
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const { name, page } of pages) {
    const file = path.join(SHOTS, `failure-${name}.png`);
    try {
      await page.screenshot({ path: file, fullPage: true });
      console.error(`  ${name} was at ${page.url()}; screenshot: ${file}`);
    } catch (err) {
      console.error(`  no screenshot of ${name}: ${err.message}`);
    }
  }
  if (problems.length) { console.error(`problems in the browser:\n  ${problems.join("\n  ")}`); }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
