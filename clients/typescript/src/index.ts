// The client half of the order platform. Commands are sent with an idempotency key made once per logical command
// and reused on every retry, so a command is applied once and its first answer comes back; reads take the receipt
// a command returned and never resolve with a state older than it (the service waits server-side, the client asks
// again on 202 while its deadline allows); `watch` follows an order's view as it changes.

import { NotCaughtUpError, ProblemError, UnreachableError } from './errors.js';
import { views, type Read } from './stream.js';
import { DEFAULT_RETRY, exchange, pause, type RetryPolicy, type TokenSource, type Transport } from './transport.js';
import type {
  CommandAccepted,
  CustomerSummary,
  Dashboard,
  ListMetadata,
  OrderStatus,
  OrderView,
  PlaceOrder,
  PositionMetadata,
} from './types.js';

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
  cancel(orderId: string, options?: ChangeOptions & { reason?: string }): Promise<Receipt>;
  /** The order's view; with `minVersion`, at that version or later. */
  order(orderId: string, options?: ReadOptions & { minVersion?: number }): Promise<Read<OrderView>>;
  list(filter?: ListFilter): Promise<PositionedRead<OrderView[], ListMetadata>>;
  summary(customerId: string, options?: ReadOptions & { after?: After }): Promise<PositionedRead<CustomerSummary>>;
  dashboard(from: string, to: string, options?: ReadOptions & { after?: After }): Promise<PositionedRead<Dashboard>>;
  /** The order's views as they change, from `from` on, newer each time and never one twice, until it is stopped. */
  watch(orderId: string, options?: WatchOptions): AsyncIterableIterator<Read<OrderView>>;
  /** The same, delivered to `onView`; `close()` stops it. */
  watch(orderId: string, options: WatchCallbacks): { close(): void };
  /** The optimistic UI: pending at once, confirmed when the read model has it, failed otherwise. */
  placeOptimistic(
    order: PlaceOrder,
    handlers: OptimisticHandlers,
    options?: CommandOptions & ReadOptions,
  ): Promise<Read<OrderView> | undefined>;
}

/** The longest a single request may ask the service to wait (`waitMs`). */
const MAX_WAIT_MS = 30_000;

export function createClient(options: ClientOptions): OrdersClient {
  const transport: Transport = {
    token: options.token,
    retry: { ...DEFAULT_RETRY, ...options.retry },
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
  };
  const commandsUrl = options.commandsUrl.replace(/\/+$/, '');
  const queriesUrl = options.queriesUrl.replace(/\/+$/, '');
  const readDeadlineMs = options.readDeadlineMs ?? 10_000;
  const maxWaitMs = Math.min(MAX_WAIT_MS, options.maxWaitMs ?? MAX_WAIT_MS);

  async function command(path: string, body: unknown, options: CommandOptions): Promise<Receipt> {
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
    } catch (error) {
      if (error instanceof ProblemError || error instanceof UnreachableError) error.idempotencyKey = idempotencyKey;
      throw error;
    }
    const accepted = answer.body as CommandAccepted;
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

  async function change(action: LifecycleAction, orderId: string, options: ChangeOptions & { reason?: string } = {}) {
    const body: Record<string, unknown> = {};
    if (options.expectedVersion !== undefined) body.expectedVersion = options.expectedVersion;
    if (options.reason !== undefined) body.reason = options.reason;
    return command(`/commands/orders/${orderSegment(orderId)}/${action}`, body, options);
  }

  /**
   * Reads `path` until the service answers 200: each request waits server-side as long as the deadline allows,
   * and a 202 is asked again while time is left. A read past its deadline rejects: it never resolves with a state
   * older than the one asked for.
   */
  async function waitingRead(path: string, query: URLSearchParams, what: string, read: ReadOptions) {
    const deadlineMs = read.deadlineMs ?? readDeadlineMs;
    if (!Number.isFinite(deadlineMs)) throw new TypeError(`deadlineMs: ${deadlineMs} is not a number of milliseconds`);
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
      if (status !== 202) return body;
      if (Date.now() >= deadline) throw new NotCaughtUpError(what, body);
      // The service waited as long as it was asked to; when that was nothing, it asked for a pause.
      if (waitMs < 100) await pause(Math.min(1_000, Math.max(0, deadline - Date.now())), read.signal);
    }
  }

  async function order(orderId: string, options: ReadOptions & { minVersion?: number } = {}) {
    const path = `/queries/orders/${orderSegment(orderId)}`;
    if (options.minVersion === undefined) {
      const url = `${queriesUrl}${path}`;
      const answer = await exchange(transport, { method: 'GET', url, retry: true, signal: options.signal });
      return answer.body as Read<OrderView>;
    }
    const query = new URLSearchParams({ minVersion: String(options.minVersion) });
    const what = `order ${orderId} at version ${options.minVersion}`;
    return (await waitingRead(path, query, what, options)) as Read<OrderView>;
  }

  async function positioned<T, M extends { missingPositions?: number[] | null }>(
    path: string,
    query: URLSearchParams,
    after: After | undefined,
    read: ReadOptions,
  ): Promise<PositionedRead<T, M>> {
    let body: unknown;
    if (after === undefined) {
      const url = query.size > 0 ? `${queriesUrl}${path}?${query}` : `${queriesUrl}${path}`;
      body = (await exchange(transport, { method: 'GET', url, retry: true, signal: read.signal })).body;
    } else {
      const position = typeof after === 'number' ? after : after.position;
      query.set('minPosition', String(position));
      body = await waitingRead(path, query, `${path} at position ${position}`, read);
    }
    const { data, metadata } = body as { data: T; metadata: M };
    return { data, metadata, missingPositions: after === undefined ? null : (metadata.missingPositions ?? []) };
  }

  function watch(orderId: string, options: WatchOptions | WatchCallbacks = {}): never {
    const from = typeof options.from === 'object' ? options.from.sequenceId : (options.from ?? 1);
    const target = { transport, queriesUrl };
    const segment = orderSegment(orderId);
    if (!('onView' in options)) {
      return views<OrderView>(target, segment, from, { signal: options.signal, silenceMs: options.silenceMs }) as never;
    }
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const onRetry = options.onError;
    (async () => {
      const stream = views<OrderView>(target, segment, from, { signal, silenceMs: options.silenceMs, onRetry });
      for await (const read of stream) options.onView(read);
    })().catch((error: unknown) => {
      if (!signal.aborted) options.onError?.(error);
    });
    return { close: () => stop.abort() } as never;
  }

  const place = (order: PlaceOrder, options: CommandOptions = {}) => command('/commands/orders', order, options);

  return {
    place,
    confirm: (orderId, options) => change('confirm', orderId, options),
    ship: (orderId, options) => change('ship', orderId, options),
    cancel: (orderId, options) => change('cancel', orderId, options),
    order,
    list: ({ customerId, status, limit, cursor, after, ...read } = {}) => {
      const query = new URLSearchParams();
      if (customerId !== undefined) query.set('customerId', customerId);
      if (status !== undefined) query.set('status', status);
      if (limit !== undefined) query.set('limit', String(limit));
      if (cursor !== undefined) query.set('cursor', cursor);
      return positioned('/queries/orders', query, after, read);
    },
    summary: async (customerId, { after, ...read } = {}) =>
      positioned(`/queries/customers/${customerSegment(customerId)}/summary`, new URLSearchParams(), after, read),
    dashboard: (from, to, { after, ...read } = {}) =>
      positioned('/queries/dashboard/daily', new URLSearchParams({ from, to }), after, read),
    watch,
    async placeOptimistic(order, handlers, options = {}) {
      handlers.onPending?.(order);
      let receipt: Receipt | undefined;
      let read: Read<OrderView>;
      try {
        receipt = await place(order, options);
        read = await receipt.view(options);
      } catch (error) {
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
export function newKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** An order id as a path segment: a UUID, or a `TypeError` before anything is sent. */
function orderSegment(orderId: string): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(orderId)) {
    throw new TypeError(`${JSON.stringify(orderId)} is no order id (a UUID)`);
  }
  return orderId;
}

/** A customer id as a path segment; `.` and `..` would name another path (a URL resolves them away). */
function customerSegment(customerId: string): string {
  if (customerId === '' || customerId === '.' || customerId === '..') {
    throw new TypeError(`${JSON.stringify(customerId)} cannot name a customer in a URL's path`);
  }
  return encodeURIComponent(customerId);
}

/** `ProblemError` for a caller that switches on the problem of a refused command. */
export function isConflict(error: unknown): error is ProblemError {
  return error instanceof ProblemError && error.status === 409;
}
