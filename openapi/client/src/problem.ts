// The errors of the SDK's helpers: an answer of the API that is not the one
// asked for, as the RFC 9457 problem document it carries.
import type { components } from "./schema.js";

export type Problem = components["schemas"]["ProblemDocument"];

/** An API answer the helper did not expect; `problem` is its body when it had one. */
export class PortcullisError extends Error {
  override readonly name = "PortcullisError";
  constructor(
    /** The HTTP status. */
    readonly status: number,
    /** The problem document (`application/problem+json`), when the body was one. */
    readonly problem: Problem | undefined,
  ) {
    super(problem ? `${status} ${problem.title}: ${problem.detail}` : `HTTP ${status}`);
  }

  /** The problem type's slug: `mfa-required`, `unauthorized`, `email-not-verified`, ... */
  get slug(): string | undefined {
    return this.problem?.type?.split("/").pop();
  }
}

/** The body of `response` as a problem document, or undefined. */
export async function problemOf(response: Response): Promise<Problem | undefined> {
  if (!/json/.test(response.headers.get("content-type") ?? "")) return undefined;
  try {
    return (await response.json()) as Problem;
  } catch {
    return undefined;
  }
}

/** A PortcullisError for `response`. */
export async function errorOf(response: Response): Promise<PortcullisError> {
  return new PortcullisError(response.status, await problemOf(response));
}

/** The JSON body of a response with status `expected`; a PortcullisError otherwise. */
export async function expectJson<T>(response: Response, expected: number): Promise<T> {
  if (response.status !== expected) throw await errorOf(response);
  return (await response.json()) as T;
}

/** Nothing of a response with status `expected`; a PortcullisError otherwise. */
export async function expectEmpty(response: Response, expected: number): Promise<void> {
  if (response.status !== expected) throw await errorOf(response);
  await response.body?.cancel();
}
