// The real services for the library's tests, started as the system tests start them: the workspace's binaries
// (target/debug, or SERVICE_BIN_DIR) against the dev services (scripts/dev-services), each deployment in a database,
// a RabbitMQ vhost and a MongoDB database of its own, removed when it closes. Children are killed when the test
// process exits, however it exits.

import { execFile, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = new URL('../../../', import.meta.url).pathname;
const binary = (name) => join(process.env.SERVICE_BIN_DIR ?? join(root, 'target', 'debug'), name);
const postgres = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';
const mongodb = process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false';

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** A port nobody listens on now. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Calls `probe` until it returns a value other than undefined, or fails once `ms` have passed. */
export async function eventually(what, ms, probe) {
  const until = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** `promise`, or a failure saying `what()` once `ms` have passed. */
export async function within(ms, promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(what())), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The secret, issuer and audience of a deployment's `AUTH_MODE=jwt`, and tokens signed with them. */
export class Issuer {
  constructor() {
    this.secret = randomBytes(32).toString('hex');
    this.issuer = 'orders-client-tests';
    this.audience = 'orders';
  }

  get env() {
    return {
      AUTH_MODE: 'jwt',
      AUTH_HS256_SECRET: this.secret,
      AUTH_ISSUER: this.issuer,
      AUTH_AUDIENCE: this.audience,
      AUTH_LEEWAY_SECS: '0',
      AUTH_TICKET_SECRET: 'orders-client-tests-ticket-secret-of-32-bytes',
      COMMAND_RATE_PER_CLIENT: '0',
    };
  }

  /** An HS256 token for `sub` with `scope`, valid for `seconds`. */
  token(sub, { scope = '', seconds = 300 } = {}) {
    const now = Math.floor(Date.now() / 1000);
    const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const claims = { iss: this.issuer, aud: this.audience, sub, iat: now, exp: now + seconds, scope };
    const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}`;
    return `${unsigned}.${createHmac('sha256', this.secret).update(unsigned).digest('base64url')}`;
  }
}

/** One service process on `port`: `url`, and ways to stop it. */
class Service {
  constructor(name, args, env, port) {
    this.name = name;
    this.args = args;
    this.env = env;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.child = null;
  }

  start() {
    const child = spawn(binary(this.name), this.args, {
      env: { ...process.env, ...this.env, HTTP_ADDR: `127.0.0.1:${this.port}`, RUST_LOG: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.add(child);
    child.once('exit', () => children.delete(child));
    this.child = child;
    return this;
  }

  /** Waits until the service answers `/health/ready` with 200. */
  async ready() {
    await eventually(`${this.name} on ${this.port} ready`, 60_000, async () => {
      if (this.child.exitCode !== null) throw new Error(`${this.name} exited with ${this.child.exitCode}`);
      const response = await fetch(`${this.url}/health/ready`);
      return response.status === 200 ? true : undefined;
    });
    return this;
  }

  /** Stops the process with `signal` and waits until it has gone. */
  async stop(signal = 'SIGTERM') {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const killed = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(killed);
  }
}

/** A command-service and query-services of their own, with what they were given to run on. */
export class Deployment {
  static async start({ auth = 'none', admin = true } = {}) {
    const deployment = new Deployment(auth === 'jwt' ? new Issuer() : null, admin);
    await run('rabbitmqctl', ['-q', 'add_vhost', deployment.id]);
    await run('rabbitmqctl', ['-q', 'set_permissions', '-p', deployment.id, 'guest', '.*', '.*', '.*']);
    deployment.commands = await new Service('command-service', [], deployment.env(), await freePort()).start().ready();
    return deployment;
  }

  constructor(issuer, admin) {
    this.id = `tsclient_${randomBytes(6).toString('hex')}`;
    this.issuer = issuer;
    this.admin = admin ? 'orders-client-tests-admin-token' : null;
    this.queries = [];
  }

  /** What every service of the deployment is started with. */
  env() {
    const env = {
      DATABASE_URL: `${postgres}/${this.id}`,
      AMQP_URL: `amqp://guest:guest@127.0.0.1:5672/${this.id}`,
      MONGODB_URI: mongodb,
      MONGODB_DATABASE: this.id,
      DEMO_PAGE: 'false',
      READ_MODEL_SAMPLE_RATE: '0',
      ...(this.issuer?.env ?? {}),
    };
    if (this.admin && !this.issuer) env.ADMIN_TOKEN = this.admin;
    if (this.issuer) env.EVENT_FEED_TOKEN = this.issuer.token('query-service', { scope: 'events:read', seconds: 3600 });
    return env;
  }

  /** A query-service of this deployment (projecting, unless `projector` is false), ready. */
  async query({ projector = true, port } = {}) {
    const env = {
      ...this.env(),
      EVENT_FEED_URL: `${this.commands.url}/events`,
      PROJECTOR_ENABLED: String(projector),
    };
    const service = new Service('query-service', [], env, port ?? (await freePort()));
    this.queries.push(service);
    return service.start().ready();
  }

  /** Every process stopped, and its database, vhost and MongoDB database removed. */
  async close() {
    await Promise.all([...this.queries, this.commands].filter(Boolean).map((service) => service.stop('SIGKILL')));
    const python = join(root, '.venv', 'bin', 'python');
    const drop = `import pymongo,sys; pymongo.MongoClient(sys.argv[1]).drop_database(sys.argv[2])`;
    await Promise.allSettled([
      run('psql', [postgres, '-qc', `drop database if exists ${this.id} with (force)`]),
      run('rabbitmqctl', ['-q', 'delete_vhost', this.id]),
      run(python, ['-c', drop, mongodb, this.id]),
    ]);
  }
}
