// What a browser gives the session and Node does not: a cookie jar. A fetch
// that keeps the `refresh_token` cookie the API sets and sends it back to
// /api/v1/auth, and logs every request (path and bearer) for the tests.
import { createSession, type Session, type SessionEvent, type SessionOptions } from "../src/index.js";

export interface Logged {
  method: string;
  path: string;
  bearer: string | null;
  status: number;
}

export interface Jar {
  fetch: typeof fetch;
  /** The refresh cookie the jar holds. */
  cookie: string | undefined;
  /** Every request, in the order they were answered. */
  log: Logged[];
  /** How many requests went to `path`. */
  count(path: string): number;
}

export function cookieJar(): Jar {
  const jar: Jar = {
    cookie: undefined,
    log: [],
    count: (path) => jar.log.filter((entry) => entry.path === path).length,
    fetch: async (input, init) => {
      const request = new Request(input, init);
      const url = new URL(request.url);
      if (jar.cookie && url.pathname.startsWith("/api/v1/auth")) {
        request.headers.set("Cookie", `refresh_token=${jar.cookie}`);
      }
      const response = await fetch(request);
      for (const cookie of response.headers.getSetCookie()) {
        const [pair, ...attributes] = cookie.split(";").map((part) => part.trim());
        if (!pair.startsWith("refresh_token=")) continue;
        const value = pair.slice("refresh_token=".length);
        const cleared = attributes.some((a) => /^max-age=0$/i.test(a)) || value === "";
        jar.cookie = cleared ? undefined : value;
      }
      const bearer = request.headers.get("authorization")?.replace(/^Bearer /, "") ?? null;
      jar.log.push({ method: request.method, path: url.pathname, bearer, status: response.status });
      return response;
    },
  };
  return jar;
}

/** A session in Node: its own jar, a clock the test moves, and the events it heard. */
export interface TestSession {
  session: Session;
  jar: Jar;
  events: SessionEvent[];
  /** Moves the session's clock this many seconds from the real one. */
  skew(seconds: number): void;
}

export function testSession(baseUrl: string, options: Partial<SessionOptions> & { jar?: Jar } = {}): TestSession {
  const jar = options.jar ?? cookieJar();
  let skewMs = 0;
  const session = createSession({
    baseUrl,
    fetch: jar.fetch,
    now: () => Date.now() + skewMs,
    crossTab: false,
    ...options,
  });
  const events: SessionEvent[] = [];
  session.onChange((event) => events.push(event));
  return { session, jar, events, skew: (seconds) => (skewMs = seconds * 1000) };
}

/** The API's `auth_refresh_total` by outcome (the lines of each outcome summed; 0 when absent). */
export async function refreshCounts(baseUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const counts: Record<string, number> = { success: 0, grace: 0, reuse_detected: 0, invalid: 0 };
  for (const line of text.split("\n")) {
    const match = /^auth_refresh_total\{([^}]*)\}\s+(\S+)/.exec(line);
    const outcome = match && /outcome="([^"]+)"/.exec(match[1])?.[1];
    if (outcome) counts[outcome] = (counts[outcome] ?? 0) + Number(match[2]);
  }
  return counts;
}

/** The change of each outcome between two readings. */
export function delta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const result: Record<string, number> = {};
  for (const outcome of new Set([...Object.keys(before), ...Object.keys(after)])) {
    result[outcome] = (after[outcome] ?? 0) - (before[outcome] ?? 0);
  }
  return result;
}
