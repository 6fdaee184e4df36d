import { ProblemError } from './errors.js';
import { type Read } from './stream.js';
import { type RetryPolicy, type TokenSource } from './transport.js';
import type { CommandAccepted, CustomerSummary, Dashboard, ListMetadata, OrderStatus, OrderView, PlaceOrder, PositionMetadata } from './types.js';
export { NotCaughtUpError, ProblemError, UnreachableError, type FieldError } from './errors.js';
export { serverEvents, type Read, type ServerEvent } from './stream.js';
export type { RetryPolicy, TokenSource } from './transport.js';
export type * from './types.js';
export interface ClientOptions {
    /** The command-service, e.g. `http://localhost:8080`. */
    commandsUrl: string;
    /** The query-service, e.g. `http://localhost:8081`. */
    queriesUrl: string;
    /** The bearer token (`AUTH_MODE=jwt`), asked for before each request; with `'expired'` after a 401. */
    token?: TokenSource;
    retry?: Partial<RetryPolicy>;
    /** How long a read waits for the version or position it was given, in all (default 10 s). */
    readDeadlineMs?: number;
    /** The longest one read request asks the service to wait (`waitMs`, default and at most 30 s). */
    maxWaitMs?: number;
    /** A `fetch` of the caller's (default: the global one). */
    fetch?: typeof fetch;
}
/** A command the service applied: its answer, and the way to read the order at (or after) it. */
export interface Receipt extends CommandAccepted {
    /** The idempotency key the command was sent with (on every attempt). */
    idempotencyKey: string;
    /** The order's view at this receipt's version or later. */
    view(options?: ReadOptions): Promise<Read<OrderView>>;
}
/** What a read at a receipt waits for: a receipt, or a position of the log. */
export type After = Pick<CommandAccepted, 'position'> | number;
export interface ReadOptions {
    /** How long to wait in all before giving up with `NotCaughtUpError` (default: the client's). */
    deadlineMs?: number;
    signal?: AbortSignal;
}
export interface CommandOptions {
    /** The key of this logical command; made for it when not given. Give the same key to send it again later. */
    idempotencyKey?: string;
    signal?: AbortSignal;
}
export interface ChangeOptions extends CommandOptions {
    /** Apply only if the order is still at this version (409 otherwise). */
    expectedVersion?: number;
}
/** A read of a whole read model at a position: its data, and the positions it could not vouch for. */
export interface PositionedRead<T, M = PositionMetadata> {
    data: T;
    metadata: M;
    /**
     * Positions up to the one asked for whose events are in no view (dead-lettered); empty when complete. `null` for
     * a read given no position (`after`): it vouches for none.
     */
    missingPositions: number[] | null;
}
export interface ListFilter extends ReadOptions {
    customerId?: string;
    status?: OrderStatus;
    limit?: number;
    cursor?: string;
    /** Include every order up to this receipt (or position). */
    after?: After;
}
export interface WatchOptions {
    /** The first version wanted: a receipt's, or a number (default 1: the view as it is, then every change). */
    from?: Pick<CommandAccepted, 'sequenceId'> | number;
    /** Stops the watch (also while a `next()` is pending, which `return()` is not). */
    signal?: AbortSignal;
    /** How long the stream may send nothing, keep-alives included, before it is opened again (default 45 s). */
    silenceMs?: number;
}
export interface WatchCallbacks extends WatchOptions {
    onView: (read: Read<OrderView>) => void;
    /** Each failure the watch meets: those it goes on after (it opens the stream again), and the one that ends it. */
    onError?: (error: unknown) => void;
}
export interface OptimisticHandlers {
    /** At once, before the command is sent: show the order as it will be. */
    onPending?: (order: PlaceOrder) => void;
    /** Once the read model has the order at the command's version. */
    onConfirmed?: (view: OrderView, receipt: Receipt) => void;
    /** The command was refused, or its view could not be read in time (then with the receipt: it was placed). */
    onFailed?: (error: unknown, receipt?: Receipt) => void;
}
export type LifecycleAction = 'confirm' | 'ship' | 'cancel';
export interface OrdersClient {
    place(order: PlaceOrder, options?: CommandOptions): Promise<Receipt>;
    confirm(orderId: string, options?: ChangeOptions): Promise<Receipt>;
    ship(orderId: string, options?: ChangeOptions): Promise<Receipt>;
    cancel(orderId: string, options?: ChangeOptions & {
        reason?: string;
    }): Promise<Receipt>;
    /** The order's view; with `minVersion`, at that version or later. */
    order(orderId: string, options?: ReadOptions & {
        minVersion?: number;
    }): Promise<Read<OrderView>>;
    list(filter?: ListFilter): Promise<PositionedRead<OrderView[], ListMetadata>>;
    summary(customerId: string, options?: ReadOptions & {
        after?: After;
    }): Promise<PositionedRead<CustomerSummary>>;
    dashboard(from: string, to: string, options?: ReadOptions & {
        after?: After;
    }): Promise<PositionedRead<Dashboard>>;
    /** The order's views as they change, from `from` on, newer each time and never one twice, until it is stopped. */
    watch(orderId: string, options?: WatchOptions): AsyncIterableIterator<Read<OrderView>>;
    /** The same, delivered to `onView`; `close()` stops it. */
    watch(orderId: string, options: WatchCallbacks): {
        close(): void;
    };
    /** The optimistic UI: pending at once, confirmed when the read model has it, failed otherwise. */
    placeOptimistic(order: PlaceOrder, handlers: OptimisticHandlers, options?: CommandOptions & ReadOptions): Promise<Read<OrderView> | undefined>;
}
export declare function createClient(options: ClientOptions): OrdersClient;
/** A random UUID (v4) for `Idempotency-Key`. `crypto.randomUUID` needs a secure context; this does not. */
export declare function newKey(): string;
/** `ProblemError` for a caller that switches on the problem of a refused command. */
export declare function isConflict(error: unknown): error is ProblemError;
