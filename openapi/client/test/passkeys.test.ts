// The passkey helpers against a stand-in for the API, in Node: the
// requests they send, the options they hand to the ceremony (bare, as the
// API sends them, or wrapped as `{publicKey}`), and what they make of the
// answers, refusals included. The browser's ceremony is replaced by a
// function that records its options. The real ceremonies, against the api
// with Chromium's virtual authenticator, are in tests/browser/sdk.test.mjs.
import assert from "node:assert/strict";
import { test } from "node:test";

import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from "@simplewebauthn/browser";

import {
  createSession,
  listPasskeys,
  PortcullisError,
  registerPasskey,
  removePasskey,
  unwrapOptions,
  type SessionEvent,
} from "../src/index.js";

const baseUrl = "https://auth.example.test";

interface Seen {
  method: string;
  path: string;
  authorization: string | null;
  body: unknown;
}

/** A JWT-shaped token (unsigned: the session decodes, never verifies). */
function token(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "EdDSA", typ: "JWT" })}.${part(claims)}.c2ln`;
}

/** A fake API: answers from `routes` ("METHOD /path"), records every request. */
function fakeApi(routes: Record<string, (body: unknown) => [number, unknown]>) {
  const seen: Seen[] = [];
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const request = new Request(input, init);
    const path = new URL(request.url).pathname;
    const text = await request.text();
    const body = text ? (JSON.parse(text) as unknown) : undefined;
    seen.push({ method: request.method, path, authorization: request.headers.get("authorization"), body });
    const route = routes[`${request.method} ${path}`];
    const [status, answer] = route ? route(body) : [404, { type: "about:blank", title: "Not Found", status: 404, detail: path }];
    return new Response(answer === undefined ? null : JSON.stringify(answer), {
      status,
      headers: { "content-type": status >= 400 ? "application/problem+json" : "application/json" },
    });
  };
  return { fetch, seen };
}

const creation: PublicKeyCredentialCreationOptionsJSON = {
  rp: { id: "auth.example.test", name: "Portcullis" },
  user: { id: "dXNlcg", name: "ada@example.com", displayName: "Ada" },
  challenge: "Y2hhbGxlbmdl",
  pubKeyCredParams: [{ type: "public-key", alg: -8 }],
  authenticatorSelection: { residentKey: "required", userVerification: "required" },
};
const request: PublicKeyCredentialRequestOptionsJSON = {
  challenge: "YXNzZXJ0",
  rpId: "auth.example.test",
  userVerification: "required",
};
const registration = { id: "cred", rawId: "cred", type: "public-key" } as unknown as RegistrationResponseJSON;
const assertion = { id: "cred", rawId: "cred", type: "public-key" } as unknown as AuthenticationResponseJSON;

test("unwrapOptions takes the options out of {publicKey} and leaves bare ones alone", () => {
  assert.equal(unwrapOptions({ publicKey: creation }), creation);
  assert.equal(unwrapOptions(creation), creation);
  assert.equal(unwrapOptions(request), request);
});

for (const wrapped of [true, false]) {
  test(`registerPasskey: start with the password, the ceremony, finish (${wrapped ? "wrapped" : "bare"} options)`, async () => {
    const access = token({ sub: "u1", amr: ["pwd"] });
    const added = { id: "p1", name: "Laptop", created_at: "2025-01-01T00:00:00Z", last_used_at: null };
    const api = fakeApi({
      "POST /api/v1/auth/login": () => [200, { access_token: access, token_type: "bearer", expires_in: 900 }],
      "POST /api/v1/users/me/passkeys/registration/start": () => [
        200,
        { challenge_id: "ch1", options: wrapped ? { publicKey: creation } : creation },
      ],
      "POST /api/v1/users/me/passkeys/registration/finish": () => [201, added],
      "GET /api/v1/users/me/passkeys": () => [200, { passkeys: [added] }],
      "DELETE /api/v1/users/me/passkeys/p1": () => [204, undefined],
    });
    const session = createSession({ baseUrl, fetch: api.fetch, crossTab: false });
    await session.signIn("ada@example.com", "correct horse battery staple");

    const ceremonies: unknown[] = [];
    const passkey = await registerPasskey(session, {
      currentPassword: "correct horse battery staple",
      name: "Laptop",
      startRegistration: async (options) => {
        ceremonies.push(options);
        return registration;
      },
    });
    assert.deepEqual(passkey, added);
    assert.deepEqual(ceremonies, [{ optionsJSON: creation }], "the ceremony gets the bare options");
    const [, start, finish] = api.seen;
    assert.deepEqual(start, {
      method: "POST",
      path: "/api/v1/users/me/passkeys/registration/start",
      authorization: `Bearer ${access}`,
      body: { current_password: "correct horse battery staple" },
    });
    assert.deepEqual(finish, {
      method: "POST",
      path: "/api/v1/users/me/passkeys/registration/finish",
      authorization: `Bearer ${access}`,
      body: { challenge_id: "ch1", name: "Laptop", credential: registration },
    });

    assert.deepEqual(await listPasskeys(session), [added]);
    await removePasskey(session, "p1", { currentPassword: "correct horse battery staple" });
    assert.deepEqual(api.seen.at(-1)?.body, { current_password: "correct horse battery staple" });
    session.close();
  });
}

test("registerPasskey rejects with the API's problem (wrong password) before any ceremony", async () => {
  const api = fakeApi({
    "POST /api/v1/auth/login": () => [200, { access_token: token({ sub: "u1" }), token_type: "bearer", expires_in: 900 }],
    "POST /api/v1/users/me/passkeys/registration/start": () => [
      400,
      { type: "https://portcullis.dev/problems/wrong-password", title: "Bad Request", status: 400, detail: "x", correlation_id: "c" },
    ],
  });
  const session = createSession({ baseUrl, fetch: api.fetch, crossTab: false });
  await session.signIn("ada@example.com", "pw");
  let ceremony = false;
  await assert.rejects(
    registerPasskey(session, {
      currentPassword: "wrong",
      name: "Laptop",
      startRegistration: async () => {
        ceremony = true;
        return registration;
      },
    }),
    (error: unknown) => error instanceof PortcullisError && error.status === 400 && error.slug === "wrong-password",
  );
  assert.equal(ceremony, false);
  session.close();
});

test("signInWithPasskey: start {}, the assertion, finish; the token body signs the session in", async () => {
  const access = token({ sub: "u2", amr: ["hwk", "user"] });
  const api = fakeApi({
    "POST /api/v1/auth/passkey/start": () => [200, { challenge_id: "ch2", options: { publicKey: request } }],
    "POST /api/v1/auth/passkey/finish": () => [200, { access_token: access, token_type: "bearer", expires_in: 900 }],
  });
  const session = createSession({ baseUrl, fetch: api.fetch, crossTab: false });
  const events: SessionEvent[] = [];
  session.onChange((event) => events.push(event));

  const ceremonies: unknown[] = [];
  const result = await session.signInWithPasskey({
    startAuthentication: async (options) => {
      ceremonies.push(options);
      return assertion;
    },
  });
  assert.deepEqual(ceremonies, [{ optionsJSON: request, useBrowserAutofill: undefined }]);
  assert.deepEqual(
    api.seen.map(({ path, body }) => ({ path, body })),
    [
      { path: "/api/v1/auth/passkey/start", body: {} },
      { path: "/api/v1/auth/passkey/finish", body: { challenge_id: "ch2", credential: assertion } },
    ],
  );
  assert.deepEqual(result.claims?.amr, ["hwk", "user"]);
  assert.deepEqual(events, [{ type: "signedIn" }]);
  assert.equal(await session.accessToken(), access);
  session.close();
});

test("signInWithPasskey rejects on a refused assertion (401 invalid-passkey) and stays signed out", async () => {
  const api = fakeApi({
    "POST /api/v1/auth/passkey/start": () => [200, { challenge_id: "ch3", options: request }],
    "POST /api/v1/auth/passkey/finish": () => [
      401,
      { type: "https://portcullis.dev/problems/invalid-passkey", title: "Unauthorized", status: 401, detail: "x", correlation_id: "c" },
    ],
  });
  const session = createSession({ baseUrl, fetch: api.fetch, crossTab: false });
  const events: SessionEvent[] = [];
  session.onChange((event) => events.push(event));
  await assert.rejects(
    session.signInWithPasskey({ startAuthentication: async () => assertion }),
    (error: unknown) => error instanceof PortcullisError && error.slug === "invalid-passkey",
  );
  assert.deepEqual(events, []);
  assert.equal(session.claims(), null);
  session.close();
});
