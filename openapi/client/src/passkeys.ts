// Passkeys (WebAuthn) on top of @simplewebauthn/browser: registering one for
// the signed-in user, listing and removing them, and the ceremony of a
// passkey sign-in (which `session.signInWithPasskey()` runs).
//
// The envelopes come from the generated types of openapi/openapi.json; the
// document leaves the WebAuthn options and credentials untyped (free-form
// JSON), so these take SimpleWebAuthn's types of the WebAuthn Level 3 JSON
// forms in their place.
import {
  startAuthentication,
  startRegistration,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from "@simplewebauthn/browser";

import { expectEmpty, expectJson } from "./problem.js";
import type { components } from "./schema.js";
import type { Session } from "./session.js";

type Schemas = components["schemas"];

export type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
};

/** WebAuthn options as the API sends them: bare, or wrapped as `{ publicKey }` (the shape of `navigator.credentials.create()`'s argument). */
export type WrappedOptions<T> = T | { publicKey: T };

/** `POST /api/v1/users/me/passkeys/registration/start` `{current_password}` → 200. */
export type PasskeyRegistrationStart = Omit<Schemas["PasskeyChallenge"], "options"> & {
  options: WrappedOptions<PublicKeyCredentialCreationOptionsJSON>;
};

/** `POST /api/v1/users/me/passkeys/registration/finish` request. */
export type PasskeyRegistrationFinish = Omit<Schemas["FinishRegistrationRequest"], "credential"> & {
  credential: RegistrationResponseJSON;
};

/** A registered passkey (201 of registration/finish; items of `GET /api/v1/users/me/passkeys`); `last_used_at` is null until its first sign-in. */
export type Passkey = Schemas["PasskeyResponse"];

/** `POST /api/v1/auth/passkey/start` `{}` → 200. */
export type PasskeySignInStart = Omit<Schemas["PasskeyChallenge"], "options"> & {
  options: WrappedOptions<PublicKeyCredentialRequestOptionsJSON>;
};

/** `POST /api/v1/auth/passkey/finish` request; the answer is a token body like a login's. */
export type PasskeySignInFinish = Omit<Schemas["FinishSignInRequest"], "credential"> & {
  credential: AuthenticationResponseJSON;
};

export interface PasskeySignInOptions {
  /** Offer the passkeys in the browser's autofill of an `<input autocomplete="username webauthn">` (conditional UI). */
  useBrowserAutofill?: boolean;
  /** The ceremony; @simplewebauthn/browser's `startAuthentication` by default. */
  startAuthentication?: typeof startAuthentication;
}

export interface RegisterPasskeyOptions {
  /** The account's password: the API asks for it before adding a way in. */
  currentPassword: string;
  /** A name the user will recognise in the list ("MacBook Touch ID"). */
  name: string;
  /** The ceremony; @simplewebauthn/browser's `startRegistration` by default. */
  startRegistration?: typeof startRegistration;
}

/** The options inside `{ publicKey }`, or the options themselves. */
export function unwrapOptions<T extends object>(options: WrappedOptions<T>): T {
  return "publicKey" in options && typeof options.publicKey === "object" && options.publicKey !== null
    ? (options.publicKey as T)
    : (options as T);
}

function jsonInit(method: string, body: unknown): RequestInit {
  return { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

/**
 * Adds a passkey to the signed-in user's account: asks the API for a
 * challenge (with the current password), lets the browser create the
 * credential, and registers it. Resolves to the new passkey; rejects with a
 * PortcullisError (400 wrong password or a credential that does not verify,
 * 403 `email-not-verified`, 409 already registered) or the browser's
 * WebAuthn error (the user cancelled, ...).
 */
export async function registerPasskey(session: Session, options: RegisterPasskeyOptions): Promise<Passkey> {
  const start = await expectJson<PasskeyRegistrationStart>(
    await session.fetch(
      "/api/v1/users/me/passkeys/registration/start",
      jsonInit("POST", { current_password: options.currentPassword } satisfies Schemas["PasskeyPasswordRequest"]),
    ),
    200,
  );
  const ceremony = options.startRegistration ?? startRegistration;
  const credential = await ceremony({ optionsJSON: unwrapOptions(start.options) });
  const finish: PasskeyRegistrationFinish = { challenge_id: start.challenge_id, name: options.name, credential };
  return expectJson<Passkey>(
    await session.fetch("/api/v1/users/me/passkeys/registration/finish", jsonInit("POST", finish)),
    201,
  );
}

/** The signed-in user's passkeys. */
export async function listPasskeys(session: Session): Promise<Passkey[]> {
  const body = await expectJson<Schemas["PasskeyList"]>(await session.fetch("/api/v1/users/me/passkeys"), 200);
  return body.passkeys;
}

/** Removes one of the signed-in user's passkeys (the password is asked again). */
export async function removePasskey(
  session: Session,
  id: string,
  options: { currentPassword: string },
): Promise<void> {
  await expectEmpty(
    await session.fetch(
      `/api/v1/users/me/passkeys/${encodeURIComponent(id)}`,
      jsonInit("DELETE", { current_password: options.currentPassword } satisfies Schemas["PasskeyPasswordRequest"]),
    ),
    204,
  );
}

/**
 * The passkey sign-in ceremony, for `session.signInWithPasskey()`: a
 * challenge from the API, the browser's assertion, then `finish` sends
 * `POST /api/v1/auth/passkey/finish` (the session runs it holding its lock
 * and takes the token body it answers).
 */
export async function passkeySignIn(
  post: (path: string, body: unknown) => Promise<Response>,
  finish: (send: () => Promise<Response>) => Promise<void>,
  options: PasskeySignInOptions = {},
): Promise<void> {
  const start = await expectJson<PasskeySignInStart>(await post("/api/v1/auth/passkey/start", {}), 200);
  const ceremony = options.startAuthentication ?? startAuthentication;
  const credential = await ceremony({
    optionsJSON: unwrapOptions(start.options),
    useBrowserAutofill: options.useBrowserAutofill,
  });
  const body: PasskeySignInFinish = { challenge_id: start.challenge_id, credential };
  await finish(() => post("/api/v1/auth/passkey/finish", body));
}
