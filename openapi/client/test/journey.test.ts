// The whole user journey through the generated client, against a running
// API (PORTCULLIS_URL, as `just ts-client-test` sets it).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { createPortcullisClient, refreshCookieOf } from "../src/index.js";

const baseUrl = process.env.PORTCULLIS_URL ?? "http://127.0.0.1:8000";
const api = createPortcullisClient(baseUrl);
const password = "correct horse battery staple";

test("register, log in, me, refresh, log out, reset", async () => {
  const email = `ts-${randomUUID()}@example.com`;

  const registered = await api.POST("/api/v1/auth/register", {
    body: { email, password, full_name: "Type Script" },
  });
  assert.equal(registered.response.status, 201);
  assert.equal(registered.data?.email, email);
  assert.equal(registered.data?.full_name, "Type Script");

  const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(login.response.status, 200);
  assert.equal(login.data?.token_type, "bearer");
  const cookie = refreshCookieOf(login.response);
  assert.ok(cookie, "the refresh token comes as a cookie");
  const auth = { Authorization: `Bearer ${login.data!.access_token}` };

  const me = await api.GET("/api/v1/users/me", { headers: auth });
  assert.equal(me.response.status, 200);
  assert.equal(me.data?.id, registered.data?.id);

  const refreshed = await api.POST("/api/v1/auth/refresh", {
    headers: { Cookie: `refresh_token=${cookie}` },
  });
  assert.equal(refreshed.response.status, 200);
  const rotated = refreshCookieOf(refreshed.response);
  assert.ok(rotated && rotated !== cookie, "the cookie rotates");
  const renewed = { Authorization: `Bearer ${refreshed.data!.access_token}` };

  const sessions = await api.GET("/api/v1/users/me/sessions", { headers: renewed });
  assert.equal(sessions.data?.length, 1);
  assert.equal(sessions.data?.[0].current, true);

  const logout = await api.POST("/api/v1/auth/logout", {
    headers: { ...renewed, Cookie: `refresh_token=${rotated}` },
  });
  assert.equal(logout.response.status, 204);

  const after = await api.GET("/api/v1/users/me", { headers: renewed });
  assert.equal(after.response.status, 401);
  assert.equal(after.error?.status, 401);
  assert.match(after.error?.type ?? "", /unauthorized$/);

  const reset = await api.POST("/api/v1/auth/password-reset/request", { body: { email } });
  assert.equal(reset.response.status, 202);
});

test("errors come back as typed problems", async () => {
  const bad = await api.POST("/api/v1/auth/register", {
    body: { email: "not-an-email", password: "short" },
  });
  assert.equal(bad.response.status, 422);
  assert.equal(bad.error?.status, 422);
  const fields = (bad.error?.errors ?? []).map((e) => e.field).sort();
  assert.deepEqual(fields, ["email", "password"]);
});
