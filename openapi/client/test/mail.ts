// The worker's emails, as files in PORTCULLIS_MAIL_DIR (MAIL_TRANSPORT=file:DIR,
// as `just ts-client-test` sets it): the links the tests follow.
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** The directory the worker writes its emails to; throws when it is unset. */
export function mailDir(): string {
  const dir = process.env.PORTCULLIS_MAIL_DIR;
  assert.ok(dir, "PORTCULLIS_MAIL_DIR must name the worker's mail directory (just ts-client-test sets it)");
  return dir;
}

/** A message's header fields (unfolded), lowercased names to values. */
function headersOf(raw: string): Map<string, string> {
  const end = raw.search(/\r?\n\r?\n/);
  const block = (end < 0 ? raw : raw.slice(0, end)).replace(/\r?\n[ \t]+/g, " ");
  const headers = new Map<string, string>();
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  return headers;
}

/** The text with quoted-printable soft line breaks and `=3D` undone. */
function unquote(raw: string): string {
  return raw.replace(/=\r?\n/g, "").replace(/=3D/gi, "=");
}

/**
 * The token of the `/<page>?token=` link (`verify-email` or
 * `reset-password`) in the email to `to` under `subject`, polling the mail
 * directory `dir` for up to 30 s.
 */
export async function emailedToken(
  dir: string,
  to: string,
  subject: string,
  page: "verify-email" | "reset-password" = "verify-email",
): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    // Finished emails only: the worker writes `.ID.eml.partial`, then renames it.
    const files = (await readdir(dir)).filter((name) => name.endsWith(".eml"));
    for (const name of files) {
      const raw = await readFile(join(dir, name), "utf8");
      const headers = headersOf(raw);
      if (!(headers.get("to") ?? "").toLowerCase().includes(to.toLowerCase())) continue;
      if (headers.get("subject") !== subject) continue;
      const link = new RegExp(`${page}\\?token=([A-Za-z0-9_-]{43})`).exec(unquote(raw));
      assert.ok(link, `the email ${name} to ${to} ("${subject}") has a /${page}?token= link`);
      return link[1];
    }
    if (Date.now() > deadline) {
      assert.fail(`no email "${subject}" to ${to} in ${dir} within 30 s (${files.length} other emails there)`);
    }
    await sleep(200);
  }
}

