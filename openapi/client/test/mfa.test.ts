// The second factor through the generated client, against a running API
// (PORTCULLIS_URL, as `just ts-client-test` sets it, with DATA_ENCRYPTION_KEY
// for the api, and the worker's mail in PORTCULLIS_MAIL_DIR): verify the
// address, enrol a TOTP factor, confirm it, log in with a code and with
// recovery codes, turn it off.
// The TOTP codes come from test/totp.ts.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { createPortcullisClient, refreshCookieOf, type Problem } from "../src/index.js";
import { emailedToken, mailDir } from "./mail.js";
import { awayFromStepEdge, codeAt } from "./totp.js";

const baseUrl = process.env.PORTCULLIS_URL ?? "http://127.0.0.1:8000";
const api = createPortcullisClient(baseUrl);
const password = "correct horse battery staple";

/** The 403 `mfa-required` problem: a ProblemDocument with the members of the second step. */
type MfaRequired = Problem & { mfa_token?: string; expires_in?: number };

/** The claims of a JWT (its payload, base64url JSON), unverified. */
function claimsOf(jwt: string): Record<string, unknown> {
  const parts = jwt.split(".");
  assert.equal(parts.length, 3, "a JWT has three parts");
  return JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8")) as Record<string, unknown>;
}

/** The password step of a login for an account with TOTP: its `mfa_token`. */
async function mfaToken(email: string): Promise<string> {
  const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(login.response.status, 403);
  assert.match(login.response.headers.get("content-type") ?? "", /^application\/problem\+json/);
  assert.equal(refreshCookieOf(login.response), undefined, "no cookie before the second factor");
  assert.equal(login.data, undefined);
  const problem = login.error as MfaRequired | undefined;
  assert.equal(problem?.status, 403);
  assert.match(problem?.type ?? "", /mfa-required$/);
  assert.equal(typeof problem?.mfa_token, "string");
  assert.ok(problem!.mfa_token!.length > 0, "the problem carries an mfa_token");
  assert.equal(typeof problem?.expires_in, "number");
  assert.ok(problem!.expires_in! > 0);
  return problem!.mfa_token!;
}

test("enrol TOTP, log in with a code and recovery codes, turn it off", async () => {
  const email = `ts-mfa-${randomUUID()}@example.com`;

  const registered = await api.POST("/api/v1/auth/register", {
    body: { email, password, full_name: "Two Factor" },
  });
  assert.equal(registered.response.status, 201);
  // A factor needs a verified address.
  const token = await emailedToken(mailDir(), email, "Verify your email address");
  const verified = await api.POST("/api/v1/auth/verify-email/confirm", { body: { token } });
  assert.equal(verified.response.status, 204);

  const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(login.response.status, 200);
  const auth = { Authorization: `Bearer ${login.data!.access_token}` };

  const before = await api.GET("/api/v1/users/me", { headers: auth });
  assert.equal(before.data?.mfa_enabled, false);

  // Enrol: the secret and its otpauth:// URI.
  const enrolled = await api.POST("/api/v1/users/me/mfa/totp", {
    headers: auth,
    body: { current_password: password },
  });
  assert.equal(enrolled.response.status, 201);
  const secret = enrolled.data!.secret;
  assert.match(secret, /^[A-Z2-7]+=*$/, "the secret is base32");
  const uri = enrolled.data!.otpauth_uri;
  assert.ok(uri.startsWith("otpauth://totp/Portcullis:"), uri);
  assert.ok(uri.includes("issuer=Portcullis"), uri);

  // Confirm with the previous step's code: 10 recovery codes, shown once.
  await awayFromStepEdge();
  const confirmed = await api.POST("/api/v1/users/me/mfa/totp/confirm", {
    headers: auth,
    body: { code: codeAt(secret, -1) },
  });
  assert.equal(confirmed.response.status, 200);
  const recovery = confirmed.data!.recovery_codes;
  assert.equal(recovery.length, 10);
  assert.equal(new Set(recovery).size, 10, "the recovery codes differ");

  const me = await api.GET("/api/v1/users/me", { headers: auth });
  assert.equal(me.response.status, 200);
  assert.equal(me.data?.mfa_enabled, true);

  // The password alone is not enough; the current step's code finishes the login.
  const first = await mfaToken(email);
  await awayFromStepEdge();
  const withCode = await api.POST("/api/v1/auth/login/mfa", {
    body: { mfa_token: first, code: codeAt(secret, 0) },
  });
  assert.equal(withCode.response.status, 200);
  assert.equal(withCode.data?.token_type, "bearer");
  assert.ok(refreshCookieOf(withCode.response), "the refresh token comes as a cookie");
  assert.deepEqual(claimsOf(withCode.data!.access_token).amr, ["pwd", "otp"]);
  const second = { Authorization: `Bearer ${withCode.data!.access_token}` };
  const meAgain = await api.GET("/api/v1/users/me", { headers: second });
  assert.equal(meAgain.data?.id, registered.data?.id);

  // A recovery code works once in place of a code.
  const byRecovery = await api.POST("/api/v1/auth/login/mfa", {
    body: { mfa_token: await mfaToken(email), recovery_code: recovery[0] },
  });
  assert.equal(byRecovery.response.status, 200);
  assert.ok(byRecovery.data?.access_token);
  assert.deepEqual(claimsOf(byRecovery.data!.access_token).amr, ["pwd", "otp"]);

  const spent = await api.POST("/api/v1/auth/login/mfa", {
    body: { mfa_token: await mfaToken(email), recovery_code: recovery[0] },
  });
  assert.equal(spent.response.status, 401);
  assert.equal(spent.error?.status, 401);
  assert.equal(spent.data, undefined);

  // Turn it off with the password and another recovery code.
  const disabled = await api.DELETE("/api/v1/users/me/mfa/totp", {
    headers: second,
    body: { current_password: password, code: recovery[1] },
  });
  assert.equal(disabled.response.status, 204);

  const plain = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(plain.response.status, 200);
  assert.ok(plain.data?.access_token);
  const off = await api.GET("/api/v1/users/me", {
    headers: { Authorization: `Bearer ${plain.data!.access_token}` },
  });
  assert.equal(off.data?.mfa_enabled, false);
});
