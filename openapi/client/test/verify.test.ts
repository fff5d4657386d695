// verifyAccessToken against a running API (PORTCULLIS_URL) and its JWK set.
// PORTCULLIS_SIGNING_KEY names the api's own signing key (a file of
// JWT_SIGNING_KEYS) and PORTCULLIS_RETIRED_KEY a key that is not in the set;
// `just ts-client-test` sets both, so their absence fails the tests.
import assert from "node:assert/strict";
import { createPublicKey, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { calculateJwkThumbprint, decodeProtectedHeader, importPKCS8, SignJWT, type JWK } from "jose";

import { createPortcullisClient, verifyAccessToken } from "../src/index.js";

const baseUrl = process.env.PORTCULLIS_URL ?? "http://127.0.0.1:8000";
const api = createPortcullisClient(baseUrl);
const jwksUrl = `${baseUrl}/.well-known/jwks.json`;
const password = "correct horse battery staple";

/** The PEM in the file an environment variable names; throws when it is unset. */
function keyFile(variable: string): string {
  const path = process.env[variable];
  assert.ok(path, `${variable} must name a PKCS#8 PEM key file (just ts-client-test sets it)`);
  return readFileSync(path, "utf8");
}

/** The RFC 7638 SHA-256 thumbprint of the key's public part: the api's `kid`. */
async function kidOf(pem: string): Promise<string> {
  return calculateJwkThumbprint(createPublicKey(pem).export({ format: "jwk" }) as JWK);
}

/** A token signed with `pem` under `kid`, with the claims the api issues, overridden by `claims`. */
async function mint(pem: string, kid: string, claims: { aud?: string; iat?: number; exp?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const iat = claims.iat ?? now;
  return new SignJWT({ sid: randomUUID(), amr: ["pwd"], email_verified: false, iat_us: iat * 1_000_000 })
    .setProtectedHeader({ alg: "EdDSA", typ: "JWT", kid })
    .setSubject(randomUUID())
    .setJti(randomUUID())
    .setIssuer("portcullis")
    .setAudience(claims.aud ?? "portcullis")
    .setIssuedAt(iat)
    .setExpirationTime(claims.exp ?? now + 900)
    .sign(await importPKCS8(pem, "EdDSA"));
}

test("a real access token verifies offline against the JWK set", async () => {
  const email = `ts-verify-${randomUUID()}@example.com`;
  const registered = await api.POST("/api/v1/auth/register", { body: { email, password } });
  assert.equal(registered.response.status, 201);
  const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(login.response.status, 200);
  const token = login.data!.access_token;

  const claims = await verifyAccessToken(token, { jwksUrl });
  assert.equal(claims.sub, registered.data!.id);
  assert.deepEqual(claims.amr, ["pwd"]);
  assert.equal(claims.iss, "portcullis");
  assert.equal(claims.aud, "portcullis");
  assert.equal(claims.email_verified, false);
  assert.ok(claims.exp > claims.iat, "exp comes after iat");
  assert.equal(Math.floor(claims.iat_us / 1_000_000), claims.iat);

  // The same token also verifies with the URL as a URL and the defaults spelled out.
  const again = await verifyAccessToken(token, { jwksUrl: new URL(jwksUrl), issuer: "portcullis", audience: "portcullis" });
  assert.equal(again.jti, claims.jti);

  // A payload re-encoded with another sub, the signature kept, is refused...
  const [header, payload, signature] = token.split(".");
  const forged = { ...JSON.parse(Buffer.from(payload, "base64url").toString()), sub: randomUUID() };
  const reencoded = `${header}.${Buffer.from(JSON.stringify(forged)).toString("base64url")}.${signature}`;
  await assert.rejects(verifyAccessToken(reencoded, { jwksUrl }), { code: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" });

  // ...and so is one with a single character of the payload changed.
  const flipped = payload.slice(0, 10) + (payload[10] === "A" ? "B" : "A") + payload.slice(11);
  await assert.rejects(verifyAccessToken(`${header}.${flipped}.${signature}`, { jwksUrl }));
});

test("tokens minted with the api's key: the right audience verifies, another audience or an expired one does not", async () => {
  const pem = keyFile("PORTCULLIS_SIGNING_KEY");
  const kid = await kidOf(pem);

  // The key file is the api's: its kid is the one the api signs with and publishes.
  const jwks = await fetch(jwksUrl);
  assert.equal(jwks.status, 200);
  const { keys } = (await jwks.json()) as { keys: JWK[] };
  assert.deepEqual(keys.map((key) => key.kid), [kid]);
  const email = `ts-verify-${randomUUID()}@example.com`;
  assert.equal((await api.POST("/api/v1/auth/register", { body: { email, password } })).response.status, 201);
  const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
  assert.equal(decodeProtectedHeader(login.data!.access_token).kid, kid);

  // Correctly minted: verifies, so the refusals below are not a verifier refusing everything.
  const good = await mint(pem, kid);
  const claims = await verifyAccessToken(good, { jwksUrl });
  assert.deepEqual(claims.amr, ["pwd"]);

  await assert.rejects(verifyAccessToken(await mint(pem, kid, { aud: "someone-else" }), { jwksUrl }), {
    code: "ERR_JWT_CLAIM_VALIDATION_FAILED",
    claim: "aud",
  });
  // An audience the caller asks for explicitly is the one checked.
  await assert.rejects(verifyAccessToken(good, { jwksUrl, audience: "someone-else" }), { claim: "aud" });
  await assert.rejects(verifyAccessToken(good, { jwksUrl, issuer: "someone-else" }), { claim: "iss" });

  const now = Math.floor(Date.now() / 1000);
  await assert.rejects(verifyAccessToken(await mint(pem, kid, { iat: now - 1000, exp: now - 100 }), { jwksUrl }), {
    code: "ERR_JWT_EXPIRED",
  });
});

test("a token signed by a retired key is refused", async () => {
  const retired = keyFile("PORTCULLIS_RETIRED_KEY");
  const retiredKid = await kidOf(retired);
  const signingKid = await kidOf(keyFile("PORTCULLIS_SIGNING_KEY"));
  assert.notEqual(retiredKid, signingKid, "the retired key is another key");

  // Under its own kid: the JWK set has no such key.
  await assert.rejects(verifyAccessToken(await mint(retired, retiredKid), { jwksUrl }), {
    code: "ERR_JWKS_NO_MATCHING_KEY",
  });
  // Under the kid of the key in force: the signature does not match it.
  await assert.rejects(verifyAccessToken(await mint(retired, signingKid), { jwksUrl }), {
    code: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
  });
});
