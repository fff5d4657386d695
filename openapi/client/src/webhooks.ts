// Verifying the security events Portcullis delivers to a webhook, as the
// Standard Webhooks specification defines it: HMAC-SHA256 with WebCrypto
// (Node 20+, Deno, Bun, workers, browsers), no dependency.
//
//   signed content   = `${webhook-id}.${webhook-timestamp}.${body}`
//   webhook-signature = space-separated `v1,<base64 HMAC>` (several while a
//                       secret is being rotated)
//   secret           = `whsec_` + base64 of the key bytes

/** A delivery that does not verify; `reason` says which check failed. */
export class WebhookVerificationError extends Error {
  override readonly name = "WebhookVerificationError";
  constructor(readonly reason: "headers" | "timestamp" | "signature" | "body") {
    super(`webhook verification failed: ${reason}`);
  }
}

/** The headers of a delivery: a `Headers`, or a plain object (Node's `request.headers`). */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyWebhookOptions {
  /** How far the timestamp may be from now, either way (seconds, default 300). */
  toleranceSeconds?: number;
  /** The clock, milliseconds since the epoch; `Date.now` by default. */
  now?: () => number;
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value.join(" ") : value;
}

function base64Bytes(text: string): Uint8Array<ArrayBuffer> | null {
  try {
    const binary = atob(text);
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** Equal lengths and bytes, in time that depends on the length only. */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

/**
 * Verifies a delivery and resolves to its parsed payload
 * (`{type, timestamp, data}`); rejects with a WebhookVerificationError when
 * a header is missing, the timestamp is more than 5 minutes away, no `v1`
 * signature matches the body, or the body is not JSON. Pass the body exactly
 * as received (the raw text or bytes, not re-serialised JSON).
 */
export async function verifyWebhook(
  secret: string,
  headers: WebhookHeaders,
  body: string | Uint8Array | ArrayBuffer,
  options: VerifyWebhookOptions = {},
): Promise<unknown> {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) throw new WebhookVerificationError("headers");

  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError("timestamp");
  const nowSeconds = Math.floor((options.now ?? Date.now)() / 1000);
  const tolerance = options.toleranceSeconds ?? 300;
  if (Math.abs(nowSeconds - Number(timestamp)) > tolerance) throw new WebhookVerificationError("timestamp");

  const keyBytes = base64Bytes(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret);
  if (!keyBytes || keyBytes.length === 0) throw new TypeError("the webhook secret is not whsec_ followed by base64");
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const bodyBytes = typeof body === "string" ? new TextEncoder().encode(body) : new Uint8Array(body);
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const content = new Uint8Array(prefix.length + bodyBytes.length);
  content.set(prefix);
  content.set(bodyBytes, prefix.length);
  const expected = new Uint8Array(await crypto.subtle.sign("HMAC", key, content));

  let matched = false;
  for (const entry of signatures.split(" ")) {
    const comma = entry.indexOf(",");
    if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
    const candidate = base64Bytes(entry.slice(comma + 1));
    // Every entry is compared, so the time does not tell which one matched.
    if (candidate && constantTimeEqual(candidate, expected)) matched = true;
  }
  if (!matched) throw new WebhookVerificationError("signature");

  try {
    return JSON.parse(new TextDecoder().decode(bodyBytes)) as unknown;
  } catch {
    throw new WebhookVerificationError("body");
  }
}
