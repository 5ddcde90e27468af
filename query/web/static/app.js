// logengine's web UI: one page over the gateway's public query API
// (search, histogram, stats and the live tail). Plain DOM, no framework;
// user data only ever reaches the page as text nodes.
'use strict';

const LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];
const RANGES = { '15m': 15 * 60e3, '1h': 3600e3, '24h': 24 * 3600e3, '7d': 7 * 24 * 3600e3 };
const PAGE_SIZE = 50;
// Rows kept in the page while tailing; older ones are dropped from the bottom.
const MAX_ROWS = 1000;
const TAIL_POLL_MS = 1000;
// Polling asks again for a few seconds before the newest log seen, so a log
// stored a little late is not missed; ids already shown are skipped.
const TAIL_OVERLAP_MS = 5000;
const SOURCE_CHOICES = 100;

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ state

// The whole query lives in the URL, with the API's own parameter names.
function emptyState() {
  return { range: '1h', start: '', end: '', levels: [], sources: [], keyword: '', traceId: '', meta: [], size: PAGE_SIZE };
}

function stateFromURL() {
  const p = new URLSearchParams(location.search);
  const s = emptyState();
  if (p.get('startTime') || p.get('endTime')) {
    s.range = 'custom';
    s.start = p.get('startTime') || '';
    s.end = p.get('endTime') || '';
  } else if (RANGES[p.get('range')]) {
    s.range = p.get('range');
  }
  s.levels = splitList(p.get('logLevel')).map((l) => l.toUpperCase()).filter((l) => LEVELS.includes(l));
  s.sources = splitList(p.get('source'));
  s.keyword = p.get('keyword') || '';
  s.traceId = p.get('traceId') || '';
  const size = parseInt(p.get('size'), 10);
  if (size >= 1 && size <= 1000) s.size = size;
  for (const [k, v] of p) {
    if (k.startsWith('meta.') && k.length > 5) s.meta.push([k.slice(5), v]);
  }
  return s;
}

function splitList(v) {
  return (v || '').split(',').map((x) => x.trim()).filter(Boolean);
}

function stateToParams(s) {
  const p = new URLSearchParams();
  if (s.range === 'custom') {
    if (s.start) p.set('startTime', s.start);
    if (s.end) p.set('endTime', s.end);
  } else if (s.range !== '1h') {
    p.set('range', s.range);
  }
  if (s.levels.length) p.set('logLevel', s.levels.join(','));
  if (s.sources.length) p.set('source', s.sources.join(','));
  if (s.keyword) p.set('keyword', s.keyword);
  if (s.traceId) p.set('traceId', s.traceId);
  for (const [k, v] of s.meta) p.append('meta.' + k, v);
  if (s.size !== PAGE_SIZE) p.set('size', String(s.size));
  return p;
}

let state = stateFromURL();

// The window a run searches: a quick pick ends now, a custom one is fixed.
function windowOf(s) {
  if (s.range !== 'custom') {
    const end = new Date(Math.ceil(Date.now() / 1000) * 1000);
    return { start: new Date(end - RANGES[s.range]), end };
  }
  const end = s.end ? new Date(s.end) : new Date(Math.ceil(Date.now() / 1000) * 1000);
  const start = s.start ? new Date(s.start) : new Date(end - RANGES['1h']);
  return { start, end };
}

// ------------------------------------------------------------------- form

function fillForm() {
  $('keyword').value = state.keyword;
  $('traceId').value = state.traceId;
  $('meta').value = state.meta.map(([k, v]) => k + '=' + v).join(', ');
  for (const b of $('ranges').querySelectorAll('button')) {
    b.setAttribute('aria-pressed', String(b.dataset.range === state.range));
  }
  $('custom').hidden = state.range !== 'custom';
  if (state.range === 'custom') {
    const w = windowOf(state);
    $('start').value = toLocalInput(w.start);
    $('end').value = toLocalInput(w.end);
  }
  for (const b of $('levels').querySelectorAll('button')) {
    b.setAttribute('aria-pressed', String(state.levels.includes(b.dataset.level)));
  }
  renderSourceChoices();
}

// readForm takes the typed fields (the chips and choices update state as
// they are clicked).
function readForm() {
  state.keyword = $('keyword').value.trim();
  state.traceId = $('traceId').value.trim();
  state.meta = parseMeta($('meta').value);
  if (state.range === 'custom') {
    state.start = fromLocalInput($('start').value) || state.start;
    state.end = fromLocalInput($('end').value) || state.end;
  }
}

// "user=42, region=eu west" → [["user","42"],["region","eu west"]]
function parseMeta(text) {
  const out = [];
  for (const part of text.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const k = part.slice(0, i).trim().replace(/^meta\./, '');
    if (k) out.push([k, part.slice(i + 1).trim()]);
  }
  return out;
}

function pad(n, w = 2) { return String(n).padStart(w, '0'); }

function toLocalInput(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fromLocalInput(v) {
  if (!v) return '';
  const d = new Date(v); // datetime-local values are local time
  return isNaN(d) ? '' : d.toISOString();
}

function formatTime(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function formatShort(d, spanMs) {
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (spanMs <= 3600e3) return hm + ':' + pad(d.getSeconds());
  if (spanMs <= 24 * 3600e3) return hm;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}

function formatSpan(ms) {
  if (ms >= 2 * 86400e3) return Math.round(ms / 86400e3) + ' d';
  if (ms >= 2 * 3600e3) return Math.round(ms / 3600e3) + ' h';
  if (ms >= 2 * 60e3) return Math.round(ms / 60e3) + ' min';
  return Math.round(ms / 1000) + ' s';
}

const number = new Intl.NumberFormat();

// -------------------------------------------------------------------- API

// A gateway with API keys answers 401 without one: the page then asks for
// a key (with the query scope) once, keeps it in this tab's
// sessionStorage, and sends it as X-API-Key.
const API_KEY_STORAGE = 'logengine.apiKey';
let keyPrompt = null;

function apiKey() {
  try {
    return sessionStorage.getItem(API_KEY_STORAGE) || '';
  } catch (_) {
    return '';
  }
}

// askKey asks for a key once for every request that got a 401 at the
// same time; it resolves true when one was given.
function askKey() {
  if (!keyPrompt) {
    keyPrompt = new Promise((resolve) => {
      const key = (window.prompt('This gateway needs an API key with the query scope:') || '').trim();
      if (key) {
        try {
          sessionStorage.setItem(API_KEY_STORAGE, key);
        } catch (_) {
          // not kept: asked again on the next 401
        }
      }
      setTimeout(() => { keyPrompt = null; }, 0);
      resolve(key !== '');
    });
  }
  return keyPrompt;
}

// api GETs one endpoint of the gateway; it never throws for an HTTP
// status, only for a network failure or an abort.
async function api(path, params, opts = {}) {
  let res;
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: 'application/json' };
    if (opts.noCache) headers['Cache-Control'] = 'no-cache';
    const key = apiKey();
    if (key) headers['X-API-Key'] = key;
    res = await fetch(path + '?' + params.toString(), { headers, signal: opts.signal });
    if (res.status !== 401 || attempt > 0 || !(await askKey())) break;
  }
  let body = null;
  try {
    body = await res.json();
  } catch (_) {
    body = null;
  }
  return { ok: res.ok, status: res.status, cache: res.headers.get('X-Cache') || '', retryAfter: res.headers.get('Retry-After'), body };
}

function filterParams(s, w, { levels = true, sources = true, rest = true } = {}) {
  const p = new URLSearchParams();
  if (w) {
    p.set('startTime', w.start.toISOString());
    p.set('endTime', w.end.toISOString());
  }
  if (levels && s.levels.length) p.set('logLevel', s.levels.join(','));
  if (sources && s.sources.length) p.set('source', s.sources.join(','));
  if (rest) {
    if (s.keyword) p.set('keyword', s.keyword);
    if (s.traceId) p.set('traceId', s.traceId);
    for (const [k, v] of s.meta) p.append('meta.' + k, v);
  }
  return p;
}

// ------------------------------------------------------------------ a run

let run = null; // the search on screen: {window, params, cursor, controller, loading}
const cacheStatus = {};

async function search({ push = true } = {}) {
  readForm();
  if (push) {
    const qs = stateToParams(state).toString();
    const url = location.pathname + (qs ? '?' + qs : '');
    if (url !== location.pathname + location.search) history.pushState(null, '', url);
  }
  fillForm();
  if (run) run.controller.abort();
  const w = windowOf(state);
  const controller = new AbortController();
  run = { window: w, params: filterParams(state, w), size: state.size, cursor: '', controller, loading: true, total: 0, estimate: false };
  const mine = run;
  $('results').replaceChildren();
  $('more').textContent = '';
  setBanner('');
  setStatus('Searching ' + describeWindow(w) + '…', 'loading');
  document.body.classList.add('busy');
  $('window').textContent = describeWindow(w);
  $('hist-note').textContent = state.keyword || state.traceId || state.meta.length ? 'volume by level and source filters only' : '';

  const signal = controller.signal;
  const searchParams = new URLSearchParams(run.params);
  searchParams.set('size', String(state.size));
  const jobs = [
    api('/api/v1/logs', searchParams, { signal }).then((r) => showPage(mine, r, false)),
    api('/api/v1/logs/histogram', filterParams(state, w, { rest: false }), { signal }).then((r) => showHistogram(mine, r)),
    api('/api/v1/logs/stats', filterParams(state, w, { rest: false }), { signal }).then((r) => showStats(mine, r)),
    api('/api/v1/logs/stats', withTop(filterParams(state, w, { levels: false, sources: false, rest: false }), SOURCE_CHOICES), { signal }).then((r) => showSourceChoices(mine, r)),
  ];
  await settle(jobs);
  if (run === mine) {
    mine.loading = false;
    document.body.classList.remove('busy');
    renderFooter();
    if (tail.on) restartTail();
    maybeLoadMore();
  }
}

function withTop(p, n) {
  p.set('top', String(n));
  return p;
}

// settle waits for every job, swallowing aborts (a newer search replaced
// this one) and reporting network failures once.
async function settle(jobs) {
  const results = await Promise.allSettled(jobs);
  for (const r of results) {
    if (r.status === 'rejected' && r.reason && r.reason.name !== 'AbortError') {
      setBanner('The gateway cannot be reached (' + r.reason.message + '). Check that it is running, then search again.', 'error');
      setStatus('', '');
      return;
    }
  }
}

function describeWindow(w) {
  return `${formatShort(w.start, 86400e3 * 2)} – ${formatShort(w.end, 86400e3 * 2)} (${formatSpan(w.end - w.start)})`;
}

function setStatus(text, kind) {
  const el = $('status');
  el.textContent = text;
  el.className = kind || '';
}

function setBanner(text, kind, action) {
  const el = $('banner');
  el.replaceChildren();
  el.hidden = !text;
  el.className = kind || '';
  if (!text) return;
  const p = document.createElement('p');
  p.textContent = text;
  el.append(p);
  if (action) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = action.label;
    b.className = 'primary';
    b.addEventListener('click', action.run);
    el.append(b);
  }
}

function noteCache(name, r) {
  cacheStatus[name] = r.ok ? r.cache || '—' : String(r.status);
  if (r.cache === 'STALE') {
    setBanner('The log store is not answering: these are the last good answers, marked STALE, and may be out of date.', 'stale');
  }
}

function renderFooter() {
  const parts = ['search', 'histogram', 'stats'].filter((k) => cacheStatus[k]).map((k) => `${k} ${cacheStatus[k]}`);
  $('cache-status').textContent = parts.length ? 'cache: ' + parts.join(' · ') : '';
  $('cache-status').classList.toggle('stale', Object.values(cacheStatus).includes('STALE'));
}

// ---------------------------------------------------------------- results

function showPage(mine, r, appending) {
  if (run !== mine) return;
  noteCache('search', r);
  if (!r.ok) {
    showError(r, 'search');
    return;
  }
  const page = r.body;
  if (!appending) {
    mine.total = page.totalElements;
    mine.estimate = page.totalIsEstimate;
    renderTotal();
    if (page.empty) {
      setStatus('No logs match in ' + describeWindow(mine.window) + '. Widen the time range or remove a filter.', 'empty');
    } else {
      setStatus('', '');
    }
  }
  const list = $('results');
  for (const log of page.content) {
    if (!list.querySelector(`li[data-id="${CSS.escape(log.id)}"]`)) list.append(renderLog(log));
  }
  mine.cursor = page.nextCursor || '';
  $('more').textContent = mine.cursor ? 'Loading more…' : page.empty ? '' : 'End of results';
  observeMore();
}

function renderTotal() {
  const el = $('total');
  if (!run) return;
  el.textContent = run.estimate
    ? `more than ${number.format(run.total)} logs`
    : `${number.format(run.total)} ${run.total === 1 ? 'log' : 'logs'}`;
}

function showError(r, what) {
  const message = (r.body && r.body.error) || `HTTP ${r.status}`;
  if (r.status === 422) {
    const w = run.window;
    const day = 24 * 3600e3;
    const narrower = w.end - w.start > day ? day : Math.max(60e3, Math.floor((w.end - w.start) / 4));
    setBanner(
      `This ${what} would read too much of the store, so the gateway refused it. ` +
        'A keyword over a long window has to look at every log in it: narrow the time range, ' +
        `or add a source, trace id or metadata filter. (${message})`,
      'refused',
      {
        label: `Search the last ${formatSpan(narrower)} of this window`,
        run: () => {
          state.range = 'custom';
          state.start = new Date(w.end - narrower).toISOString();
          state.end = w.end.toISOString();
          fillForm();
          search();
        },
      },
    );
    setStatus('', '');
    return;
  }
  if (r.status === 503) {
    setBanner('The log store is unavailable and no cached answer exists for this ' + what + '. Retry in a few seconds.', 'error');
  } else if (r.status === 429) {
    setBanner('The gateway is busy with other queries; search again in a second.', 'error');
  } else {
    setBanner(`The ${what} failed: ${message}`, 'error');
  }
  setStatus('', '');
}

// renderLog builds one row: the line, and its details opened by a click.
function renderLog(log) {
  const li = document.createElement('li');
  li.className = 'log lvl-' + log.logLevel;
  li.dataset.id = log.id;
  li.dataset.ts = log.timestamp;
  const line = document.createElement('button');
  line.type = 'button';
  line.className = 'line';
  line.setAttribute('aria-expanded', 'false');
  const time = document.createElement('time');
  time.dateTime = log.timestamp;
  time.textContent = formatTime(log.timestamp);
  const level = document.createElement('span');
  level.className = 'level';
  level.textContent = log.logLevel;
  const source = document.createElement('span');
  source.className = 'source';
  source.textContent = log.source;
  const msg = document.createElement('span');
  msg.className = 'msg';
  highlight(msg, log.message, state.keyword);
  line.append(time, level, source, msg);
  line.addEventListener('click', () => toggleDetail(li, log));
  li.append(line);
  return li;
}

// highlight appends text to el with every case-insensitive occurrence of
// keyword marked.
function highlight(el, text, keyword) {
  if (!keyword) {
    el.textContent = text;
    return;
  }
  const lower = text.toLowerCase();
  const k = keyword.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(k); i >= 0 && k; i = lower.indexOf(k, at)) {
    if (i > at) el.append(text.slice(at, i));
    const m = document.createElement('mark');
    m.textContent = text.slice(i, i + k.length);
    el.append(m);
    at = i + k.length;
  }
  if (at < text.length) el.append(text.slice(at));
}

function toggleDetail(li, log) {
  const open = li.querySelector('.detail');
  const line = li.querySelector('.line');
  if (open) {
    open.remove();
    line.setAttribute('aria-expanded', 'false');
    return;
  }
  line.setAttribute('aria-expanded', 'true');
  const d = document.createElement('div');
  d.className = 'detail';
  const pre = document.createElement('pre');
  pre.textContent = JSON.stringify(
    { id: log.id, timestamp: log.timestamp, traceId: log.traceId || null, metadata: log.metadata || {} },
    null,
    2,
  );
  const actions = document.createElement('div');
  actions.className = 'actions';
  if (log.traceId) {
    actions.append(button('Same trace', 'same-trace', () => {
      const w = run.window;
      state = { ...emptyState(), range: state.range, start: state.start, end: state.end, size: state.size, traceId: log.traceId };
      if (state.range !== 'custom') {
        state.range = 'custom';
        state.start = w.start.toISOString();
        state.end = w.end.toISOString();
      }
      fillForm();
      search();
    }));
  }
  actions.append(button('Same source ±5 min', 'same-source', () => {
    const t = new Date(log.timestamp).getTime();
    state = { ...emptyState(), range: 'custom', size: state.size, start: new Date(t - 5 * 60e3).toISOString(), end: new Date(t + 5 * 60e3).toISOString(), sources: [log.source] };
    fillForm();
    search();
  }));
  d.append(pre, actions);
  li.append(d);
}

function button(label, cls, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = cls;
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

// Infinite scroll: the next page loads when the end of the list shows.
let moreObserver = null;
function observeMore() {
  if (!moreObserver) {
    moreObserver = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadMore();
    }, { rootMargin: '400px' });
    moreObserver.observe($('more'));
  }
}

async function loadMore() {
  const mine = run;
  if (!mine || mine.loading || !mine.cursor) return;
  mine.loading = true;
  const p = new URLSearchParams(mine.params);
  p.set('size', String(mine.size));
  p.set('cursor', mine.cursor);
  try {
    await settle([api('/api/v1/logs', p, { signal: mine.controller.signal }).then((r) => showPage(mine, r, true))]);
  } finally {
    mine.loading = false;
  }
  renderFooter();
  maybeLoadMore();
}

// maybeLoadMore loads the next page when the end of the list is on screen
// already (a tall screen, or a short page), which the observer, seeing no
// change, would not report.
function maybeLoadMore() {
  const mine = run;
  if (mine && mine.cursor && !mine.loading && $('more').getBoundingClientRect().top < window.innerHeight + 400) loadMore();
}

// -------------------------------------------------------------- histogram

const SVG = 'http://www.w3.org/2000/svg';

function showHistogram(mine, r) {
  if (run !== mine) return;
  noteCache('histogram', r);
  const svg = $('histogram');
  svg.replaceChildren();
  $('axis').replaceChildren();
  if (!r.ok) {
    if (r.status !== 422) $('hist-note').textContent = 'volume unavailable: ' + ((r.body && r.body.error) || 'HTTP ' + r.status);
    return;
  }
  const buckets = r.body.buckets || [];
  svg.dataset.interval = r.body.interval;
  if (!buckets.length) return;
  const maxTotal = Math.max(1, ...buckets.map((b) => b.total));
  const width = 1000 / buckets.length;
  const gap = buckets.length > 200 ? 0 : Math.min(2, width * 0.15);
  buckets.forEach((b, i) => {
    const g = document.createElementNS(SVG, 'g');
    g.setAttribute('class', 'bucket');
    g.dataset.time = b.time;
    g.dataset.total = String(b.total);
    let y = 100;
    for (const level of LEVELS) {
      const n = (b.counts && b.counts[level]) || 0;
      if (!n) continue;
      const h = (n / maxTotal) * 96;
      const rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('class', 'lvl-' + level);
      rect.setAttribute('x', String(i * width + gap / 2));
      rect.setAttribute('width', String(Math.max(0.5, width - gap)));
      rect.setAttribute('y', String(y - h));
      rect.setAttribute('height', String(h));
      y -= h;
      g.append(rect);
    }
    const title = document.createElementNS(SVG, 'title');
    const detail = LEVELS.filter((l) => b.counts && b.counts[l]).map((l) => `${l} ${number.format(b.counts[l])}`).join(', ');
    title.textContent = `${formatTime(b.time)}: ${number.format(b.total)} logs${detail ? ' (' + detail + ')' : ''}`;
    g.append(title);
    svg.append(g);
  });
  const start = new Date(r.body.startTime);
  const end = new Date(r.body.endTime);
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const s = document.createElement('span');
    s.textContent = formatShort(new Date(start.getTime() + f * (end - start)), end - start);
    $('axis').append(s);
  }
  mine.histogram = { start, end };
}

// Dragging across the chart zooms into the time range dragged over.
function setupZoom() {
  const chart = $('chart');
  const sel = document.createElement('div');
  sel.id = 'selection';
  sel.hidden = true;
  chart.append(sel);
  let from = null;
  const frac = (e) => {
    const r = $('histogram').getBoundingClientRect();
    return Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
  };
  const paint = (a, b) => {
    sel.hidden = false;
    sel.style.left = Math.min(a, b) * 100 + '%';
    sel.style.width = Math.abs(b - a) * 100 + '%';
  };
  chart.addEventListener('pointerdown', (e) => {
    if (!run || !run.histogram) return;
    from = frac(e);
    chart.setPointerCapture(e.pointerId);
    paint(from, from);
  });
  chart.addEventListener('pointermove', (e) => {
    if (from !== null) paint(from, frac(e));
  });
  const finish = (e, apply) => {
    if (from === null) return;
    const to = frac(e);
    const a = Math.min(from, to);
    const b = Math.max(from, to);
    from = null;
    sel.hidden = true;
    if (!apply || b - a < 0.01) return;
    const { start, end } = run.histogram;
    const span = end - start;
    state.range = 'custom';
    state.start = new Date(start.getTime() + a * span).toISOString();
    state.end = new Date(start.getTime() + b * span).toISOString();
    fillForm();
    search();
  };
  chart.addEventListener('pointerup', (e) => finish(e, true));
  chart.addEventListener('pointercancel', (e) => finish(e, false));
}

// ------------------------------------------------------------------ stats

function showStats(mine, r) {
  if (run !== mine) return;
  noteCache('stats', r);
  const levels = $('stats-levels');
  const sources = $('stats-sources');
  levels.replaceChildren();
  sources.replaceChildren();
  if (!r.ok) return;
  const total = Math.max(1, r.body.totalCount);
  for (const level of LEVELS) {
    const n = r.body.logLevelDistribution[level];
    if (n) levels.append(statRow(level, n, total, 'lvl-' + level, () => toggleLevel(level, true)));
  }
  for (const [name, n] of Object.entries(r.body.topSources)) {
    sources.append(statRow(name, n, total, '', () => {
      state.sources = [name];
      fillForm();
      search();
    }));
  }
}

function statRow(label, n, total, cls, onClick) {
  const li = document.createElement('li');
  const b = button('', 'stat ' + cls, onClick);
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = label;
  const count = document.createElement('span');
  count.className = 'count';
  count.textContent = number.format(n);
  const bar = document.createElement('span');
  bar.className = 'meter';
  bar.style.width = Math.max(1, (n / total) * 100) + '%';
  b.append(name, count, bar);
  li.append(b);
  return li;
}

// The source choices come from the rollups of the window, with counts.
let sourceChoices = [];

function showSourceChoices(mine, r) {
  if (run !== mine) return;
  sourceChoices = r.ok ? Object.entries(r.body.topSources) : [];
  renderSourceChoices();
}

function renderSourceChoices() {
  const list = $('source-list');
  list.replaceChildren();
  const known = new Map(sourceChoices);
  const names = [...state.sources.filter((s) => !known.has(s)), ...known.keys()];
  if (!names.length) {
    const p = document.createElement('p');
    p.textContent = 'No sources in this window.';
    list.append(p);
  }
  for (const name of names) {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.value = name;
    box.checked = state.sources.includes(name);
    box.addEventListener('change', () => {
      state.sources = box.checked ? [...state.sources, name] : state.sources.filter((s) => s !== name);
      search();
    });
    const text = document.createElement('span');
    text.textContent = name;
    const count = document.createElement('span');
    count.className = 'count';
    count.textContent = known.has(name) ? number.format(known.get(name)) : '–';
    label.append(box, text, count);
    list.append(label);
  }
  $('sources-label').textContent = state.sources.length === 0 ? 'All sources' : state.sources.length === 1 ? state.sources[0] : `${state.sources.length} sources`;
}

function toggleLevel(level, only) {
  if (only) state.levels = [level];
  else state.levels = state.levels.includes(level) ? state.levels.filter((l) => l !== level) : [...state.levels, level];
  fillForm();
  search();
}

// --------------------------------------------------------------- live tail

// The tail streams from GET /api/v1/logs/tail (Server-Sent Events); where
// the gateway has no such endpoint, or the stream cannot open, it polls
// the search instead.
const tail = { on: false, paused: false, buffer: [], source: null, timer: null, mode: '', since: 0, seen: new Map(), generation: 0 };

function startTail() {
  stopStream();
  tail.generation++;
  const gen = tail.generation;
  tail.since = Date.now() - 1000;
  tail.seen = new Map();
  const p = filterParams(state, null);
  let opened = false;
  let es;
  try {
    es = new EventSource('/api/v1/logs/tail?' + p.toString());
  } catch (_) {
    startPolling(gen);
    return;
  }
  tail.source = es;
  tail.mode = 'connecting';
  renderTailStatus();
  es.onopen = () => {
    opened = true;
    tail.mode = 'streaming';
    renderTailStatus();
  };
  es.addEventListener('log', (e) => {
    try {
      addTailLogs([JSON.parse(e.data)]);
    } catch (_) {
      // a malformed event is skipped; the next one is independent
    }
  });
  es.addEventListener('dropped', (e) => {
    let reason = 'the page fell behind';
    try {
      reason = JSON.parse(e.data).reason || reason;
    } catch (_) {
      // keep the generic reason
    }
    es.close();
    tail.mode = 'reconnecting (' + reason + ')';
    renderTailStatus();
    tail.timer = setTimeout(() => gen === tail.generation && startTail(), 1000);
  });
  es.onerror = () => {
    if (gen !== tail.generation) return;
    if (!opened) {
      // 404 (no tail endpoint on this gateway) or no stream at all: poll.
      es.close();
      tail.source = null;
      startPolling(gen);
    } else if (es.readyState === EventSource.CLOSED) {
      tail.mode = 'reconnecting';
      renderTailStatus();
      tail.timer = setTimeout(() => gen === tail.generation && startTail(), 2000);
    }
  };
}

function startPolling(gen) {
  tail.mode = 'polling';
  renderTailStatus();
  const poll = async () => {
    if (gen !== tail.generation) return;
    try {
      await pollOnce(gen);
    } catch (_) {
      tail.mode = 'polling (the gateway did not answer)';
      renderTailStatus();
    }
    if (gen === tail.generation) tail.timer = setTimeout(poll, TAIL_POLL_MS);
  };
  poll();
}

// pollOnce asks for what arrived since the newest log seen, oldest first,
// following the cursor, and straight from the store (no cache).
async function pollOnce(gen) {
  const since = Math.min(tail.since - TAIL_OVERLAP_MS, Date.now() - 1000);
  const p = filterParams(state, null);
  p.set('startTime', new Date(since).toISOString());
  p.set('sort', 'asc');
  p.set('size', '200');
  for (let pages = 0; pages < 5; pages++) {
    const r = await api('/api/v1/logs', p, { noCache: true });
    if (gen !== tail.generation) return;
    if (!r.ok) {
      tail.mode = 'polling (' + ((r.body && r.body.error) || 'HTTP ' + r.status) + ')';
      renderTailStatus();
      return;
    }
    if (tail.mode !== 'polling') {
      tail.mode = 'polling';
      renderTailStatus();
    }
    const fresh = r.body.content.filter((log) => !tail.seen.has(log.id));
    for (const log of r.body.content) {
      const t = new Date(log.timestamp).getTime();
      tail.seen.set(log.id, t);
      tail.since = Math.max(tail.since, t);
    }
    // Newest first, as the list shows them.
    addTailLogs(fresh.reverse());
    if (!r.body.nextCursor) break;
    p.set('cursor', r.body.nextCursor);
  }
  const oldest = tail.since - 2 * TAIL_OVERLAP_MS;
  for (const [id, t] of tail.seen) if (t < oldest) tail.seen.delete(id);
}

// addTailLogs puts new logs (newest first) at the top of the list, or in
// the buffer while paused; the page keeps at most MAX_ROWS rows.
function addTailLogs(logs) {
  if (!logs.length) return;
  if (tail.paused) {
    tail.buffer = [...logs, ...tail.buffer].slice(0, MAX_ROWS);
    renderTailStatus();
    return;
  }
  const list = $('results');
  const fresh = logs.filter((log) => !list.querySelector(`li[data-id="${CSS.escape(log.id)}"]`));
  if (!fresh.length) return;
  const frag = document.createDocumentFragment();
  for (const log of fresh) {
    const li = renderLog(log);
    li.classList.add('new');
    frag.append(li);
  }
  list.prepend(frag);
  if (run && !run.estimate) {
    run.total += fresh.length;
    renderTotal();
  }
  setStatus('', '');
  let dropped = false;
  while (list.children.length > MAX_ROWS) {
    list.lastElementChild.remove();
    dropped = true;
  }
  if (dropped && run) {
    // The cursor would now skip the dropped rows: end paging here.
    run.cursor = '';
    $('more').textContent = `Older rows were dropped to keep ${number.format(MAX_ROWS)} in the page; search again to page through them.`;
  }
}

function stopStream() {
  tail.generation++;
  if (tail.source) tail.source.close();
  tail.source = null;
  clearTimeout(tail.timer);
  tail.timer = null;
}

function restartTail() {
  if (tail.on) startTail();
}

function setTail(on) {
  tail.on = on;
  tail.paused = false;
  tail.buffer = [];
  $('pause').hidden = !on;
  if (on) startTail();
  else {
    stopStream();
    tail.mode = '';
  }
  renderTailStatus();
}

function togglePause() {
  tail.paused = !tail.paused;
  if (!tail.paused && tail.buffer.length) {
    const logs = tail.buffer;
    tail.buffer = [];
    addTailLogs(logs);
  }
  renderTailStatus();
}

function renderTailStatus() {
  const pause = $('pause');
  pause.textContent = tail.paused ? `Resume${tail.buffer.length ? ` (${tail.buffer.length} new)` : ''}` : 'Pause';
  pause.setAttribute('aria-pressed', String(tail.paused));
  $('tail-status').textContent = tail.on ? 'live tail: ' + (tail.paused ? 'paused' : tail.mode) : '';
  document.body.classList.toggle('tailing', tail.on);
}

// ------------------------------------------------------------------- wiring

function init() {
  $('zone').textContent = 'times in ' + (Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time');
  $('search').addEventListener('submit', (e) => {
    e.preventDefault();
    search();
  });
  for (const b of $('ranges').querySelectorAll('button')) {
    b.addEventListener('click', () => {
      if (b.dataset.range === 'custom') {
        if (state.range !== 'custom') {
          const w = windowOf(state);
          state.start = w.start.toISOString();
          state.end = w.end.toISOString();
          state.range = 'custom';
        }
        fillForm();
        $('start').focus();
        return;
      }
      state.range = b.dataset.range;
      fillForm();
      search();
    });
  }
  for (const b of $('levels').querySelectorAll('button')) {
    b.addEventListener('click', () => toggleLevel(b.dataset.level, false));
  }
  $('tail').addEventListener('change', (e) => setTail(e.target.checked));
  $('pause').addEventListener('click', togglePause);
  // The "/" that focuses the search must not also be typed into it; some
  // input paths deliver its character after the keydown moved the focus.
  let swallowSlash = false;
  const swallow = (e) => {
    if (swallowSlash && (e.key === '/' || e.data === '/')) e.preventDefault();
    swallowSlash = false;
  };
  $('keyword').addEventListener('keypress', swallow);
  $('keyword').addEventListener('beforeinput', swallow);
  document.addEventListener('keydown', (e) => {
    const typing = e.target instanceof HTMLInputElement && e.target.type !== 'checkbox';
    swallowSlash = false;
    if (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      swallowSlash = true;
      $('keyword').focus();
      $('keyword').select();
    } else if (e.key === 'Escape') {
      if (typing) {
        e.target.value = '';
      } else {
        for (const d of document.querySelectorAll('.detail')) d.remove();
        for (const l of document.querySelectorAll('.line[aria-expanded="true"]')) l.setAttribute('aria-expanded', 'false');
      }
      $('sources').open = false;
    }
  });
  window.addEventListener('popstate', () => {
    state = stateFromURL();
    fillForm();
    search({ push: false });
  });
  setupZoom();
  fillForm();
  search({ push: false });
}

init();
