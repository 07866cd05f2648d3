// The dashboard: one symbol, model and horizon; candles, forecasts with their band, leaderboard,
// and the model's backtest (equity curves against buy-and-hold, costs beside them).
// Everything comes from the API (/meta, /health, /history, /metrics/latest, /backtest/equity). The initial choice
// can be given in the URL: /?symbol=ETH/USDT&model=ridge&horizon=6&range=1w
//
// Every time is UTC and handed to Plotly as an ISO string: Plotly draws a Date object in the
// browser's time zone but an ISO string as written, so mixing the two moves marks by hours.
"use strict";

const HOUR_MS = 3600 * 1000;
const $ = (id) => document.getElementById(id);

const state = {
  meta: null, notices: [], firstLoad: true,
  backtest: { rule: "sign", window: null },  // the panel's own choices; null: the recent window
};  // prettier-ignore

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

// "2025-01-23T23:00:00+00:00" (or a ms count) -> "2025-01-23 23:00 UTC", whatever the
// browser's time zone
function utcHour(time) {
  const ms = typeof time === "number" ? time : Date.parse(time);
  return `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

// the quote currency prices are in: USDT for BTC/USDT
function quoteCurrency(symbol) {
  return symbol.includes("/") ? symbol.split("/")[1] : "";
}

// plain digits with enough decimals for about 6 significant ones (BTC: 2, DOGE: 6): Plotly's
// default would print 106460 as "106.46k"
function priceDecimals(price) {
  if (!(price > 0)) return 2;
  return Math.min(8, Math.max(2, 5 - Math.floor(Math.log10(price))));
}

function priceText(value, decimals) {
  return Number(value).toLocaleString("en-US", {
    minimumFractionDigits: decimals, maximumFractionDigits: decimals,
  });
}

// 0.9 -> "90%", 0.975 -> "97.5%"
function levelText(level) {
  return `${Number((100 * level).toFixed(1))}%`;
}

function hasInterval(forecast) {
  // the API leaves ci_low/ci_high out when a forecast has no interval
  return forecast.ci_low !== undefined && forecast.ci_high !== undefined;
}

function showNotices() {
  const notice = $("notice");
  notice.textContent = state.notices.join(" ");
  notice.hidden = state.notices.length === 0;
}

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

function bestModel(leaderboard, horizon, offered) {
  const recent = leaderboard.filter(
    (r) => r.horizon_h === horizon && r.window !== "all" && offered.includes(r.model),
  );
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
        percent(row.width_share), fmt(row.skill_vs_zero, 3),
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

// the /history parameters of the chosen symbol and range; the window ends at the symbol's
// newest stored candle, so a pipeline that is behind still shows
function windowParams(chosen) {
  const params = new URLSearchParams({ symbol: chosen.symbol, time_range: chosen.range });
  const info = state.meta.data.symbols.find((s) => s.symbol === chosen.symbol);
  if (info && info.latest_candle) {
    params.set("to_time", new Date(Date.parse(info.latest_candle) + HOUR_MS).toISOString());
  }
  return params;
}

// the models with forecasts of the chosen symbol and horizon in the window, in /meta's order:
// predictions=newest gives one forecast per model and horizon that has any
async function offeredModels(chosen) {
  const params = windowParams(chosen);
  params.set("predictions", "newest");
  const newest = await getJSON(`/history?${params}`);
  const present = new Set(
    newest.data.predictions
      .filter((p) => p.prediction_horizon === chosen.horizon)
      .map((p) => p.model),
  );
  return state.meta.data.models.filter((m) => present.has(m));
}

// the model asked for in the page's URL, an alias (linear_regression) resolved to its zoo name;
// a name that is neither gets a notice and null
function urlModel() {
  const asked = new URLSearchParams(location.search).get("model");
  if (!asked) return null;
  const { models, aliases } = state.meta.data;
  const model = aliases[asked] || asked;
  if (models.includes(model)) return model;
  state.notices.push(`Unknown model "${asked}" in the URL (known: ${models.join(", ")}).`);
  return null;
}

// the model to show among those offered: the user's or URL's choice if it has forecasts,
// else the best ranked; a choice that cannot be shown is said, not silently replaced
function pickModel(wanted, offered, leaderboard, chosen) {
  if (wanted && offered.includes(wanted)) return wanted;
  const fallback = bestModel(leaderboard, chosen.horizon, offered) || offered[0] || null;
  if (wanted && fallback) {
    state.notices.push(
      `${wanted} has no ${chosen.horizon} h forecasts for ${chosen.symbol} in this range: ` +
        `showing ${fallback}.`,
    );
  }
  return fallback;
}

function bandTraces(banded, level) {
  const x = banded.map((p) => p.predicted_time);
  const name = `${levelText(level)} interval`;
  return [
    { type: "scatter", mode: "lines", name, x, y: banded.map((p) => p.ci_low),
      line: { width: 0 }, hoverinfo: "skip", showlegend: false },
    { type: "scatter", mode: "lines", name, x, y: banded.map((p) => p.ci_high),
      fill: "tonexty", fillcolor: "rgba(49, 110, 200, 0.18)", line: { width: 0 },
      hoverinfo: "skip" },
  ];  // prettier-ignore
}

function forecastTrace(forecasts, chosen, level, decimals) {
  const quote = quoteCurrency(chosen.symbol);
  const banded = forecasts.some(hasInterval);
  const interval = (p) =>
    hasInterval(p)
      ? `${levelText(level)} interval: ${priceText(p.ci_low, decimals)} .. ` +
        `${priceText(p.ci_high, decimals)} ${quote}`
      : "no interval";
  return {
    type: "scatter",
    mode: "lines+markers",
    name: `${chosen.model} ${chosen.horizon} h forecast${banded ? "" : " (no interval)"}`,
    x: forecasts.map((p) => p.predicted_time),
    y: forecasts.map((p) => p.predicted_value),
    line: { color: "#316ec8", width: 1.5 },
    marker: { size: 4 },
    customdata: forecasts.map((p) => [interval(p), utcHour(p.predicted_time), utcHour(p.timestamp)]),
    hovertemplate:
      `${chosen.model}: %{y:,.${decimals}f} ${quote}<br>%{customdata[0]}` +
      "<br>close of the candle of %{customdata[1]}" +
      "<br>made at the close of %{customdata[2]}<extra></extra>",
  };
}

function candleTrace(bars, chosen) {
  return {
    type: "candlestick",
    name: `${chosen.symbol} hourly`,
    x: bars.map((b) => b.timestamp),
    open: bars.map((b) => b.open),
    high: bars.map((b) => b.high),
    low: bars.map((b) => b.low),
    close: bars.map((b) => b.close),
    increasing: { line: { color: "#1f7a4d" } },
    decreasing: { line: { color: "#b83232" } },
  };
}

// the dotted line at the close of the last candle (an hour after its open), as a UTC string
function lastCloseMarks(bars) {
  if (!bars.length) return { shapes: [], annotations: [] };
  const x = new Date(Date.parse(bars[bars.length - 1].timestamp) + HOUR_MS).toISOString();
  return {
    shapes: [{ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1,
               line: { color: "#586074", width: 1, dash: "dot" } }],
    annotations: [{ x, y: 1, xref: "x", yref: "paper", text: "last close", showarrow: false,
                    xanchor: "left", font: { size: 11, color: "#586074" } }],
  };  // prettier-ignore
}

// the note under the chart says whether a band is drawn, and at which level
function describeBand(forecasts, chosen, level) {
  const banded = forecasts.filter(hasInterval).length;
  let text;
  if (!forecasts.length) text = "There are no forecasts to draw.";
  else if (!banded) {
    text = `${chosen.model} has no ${levelText(level)} interval at ${chosen.horizon} h (too ` +
      "few held-out errors to calibrate one), so no band is drawn.";
  } else {
    text = `The band is the forecast's ${levelText(level)} interval` +
      (banded < forecasts.length ? ` (${forecasts.length - banded} forecasts have none).` : ".");
  }
  $("band-note").textContent = text;
  document.querySelector(".note .h").textContent = chosen.horizon;
}

function drawChart(history, chosen) {
  const bars = history.data.raw_bars;
  const level = state.meta.data.interval_level;
  const forecasts = history.data.predictions
    .filter((p) => p.prediction_horizon === chosen.horizon)
    .sort((a, b) => Date.parse(a.predicted_time) - Date.parse(b.predicted_time));
  const decimals = priceDecimals(bars.length ? bars[bars.length - 1].close : NaN);
  const banded = forecasts.filter(hasInterval);
  const traces = [candleTrace(bars, chosen)];
  if (banded.length) traces.push(...bandTraces(banded, level));
  if (forecasts.length) traces.push(forecastTrace(forecasts, chosen, level, decimals));
  describeBand(forecasts, chosen, level);
  const priceFormat = `,.${decimals}f`;
  const layout = {
    margin: { l: 70, r: 20, t: 40, b: 40 },
    title: { text: `${chosen.symbol}: candles and ${chosen.model || "no"} forecasts`,
             font: { size: 14 } },
    xaxis: { type: "date", rangeslider: { visible: false }, title: { text: "time (UTC)" },
             hoverformat: "%Y-%m-%d %H:%M UTC" },
    yaxis: { title: { text: `price (${quoteCurrency(chosen.symbol)})` }, fixedrange: false,
             tickformat: ",", hoverformat: priceFormat },
    // below the plot: above it, a legend that wraps on a narrow screen covers the title
    // (traceorder: a filled band would otherwise reverse the entries)
    legend: { orientation: "h", x: 0, xanchor: "left", y: -0.2, yanchor: "top",
              traceorder: "normal" },
    ...lastCloseMarks(bars),
  };  // prettier-ignore
  return Plotly.react("chart", traces, layout, { responsive: true, displaylogo: false });
}

// -- the backtest panel: the chosen model's forecasts traded by a rule, against buy-and-hold --

const RULES = {
  sign: "long when the forecast is up, short when it is down",
  edge: "only when the forecast's move exceeds the round-trip cost",
  interval: "only when the forecast's interval excludes no change",
};
const SIDES = { long_short: "long or short", long_only: "long or cash (never short)" };

// 10 -> "10", 2.5 -> "2.5": basis points as stored
function bpsText(value) {
  return String(Number(value));
}

function signedPercent(value) {
  if (value === null || value === undefined) return "-";
  const text = `${(100 * value).toFixed(2)}%`;
  return value > 0 ? `+${text}` : text;
}

// the panel's message instead of its chart and figures (nothing backtested yet, or unreadable)
function showBacktestMessage(text) {
  $("backtest-empty").textContent = text;
  $("backtest-empty").hidden = false;
  $("backtest-body").hidden = true;
  Plotly.purge("equity");
}

// GET /backtest/equity of the chosen model, horizon and the panel's rule and window; a window
// or rule the summary no longer holds falls back to its defaults
async function fetchBacktest(chosen) {
  const params = new URLSearchParams({
    symbol: chosen.symbol, model: chosen.model, horizon: chosen.horizon,
    rule: state.backtest.rule,
  });  // prettier-ignore
  if (state.backtest.window) params.set("window", state.backtest.window);
  const response = await fetch(`/backtest/equity?${params}`);
  const body = await response.json();
  if (response.status === 404 && body.error && body.error.code === "unknown_backtest_window") {
    state.backtest.window = null;
    return fetchBacktest(chosen);
  }
  if (!response.ok) throw new Error((body.error && body.error.message) || response.statusText);
  const { rules } = body.metadata;
  if (rules.length && !rules.includes(state.backtest.rule)) {
    state.backtest.rule = rules.includes("sign") ? "sign" : rules[0];
    return fetchBacktest(chosen);
  }
  return body;
}

function backtestControls(metadata) {
  const rules = Object.keys(RULES).filter((r) => metadata.rules.includes(r));
  fillSelect($("backtest-rule"), rules, null, metadata.rule);
  fillSelect($("backtest-window"), metadata.windows, null, metadata.window);
}

function equityTraces(row, chosen) {
  const { time, strategy, buy_and_hold: hold, flat } = row.equity;
  const hover = (name) => `${name}: %{y:.4f}<br>%{x}<extra></extra>`;
  const name = `${chosen.model} ${chosen.horizon} h, ${row.rule} rule, after costs`;
  return [
    { type: "scatter", mode: "lines", name, x: time, y: strategy,
      line: { color: "#316ec8", width: 2 }, hovertemplate: hover(chosen.model) },
    { type: "scatter", mode: "lines", name: "buy and hold", x: time, y: hold,
      line: { color: "#1f7a4d", width: 1.5 }, hovertemplate: hover("buy and hold") },
    { type: "scatter", mode: "lines", name: "flat (cash)", x: time, y: flat,
      line: { color: "#586074", width: 1, dash: "dot" }, hovertemplate: hover("cash") },
  ];  // prettier-ignore
}

function drawBacktestFacts(row, chosen, count) {
  const fee = Number(row.fee_bps);
  const slippage = Number(row.slippage_bps);
  $("backtest-rule-text").textContent =
    `Rule: ${row.rule}, ${RULES[row.rule] || ""}; ${SIDES[row.sides] || row.sides}.`;
  $("backtest-costs").textContent =
    `Costs: fees ${bpsText(fee)} bps per side, slippage ${bpsText(slippage)} bps per side ` +
    `(${bpsText(2 * (fee + slippage))} bps a round trip), paid on every change of position.`;
  const figures = [
    [`${chosen.model} (${row.rule} rule)`, row.total_return, row.sharpe, row.max_drawdown],
    ["buy and hold", row.bh_total_return, row.bh_sharpe, row.bh_max_drawdown],
    ["flat (cash)", 0, null, 0],
  ];
  $("backtest-metrics").querySelector("tbody").replaceChildren(
    ...figures.map(([name, total, sharpe, drawdown]) => {
      const tr = document.createElement("tr");
      for (const cell of [name, signedPercent(total), fmt(sharpe, 3), signedPercent(drawdown)]) {
        const td = document.createElement("td");
        td.textContent = cell;
        tr.appendChild(td);
      }
      return tr;
    }),
  );
  const tests = row.sharpe_p_vs_zero === null
    ? `Sharpe ratio not tested: ${row.test_note}.`
    : `Sharpe > 0: p = ${fmt(row.sharpe_p_vs_zero, 2)}` +
      (row.beats_zero ? " (significant)" : "") +
      `; Sharpe > buy and hold's: p = ${fmt(row.sharpe_p_vs_hold, 2)}` +
      (row.beats_buy_and_hold ? " (significant)." : ".");  // prettier-ignore
  const mixed = count > 1
    ? ` This window was traded with ${count} cost settings; shown: the one with most hours.`
    : "";  // prettier-ignore
  $("backtest-tests").textContent = tests + mixed;
}

// the panel for the chosen symbol, model and horizon; it says why when there is nothing to
// draw, and never fails the page
async function drawBacktest(chosen) {
  $("backtest-caption").textContent = "";
  if (!chosen.model) {
    showBacktestMessage(`No model has ${chosen.horizon} h forecasts to backtest.`);
    return;
  }
  let body;
  try {
    body = await fetchBacktest(chosen);
  } catch (error) {
    showBacktestMessage(`The backtest could not be read: ${error.message}`);
    return;
  }
  const { metadata, data } = body;
  backtestControls(metadata);
  $("backtest-controls").hidden = !metadata.windows.length;
  if (!data.length) {
    showBacktestMessage(
      metadata.windows.length
        ? `No backtest of ${chosen.model}'s ${chosen.horizon} h forecasts for ${chosen.symbol} ` +
          `by the ${metadata.rule} rule yet: the backtest assets have not traded them.`
        : `Nothing has been backtested for ${chosen.symbol} yet: the backtest and ` +
          "backtest_summary assets (evaluate_job) trade the forecasts once they are scored.",
    );
    return;
  }
  const row = data.reduce((most, r) => (r.hours > most.hours ? r : most));
  $("backtest-empty").hidden = true;
  $("backtest-body").hidden = false;
  $("backtest-caption").textContent =
    `${chosen.symbol}, ${chosen.model} ${chosen.horizon} h forecasts, window ${row.window}: ` +
    `${utcHour(row.first_hour)} .. ${utcHour(Date.parse(row.last_hour) + HOUR_MS)} ` +
    `(${row.hours} hours)`;
  drawBacktestFacts(row, chosen, data.length);
  const layout = {
    margin: { l: 60, r: 20, t: 40, b: 40 },
    title: { text: `What 1 ${quoteCurrency(chosen.symbol) || "unit"} became`,
             font: { size: 14 } },
    xaxis: { type: "date", title: { text: "time (UTC)" }, hoverformat: "%Y-%m-%d %H:%M UTC" },
    yaxis: { title: { text: "equity (start = 1)" }, tickformat: ".3f" },
    legend: { orientation: "h", x: 0, xanchor: "left", y: -0.2, yanchor: "top" },
  };  // prettier-ignore
  await Plotly.react("equity", equityTraces(row, chosen), layout,
                     { responsive: true, displaylogo: false });  // prettier-ignore
}

// the panel's own rule or window chosen: only the panel is drawn again
async function refreshBacktest() {
  document.body.dataset.ready = "false";
  state.backtest = { rule: $("backtest-rule").value, window: $("backtest-window").value };
  await drawBacktest(choice());
  document.body.dataset.ready = "true";
}

async function refresh(event) {
  document.body.dataset.ready = "false";
  $("error").hidden = true;
  if (event) state.notices = [];  // the URL's notices hold until the user chooses
  const chosen = choice();
  try {
    const metrics = await getJSON(
      `/metrics/latest?symbol=${encodeURIComponent(chosen.symbol)}&horizon=${chosen.horizon}`,
    );
    const leaderboard = metrics.data.leaderboard;
    const offered = await offeredModels(chosen);
    const wanted = state.firstLoad ? urlModel() : chosen.model;
    chosen.model = pickModel(wanted, offered, leaderboard, chosen);
    state.firstLoad = false;
    fillSelect($("model"), offered, null, chosen.model);
    if (!offered.length) {
      state.notices.push(`No model has ${chosen.horizon} h forecasts for ${chosen.symbol} ` +
        "in this range.");
    }
    showNotices();
    const params = windowParams(chosen);
    params.set("predictions", "all");
    if (chosen.model) params.set("model", chosen.model);
    const history = await getJSON(`/history?${params}`);
    // without a model the window's forecasts are other models': draw candles only
    if (!chosen.model) history.data.predictions = [];
    drawLeaderboard(leaderboard, chosen);
    await drawChart(history, chosen);
    await drawBacktest(chosen);
    document.body.dataset.ready = "true";
  } catch (error) {
    $("error").textContent = error.message;
    $("error").hidden = false;
    document.body.dataset.ready = "error";
  }
}

// the value of a URL parameter if it is one of the known, else the default with a notice that
// names the parameter, what was asked and what is shown instead
function fromUrl(name, known, fallback, normalize = (v) => v, label = (v) => v) {
  const asked = new URLSearchParams(location.search).get(name);
  if (asked === null || asked === "") return fallback;
  const value = normalize(asked);
  const match = known.find((k) => String(k) === value);
  if (match !== undefined) return match;
  state.notices.push(
    `Unknown ${name} "${asked}" in the URL (known: ${known.map(label).join(", ")}): ` +
      `showing ${label(fallback)}.`,
  );
  return fallback;
}

async function start() {
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
  const ranges = Object.keys(meta.time_ranges);
  const hours = (h) => `${h} h`;
  const symbol = fromUrl("symbol", symbols, symbols[0], (s) => s.toUpperCase().replace("-", "/"));
  const horizon = fromUrl("horizon", meta.horizons, meta.horizons[0], String, hours);
  const range = fromUrl("range", ranges, ranges.includes("1w") ? "1w" : ranges[0]);
  fillSelect($("symbol"), symbols, null, symbol);
  fillSelect($("horizon"), meta.horizons, meta.horizons.map(hours), horizon);
  fillSelect($("range"), ranges, null, range);
  for (const id of ["symbol", "model", "horizon", "range"]) {
    $(id).addEventListener("change", refresh);
  }
  for (const id of ["backtest-rule", "backtest-window"]) {
    $(id).addEventListener("change", refreshBacktest);
  }
  showHealth();
  await refresh();
}

start();
