import { type Transport } from './transport.js';
/** One server-sent event: its `event` name, `id` and `data`. */
export interface ServerEvent {
    event: string;
    id: string | undefined;
    data: string;
}
/**
 * Splits a text stream into server-sent events (the HTML standard's rules: `event`, `data` and `id` fields, `:`
 * comments, events dispatched at a blank line, any of CR, LF and CRLF ending a line).
 */
export declare function serverEvents(chunks: AsyncIterable<string>): AsyncGenerator<ServerEvent>;
/** A view as the single read and the stream carry it: the document and what the service says of it. */
export interface Read<T> {
    data: T;
    metadata: {
        version: number;
        [member: string]: unknown;
    };
}
/** What `watch` needs of the client. */
export interface StreamTarget {
    transport: Transport;
    queriesUrl: string;
}
export interface StreamOptions {
    signal?: AbortSignal | undefined;
    /** How long a stream may send nothing, keep-alives included (every 15 s), before it is opened again (45 s). */
    silenceMs?: number | undefined;
    /** Told of each failure after which the stream is opened again (the watch goes on). */
    onRetry?: ((error: unknown) => void) | undefined;
}
/**
 * The views of order `orderId` from version `from` on, as they change, until `signal` aborts or the caller stops
 * iterating (`break`; a `return()` called while a `next()` is pending waits for it, the signal does not). A refusal
 * no retry can change (400, 403, 404) ends it with a `ProblemError`; anything else is tried again, for as long as
 * the caller waits.
 */
export declare function views<T>(target: StreamTarget, orderId: string, from: number, options?: StreamOptions): AsyncGenerator<Read<T>>;
