// Offline verification of Portcullis access tokens for downstream services:
// the signature against the public keys the api publishes at
// /.well-known/jwks.json, then issuer, audience and expiry.
import { createRemoteJWKSet, jwtVerify } from "jose";

/** The claims of a Portcullis access token. */
export interface AccessTokenClaims {
  /** The user's id (a UUID). */
  sub: string;
  /** The token's own id (a UUID). */
  jti: string;
  /** Issue time, seconds since the Unix epoch. */
  iat: number;
  /** Expiry, seconds since the Unix epoch. */
  exp: number;
  /** `JWT_ISSUER`, "portcullis" by default. */
  iss: string;
  /** `JWT_AUDIENCE`, "portcullis" by default. */
  aud: string;
  /** The session (refresh-token family) the token came from (a UUID). */
  sid: string;
  /** How the user authenticated (RFC 8176): `["pwd"]`. */
  amr: string[];
  email_verified: boolean;
  /** Issue time in microseconds since the Unix epoch. */
  iat_us: number;
}

export interface VerifyAccessTokenOptions {
  /** The api's JWK set, e.g. `https://auth.example.com/.well-known/jwks.json`. */
  jwksUrl: string | URL;
  /** The expected `iss`; "portcullis" by default (the api's `JWT_ISSUER`). */
  issuer?: string;
  /** The expected `aud`; "portcullis" by default (the api's `JWT_AUDIENCE`). */
  audience?: string;
}

/** The algorithms Portcullis signs with; anything else (`none`, HS256, ...) is refused. */
const ALGORITHMS = ["EdDSA", "ES256"];

/**
 * One remote JWK set per URL, shared by every call: jose keeps the fetched
 * keys for up to 10 minutes, and refetches them sooner when a token names an
 * unknown `kid` (a newly added key), at most once every 30 s.
 */
const jwkSets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

function jwkSetFor(jwksUrl: string | URL): ReturnType<typeof createRemoteJWKSet> {
  const url = new URL(jwksUrl);
  let set = jwkSets.get(url.href);
  if (!set) {
    set = createRemoteJWKSet(url);
    jwkSets.set(url.href, set);
  }
  return set;
}

/**
 * Verifies a Portcullis access token offline, for a service downstream of
 * Portcullis: checks its signature against the api's published keys (whose
 * header `kid` names one of them; algorithm EdDSA or ES256 only), its issuer,
 * its audience and its expiry (`exp`, `iat` and `sub` are required), and
 * resolves to its claims; rejects (a jose `JOSEError`) otherwise.
 *
 * Revocation is NOT checked: it lives in Portcullis's Redis denylist, which
 * only the api consults. A token whose session was logged out (or whose user
 * changed password or was deleted) therefore stays valid here until its
 * `exp`, i.e. for up to `ACCESS_TOKEN_TTL_SECONDS` (900 s by default) after
 * issue. To honour revocation at once, call `GET /api/v1/users/me` with the
 * token instead (a 401 means revoked or invalid), or shorten the TTL.
 */
export async function verifyAccessToken(
  token: string,
  options: VerifyAccessTokenOptions,
): Promise<AccessTokenClaims> {
  const { payload } = await jwtVerify(token, jwkSetFor(options.jwksUrl), {
    algorithms: ALGORITHMS,
    issuer: options.issuer ?? "portcullis",
    audience: options.audience ?? "portcullis",
    requiredClaims: ["exp", "iat", "sub"],
  });
  return payload as unknown as AccessTokenClaims;
}
