// TOTP codes for the tests (RFC 6238: SHA-1, 6 digits, 30 s), as an
// authenticator app computes them.
//
// The api accepts a code once per 30-second step and user (replay), with one
// step of drift either way: a test confirms an enrolment with the previous
// step's code and logs in with the current step's, so the two never collide.
import { setTimeout as sleep } from "node:timers/promises";

import { Secret, TOTP } from "otpauth";

export const period = 30;

/** The code of the step `offset` steps from now. */
export function codeAt(secret: string, offset: number): string {
  return TOTP.generate({
    secret: Secret.fromBase32(secret),
    algorithm: "SHA1",
    digits: 6,
    period,
    timestamp: Date.now() + offset * period * 1000,
  });
}

/**
 * Waits out the last 2 s of a step, so that a code computed now is still
 * within the api's drift window when it arrives.
 */
export async function awayFromStepEdge(): Promise<void> {
  const remaining = TOTP.remaining({ period });
  if (remaining < 2000) {
    await sleep(remaining + 100);
  }
}
