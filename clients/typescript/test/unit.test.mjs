// The library's own logic, against a `fetch` the test plays: answers cut off mid-body, token sources that hang or
// throw, `Retry-After` beyond the policy, ids that a URL would resolve away, streams that answer nothing, go
// silent or expire, and a service mounted under a path. No service runs here.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createClient, ProblemError, serverEvents, UnreachableError } from '../dist/index.js';

const ORDER_ID = '01a24dbf-96c7-74f5-b74d-0480aeb8d36c';
const ACCEPTED = { orderId: ORDER_ID, sequenceId: 1, position: 7, status: 'Placed', total: '1.00', currency: 'EUR' };
const FAST = { baseDelayMs: 1, maxDelayMs: 20, timeoutMs: 1_000 };
const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
const order = { customerId: 'c1', items: [{ sku: 'S', quantity: 1, unitPrice: '1.00' }] };

/** A client whose requests `answer(url, init, n)` answers; the requests it saw are in `seen`. */
function played(answer, options = {}) {
  const seen = [];
  const client = createClient({
    commandsUrl: 'http://commands.test',
    queriesUrl: 'http://queries.test',
    retry: FAST,
    fetch: async (url, init) => {
      seen.push({ url: String(url), init });
      return answer(String(url), init, seen.length);
    },
    ...options,
  });
  return { client, seen };
}

/** A body that sends `text` and then fails, as a connection cut mid-answer does. */
function cut(status, text) {
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(text));
      controller.error(new TypeError('terminated'));
    },
  });
  return new Response(body, { status, headers: { 'content-type': 'application/json' } });
}

test('an answer cut off after its headers is sent again with the same key', async () => {
  const { client, seen } = played((_, __, n) => (n === 1 ? cut(201, '{"orderId":"01a2') : json(201, ACCEPTED)));
  const receipt = await client.place(order);
  assert.equal(seen.length, 2);
  assert.equal(seen[0].init.headers['idempotency-key'], seen[1].init.headers['idempotency-key']);
  assert.equal(receipt.orderId, ORDER_ID);
});

test('a success that is not the answer the contract names is a ProblemError, not a receipt', async () => {
  const html = played(() => new Response('<html>', { status: 201, headers: { 'content-type': 'text/html' } }));
  await assert.rejects(html.client.place(order), (error) => error instanceof ProblemError && error.status === 201);
  const empty = played(() => json(201, {}));
  await assert.rejects(empty.client.place(order), ProblemError);
});

test('a command that failed for good names its key, to be sent again with it', async () => {
  const { client } = played(() => {
    throw new TypeError('fetch failed');
  });
  const error = await client.place(order, { idempotencyKey: 'k-1' }).catch((e) => e);
  assert.ok(error instanceof UnreachableError, String(error));
  assert.equal(error.idempotencyKey, 'k-1');
  const refused = played(() => json(409, { status: 409, title: 'Conflict', currentVersion: 2 }));
  const conflict = await refused.client.confirm(ORDER_ID, { expectedVersion: 1 }).catch((e) => e);
  assert.equal(typeof conflict.idempotencyKey, 'string');
});

test('a Retry-After longer than the policy allows ends the retries at once, naming it', async () => {
  const { client, seen } = played(() => json(503, { status: 503, title: 'Unavailable' }, { 'retry-after': '3600' }));
  const started = Date.now();
  const error = await client.place(order).catch((e) => e);
  assert.ok(error instanceof ProblemError && error.retryAfter === 3600, String(error));
  assert.equal(seen.length, 1);
  assert.ok(Date.now() - started < 1_000);
});

test('the caller\'s own errors are thrown at once, not retried as a network failure', async () => {
  const throwing = played(() => json(201, ACCEPTED), {
    token: () => {
      throw new Error('no session');
    },
  });
  await assert.rejects(throwing.client.place(order), /no session/);
  assert.equal(throwing.seen.length, 0);
  const odd = played(() => json(201, ACCEPTED), { token: () => undefined });
  await assert.rejects(odd.client.place(order), TypeError);
  await assert.rejects(played(() => json(201, ACCEPTED)).client.place({ ...order, n: 1n }), TypeError);
  await assert.rejects(played(() => json(201, ACCEPTED)).client.place(order, { idempotencyKey: 'é\n' }), TypeError);
});

test('a token source that never answers does not outlast the caller\'s signal', async () => {
  const { client } = played(() => json(201, ACCEPTED), { token: () => new Promise(() => {}) });
  // A timer of the test's own: AbortSignal.timeout's does not keep Node.js running.
  const caller = new AbortController();
  setTimeout(() => caller.abort(new Error('the caller gave up')), 50);
  await assert.rejects(client.place(order, { signal: caller.signal }), /the caller gave up/);
});

test('ids a URL would resolve to another path are refused before anything is sent', async () => {
  const { client, seen } = played(() => json(200, {}));
  for (const id of ['..', '.', 'a/b', '']) {
    await assert.rejects(client.order(id), TypeError, id);
    await assert.rejects(client.confirm(id), TypeError, id);
  }
  for (const id of ['..', '.']) await assert.rejects(client.summary(id), TypeError, id);
  assert.equal(seen.length, 0);
});

test('a read without a position vouches for none: missingPositions is null, not "complete"', async () => {
  const { client } = played(() => json(200, { data: [], metadata: { nextCursor: null } }));
  assert.equal((await client.list()).missingPositions, null);
  const at = played(() => json(200, { data: [], metadata: { position: 9, missingPositions: [4] } }));
  assert.deepEqual((await at.client.list({ after: 9 })).missingPositions, [4]);
});

test('placeOptimistic: a throwing onConfirmed is the caller\'s, and a late view keeps its receipt', async () => {
  const calls = [];
  const view = { data: { orderId: ORDER_ID, version: 1 }, metadata: { version: 1 } };
  const { client } = played((url) => (url.includes('/commands/') ? json(201, ACCEPTED) : json(200, view)));
  await assert.rejects(
    client.placeOptimistic(order, {
      onPending: () => calls.push('pending'),
      onConfirmed: () => {
        calls.push('confirmed');
        throw new Error('render bug');
      },
      onFailed: () => calls.push('failed'),
    }),
    /render bug/,
  );
  assert.deepEqual(calls, ['pending', 'confirmed']);

  const late = played((url) =>
    url.includes('/commands/') ? json(201, ACCEPTED) : json(202, { data: null, metadata: { version: 0 } }),
  );
  let failed;
  const onFailed = (error, receipt) => (failed = { error, receipt });
  await late.client.placeOptimistic(order, { onFailed }, { deadlineMs: 0 });
  assert.equal(failed.error.name, 'NotCaughtUpError');
  assert.equal(failed.receipt.orderId, ORDER_ID, 'the order was placed: its receipt comes with the failure');
});

/** A server-sent `view` event of `version`. */
const view = (version) =>
  `event: view\nid: ${version}\ndata: ${JSON.stringify({ data: { version }, metadata: { version } })}\n\n`;
const stream = (text, { open = false } = {}) =>
  new Response(
    new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(text));
        if (!open) controller.close();
      },
    }),
    { status: 200, headers: { 'content-type': 'text/event-stream' } },
  );

/** The first `count` versions `watch` delivers, and the requests it sent. */
async function watched(answer, count, options = {}) {
  const { client, seen } = played(answer, options);
  const stop = new AbortController();
  const versions = [];
  const errors = [];
  const watch = client.watch(ORDER_ID, {
    from: 1,
    signal: stop.signal,
    onView: (read) => versions.push(read.metadata.version),
    onError: (error) => errors.push(error),
    ...options.watch,
  });
  const until = Date.now() + 3_000;
  while (versions.length < count && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
  watch.close();
  return { versions, seen, errors };
}

test('a stream answered without events is opened again after a pause, and onError hears of it', async () => {
  const { versions, seen, errors } = await watched(
    (_, __, n) => (n <= 3 ? new Response(null, { status: 204 }) : stream(view(1), { open: true })),
    1,
  );
  assert.deepEqual(versions, [1]);
  assert.equal(seen.length, 4);
  assert.equal(errors.length, 3, 'each failed opening is reported; the watch goes on');
});

test('a stream that goes silent is given up and opened again after the last version', async () => {
  const { versions, seen } = await watched(
    (url, _, n) => (n === 1 ? stream(view(1), { open: true }) : stream(view(2), { open: true })),
    2,
    { watch: { silenceMs: 100 } },
  );
  assert.deepEqual(versions, [1, 2]);
  assert.match(seen[1].url, /minVersion=2/);
});

test('behind a path prefix the ticket\'s stream is opened under it; an expired one asks for a token anew', async () => {
  const reasons = [];
  const { client, seen } = played(
    (url, _, n) => {
      const streamUrl = `/queries/orders/${ORDER_ID}/stream?ticket=t${n}`;
      if (url.endsWith('/stream-ticket')) return json(200, { ticket: 't', expiresIn: 60, streamUrl });
      return n === 2 ? stream(`${view(1)}event: expired\ndata: {}\n\n`) : stream(view(2), { open: true });
    },
    {
      queriesUrl: 'http://gateway.test/api/',
      token: (reason) => {
        reasons.push(reason ?? 'first');
        return 'token';
      },
    },
  );
  const stop = new AbortController();
  const versions = [];
  for await (const read of client.watch(ORDER_ID, { from: 1, signal: stop.signal })) {
    versions.push(read.metadata.version);
    if (versions.length === 2) break;
  }
  assert.deepEqual(versions, [1, 2]);
  const streams = seen.map((s) => s.url).filter((url) => !url.endsWith('-ticket'));
  assert.ok(streams.every((url) => url.startsWith('http://gateway.test/api/queries/')), JSON.stringify(streams));
  assert.ok(reasons.includes('expired'), `asked ${reasons}`);
});

test('server-sent events split anywhere, with CR, LF or CRLF, come out whole', async () => {
  const text = ': keep-alive\r\nevent: view\r\nid: 1\r\ndata: a\r\ndata: b\r\n\r\nevent: expired\rdata: {}\r\r';
  for (const size of [1, 2, 5, text.length]) {
    const chunks = [];
    for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
    const events = [];
    for await (const event of serverEvents((async function* () { yield* chunks; })())) events.push(event);
    const expected = [{ event: 'view', id: '1', data: 'a\nb' }, { event: 'expired', id: '1', data: '{}' }];
    assert.deepEqual(events, expected, `chunks of ${size}`);
  }
});
