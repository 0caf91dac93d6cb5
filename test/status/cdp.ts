// A small Chrome DevTools Protocol client for the status page tests: launches Debian's chromium
// headless with --remote-debugging-port=0, speaks CDP over undici's WebSocket (a dependency we
// already have; puppeteer-core would add a package and its lockfile churn for the five methods we
// use), one page target in flattened session mode. Test code only. Invariants: close() kills the
// browser and removes nothing but its profile directory; every call has a timeout.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'undici';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CALL_TIMEOUT_MS = 30_000;

interface Pending {
  resolve: (value: any) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface CdpEvent {
  method: string;
  params: any;
  sessionId?: string;
}

export class Browser {
  readonly #child: ChildProcess;
  readonly #ws: WebSocket;
  readonly #profile: string;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<(event: CdpEvent) => void>();
  #nextId = 1;

  private constructor(child: ChildProcess, ws: WebSocket, profile: string) {
    this.#child = child;
    this.#ws = ws;
    this.#profile = profile;
    ws.addEventListener('message', (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: unknown; sessionId?: string };
      if (message.id !== undefined) {
        const pending = this.#pending.get(message.id);
        if (!pending) return;
        this.#pending.delete(message.id);
        clearTimeout(pending.timer);
        if (message.error) pending.reject(new Error(`CDP: ${message.error.message}`));
        else pending.resolve(message.result);
      } else if (message.method) {
        for (const listener of this.#listeners) listener(message as CdpEvent);
      }
    });
  }

  static async launch(tmpDir: string): Promise<Browser> {
    const profile = mkdtempSync(join(tmpDir, 'chromium-'));
    const child = spawn(
      CHROMIUM,
      ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check', '--disable-extensions', '--disable-background-networking', '--hide-scrollbars', `--user-data-dir=${profile}`, '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', 'about:blank'],
      // Its own process group: close() ends the renderer and helper processes with it.
      { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    const url = await new Promise<string>((resolve, reject) => {
      let text = '';
      const timer = setTimeout(() => reject(new Error(`chromium did not start: ${text}`)), 30_000);
      child.stderr!.on('data', (d: Buffer) => {
        text += d;
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.once('error', (err) => (clearTimeout(timer), reject(err)));
      child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`chromium exited ${code}: ${text}`))));
    });
    child.stderr!.resume();
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error('CDP WebSocket failed')), { once: true });
    });
    return new Browser(child, ws, profile);
  }

  send<T = any>(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`CDP ${method}: no answer in ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.#pending.set(id, { resolve, reject, timer });
      this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  on(listener: (event: CdpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async newPage(width = 1280, height = 900): Promise<Page> {
    const { targetId } = await this.send<{ targetId: string }>('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this, sessionId);
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    await page.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
    return page;
  }

  /**
   * Asks Chromium to quit (Browser.close), kills its whole process group if it has not within 5 s,
   * then removes the profile. A SIGKILL of the browser process alone left its helpers writing into
   * the profile while it was removed (ENOTEMPTY, 2 runs in 4 on a busy 2-core machine).
   */
  async close(): Promise<void> {
    const child = this.#child;
    const exited = child.exitCode === null && child.signalCode === null ? new Promise<void>((resolve) => child.once('exit', () => resolve())) : Promise.resolve();
    if (child.exitCode === null && child.signalCode === null) {
      await this.send('Browser.close').catch(() => {});
      const timer = setTimeout(() => this.#killGroup(), 5_000);
      await exited;
      clearTimeout(timer);
    }
    this.#killGroup(); // helpers that outlived the browser process
    this.#ws.close();
    for (const pending of this.#pending.values()) clearTimeout(pending.timer);
    rmSync(this.#profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }

  #killGroup(): void {
    try {
      if (this.#child.pid !== undefined) process.kill(-this.#child.pid, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  }
}

export class Page {
  /** Dialogs the page opened (alert, confirm …): an injected script would show here. */
  readonly dialogs: string[] = [];
  /** Uncaught exceptions of the page's scripts. */
  readonly exceptions: string[] = [];

  constructor(
    readonly browser: Browser,
    readonly sessionId: string,
  ) {
    browser.on((event) => {
      if (event.sessionId !== sessionId) return;
      if (event.method === 'Page.javascriptDialogOpening') {
        this.dialogs.push(String(event.params.message));
        void this.send('Page.handleJavaScriptDialog', { accept: true }).catch(() => {});
      }
      if (event.method === 'Runtime.exceptionThrown') this.exceptions.push(String(event.params.exceptionDetails?.exception?.description ?? event.params.exceptionDetails?.text));
    });
  }

  send<T = any>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    return this.browser.send<T>(method, params, this.sessionId);
  }

  async goto(url: string): Promise<void> {
    const loaded = new Promise<void>((resolve) => {
      const off = this.browser.on((event) => {
        if (event.sessionId === this.sessionId && event.method === 'Page.loadEventFired') {
          off();
          resolve();
        }
      });
    });
    const { errorText } = await this.send<{ errorText?: string }>('Page.navigate', { url });
    if (errorText) throw new Error(`navigate ${url}: ${errorText}`);
    await loaded;
  }

  /** Evaluates an expression in the page (promises awaited); returns its JSON value. */
  async evaluate<T>(expression: string): Promise<T> {
    const { result, exceptionDetails } = await this.send<{ result: { value?: T }; exceptionDetails?: { text: string; exception?: { description?: string } } }>('Runtime.evaluate', {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    if (exceptionDetails) throw new Error(`evaluate: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
    return result.value as T;
  }

  /** Polls `expression` until it yields a truthy value (returned) or the timeout. */
  async waitFor<T>(expression: string, timeoutMs = 20_000, what = expression): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await this.evaluate<T>(expression);
      if (value) return value;
      if (Date.now() > deadline) {
        const shown = await this.evaluate<string>('document.body.innerText').catch(() => '?');
        throw new Error(`timed out waiting for ${what}; the page shows:\n${shown.slice(0, 3000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async screenshot(path: string): Promise<Buffer> {
    const { data } = await this.send<{ data: string }>('Page.captureScreenshot', { format: 'png', captureBeyondViewport: false });
    const png = Buffer.from(data, 'base64');
    writeFileSync(path, png);
    return png;
  }
}
