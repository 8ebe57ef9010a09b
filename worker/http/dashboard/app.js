/* The wsmill dashboard: reads the status snapshot from /dashboard/events
 * (Server-Sent Events, one a second), keeps the last five minutes, and
 * draws small charts. Snapshots are cumulative; rates and percentiles are
 * differences between consecutive ones. No library, nothing fetched from
 * outside. */
'use strict';

const WINDOW_S = 300;
const COLORS = ['#4fb3ff', '#7ee07b', '#c792ea', '#ff7a6b'];
/* chart -> its series and their colour (the keys in index.html match) */
const CHARTS = {
  connections: [['connections', 0]], handshakes: [['hs', 0], ['refused', 3]], messages: [['in', 0], ['out', 1]],
  deliveries: [['deliveries', 0], ['publishes', 2]], delay: [['delay50', 0], ['delay99', 3]], hstime: [['hs50', 0], ['hs99', 3]],
};
const CLOSE_NAMES = { 1000: 'normal', 1001: 'going away', 1002: 'protocol error', 1003: 'unsupported data',
  1006: 'abnormal', 1007: 'invalid payload', 1008: 'policy', 1009: 'too big', 1011: 'server error', 1013: 'try again' };
const hist = {};      /* series name -> [[t, v], ...] */
const minute = [];    /* snapshots of the last minute, for "last minute" columns */
let prev = null;       /* the last live snapshot */
let lastSample = null; /* the newest history sample, until the first snapshot */

function $(id) { return document.getElementById(id); }

function fmt(v, unit) {
  if (v === null || v === undefined || !isFinite(v)) return '-';
  const a = Math.abs(v);
  let s;
  if (a >= 1e9) s = (v / 1e9).toFixed(2) + 'G';
  else if (a >= 1e6) s = (v / 1e6).toFixed(2) + 'M';
  else if (a >= 1e4) s = (v / 1e3).toFixed(1) + 'k';
  else if (a >= 100 || Number.isInteger(v)) s = Math.round(v).toString();
  else s = v.toFixed(1);
  return unit ? s + unit : s;
}

function fmtSeconds(s) {
  if (s === null || s === undefined || !isFinite(s)) return '-';
  if (s === 0) return '0';
  if (s < 1e-3) return (s * 1e6).toFixed(0) + ' µs';
  if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + ' ms';
  return s.toFixed(2) + ' s';
}

function fmtDuration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? d + 'd ' + h + 'h' : h ? h + 'h ' + m + 'm' : m + 'm ' + Math.floor(s % 60) + 's';
}

function push(name, t, v) {
  const a = hist[name] || (hist[name] = []);
  a.push([t, v]);
  while (a.length && a[0][0] < t - WINDOW_S) a.shift();
}

function draw(canvas) {
  const def = CHARTS[canvas.dataset.chart], names = def.map(d => d[0]);
  const seconds = canvas.dataset.chart === 'delay' || canvas.dataset.chart === 'hstime';
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * dpr || canvas.height !== h * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const latest = prev || lastSample, now = latest ? latest.time_ms / 1000 : 0;
  let max = 0;
  for (const n of names) for (const [, v] of hist[n] || []) if (v !== null && v > max) max = v;
  max = max > 0 ? niceCeil(max * 1.05) : seconds ? 0.001 : 4;
  const left = 48, bottom = 16, top = 6, ph = h - bottom - top, pw = w - left - 4;
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#7d8a98';
  g.strokeStyle = '#26303b';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - ph * i / 4;
    g.beginPath(); g.moveTo(left, Math.round(y) + .5); g.lineTo(w - 4, Math.round(y) + .5); g.stroke();
    const v = max * i / 4;
    g.fillText(seconds ? fmtSeconds(v) : fmt(v), 2, y + 4);
  }
  g.fillText('-5 min', left, h - 3);
  g.fillText('now', w - 26, h - 3);
  names.forEach((n, k) => {
    const pts = hist[n] || [];
    const x = t => left + pw * (1 - (now - t) / WINDOW_S);
    const y = v => top + ph - ph * v / max;
    /* a second with nothing observed (null) breaks the line */
    g.beginPath();
    let drawing = false, first = null, last = null;
    for (const [t, v] of pts) {
      if (v === null) { drawing = false; continue; }
      if (drawing) g.lineTo(x(t), y(v)); else g.moveTo(x(t), y(v));
      drawing = true;
      if (!first) first = t;
      last = t;
    }
    if (first === null) return;
    g.strokeStyle = COLORS[def[k][1]];
    g.lineWidth = 1.6;
    g.setLineDash(k ? [5, 3] : []); /* a second series stays visible where it lies on the first */
    g.stroke();
    g.setLineDash([]);
    if (k === 0 && !seconds) {
      g.lineTo(x(last), top + ph);
      g.lineTo(x(first), top + ph);
      g.closePath();
      g.fillStyle = 'rgba(79,179,255,0.10)';
      g.fill();
    }
  });
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 4, 6, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function rows(tbody, items, empty) {
  if (!items.length) items = [[empty, '', '']];
  tbody.innerHTML = items.map(r => '<tr>' + r.map((c, i) => '<td' + (i ? ' class="num"' : '') + '>' + c + '</td>').join('') + '</tr>').join('');
}

function tables(s) {
  const old = minute[0];
  const maxConn = Math.max(1, ...s.workers.map(w => w.connections));
  rows($('worker-table').tBodies[0], s.workers.map(w => {
    const p = prev && prev.workers.find(x => x.id === w.id);
    const cpu = p ? 100 * (w.cpu_us - p.cpu_us) / Math.max(1, s.time_ms - prev.time_ms) / 1000 : null;
    return [w.id, w.pid, w.state, fmt(w.connections) + '<div class="bar"><div style="width:' + (100 * w.connections / maxConn).toFixed(1) + '%"></div></div>',
      cpu === null ? '-' : cpu.toFixed(1) + '%', w.broker];
  }));
  const lastMin = (get) => (old ? get(s) - get(old) : 0);
  /* only what happened: a quiet server shows a short table */
  const closes = Object.keys(s.closes).filter(c => s.closes[c]);
  rows($('close-table').tBodies[0], closes.map(c => [CLOSE_NAMES[c] ? c + ' <span class="dim">' + CLOSE_NAMES[c] + '</span>' : c,
    fmt(s.closes[c]), fmt(lastMin(x => x.closes[c]))]), 'no connection closed yet');
  const rej = Object.keys(s.refused).filter(r => s.refused[r]).map(r => ['handshake: ' + r.replace(/_/g, ' '), fmt(s.refused[r]), fmt(lastMin(x => x.refused[r]))]);
  const lim = Object.keys(s.limits).filter(r => s.limits[r]).map(r => [r.replace(/_/g, ' '), fmt(s.limits[r]), fmt(lastMin(x => x.limits[r]))]);
  rows($('reject-table').tBodies[0], rej.concat(lim), 'nothing refused, no limit hit');
}

function header(s) {
  $('uptime').textContent = fmtDuration(s.uptime);
  $('workers').textContent = s.workers.filter(w => w.state === 'active').length + '/' + s.workers.length;
  $('generation').textContent = s.config_generation;
  $('reloads').textContent = s.reloads;
  $('deaths').textContent = s.worker_deaths;
  const b = s.broker, el = $('broker');
  const live = s.workers.filter(w => w.state !== 'dead').length;
  el.textContent = b.kind === 'local' ? 'local ring' : b.connected === live ? 'redis connected' :
    b.connected ? 'redis degraded (' + b.connected + '/' + live + ')' : 'redis down';
  el.className = 'badge ' + (b.kind === 'local' || b.connected === live ? 'ok' : b.connected ? 'warn' : 'bad');
}

/* The charted figures of sample s, with rates against the sample before
 * it (p). History samples and live snapshots share these fields. */
function addPoint(s, p) {
  const t = s.time_ms / 1000;
  push('connections', t, s.connections);
  if (!p || s.time_ms <= p.time_ms) return null;
  const dt = (s.time_ms - p.time_ms) / 1000, r = k => Math.max(0, s[k] - p[k]) / dt;
  const rates = { hs: r('handshakes'), refused: r('refused_total'), in: r('messages_in'), out: r('messages_out'),
    bin: r('bytes_in'), bout: r('bytes_out'), deliveries: r('deliveries'), publishes: r('publishes') };
  for (const k of ['hs', 'refused', 'in', 'out', 'deliveries', 'publishes']) push(k, t, rates[k]);
  push('delay50', t, s.delay_p50); push('delay99', t, s.delay_p99);
  push('hs50', t, s.handshake_p50); push('hs99', t, s.handshake_p99);
  return rates;
}

function onHistory(samples) {
  for (const k in hist) delete hist[k];
  samples.forEach((s, i) => addPoint(s, samples[i - 1]));
  lastSample = samples.length ? samples[samples.length - 1] : null;
  prev = null;
}

function onSnapshot(s) {
  $('connections').textContent = fmt(s.connections);
  $('conn-max').textContent = 'of ' + fmt(s.max_connections) + ' max · ' + fmt(s.channels) + ' channels';
  const rates = addPoint(s, prev || lastSample);
  if (rates) {
    $('hs-rate').textContent = fmt(rates.hs);
    $('hs-refused').textContent = fmt(rates.refused) + ' refused/s';
    $('in-rate').textContent = fmt(rates.in);
    $('in-bytes').textContent = fmt(rates.bin, 'B/s');
    $('out-rate').textContent = fmt(rates.out);
    $('out-bytes').textContent = fmt(rates.bout, 'B/s');
    $('del-rate').textContent = fmt(rates.deliveries);
  }
  $('subs').textContent = fmt(s.subscriptions) + ' subscriptions';
  $('p99').textContent = fmtSeconds(s.delay_p99);
  $('p50').textContent = 'p50 ' + fmtSeconds(s.delay_p50);
  header(s);
  tables(s);
  minute.push(s);
  while (minute.length && minute[0].time_ms < s.time_ms - 60000) minute.shift();
  prev = s;
  document.querySelectorAll('canvas[data-chart]').forEach(draw);
}

function connect() {
  const link = $('link');
  const es = new EventSource('/dashboard/events' + location.search);
  es.onopen = () => { link.textContent = 'live'; link.className = 'badge ok'; };
  es.addEventListener('history', e => onHistory(JSON.parse(e.data)));
  es.onmessage = e => onSnapshot(JSON.parse(e.data));
  es.onerror = () => { link.textContent = 'reconnecting'; link.className = 'badge warn'; };
}

$('host').textContent = location.host;
window.addEventListener('resize', () => document.querySelectorAll('canvas[data-chart]').forEach(draw));
connect();
