// The status page in a real browser (Debian's chromium, headless, over the DevTools protocol)
// against a real `dropftp serve` in token mode: the token entered once on the page (HttpOnly
// cookie), a curl upload slowed by --limit-rate seen live (user, path, byte count growing, then its
// end), a file named `<img src=x onerror=alert(1)>` shown as text (no element, no dialog), a
// failed download among the last errors, a screenshot, and the Disconnect button ending an idle
// session whose client sees 421 and the control connection close.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Browser, CHROMIUM, type Page } from './cdp.ts';
import { serve, type Served } from './serve.ts';

const EVIL = '<img src=x onerror=alert(1)>';

function curl(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-g', '-sS', ...args], (err, _stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }));
  });
}

function upload(served: Served, file: string, name: string, extra: string[] = []): Promise<{ code: number; stderr: string }> {
  return curl([...extra, '--user', `${served.user}:${served.password}`, '-T', file, `ftp://127.0.0.1:${served.ftpPort}/${encodeURIComponent(name)}`]);
}

/** An FTP control connection logged in and left idle; `lines` collects what the server sends. */
async function idleSession(served: Served): Promise<{ socket: Socket; lines: string[]; closed: Promise<void>; command(line: string, code: string): Promise<void> }> {
  const socket = connect(served.ftpPort, '127.0.0.1');
  const lines: string[] = [];
  let buffer = '';
  const waiters: Array<() => void> = [];
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buffer += d;
    const parts = buffer.split('\r\n');
    buffer = parts.pop()!;
    lines.push(...parts);
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const expect = async (code: string): Promise<void> => {
    while (!lines.some((l) => l.startsWith(`${code} `))) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  await expect('220');
  socket.write(`USER ${served.user}\r\n`);
  await expect('331');
  socket.write(`PASS ${served.password}\r\n`);
  await expect('230');
  const command = async (line: string, code: string): Promise<void> => {
    lines.length = 0;
    socket.write(`${line}\r\n`);
    await expect(code);
  };
  return { socket, lines, closed, command };
}

const rowsOf = (page: Page, table: string): Promise<Array<{ session: string | null; cells: string[]; bytes: string | null }>> =>
  page.evaluate(`[...document.querySelectorAll('#${table} tbody tr')].map((tr) => ({ session: tr.dataset.session ?? null, cells: [...tr.cells].map((td) => td.textContent), bytes: tr.querySelector('td.bytes')?.dataset.bytes ?? null }))`);

test('status page in Chromium: live upload, attacker-named file as text, last errors, disconnect', async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install chromium (.ci/run does)`);
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-status-browser-'));
  const token = randomBytes(24).toString('hex');
  const served = await serve(join(dir, 'data'), ['--admin', '127.0.0.1:0', '--admin-require-token', '--grace', '2000'], { DROPFTP_ADMIN_TOKEN: token });
  let browser: Browser | null = null;
  try {
    browser = await Browser.launch(dir);
    const page = await browser.newPage(1360, 1000);

    // Token mode: the page asks for the token once; the cookie it gets is invisible to scripts.
    await page.goto(`${served.admin}/`);
    await page.waitFor(`!document.getElementById('login').hidden`, 20_000, 'the login form');
    await page.evaluate(`document.getElementById('token').value = ${JSON.stringify(token)}; document.getElementById('login-form').requestSubmit(); true`);
    await page.waitFor(`!document.getElementById('status').hidden`, 20_000, 'the status tables after login');
    assert.is(await page.evaluate<string>('document.cookie'), '', 'the session cookie is HttpOnly');

    // A file named like markup: uploaded, then shown as that very text.
    const small = join(dir, 'small.bin');
    writeFileSync(small, randomBytes(1000));
    assert.is((await upload(served, small, EVIL)).code, 0);
    await page.waitFor(`[...document.querySelectorAll('#recent td.path')].some((td) => td.textContent === ${JSON.stringify('/' + EVIL)})`, 20_000, 'the attacker-named file in recent transfers');
    assert.is(await page.evaluate<number>(`document.querySelectorAll('img').length`), 0, 'no element made from a file name');

    // A download of a file that is not there: among the last errors, with its code and reply.
    const asker = await idleSession(served);
    await asker.command('RETR not-there.bin', '550');
    await asker.command('QUIT', '221');
    await page.waitFor(`[...document.querySelectorAll('#errors tbody tr')].some((tr) => tr.textContent.includes('/not-there.bin') && tr.textContent.includes('RETR failed') && tr.textContent.includes('DROPFTP_ERR_NOT_FOUND'))`, 30_000, 'the failed download among the errors');

    // A slow upload, watched live.
    const size = 1024 * 1024;
    const big = join(dir, 'big.bin');
    writeFileSync(big, randomBytes(size));
    const slow = upload(served, big, 'slow upload.bin', ['--limit-rate', '128k']);
    await page.waitFor(`[...document.querySelectorAll('#transfers td.path')].some((td) => td.textContent === '/slow upload.bin')`, 20_000, 'the upload in flight');
    const sessions = await rowsOf(page, 'sessions');
    const uploader = sessions.find((r) => r.cells[3]?.startsWith('STOR slow upload.bin'));
    assert.ok(uploader, `a session runs the STOR: ${JSON.stringify(sessions)}`);
    assert.is(uploader!.cells[0], served.user);
    assert.is(uploader!.cells[1], '127.0.0.1');
    const first = Number((await rowsOf(page, 'transfers')).find((r) => r.cells[0] === '/slow upload.bin')?.bytes ?? 0);
    const growing = await page.waitFor<string>(
      `(() => { const td = [...document.querySelectorAll('#transfers tbody tr')].find((tr) => tr.cells[0].textContent === '/slow upload.bin')?.querySelector('td.bytes'); return td && Number(td.dataset.bytes) > ${first} + 100000 ? td.dataset.bytes : null; })()`,
      20_000,
      'the byte count to grow',
    );
    assert.ok(Number(growing) < size, `still in flight at ${growing} bytes`);
    const transfer = (await rowsOf(page, 'transfers')).find((r) => r.cells[0] === '/slow upload.bin');
    assert.ok(transfer, 'still listed while in flight');
    assert.is(transfer!.cells[1], 'upload ↑');
    assert.is(transfer!.cells[2], served.user);
    assert.match(transfer!.cells[4]!, /(KiB|B)\/s$/, 'a rate is shown');
    const shot = await page.screenshot(join(dir, 'status-page.png'));
    assert.ok(shot.length > 20_000 && shot.subarray(1, 4).toString() === 'PNG', 'a PNG screenshot');
    if (process.env.STATUS_PAGE_SCREENSHOT) copyFileSync(join(dir, 'status-page.png'), process.env.STATUS_PAGE_SCREENSHOT);

    // Its end: gone from the transfers, in the recent ones with every byte and an ok.
    assert.is((await slow).code, 0);
    await page.waitFor(`!document.querySelector('#transfers td.path')`, 20_000, 'the transfer to leave the in-flight table');
    const done = (await rowsOf(page, 'recent')).find((r) => r.cells[1] === '/slow upload.bin');
    assert.ok(done, 'the finished upload is listed');
    assert.is(done!.bytes, String(size));
    assert.is(done!.cells[6], 'ok');

    // Disconnect an idle session from the page: its client gets 421 and the connection closes.
    const idle = await idleSession(served);
    const row = await page.waitFor<string>(
      `[...document.querySelectorAll('#sessions tbody tr')].find((tr) => tr.cells[3]?.textContent.includes('last PASS ****'))?.dataset.session`,
      20_000,
      'the idle session (its last command masked)',
    );
    const html = await page.evaluate<string>('document.documentElement.outerHTML');
    assert.not.ok(html.includes(served.password), 'the password is nowhere on the page');
    assert.not.ok(html.includes(token), 'the token is nowhere on the page');
    const click = `document.querySelector('#sessions tr[data-session="${row}"] button.disconnect').click(); true`;
    await page.evaluate(click); // arms
    await page.evaluate(click); // confirms
    const closedInTime = await Promise.race([idle.closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000))]);
    assert.ok(closedInTime, 'the control connection closed');
    assert.ok(idle.lines.some((l) => l.startsWith('421 ')), `the client saw 421: ${idle.lines.join(' | ')}`);
    await page.waitFor(`!document.querySelector('#sessions tr[data-session="${row}"]')`, 10_000, 'the session to leave the table');
    const deadline = Date.now() + 5000;
    while (!served.logs.some((l) => l.event === 'admin-disconnect' && l.session === row && l.result === 'ok') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(served.logs.some((l) => l.event === 'admin-disconnect' && l.session === row && l.user === served.user), 'the disconnect is logged');

    assert.equal(page.dialogs, [], 'no dialog: no injected script ran');
    assert.equal(page.exceptions, [], 'the page script threw nothing');
  } finally {
    await browser?.close();
    assert.is(await served.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
