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
const hist = {};      /* series name -> [[t, v], ...] */
const minute = [];    /* snapshots of the last minute, for "last minute" columns */
let prev = null;

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
  if (s === null || !isFinite(s)) return '-';
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

/* Quantile q of the observations between two cumulative histograms, by
 * linear interpolation inside the bucket; null when there were none. */
function quantile(bounds, now, before, q) {
  const d = now.buckets.map((c, i) => c - (before ? before.buckets[i] : 0));
  const total = d.reduce((x, y) => x + y, 0);
  if (!total) return null;
  let rank = q * total, lo = 0;
  for (let i = 0; i < d.length; i++) {
    const hi = i < bounds.length ? bounds[i] : bounds[bounds.length - 1] * 2;
    if (rank <= d[i]) return (lo + (hi - lo) * (d[i] ? rank / d[i] : 0)) / 1e6;
    rank -= d[i];
    lo = hi;
  }
  return lo / 1e6;
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
  const now = prev ? prev.time_ms / 1000 : 0;
  let max = 0;
  for (const n of names) for (const [, v] of hist[n] || []) if (v !== null && v > max) max = v;
  max = max > 0 ? niceCeil(max * 1.1) : 1;
  const left = 48, bottom = 16, top = 6, ph = h - bottom - top, pw = w - left - 4;
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#7d8a98';
  g.strokeStyle = '#26303b';
  g.lineWidth = 1;
  for (let i = 0; i <= 3; i++) {
    const y = top + ph - ph * i / 3;
    g.beginPath(); g.moveTo(left, Math.round(y) + .5); g.lineTo(w - 4, Math.round(y) + .5); g.stroke();
    const v = max * i / 3;
    g.fillText(seconds ? fmtSeconds(v) : fmt(v), 2, y + 4);
  }
  g.fillText('-5 min', left, h - 3);
  g.fillText('now', w - 26, h - 3);
  names.forEach((n, k) => {
    const pts = (hist[n] || []).filter(p => p[1] !== null);
    if (!pts.length) return;
    const x = t => left + pw * (1 - (now - t) / WINDOW_S);
    const y = v => top + ph - ph * v / max;
    g.beginPath();
    pts.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.strokeStyle = COLORS[def[k][1]];
    g.lineWidth = 1.6;
    g.stroke();
    if (k === 0) {
      g.lineTo(x(pts[pts.length - 1][0]), top + ph);
      g.lineTo(x(pts[0][0]), top + ph);
      g.closePath();
      g.fillStyle = 'rgba(79,179,255,0.10)';
      g.fill();
    }
  });
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 1.5, 2, 3, 5, 7.5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function rows(tbody, items) {
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
  rows($('close-table').tBodies[0], Object.keys(s.closes).map(c => [c, fmt(s.closes[c]), fmt(lastMin(x => x.closes[c]))]));
  const rej = Object.keys(s.refused).map(r => [r.replace(/_/g, ' '), fmt(s.refused[r]), fmt(lastMin(x => x.refused[r]))]);
  const lim = Object.keys(s.limits).map(r => [r.replace(/_/g, ' '), fmt(s.limits[r]), fmt(lastMin(x => x.limits[r]))]);
  rows($('reject-table').tBodies[0], rej.concat(lim));
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

function onSnapshot(s) {
  const t = s.time_ms / 1000;
  $('connections').textContent = fmt(s.connections);
  $('conn-max').textContent = 'of ' + fmt(s.max_connections) + ' max · ' + fmt(s.channels) + ' channels';
  push('connections', t, s.connections);
  if (prev && s.time_ms > prev.time_ms) {
    const dt = (s.time_ms - prev.time_ms) / 1000, r = k => (s[k] - prev[k]) / dt;
    const refused = Object.values(s.refused).reduce((a, b) => a + b, 0) - Object.values(prev.refused).reduce((a, b) => a + b, 0);
    push('hs', t, r('handshakes')); push('refused', t, refused / dt);
    push('in', t, r('messages_in')); push('out', t, r('messages_out'));
    push('deliveries', t, r('deliveries')); push('publishes', t, r('publishes'));
    const d50 = quantile(s.bounds_us, s.delay, prev.delay, 0.5), d99 = quantile(s.bounds_us, s.delay, prev.delay, 0.99);
    push('delay50', t, d50); push('delay99', t, d99);
    push('hs50', t, quantile(s.bounds_us, s.handshake, prev.handshake, 0.5));
    push('hs99', t, quantile(s.bounds_us, s.handshake, prev.handshake, 0.99));
    $('hs-rate').textContent = fmt(r('handshakes'));
    $('hs-refused').textContent = fmt(refused / dt) + ' refused/s';
    $('in-rate').textContent = fmt(r('messages_in'));
    $('in-bytes').textContent = fmt(r('bytes_in'), 'B/s');
    $('out-rate').textContent = fmt(r('messages_out'));
    $('out-bytes').textContent = fmt(r('bytes_out'), 'B/s');
    $('del-rate').textContent = fmt(r('deliveries'));
    $('subs').textContent = fmt(s.subscriptions) + ' subscriptions';
    $('p99').textContent = fmtSeconds(d99);
    $('p50').textContent = 'p50 ' + fmtSeconds(d50);
  }
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
  es.onmessage = e => onSnapshot(JSON.parse(e.data));
  es.onerror = () => { link.textContent = 'reconnecting'; link.className = 'badge warn'; };
}

window.addEventListener('resize', () => document.querySelectorAll('canvas[data-chart]').forEach(draw));
connect();
