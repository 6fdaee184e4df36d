/** A field the service refused, and why. */
export interface FieldError {
    field: string;
    message: string;
}
/**
 * Every answer of a service that is not a 2xx: the problem document it sent (`application/problem+json`), or what
 * can be said without one. Switch on `type` (or `status`), never on `title` or `detail`.
 */
export declare class ProblemError extends Error {
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
    constructor(status: number, problem: Record<string, unknown>, retryAfter?: number);
    /** The error of an answer that is not a 2xx: its body read as a problem document when it is one. */
    static parse(status: number, text: string, retryAfter?: number): ProblemError;
}
/** A service that could not be reached (a network error or a timeout), after every retry allowed. */
export declare class UnreachableError extends Error {
    /**
     * For a command: the key it was sent with. It may have been applied (an answer lost on the way back): send it
     * again with this key, and it is applied at most once.
     */
    idempotencyKey: string | undefined;
    constructor(url: string, cause: unknown);
}
/**
 * A read whose read model had not reached the version (or position) asked for when the deadline passed: the
 * service answered 202 each time. The state it had is here, but it is older than what was asked for, so the read
 * does not resolve with it.
 */
export declare class NotCaughtUpError extends Error {
    /** The last 202's body: the state as far as the read model had it. */
    readonly last: unknown;
    constructor(what: string, last: unknown);
}
/** `Retry-After` in seconds, when the response has one (delta-seconds or an HTTP date). */
export declare function retryAfterOf(response: Response): number | undefined;
