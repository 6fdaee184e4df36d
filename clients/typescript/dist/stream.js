// An order's view stream (`GET /queries/orders/{id}/stream`, server-sent events) read over `fetch`, so that it
// runs the same in a browser and in Node.js with no `EventSource`. It opens with a stream ticket when the client has
// a token, and opens again — after the last version it delivered, with a new ticket — after a dropped connection, a
// stream that went silent, an answer that was no stream, or an expired credential. The stream carries the order's
// view, not its events: it delivers the view's versions in order and never one twice, but a version the view
// passed while the stream was away (or between two of its notices) is not sent on its own, the newer one is.
import { ProblemError } from './errors.js';
import { backoff, exchange, pause } from './transport.js';
/**
 * Splits a text stream into server-sent events (the HTML standard's rules: `event`, `data` and `id` fields, `:`
 * comments, events dispatched at a blank line, any of CR, LF and CRLF ending a line).
 */
export async function* serverEvents(chunks) {
    let buffer = '';
    let event = '';
    let data = [];
    let id;
    const take = function* (line) {
        if (line === '') {
            if (data.length > 0)
                yield { event: event || 'message', id, data: data.join('\n') };
            event = '';
            data = [];
            return;
        }
        if (line.startsWith(':'))
            return;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event')
            event = value;
        else if (field === 'data')
            data.push(value);
        else if (field === 'id' && !value.includes('\0'))
            id = value;
    };
    for await (const chunk of chunks) {
        buffer += chunk;
        let line;
        while ((line = nextLine(buffer, false)) !== undefined) {
            buffer = buffer.slice(line.length + (buffer.startsWith('\r\n', line.length) ? 2 : 1));
            yield* take(line);
        }
    }
    // The end of the stream ends a line that a lone CR was holding back.
    const last = nextLine(buffer, true);
    if (last !== undefined)
        yield* take(last);
}
/** The first whole line of `buffer`, if it has one. A CR at its very end may be half of a CRLF, unless `final`. */
function nextLine(buffer, final) {
    const end = buffer.search(/\r\n|\r|\n/);
    if (end < 0 || (!final && end === buffer.length - 1 && buffer[end] === '\r'))
        return undefined;
    return buffer.slice(0, end);
}
/** Refusals of a stream's opening that a later attempt may not meet: a credential refused (a new one is asked for),
 * an unavailable or busy service. */
const REOPENABLE = new Set([401, 429, 502, 503, 504]);
/** How long a stream that keeps failing to open waits between attempts, at most. */
const MAX_REOPEN_DELAY_MS = 5_000;
/** The server's keep-alive comes every 15 s: three missed ones and the connection is taken for dead. */
const SILENCE_MS = 45_000;
/** Why a connection was given up: it sent nothing for too long, or what it answered was no event stream. */
class StreamFailure extends Error {
}
/**
 * The views of order `orderId` from version `from` on, as they change, until `signal` aborts or the caller stops
 * iterating (`break`; a `return()` called while a `next()` is pending waits for it, the signal does not). A refusal
 * no retry can change (400, 403, 404) ends it with a `ProblemError`; anything else is tried again, for as long as
 * the caller waits.
 */
export async function* views(target, orderId, from, options = {}) {
    let seen = from - 1;
    let failures = 0;
    let expired = false;
    const stopped = new AbortController();
    const stop = options.signal ? AbortSignal.any([options.signal, stopped.signal]) : stopped.signal;
    const retry = async (error) => {
        options.onRetry?.(error);
        failures += 1;
        const delay = backoff({ ...target.transport.retry, maxDelayMs: MAX_REOPEN_DELAY_MS }, failures);
        await pause(delay, stop).catch(() => { });
    };
    try {
        while (!stop.aborted) {
            const connection = new AbortController();
            const signal = AbortSignal.any([stop, connection.signal]);
            let text;
            try {
                text = await open(target, orderId, seen + 1, { signal, connection, expired });
                expired = false;
            }
            catch (error) {
                if (stop.aborted)
                    return;
                if (error instanceof ProblemError && !REOPENABLE.has(error.status))
                    throw error;
                expired = error instanceof ProblemError && error.status === 401;
                await retry(error);
                continue;
            }
            try {
                const chunks = chunksOf(text, options.silenceMs ?? SILENCE_MS, connection);
                for await (const message of serverEvents(chunks)) {
                    if (message.event === 'expired') {
                        expired = true;
                        break;
                    }
                    if (message.event !== 'view')
                        continue;
                    const read = JSON.parse(message.data);
                    failures = 0;
                    if (read.metadata.version <= seen)
                        continue;
                    seen = read.metadata.version;
                    yield read;
                }
            }
            catch (error) {
                // The connection dropped or went silent (or the caller stopped): opened again after the last version.
                if (stop.aborted)
                    return;
                await retry(error);
                continue;
            }
            finally {
                connection.abort();
            }
            if (!stop.aborted)
                await pause(backoff(target.transport.retry, 1), stop).catch(() => { });
        }
    }
    finally {
        stopped.abort();
    }
}
/**
 * The chunks of `stream`, through its reader (not every browser iterates a `ReadableStream` itself). A wait of
 * more than `silenceMs` for the next one gives the connection up. Cancelled when the caller stops.
 */
async function* chunksOf(stream, silenceMs, connection) {
    const reader = stream.getReader();
    try {
        for (;;) {
            let timer;
            const silent = new Promise((_, reject) => {
                timer = setTimeout(() => {
                    const failure = new StreamFailure(`the stream sent nothing for ${silenceMs} ms`);
                    connection.abort(failure);
                    reject(failure);
                }, silenceMs);
            });
            try {
                const { done, value } = await Promise.race([reader.read(), silent]);
                if (done)
                    return;
                yield value;
            }
            finally {
                clearTimeout(timer);
            }
        }
    }
    finally {
        // Ends the response too (cancelling a piped stream cancels its source): the connection is not left open.
        await reader.cancel().catch(() => { });
    }
}
/**
 * Opens the stream at `minVersion`, through a fresh ticket when the client has a token (a new token first when
 * the last one `expired`); its text, once the service answered with an event stream.
 */
async function open(target, orderId, minVersion, { signal, connection, expired }) {
    const path = `/queries/orders/${orderId}/stream`;
    let url = `${target.queriesUrl}${path}?minVersion=${minVersion}`;
    if (target.transport.token) {
        const minted = await exchange(target.transport, {
            method: 'POST',
            url: `${target.queriesUrl}${path}-ticket`,
            retry: true,
            signal,
            tokenExpired: expired,
        });
        const { streamUrl } = minted.body;
        url = `${under(target.queriesUrl, streamUrl)}&minVersion=${minVersion}`;
    }
    // The headers must come within an attempt's timeout; the body is watched for silence instead.
    const timeoutMs = target.transport.retry.timeoutMs;
    const late = setTimeout(() => connection.abort(new StreamFailure(`no answer within ${timeoutMs} ms`)), timeoutMs);
    let response;
    try {
        response = await target.transport.fetch(url, { headers: { accept: 'text/event-stream' }, signal });
    }
    finally {
        clearTimeout(late);
    }
    if (!response.ok)
        throw ProblemError.parse(response.status, await response.text().catch(() => ''));
    const type = response.headers.get('content-type') ?? '';
    if (!response.body || !type.startsWith('text/event-stream')) {
        await response.body?.cancel().catch(() => { });
        throw new StreamFailure(`the stream answered ${response.status} ${type || 'without a body'}, no event stream`);
    }
    return response.body.pipeThrough(new TextDecoderStream());
}
/** A path the service names (`/queries/…`), under the base URL the client was given (which may carry a prefix). */
function under(base, path) {
    if (/^https?:\/\//.test(path))
        return path;
    return `${base}${path.startsWith('/') ? '' : '/'}${path}`;
}
