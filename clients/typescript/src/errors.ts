// What can go wrong, as values a caller can switch on: the services' problem documents (RFC 9457), a service that
// could not be reached, and a read that could not vouch for the version or position it was asked for in time.

/** A field the service refused, and why. */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * Every answer of a service that is not a 2xx: the problem document it sent (`application/problem+json`), or what
 * can be said without one. Switch on `type` (or `status`), never on `title` or `detail`.
 */
export class ProblemError extends Error {
  /** The problem type: a URI, or `about:blank` for a plain status. */
  readonly type: string;
  readonly status: number;
  readonly title: string;
  readonly detail: string | undefined;
  /** The fields a 400 refused. */
  readonly errors: FieldError[];
  /** On a 409: the order's version now. */
  readonly currentVersion: number | undefined;
  /** On a 409: the order's status now. */
  readonly orderStatus: string | undefined;
  /** Seconds the service asked the caller to wait (`Retry-After`), when it said. */
  readonly retryAfter: number | undefined;
  /** The whole problem document, members this class does not name included. */
  readonly problem: Readonly<Record<string, unknown>>;
  /** For a refused command: the key it was sent with (send it again with this key to apply it at most once). */
  idempotencyKey: string | undefined;

  constructor(status: number, problem: Record<string, unknown>, retryAfter?: number) {
    const title = typeof problem.title === 'string' ? problem.title : `HTTP ${status}`;
    const detail = typeof problem.detail === 'string' ? problem.detail : undefined;
    super(detail ? `${title}: ${detail}` : title);
    this.name = 'ProblemError';
    this.type = typeof problem.type === 'string' ? problem.type : 'about:blank';
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.errors = Array.isArray(problem.errors) ? problem.errors.filter(isFieldError) : [];
    this.currentVersion = typeof problem.currentVersion === 'number' ? problem.currentVersion : undefined;
    this.orderStatus = typeof problem.orderStatus === 'string' ? problem.orderStatus : undefined;
    this.retryAfter = retryAfter;
    this.problem = problem;
    this.idempotencyKey = undefined;
  }

  /** The error of an answer that is not a 2xx: its body read as a problem document when it is one. */
  static parse(status: number, text: string, retryAfter?: number): ProblemError {
    let problem: Record<string, unknown> = {};
    try {
      const body: unknown = JSON.parse(text);
      if (body && typeof body === 'object' && !Array.isArray(body)) problem = body as Record<string, unknown>;
    } catch {
      // Not JSON: the status says what there is to say.
    }
    return new ProblemError(status, problem, retryAfter);
  }
}

function isFieldError(value: unknown): value is FieldError {
  const candidate = value as FieldError | null;
  return typeof candidate?.field === 'string' && typeof candidate.message === 'string';
}

/** A service that could not be reached (a network error or a timeout), after every retry allowed. */
export class UnreachableError extends Error {
  /**
   * For a command: the key it was sent with. It may have been applied (an answer lost on the way back): send it
   * again with this key, and it is applied at most once.
   */
  idempotencyKey: string | undefined;

  constructor(url: string, cause: unknown) {
    super(`could not reach ${url}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'UnreachableError';
    this.idempotencyKey = undefined;
  }
}

/**
 * A read whose read model had not reached the version (or position) asked for when the deadline passed: the
 * service answered 202 each time. The state it had is here, but it is older than what was asked for, so the read
 * does not resolve with it.
 */
export class NotCaughtUpError extends Error {
  /** The last 202's body: the state as far as the read model had it. */
  readonly last: unknown;

  constructor(what: string, last: unknown) {
    super(`${what} had not caught up by the deadline`);
    this.name = 'NotCaughtUpError';
    this.last = last;
  }
}

/** `Retry-After` in seconds, when the response has one (delta-seconds or an HTTP date). */
export function retryAfterOf(response: Response): number | undefined {
  const value = response.headers.get('retry-after');
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}
