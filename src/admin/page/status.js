// dropftp status page: polls /status.json every second and renders it. No framework, no build step.
// Every value from the server (user names, file names, addresses) is set with textContent, never as
// HTML: file names are attacker-chosen text. The token is only ever sent to POST /login, which
// answers with an HttpOnly cookie; this script never sees it again.
'use strict';

const REFRESH_MS = 1000;
const $ = (id) => document.getElementById(id);
let csrf = '';
let timer = 0;

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}
const rate = (n) => (n === null || n === undefined ? '–' : `${bytes(n)}/s`);
const value = (v, suffix = '') => (v === null || v === undefined ? '–' : `${v}${suffix}`);

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
const since = (iso, nowMs) => (iso ? duration((nowMs - Date.parse(iso)) / 1000) : '–');
const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '–');

function cell(tr, text, className) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined || text === '' ? '–' : String(text);
  if (className) td.className = className;
  tr.appendChild(td);
  return td;
}

/** Replaces a table's rows; `render(tr, row)` fills one row. */
function fill(tableId, rows, render, emptyText) {
  const table = $(tableId);
  const body = table.tBodies[0];
  const out = document.createDocumentFragment();
  for (const row of rows) {
    const tr = document.createElement('tr');
    render(tr, row);
    out.appendChild(tr);
  }
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = cell(tr, emptyText, 'empty');
    td.colSpan = table.tHead.rows[0].cells.length;
    out.appendChild(tr);
  }
  body.replaceChildren(out);
}

function disconnectButton(session) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'disconnect';
  button.textContent = 'Disconnect';
  let armed = 0;
  button.addEventListener('click', async () => {
    if (!armed) {
      // Two clicks: a stray one never ends a session.
      button.textContent = 'Confirm';
      button.classList.add('confirm');
      armed = setTimeout(() => { armed = 0; button.textContent = 'Disconnect'; button.classList.remove('confirm'); }, 4000);
      return;
    }
    clearTimeout(armed);
    button.disabled = true;
    const res = await fetch(`/sessions/${encodeURIComponent(session.id)}/disconnect`, { method: 'POST', headers: { 'x-dropftp-csrf': csrf }, credentials: 'same-origin' });
    if (!res.ok) showProblem(`disconnect failed: HTTP ${res.status}`);
    refresh();
  });
  return button;
}

function render(data) {
  const nowMs = Date.parse(data.generatedAt);
  csrf = data.csrf;
  const t = data.totals;
  $('summary').textContent = `${t.sessions} session${t.sessions === 1 ? '' : 's'}, ${t.loggedIn} logged in, ${t.transfers} transfer${t.transfers === 1 ? '' : 's'}`;
  $('updated').textContent = `up ${duration(data.uptimeSeconds)} · updated ${clock(data.generatedAt)}`;
  $('logout').hidden = !data.tokenRequired;
  $('sessions-count').textContent = data.sessions.length < t.sessions ? `(first ${data.sessions.length} of ${t.sessions})` : `(${t.sessions})`;

  fill('sessions', data.sessions, (tr, s) => {
    tr.dataset.session = s.id;
    cell(tr, s.user ?? '(not logged in)', s.user ? 'user' : 'user muted');
    cell(tr, s.client);
    cell(tr, since(s.since, nowMs)).title = s.since ?? '';
    const command = cell(tr, s.command ? `${s.command} (${since(s.commandSince, nowMs)})` : `idle${s.lastCommand ? ` · last ${s.lastCommand}` : ''}`, 'command');
    if (!s.command) command.classList.add('muted');
    cell(tr, s.tls ? (s.dataTls ? 'control + data' : 'control') : 'no', s.tls ? 'ok' : '');
    const actions = document.createElement('td');
    actions.appendChild(disconnectButton(s));
    tr.appendChild(actions);
  }, 'no session');

  fill('transfers', data.transfers, (tr, x) => {
    tr.dataset.session = x.session;
    cell(tr, x.path, 'path');
    cell(tr, x.direction === 'upload' ? 'upload ↑' : 'download ↓');
    cell(tr, x.user);
    const b = cell(tr, bytes(x.bytes), 'num bytes');
    b.dataset.bytes = String(x.bytes);
    b.title = `${x.bytes} bytes`;
    cell(tr, rate(x.rateBytesPerSec), 'num');
    const done = cell(tr, '', 'num');
    if (x.percent === null) done.textContent = '–';
    else {
      const bar = document.createElement('span');
      bar.className = 'bar';
      const fillBar = document.createElement('span');
      fillBar.style.width = `${x.percent}%`;
      bar.appendChild(fillBar);
      done.replaceChildren(bar, document.createTextNode(`${x.percent}%`));
    }
    cell(tr, duration(x.secondsWithoutProgress), x.secondsWithoutProgress >= 10 ? 'num bad' : 'num');
  }, 'nothing moving');

  fill('recent', data.recentTransfers, (tr, x) => {
    cell(tr, clock(x.at));
    cell(tr, x.path, 'path');
    cell(tr, x.direction);
    cell(tr, x.user);
    const b = cell(tr, bytes(x.bytes), 'num bytes');
    b.dataset.bytes = String(x.bytes);
    cell(tr, `${(x.durationMs / 1000).toFixed(1)}s`, 'num');
    cell(tr, x.result, x.result === 'ok' ? 'result ok' : 'result bad');
  }, 'none yet');

  fill('accounts', data.accounts, (tr, a) => {
    cell(tr, a.name);
    cell(tr, a.pacedCallsPerSec === null ? value(a.callsPerSec) : `${value(a.callsPerSec)} (pace ${a.pacedCallsPerSec})`, 'num');
    // The mean wait of the calls started lately for their turn in the pacer (its share of a transfer's first byte).
    cell(tr, a.startWaitMs === null || a.startWaitMs === undefined ? '–' : a.startWaitMs >= 1000 ? `${(a.startWaitMs / 1000).toFixed(1)}s` : `${a.startWaitMs} ms`, 'num');
    cell(tr, a.limit === null ? value(a.inFlight) : `${value(a.inFlight)} / ${a.limit}`, 'num');
    cell(tr, value(a.rateLimited), a.rateLimited ? 'num bad' : 'num');
    cell(tr, a.retryAfterSeconds ? `${a.retryAfterSeconds}s` : a.retryAfterSeconds === 0 ? 'none' : '–', a.retryAfterSeconds ? 'num bad' : 'num');
    cell(tr, value(a.writeLockRetries), 'num');
  }, data.engine.available ? 'no account in use' : 'engine stopped');

  const e = data.engine;
  const dl = $('engine');
  const items = [];
  if (!e.available) items.push(['Engine', 'stopped']);
  else {
    const m = e.memory;
    items.push(
      ['Memory budget', m.budgetBytes === null ? '–' : `${bytes(m.inUseBytes)} of ${bytes(m.budgetBytes)}${m.budgetBytes ? ` (${Math.round((100 * (m.inUseBytes ?? 0)) / m.budgetBytes)}%)` : ''}`],
      ['Rings / chunks / spool', `${bytes(m.ringBytes)} / ${bytes(m.chunkBytes)} / ${bytes(m.spoolBytes)}`],
      ['Worker threads', e.threads === 0 ? 'none (main thread)' : `${value(e.threads)}, load ${e.workerUtilization === null ? '–' : `${Math.round(e.workerUtilization * 100)}%`}`],
      ['Worker heaps', e.workerHeaps.length ? e.workerHeaps.map((h) => bytes(h.heapUsedBytes)).join(' · ') : '–'],
      ['Transfers (engine)', `${value(e.activeDownloads)} down, ${value(e.activeUploads)} up`],
      ['Dropbox answers/s', value(e.callsPerSec)],
      ['429s / retries', `${value(e.rateLimited)} / ${value(e.retries)}`],
      ['Commit batches', `${value(e.commits.calls)} (mean ${value(e.commits.meanBatchSize)}, backlog ${value(e.commits.backlog)})`],
      ['Recent batch sizes', e.recentBatchSizes.length ? e.recentBatchSizes.join(' ') : '–'],
      ['Worker crashes', value(e.workerCrashes)],
    );
  }
  const out = document.createDocumentFragment();
  for (const [k, v] of items) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    out.append(dt, dd);
  }
  dl.replaceChildren(out);

  fill('errors', data.errors, (tr, x) => {
    cell(tr, clock(x.at));
    cell(tr, x.kind);
    cell(tr, x.user);
    cell(tr, x.path, 'path');
    cell(tr, x.code);
    cell(tr, x.message);
  }, 'no error');
}

function showProblem(text) {
  const p = $('problem');
  p.textContent = text;
  p.hidden = !text;
}

async function refresh() {
  clearTimeout(timer);
  try {
    const res = await fetch('/status.json', { credentials: 'same-origin', cache: 'no-store' });
    if (res.status === 401) {
      $('status').hidden = true;
      $('login').hidden = false;
      $('token').focus();
      return; // polling resumes after a login
    }
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      showProblem(`status unavailable: ${body.error || `HTTP ${res.status}`}`);
    } else {
      render(await res.json());
      showProblem('');
      $('login').hidden = true;
      $('status').hidden = false;
    }
  } catch (err) {
    showProblem(`gateway unreachable (${err.message}); retrying`);
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const token = $('token').value;
  const res = await fetch('/login', { method: 'POST', body: new URLSearchParams({ token }), credentials: 'same-origin' });
  $('token').value = '';
  if (res.status === 204) {
    $('login-error').textContent = '';
    refresh();
  } else {
    $('login-error').textContent = res.status === 401 ? 'Wrong token.' : `Login failed: HTTP ${res.status}`;
  }
});

$('logout').addEventListener('click', async () => {
  await fetch('/logout', { method: 'POST', headers: { 'x-dropftp-csrf': csrf }, credentials: 'same-origin' });
  refresh();
});

refresh();
