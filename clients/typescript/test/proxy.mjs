// A proxy in front of a service that spoils answers on purpose: it forwards each request whole, reads the
// service's whole answer, and then, as long as it has spoils left, either drops the connection without a byte of
// the answer or answers 503 in its place. What the service was asked and answered is recorded.

import { createServer } from 'node:http';

export class SpoilingProxy {
  /** A proxy for the service at `target` (its URL); see `spoil`. */
  constructor(target) {
    this.target = target;
    this.spoils = [];
    this.forwarded = [];
    this.server = createServer((request, response) => this.handle(request, response));
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  /** The next `times` answers are spoiled with `how`. */
  spoil(how, times = 1) {
    for (let i = 0; i < times; i += 1) this.spoils.push(how);
  }

  async handle(request, response) {
    const chunks = [];
    for await (const chunk of request) chunks.push(chunk);
    const body = chunks.length ? Buffer.concat(chunks) : undefined;
    const headers = { ...request.headers };
    for (const hop of ['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive']) delete headers[hop];
    const answer = await fetch(`${this.target}${request.url}`, { method: request.method, headers, body });
    const text = await answer.text();
    const key = request.headers['idempotency-key'];
    this.forwarded.push({ method: request.method, path: request.url, key, status: answer.status, body: text });
    const spoil = this.spoils.shift();
    if (spoil === 'drop') {
      request.socket.destroy();
      return;
    }
    if (spoil === '503') {
      response.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '0' });
      response.end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503 }));
      return;
    }
    const passed = {};
    for (const [name, value] of answer.headers) {
      if (!['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(name)) passed[name] = value;
    }
    response.writeHead(answer.status, passed);
    response.end(text);
  }

  async close() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
