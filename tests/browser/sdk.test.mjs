// The SDK's session manager in a real headless Chromium: two tabs of one
// origin, the API's own, so the HttpOnly refresh cookie (SameSite=Strict,
// Path=/api/v1/auth) is first-party and shared by both tabs, as are the
// Web Locks and the BroadcastChannel. The page and a browser bundle of the
// SDK (esbuild, from openapi/client's dist/) are served at the API's origin
// under /sdk-test/, a path the API does not have, by Playwright's routing.
// Each tab's clock is injected, so the tokens can be made to look expired.
// The passkey test runs at http://localhost:PORT (WebAuthn needs a domain;
// with-stack.sh sets WEBAUTHN_RP_ID=localhost) with Chromium's virtual
// authenticator.
//
// Needs: PORTCULLIS_URL (api), PORTCULLIS_MAIL_DIR (the worker's file
// transport), CHROMIUM (default /usr/bin/chromium), ARTIFACTS_DIR (where
// screenshots are kept).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";
import { chromium } from "playwright-core";

const base = required("PORTCULLIS_URL");
const mailDir = required("PORTCULLIS_MAIL_DIR");
const artifacts = process.env.ARTIFACTS_DIR ?? "target/browser";
const password = "correct horse battery staple";
const clientDir = fileURLToPath(new URL("../../openapi/client/", import.meta.url));
/** Past ACCESS_TOKEN_TTL_SECONDS (900). */
const expiredMs = 901_000;

function required(name) {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (see the justfile's browser-test recipe)`);
  return value;
}

const page = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Portcullis SDK tab</title>
<style>body { font: 16px system-ui, sans-serif; margin: 2rem; } li { font-family: monospace; }</style>
<h1 id="status">Signed out</h1>
<p id="token"></p>
<ol id="events"></ol>
<script src="/sdk-test/sdk.js"></script>
<script src="/sdk-test/app.js"></script>
</html>`;

// The app of each tab: one session, its clock skewed by window.skewMs, its
// events kept and shown.
const app = `
window.skewMs = 0;
window.events = [];
window.session = Portcullis.createSession({
  baseUrl: location.origin,
  now: () => Date.now() + window.skewMs,
});
function render() {
  const claims = session.claims();
  document.getElementById("status").textContent = claims ? "Signed in: " + claims.sub : "Signed out";
  document.getElementById("token").textContent = claims ? "access token " + claims.jti : "no access token";
  document.getElementById("events").replaceChildren(
    ...events.map((event) => Object.assign(document.createElement("li"), { textContent: JSON.stringify(event) })),
  );
}
session.onChange((event) => {
  events.push(event);
  render();
});
render();
`;

let browser;
let bundle;

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  // The SDK as a package user builds it: dist/ from the client, bundled.
  if (!existsSync(join(clientDir, "node_modules"))) {
    execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: clientDir, stdio: "inherit" });
  }
  execFileSync("npm", ["run", "--silent", "build"], { cwd: clientDir, stdio: "inherit" });
  const built = await build({
    entryPoints: [join(clientDir, "dist/src/index.js")],
    bundle: true,
    format: "iife",
    globalName: "Portcullis",
    platform: "browser",
    target: "chrome120",
    write: false,
    logLevel: "warning",
  });
  bundle = built.outputFiles[0].text;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
});

after(async () => {
  await browser?.close();
});

async function register() {
  const email = `browser-sdk-${randomUUID().slice(0, 12)}@example.com`;
  const response = await fetch(`${base}/api/v1/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  assert.equal(response.status, 201);
  return email;
}

/** The api's auth_refresh_total by outcome (lines summed; 0 when absent). */
async function refreshCounts() {
  const text = await (await fetch(`${base}/metrics`)).text();
  const counts = { success: 0, grace: 0, reuse_detected: 0, invalid: 0 };
  for (const line of text.split("\n")) {
    const match = /^auth_refresh_total\{([^}]*)\}\s+(\S+)/.exec(line);
    const outcome = match && /outcome="([^"]+)"/.exec(match[1])?.[1];
    if (outcome) counts[outcome] = (counts[outcome] ?? 0) + Number(match[2]);
  }
  return counts;
}

function delta(before, after) {
  return Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - (before[k] ?? 0)]));
}

/** Confirms the address of `email` with the token of the link the worker mailed. */
async function verify(email) {
  for (let i = 0; i < 300; i++) {
    for (const file of readdirSync(mailDir).filter((f) => f.endsWith(".eml"))) {
      const raw = readFileSync(join(mailDir, file), "utf8").replace(/=\r?\n/g, "").replace(/=3D/gi, "=");
      const token = raw.includes(`To: ${email}`) && /verify-email\?token=([A-Za-z0-9_-]{43})/.exec(raw)?.[1];
      if (token) {
        const response = await fetch(`${base}/api/v1/auth/verify-email/confirm`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ token }),
        });
        assert.equal(response.status, 204);
        return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`no verification link reached ${email}`);
}

/** A browser context with two tabs of the test page at the API's origin. */
async function twoTabs() {
  return openTabs(base, 2);
}

/** A browser context with `count` tabs of the test page at `origin` (the API's, by one of its names). */
async function openTabs(origin, count) {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  await context.route(`${origin}/sdk-test/**`, (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === "/sdk-test/sdk.js") return route.fulfill({ contentType: "text/javascript", body: bundle });
    if (path === "/sdk-test/app.js") return route.fulfill({ contentType: "text/javascript", body: app });
    return route.fulfill({ contentType: "text/html", body: page });
  });
  const tabs = [];
  for (let i = 0; i < count; i++) {
    const tab = await context.newPage();
    const errors = [];
    tab.on("pageerror", (error) => errors.push(error));
    await tab.goto(`${origin}/sdk-test/index.html`);
    assert.equal(await tab.evaluate(() => typeof window.session), "object", `the SDK loaded: ${errors}`);
    // The path under test: both APIs are there (127.0.0.1 is a secure context).
    assert.deepEqual(
      await tab.evaluate(() => [typeof navigator.locks?.request, typeof BroadcastChannel]),
      ["function", "function"],
    );
    tabs.push(tab);
  }
  return { context, tabs };
}

const accessTokenOf = (tab) => tab.evaluate(() => session.accessToken());
const eventsOf = (tab) => tab.evaluate(() => window.events);

async function signInFirstTab(tabs, email) {
  const result = await tabs[0].evaluate(([e, p]) => session.signIn(e, p), [email, password]);
  assert.equal(result.mfaRequired, false);
  // The other tab hears of it on the channel.
  await tabs[1].waitForFunction(() => window.events.some((event) => event.type === "signedIn"), null, { timeout: 10_000 });
  assert.deepEqual(await eventsOf(tabs[1]), [{ type: "signedIn", fromOtherTab: true }]);
  const token = await accessTokenOf(tabs[0]);
  assert.equal(await accessTokenOf(tabs[1]), token, "both tabs hold the same token");
  return token;
}

test("two tabs with an expired token call the API at once: one rotation, both keep working", async () => {
  const email = await register();
  const { context, tabs } = await twoTabs();
  const [a, b] = tabs;
  const first = await signInFirstTab(tabs, email);

  for (const tab of tabs) await tab.evaluate((ms) => (window.skewMs = ms), expiredMs);
  const before = await refreshCounts();
  // Both tabs start their five requests at the same moment.
  const startAt = Date.now() + 500;
  const statuses = await Promise.all(
    tabs.map((tab) =>
      tab.evaluate(async (at) => {
        await new Promise((resolve) => setTimeout(resolve, at - Date.now()));
        const responses = await Promise.all(Array.from({ length: 5 }, () => session.fetch("/api/v1/users/me")));
        return responses.map((response) => response.status);
      }, startAt),
    ),
  );
  const after = await refreshCounts();
  assert.deepEqual(statuses, [Array(5).fill(200), Array(5).fill(200)]);
  const change = delta(before, after);
  assert.equal(change.success, 1, `exactly one rotation of the shared cookie: ${JSON.stringify(change)}`);
  assert.equal(change.grace, 0, "no tab presented the rotated cookie again");
  assert.equal(change.reuse_detected, 0, "no reuse detected");

  const renewed = await accessTokenOf(a);
  assert.ok(renewed && renewed !== first);
  assert.equal(await accessTokenOf(b), renewed, "the tab that waited took the other's token");
  const kinds = [...(await eventsOf(a)), ...(await eventsOf(b))].map((e) => e.type).sort();
  assert.deepEqual(kinds, ["refreshed", "refreshed", "signedIn", "signedIn"]);

  // Back on the real clock, each tab's token works on its own.
  for (const tab of tabs) {
    await tab.evaluate(() => (window.skewMs = 0));
    const me = await tab.evaluate(async () => {
      const response = await session.fetch("/api/v1/users/me");
      return { status: response.status, body: await response.json() };
    });
    assert.equal(me.status, 200);
    assert.equal(me.body.email, email);
  }
  assert.deepEqual(delta(after, await refreshCounts()), { success: 0, grace: 0, reuse_detected: 0, invalid: 0 });

  // The access token lives in memory only; the refresh token is out of script's reach.
  for (const tab of tabs) {
    assert.deepEqual(
      await tab.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie.includes("refresh_token")]),
      [0, 0, false],
    );
  }
  await a.screenshot({ path: join(artifacts, "sdk-tab-a-refreshed.png"), fullPage: true });
  await b.screenshot({ path: join(artifacts, "sdk-tab-b-refreshed.png"), fullPage: true });
  await context.close();
});

test("a sign-out in one tab reaches the other", async () => {
  const email = await register();
  const { context, tabs } = await twoTabs();
  const [a, b] = tabs;
  const token = await signInFirstTab(tabs, email);

  await b.evaluate(() => session.signOut());
  assert.deepEqual((await eventsOf(b)).at(-1), { type: "signedOut", reason: "signOut" });
  await a.waitForFunction(() => window.events.some((event) => event.type === "signedOut"), null, { timeout: 10_000 });
  assert.deepEqual((await eventsOf(a)).at(-1), { type: "signedOut", reason: "otherTab" });
  for (const tab of tabs) {
    assert.equal(await accessTokenOf(tab), null, "no token left in either tab");
    assert.equal(await tab.evaluate(() => session.claims()), null);
  }

  // On the server too: the cookie's session and its access token are gone.
  const refresh = await a.evaluate(async () => {
    const response = await fetch("/api/v1/auth/refresh", { method: "POST", credentials: "include" });
    return response.status;
  });
  assert.equal(refresh, 401);
  const me = await fetch(`${base}/api/v1/users/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(me.status, 401);
  await a.screenshot({ path: join(artifacts, "sdk-tab-a-signed-out.png"), fullPage: true });
  await b.screenshot({ path: join(artifacts, "sdk-tab-b-signed-out.png"), fullPage: true });
  await context.close();
});

test("a passkey: registered with the helper after a password sign-in, then signing in on its own", async () => {
  const email = await register();
  await verify(email); // a factor needs a verified address
  const origin = base.replace("//127.0.0.1:", "//localhost:");
  const { context, tabs } = await openTabs(origin, 1);
  const [tab] = tabs;
  const cdp = await context.newCDPSession(tab);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });

  assert.equal((await tab.evaluate(([e, p]) => session.signIn(e, p), [email, password])).mfaRequired, false);
  const added = await tab.evaluate(
    (p) => Portcullis.registerPasskey(session, { currentPassword: p, name: "Virtual authenticator" }),
    password,
  );
  assert.equal(added.name, "Virtual authenticator");
  assert.match(added.id, /^[0-9a-f-]{36}$/);
  assert.equal(added.last_used_at ?? null, null);
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true, "a discoverable credential");

  await tab.evaluate(() => session.signOut());
  assert.equal(await accessTokenOf(tab), null);
  const signedIn = await tab.evaluate(() => session.signInWithPasskey());
  assert.deepEqual(signedIn.claims.amr, ["hwk", "user"], "the passkey stood in for password and code");
  assert.equal((await tab.evaluate(() => session.user())).email, email);
  assert.deepEqual(
    (await eventsOf(tab)).map((event) => event.type),
    ["signedIn", "signedOut", "signedIn"],
  );
  const listed = await tab.evaluate(() => Portcullis.listPasskeys(session));
  assert.equal(listed.length, 1);
  assert.ok(listed[0].last_used_at, "the sign-in is recorded on the passkey");
  await tab.screenshot({ path: join(artifacts, "sdk-passkey-signed-in.png"), fullPage: true });

  await tab.evaluate(([p, id]) => Portcullis.removePasskey(session, id, { currentPassword: p }), [password, added.id]);
  assert.deepEqual(await tab.evaluate(() => Portcullis.listPasskeys(session)), []);
  await context.close();
});
