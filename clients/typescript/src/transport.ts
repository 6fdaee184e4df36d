// One request to a service: the bearer token, a timeout per attempt and, where the request may be sent again, a
// bounded backoff that honours `Retry-After`. Commands are sent again only because they carry an idempotency key:
// the service applies the command once and answers a repeat with the first answer.

import { ProblemError, UnreachableError, retryAfterOf } from './errors.js';

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

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 200, maxDelayMs: 5_000, timeoutMs: 15_000 };

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

/** Statuses after which the same request may succeed: the service was unavailable or asked to slow down. */
const TRANSIENT = new Set([429, 502, 503, 504]);

/**
 * Sends `request` and answers the first response that is a 2xx (or a 202); any other becomes a `ProblemError`.
 * A 401 asks the token source once for a fresh token and is sent again.
 */
export async function send(transport: Transport, request: Request): Promise<Response> {
  const attempts = request.retry ? Math.max(1, transport.retry.attempts) : 1;
  let refreshed = false;
  for (let attempt = 1; ; attempt += 1) {
    let response: Response;
    try {
      response = await once(transport, request, refreshed ? 'expired' : undefined);
    } catch (error) {
      if (request.signal?.aborted) throw request.signal.reason ?? error;
      if (attempt >= attempts) throw new UnreachableError(request.url, error);
      await pause(backoff(transport.retry, attempt), request.signal);
      continue;
    }
    if (response.ok) return response;
    if (response.status === 401 && transport.token && !refreshed) {
      refreshed = true;
      await response.body?.cancel();
      attempt -= 1;
      continue;
    }
    if (!TRANSIENT.has(response.status) || attempt >= attempts) {
      throw await ProblemError.of(response);
    }
    const asked = retryAfterOf(response);
    await response.body?.cancel();
    const wait = asked === undefined ? backoff(transport.retry, attempt) : asked * 1000;
    await pause(Math.min(wait, transport.retry.maxDelayMs), request.signal);
  }
}

async function once(transport: Transport, request: Request, reason: 'expired' | undefined): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json', ...request.headers };
  if (transport.token) headers.authorization = `Bearer ${await transport.token(reason)}`;
  let body: string | undefined;
  if (request.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(request.body);
  }
  const timeout = AbortSignal.timeout(request.timeoutMs ?? transport.retry.timeoutMs);
  const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
  const init: RequestInit = { method: request.method, headers, signal };
  if (body !== undefined) init.body = body;
  return transport.fetch(request.url, init);
}

/** The wait before attempt `attempt + 1`: exponential, capped, with full jitter over its upper half. */
export function backoff(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** Waits `ms`, or until `signal` aborts (then rejects with its reason). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', stop, { once: true });
  });
}
