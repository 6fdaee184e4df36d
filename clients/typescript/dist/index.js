// The client half of the order platform. Commands are sent with an idempotency key made once per logical command
// and reused on every retry, so a command is applied once and its first answer comes back; reads take the receipt
// a command returned and never resolve with a state older than it (the service waits server-side, the client asks
// again on 202 while its deadline allows); `watch` follows an order's view as it changes.
import { NotCaughtUpError, ProblemError, UnreachableError } from './errors.js';
import { views } from './stream.js';
import { DEFAULT_RETRY, exchange, pause } from './transport.js';
export { NotCaughtUpError, ProblemError, UnreachableError } from './errors.js';
export { serverEvents } from './stream.js';
/** The longest a single request may ask the service to wait (`waitMs`). */
const MAX_WAIT_MS = 30_000;
export function createClient(options) {
    const transport = {
        token: options.token,
        retry: { ...DEFAULT_RETRY, ...options.retry },
        fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
    };
    const commandsUrl = options.commandsUrl.replace(/\/+$/, '');
    const queriesUrl = options.queriesUrl.replace(/\/+$/, '');
    const readDeadlineMs = options.readDeadlineMs ?? 10_000;
    const maxWaitMs = Math.min(MAX_WAIT_MS, options.maxWaitMs ?? MAX_WAIT_MS);
    async function command(path, body, options) {
        const idempotencyKey = options.idempotencyKey ?? newKey();
        let answer;
        try {
            answer = await exchange(transport, {
                method: 'POST',
                url: `${commandsUrl}${path}`,
                body,
                headers: { 'idempotency-key': idempotencyKey },
                retry: true,
                signal: options.signal,
            });
        }
        catch (error) {
            if (error instanceof ProblemError || error instanceof UnreachableError)
                error.idempotencyKey = idempotencyKey;
            throw error;
        }
        const accepted = answer.body;
        const receipted = Number.isInteger(accepted?.sequenceId) && Number.isInteger(accepted?.position);
        if (typeof accepted?.orderId !== 'string' || !receipted) {
            const detail = 'the command was answered without its receipt';
            throw new ProblemError(answer.status, { title: 'Unexpected answer', detail });
        }
        return {
            ...accepted,
            idempotencyKey,
            view: (read) => order(accepted.orderId, { ...read, minVersion: accepted.sequenceId }),
        };
    }
    async function change(action, orderId, options = {}) {
        const body = {};
        if (options.expectedVersion !== undefined)
            body.expectedVersion = options.expectedVersion;
        if (options.reason !== undefined)
            body.reason = options.reason;
        return command(`/commands/orders/${orderSegment(orderId)}/${action}`, body, options);
    }
    /**
     * Reads `path` until the service answers 200: each request waits server-side as long as the deadline allows,
     * and a 202 is asked again while time is left. A read past its deadline rejects: it never resolves with a state
     * older than the one asked for.
     */
    async function waitingRead(path, query, what, read) {
        const deadlineMs = read.deadlineMs ?? readDeadlineMs;
        if (!Number.isFinite(deadlineMs))
            throw new TypeError(`deadlineMs: ${deadlineMs} is not a number of milliseconds`);
        const deadline = Date.now() + deadlineMs;
        for (;;) {
            const waitMs = Math.max(0, Math.min(maxWaitMs, deadline - Date.now()));
            query.set('waitMs', String(Math.round(waitMs)));
            const { status, body } = await exchange(transport, {
                method: 'GET',
                url: `${queriesUrl}${path}?${query}`,
                retry: true,
                timeoutMs: waitMs + transport.retry.timeoutMs,
                signal: read.signal,
            });
            if (status !== 202)
                return body;
            if (Date.now() >= deadline)
                throw new NotCaughtUpError(what, body);
            // The service waited as long as it was asked to; when that was nothing, it asked for a pause.
            if (waitMs < 100)
                await pause(Math.min(1_000, Math.max(0, deadline - Date.now())), read.signal);
        }
    }
    async function order(orderId, options = {}) {
        const path = `/queries/orders/${orderSegment(orderId)}`;
        if (options.minVersion === undefined) {
            const url = `${queriesUrl}${path}`;
            const answer = await exchange(transport, { method: 'GET', url, retry: true, signal: options.signal });
            return answer.body;
        }
        const query = new URLSearchParams({ minVersion: String(options.minVersion) });
        const what = `order ${orderId} at version ${options.minVersion}`;
        return (await waitingRead(path, query, what, options));
    }
    async function positioned(path, query, after, read) {
        let body;
        if (after === undefined) {
            const url = query.size > 0 ? `${queriesUrl}${path}?${query}` : `${queriesUrl}${path}`;
            body = (await exchange(transport, { method: 'GET', url, retry: true, signal: read.signal })).body;
        }
        else {
            const position = typeof after === 'number' ? after : after.position;
            query.set('minPosition', String(position));
            body = await waitingRead(path, query, `${path} at position ${position}`, read);
        }
        const { data, metadata } = body;
        return { data, metadata, missingPositions: after === undefined ? null : (metadata.missingPositions ?? []) };
    }
    function watch(orderId, options = {}) {
        const from = typeof options.from === 'object' ? options.from.sequenceId : (options.from ?? 1);
        const target = { transport, queriesUrl };
        const segment = orderSegment(orderId);
        if (!('onView' in options)) {
            return views(target, segment, from, { signal: options.signal, silenceMs: options.silenceMs });
        }
        const stop = new AbortController();
        const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
        const onRetry = options.onError;
        (async () => {
            const stream = views(target, segment, from, { signal, silenceMs: options.silenceMs, onRetry });
            for await (const read of stream)
                options.onView(read);
        })().catch((error) => {
            if (!signal.aborted)
                options.onError?.(error);
        });
        return { close: () => stop.abort() };
    }
    const place = (order, options = {}) => command('/commands/orders', order, options);
    return {
        place,
        confirm: (orderId, options) => change('confirm', orderId, options),
        ship: (orderId, options) => change('ship', orderId, options),
        cancel: (orderId, options) => change('cancel', orderId, options),
        order,
        list: ({ customerId, status, limit, cursor, after, ...read } = {}) => {
            const query = new URLSearchParams();
            if (customerId !== undefined)
                query.set('customerId', customerId);
            if (status !== undefined)
                query.set('status', status);
            if (limit !== undefined)
                query.set('limit', String(limit));
            if (cursor !== undefined)
                query.set('cursor', cursor);
            return positioned('/queries/orders', query, after, read);
        },
        summary: async (customerId, { after, ...read } = {}) => positioned(`/queries/customers/${customerSegment(customerId)}/summary`, new URLSearchParams(), after, read),
        dashboard: (from, to, { after, ...read } = {}) => positioned('/queries/dashboard/daily', new URLSearchParams({ from, to }), after, read),
        watch,
        async placeOptimistic(order, handlers, options = {}) {
            handlers.onPending?.(order);
            let receipt;
            let read;
            try {
                receipt = await place(order, options);
                read = await receipt.view(options);
            }
            catch (error) {
                handlers.onFailed?.(error, receipt);
                return undefined;
            }
            // Outside the try: an error of the caller's own handler is the caller's, not a failed order.
            handlers.onConfirmed?.(read.data, receipt);
            return read;
        },
    };
}
/** A random UUID (v4) for `Idempotency-Key`. `crypto.randomUUID` needs a secure context; this does not. */
export function newKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
    bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
/** An order id as a path segment: a UUID, or a `TypeError` before anything is sent. */
function orderSegment(orderId) {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(orderId)) {
        throw new TypeError(`${JSON.stringify(orderId)} is no order id (a UUID)`);
    }
    return orderId;
}
/** A customer id as a path segment; `.` and `..` would name another path (a URL resolves them away). */
function customerSegment(customerId) {
    if (customerId === '' || customerId === '.' || customerId === '..') {
        throw new TypeError(`${JSON.stringify(customerId)} cannot name a customer in a URL's path`);
    }
    return encodeURIComponent(customerId);
}
/** `ProblemError` for a caller that switches on the problem of a refused command. */
export function isConflict(error) {
    return error instanceof ProblemError && error.status === 409;
}
