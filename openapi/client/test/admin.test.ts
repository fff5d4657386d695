// The admin journey through the generated admin client, against a running
// api's admin listener (PORTCULLIS_ADMIN_URL, with a key in
// PORTCULLIS_ADMIN_KEY, as `just ts-client-test` sets them): invite a user
// who accepts through the emailed link, find them, disable and enable them,
// remove their second factor, and delete them.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { Secret, TOTP } from "otpauth";

import { createAdminClient, createPortcullisClient, refreshCookieOf } from "../src/index.js";
import { emailedToken, mailDir } from "./mail.js";

const baseUrl = process.env.PORTCULLIS_URL ?? "http://127.0.0.1:8000";
const adminUrl = process.env.PORTCULLIS_ADMIN_URL ?? "http://127.0.0.1:8001";
const api = createPortcullisClient(baseUrl);
const password = "correct horse battery staple";

function adminKey(): string {
  const key = process.env.PORTCULLIS_ADMIN_KEY;
  assert.ok(key, "PORTCULLIS_ADMIN_KEY must hold an admin key (just ts-client-test makes one)");
  return key;
}

test("invite, find, disable, enable, reset factors, delete", async () => {
  const admin = createAdminClient(adminUrl, adminKey());
  const email = `ts-admin-${randomUUID()}@example.com`;

  // Invite: an account without a password, and a set-password link.
  const invited = await admin.POST("/admin/v1/users", { body: { email, full_name: "Invited User" } });
  assert.equal(invited.response.status, 201);
  const id = invited.data!.id;
  assert.equal(invited.data!.email_verified, false);
  assert.equal(invited.data!.disabled, false);
  const token = await emailedToken(mailDir(), email, "You are invited to Portcullis", "reset-password");
  const accepted = await api.POST("/api/v1/auth/password-reset/confirm", {
    body: { token, new_password: password },
  });
  assert.equal(accepted.response.status, 204);

  // Find: by address prefix, then by id; accepting verified the address.
  const found = await admin.GET("/admin/v1/users", {
    params: { query: { email: email.slice(0, 20), verified: true, limit: 5 } },
  });
  assert.equal(found.response.status, 200);
  assert.deepEqual(found.data!.users.map((u) => u.id), [id]);
  const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(login.response.status, 200);
  const detail = await admin.GET("/admin/v1/users/{id}", { params: { path: { id } } });
  assert.equal(detail.response.status, 200);
  assert.equal(detail.data!.email_verified, true);
  assert.equal(detail.data!.active_sessions, 1);
  assert.equal(detail.data!.sessions.length, 1);
  assert.ok(detail.data!.last_login_at, "the login is recorded");

  // Disable: the session ends at once, and the right password gets 403.
  const auth = { Authorization: `Bearer ${login.data!.access_token}` };
  const disabled = await admin.POST("/admin/v1/users/{id}/disable", {
    params: { path: { id } },
    body: { reason: "journey test" },
  });
  assert.equal(disabled.response.status, 204);
  assert.equal((await api.GET("/api/v1/users/me", { headers: auth })).response.status, 401);
  const cookie = refreshCookieOf(login.response)!;
  const refreshed = await api.POST("/api/v1/auth/refresh", { headers: { Cookie: `refresh_token=${cookie}` } });
  assert.equal(refreshed.response.status, 401);
  const refused = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(refused.response.status, 403);
  assert.match((refused.error as { type: string }).type, /account-disabled$/);

  // Enable: the password works again; enrol a second factor.
  const enabled = await admin.POST("/admin/v1/users/{id}/enable", { params: { path: { id } } });
  assert.equal(enabled.response.status, 204);
  const again = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(again.response.status, 200);
  const bearer = { Authorization: `Bearer ${again.data!.access_token}` };
  const enrolment = await api.POST("/api/v1/users/me/mfa/totp", {
    headers: bearer,
    body: { current_password: password },
  });
  assert.equal(enrolment.response.status, 201);
  const code = TOTP.generate({ secret: Secret.fromBase32(enrolment.data!.secret), period: 30 });
  const confirmed = await api.POST("/api/v1/users/me/mfa/totp/confirm", { headers: bearer, body: { code } });
  assert.equal(confirmed.response.status, 200);
  const withFactor = await admin.GET("/admin/v1/users/{id}", { params: { path: { id } } });
  assert.equal(withFactor.data!.factors.totp, true);
  assert.equal(withFactor.data!.factors.recovery_codes_left, 10);

  // Reset factors: the password alone signs in again.
  const reset = await admin.DELETE("/admin/v1/users/{id}/mfa", { params: { path: { id } } });
  assert.equal(reset.response.status, 204);
  const withoutFactor = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(withoutFactor.response.status, 200);

  // The trail names the key for every admin action.
  const events = await admin.GET("/admin/v1/users/{id}/events", { params: { path: { id }, query: { limit: 100 } } });
  assert.equal(events.response.status, 200);
  const byAdmin = events.data!.events.filter((e) => e.actor.kind === "admin").map((e) => e.type);
  for (const type of ["account.registered", "account.disabled", "account.enabled", "mfa.disabled"]) {
    assert.ok(byAdmin.includes(type), `${type} by the admin in ${byAdmin.join(", ")}`);
  }

  // Delete: gone for the admin API too.
  const deleted = await admin.DELETE("/admin/v1/users/{id}", { params: { path: { id } } });
  assert.equal(deleted.response.status, 204);
  const gone = await admin.GET("/admin/v1/users/{id}", { params: { path: { id } } });
  assert.equal(gone.response.status, 404);
});

test("the admin API wants a key, and the public listener has no admin paths", async () => {
  const noKey = await fetch(`${adminUrl}/admin/v1/users`);
  assert.equal(noKey.status, 401);
  assert.equal(noKey.headers.get("www-authenticate"), "Bearer");
  const wrongKey = createAdminClient(adminUrl, `pcadm_${"A".repeat(43)}`);
  assert.equal((await wrongKey.GET("/admin/v1/users")).response.status, 401);
  const onPublic = await fetch(`${baseUrl}/admin/v1/users`, { headers: { Authorization: `Bearer ${adminKey()}` } });
  assert.equal(onPublic.status, 404);
});
