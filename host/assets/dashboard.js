// The dashboard: signs in with an admin key, receives `snapshot(data)` once a second from the
// node's built-in admin hub (/dashboard/hub) over the official SignalR client, draws it, and
// deploys and rolls back plugins through the admin API. Nothing shows before the key is accepted.
"use strict";

(() => {
  const HISTORY = 60; // points per chart: one a second
  const KEY_STORE = "switchboard-admin-key";
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  };

  let key = null;
  let connection = null;
  const history = new Map(); // "tenant/hub" -> {t: [], in: [], out: [], inv: [], conn: []}
  let lastPlugins = "";
  let lastEvents = "";
  let lastHubOptions = "";

  function setLive(state, text) {
    $("live").dataset.state = state;
    $("live").textContent = text;
  }

  function showBoard(on) {
    $("board").hidden = !on;
    $("login").hidden = on;
    $("logout").hidden = !on;
  }

  // --- admin API ---

  async function admin(method, path, body, contentType) {
    const headers = { authorization: `Bearer ${key}` };
    if (contentType) headers["content-type"] = contentType;
    const response = await fetch(`/admin/v1${path}`, { method, headers, body });
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = { code: String(response.status), message: response.statusText };
    }
    if (!response.ok) {
      const e = new Error(data && data.message ? data.message : `HTTP ${response.status}`);
      e.code = data && data.code;
      e.status = response.status;
      throw e;
    }
    return data;
  }

  // --- sign in / out ---

  async function signIn(candidate) {
    key = candidate;
    $("login-error").textContent = "";
    try {
      await admin("GET", "/tenants"); // the admin API's own words when the key is refused
    } catch (e) {
      key = null;
      sessionStorage.removeItem(KEY_STORE);
      $("login-error").textContent = e.status === 401 || e.status === 403 ? `Not signed in: ${e.message}` : `Cannot reach the node: ${e.message}`;
      setLive("error", "Signed out");
      return;
    }
    sessionStorage.setItem(KEY_STORE, candidate);
    connect();
  }

  function signOut() {
    key = null;
    sessionStorage.removeItem(KEY_STORE);
    if (connection) connection.stop();
    connection = null;
    history.clear();
    $("hubs").replaceChildren();
    lastPlugins = lastEvents = lastHubOptions = "";
    showBoard(false);
    setLive("idle", "Signed out");
    $("key").value = "";
    $("key").focus();
  }

  function connect() {
    setLive("connecting", "Connecting…");
    connection = new signalR.HubConnectionBuilder()
      .withUrl("/dashboard/hub", {
        accessTokenFactory: () => key,
        transport: signalR.HttpTransportType.WebSockets,
      })
      .withAutomaticReconnect()
      .configureLogging(signalR.LogLevel.Warning)
      .build();
    connection.on("snapshot", render);
    connection.onreconnecting(() => setLive("connecting", "Reconnecting…"));
    connection.onreconnected(() => setLive("connected", "Live"));
    connection.onclose(() => {
      if (key) setLive("error", "Disconnected: reload to try again");
    });
    connection
      .start()
      .then(() => setLive("connected", "Live"))
      .catch((e) => {
        setLive("error", "Not connected");
        $("login-error").textContent = `The live feed refused the connection: ${e.message}`;
        showBoard(false);
      });
  }

  // --- rendering ---

  const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en", { maximumFractionDigits: 2 }));
  function duration(secs) {
    const d = Math.floor(secs / 86400), h = Math.floor((secs % 86400) / 3600), m = Math.floor((secs % 3600) / 60);
    return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${secs % 60}s` : `${secs}s`;
  }

  function facts(list, entries) {
    list.replaceChildren(
      ...entries.map(([label, value, cls]) => el("div", {}, el("dt", { textContent: label }), el("dd", { textContent: value, className: cls || "" }))),
    );
  }

  function render(data) {
    if ($("board").hidden) showBoard(true);
    const n = data.node;
    const bp = data.backplane;
    const nodeFacts = [
      ["Node", n.id],
      ["Version", n.version],
      ["Uptime", duration(n.uptime_secs)],
      ["Health", n.draining ? "shutting down" : "ok", n.draining ? "bad" : "good"],
      ["Ready", n.ready ? "ready" : "not ready", n.ready ? "good" : "bad"],
      ["Connections", fmt(n.connections)],
      ["Backplane", n.cluster ? (n.nats_connected ? "NATS connected" : "NATS disconnected") : "single node (memory)", n.cluster && !n.nats_connected ? "bad" : ""],
    ];
    if (n.cluster) {
      nodeFacts.push(["Backplane lag p99", bp.lag_p99_ms === null ? "–" : `${fmt(bp.lag_p99_ms)} ms`]);
      nodeFacts.push(["Lost / late", `${fmt(bp.lost_total)} / ${fmt(bp.late_total)}`]);
    }
    facts($("node"), nodeFacts);
    renderCluster(data.nodes || [], data.cluster_error);
    renderHubs(data.hubs, data.at_ms);
    renderPlugins(data.plugins);
    renderEvents(data.events);
  }

  function renderCluster(nodes, error) {
    $("cluster-error").textContent = error ? `Other nodes unknown: ${error}` : "";
    const rows = nodes.map((n) => {
      const health = n.down ? `down (silent ${duration(n.seen_secs_ago)})` : n.draining ? "shutting down" : "ok";
      const tr = el(
        "tr",
        {},
        el("th", { scope: "row", textContent: n.this ? `${n.id} (this node)` : n.id }),
        el("td", { textContent: health, className: n.down || n.draining ? "bad" : "good" }),
        el("td", { textContent: n.down ? "–" : n.ready ? "ready" : "not ready", className: !n.down && !n.ready ? "bad" : "" }),
        el("td", { textContent: duration(n.uptime_secs) }),
        el("td", { textContent: n.version }),
        el("td", { className: "connections", textContent: fmt(n.connections) }),
        el("td", { textContent: n.lag_p99_ms === null ? "–" : `${fmt(n.lag_p99_ms)} ms` }),
        el("td", { textContent: `${fmt(n.lost)} / ${fmt(n.late)}`, className: n.lost > 0 ? "bad" : "" }),
      );
      tr.dataset.node = n.id;
      tr.dataset.state = n.down ? "down" : n.draining ? "draining" : "up";
      return tr;
    });
    $("cluster").tBodies[0].replaceChildren(...rows);
  }

  function seriesOf(id) {
    if (!history.has(id)) history.set(id, { in: [], out: [], inv: [], conn: [] });
    return history.get(id);
  }

  function push(list, value) {
    list.push(value);
    if (list.length > HISTORY) list.shift();
  }

  function hubCard(id) {
    const card = el("article", { className: "card", id: `hub-${id}` });
    card.dataset.hub = id;
    const title = el("h3", { textContent: id });
    const list = el("dl", { className: "facts" });
    const msgChart = el("canvas", { className: "chart msg-chart", role: "img" });
    const connChart = el("canvas", { className: "chart conn-chart", role: "img" });
    const legend1 = el("ul", { className: "legend" }, el("li", { className: "in", textContent: "in/s" }), el("li", { className: "out", textContent: "out/s" }), el("li", { className: "inv", textContent: "invocations/s" }));
    const legend2 = el("ul", { className: "legend" }, el("li", { className: "conn", textContent: "connections" }));
    card.append(title, list, msgChart, legend1, connChart, legend2);
    return card;
  }

  function renderHubs(hubs, atMs) {
    const box = $("hubs");
    const seen = new Set();
    for (const h of hubs) {
      const id = `${h.tenant}/${h.hub}`;
      seen.add(id);
      let card = box.querySelector(`[data-hub="${CSS.escape(id)}"]`);
      if (!card) {
        card = hubCard(id);
        box.append(card);
      }
      const s = seriesOf(id);
      push(s.in, h.in_per_sec);
      push(s.out, h.out_per_sec);
      push(s.inv, h.invocations_per_sec);
      push(s.conn, h.connections.total);
      const c = h.connections;
      const by = (o) => Object.entries(o || {}).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(", ") || "–";
      facts(card.querySelector("dl"), [
        ["Connections", fmt(c.total)],
        ["Transports", by(c.transports)],
        ["Protocols", by(c.protocols)],
        ["In / s", fmt(h.in_per_sec)],
        ["Out / s", fmt(h.out_per_sec)],
        ["Invocations / s", fmt(h.invocations_per_sec)],
        ["p99", h.p99_ms === null ? "–" : `${fmt(h.p99_ms)} ms`],
        ["Errors", fmt(h.errors_total), h.errors_total > 0 ? "bad" : ""],
        ["Limit hits", fmt(h.limit_hits_total), h.limit_hits_total > 0 ? "bad" : ""],
      ]);
      draw(card.querySelector(".msg-chart"), [
        [s.in, "--accent"],
        [s.out, "--ok"],
        [s.inv, "--warn"],
      ], `${id} messages per second, last ${s.in.length} s: in ${h.in_per_sec}, out ${h.out_per_sec}, invocations ${h.invocations_per_sec}`);
      draw(card.querySelector(".conn-chart"), [[s.conn, "--accent"]], `${id} connections, last ${s.conn.length} s: now ${c.total}`);
    }
    for (const card of [...box.children]) {
      if (!seen.has(card.dataset.hub)) card.remove();
    }
    box.dataset.at = String(atMs);
  }

  function draw(canvas, series, label) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.floor(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.floor(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const styles = getComputedStyle(document.documentElement);
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, width, height);
    const max = Math.max(1, ...series.flatMap(([values]) => values));
    g.strokeStyle = styles.getPropertyValue("--line");
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(0, height - 0.5);
    g.lineTo(width, height - 0.5);
    g.stroke();
    g.fillStyle = styles.getPropertyValue("--muted");
    g.font = `${11 * ratio}px system-ui, sans-serif`;
    g.fillText(fmt(max), 4 * ratio, 12 * ratio);
    for (const [values, color] of series) {
      g.strokeStyle = styles.getPropertyValue(color);
      g.lineWidth = 2 * ratio;
      g.beginPath();
      values.forEach((v, i) => {
        const x = width - (values.length - 1 - i) * (width / (HISTORY - 1));
        const y = height - 2 * ratio - (v / max) * (height - 16 * ratio);
        if (i === 0) g.moveTo(x, y);
        else g.lineTo(x, y);
      });
      g.stroke();
    }
    canvas.setAttribute("aria-label", label);
    canvas.dataset.points = String(Math.max(...series.map(([values]) => values.length)));
    canvas.dataset.max = String(Math.max(0, ...series.flatMap(([values]) => values)));
    canvas.dataset.last = series.map(([values]) => values[values.length - 1] ?? 0).join(",");
  }

  function renderPlugins(plugins) {
    const text = JSON.stringify(plugins);
    if (text === lastPlugins) return;
    lastPlugins = text;
    const options = plugins.map((p) => `${p.tenant}/${p.hub}`);
    if (options.join() !== lastHubOptions) {
      lastHubOptions = options.join();
      const select = $("deploy-hub");
      const chosen = select.value;
      select.replaceChildren(...options.map((o) => el("option", { value: o, textContent: o })));
      if (options.includes(chosen)) select.value = chosen;
    }
    const rows = [];
    for (const p of plugins) {
      const id = `${p.tenant}/${p.hub}`;
      const versions = p.versions.length ? [...p.versions].reverse() : [{ version: p.current, sha256: p.sha256, size: null, deployed_at: "", source: "", current: true }];
      versions.forEach((v, i) => {
        const action = el("td");
        if (!v.current && p.versions.length) {
          const button = el("button", { type: "button", className: "secondary rollback", textContent: `Roll back to v${v.version}` });
          button.dataset.hub = id;
          button.dataset.version = String(v.version);
          action.append(button);
        }
        const row = el(
          "tr",
          { className: v.current ? "current" : "" },
          el("th", { scope: "row", textContent: i === 0 ? id : "" }),
          el("td", { textContent: `v${v.version}${v.current ? " (serving)" : ""}` }),
          el("td", { className: "sha", textContent: (v.sha256 || "").slice(0, 12), title: v.sha256 || "" }),
          el("td", { textContent: v.size === null ? "–" : `${fmt(v.size)} B` }),
          el("td", { textContent: v.deployed_at || "" }),
          el("td", { textContent: v.source || "" }),
          action,
        );
        row.dataset.hub = id;
        row.dataset.version = String(v.version);
        rows.push(row);
      });
    }
    const focused = document.activeElement && document.activeElement.classList.contains("rollback")
      ? `${document.activeElement.dataset.hub}#${document.activeElement.dataset.version}` : null;
    $("plugins").tBodies[0].replaceChildren(...rows);
    if (focused) {
      const [hub, version] = focused.split("#");
      const again = $("plugins").querySelector(`button.rollback[data-hub="${CSS.escape(hub)}"][data-version="${CSS.escape(version)}"]`);
      if (again) again.focus();
    }
  }

  function renderEvents(events) {
    const text = JSON.stringify(events);
    if (text === lastEvents) return;
    lastEvents = text;
    $("events").replaceChildren(
      ...[...events].reverse().map((e) => {
        const at = new Date(e.at_ms);
        return el(
          "li",
          {},
          el("time", { dateTime: at.toISOString(), textContent: at.toLocaleTimeString() }),
          el("span", { className: "kind", textContent: e.kind }),
          document.createTextNode(e.text),
        );
      }),
    );
  }

  // --- actions ---

  function split(id) {
    const i = id.indexOf("/");
    return [id.slice(0, i), id.slice(i + 1)];
  }

  $("deploy-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("deploy-error").textContent = "";
    $("deploy-result").textContent = "";
    const file = $("deploy-file").files[0];
    const id = $("deploy-hub").value;
    if (!file || !id) return;
    const [tenant, hub] = split(id);
    $("deploy-button").disabled = true;
    try {
      const r = await admin("POST", `/tenants/${encodeURIComponent(tenant)}/hubs/${encodeURIComponent(hub)}/deploy`, file, "application/wasm");
      $("deploy-result").textContent = r.changed
        ? `Deployed ${id} version ${r.version} (${r.sha256.slice(0, 12)}, ${fmt(r.size)} B).`
        : `${id} already serves these bytes (version ${r.version}).`;
      $("deploy-file").value = "";
    } catch (e) {
      $("deploy-error").textContent = `Deploy refused (${e.code || e.status}): ${e.message}`;
    } finally {
      $("deploy-button").disabled = false;
    }
  });

  $("plugins").addEventListener("click", async (event) => {
    const button = event.target.closest("button.rollback");
    if (!button) return;
    $("deploy-error").textContent = "";
    const [tenant, hub] = split(button.dataset.hub);
    const version = Number(button.dataset.version);
    try {
      const r = await admin("POST", `/tenants/${encodeURIComponent(tenant)}/hubs/${encodeURIComponent(hub)}/rollback`, JSON.stringify({ version }), "application/json");
      $("deploy-result").textContent = `${button.dataset.hub} rolled back: version ${r.version} serves.`;
    } catch (e) {
      $("deploy-error").textContent = `Rollback refused (${e.code || e.status}): ${e.message}`;
    }
  });

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const candidate = $("key").value.trim();
    if (candidate) signIn(candidate);
  });
  $("logout").addEventListener("click", signOut);

  // A sign-in link (`/dashboard#key=KEY`, as `./dev serve` prints): the fragment never reaches the
  // server; it is taken off the address at once so it stays out of history and bookmarks.
  const linked = new URLSearchParams(location.hash.slice(1)).get("key");
  if (linked) window.history.replaceState(null, "", location.pathname + location.search);
  const stored = linked || sessionStorage.getItem(KEY_STORE);
  if (stored) signIn(stored);
  else $("key").focus();
})();
