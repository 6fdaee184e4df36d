// The library with AUTH_MODE=jwt: tokens that expire are refreshed through the token source, and a watched order's
// stream, which the service ends when the token it was opened with expires, is opened again with a new ticket.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createClient } from '../dist/index.js';
import { Deployment, eventually, within } from './services.mjs';

/** How long the tests' tokens live: long enough for a request, short enough to expire within a test. */
const LIFETIME_S = 2;

describe('against the services (AUTH_MODE=jwt)', () => {
  let deployment;
  let queries;

  before(async () => {
    deployment = await Deployment.start({ auth: 'jwt' });
    queries = await deployment.query();
  });

  after(async () => {
    await deployment?.close();
  });

  /** A token source for `sub` that mints short-lived tokens, and what it was asked. */
  function tokens(sub) {
    const asked = [];
    let current = null;
    let expires = 0;
    const source = (reason) => {
      asked.push(reason ?? 'first');
      if (!current || reason === 'expired' || Date.now() >= expires) {
        current = deployment.issuer.token(sub, { seconds: LIFETIME_S });
        expires = Date.now() + LIFETIME_S * 1000;
      }
      return current;
    };
    return { source, asked, stale: () => current };
  }

  test('an expired token is refreshed through the token source and the command applied once', async () => {
    const sub = `jwt-${Math.random().toString(36).slice(2, 10)}`;
    // A source that hands out its first token until the services refuse it: the 401 is what asks for a new one.
    const minted = tokens(sub);
    const stubborn = (reason) =>
      reason === 'expired' ? minted.source('expired') : (minted.stale() ?? minted.source());
    const orders = createClient({ commandsUrl: deployment.commands.url, queriesUrl: queries.url, token: stubborn });
    const receipt = await orders.place({ currency: 'EUR', items: [{ sku: 'SKU-1', quantity: 1, unitPrice: '5.00' }] });
    assert.equal((await receipt.view()).data.customerId, sub);
    // The services compare `exp` with the time in whole seconds: the token is refused from the second after it.
    const { exp } = JSON.parse(Buffer.from(minted.stale().split('.')[1], 'base64url').toString());
    await eventually('the token expired', 10_000, async () => (Date.now() / 1000 >= exp + 1 ? true : undefined));

    const confirmed = await orders.confirm(receipt.orderId, { expectedVersion: 1 });
    assert.equal(confirmed.sequenceId, 2);
    assert.ok(minted.asked.includes('expired'), `asked ${minted.asked}`);
    const read = await confirmed.view();
    assert.deepEqual([read.data.version, read.data.status], [2, 'Confirmed']);
  });

  test('a watched order outlives its token: the stream is opened again with a new ticket', async () => {
    const sub = `watch-${Math.random().toString(36).slice(2, 10)}`;
    const minted = tokens(sub);
    const tickets = [];
    const orders = createClient({
      commandsUrl: deployment.commands.url,
      queriesUrl: queries.url,
      token: minted.source,
      retry: { baseDelayMs: 50, maxDelayMs: 200 },
      fetch: (url, init) => {
        if (String(url).endsWith('/stream-ticket')) tickets.push(Date.now());
        return fetch(url, init);
      },
    });
    const receipt = await orders.place({ currency: 'EUR', items: [{ sku: 'SKU-1', quantity: 1, unitPrice: '5.00' }] });
    const stop = new AbortController();
    const versions = [];
    const watched = (async () => {
      for await (const read of orders.watch(receipt.orderId, { from: 1, signal: stop.signal })) {
        versions.push(read.metadata.version);
        if (read.metadata.version === 2) break;
      }
    })();
    await eventually('version 1 streamed', 10_000, async () => (versions.length === 1 ? true : undefined));
    const opened = tickets.length;
    // The stream's token expires; the service ends the stream, and it is opened again with a new ticket.
    await eventually('a new ticket', 3 * LIFETIME_S * 1000, async () => (tickets.length > opened ? true : undefined));
    await orders.confirm(receipt.orderId, { expectedVersion: 1 });
    await within(10_000, watched, () => `only ${versions} streamed`);
    stop.abort();
    assert.deepEqual(versions, [1, 2]);
  });
});
