// The dashboard: one symbol, model and horizon; candles, forecasts with their band, leaderboard.
// Everything comes from the API (/meta, /health, /history, /metrics/latest). The initial choice
// can be given in the URL: /?symbol=ETH/USDT&model=ridge&horizon=6&range=1w
"use strict";

const HOUR_MS = 3600 * 1000;
const $ = (id) => document.getElementById(id);

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) {
    const error = body.error || {};
    throw new Error(`${url}: ${error.message || response.statusText}`);
  }
  return body;
}

function fillSelect(select, values, labels, chosen) {
  select.replaceChildren(
    ...values.map((value, i) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = labels ? labels[i] : value;
      option.selected = String(value) === String(chosen);
      return option;
    }),
  );
}

function fmt(value, digits = 4) {
  return value === null || value === undefined ? "-" : Number(value).toPrecision(digits);
}

function percent(value) {
  return value === null || value === undefined ? "-" : `${(100 * value).toFixed(1)}%`;
}

const state = { meta: null };

function choice() {
  return {
    symbol: $("symbol").value,
    model: $("model").value,
    horizon: Number($("horizon").value),
    range: $("range").value,
  };
}

async function showHealth() {
  const badge = $("health");
  try {
    const response = await fetch("/health");
    const health = await response.json();
    const status = response.ok ? health.status : "error";
    badge.className = `health ${status}`;
    badge.textContent = response.ok
      ? `${status}: newest candle ${health.latest_candle || "none"}` +
        (health.lag_hours ? `, ${health.lag_hours} h behind` : "")
      : `database unavailable: ${health.database}`;
  } catch (error) {
    badge.className = "health error";
    badge.textContent = `API unreachable: ${error.message}`;
  }
}

function bestModel(leaderboard, horizon) {
  const recent = leaderboard.filter((r) => r.horizon_h === horizon && r.window !== "all");
  recent.sort((a, b) => a.rank - b.rank);
  return recent.length ? recent[0].model : null;
}

function drawLeaderboard(rows, chosen) {
  const body = $("leaderboard").querySelector("tbody");
  body.replaceChildren(
    ...rows.map((row) => {
      const tr = document.createElement("tr");
      if (row.model === chosen.model) tr.className = "chosen";
      const cells = [
        row.window, row.rank, row.model, row.n, fmt(row.rmse), fmt(row.mae),
        fmt(row.r2_vs_zero, 3), percent(row.directional_accuracy), percent(row.coverage),
        fmt(row.skill_vs_zero, 3),
      ];
      for (const cell of cells) {
        const td = document.createElement("td");
        td.textContent = cell;
        tr.appendChild(td);
      }
      return tr;
    }),
  );
  $("leaderboard-caption").textContent =
    `${chosen.symbol}, ${chosen.horizon} h forecasts, ranked by RMSE`;
}

function drawChart(history, chosen) {
  const bars = history.data.raw_bars;
  const forecasts = history.data.predictions
    .filter((p) => p.prediction_horizon === chosen.horizon)
    .sort((a, b) => Date.parse(a.predicted_time) - Date.parse(b.predicted_time));
  const when = (p) => p.predicted_time;
  const traces = [
    {
      type: "candlestick",
      name: `${chosen.symbol} hourly`,
      x: bars.map((b) => b.timestamp),
      open: bars.map((b) => b.open),
      high: bars.map((b) => b.high),
      low: bars.map((b) => b.low),
      close: bars.map((b) => b.close),
      increasing: { line: { color: "#1f7a4d" } },
      decreasing: { line: { color: "#b83232" } },
    },
    {
      type: "scatter",
      mode: "lines",
      name: "90% interval",
      x: forecasts.map(when),
      y: forecasts.map((p) => p.ci_low),
      line: { width: 0 },
      hoverinfo: "skip",
      showlegend: false,
    },
    {
      type: "scatter",
      mode: "lines",
      name: "90% interval",
      x: forecasts.map(when),
      y: forecasts.map((p) => p.ci_high),
      fill: "tonexty",
      fillcolor: "rgba(49, 110, 200, 0.18)",
      line: { width: 0 },
      hoverinfo: "skip",
    },
    {
      type: "scatter",
      mode: "lines+markers",
      name: `${chosen.model} ${chosen.horizon} h forecast`,
      x: forecasts.map(when),
      y: forecasts.map((p) => p.predicted_value),
      line: { color: "#316ec8", width: 1.5 },
      marker: { size: 4 },
      customdata: forecasts.map((p) => [p.timestamp, p.ci_low, p.ci_high]),
      hovertemplate:
        "%{y:.6g} (%{customdata[1]:.6g} .. %{customdata[2]:.6g})<br>made at %{customdata[0]}" +
        "<extra></extra>",
    },
  ];
  const shapes = [];
  if (bars.length) {
    const lastClose = new Date(Date.parse(bars[bars.length - 1].timestamp) + HOUR_MS);
    shapes.push({
      type: "line", xref: "x", yref: "paper", x0: lastClose, x1: lastClose, y0: 0, y1: 1,
      line: { color: "#586074", width: 1, dash: "dot" },
    });
  }
  const layout = {
    margin: { l: 60, r: 20, t: 30, b: 40 },
    title: { text: `${chosen.symbol}: candles and ${chosen.model} forecasts`, font: { size: 14 } },
    xaxis: { type: "date", rangeslider: { visible: false } },
    yaxis: { title: { text: "price" }, fixedrange: false },
    legend: { orientation: "h", y: 1.02, x: 1, xanchor: "right", yanchor: "bottom" },
    shapes,
    annotations: bars.length
      ? [{ x: shapes[0].x0, y: 1, xref: "x", yref: "paper", text: "last close",
           showarrow: false, xanchor: "left", font: { size: 11, color: "#586074" } }]
      : [],
  };
  return Plotly.react("chart", traces, layout, { responsive: true, displaylogo: false });
}

async function refresh(event) {
  document.body.dataset.ready = "false";
  $("error").hidden = true;
  const chosen = choice();
  try {
    const metrics = await getJSON(
      `/metrics/latest?symbol=${encodeURIComponent(chosen.symbol)}&horizon=${chosen.horizon}`,
    );
    const leaderboard = metrics.data.leaderboard;
    if (!event && !new URLSearchParams(location.search).get("model")) {
      chosen.model = bestModel(leaderboard, chosen.horizon) || chosen.model;
      $("model").value = chosen.model;
    }
    const info = state.meta.data.symbols.find((s) => s.symbol === chosen.symbol);
    const params = new URLSearchParams({
      symbol: chosen.symbol, model: chosen.model, time_range: chosen.range, predictions: "all",
    });
    // the window ends at the newest stored candle, so a pipeline that is behind still shows
    if (info && info.latest_candle) {
      params.set("to_time", new Date(Date.parse(info.latest_candle) + HOUR_MS).toISOString());
    }
    const history = await getJSON(`/history?${params}`);
    drawLeaderboard(leaderboard, chosen);
    await drawChart(history, chosen);
    document.body.dataset.ready = "true";
  } catch (error) {
    $("error").textContent = error.message;
    $("error").hidden = false;
    document.body.dataset.ready = "error";
  }
}

async function start() {
  const asked = new URLSearchParams(location.search);
  try {
    state.meta = await getJSON("/meta");
  } catch (error) {
    $("error").textContent = error.message;
    $("error").hidden = false;
    document.body.dataset.ready = "error";
    return;
  }
  const meta = state.meta.data;
  const symbols = meta.symbols.map((s) => s.symbol);
  const wanted = (asked.get("symbol") || "").toUpperCase().replace("-", "/");
  fillSelect($("symbol"), symbols, null, symbols.includes(wanted) ? wanted : symbols[0]);
  fillSelect($("model"), meta.models, null, asked.get("model") || "ridge");
  fillSelect(
    $("horizon"), meta.horizons, meta.horizons.map((h) => `${h} h`),
    asked.get("horizon") || meta.horizons[0],
  );
  const ranges = Object.keys(meta.time_ranges);
  fillSelect($("range"), ranges, null, asked.get("range") || "1w");
  for (const id of ["symbol", "model", "horizon", "range"]) {
    $(id).addEventListener("change", refresh);
  }
  showHealth();
  await refresh();
}

start();
