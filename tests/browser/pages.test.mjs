// The pages behind the emailed links, in a real headless Chromium, as a
// user meets them: the link from a real .eml the worker wrote, a weak
// password refused with its reason, a good one accepted, the link dead on a
// second visit, the verification link confirming on load, and a change of
// address waiting for a click.
//
// Needs: PORTCULLIS_URL (api), PORTCULLIS_MAIL_DIR (the worker's file
// transport), CHROMIUM (default /usr/bin/chromium), ARTIFACTS_DIR (where
// screenshots are kept).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

const base = required("PORTCULLIS_URL");
const mailDir = required("PORTCULLIS_MAIL_DIR");
const artifacts = process.env.ARTIFACTS_DIR ?? "target/browser";
const password = "correct horse battery staple";

function required(name) {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (see the justfile's browser-test recipe)`);
  return value;
}

let browser;

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
});

after(async () => {
  await browser?.close();
});

async function api(path, body) {
  return fetch(`${base}/api/v1${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function register() {
  const email = `browser-${randomUUID().slice(0, 12)}@example.com`;
  const response = await api("/auth/register", { email, password });
  assert.equal(response.status, 201);
  return email;
}

/** The link of `page` in the newest email to `email`, from the .eml file. */
async function linkFromMail(email, page) {
  const pattern = new RegExp(`(https?://[^\\s"<>]+/${page}\\?token=[A-Za-z0-9_-]{43})`);
  for (let i = 0; i < 300; i++) {
    const files = readdirSync(mailDir).filter((f) => f.endsWith(".eml"));
    for (const file of files) {
      // Undo quoted-printable soft breaks and escapes before matching.
      const raw = readFileSync(join(mailDir, file), "utf8")
        .replace(/=\r?\n/g, "")
        .replace(/=3D/gi, "=");
      if (raw.includes(`To: ${email}`)) {
        const match = raw.match(pattern);
        if (match) return match[1];
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`no ${page} link reached ${email}`);
}

/** A page that records every request it makes, to check none leaves the origin. */
async function openPage(viewport = { width: 1024, height: 768 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const requested = [];
  page.on("request", (request) => requested.push(request.url()));
  return { context, page, requested };
}

function assertSafeHeaders(headers) {
  const csp = headers["content-security-policy"] ?? "";
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(headers["referrer-policy"], "no-referrer");
  assert.equal(headers["cache-control"], "no-store");
  assert.equal(headers["x-frame-options"], "DENY");
}

test("a reset link: weak password refused with its reason, a good one set, the link then dead", async () => {
  const email = await register();
  assert.equal((await api("/auth/password-reset/request", { email })).status, 202);
  const link = await linkFromMail(email, "reset-password");
  const { context, page, requested } = await openPage();

  const response = await page.goto(link);
  assertSafeHeaders(response.headers());
  await page.waitForFunction(() => !window.location.search);
  assert.ok(!page.url().includes("token="), "the token leaves the address bar");

  // Keyboard only: the field has focus, Enter submits.
  await page.keyboard.type("password1234");
  await page.keyboard.press("Enter");
  const reason = page.locator("#password-error");
  await reason.filter({ hasText: /too easy to guess|at least/ }).waitFor();
  assert.equal(await page.getAttribute("#new-password", "aria-invalid"), "true");
  assert.equal(await page.getAttribute("#password-error", "aria-live"), "polite");

  await page.fill("#new-password", "");
  await page.keyboard.type("Quokka-Lantern-Fjord-93");
  await page.keyboard.press("Enter");
  await page.locator("#done").waitFor({ state: "visible" });
  await page.screenshot({ path: join(artifacts, "reset-done.png"), fullPage: true });

  const login = await api("/auth/login", { email, password: "Quokka-Lantern-Fjord-93" });
  assert.equal(login.status, 200, "the new password works");

  // The same link again: spent.
  await page.goto(link);
  await page.locator("#expired").waitFor({ state: "visible" });
  await page.screenshot({ path: join(artifacts, "reset-expired.png"), fullPage: true });
  const origin = new URL(base).origin;
  for (const url of requested) {
    assert.equal(new URL(url).origin, origin, `nothing is loaded from elsewhere: ${url}`);
  }
  await context.close();
});

test("the reset page fits a 320 px screen", async () => {
  const email = await register();
  assert.equal((await api("/auth/password-reset/request", { email })).status, 202);
  const link = await linkFromMail(email, "reset-password");
  const { context, page } = await openPage({ width: 320, height: 640 });
  await page.goto(link);
  await page.locator("#new-password").waitFor();
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.ok(overflow <= 0, `no sideways scrolling (${overflow} px too wide)`);
  await page.screenshot({ path: join(artifacts, "reset-320px.png"), fullPage: true });
  // An unknown link says at once that it does not work.
  await page.goto(`${base}/reset-password?token=${"A".repeat(43)}`);
  await page.locator("#expired").waitFor({ state: "visible" });
  await context.close();
});

test("a verification link confirms on load", async () => {
  const email = await register();
  const link = await linkFromMail(email, "verify-email");
  const { context, page } = await openPage();

  const response = await page.goto(link);
  assertSafeHeaders(response.headers());
  await page.locator("#done").waitFor({ state: "visible" });
  assert.ok(!page.url().includes("token="));
  await page.screenshot({ path: join(artifacts, "verify-done.png"), fullPage: true });

  const login = await api("/auth/login", { email, password });
  const { access_token } = await login.json();
  const me = await fetch(`${base}/api/v1/users/me`, {
    headers: { authorization: `Bearer ${access_token}` },
  });
  assert.equal((await me.json()).email_verified, true);

  await page.goto(link);
  await page.locator("#expired").waitFor({ state: "visible" });
  await context.close();
});

test("without script, the verification button posts the token", async () => {
  const email = await register();
  const link = await linkFromMail(email, "verify-email");
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();

  await page.goto(link);
  await page.getByRole("button", { name: "Verify my email address" }).click();
  await page.getByRole("heading", { name: "Your email address is verified" }).waitFor();
  await context.close();
});

test("a change-of-address link waits for a click: loading the page moves nothing", async () => {
  const email = await register();
  const verified = await api("/auth/verify-email/confirm", {
    token: new URL(await linkFromMail(email, "verify-email")).searchParams.get("token"),
  });
  assert.equal(verified.status, 204);
  const { access_token } = await (await api("/auth/login", { email, password })).json();
  const bearer = { authorization: `Bearer ${access_token}`, "content-type": "application/json" };
  const newEmail = `browser-new-${randomUUID().slice(0, 12)}@example.com`;
  const requested = await fetch(`${base}/api/v1/users/me/email`, {
    method: "POST",
    headers: bearer,
    body: JSON.stringify({ current_password: password, new_email: newEmail }),
  });
  assert.equal(requested.status, 202);
  const link = await linkFromMail(newEmail, "verify-email");
  const emailNow = async () =>
    (await (await fetch(`${base}/api/v1/users/me`, { headers: bearer })).json()).email;
  const { context, page, requested: loaded } = await openPage();

  // A scanner or a preview that runs the page's script gets this far.
  const response = await page.goto(link);
  assertSafeHeaders(response.headers());
  await page.waitForFunction(() => !window.location.search);
  const button = page.getByRole("button", { name: "Use this address for my account" });
  await button.waitFor({ state: "visible" });
  await page.waitForTimeout(1000);
  assert.equal(await page.locator("#done").isVisible(), false, "nothing confirmed on load");
  assert.equal(await emailNow(), email, "the account keeps its address until the click");
  await page.screenshot({ path: join(artifacts, "change-email-waiting.png"), fullPage: true });

  await button.click();
  await page.locator("#done").waitFor({ state: "visible" });
  await page.screenshot({ path: join(artifacts, "change-email-done.png"), fullPage: true });
  assert.equal(await emailNow(), newEmail, "the click moved the account");
  const origin = new URL(base).origin;
  for (const url of loaded) {
    assert.equal(new URL(url).origin, origin, `nothing is loaded from elsewhere: ${url}`);
  }
  await context.close();
});
