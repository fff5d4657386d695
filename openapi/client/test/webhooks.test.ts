// Security events delivered to a webhook, verified by the npm
// `standardwebhooks` package, a Standard Webhooks library Portcullis did not
// write, and by the SDK's own `verifyWebhook`. `just ts-client-test` runs the
// api and worker with WEBHOOK_URL on PORTCULLIS_WEBHOOK_PORT and the secret in
// PORTCULLIS_WEBHOOK_SECRET; this test is the receiver.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { Webhook } from "standardwebhooks";

import { createPortcullisClient, verifyWebhook } from "../src/index.js";

const baseUrl = process.env.PORTCULLIS_URL ?? "http://127.0.0.1:8000";
const api = createPortcullisClient(baseUrl);
const password = "correct horse battery staple";

interface Delivery {
  headers: Record<string, string>;
  body: string;
}

function required(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (just ts-client-test sets it)`);
  return value;
}

async function bodyOf(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

test("the events of a registration and a login arrive signed, and standardwebhooks verifies them", async () => {
  const port = Number(required("PORTCULLIS_WEBHOOK_PORT"));
  const secret = required("PORTCULLIS_WEBHOOK_SECRET");
  const webhook = new Webhook(secret);
  const deliveries: Delivery[] = [];
  const server = createServer(async (request, response) => {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === "string") headers[name] = value;
    }
    deliveries.push({ headers, body: await bodyOf(request) });
    response.writeHead(204).end();
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  try {
    const email = `ts-webhook-${randomUUID()}@example.com`;
    const registered = await api.POST("/api/v1/auth/register", { body: { email, password } });
    assert.equal(registered.response.status, 201);
    const userId = registered.data!.id;
    const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
    assert.equal(login.response.status, 200);

    type Event = { type: string; data: { id: string; user_id: string; type: string } };
    const mine = (): { delivery: Delivery; event: Event }[] =>
      deliveries
        .map((delivery) => ({ delivery, event: JSON.parse(delivery.body) as Event }))
        .filter(({ event }) => event.data.user_id === userId);
    const deadline = Date.now() + 30_000;
    while (new Set(mine().map(({ event }) => event.data.id)).size < 2) {
      assert.ok(Date.now() < deadline, `2 deliveries expected within 30 s, got ${mine().length}`);
      await sleep(100);
    }

    const types = new Set<string>();
    for (const { delivery, event } of mine()) {
      // Throws unless the signature, the id and the timestamp hold.
      const verified = webhook.verify(delivery.body, delivery.headers) as Event;
      assert.equal(verified.data.id, event.data.id);
      assert.equal(delivery.headers["webhook-id"], event.data.id);
      assert.equal(delivery.headers["content-type"], "application/json");
      assert.equal(event.type, event.data.type);
      types.add(event.type);
      // The SDK's verifyWebhook agrees.
      assert.deepEqual(await verifyWebhook(secret, delivery.headers, delivery.body), verified);
      // A body changed on the way no longer verifies.
      const changed = delivery.body.replace(userId, randomUUID());
      assert.throws(() => webhook.verify(changed, delivery.headers));
      await assert.rejects(verifyWebhook(secret, delivery.headers, changed), /signature/);
    }
    assert.deepEqual([...types].sort(), ["account.registered", "session.login_succeeded"]);
  } finally {
    server.close();
  }
});
