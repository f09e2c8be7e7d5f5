//! HTTP beside gRPC on the node's port: `/metrics` (Prometheus), `/health` (the process is up),
//! `/ready` (storage open and the node joined: it serves requests), `/status` (JSON) and a
//! status page at `/` that draws live graphs from `/status` with no asset fetched from
//! elsewhere.
//!
//! The routes are an axum router merged with the gRPC services, so one listener (and, with TLS
//! on, one certificate) serves both: gRPC clients speak HTTP/2, browsers and Prometheus
//! HTTP/1.1 or HTTP/2.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::node::Node;
use crate::service::admin::{cluster_status, ring_info};

#[derive(Clone)]
struct HttpState {
    node: Arc<Node>,
    registry: Arc<Registry>,
}

/// The HTTP routes of `node`.
pub fn router(node: Arc<Node>) -> Router {
    let registry = Arc::new(crate::metrics::registry(Arc::clone(&node)));
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .with_state(HttpState { node, registry })
}

/// What a path nobody serves gets: gRPC's UNIMPLEMENTED for a gRPC request (an unknown
/// service or method), a plain 404 for anything else.
pub async fn not_found(request: axum::extract::Request) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/grpc"),
                (header::HeaderName::from_static("grpc-status"), "12"),
            ],
        )
            .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            format!(
                "no such path: {}; this node serves /, /status, /metrics, /health and /ready\n",
                request.uri().path()
            ),
        )
            .into_response()
    }
}

async fn metrics(State(s): State<HttpState>) -> Response {
    // Reading the engine's statistics is quick but touches locks: off the async threads.
    let registry = Arc::clone(&s.registry);
    match crate::blocking::spawn(move || crate::metrics::encode(&registry)).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn health(State(s): State<HttpState>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "node": s.node.id(),
        "uptime_seconds": s.node.uptime().as_secs(),
    }))
    .into_response()
}

async fn ready(State(s): State<HttpState>) -> Response {
    match s.node.check_serving() {
        Ok(()) => axum::Json(json!({"status": "ready", "node": s.node.id()})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({"status": "not ready", "node": s.node.id(), "reason": e.to_string()}),
            ),
        )
            .into_response(),
    }
}

async fn status(State(s): State<HttpState>) -> Response {
    let node = Arc::clone(&s.node);
    let Ok(body) = crate::blocking::spawn(move || status_json(&node)).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    axum::Json(body).into_response()
}

/// What `/status` reports: the node, the cluster as it sees it, the ring, its storage,
/// operations and counters.
pub fn status_json(node: &Node) -> serde_json::Value {
    let st = cluster_status(node);
    let ring = ring_info(node);
    let m = &node.metrics;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let status_name =
        |v: i32| distkv_cluster::NodeStatus::from_u32(v as u32).map_or("UNKNOWN", |s| s.name());
    let health = st.health.unwrap_or_default();
    let storage = st.storage.unwrap_or_default();
    let ae = st.anti_entropy.unwrap_or_default();
    json!({
        "node": {
            "id": node.id(),
            "address": node.config().advertise_address,
            "state": format!("{:?}", node.membership.local_state()).to_uppercase(),
            "serving": node.check_serving().is_ok(),
            "uptime_seconds": node.uptime().as_secs(),
        },
        "health": {
            "total_nodes": health.total_nodes,
            "alive_nodes": health.alive_nodes,
            "dead_nodes": health.dead_nodes,
            "availability_percentage": health.availability_percentage,
        },
        "nodes": st.nodes.iter().map(|n| json!({
            "node_id": n.node_id,
            "address": n.address,
            "status": status_name(n.status),
            "last_seen": n.last_seen,
            "generation": n.generation,
            "heartbeat": n.heartbeat,
            "tokens": n.tokens,
        })).collect::<Vec<_>>(),
        "ring": {
            "replicas": ring.replicas,
            "read_quorum": ring.read_quorum,
            "write_quorum": ring.write_quorum,
            "nodes": ring.nodes.iter().map(|n| json!({
                "node_id": n.node_id,
                "virtual_nodes": n.virtual_nodes,
                "ownership": n.ownership,
                "status": status_name(n.status),
            })).collect::<Vec<_>>(),
        },
        "requests": {
            "total": load(&m.requests),
            "micros_total": load(&m.request_micros),
            "quorum_failures": load(&m.quorum_failures),
            "quorum_successes": load(&m.quorum_successes),
            "read_repairs": load(&m.read_repairs),
            "speculative_reads": load(&m.speculative_reads),
            "hints_stored": load(&m.hints_stored),
            "hints_delivered": load(&m.hints_delivered),
            "siblings_returned": load(&m.siblings_returned),
        },
        "storage": {
            "reads": storage.reads,
            "writes": storage.writes,
            "sstables_per_level": storage.sstables_per_level,
            "sstable_bytes": storage.sstable_bytes,
            "compactions": storage.compactions,
            "cache_hit_rate": storage.cache_hit_rate,
            "memory_bytes": storage.memory_bytes,
            "memory_limit_bytes": storage.memory_limit_bytes,
            "write_amplification": storage.write_amplification,
        },
        "operations": st.operations.iter().map(|o| json!({
            "id": o.id,
            "kind": o.kind,
            "state": o.state,
            "steps_total": o.steps_total,
            "steps_done": o.steps_done,
            "keys": o.keys,
            "bytes": o.bytes,
            "started": o.started,
            "finished": o.finished,
            "detail": o.detail,
        })).collect::<Vec<_>>(),
        "anti_entropy": {
            "rounds": ae.rounds,
            "keys_compared": ae.keys_compared,
            "keys_repaired": ae.keys_repaired,
            "last_round": ae.last_round,
            "tombstones_purged": ae.tombstones_purged,
        },
    })
}

async fn page() -> Html<&'static str> {
    Html(STATUS_PAGE)
}

/// The status page: plain HTML, CSS and script in one document (it fetches only `/status`).
pub const STATUS_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DistKV node status</title>
<style>
  :root { --fg: #1d2733; --muted: #637083; --line: #d9dee5; --bg: #f6f8fa; --card: #fff;
          --alive: #1a7f37; --suspect: #bf8700; --dead: #cf222e; --other: #6e7781; --accent: #0969da; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 16px 24px; background: var(--card); border-bottom: 1px solid var(--line); display: flex; gap: 24px; align-items: baseline; flex-wrap: wrap; }
  header h1 { margin: 0; font-size: 20px; }
  header .sub { color: var(--muted); }
  main { padding: 16px 24px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
  section h2 { margin: 0 0 8px; font-size: 15px; }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); font-variant-numeric: tabular-nums; }
  th { color: var(--muted); font-weight: 600; }
  .badge { display: inline-block; padding: 0 8px; border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; }
  .ALIVE { background: var(--alive); } .SUSPECT { background: var(--suspect); } .DEAD { background: var(--dead); }
  .LEFT, .JOINING, .LEAVING, .UNKNOWN { background: var(--other); }
  .bar { height: 10px; background: var(--accent); border-radius: 5px; }
  svg { width: 100%; height: 120px; display: block; }
  .chart-label { color: var(--muted); font-size: 12px; display: flex; justify-content: space-between; }
  .kv { display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; }
  .kv span:nth-child(odd) { color: var(--muted); }
  #error { color: var(--dead); }
</style>
</head>
<body>
<header>
  <h1>DistKV</h1>
  <span class="sub" id="who">connecting…</span>
  <span class="sub" id="health"></span>
  <span id="error"></span>
</header>
<main>
  <section><h2>Nodes</h2>
    <table><thead><tr><th>Node</th><th>Address</th><th>Status</th><th>Last seen</th></tr></thead><tbody id="nodes"></tbody></table>
  </section>
  <section><h2>Ring ownership</h2>
    <div class="sub" id="quorum"></div>
    <table><tbody id="ring"></tbody></table>
  </section>
  <section><h2>Throughput</h2>
    <div class="chart-label"><span>requests / s</span><span id="tput-now"></span></div>
    <svg id="tput" viewBox="0 0 300 120" preserveAspectRatio="none"></svg>
  </section>
  <section><h2>Latency</h2>
    <div class="chart-label"><span>average ms per request</span><span id="lat-now"></span></div>
    <svg id="lat" viewBox="0 0 300 120" preserveAspectRatio="none"></svg>
  </section>
  <section><h2>Storage</h2>
    <div class="chart-label"><span>SSTable bytes</span><span id="sst-now"></span></div>
    <svg id="sst" viewBox="0 0 300 120" preserveAspectRatio="none"></svg>
    <div class="kv" id="storage"></div>
  </section>
  <section><h2>Operations and anti-entropy</h2>
    <table><tbody id="ops"></tbody></table>
    <div class="kv" id="ae"></div>
  </section>
</main>
<script>
"use strict";
const POINTS = 60, series = { tput: [], lat: [], sst: [] };
let last = null;
const el = id => document.getElementById(id);
const esc = s => String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));
function bytes(n) {
  const u = ["B","KB","MB","GB","TB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + u[i];
}
function push(name, v) { const s = series[name]; s.push(v); if (s.length > POINTS) s.shift(); }
function draw(name) {
  const s = series[name], max = Math.max(1e-9, ...s);
  const pts = s.map((v, i) => `${(i * 300 / (POINTS - 1)).toFixed(1)},${(115 - v / max * 110).toFixed(1)}`).join(" ");
  el(name).innerHTML = `<line x1="0" y1="115" x2="300" y2="115" stroke="#d9dee5"/>` +
    `<polyline fill="none" stroke="#0969da" stroke-width="2" points="${pts}"/>`;
}
function render(st) {
  const now = Date.now() / 1000;
  el("who").textContent = `${st.node.id} (${st.node.address}) · ${st.node.state}` + (st.node.serving ? "" : " · not serving");
  const h = st.health;
  el("health").textContent = `${h.total_nodes} nodes, ${h.alive_nodes} alive, ${h.dead_nodes} dead (${h.availability_percentage.toFixed(1)}% availability)`;
  el("nodes").innerHTML = st.nodes.map(n =>
    `<tr><td>${esc(n.node_id)}</td><td>${esc(n.address)}</td><td><span class="badge ${esc(n.status)}">${esc(n.status)}</span></td>` +
    `<td>${Math.max(0, Math.round(now - n.last_seen))} s ago</td></tr>`).join("");
  el("quorum").textContent = `N=${st.ring.replicas}, R=${st.ring.read_quorum}, W=${st.ring.write_quorum}`;
  el("ring").innerHTML = st.ring.nodes.map(n =>
    `<tr><td style="width:30%">${esc(n.node_id)}</td><td><div class="bar" style="width:${(n.ownership * 100).toFixed(1)}%"></div></td>` +
    `<td style="width:15%">${(n.ownership * 100).toFixed(1)}%</td></tr>`).join("");
  const r = st.requests;
  if (last) {
    const dt = Math.max(0.001, now - last.t), dn = r.total - last.total;
    push("tput", dn / dt);
    push("lat", dn > 0 ? (r.micros_total - last.micros) / dn / 1000 : 0);
  }
  last = { t: now, total: r.total, micros: r.micros_total };
  push("sst", st.storage.sstable_bytes);
  ["tput", "lat", "sst"].forEach(draw);
  const lastOf = n => series[n].length ? series[n][series[n].length - 1] : 0;
  el("tput-now").textContent = lastOf("tput").toFixed(1);
  el("lat-now").textContent = lastOf("lat").toFixed(2) + " ms";
  el("sst-now").textContent = bytes(st.storage.sstable_bytes);
  const s = st.storage;
  el("storage").innerHTML = [
    ["reads", s.reads], ["writes", s.writes], ["SSTables per level", s.sstables_per_level.join(" / ")],
    ["compactions", s.compactions], ["cache hit rate", (s.cache_hit_rate * 100).toFixed(1) + "%"],
    ["memory", bytes(s.memory_bytes) + (s.memory_limit_bytes ? " of " + bytes(s.memory_limit_bytes) : "")],
    ["write amplification", s.write_amplification.toFixed(2)],
  ].map(([k, v]) => `<span>${k}</span><span>${esc(v)}</span>`).join("");
  el("ops").innerHTML = st.operations.slice(-6).reverse().map(o =>
    `<tr><td>${esc(o.kind)}</td><td>${esc(o.state)}</td><td>${o.steps_done}/${o.steps_total}</td><td>${o.keys} keys</td><td>${esc(o.detail)}</td></tr>`).join("")
    || `<tr><td>no operations yet</td></tr>`;
  const a = st.anti_entropy;
  el("ae").innerHTML = [["rounds", a.rounds], ["keys compared", a.keys_compared], ["keys repaired", a.keys_repaired],
    ["tombstones purged", a.tombstones_purged], ["last complete round", a.last_round ? new Date(a.last_round * 1000).toLocaleString() : "never"]]
    .map(([k, v]) => `<span>${k}</span><span>${esc(v)}</span>`).join("");
}
async function tick() {
  try {
    const res = await fetch("/status", { cache: "no-store" });
    if (!res.ok) throw new Error(`/status: ${res.status}`);
    render(await res.json());
    el("error").textContent = "";
  } catch (e) {
    el("error").textContent = String(e.message || e);
  }
}
tick();
setInterval(tick, 2000);
</script>
</body>
</html>
"##;
