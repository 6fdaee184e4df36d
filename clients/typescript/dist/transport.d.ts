/** Where the bearer token comes from. Called before each request; `expired` after the services refused the last. */
export type TokenSource = (reason?: 'expired') => string | Promise<string>;
/** How often and how patiently a request is sent again. */
export interface RetryPolicy {
    /** Attempts in all, the first included (default 5). */
    attempts: number;
    /** The first wait between attempts, doubled each time, with jitter (default 200 ms). */
    baseDelayMs: number;
    /**
     * The longest wait between attempts (default 5 s). A `Retry-After` longer than this ends the retries: the error
     * is thrown with its `retryAfter`, for the caller to decide.
     */
    maxDelayMs: number;
    /** How long one attempt, its answer's body included, may take before it counts as failed (default 15 s). */
    timeoutMs: number;
}
export declare const DEFAULT_RETRY: RetryPolicy;
export interface Transport {
    token: TokenSource | undefined;
    retry: RetryPolicy;
    fetch: typeof fetch;
}
/** One request, as a service method sends it. */
export interface Request {
    method: 'GET' | 'POST';
    url: string;
    body?: unknown;
    headers?: Record<string, string>;
    /** Whether it may be sent again after a network error, a timeout, a 429 or a 502–504 (reads; keyed commands). */
    retry: boolean;
    /** How long one attempt may take, when the request itself waits on the server (`waitMs`). */
    timeoutMs?: number;
    signal?: AbortSignal | undefined;
    /** Ask the token source for a new token from the first attempt on (the last one was refused elsewhere). */
    tokenExpired?: boolean;
}
/** A 2xx answer: its status and its body, read as JSON. */
export interface Answer {
    status: number;
    body: unknown;
}
/**
 * Sends `request` and reads its answer. A 2xx resolves with its JSON body; any other status rejects with a
 * `ProblemError`; a service that cannot be reached, after every attempt allowed, with an `UnreachableError`. A 401
 * asks the token source once for a fresh token and is sent again.
 */
export declare function exchange(transport: Transport, request: Request): Promise<Answer>;
/** The headers of one attempt: the request's, checked, and the bearer token when the client has a source. */
export declare function headersFor(transport: Transport, request: Pick<Request, 'headers' | 'signal'>, reason: 'expired' | undefined): Promise<Record<string, string>>;
/** The wait before attempt `attempt + 1`: exponential, capped, with full jitter over its upper half. */
export declare function backoff(policy: RetryPolicy, attempt: number): number;
/** Waits `ms`, or until `signal` aborts (then rejects with its reason). */
export declare function pause(ms: number, signal?: AbortSignal): Promise<void>;
