/** Where the bearer token comes from. Called before each request; `expired` after the services refused the last. */
export type TokenSource = (reason?: 'expired') => string | Promise<string>;
/** How often and how patiently a request is sent again. */
export interface RetryPolicy {
    /** Attempts in all, the first included (default 5). */
    attempts: number;
    /** The first wait between attempts, doubled each time, with jitter (default 200 ms). */
    baseDelayMs: number;
    /** The longest wait between attempts, `Retry-After` included (default 5 s). */
    maxDelayMs: number;
    /** How long one attempt may take before it counts as failed (default 15 s). */
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
    /** Whether it may be sent again after a network error, a timeout, a 503 or a 429 (reads; keyed commands). */
    retry: boolean;
    /** How long one attempt may take, when the request itself waits on the server (`waitMs`). */
    timeoutMs?: number;
    signal?: AbortSignal | undefined;
}
/**
 * Sends `request` and answers the first response that is a 2xx (or a 202); any other becomes a `ProblemError`.
 * A 401 asks the token source once for a fresh token and is sent again.
 */
export declare function send(transport: Transport, request: Request): Promise<Response>;
/** The wait before attempt `attempt + 1`: exponential, capped, with full jitter over its upper half. */
export declare function backoff(policy: RetryPolicy, attempt: number): number;
/** Waits `ms`, or until `signal` aborts (then rejects with its reason). */
export declare function pause(ms: number, signal?: AbortSignal): Promise<void>;
