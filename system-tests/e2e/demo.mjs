// Drives the demo page in headless Chromium, as a user would: turns the projector slowdown on, places an order,
// sees it "pending" and then "confirmed in read model (version 1)", confirms it, races a second tab into a 409,
// cancels it, and saves a screenshot with a second order pending. Any script error, console error or unexpected error answer fails the run.
//
//   node demo.mjs <page url> <admin token> <screenshot path> [<bearer token>]
//
// With a bearer token (services in AUTH_MODE=jwt) the page is given it first, as a user pastes it.
//
// Prints one JSON line at the end: {"orderId": …, "badges": […], "conflict": …, "tookMs": …}.
// CHROMIUM overrides the browser (default /usr/bin/chromium, Debian's package).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, adminToken, screenshot, bearerToken] = process.argv.slice(2);
if (!url || !adminToken || !screenshot) {
  console.error('usage: node demo.mjs <page url> <admin token> <screenshot path> [<bearer token>]');
  process.exit(2);
}
const WAIT_MS = 30_000;

const profile = mkdtempSync(join(tmpdir(), 'demo-e2e-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

// The page's configuration is held back a moment, so every step below starts before the page's script is ready, as
// a quick user's typing can: nothing typed may be lost to the script starting late.
await context.route('**/demo/config.json', async (route) => {
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await route.continue();
});

const problems = [];
function watch(page, name) {
  page.on('pageerror', (error) => problems.push(`${name}: ${error.message}`));
  page.on('console', (message) => {
    // Failed requests are judged below, by their status.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(`${name} console: ${message.text()}`);
    }
  });
  // The only error answer expected is the racing cancel's 409.
  page.on('response', (response) => {
    const expected = response.status() === 409 && /\/commands\/orders\/[^/]+\/cancel$/.test(response.url());
    if (response.status() >= 400 && !expected) {
      problems.push(`${name}: ${response.request().method()} ${response.url()} answered ${response.status()}`);
    }
  });
}

/** Waits until the locator's text matches `pattern`; fails naming what it saw. */
async function waitForText(locator, pattern, what) {
  const deadline = Date.now() + WAIT_MS;
  let seen = '';
  while (Date.now() < deadline) {
    seen = (await locator.textContent({ timeout: WAIT_MS }).catch(() => '')) ?? '';
    if (pattern.test(seen)) return seen;
    await locator.page().waitForTimeout(50);
  }
  throw new Error(`${what}: expected ${pattern}, still ${JSON.stringify(seen)} after ${WAIT_MS} ms`);
}

/** The page's row of an order. */
const rowOf = (page, orderId) => page.locator(`#orders tr[data-order-id="${orderId}"]`);

let result;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  watch(page, 'tab 1');
  await page.goto(url);
  if (bearerToken) {
    await page.getByLabel('Your token').fill(bearerToken);
    await page.getByLabel('Your token').press('Tab');
  }

  // Every badge text any row shows, in order: "pending" must come before "confirmed".
  await page.evaluate(() => {
    window.badgeLog = [];
    new MutationObserver(() => {
      const badge = document.querySelector('#orders tr .badge');
      const last = window.badgeLog[window.badgeLog.length - 1];
      if (badge && badge.textContent && badge.textContent !== last) window.badgeLog.push(badge.textContent);
    }).observe(document.getElementById('orders'), { subtree: true, childList: true, characterData: true });
  });

  await page.getByLabel('Admin token').fill(adminToken);
  await page.getByLabel('Admin token').press('Tab');
  await waitForText(page.locator('#slowdown-status'), /^Off/, 'slowdown status');
  await page.getByLabel('Delay each projector batch by 3 s').check();
  await waitForText(page.locator('#slowdown-status'), /^On: each batch waits 3 s/, 'slowdown on');

  await page.getByLabel('Customer id').fill('cust-e2e');
  await page.getByRole('button', { name: 'Place order' }).click();
  const first = page.locator('#orders tr').first();
  await waitForText(first.locator('.badge'), /^pending$/, 'the new order');
  await page.waitForFunction(() => document.querySelector('#orders tr')?.dataset.orderId, null, { timeout: WAIT_MS });
  const orderId = await first.getAttribute('data-order-id');
  const row = rowOf(page, orderId);
  await waitForText(row.locator('.badge'), /^confirmed in read model \(version 1\)$/, 'the placed order');
  const tookMs = Number((await row.locator('.detail').textContent()).match(/^(\d+) ms/)?.[1]);
  const badges = await page.evaluate(() => window.badgeLog);

  await page.getByLabel('Delay each projector batch by 3 s').uncheck();
  await waitForText(page.locator('#slowdown-status'), /^Off/, 'slowdown off');

  // A second tab sees the order at version 1; the first confirms it (version 2); the second, still at version 1,
  // tries to cancel and gets the conflict, shown in its row.
  const second = await context.newPage();
  watch(second, 'tab 2');
  await second.goto(url);
  if (bearerToken) {
    await second.getByLabel('Your token').fill(bearerToken);
    await second.getByLabel('Your token').press('Tab');
  }
  const stale = rowOf(second, orderId);
  await waitForText(stale.locator('.badge'), /^confirmed in read model \(version 1\)$/, 'the order in tab 2');

  await row.getByRole('button', { name: `Confirm order ${orderId.slice(-8)}` }).click();
  await waitForText(row.locator('.badge'), /^confirmed in read model \(version 2\)$/, 'the confirmed order');
  await waitForText(row.locator('.status'), /^Confirmed$/, 'its status');

  await stale.getByRole('button', { name: `Cancel order ${orderId.slice(-8)}` }).click();
  const conflict = await waitForText(stale.locator('.message'),
    /^Conflict: this order changed since this page saw version 1\. It is Confirmed at version 2 now\.$/,
    'the racing cancel');
  await waitForText(stale.locator('.badge'), /^confirmed in read model \(version 2\)$/, 'tab 2 after the conflict');

  await row.getByRole('button', { name: `Cancel order ${orderId.slice(-8)}` }).click();
  await waitForText(row.locator('.status'), /^Cancelled$/, 'the cancelled order');
  await waitForText(row.locator('.badge'), /^confirmed in read model \(version 3\)$/, 'the cancel in the read model');
  // The other read models follow the same commands: the customer's summary counts the order as cancelled, and the
  // daily chart has drawn today's placed order.
  await waitForText(page.locator('#summary-customer'), /^cust-e2e$/, 'the summary of the customer');
  await waitForText(page.locator('#summary-statuses'), /Cancelled 1/, 'the summary after the cancel');
  await page.waitForFunction(() => [...document.querySelectorAll('#daily-chart rect.placed')]
    .some((bar) => Number(bar.getAttribute('height')) > 0), null, { timeout: WAIT_MS });

  // For the screenshot: a second order, held back by the slowdown, pending under the cancelled first one.
  await waitForText(page.locator('#live-commands'), /^\d+\.\d$/, 'the live panel');
  await page.getByLabel('Delay each projector batch by 3 s').check();
  await waitForText(page.locator('#slowdown-status'), /^On/, 'slowdown on again');
  await page.getByLabel('Customer id').fill('cust-e2e-2');
  await page.getByRole('button', { name: 'Place order' }).click();
  await page.waitForFunction((first) => {
    const id = document.querySelector('#orders tr')?.dataset.orderId;
    return id && id !== first;
  }, orderId, { timeout: WAIT_MS });
  await page.bringToFront();
  await page.screenshot({ path: screenshot, fullPage: true });
  const next = page.locator('#orders tr').first();
  await waitForText(next.locator('.badge'), /^confirmed in read model \(version 1\)$/, 'the second order');
  await page.getByLabel('Delay each projector batch by 3 s').uncheck();
  await waitForText(page.locator('#slowdown-status'), /^Off/, 'slowdown off again');
  result = { orderId, badges, conflict, tookMs };
} catch (error) {
  problems.push(error.message);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(JSON.stringify(result));
