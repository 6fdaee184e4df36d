// The demo page: places orders and changes them through the command-service, shows each change at once as
// "pending", and marks it "confirmed in read model" when the order's view stream (this service) reaches the version
// the command returned. Orders, reads and streams go through the TypeScript client (clients/typescript, served as
// /demo/lib/): its commands carry an idempotency key and are retried, its reads wait for the receipt's position, its
// streams resume. A live panel reads both services' /metrics. Plain ES module, no build step.
// With AUTH_MODE=jwt the page sends the bearer token the user pastes (the client opens streams with tickets).

import { createClient, NotCaughtUpError, ProblemError, UnreachableError } from './lib/index.js';

const SCRAPE_EVERY_MS = 2_000;
const RATE_WINDOW_MS = 10_000;
const FRESHNESS_WINDOW_MS = 30_000;
const SLOWDOWN_MS = 3_000;
const MAX_ROWS = 30;

const byId = (id) => document.getElementById(id);

/**
 * Fills `field` with what this tab stored under `key`, unless the user typed into it before this script ran (the
 * script waits for its configuration first): that typing is kept, and stored.
 */
function remember(field, key) {
  if (field.value) sessionStorage.setItem(key, field.value.trim());
  else field.value = sessionStorage.getItem(key) ?? '';
}

async function loadConfig() {
  try {
    const response = await fetch('/demo/config.json');
    if (response.ok) return await response.json();
  } catch {
    // Defaults below.
  }
  return {};
}

const config = await loadConfig();
const COMMANDS = (config.commandUrl ?? `${location.protocol}//${location.hostname}:8080`).replace(/\/$/, '');
const JWT = config.authMode === 'jwt';

// ---------------------------------------------------------------------------------------------------------------
// Who is asking (AUTH_MODE=jwt)

const bearer = byId('bearer-token');
byId('bearer-field').hidden = !JWT;
remember(bearer, 'bearerToken');
bearer.addEventListener('change', () => {
  sessionStorage.setItem('bearerToken', bearer.value.trim());
  loadRecent();
});

/** The orders client: commands to the command-service, reads and streams from this service. */
const orders = createClient({
  commandsUrl: COMMANDS,
  queriesUrl: location.origin,
  ...(JWT ? { token: () => bearer.value.trim() } : {}),
});

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

/** The problem document (RFC 9457) of a failed response, or what can be said without one. */
async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: `HTTP ${response.status}` };
  }
}

const describe = (problem) => [problem.title, problem.detail].filter(Boolean).join(': ');

const unreachable = () =>
  `Could not reach the command-service at ${COMMANDS}. Is it running, and does its CORS_ALLOWED_ORIGINS ` +
  `include ${location.origin}?`;

/** What a failed command says to the user: the service's problem, that it could not be reached, or what failed. */
const failure = (error) => (error instanceof UnreachableError ? unreachable() : error.message);

/** "12.5" → 1250 (cents), or null. */
function cents(price) {
  const match = /^(\d{1,7})(?:\.(\d{1,2}))?$/.exec(price.trim());
  return match ? Number(match[1]) * 100 + Number((match[2] ?? '0').padEnd(2, '0')) : null;
}

const money = (cents) => (cents / 100).toFixed(2);

// The end of the id: UUIDv7 ids begin with their time, so orders placed together share a beginning.
const shortId = (id) => id.slice(-8);

// ---------------------------------------------------------------------------------------------------------------
// Orders

const ordersBody = byId('orders');
const announcer = byId('announcer');
const rows = new Map();

const NEXT_STATUS = { confirm: 'Confirmed', ship: 'Shipped', cancel: 'Cancelled' };
const ALLOWED_FROM = { confirm: ['Placed'], ship: ['Confirmed'], cancel: ['Placed', 'Confirmed'] };

/** One order on the page: what it is believed to be, and whether the read model has caught up with it. */
class OrderRow {
  constructor({ customerId, total, status }) {
    this.el = byId('order-template').content.firstElementChild.cloneNode(true);
    this.id = null;
    this.version = 0;
    this.status = status;
    this.stream = null;
    this.busy = true;
    this.cell('.customer').textContent = customerId;
    this.cell('.total').textContent = total;
    this.message = document.createElement('p');
    this.message.className = 'message';
    this.message.setAttribute('role', 'alert');
    this.message.hidden = true;
    this.cell('.sync').append(this.message);
    for (const button of this.el.querySelectorAll('[data-action]')) {
      button.addEventListener('click', () => change(this, button.dataset.action));
    }
    ordersBody.prepend(this.el);
    while (ordersBody.rows.length > MAX_ROWS) {
      const last = ordersBody.rows[ordersBody.rows.length - 1];
      const row = [...rows.values()].find((r) => r.el === last);
      row?.forget();
      last.remove();
    }
    this.render();
  }

  cell(selector) {
    return this.el.querySelector(selector);
  }

  setId(id) {
    this.id = id;
    rows.set(id, this);
    this.el.dataset.orderId = id;
    const code = this.cell('.order-id');
    code.textContent = shortId(id);
    code.title = id;
    for (const button of this.el.querySelectorAll('[data-action]')) {
      button.setAttribute('aria-label', `${button.textContent} order ${shortId(id)}`);
    }
  }

  /** Takes what the read model says (a view from a read or from the stream). */
  show(view) {
    this.version = view.version;
    this.status = view.status;
    this.cell('.customer').textContent = view.customerId;
    this.cell('.total').textContent = `${view.total} ${view.currency}`;
    this.render();
  }

  setStatus(status) {
    this.status = status;
    this.render();
  }

  badge(kind, text, detail = '') {
    const badge = this.cell('.badge');
    badge.className = `badge ${kind}`;
    badge.textContent = text;
    this.cell('.detail').textContent = detail;
  }

  pending(detail) {
    this.badge('pending', 'pending', detail);
  }

  confirmed(version, tookMs) {
    this.busy = false;
    const detail = tookMs === null ? '' : `${tookMs} ms after the command was accepted`;
    this.badge('confirmed', `confirmed in read model (version ${version})`, detail);
    this.render();
  }

  failed(text) {
    this.busy = false;
    this.badge('failed', 'rejected');
    this.say(text);
    this.render();
  }

  say(text) {
    this.message.textContent = text;
    this.message.hidden = !text;
  }

  render() {
    this.cell('.status').textContent = this.status;
    for (const button of this.el.querySelectorAll('[data-action]')) {
      const allowed = ALLOWED_FROM[button.dataset.action].includes(this.status);
      button.disabled = this.busy || this.id === null || !allowed;
    }
  }

  forget() {
    this.stream?.close();
    if (this.id) rows.delete(this.id);
  }
}

/**
 * Follows the order's view stream until it reaches `minVersion`, then marks the row confirmed. `acceptedAt` is when
 * the command was accepted (for the milliseconds shown), or null. The client resumes the stream after a dropped
 * connection or an expired ticket by itself.
 */
function follow(row, minVersion, acceptedAt) {
  row.stream?.close();
  row.stream = orders.watch(row.id, {
    from: minVersion,
    onView: (read) => {
      row.stream?.close();
      row.stream = null;
      row.show(read.data);
      // The view is there: the summary and the chart follow at the command's position.
      if (row.position) refreshAggregates(read.data.customerId, row.position);
      const took = acceptedAt === null ? null : Math.round(performance.now() - acceptedAt);
      row.confirmed(read.metadata.version, took);
      announcer.textContent = `Order ${shortId(row.id)} is ${read.data.status} in the read model, version ` +
        `${read.metadata.version}.`;
    },
    onError: (error) => row.pending(`the view stream failed (it is opened again): ${error.message}`),
  });
}

async function place(order, total) {
  const row = new OrderRow({ customerId: order.customerId, total, status: 'Placed' });
  row.pending('sending the command…');
  let receipt;
  try {
    receipt = await orders.place(order);
  } catch (error) {
    row.failed(failure(error));
    return;
  }
  const acceptedAt = performance.now();
  row.setId(receipt.orderId);
  row.version = receipt.sequenceId;
  row.position = receipt.position;
  row.cell('.total').textContent = `${receipt.total} ${receipt.currency}`;
  row.pending(`command accepted at version ${receipt.sequenceId}; waiting for the read model`);
  follow(row, receipt.sequenceId, acceptedAt);
}

async function change(row, action) {
  const before = row.status;
  row.busy = true;
  row.say('');
  row.setStatus(NEXT_STATUS[action]);
  row.pending(`sending ${action}…`);
  const expectedVersion = row.version;
  const options = action === 'cancel' ? { expectedVersion, reason: 'cancelled on the demo page' } : { expectedVersion };
  try {
    const done = await orders[action](row.id, options);
    const acceptedAt = performance.now();
    row.version = done.sequenceId;
    row.position = done.position;
    row.pending(`command accepted at version ${done.sequenceId}; waiting for the read model`);
    follow(row, done.sequenceId, acceptedAt);
    return;
  } catch (error) {
    if (error instanceof ProblemError && error.status === 409 && error.currentVersion !== undefined) {
      // Somebody else changed the order first (or the change is not allowed): say so, show the order as it is now.
      const raced = error.currentVersion !== expectedVersion;
      row.setStatus(error.orderStatus ?? before);
      row.say(raced
        ? `Conflict: this order changed since this page saw version ${expectedVersion}. It is ` +
          `${error.orderStatus} at version ${error.currentVersion} now.`
        : `Conflict: ${error.detail}`);
      row.pending(`loading version ${error.currentVersion}`);
      follow(row, error.currentVersion, null);
      return;
    }
    row.setStatus(before);
    row.busy = false;
    row.say(failure(error));
    row.confirmed(row.version, null);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The customer summary and the daily chart: other read models of the same events

const DAYS = 14;
const SVG = 'http://www.w3.org/2000/svg';

/** Whether this page may read the dashboard: every caller without tokens, else a token with a staff scope. */
function readsEveryCustomer() {
  if (!JWT) return true;
  try {
    const claims = JSON.parse(atob(bearer.value.trim().split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    const scopes = [claims.scope ?? '', ...(claims.scp ?? [])].join(' ').split(' ');
    return scopes.includes('orders:read:any');
  } catch {
    return false;
  }
}

/** `YYYY-MM-DD` of `date` in UTC. */
function utcDay(date) {
  return date.toISOString().slice(0, 10);
}

/** `read`'s answer at a position: what it resolves with, or, when the read model was still behind after 5 s, what
 * it had (shown as it is: the next command's position reads it again). */
async function atPosition(read) {
  try {
    return await read;
  } catch (error) {
    if (error instanceof NotCaughtUpError) return error.last;
    throw error;
  }
}

function showSummary(customerId, summary) {
  byId('summary-customer').textContent = customerId;
  byId('summary-orders').textContent = String(summary.orders);
  byId('summary-statuses').textContent =
    Object.entries(summary.byStatus).filter(([, n]) => n > 0).map(([s, n]) => `${s} ${n}`).join(', ') || '–';
  byId('summary-spent').textContent =
    Object.entries(summary.spent).map(([currency, amount]) => `${amount} ${currency}`).join(', ') || '–';
  byId('summary-last').textContent = summary.lastOrderAt ? new Date(summary.lastOrderAt).toLocaleString() : '–';
}

/** Draws the daily chart: one group per day, placed and shipped bars, a label every other day. */
function drawChart(dashboard, days) {
  const chart = byId('daily-chart');
  chart.replaceChildren();
  const perDay = new Map(days.map((day) => [day, { placed: 0, shipped: 0, revenue: [] }]));
  for (const row of dashboard.days) {
    const day = perDay.get(row.day);
    if (!day) continue;
    day.placed += row.placed;
    day.shipped += row.shipped;
    if (row.shipped) day.revenue.push(`${row.revenue} ${row.currency}`);
  }
  const highest = Math.max(1, ...[...perDay.values()].map((d) => d.placed));
  const [width, height, top, bottom] = [420, 150, 10, 20];
  const slot = width / days.length;
  const scale = (n) => (n / highest) * (height - top - bottom);
  const element = (name, attributes, text) => {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  days.forEach((dayName, i) => {
    const day = perDay.get(dayName);
    const group = element('g', {});
    group.append(element('title', {}, `${dayName}: ${day.placed} placed, ${day.shipped} shipped` +
      (day.revenue.length ? ` (${day.revenue.join(', ')})` : '')));
    const x = i * slot + slot * 0.15;
    group.append(element('rect', { class: 'placed', x, width: slot * 0.7, y: height - bottom - scale(day.placed),
      height: scale(day.placed) }));
    group.append(element('rect', { class: 'shipped', x: x + slot * 0.2, width: slot * 0.3,
      y: height - bottom - scale(day.shipped), height: scale(day.shipped) }));
    if (i % 2 === days.length % 2) {
      group.append(element('text', { x: i * slot + slot / 2, y: height - 5, 'text-anchor': 'middle' }, dayName.slice(5)));
    }
    chart.append(group);
  });
  chart.append(element('text', { x: 2, y: top, class: 'scale' }, `${highest}`));
}

/** Reads the summary of `customerId` and the last days' sales at `position`, and shows them. */
async function refreshAggregates(customerId, position) {
  const summaryError = byId('summary-error');
  try {
    const summary = await atPosition(orders.summary(customerId, { after: position, deadlineMs: 5_000 }));
    showSummary(customerId, summary.data);
    summaryError.hidden = true;
  } catch (error) {
    summaryError.textContent = `Customer summary: ${error.message}`;
    summaryError.hidden = false;
  }
  const dailyError = byId('daily-error');
  if (!readsEveryCustomer()) {
    dailyError.textContent = 'The daily sales cover every customer: they need a token with orders:read:any.';
    dailyError.hidden = false;
    return;
  }
  const today = new Date();
  const days = Array.from({ length: DAYS }, (_, i) => utcDay(new Date(today.getTime() - (DAYS - 1 - i) * 86_400_000)));
  try {
    const read = orders.dashboard(days[0], days[DAYS - 1], { after: position, deadlineMs: 5_000 });
    const dashboard = await atPosition(read);
    drawChart(dashboard.data, days);
    dailyError.hidden = true;
  } catch (error) {
    dailyError.textContent = `Daily sales: ${error.message}`;
    dailyError.hidden = false;
  }
}

async function loadRecent() {
  try {
    if (JWT && !bearer.value.trim()) return;
    const page = await orders.list({ limit: 10 });
    for (const view of [...page.data].reverse()) {
      if (rows.has(view.orderId)) continue;
      const row = new OrderRow({ customerId: view.customerId, total: '', status: view.status });
      row.setId(view.orderId);
      row.show(view);
      row.confirmed(view.version, null);
    }
  } catch {
    // The list is a convenience; the page works without it.
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The order form

const form = byId('place-form');
const lines = byId('lines');
const formError = byId('form-error');

function addLine(sku = '', quantity = '1', unitPrice = '') {
  const line = byId('line-template').content.firstElementChild.cloneNode(true);
  line.querySelector('[name=sku]').value = sku;
  line.querySelector('[name=quantity]').value = quantity;
  line.querySelector('[name=unitPrice]').value = unitPrice;
  line.querySelector('.remove-line').addEventListener('click', () => {
    if (lines.rows.length > 1) line.remove();
  });
  lines.append(line);
}

function showFormError(text) {
  formError.textContent = text;
  formError.hidden = !text;
}

byId('add-line').addEventListener('click', () => {
  if (lines.rows.length < 100) addLine();
  lines.rows[lines.rows.length - 1].querySelector('[name=sku]').focus();
});

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const invalid = form.querySelector(':invalid');
  if (invalid) {
    const name = invalid.labels?.[0]?.textContent ?? invalid.getAttribute('aria-label') ?? invalid.name;
    showFormError(`${name}: ${invalid.validationMessage}`);
    invalid.focus();
    return;
  }
  showFormError('');
  const items = [...lines.rows].map((line) => ({
    sku: line.querySelector('[name=sku]').value.trim(),
    quantity: Number(line.querySelector('[name=quantity]').value),
    unitPrice: line.querySelector('[name=unitPrice]').value.trim(),
  }));
  const totalCents = items.reduce((sum, item) => sum + item.quantity * (cents(item.unitPrice) ?? 0), 0);
  const currency = byId('currency').value;
  const order = { customerId: byId('customer').value.trim(), currency, items };
  place(order, `${money(totalCents)} ${currency}`);
});

addLine('sku-widget', '2', '19.99');
addLine('sku-gadget', '1', '4.50');

// ---------------------------------------------------------------------------------------------------------------
// The live panel

/** Samples of a Prometheus text exposition: `{name, labels, value}`. */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (match) samples.push({ name: match[1], labels: match[2] ?? '', value: Number(match[3]) });
  }
  return samples;
}

function total(samples, name) {
  const matching = samples.filter((s) => s.name === name);
  return matching.length ? matching.reduce((sum, s) => sum + s.value, 0) : null;
}

/** Cumulative bucket counts of a histogram, summed over its labels: [[upper bound, count], …] by bound. */
function buckets(samples, name) {
  const byBound = new Map();
  for (const s of samples.filter((s) => s.name === `${name}_bucket`)) {
    const bound = /le="([^"]+)"/.exec(s.labels)?.[1];
    if (bound === undefined) continue;
    const le = bound === '+Inf' ? Infinity : Number(bound);
    byBound.set(le, (byBound.get(le) ?? 0) + s.value);
  }
  return [...byBound.entries()].sort((a, b) => a[0] - b[0]);
}

/** The q-quantile of the observations between two bucket snapshots, interpolated within its bucket (seconds). */
function quantile(q, older, newer) {
  const base = new Map(older);
  const delta = newer.map(([le, count]) => [le, count - (base.get(le) ?? 0)]);
  const count = delta.length ? delta[delta.length - 1][1] : 0;
  if (count <= 0) return null;
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (const [le, cumulative] of delta) {
    if (cumulative >= rank) {
      if (le === Infinity) return lower;
      return lower + (le - lower) * ((rank - below) / Math.max(cumulative - below, 1));
    }
    lower = le;
    below = cumulative;
  }
  return lower;
}

const formatLag = (seconds) =>
  seconds === null ? 'idle' : seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;

const history = [];
const liveError = byId('live-error');

async function scrape(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return parseMetrics(await response.text());
}

/** The oldest snapshot at most `windowMs` old (or the oldest there is). */
function since(windowMs, now) {
  return history.find((h) => now - h.at <= windowMs) ?? history[0];
}

async function refreshLive() {
  const [commandSide, querySide] = await Promise.allSettled([scrape(`${COMMANDS}/metrics`), scrape('/metrics')]);
  const now = performance.now();
  const commands = commandSide.status === 'fulfilled' ? commandSide.value : [];
  const queries = querySide.status === 'fulfilled' ? querySide.value : [];
  const problems = [];
  if (commandSide.status === 'rejected') problems.push(unreachable());
  if (querySide.status === 'rejected') problems.push(`This service's /metrics: ${querySide.reason.message}`);
  liveError.textContent = problems.join(' ');
  liveError.hidden = problems.length === 0;

  history.push({
    at: now,
    commands: total(commands, 'commands_total'),
    freshness: buckets(queries.filter((q) => q.labels.includes('projection="orders"')), 'projector_freshness_lag_seconds'),
  });
  while (history.length && now - history[0].at > FRESHNESS_WINDOW_MS + SCRAPE_EVERY_MS) history.shift();

  const newest = history[history.length - 1];
  const rateBase = since(RATE_WINDOW_MS, now);
  const seconds = (newest.at - rateBase.at) / 1000;
  byId('live-commands').textContent =
    newest.commands === null ? '–' : seconds > 0 ? ((newest.commands - rateBase.commands) / seconds).toFixed(1) : '…';
  const lagBase = since(FRESHNESS_WINDOW_MS, now);
  const hasFreshness = newest.freshness.length > 0 && lagBase !== newest;
  byId('live-p50').textContent = hasFreshness ? formatLag(quantile(0.5, lagBase.freshness, newest.freshness)) : '–';
  byId('live-p99').textContent = hasFreshness ? formatLag(quantile(0.99, lagBase.freshness, newest.freshness)) : '–';
  const backlog = total(commands, 'outbox_backlog');
  byId('live-backlog').textContent = backlog === null ? '–' : String(backlog);
  const queue = total(queries.filter((q) => q.labels.includes('projection="orders"')), 'projector_queue_depth');
  byId('live-queue').textContent = queue === null ? '–' : String(queue);
}

async function keepRefreshing() {
  await refreshLive().catch(() => {});
  setTimeout(keepRefreshing, SCRAPE_EVERY_MS);
}

// ---------------------------------------------------------------------------------------------------------------
// Slowing the projector down

const token = byId('admin-token');
const slowdown = byId('slowdown');
const slowdownStatus = byId('slowdown-status');
remember(token, 'adminToken');

async function admin(method, delayMs) {
  const query = delayMs === undefined ? '' : `?delayMs=${delayMs}`;
  const response = await fetch(`/admin/projector/slowdown${query}`, {
    method,
    headers: { authorization: `Bearer ${token.value}` },
  });
  if (response.ok) return response.json();
  if (response.status === 404) throw new Error('The admin endpoints are off: start the services with ADMIN_TOKEN set.');
  if (response.status === 401) throw new Error('That admin token was not accepted.');
  if (response.status === 403) throw new Error('That token lacks the orders:admin scope.');
  throw new Error(describe(await problemOf(response)));
}

function showSlowdown(setting) {
  slowdown.checked = setting.delayMs > 0;
  slowdownStatus.textContent = setting.delayMs > 0
    ? `On: each batch waits ${setting.delayMs / 1000} s (until ${new Date(setting.endsAt).toLocaleTimeString()}).`
    : 'Off: the projector applies events as they arrive.';
}

async function readSlowdown() {
  if (!token.value) {
    slowdownStatus.textContent = 'Enter the admin token to use this.';
    return;
  }
  try {
    showSlowdown(await admin('GET'));
  } catch (error) {
    slowdownStatus.textContent = error.message;
  }
}

token.addEventListener('change', () => {
  sessionStorage.setItem('adminToken', token.value);
  readSlowdown();
});

slowdown.addEventListener('change', async () => {
  const wanted = slowdown.checked;
  if (!token.value) {
    slowdown.checked = !wanted;
    slowdownStatus.textContent = 'Enter the admin token first.';
    token.focus();
    return;
  }
  try {
    showSlowdown(await admin('POST', wanted ? SLOWDOWN_MS : 0));
  } catch (error) {
    slowdown.checked = !wanted;
    slowdownStatus.textContent = error.message;
  }
});

loadRecent();
readSlowdown();
keepRefreshing();
