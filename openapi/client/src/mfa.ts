// The second factor (TOTP) of the signed-in user: enrolment (the secret and
// its otpauth:// URI, for an authenticator app or a QR code), confirmation
// (the recovery codes, shown once) and turning it off.
import { expectEmpty, expectJson } from "./problem.js";
import type { components } from "./schema.js";
import type { Session } from "./session.js";

type EnrolResponse = components["schemas"]["EnrolResponse"];
type RecoveryCodes = components["schemas"]["RecoveryCodes"];

/** A pending TOTP factor: show `otpauthUri` as a QR code (or `secret` to type in). */
export interface TotpEnrolment {
  /** The shared secret, base32. */
  secret: string;
  /** `otpauth://totp/Portcullis:<email>?secret=...&issuer=Portcullis`. */
  otpauthUri: string;
}

function post(session: Session, path: string, body: unknown, method = "POST"): Promise<Response> {
  return session.fetch(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

/**
 * Starts enrolling a TOTP factor (replacing one still pending). Rejects
 * with a PortcullisError: 400 wrong password, 403 `email-not-verified`, 409
 * a factor is already on.
 */
export async function enrolTotp(session: Session, options: { currentPassword: string }): Promise<TotpEnrolment> {
  const body = await expectJson<EnrolResponse>(
    await post(session, "/api/v1/users/me/mfa/totp", { current_password: options.currentPassword }),
    201,
  );
  return { secret: body.secret, otpauthUri: body.otpauth_uri };
}

/**
 * Confirms the pending factor with a code from the app: resolves to the 10
 * recovery codes (show them once). Every other session of the account ends.
 */
export async function confirmTotp(session: Session, code: string): Promise<string[]> {
  const body = await expectJson<RecoveryCodes>(await post(session, "/api/v1/users/me/mfa/totp/confirm", { code }), 200);
  return body.recovery_codes;
}

/** Turns the factor off, with the password and a code or a recovery code. */
export async function disableTotp(session: Session, options: { currentPassword: string; code: string }): Promise<void> {
  await expectEmpty(
    await post(session, "/api/v1/users/me/mfa/totp", { current_password: options.currentPassword, code: options.code }, "DELETE"),
    204,
  );
}
