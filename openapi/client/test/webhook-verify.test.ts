// verifyWebhook (WebCrypto, no dependency) against deliveries signed by the
// npm `standardwebhooks` package, a Standard Webhooks implementation
// Portcullis did not write: whatever it signs, verifyWebhook accepts, and
// both refuse the same forgeries. (webhooks.test.ts checks it on the
// worker's real deliveries too.)
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { test } from "node:test";

import { Webhook } from "standardwebhooks";

import { verifyWebhook, WebhookVerificationError } from "../src/index.js";

const secret = `whsec_${randomBytes(32).toString("base64")}`;
const signer = new Webhook(secret);
const payload = JSON.stringify({
  type: "session.login_succeeded",
  timestamp: new Date().toISOString(),
  data: { id: randomUUID(), user_id: randomUUID(), details: { note: "ünïcode ✓" } },
});

/** The headers of a delivery of `body` signed at `at` by standardwebhooks. */
function signed(body: string, at = new Date(), id = `msg_${randomUUID()}`): Record<string, string> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": signer.sign(id, at, body),
  };
}

/** Whether standardwebhooks accepts the delivery. */
function theyAccept(body: string, headers: Record<string, string>, key = signer): boolean {
  try {
    key.verify(body, headers);
    return true;
  } catch {
    return false;
  }
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof WebhookVerificationError, String(error));
    return error.reason;
  }
  assert.fail("the delivery was accepted");
}

test("a delivery standardwebhooks signed verifies, as text, bytes or Headers", async () => {
  const headers = signed(payload);
  assert.ok(theyAccept(payload, headers));
  assert.deepEqual(await verifyWebhook(secret, headers, payload), JSON.parse(payload));
  assert.deepEqual(await verifyWebhook(secret, new Headers(headers), new TextEncoder().encode(payload)), JSON.parse(payload));
  const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
  assert.deepEqual(await verifyWebhook(secret, upper, payload), JSON.parse(payload));
  // The secret without its prefix is the same key.
  assert.deepEqual(await verifyWebhook(secret.slice("whsec_".length), headers, payload), JSON.parse(payload));
});

test("several signatures: one valid v1 among others is enough, none is not", async () => {
  const headers = signed(payload);
  const valid = headers["webhook-signature"];
  const other = new Webhook(`whsec_${randomBytes(32).toString("base64")}`);
  const stale = other.sign(headers["webhook-id"], new Date(Number(headers["webhook-timestamp"]) * 1000), payload);
  for (const list of [`${stale} ${valid}`, `${valid} ${stale}`, `v1a,${valid.slice(3)} ${valid}`, `v2,AAAA ${stale} ${valid}`]) {
    const rotating = { ...headers, "webhook-signature": list };
    assert.ok(theyAccept(payload, rotating), list);
    assert.deepEqual(await verifyWebhook(secret, rotating, payload), JSON.parse(payload), list);
  }
  for (const list of [stale, `v1a,${valid.slice(3)}`, `v2,${valid.slice(3)}`, "v1,", "v1,%%%", ""]) {
    const forged = { ...headers, "webhook-signature": list };
    assert.equal(theyAccept(payload, forged), false, list);
    assert.equal(await refusal(verifyWebhook(secret, forged, payload)), list ? "signature" : "headers", list);
  }
});

test("a changed body, id or timestamp, or another secret, does not verify", async () => {
  const headers = signed(payload);
  const cases: [string, string, Record<string, string>][] = [
    ["body", payload.replace("session.login_succeeded", "session.logged_out"), headers],
    ["body with a space", `${payload} `, headers],
    ["id", payload, { ...headers, "webhook-id": `msg_${randomUUID()}` }],
    ["timestamp", payload, { ...headers, "webhook-timestamp": String(Number(headers["webhook-timestamp"]) - 1) }],
  ];
  for (const [what, body, forged] of cases) {
    assert.equal(theyAccept(body, forged), false, what);
    assert.equal(await refusal(verifyWebhook(secret, forged, body)), "signature", what);
  }
  const otherSecret = `whsec_${randomBytes(32).toString("base64")}`;
  assert.equal(theyAccept(payload, headers, new Webhook(otherSecret)), false);
  assert.equal(await refusal(verifyWebhook(otherSecret, headers, payload)), "signature");
});

test("the timestamp must be within 5 minutes either way", async () => {
  const minute = 60_000;
  for (const [offsetMs, accepted] of [
    [-4 * minute, true],
    [4 * minute, true],
    [-6 * minute, false],
    [6 * minute, false],
  ] as const) {
    const headers = signed(payload, new Date(Date.now() + offsetMs));
    assert.equal(theyAccept(payload, headers), accepted, `standardwebhooks, ${offsetMs} ms`);
    if (accepted) {
      assert.deepEqual(await verifyWebhook(secret, headers, payload), JSON.parse(payload));
    } else {
      assert.equal(await refusal(verifyWebhook(secret, headers, payload)), "timestamp", `${offsetMs} ms`);
    }
  }
  // The clock and the tolerance are the caller's to set.
  const old = signed(payload, new Date(Date.now() - 10 * minute));
  assert.deepEqual(await verifyWebhook(secret, old, payload, { now: () => Date.now() - 10 * minute }), JSON.parse(payload));
  assert.deepEqual(await verifyWebhook(secret, old, payload, { toleranceSeconds: 900 }), JSON.parse(payload));
  assert.equal(await refusal(verifyWebhook(secret, { ...old, "webhook-timestamp": "soon" }, payload)), "timestamp");
});

test("a missing header refuses the delivery", async () => {
  const headers = signed(payload);
  for (const name of Object.keys(headers)) {
    const { [name]: _, ...missing } = headers;
    assert.equal(await refusal(verifyWebhook(secret, missing, payload)), "headers", name);
  }
});
