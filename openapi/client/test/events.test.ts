// The caller's security history through the generated client, against a
// running API (PORTCULLIS_URL, as `just ts-client-test` sets it): the events
// of a registration and a login, newest first, paged by cursor.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { createPortcullisClient } from "../src/index.js";

const baseUrl = process.env.PORTCULLIS_URL ?? "http://127.0.0.1:8000";
const api = createPortcullisClient(baseUrl);
const password = "correct horse battery staple";

test("a registration and a login are in the user's events, newest first, paged by cursor", async () => {
  const email = `ts-events-${randomUUID()}@example.com`;
  const registered = await api.POST("/api/v1/auth/register", { body: { email, password } });
  assert.equal(registered.response.status, 201);
  const wrong = await api.POST("/api/v1/auth/login", { body: { email, password: "not the password at all" } });
  assert.equal(wrong.response.status, 401);
  const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(login.response.status, 200);
  const headers = { Authorization: `Bearer ${login.data!.access_token}` };

  const all = await api.GET("/api/v1/users/me/events", { headers });
  assert.equal(all.response.status, 200);
  const types = all.data!.events.map((event) => event.type);
  assert.deepEqual(types, ["session.login_succeeded", "session.login_failed", "account.registered"]);
  assert.equal(all.data!.events[1].outcome, "failure");
  assert.equal((all.data!.events[1].details as { reason?: string }).reason, "wrong_password");
  assert.equal(all.data!.next_cursor, null);

  const first = await api.GET("/api/v1/users/me/events", { headers, params: { query: { limit: 2 } } });
  assert.equal(first.data!.events.length, 2);
  const cursor = first.data!.next_cursor;
  assert.ok(cursor, "a second page");
  const second = await api.GET("/api/v1/users/me/events", { headers, params: { query: { limit: 2, cursor } } });
  assert.deepEqual(
    second.data!.events.map((event) => event.type),
    ["account.registered"],
  );

  const bad = await api.GET("/api/v1/users/me/events", { headers, params: { query: { limit: 0 } } });
  assert.equal(bad.response.status, 422);
});
