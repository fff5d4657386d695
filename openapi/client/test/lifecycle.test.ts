// The account's lifecycle through the generated client, against a running API
// (PORTCULLIS_URL) and its worker writing each email as a file into
// PORTCULLIS_MAIL_DIR (MAIL_TRANSPORT=file:DIR), as `just ts-client-test`
// sets them: verify the address, move the account to another address, delete
// it. Without PORTCULLIS_MAIL_DIR the test fails.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { createPortcullisClient } from "../src/index.js";

const baseUrl = process.env.PORTCULLIS_URL ?? "http://127.0.0.1:8000";
const api = createPortcullisClient(baseUrl);
const password = "correct horse battery staple";

/** The directory the worker writes its emails to; throws when it is unset. */
function mailDir(): string {
  const dir = process.env.PORTCULLIS_MAIL_DIR;
  assert.ok(dir, "PORTCULLIS_MAIL_DIR must name the worker's mail directory (just ts-client-test sets it)");
  return dir;
}

/** A message's header fields (unfolded), lowercased names to values. */
function headersOf(raw: string): Map<string, string> {
  const end = raw.search(/\r?\n\r?\n/);
  const block = (end < 0 ? raw : raw.slice(0, end)).replace(/\r?\n[ \t]+/g, " ");
  const headers = new Map<string, string>();
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  return headers;
}

/** The text with quoted-printable soft line breaks and `=3D` undone. */
function unquote(raw: string): string {
  return raw.replace(/=\r?\n/g, "").replace(/=3D/gi, "=");
}

/**
 * The token of the `/verify-email?token=` link in the email to `to` under
 * `subject`, polling the mail directory `dir` for up to 30 s.
 */
async function emailedToken(dir: string, to: string, subject: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    // Finished emails only: the worker writes `.ID.eml.partial`, then renames it.
    const files = (await readdir(dir)).filter((name) => name.endsWith(".eml"));
    for (const name of files) {
      const raw = await readFile(join(dir, name), "utf8");
      const headers = headersOf(raw);
      if (!(headers.get("to") ?? "").toLowerCase().includes(to.toLowerCase())) continue;
      if (headers.get("subject") !== subject) continue;
      const link = /verify-email\?token=([A-Za-z0-9_-]{43})/.exec(unquote(raw));
      assert.ok(link, `the email ${name} to ${to} ("${subject}") has a /verify-email?token= link`);
      return link[1];
    }
    if (Date.now() > deadline) {
      assert.fail(`no email "${subject}" to ${to} in ${dir} within 30 s (${files.length} other emails there)`);
    }
    await sleep(200);
  }
}

/** POST /api/v1/auth/verify-email/confirm with a link's token. */
async function confirmEmail(token: string) {
  return api.POST("/api/v1/auth/verify-email/confirm", { body: { token } });
}

test("verify the address, move the account to another, delete it", async () => {
  const dir = mailDir();
  const email = `ts-life-${randomUUID()}@example.com`;

  const registered = await api.POST("/api/v1/auth/register", {
    body: { email, password, full_name: "Life Cycle" },
  });
  assert.equal(registered.response.status, 201);
  assert.equal(registered.data?.email_verified, false);
  assert.equal(registered.data?.mfa_enabled, false);

  const verifyToken = await emailedToken(dir, email, "Verify your email address");
  const verified = await confirmEmail(verifyToken);
  assert.equal(verified.response.status, 204);
  const again = await confirmEmail(verifyToken);
  assert.equal(again.response.status, 400, "a link works once");

  const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(login.response.status, 200);
  const auth = { Authorization: `Bearer ${login.data!.access_token}` };

  const me = await api.GET("/api/v1/users/me", { headers: auth });
  assert.equal(me.response.status, 200);
  assert.equal(me.data?.id, registered.data?.id);
  assert.equal(me.data?.email, email);
  assert.equal(me.data?.email_verified, true);
  assert.equal(me.data?.mfa_enabled, false);

  const newEmail = `ts-life-new-${randomUUID()}@example.com`;
  const change = await api.POST("/api/v1/users/me/email", {
    headers: auth,
    body: { current_password: password, new_email: newEmail },
  });
  assert.equal(change.response.status, 202);

  const changeToken = await emailedToken(dir, newEmail, "Confirm your new email address");
  const moved = await confirmEmail(changeToken);
  assert.equal(moved.response.status, 204);

  const afterMove = await api.GET("/api/v1/users/me", { headers: auth });
  assert.equal(afterMove.response.status, 200);
  assert.equal(afterMove.data?.id, registered.data?.id);
  assert.equal(afterMove.data?.email, newEmail);
  assert.equal(afterMove.data?.email_verified, true);

  const wrong = await api.DELETE("/api/v1/users/me", {
    headers: auth,
    body: { current_password: "not the password at all" },
  });
  assert.equal(wrong.response.status, 400);

  const deleted = await api.DELETE("/api/v1/users/me", {
    headers: auth,
    body: { current_password: password },
  });
  assert.equal(deleted.response.status, 204);

  const gone = await api.GET("/api/v1/users/me", { headers: auth });
  assert.equal(gone.response.status, 401);
  assert.equal(gone.error?.status, 401);
  assert.match(gone.error?.type ?? "", /unauthorized$/);

  const reregistered = await api.POST("/api/v1/auth/register", { body: { email: newEmail, password } });
  assert.equal(reregistered.response.status, 201);
  assert.notEqual(reregistered.data?.id, registered.data?.id);
  assert.equal(reregistered.data?.email_verified, false);
});
