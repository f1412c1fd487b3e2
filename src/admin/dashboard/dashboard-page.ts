/* The dashboard page: plain HTML, CSS and browser JavaScript, no build step. */

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tandem cluster</title>
<link rel="stylesheet" href="/dashboard/uPlot.min.css">
<link rel="stylesheet" href="/dashboard/app.css">
</head>
<body>
<header>
  <h1>Tandem <span id="cluster-name"></span></h1>
  <div id="status-line"><span id="conn" class="badge down">connecting</span> served by <b id="served-by">?</b> · Redis <span id="redis">?</span></div>
</header>
<main>
  <section id="map-section"><h2>Cluster</h2><div id="nodes"></div><div id="vips"></div></section>
  <section id="charts-section"><h2>Live</h2>
    <div class="charts">
      <div class="chart" id="chart-cps"><h3>Calls/s (INVITEs received)</h3></div>
      <div class="chart" id="chart-active"><h3>Active calls</h3></div>
      <div class="chart" id="chart-regs"><h3>Registrations</h3></div>
      <div class="chart" id="chart-pps"><h3>Media packets/s</h3></div>
    </div>
  </section>
  <section id="pbx-section"><h2>Back-end PBXs</h2><table id="pbx"><thead><tr><th>PBX</th><th>set</th><th>state</th><th>calls</th><th>seen by</th></tr></thead><tbody></tbody></table></section>
  <section id="events-section"><h2>Events</h2><ol id="events"></ol></section>
</main>
<script src="/dashboard/uPlot.iife.min.js"></script>
<script src="/dashboard/app.js"></script>
</body>
</html>
`;

export const DASHBOARD_CSS = `
:root { --bg:#f6f7f9; --card:#fff; --ink:#1d2430; --mute:#6b7480; --ok:#1f9d55; --bad:#d0342c; --warn:#c77c02; --line:#dde1e6; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--ink); }
header { display:flex; justify-content:space-between; align-items:center; padding:8px 16px; background:#1d2430; color:#fff; }
header h1 { font-size:18px; margin:0; } header h1 span { color:#9fb3c8; font-weight:normal; }
main { display:grid; grid-template-columns: minmax(0,1fr) 360px; grid-template-areas: "map events" "charts events" "pbx events"; gap:12px; padding:12px 16px; }
#map-section { grid-area:map; } #charts-section { grid-area:charts; } #pbx-section { grid-area:pbx; } #events-section { grid-area:events; }
section { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:8px 12px; }
h2 { font-size:13px; text-transform:uppercase; letter-spacing:.05em; color:var(--mute); margin:0 0 8px; }
h3 { font-size:12px; margin:0 0 4px; color:var(--mute); font-weight:600; }
#nodes { display:flex; flex-wrap:wrap; gap:8px; }
.node { border:2px solid var(--ok); border-radius:6px; padding:6px 10px; min-width:190px; }
.node.down { border-color:var(--bad); background:#fdf0ef; }
.node .id { font-weight:700; } .node .self { color:var(--mute); font-weight:normal; font-size:12px; }
.node .vip { display:inline-block; background:#e6f0ff; border-radius:3px; padding:0 4px; margin-right:4px; font-family:monospace; }
.node dl { display:grid; grid-template-columns:auto auto; gap:0 10px; margin:4px 0 0; font-size:12px; } .node dt { color:var(--mute); } .node dd { margin:0; text-align:right; }
#vips { margin-top:6px; font-size:12px; color:var(--mute); }
.badge { border-radius:3px; padding:1px 6px; font-size:12px; background:var(--ok); color:#fff; } .badge.down { background:var(--bad); } .badge.warn { background:var(--warn); }
.charts { display:grid; grid-template-columns:repeat(2, minmax(0,1fr)); gap:8px; }
table { border-collapse:collapse; width:100%; font-size:12px; } th, td { text-align:left; padding:2px 6px; border-bottom:1px solid var(--line); }
td.up { color:var(--ok); } td.down { color:var(--bad); }
#events { list-style:none; margin:0; padding:0; max-height:80vh; overflow:auto; font-size:12px; }
#events li { padding:3px 0; border-bottom:1px solid var(--line); } #events time { color:var(--mute); margin-right:6px; font-family:monospace; }
#events li[data-kind="node-down"], #events li[data-kind="pbx-down"], #events li[data-kind="redis-down"] { color:var(--bad); font-weight:600; }
#events li[data-kind="vip-moved"], #events li[data-kind="redis-failover"] { color:var(--warn); font-weight:600; }
@media (max-width: 1000px) { main { grid-template-columns:1fr; grid-template-areas:"map" "charts" "pbx" "events"; } .charts { grid-template-columns:1fr; } }
`;

export const DASHBOARD_JS = `'use strict';
(function () {
  var COLORS = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2', '#65a30d', '#dc2626'];
  var METRICS = [['cps', 'callsPerSec'], ['active', 'activeCalls'], ['regs', 'registrations'], ['pps', 'mediaPacketsPerSec']];
  var KEEP = 300;
  var state = { series: {}, events: [], snapshot: null, ticks: 0, charts: {}, chartNodes: '' };
  window.__tandem = state;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmtTime(ms) { return new Date(ms).toTimeString().slice(0, 8); }
  function fmtAge(ms) { return ms === undefined ? '?' : ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(1) + ' s'; }

  function renderNodes(s) {
    var box = document.getElementById('nodes');
    box.textContent = '';
    s.nodes.forEach(function (n) {
      var st = n.stats || {};
      var card = el('div', { 'class': 'node' + (n.live ? '' : ' down'), 'data-node': n.nodeId, 'data-live': String(n.live) });
      var title = el('div', { 'class': 'id' }, n.nodeId + ' ');
      title.appendChild(el('span', { 'class': 'badge' + (n.live ? '' : ' down') }, n.live ? 'up' : 'DOWN'));
      if (n.self) title.appendChild(el('span', { 'class': 'self' }, ' (this page)'));
      card.appendChild(title);
      var role = (n.meta && n.meta.role) || 'signalling';
      var vipLine = el('div', null, role + ' ');
      (n.vips || []).forEach(function (v) { vipLine.appendChild(el('span', { 'class': 'vip' }, v)); });
      card.appendChild(vipLine);
      var dl = el('dl');
      var pts = state.series[n.nodeId] || [], last = pts[pts.length - 1] || {};
      var rows = role === 'media'
        ? [['heartbeat', fmtAge(n.heartbeatAgeMs)], ['media sessions', st.mediaSessions], ['packets/s', n.live ? last.mediaPacketsPerSec : undefined], ['ng', st.ng && st.ng.join(' ')]]
        : [['heartbeat', fmtAge(n.heartbeatAgeMs)], ['active calls', st.activeCalls], ['early', st.earlyCalls], ['registrations', st.registrations],
           ['media sessions', st.mediaSessions], ['transactions', st.transactions]];
      rows.forEach(function (kv) {
        dl.appendChild(el('dt', null, kv[0])); dl.appendChild(el('dd', null, kv[1] === undefined ? '-' : String(kv[1])));
      });
      card.appendChild(dl);
      box.appendChild(card);
    });
    var vips = document.getElementById('vips');
    vips.textContent = s.vips.length ? 'VIPs: ' + s.vips.map(function (v) { return v.vip + ' → ' + (v.holder || 'nobody') + (v.epoch ? ' (epoch ' + v.epoch + ')' : ''); }).join(' · ') : 'no VIPs configured';
    document.getElementById('cluster-name').textContent = s.cluster;
    document.getElementById('served-by').textContent = s.nodeId;
    var r = s.redis, red = document.getElementById('redis');
    red.textContent = !r.configured ? 'not configured (single node)' : r.connected ? (r.mode || '') + ' ' + (r.address || '') + (r.latencyMs !== undefined ? ' · ' + r.latencyMs + ' ms' : '') + ' · outbox ' + r.outboxDepth + (r.replicas.length ? ' · replicas ' + r.replicas.map(function (x) { return x.address + ' lag ' + x.lagSec + 's'; }).join(', ') : '') : 'UNREACHABLE';
    red.className = r.configured && !r.connected ? 'badge down' : '';
  }

  function renderPbx(s) {
    var rows = {};
    s.nodes.forEach(function (n) {
      ((n.stats && n.stats.pbx) || []).forEach(function (p) {
        var k = p.set + ' ' + p.uri, row = rows[k] || (rows[k] = { uri: p.uri, set: p.set, state: p.state, up: p.up, calls: 0, by: [] });
        row.calls += p.activeCalls; row.by.push(n.nodeId); if (n.self) { row.state = p.state; row.up = p.up; }
      });
    });
    var tb = document.querySelector('#pbx tbody');
    tb.textContent = '';
    var keys = Object.keys(rows).sort();
    if (!keys.length) { var tr0 = el('tr'); tr0.appendChild(el('td', { colspan: '5' }, 'no dispatcher destinations')); tb.appendChild(tr0); }
    keys.forEach(function (k) {
      var r = rows[k], tr = el('tr', { 'data-pbx': r.uri });
      tr.appendChild(el('td', null, r.uri)); tr.appendChild(el('td', null, r.set));
      tr.appendChild(el('td', { 'class': r.up ? 'up' : 'down' }, r.state)); tr.appendChild(el('td', null, String(r.calls))); tr.appendChild(el('td', null, r.by.join(', ')));
      tb.appendChild(tr);
    });
  }

  function addEvent(e) {
    if (state.events.some(function (x) { return x.seq === e.seq; })) return;
    state.events.push(e);
    if (state.events.length > 300) state.events.shift();
    var li = el('li', { 'data-kind': e.kind, 'data-subject': e.subject });
    li.appendChild(el('time', null, fmtTime(e.atMs)));
    li.appendChild(document.createTextNode(e.text));
    var list = document.getElementById('events');
    list.insertBefore(li, list.firstChild);
    while (list.childNodes.length > 300) list.removeChild(list.lastChild);
  }

  function nodeIds() { return Object.keys(state.series).sort(); }

  function buildData(metric) {
    var ids = nodeIds(), ts = {};
    ids.forEach(function (id) { state.series[id].forEach(function (p) { ts[p.t] = true; }); });
    var xs = Object.keys(ts).map(Number).sort(function (a, b) { return a - b; }).slice(-KEEP);
    var data = [xs];
    ids.forEach(function (id) {
      var m = {}; state.series[id].forEach(function (p) { m[p.t] = p[metric]; });
      data.push(xs.map(function (t) { return t in m ? m[t] : null; }));
    });
    return data;
  }

  function renderCharts() {
    if (typeof uPlot === 'undefined') return;
    var ids = nodeIds(), key = ids.join(',');
    METRICS.forEach(function (mt) {
      var box = document.getElementById('chart-' + mt[0]);
      var data = buildData(mt[1]);
      if (state.chartNodes !== key || !state.charts[mt[0]]) {
        if (state.charts[mt[0]]) state.charts[mt[0]].destroy();
        var series = [{}].concat(ids.map(function (id, i) { return { label: id, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false }; }));
        var width = Math.max(280, box.clientWidth - 8);
        state.charts[mt[0]] = new uPlot({ width: width, height: 150, series: series, scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } }, legend: { show: true } }, data, box);
      } else {
        state.charts[mt[0]].setData(data);
      }
    });
    state.chartNodes = key;
  }

  function onMessage(msg) {
    if (msg.type === 'hello') {
      state.series = msg.series || {};
      msg.events.forEach(addEvent);
      state.snapshot = msg.snapshot;
      renderNodes(msg.snapshot); renderPbx(msg.snapshot); renderCharts();
    } else if (msg.type === 'tick') {
      state.ticks++;
      Object.keys(msg.points).forEach(function (id) {
        var arr = state.series[id] || (state.series[id] = []);
        var p = msg.points[id];
        if (!arr.length || arr[arr.length - 1].t !== p.t) arr.push(p);
        if (arr.length > KEEP) arr.shift();
      });
      state.snapshot = msg.snapshot;
      renderNodes(msg.snapshot); renderPbx(msg.snapshot); renderCharts();
    } else if (msg.type === 'event') {
      addEvent(msg.event);
    }
  }

  // Off loopback the feed needs the admin token: open the page as /#token=... (the fragment never
  // leaves the browser); it is kept for this tab only.
  var token = '';
  var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    token = decodeURIComponent(m[1]);
    try { sessionStorage.setItem('tandem-token', token); } catch (e) { /* private mode */ }
    history.replaceState(null, '', location.pathname);
  } else {
    try { token = sessionStorage.getItem('tandem-token') || ''; } catch (e) { token = ''; }
  }
  function b64url(s) {
    var bytes = new TextEncoder().encode(s), bin = '';
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
  }

  function connect() {
    var conn = document.getElementById('conn');
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/live';
    var ws = token ? new WebSocket(url, ['tandem-live', 'bearer.' + b64url(token)]) : new WebSocket(url);
    ws.onopen = function () { conn.textContent = 'live'; conn.className = 'badge'; };
    ws.onmessage = function (ev) { try { onMessage(JSON.parse(ev.data)); } catch (err) { console.error(err); } };
    ws.onclose = function () { conn.textContent = 'reconnecting'; conn.className = 'badge down'; setTimeout(connect, 2000); };
  }
  connect();
})();
`;
