// The session manager against a running API (PORTCULLIS_URL, as `just
// ts-client-test` sets it), in Node: a cookie jar (test/jar.ts) stands in
// for the browser's, and an injected clock makes a token look expired
// without waiting ACCESS_TOKEN_TTL_SECONDS. Rotations are counted where they
// happen, in the api's `auth_refresh_total`, so these tests run one file at
// a time (`--test-concurrency=1`).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import {
  confirmTotp,
  createPortcullisClient,
  disableTotp,
  enrolTotp,
  PortcullisError,
  type LockManagerLike,
} from "../src/index.js";
import { cookieJar, delta, refreshCounts, testSession } from "./jar.js";
import { emailedToken, mailDir } from "./mail.js";
import { awayFromStepEdge, codeAt } from "./totp.js";

const baseUrl = process.env.PORTCULLIS_URL ?? "http://127.0.0.1:8000";
const api = createPortcullisClient(baseUrl);
const password = "correct horse battery staple";
/** Past ACCESS_TOKEN_TTL_SECONDS (900): every token issued before looks expired. */
const expired = 901;

async function register(verified = false): Promise<{ email: string; id: string }> {
  const email = `ts-session-${randomUUID()}@example.com`;
  const registered = await api.POST("/api/v1/auth/register", { body: { email, password } });
  assert.equal(registered.response.status, 201);
  if (verified) {
    const token = await emailedToken(mailDir(), email, "Verify your email address");
    const confirmed = await api.POST("/api/v1/auth/verify-email/confirm", { body: { token } });
    assert.equal(confirmed.response.status, 204);
  }
  return { email, id: registered.data!.id };
}

test("20 concurrent requests with an expired token share one refresh", async () => {
  const { email, id } = await register();
  const { session, jar, events, skew } = testSession(baseUrl);

  const signedIn = await session.signIn(email, password);
  assert.equal(signedIn.mfaRequired, false);
  assert.deepEqual(events, [{ type: "signedIn" }]);
  assert.equal(session.claims()?.sub, id);
  assert.ok(jar.cookie, "the refresh cookie is in the jar");
  const first = await session.accessToken();
  assert.ok(first);
  assert.equal(jar.count("/api/v1/auth/refresh"), 0, "a fresh token is not refreshed");

  skew(expired);
  const before = await refreshCounts(baseUrl);
  const responses = await Promise.all(Array.from({ length: 20 }, () => session.fetch("/api/v1/users/me")));
  const after = await refreshCounts(baseUrl);

  assert.deepEqual(
    responses.map((response) => response.status),
    Array(20).fill(200),
  );
  for (const response of responses) assert.equal(((await response.json()) as { id: string }).id, id);
  // Counted by the server: one rotation, and no second refresh of the same cookie.
  assert.deepEqual(delta(before, after), { success: 1, grace: 0, reuse_detected: 0, invalid: 0 });
  assert.equal(jar.count("/api/v1/auth/refresh"), 1, "one refresh request left the session");
  const renewed = await session.accessToken();
  assert.ok(renewed && renewed !== first, "a new access token");
  const bearers = new Set(jar.log.filter((e) => e.path === "/api/v1/users/me").map((e) => e.bearer));
  assert.deepEqual([...bearers], [renewed], "all 20 requests carried the renewed token");
  assert.deepEqual(events, [{ type: "signedIn" }, { type: "refreshed" }]);

  // Renewed on this clock: no more refreshes.
  assert.equal((await session.fetch("/api/v1/users/me")).status, 200);
  assert.equal(jar.count("/api/v1/auth/refresh"), 1);
  session.close();
});

test("a token the API refuses (401) is refreshed once and the request retried once", async () => {
  const { email } = await register();
  const { session, jar, events } = testSession(baseUrl);
  await session.signIn(email, password);

  // A password change stops every access token issued before it, while this
  // session's cookie keeps working.
  const changed = await session.fetch("/api/v1/users/me/password", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ current_password: password, new_password: "Quokka-Lantern-Fjord-93" }),
  });
  assert.equal(changed.status, 204);
  const stale = await session.accessToken();

  const before = await refreshCounts(baseUrl);
  const responses = await Promise.all(Array.from({ length: 20 }, () => session.fetch("/api/v1/users/me")));
  const after = await refreshCounts(baseUrl);
  assert.deepEqual(
    responses.map((response) => response.status),
    Array(20).fill(200),
  );
  const me = jar.log.filter((e) => e.path === "/api/v1/users/me");
  assert.equal(me.length, 40, "each request went out twice: refused, then retried");
  assert.equal(me.filter((e) => e.status === 401 && e.bearer === stale).length, 20);
  assert.equal(me.filter((e) => e.status === 200 && e.bearer !== stale).length, 20);
  assert.deepEqual(delta(before, after), { success: 1, grace: 0, reuse_detected: 0, invalid: 0 });
  assert.equal(jar.count("/api/v1/auth/refresh"), 1, "one refresh for the 20 refusals");
  assert.deepEqual(events, [{ type: "signedIn" }, { type: "refreshed" }]);

  // The typed client goes through the same path.
  const typed = await session.api.GET("/api/v1/users/me");
  assert.equal(typed.response.status, 200);
  assert.equal(typed.data?.email, email);
  session.close();
});

test("a refresh answered 401 after logout-all elsewhere signs the session out (ended)", async () => {
  const { email } = await register();
  const here = testSession(baseUrl);
  const elsewhere = testSession(baseUrl);
  await here.session.signIn(email, password);
  await elsewhere.session.signIn(email, password);

  await elsewhere.session.signOutEverywhere();
  assert.deepEqual(elsewhere.events, [{ type: "signedIn" }, { type: "signedOut", reason: "signOutEverywhere" }]);
  assert.equal(await elsewhere.session.accessToken(), null);

  // The other session still holds its (now revoked) token: the API refuses
  // it, the refresh is refused too, and the session ends.
  const response = await here.session.fetch("/api/v1/users/me");
  assert.equal(response.status, 401);
  assert.deepEqual(here.events, [{ type: "signedIn" }, { type: "signedOut", reason: "ended" }]);
  assert.equal(await here.session.accessToken(), null);
  assert.equal(here.session.claims(), null);
  assert.equal(await here.session.user(), null);
  assert.equal(here.jar.count("/api/v1/auth/refresh"), 1, "a signed-out session stops trying");
  here.session.close();
  elsewhere.session.close();
});

test("a refresh answered 401 once the cookie is gone signs the session out (ended)", async () => {
  const { email } = await register();
  const { session, jar, events, skew } = testSession(baseUrl);
  await session.signIn(email, password);
  jar.cookie = undefined;
  skew(expired);
  assert.equal(await session.accessToken(), null);
  assert.deepEqual(events, [{ type: "signedIn" }, { type: "signedOut", reason: "ended" }]);
  assert.equal(jar.log.at(-1)?.path, "/api/v1/auth/refresh");
  assert.equal(jar.log.at(-1)?.status, 401);
  session.close();
});

test("signOut ends the session on the server; restore brings a session back from the cookie", async () => {
  const { email, id } = await register();
  const jar = cookieJar();
  const first = testSession(baseUrl, { jar });
  await first.session.signIn(email, password);
  const token = await first.session.accessToken();

  // Another session manager on the same cookie (a page reload) restores it.
  const reloaded = testSession(baseUrl, { jar });
  assert.equal(await reloaded.session.restore(), true);
  assert.deepEqual(reloaded.events, [{ type: "signedIn" }]);
  assert.notEqual(await reloaded.session.accessToken(), token);
  assert.equal((await reloaded.session.user())?.id, id);

  const cookie = jar.cookie;
  await reloaded.session.signOut();
  assert.deepEqual(reloaded.events, [{ type: "signedIn" }, { type: "signedOut", reason: "signOut" }]);
  assert.equal(jar.cookie, undefined, "the API cleared the cookie");
  assert.equal(jar.log.at(-1)?.path, "/api/v1/auth/logout");
  assert.equal(jar.log.at(-1)?.status, 204);
  const refresh = await fetch(`${baseUrl}/api/v1/auth/refresh`, {
    method: "POST",
    headers: { Cookie: `refresh_token=${cookie}` },
  });
  assert.equal(refresh.status, 401, "the cookie's session ended on the server");
  const me = await fetch(`${baseUrl}/api/v1/users/me`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(me.status, 401, "and its access tokens with it");
  assert.equal(await reloaded.session.restore(), false);
  first.session.close();
  reloaded.session.close();
});

test("two tabs in one process (a shared jar, a lock and a BroadcastChannel): one rotation, sign-out reaches both", async () => {
  const { email } = await register();
  const jar = cookieJar();
  // A FIFO lock like navigator.locks within one origin.
  let tail: Promise<unknown> = Promise.resolve();
  const locks: LockManagerLike = {
    request(_name, callback) {
      const run = tail.then(() => callback());
      tail = run.catch(() => undefined);
      return run;
    },
  };
  const channelName = `portcullis-test-${randomUUID()}`;
  const tab = () =>
    testSession(baseUrl, {
      jar,
      crossTab: true,
      locks,
      channel: new BroadcastChannel(channelName) as never,
    });
  const a = tab();
  const b = tab();

  await a.session.signIn(email, password);
  const arrived = Date.now() + 5000;
  while (b.events.length === 0 && Date.now() < arrived) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(b.events, [{ type: "signedIn", fromOtherTab: true }], "the other tab hears the sign-in");
  assert.equal(await b.session.accessToken(), await a.session.accessToken());

  a.skew(expired);
  b.skew(expired);
  const before = await refreshCounts(baseUrl);
  const responses = await Promise.all(
    Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).session.fetch("/api/v1/users/me")),
  );
  const after = await refreshCounts(baseUrl);
  assert.deepEqual(
    responses.map((response) => response.status),
    Array(20).fill(200),
  );
  assert.deepEqual(delta(before, after), { success: 1, grace: 0, reuse_detected: 0, invalid: 0 });
  assert.equal(jar.count("/api/v1/auth/refresh"), 1, "one tab refreshed, the other took its token");
  assert.equal(await a.session.accessToken(), await b.session.accessToken());

  await b.session.signOut();
  const heard = Date.now() + 5000;
  while (a.events.at(-1)?.type !== "signedOut" && Date.now() < heard) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(a.events.at(-1), { type: "signedOut", reason: "otherTab" });
  assert.equal(await a.session.accessToken(), null);
  assert.equal(jar.count("/api/v1/auth/refresh"), 1, "the signed-out tab does not try the cookie");
  a.session.close();
  b.session.close();
});

test("the second factor: enrol with the helper, then signIn → mfaRequired → completeMfa", async () => {
  const { email, id } = await register(true);
  const owner = testSession(baseUrl);
  await owner.session.signIn(email, password);

  const enrolment = await enrolTotp(owner.session, { currentPassword: password });
  assert.match(enrolment.secret, /^[A-Z2-7]+=*$/);
  const uri = new URL(enrolment.otpauthUri);
  assert.equal(uri.protocol, "otpauth:");
  assert.equal(uri.searchParams.get("secret"), enrolment.secret.replace(/=+$/, ""));
  assert.equal(uri.searchParams.get("issuer"), "Portcullis");
  await awayFromStepEdge();
  const recovery = await confirmTotp(owner.session, codeAt(enrolment.secret, -1));
  assert.equal(recovery.length, 10);

  const { session, events } = testSession(baseUrl);
  const step = await session.signIn(email, password);
  assert.equal(step.mfaRequired, true);
  assert.ok(step.mfaRequired && step.mfaToken.length > 0 && step.expiresIn > 0);
  assert.deepEqual(events, [], "not signed in before the second factor");
  assert.equal(await session.accessToken(), null);

  await assert.rejects(
    session.completeMfa(step.mfaToken, { code: codeAt(enrolment.secret, 0) === "000000" ? "111111" : "000000" }),
    (error: unknown) => error instanceof PortcullisError && error.status === 401,
  );
  assert.deepEqual(events, []);
  await awayFromStepEdge();
  const done = await session.completeMfa(step.mfaToken, { code: codeAt(enrolment.secret, 0) });
  assert.deepEqual(done.claims?.amr, ["pwd", "otp"]);
  assert.deepEqual(events, [{ type: "signedIn" }]);
  const me = await session.user();
  assert.equal(me?.id, id);
  assert.equal(me?.mfa_enabled, true);

  const byRecovery = testSession(baseUrl);
  const second = await byRecovery.session.signIn(email, password);
  assert.ok(second.mfaRequired);
  const recovered = await byRecovery.session.completeMfa(second.mfaToken, { recoveryCode: recovery[0] });
  assert.deepEqual(recovered.claims?.amr, ["pwd", "otp"]);
  assert.deepEqual(byRecovery.events, [{ type: "signedIn" }]);

  await disableTotp(session, { currentPassword: password, code: recovery[1] });
  const plain = testSession(baseUrl);
  assert.equal((await plain.session.signIn(email, password)).mfaRequired, false);
  for (const s of [owner.session, session, byRecovery.session, plain.session]) s.close();
});

test("a wrong password rejects with the API's problem", async () => {
  const { email } = await register();
  const { session, events } = testSession(baseUrl);
  await assert.rejects(session.signIn(email, "not the password at all"), (error: unknown) => {
    assert.ok(error instanceof PortcullisError);
    assert.equal(error.status, 401);
    assert.equal(error.slug, "invalid-credentials");
    return true;
  });
  assert.deepEqual(events, []);
  session.close();
});
