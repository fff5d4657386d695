// The account's lifecycle through the generated client, against a running API
// (PORTCULLIS_URL) and its worker writing each email as a file into
// PORTCULLIS_MAIL_DIR (MAIL_TRANSPORT=file:DIR), as `just ts-client-test`
// sets them: verify the address, move the account to another address, delete
// it. Without PORTCULLIS_MAIL_DIR the test fails.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { createPortcullisClient } from "../src/index.js";
import { emailedToken, mailDir } from "./mail.js";

const baseUrl = process.env.PORTCULLIS_URL ?? "http://127.0.0.1:8000";
const api = createPortcullisClient(baseUrl);
const password = "correct horse battery staple";

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
