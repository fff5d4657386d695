// The Portcullis SDK: the API client (openapi-fetch over the types generated
// from openapi/openapi.json; `just ts-client` regenerates them), the session
// manager of a browser app, and the helpers beside it.
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, paths };
export { verifyAccessToken, type AccessTokenClaims, type VerifyAccessTokenOptions } from "./verify.js";
export {
  createSession,
  decodeClaims,
  type ChannelLike,
  type LockManagerLike,
  type SecondFactor,
  type Session,
  type SessionEvent,
  type SessionOptions,
  type SignInResult,
  type SignOutReason,
} from "./session.js";
export {
  listPasskeys,
  registerPasskey,
  removePasskey,
  unwrapOptions,
  type Passkey,
  type PasskeyRegistrationFinish,
  type PasskeyRegistrationStart,
  type PasskeySignInFinish,
  type PasskeySignInOptions,
  type PasskeySignInStart,
  type RegisterPasskeyOptions,
  type WrappedOptions,
} from "./passkeys.js";
export { confirmTotp, disableTotp, enrolTotp, type TotpEnrolment } from "./mfa.js";
export {
  verifyWebhook,
  WebhookVerificationError,
  type VerifyWebhookOptions,
  type WebhookHeaders,
} from "./webhooks.js";
export { PortcullisError } from "./problem.js";
export type User = components["schemas"]["UserResponse"];
export type TokenResponse = components["schemas"]["TokenResponse"];
export type Problem = components["schemas"]["ProblemDocument"];

export type PortcullisClient = Client<paths>;

/**
 * A client for the API at `baseUrl` (e.g. `http://localhost:8000`). In a
 * browser the refresh cookie travels by itself (`credentials: "include"`);
 * elsewhere pass it with the `Cookie` header.
 */
export function createPortcullisClient(baseUrl: string, init: { fetch?: typeof fetch } = {}): PortcullisClient {
  return createClient<paths>({ baseUrl, credentials: "include", fetch: init.fetch });
}

/** The `refresh_token` value a response sets, for clients without a cookie jar. */
export function refreshCookieOf(response: Response): string | undefined {
  const header = response.headers.getSetCookie?.() ?? [];
  for (const cookie of header) {
    const [pair] = cookie.split(";");
    if (pair.startsWith("refresh_token=")) {
      return pair.slice("refresh_token=".length);
    }
  }
  return undefined;
}
export {
  createAdminClient,
  type AdminUser,
  type AdminUserDetail,
  type AdminUsersPage,
  type PortcullisAdminClient,
} from "./admin.js";
