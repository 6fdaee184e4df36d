// The library against the real services (test/services.mjs) with AUTH_MODE=none: read-your-writes on a replica
// that does not project, commands retried under dropped connections and 503s, a 202 before the 200, problems as
// values, and a watched order across a restart of the replica it streams from.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createClient, NotCaughtUpError, ProblemError } from '../dist/index.js';
import { SpoilingProxy } from './proxy.mjs';
import { Deployment, eventually, freePort, within } from './services.mjs';

const order = (customerId) => ({
  customerId,
  currency: 'EUR',
  items: [{ sku: 'SKU-1', quantity: 2, unitPrice: '19.99' }],
});

/** A unique customer per test, so that lists and summaries hold only what the test placed. */
const customer = (name) => `${name}-${Math.random().toString(36).slice(2, 10)}`;

describe('against the services (AUTH_MODE=none)', () => {
  let deployment;
  let replica;
  let orders;

  before(async () => {
    deployment = await Deployment.start();
    await deployment.query();
    replica = await deployment.query({ projector: false, port: await freePort() });
    orders = createClient({ commandsUrl: deployment.commands.url, queriesUrl: replica.url });
  });

  after(async () => {
    await deployment?.close();
  });

  test('a placed order is read back at its version, its position, on a replica that does not project', async () => {
    const who = customer('ryw');
    const receipt = await orders.place(order(who));
    assert.equal(receipt.status, 'Placed');
    assert.equal(receipt.sequenceId, 1);
    const read = await receipt.view();
    assert.equal(read.data.orderId, receipt.orderId);
    assert.ok(read.metadata.version >= receipt.sequenceId);

    const page = await orders.list({ customerId: who, after: receipt });
    assert.deepEqual(page.data.map((view) => view.orderId), [receipt.orderId]);
    assert.deepEqual(page.missingPositions, []);
    const summary = await orders.summary(who, { after: receipt });
    assert.equal(summary.data.orders, 1);
    const today = new Date().toISOString().slice(0, 10);
    const dashboard = await orders.dashboard(today, today, { after: receipt });
    assert.ok(dashboard.data.days.some((row) => row.currency === 'EUR' && row.placed >= 1), JSON.stringify(dashboard));
  });

  for (const spoil of ['drop', '503']) {
    const name = `a command whose answer is lost (${spoil}) is sent again with its key, applied once, answered first`;
    test(name, async () => {
      const proxy = await new SpoilingProxy(deployment.commands.url).listen();
      try {
        const through = createClient({
          commandsUrl: proxy.url,
          queriesUrl: replica.url,
          retry: { baseDelayMs: 10, maxDelayMs: 50 },
        });
        const who = customer(`retry-${spoil}`);
        proxy.spoil(spoil);
        const receipt = await through.place(order(who));
        assert.equal(proxy.forwarded.length, 2, 'sent twice');
        const [first, second] = proxy.forwarded;
        assert.equal(first.key, receipt.idempotencyKey);
        assert.equal(second.key, first.key, 'with one key');
        assert.deepEqual(JSON.parse(second.body), JSON.parse(first.body), 'the repeat answered as the first');
        assert.equal(receipt.orderId, JSON.parse(first.body).orderId);

        proxy.spoil(spoil, 2);
        const confirmed = await through.confirm(receipt.orderId, { expectedVersion: 1 });
        assert.equal(proxy.forwarded.length, 5, 'the confirm sent three times');
        assert.equal(confirmed.sequenceId, 2);

        const page = await orders.list({ customerId: who, after: confirmed });
        assert.deepEqual(page.data.map((view) => [view.orderId, view.version, view.status]), [
          [receipt.orderId, 2, 'Confirmed'],
        ]);
      } finally {
        await proxy.close();
      }
    });
  }

  test('a read answered 202 is asked again until the view is there; one past its deadline rejects', async () => {
    const projecting = deployment.queries[0];
    const slow = await fetch(`${projecting.url}/admin/projector/slowdown?delayMs=1500`, {
      method: 'POST',
      headers: { authorization: `Bearer ${deployment.admin}` },
    });
    assert.equal(slow.status, 200, await slow.text());
    const statuses = [];
    const watching = createClient({
      commandsUrl: deployment.commands.url,
      queriesUrl: replica.url,
      maxWaitMs: 200,
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        if (String(url).includes('/queries/orders/')) statuses.push(response.status);
        return response;
      },
    });
    try {
      const receipt = await watching.place(order(customer('late')));
      await assert.rejects(receipt.view({ deadlineMs: 100 }), NotCaughtUpError);
      const read = await receipt.view();
      assert.equal(read.data.orderId, receipt.orderId);
      assert.ok(statuses.includes(202), `statuses ${statuses}`);
      assert.equal(statuses.at(-1), 200);
    } finally {
      await fetch(`${projecting.url}/admin/projector/slowdown?delayMs=0`, {
        method: 'POST',
        headers: { authorization: `Bearer ${deployment.admin}` },
      });
    }
  });

  test('refusals are ProblemErrors: a 409 with the current version, a 400 with its fields', async () => {
    const receipt = await orders.place(order(customer('conflict')));
    const conflict = await orders.confirm(receipt.orderId, { expectedVersion: 5 }).catch((error) => error);
    assert.ok(conflict instanceof ProblemError, String(conflict));
    assert.equal(conflict.status, 409);
    assert.equal(conflict.currentVersion, 1);
    assert.equal(conflict.orderStatus, 'Placed');
    assert.equal(typeof conflict.type, 'string');

    const invalid = await orders.place({ customerId: '', items: [] }).catch((error) => error);
    assert.ok(invalid instanceof ProblemError, String(invalid));
    assert.equal(invalid.status, 400);
    assert.ok(invalid.errors.length > 0, JSON.stringify(invalid.problem));
    const unknown = await orders.order('01a24dbf-96c7-74f5-b74d-0480aeb8d36c').catch((error) => error);
    assert.equal(unknown.status, 404);
  });

  test('a watched order resumes after its replica restarts, missing and repeating no version', async () => {
    const port = await freePort();
    const streaming = await deployment.query({ projector: false, port });
    const live = createClient({
      commandsUrl: deployment.commands.url,
      queriesUrl: streaming.url,
      retry: { baseDelayMs: 50, maxDelayMs: 200 },
    });
    const receipt = await live.place(order(customer('watch')));
    const stop = new AbortController();
    const versions = [];
    const watched = (async () => {
      for await (const read of live.watch(receipt.orderId, { from: receipt, signal: stop.signal })) {
        versions.push(read.metadata.version);
        if (read.metadata.version === 3) break;
      }
    })();
    await eventually('version 1 streamed', 10_000, async () => (versions.length === 1 ? true : undefined));
    await streaming.stop('SIGKILL');
    const confirmed = await live.confirm(receipt.orderId);
    await streaming.start().ready();
    await live.ship(receipt.orderId, { expectedVersion: confirmed.sequenceId });
    await within(20_000, watched, () => `only ${versions} streamed`);
    stop.abort();
    assert.deepEqual(versions, [1, 2, 3]);
  });
});
