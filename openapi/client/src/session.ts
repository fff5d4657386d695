// The session manager for a browser app (a single-page app on the API's
// site): sign-in with a password, a second factor or a passkey; the access
// token in memory only, renewed through the HttpOnly refresh cookie before it
// expires; one refresh at a time within a tab and across the tabs of the
// origin (Web Locks), the result and the sign-outs shared between tabs
// (BroadcastChannel).
import createClient, { type Client } from "openapi-fetch";

import { passkeySignIn, type PasskeySignInOptions } from "./passkeys.js";
import { errorOf, expectJson, PortcullisError, problemOf } from "./problem.js";
import type { components, paths } from "./schema.js";
import type { AccessTokenClaims } from "./verify.js";

type TokenResponse = components["schemas"]["TokenResponse"];
type User = components["schemas"]["UserResponse"];

/** Why a session ended. */
export type SignOutReason =
  /** `signOut()` in this tab. */
  | "signOut"
  /** `signOutEverywhere()` in this tab. */
  | "signOutEverywhere"
  /** A refresh was refused (401): the session was ended elsewhere (logout-all, a password reset, an admin, reuse) or the cookie is gone. */
  | "ended"
  /** Another tab of the origin signed out. */
  | "otherTab";

/** What `onChange` listeners hear. */
export type SessionEvent =
  | { type: "signedIn"; fromOtherTab?: true }
  | { type: "refreshed"; fromOtherTab?: true }
  | { type: "signedOut"; reason: SignOutReason };

/** The result of `signIn` (and of `completeMfa` and `signInWithPasskey`, which always sign in). */
export type SignInResult =
  | { mfaRequired: false; claims: AccessTokenClaims | null }
  | {
      mfaRequired: true;
      /** Pass it to `completeMfa` with a code or a recovery code; single use. */
      mfaToken: string;
      /** Seconds the `mfaToken` stays valid (300). */
      expiresIn: number;
    };

/** The second step of a login: a 6-digit TOTP code, or a recovery code. */
export type SecondFactor = { code: string } | { recoveryCode: string };

/** The part of the Web Locks API the session uses (`navigator.locks`). */
export interface LockManagerLike {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

/** The part of BroadcastChannel the session uses. */
export interface ChannelLike {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: { data: unknown }) => void) | null;
}

export interface SessionOptions {
  /** The API's base URL, e.g. `https://auth.example.com` (no `/api/v1`). */
  baseUrl: string;
  /** The fetch to use; `globalThis.fetch` by default. Outside a browser, wrap one that carries the refresh cookie. */
  fetch?: typeof fetch;
  /** The clock, milliseconds since the epoch; `Date.now` by default. */
  now?: () => number;
  /** Renew the access token this many seconds before it expires (default 60). */
  refreshMarginSeconds?: number;
  /**
   * Coordination between the tabs of the origin: `navigator.locks` and a
   * `BroadcastChannel`, each where the platform has it. On by default in a
   * page (where there is a `document`); off elsewhere (Node, where two
   * sessions of one process may belong to different users), which leaves a
   * single-flight refresh within this session only. Giving `locks` or
   * `channel` turns it on.
   */
  crossTab?: boolean;
  /** The Web Locks manager; `navigator.locks` by default, `null` for none. */
  locks?: LockManagerLike | null;
  /** The channel to the other tabs; a `BroadcastChannel(channelName)` by default, `null` for none. */
  channel?: ChannelLike | null;
  /** Name of the lock that serialises refreshes (default `portcullis-refresh`). */
  lockName?: string;
  /** Name of the BroadcastChannel (default `portcullis-session`). */
  channelName?: string;
  /** How long a tab that gets the lock waits for another tab's announced result to arrive (ms, default 5000). */
  peerTimeoutMs?: number;
}

/** A signed-in (or not yet) user of a browser app. Create one per app with `createSession`. */
export interface Session {
  /** Password login: signed in, or `{ mfaRequired: true, mfaToken }` when the account has a second factor. */
  signIn(email: string, password: string): Promise<SignInResult>;
  /** The second step of a login, with a TOTP code or a recovery code. */
  completeMfa(mfaToken: string, factor: SecondFactor): Promise<SignInResult & { mfaRequired: false }>;
  /** Sign in with a discoverable passkey (the browser asks which one); no email asked. */
  signInWithPasskey(options?: PasskeySignInOptions): Promise<SignInResult & { mfaRequired: false }>;
  /** Ends this session on the server (and its cookie) and in every tab of the origin. */
  signOut(): Promise<void>;
  /** Ends every session of the user, on every device, and this one in every tab. */
  signOutEverywhere(): Promise<void>;
  /**
   * Tries the refresh cookie once: resolves true when a session was restored
   * (or is already there). Call it when the app starts.
   */
  restore(): Promise<boolean>;
  /** The current user (`GET /api/v1/users/me`), or null when signed out. */
  user(): Promise<User | null>;
  /** The current access token's claims (decoded, not verified), or null. */
  claims(): AccessTokenClaims | null;
  /** The access token, renewed first when it is within the margin of its expiry; null when signed out. */
  accessToken(): Promise<string | null>;
  /**
   * `fetch` with the bearer token; a path (`/api/v1/...`) is taken relative
   * to `baseUrl`. On a 401 it refreshes once and retries once. Send it only
   * to services that accept Portcullis tokens.
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** A typed openapi-fetch client of the API whose requests go through `session.fetch`. */
  readonly api: Client<paths>;
  /** Listens to sign-ins, refreshes and sign-outs; returns the unsubscribe function. */
  onChange(listener: (event: SessionEvent) => void): () => void;
  /** Closes the channel to the other tabs and drops the listeners. */
  close(): void;
}

/** Messages between the tabs of an origin on the BroadcastChannel. */
type Message =
  /** The sender holds the lock and is talking to the API; its result and `idle` follow. */
  | { kind: "busy"; from: string }
  /** The sender is done with the lock. */
  | { kind: "idle"; from: string }
  /** A new access token of the shared cookie's session. */
  | { kind: "token"; from: string; token: string; expiresInMs: number }
  /** The shared session ended. */
  | { kind: "signedOut"; from: string; reason: SignOutReason };

/** The claims of a JWT, decoded without verification; null when it is not one. */
export function decodeClaims(jwt: string): AccessTokenClaims | null {
  const part = jwt.split(".")[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) as AccessTokenClaims;
  } catch {
    return null;
  }
}

function randomId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

function isMessage(data: unknown): data is Message {
  return typeof data === "object" && data !== null && typeof (data as Message).kind === "string";
}

/** Creates the session manager of an app (one per app and API). */
export function createSession(options: SessionOptions): Session {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const now = options.now ?? (() => Date.now());
  const marginMs = (options.refreshMarginSeconds ?? 60) * 1000;
  const lockName = options.lockName ?? "portcullis-refresh";
  const peerTimeoutMs = options.peerTimeoutMs ?? 5000;
  const doFetch: typeof fetch = (input, init) => (options.fetch ?? globalThis.fetch)(input, init);
  const crossTab =
    options.crossTab ?? (options.locks !== undefined || options.channel !== undefined || "document" in globalThis);
  const locks: LockManagerLike | null = crossTab
    ? options.locks !== undefined
      ? options.locks
      : ((globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks ?? null)
    : null;
  let channel: ChannelLike | null = crossTab
    ? options.channel !== undefined
      ? options.channel
      : typeof BroadcastChannel === "function"
        ? (new BroadcastChannel(options.channelName ?? "portcullis-session") as unknown as ChannelLike)
        : null
    : null;
  // Node's BroadcastChannel would keep a process alive; a browser's has no unref.
  (channel as { unref?: () => void } | null)?.unref?.();
  const self = randomId();

  let token: string | null = null;
  /** When `token` expires, on this session's clock. */
  let expiresAt = 0;
  /** "unknown" until the first sign-in, restore or sign-out. */
  let state: "unknown" | "signedIn" | "signedOut" = "unknown";
  /** Counts changes of token or state: a tab that waited for the lock sees whether anything was delivered meanwhile. */
  let epoch = 0;
  /** The refresh this tab is running, which every caller of the tab shares. */
  let inflight: Promise<string | null> | null = null;
  /** Tabs that announced they hold the lock and whose `idle` has not arrived yet: how to wait for it, and how it ends the wait. */
  const busyPeers = new Map<string, { idle: Promise<void>; release: () => void }>();
  const listeners = new Set<(event: SessionEvent) => void>();

  const url = (path: string) => `${baseUrl}${path}`;

  function emit(event: SessionEvent): void {
    for (const listener of [...listeners]) {
      try {
        listener(event);
      } catch (error) {
        // A listener's failure is its own; the others still hear the event.
        console.error(error);
      }
    }
  }

  function post(message: Message): void {
    channel?.postMessage(message);
  }

  function setToken(next: string, expiresInMs: number, fromOtherTab: boolean): void {
    const was = state;
    const changed = next !== token;
    token = next;
    expiresAt = now() + expiresInMs;
    state = "signedIn";
    if (!changed && was === "signedIn") return;
    epoch++;
    const type = was === "signedIn" ? "refreshed" : "signedIn";
    emit(fromOtherTab ? { type, fromOtherTab: true } : { type });
  }

  /** Takes a token body of the API (login, refresh, MFA, passkey) and tells the other tabs. */
  function adopt(body: TokenResponse): string {
    setToken(body.access_token, body.expires_in * 1000, false);
    post({ kind: "token", from: self, token: body.access_token, expiresInMs: body.expires_in * 1000 });
    return body.access_token;
  }

  function drop(reason: SignOutReason, tellOthers: boolean): void {
    const was = state;
    token = null;
    expiresAt = 0;
    state = "signedOut";
    if (was !== "signedOut") epoch++;
    if (tellOthers) post({ kind: "signedOut", from: self, reason });
    if (was === "signedIn") emit({ type: "signedOut", reason });
  }

  function onMessage(data: unknown): void {
    if (!isMessage(data) || data.from === self) return;
    switch (data.kind) {
      case "busy": {
        busyPeers.get(data.from)?.release();
        let release = () => {};
        const idle = new Promise<void>((resolve) => (release = resolve));
        busyPeers.set(data.from, { idle, release });
        break;
      }
      case "idle":
        busyPeers.get(data.from)?.release();
        busyPeers.delete(data.from);
        break;
      case "token":
        setToken(data.token, data.expiresInMs, true);
        break;
      case "signedOut":
        drop(data.reason === "ended" ? "ended" : "otherTab", false);
        break;
    }
  }
  if (channel) channel.onmessage = (event) => onMessage(event.data);

  /**
   * Runs `work` holding the origin's lock (where there is one), announced to
   * the other tabs, after the results of the tabs that held it before have
   * arrived: the messages of a tab and the lock travel apart, so a tab that
   * gets the lock waits for the `idle` of the one that had it.
   */
  async function exclusive<T>(work: () => Promise<T>): Promise<T> {
    if (!locks) return work();
    return locks.request(lockName, async () => {
      await settledPeers();
      post({ kind: "busy", from: self });
      try {
        return await work();
      } finally {
        post({ kind: "idle", from: self });
      }
    });
  }

  /**
   * Waits for the `idle` of every tab that announced it held the lock: the
   * last holder's result (a token, a sign-out) arrives before its `idle`. A
   * tab closed while it held the lock never says `idle`: it is forgotten
   * after `peerTimeoutMs`.
   */
  async function settledPeers(): Promise<void> {
    if (busyPeers.size === 0) return;
    const waiting = [...busyPeers.entries()];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), peerTimeoutMs)));
    const outcome = await Promise.race([Promise.all(waiting.map(([, peer]) => peer.idle)), timeout]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      for (const [id, peer] of waiting) if (busyPeers.get(id) === peer) busyPeers.delete(id);
    }
  }

  /** `POST /api/v1/auth/refresh` with the cookie, nothing more. */
  function postRefresh(): Promise<Response> {
    return doFetch(url("/api/v1/auth/refresh"), { method: "POST", credentials: "include" });
  }

  /** Rotates the cookie once: the new token, or null (and signed out) on a 401. */
  async function rotate(): Promise<string | null> {
    const response = await postRefresh();
    if (response.status === 200) return adopt((await response.json()) as TokenResponse);
    if (response.status === 401) {
      await response.body?.cancel();
      const signedIn = state === "signedIn";
      // Tell the other tabs only when a session this tab held has ended: a
      // tab that never had one proves nothing about theirs.
      drop("ended", signedIn);
      return null;
    }
    throw await errorOf(response);
  }

  /**
   * A token newer than `started`: the one another caller or tab delivered
   * meanwhile, or a refresh, shared by every caller of this tab.
   */
  function refreshFrom(started: string | null): Promise<string | null> {
    if (token !== null && token !== started) return Promise.resolve(token);
    if (inflight) return inflight;
    const startEpoch = epoch;
    const run = exclusive(async () => {
      if (epoch !== startEpoch) return token; // another tab delivered (or signed out) while this one waited
      return rotate();
    });
    inflight = run.finally(() => {
      inflight = null;
    });
    return inflight;
  }

  function fresh(): boolean {
    return token !== null && now() < expiresAt - marginMs;
  }

  async function accessToken(): Promise<string | null> {
    if (fresh()) return token;
    if (token === null && state === "signedOut") return null;
    return refreshFrom(token);
  }

  function resolveInput(input: RequestInfo | URL): RequestInfo | URL {
    return typeof input === "string" && input.startsWith("/") ? url(input) : input;
  }

  async function sessionFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const template = new Request(resolveInput(input), init);
    const send = (bearer: string | null) => {
      const request = template.clone();
      if (bearer) request.headers.set("Authorization", `Bearer ${bearer}`);
      return doFetch(request);
    };
    const used = await accessToken();
    const first = await send(used);
    if (first.status !== 401 || used === null) return first;
    const renewed = await refreshFrom(used);
    if (renewed === null) return first;
    await first.body?.cancel();
    return send(renewed);
  }

  function postJson(path: string, body: unknown): Promise<Response> {
    return doFetch(url(path), {
      method: "POST",
      credentials: "include",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  function signedIn(): SignInResult & { mfaRequired: false } {
    return { mfaRequired: false, claims: token ? decodeClaims(token) : null };
  }

  /** Ends the session on the server with `path` (logout or logout-all), then everywhere locally. */
  async function end(path: string, reason: SignOutReason): Promise<void> {
    let bearer: string | null = null;
    try {
      bearer = await accessToken();
    } catch {
      // The API did not answer the refresh: still sign out locally.
    }
    if (bearer === null) {
      drop(reason, true);
      return;
    }
    await exclusive(async () => {
      try {
        const send = (b: string) =>
          doFetch(url(path), { method: "POST", credentials: "include", headers: { Authorization: `Bearer ${b}` } });
        let response = await send(token ?? bearer!);
        if (response.status === 401) {
          // The token was revoked while the cookie may still live: renew it, then end that.
          await response.body?.cancel();
          const renewed = await postRefresh();
          if (renewed.status !== 200) {
            await renewed.body?.cancel();
            return;
          }
          response = await send(((await renewed.json()) as TokenResponse).access_token);
        }
        if (response.status !== 204 && response.status !== 401) throw await errorOf(response);
      } finally {
        // Inside the lock: the other tabs hear it before they may refresh.
        drop(reason, true);
      }
    });
  }

  const session: Session = {
    async signIn(email, password) {
      return exclusive(async () => {
        const response = await postJson("/api/v1/auth/login", { email, password });
        if (response.status === 403) {
          const problem = (await problemOf(response)) as
            | (components["schemas"]["ProblemDocument"] & { mfa_token?: string; expires_in?: number })
            | undefined;
          if (problem?.type?.endsWith("mfa-required") && problem.mfa_token) {
            return { mfaRequired: true, mfaToken: problem.mfa_token, expiresIn: problem.expires_in ?? 300 };
          }
          throw new PortcullisError(403, problem);
        }
        adopt(await expectJson<TokenResponse>(response, 200));
        return signedIn();
      });
    },

    async completeMfa(mfaToken, factor) {
      return exclusive(async () => {
        const body =
          "code" in factor ? { mfa_token: mfaToken, code: factor.code } : { mfa_token: mfaToken, recovery_code: factor.recoveryCode };
        adopt(await expectJson<TokenResponse>(await postJson("/api/v1/auth/login/mfa", body), 200));
        return signedIn();
      });
    },

    async signInWithPasskey(passkeyOptions) {
      await passkeySignIn(
        postJson,
        (finish) =>
          exclusive(async () => {
            adopt(await expectJson<TokenResponse>(await finish(), 200));
          }),
        passkeyOptions,
      );
      return signedIn();
    },

    signOut: () => end("/api/v1/auth/logout", "signOut"),
    signOutEverywhere: () => end("/api/v1/auth/logout-all", "signOutEverywhere"),

    async restore() {
      if (fresh()) return true;
      return (await refreshFrom(token)) !== null;
    },

    async user() {
      const response = await sessionFetch("/api/v1/users/me");
      if (response.status === 401 && token === null) return null;
      return expectJson<User>(response, 200);
    },

    claims: () => (token ? decodeClaims(token) : null),
    accessToken,
    fetch: sessionFetch,
    api: createClient<paths>({ baseUrl, fetch: (request) => sessionFetch(request) }),

    onChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },

    close() {
      listeners.clear();
      if (channel) {
        channel.onmessage = null;
        channel.close();
        channel = null;
      }
    },
  };
  return session;
}
