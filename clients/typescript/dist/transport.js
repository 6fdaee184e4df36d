// One exchange with a service: the bearer token, a timeout per attempt (the answer's body included) and, where the
// request may be sent again, a bounded backoff that honours `Retry-After`. Commands are sent again only because they
// carry an idempotency key: the service applies the command once and answers a repeat with the first answer. The
// caller's own mistakes (a token source that throws, a body that is no JSON) are thrown at once, never retried.
import { ProblemError, UnreachableError, retryAfterOf } from './errors.js';
export const DEFAULT_RETRY = { attempts: 5, baseDelayMs: 200, maxDelayMs: 5_000, timeoutMs: 15_000 };
/** Statuses after which the same request may succeed: the service was unavailable or asked to slow down. */
const TRANSIENT = new Set([429, 502, 503, 504]);
/**
 * Sends `request` and reads its answer. A 2xx resolves with its JSON body; any other status rejects with a
 * `ProblemError`; a service that cannot be reached, after every attempt allowed, with an `UnreachableError`. A 401
 * asks the token source once for a fresh token and is sent again.
 */
export async function exchange(transport, request) {
    const body = request.body === undefined ? undefined : JSON.stringify(request.body);
    const attempts = request.retry ? Math.max(1, transport.retry.attempts) : 1;
    let expired = request.tokenExpired === true;
    let refreshed = expired;
    for (let attempt = 1;; attempt += 1) {
        const headers = await headersFor(transport, request, expired ? 'expired' : undefined);
        if (body !== undefined)
            headers['content-type'] = 'application/json';
        const timeout = AbortSignal.timeout(request.timeoutMs ?? transport.retry.timeoutMs);
        const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
        let status;
        let text;
        let retryAfter;
        try {
            const init = { method: request.method, headers, signal };
            if (body !== undefined)
                init.body = body;
            const response = await transport.fetch(request.url, init);
            status = response.status;
            retryAfter = retryAfterOf(response);
            text = await response.text();
        }
        catch (error) {
            if (request.signal?.aborted)
                throw request.signal.reason ?? error;
            if (attempt >= attempts)
                throw new UnreachableError(request.url, error);
            await pause(backoff(transport.retry, attempt), request.signal);
            continue;
        }
        if (status >= 200 && status < 300)
            return { status, body: parsed(status, text) };
        if (status === 401 && transport.token && !refreshed) {
            refreshed = true;
            expired = true;
            attempt -= 1;
            continue;
        }
        const refused = ProblemError.parse(status, text, retryAfter);
        if (!TRANSIENT.has(status) || attempt >= attempts)
            throw refused;
        if (retryAfter !== undefined && retryAfter * 1000 > transport.retry.maxDelayMs)
            throw refused;
        await pause(retryAfter === undefined ? backoff(transport.retry, attempt) : retryAfter * 1000, request.signal);
    }
}
/** The headers of one attempt: the request's, checked, and the bearer token when the client has a source. */
export async function headersFor(transport, request, reason) {
    const headers = { accept: 'application/json', ...request.headers };
    for (const [name, value] of Object.entries(headers)) {
        if (!/^[\x20-\x7e]*$/.test(value)) {
            throw new TypeError(`header ${name}: ${JSON.stringify(value)} is not printable ASCII`);
        }
    }
    if (transport.token) {
        const source = transport.token;
        const token = await abortable(Promise.resolve().then(() => source(reason)), request.signal);
        if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
            throw new TypeError(`the token source gave ${typeof token === 'string' ? 'an unusable token' : typeof token}`);
        }
        headers.authorization = `Bearer ${token}`;
    }
    return headers;
}
/** A 2xx body as JSON; a body that is not JSON is an answer outside the contract. */
function parsed(status, text) {
    try {
        return text === '' ? null : JSON.parse(text);
    }
    catch {
        throw new ProblemError(status, { title: 'Unreadable answer', detail: `a ${status} answer whose body is not JSON` });
    }
}
/** `promise`, unless `signal` aborts first (then its reason). */
function abortable(promise, signal) {
    if (!signal)
        return promise;
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
        const stop = () => reject(signal.reason);
        signal.addEventListener('abort', stop, { once: true });
        promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', stop));
    });
}
/** The wait before attempt `attempt + 1`: exponential, capped, with full jitter over its upper half. */
export function backoff(policy, attempt) {
    const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
}
/** Waits `ms`, or until `signal` aborts (then rejects with its reason). */
export function pause(ms, signal) {
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
