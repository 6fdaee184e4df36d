// An order's view stream (`GET /queries/orders/{id}/stream`, server-sent events) read over `fetch`, so that it
// runs the same in a browser and in Node.js with no `EventSource`: it opens with a stream ticket when the client has
// a token, opens again after a dropped connection or an expired ticket (a new ticket each time), resumes after the
// last version it delivered, and never delivers a version twice or out of order.
import { ProblemError } from './errors.js';
import { backoff, pause, send } from './transport.js';
/**
 * Splits a text stream into server-sent events (the HTML standard's rules: `event`, `data` and `id` fields, `:`
 * comments, events dispatched at a blank line, any of CR, LF and CRLF ending a line).
 */
export async function* serverEvents(chunks) {
    let buffer = '';
    let event = '';
    let data = [];
    let id;
    for await (const chunk of chunks) {
        buffer += chunk;
        for (;;) {
            const end = buffer.search(/\r\n|\r|\n/);
            // A lone CR at the end may be the first half of a CRLF: wait for the next chunk.
            if (end < 0 || (end === buffer.length - 1 && buffer[end] === '\r'))
                break;
            const line = buffer.slice(0, end);
            buffer = buffer.slice(end + (buffer.startsWith('\r\n', end) ? 2 : 1));
            if (line === '') {
                if (data.length > 0)
                    yield { event: event || 'message', id, data: data.join('\n') };
                event = '';
                data = [];
                continue;
            }
            if (line.startsWith(':'))
                continue;
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event')
                event = value;
            else if (field === 'data')
                data.push(value);
            else if (field === 'id' && !value.includes('\0'))
                id = value;
        }
    }
}
/** Refusals of a stream's opening that a later attempt may not meet: a ticket refused (a new one is minted), an
 * unavailable or busy service. */
const REOPENABLE = new Set([401, 429, 502, 503, 504]);
/** How long a stream that keeps failing to open waits between attempts, at most. */
const MAX_REOPEN_DELAY_MS = 5_000;
/**
 * The views of order `orderId` from version `from` on, as they change, until `signal` aborts or the caller stops
 * iterating. A refusal that no retry can change (400, 403, 404) ends it with a `ProblemError`; a service that
 * cannot be reached is tried again, for as long as the caller waits.
 */
export async function* views(target, orderId, from, signal) {
    let seen = from - 1;
    let failures = 0;
    const stopped = new AbortController();
    const stop = AbortSignal.any(signal ? [signal, stopped.signal] : [stopped.signal]);
    try {
        while (!stop.aborted) {
            let response;
            try {
                response = await open(target, orderId, seen + 1, stop);
            }
            catch (error) {
                if (stop.aborted)
                    return;
                if (error instanceof ProblemError && !REOPENABLE.has(error.status))
                    throw error;
                failures += 1;
                const delay = backoff({ ...target.transport.retry, maxDelayMs: MAX_REOPEN_DELAY_MS }, failures);
                await pause(delay, stop).catch(() => { });
                continue;
            }
            const body = response.body;
            if (!body)
                continue;
            try {
                for await (const message of serverEvents(chunksOf(body.pipeThrough(new TextDecoderStream())))) {
                    if (message.event === 'expired')
                        break;
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
            catch {
                // The connection dropped (or the caller stopped): opened again below, after the last version delivered.
                if (stop.aborted)
                    return;
            }
            if (!stop.aborted)
                await pause(backoff(target.transport.retry, 1), stop).catch(() => { });
        }
    }
    finally {
        stopped.abort();
    }
}
/** The chunks of `stream`, through its reader (not every browser iterates a `ReadableStream` itself); cancelled when
 * the caller stops. */
async function* chunksOf(stream) {
    const reader = stream.getReader();
    try {
        for (;;) {
            const { done, value } = await reader.read();
            if (done)
                return;
            yield value;
        }
    }
    finally {
        // Ends the response too (cancelling a piped stream cancels its source): the connection is not left open.
        await reader.cancel().catch(() => { });
    }
}
/** Opens the stream at `minVersion`: through a fresh ticket when the client has a token. */
async function open(target, orderId, minVersion, signal) {
    const path = `/queries/orders/${encodeURIComponent(orderId)}/stream`;
    let url = `${target.queriesUrl}${path}?minVersion=${minVersion}`;
    if (target.transport.token) {
        const minted = await send(target.transport, {
            method: 'POST',
            url: `${target.queriesUrl}${path}-ticket`,
            retry: true,
            signal,
        });
        const ticket = (await minted.json());
        url = `${new URL(ticket.streamUrl, `${target.queriesUrl}/`).href}&minVersion=${minVersion}`;
    }
    const response = await target.transport.fetch(url, {
        headers: { accept: 'text/event-stream' },
        signal,
    });
    if (!response.ok)
        throw await ProblemError.of(response);
    return response;
}
