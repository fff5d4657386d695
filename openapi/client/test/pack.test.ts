// The package as a project gets it: `npm pack`, then `npm install
// <tarball>` into a scratch project (from the npm registry for the
// dependencies), which imports it from plain JavaScript and type-checks
// against its declarations. `npm test` builds dist/ first.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
/** openapi/client (this file runs from dist/test/). */
const packageDir = fileURLToPath(new URL("../..", import.meta.url));

const consumerJs = `
import { createPortcullisClient, createSession, verifyWebhook, verifyAccessToken, createAdminClient } from "@portcullis/client";
import { verifyWebhook as fromSubpath } from "@portcullis/client/webhooks";
import { registerPasskey } from "@portcullis/client/passkeys";

const session = createSession({ baseUrl: "http://127.0.0.1:1" });
const out = {
  createSession: typeof createSession,
  createPortcullisClient: typeof createPortcullisClient,
  verifyWebhook: typeof verifyWebhook,
  verifyAccessToken: typeof verifyAccessToken,
  createAdminClient: typeof createAdminClient,
  registerPasskey: typeof registerPasskey,
  sameVerifyWebhook: fromSubpath === verifyWebhook,
  signedOutClaims: session.claims(),
};
if (process.env.PORTCULLIS_URL) {
  const api = createPortcullisClient(process.env.PORTCULLIS_URL);
  out.healthz = (await api.GET("/healthz")).response.status;
}
session.close();
console.log(JSON.stringify(out));
`;

const consumerTs = `
import {
  createSession,
  createPortcullisClient,
  verifyWebhook,
  type Session,
  type SessionEvent,
  type User,
} from "@portcullis/client";

export async function app(baseUrl: string): Promise<string | undefined> {
  const session: Session = createSession({ baseUrl });
  session.onChange((event: SessionEvent) => {
    if (event.type === "signedOut") console.log(event.reason);
  });
  const result = await session.signIn("ada@example.com", "correct horse battery staple");
  if (result.mfaRequired) await session.completeMfa(result.mfaToken, { code: "123456" });
  const me: User | null = await session.user();
  // The generated types came along: a user's email is a string.
  // @ts-expect-error
  const wrong: number | undefined = me?.email;
  const typed = await session.api.GET("/api/v1/users/me");
  await verifyWebhook("whsec_AAAA", new Headers(), "{}");
  createPortcullisClient(baseUrl);
  return typed.data?.email ?? String(wrong);
}
`;

test("npm pack makes a tarball that a scratch project installs, imports and type-checks", { timeout: 300_000 }, async () => {
  const scratch = await mkdtemp(join(tmpdir(), "portcullis-sdk-"));
  try {
    // dist/ is fresh: `npm test` built it.
    const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", scratch], {
      cwd: packageDir,
    });
    const [packed] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
    const files = packed.files.map((file) => file.path);
    for (const needed of [
      "package.json",
      "README.md",
      "dist/src/index.js",
      "dist/src/index.d.ts",
      "dist/src/session.js",
      "dist/src/passkeys.js",
      "dist/src/webhooks.js",
      "dist/src/schema.d.ts",
      "dist/src/admin-schema.d.ts",
    ]) {
      assert.ok(files.includes(needed), `the tarball has ${needed}`);
    }
    for (const file of files) {
      assert.ok(file === "package.json" || file === "README.md" || file.startsWith("dist/src/"), `only the build: ${file}`);
    }

    const project = join(scratch, "app");
    await mkdir(project);
    await writeFile(
      join(project, "package.json"),
      JSON.stringify({ name: "sdk-consumer", version: "0.0.0", private: true, type: "module" }),
    );
    await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", join(scratch, packed.filename)], {
      cwd: project,
    });

    // The dependencies a browser needs, nothing of the tests.
    const installed = JSON.parse(
      await readFile(join(project, "node_modules/@portcullis/client/package.json"), "utf8"),
    ) as { dependencies: Record<string, string> };
    assert.deepEqual(Object.keys(installed.dependencies).sort(), ["@simplewebauthn/browser", "jose", "openapi-fetch"]);
    for (const devOnly of ["standardwebhooks", "otpauth", "typescript", "openapi-typescript"]) {
      assert.ok(!existsSync(join(project, "node_modules", devOnly)), `${devOnly} is not installed with the SDK`);
    }

    await writeFile(join(project, "check.mjs"), consumerJs);
    const checked = await run(process.execPath, ["check.mjs"], { cwd: project });
    const out = JSON.parse(checked.stdout) as Record<string, unknown>;
    for (const name of ["createSession", "createPortcullisClient", "verifyWebhook", "verifyAccessToken", "createAdminClient", "registerPasskey"]) {
      assert.equal(out[name], "function", name);
    }
    assert.equal(out.sameVerifyWebhook, true, "the subpath and the root export the same function");
    assert.equal(out.signedOutClaims, null);
    if (process.env.PORTCULLIS_URL) assert.equal(out.healthz, 200, "the installed client reaches the api");

    // A TypeScript app resolves the declarations through the exports map.
    await writeFile(join(project, "app.ts"), consumerTs);
    await writeFile(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          lib: ["ES2022", "DOM"],
          types: [],
          strict: true,
          noEmit: true,
          skipLibCheck: false,
        },
        files: ["app.ts"],
      }),
    );
    const tsc = join(packageDir, "node_modules/typescript/bin/tsc");
    await run(process.execPath, [tsc, "-p", project]).catch((error: { stdout?: string }) => {
      assert.fail(`the consumer does not type-check:\n${error.stdout}`);
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});
