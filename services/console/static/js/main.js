// The IOC console page: log in, then fields, map, devices with live values, alerts and a
// chart, kept live over one Server-Sent Events stream.

import { applyAlertEvent, loadAlerts, loadHistory, renderAlerts } from "./alerts.js";
import { ApiError, get, onUnauthenticated, post, setCsrf } from "./api.js";
import { loadChart, resizeChart } from "./chart.js";
import { applyReadings, loadDevices, loadLatest, renderDevices } from "./devices.js";
import { toast } from "./dom.js";
import { connect, disconnect } from "./events.js";
import { loadFields, renderFields } from "./fields.js";
import { initialLanguage, onLanguageChange, setLanguage, t } from "./i18n.js";
import { loadSites, renderMap } from "./map.js";

const WALL_KEY = "smartcity.console.wall";

const state = {
  session: null,
  field: "",
  site: "",
  pillars: [],
  sites: null,
  devices: [],
  readings: new Map(),
  alerts: new Map(),
  revision: 0,
  selectedAlert: null,
  chart: null,
  select,
  chartOf,
};

const timers = [];
let devicesReload = null;

function $(id) {
  return document.getElementById(id);
}

function complain(error) {
  if (error instanceof ApiError && error.status === 401) return;
  toast(
    error instanceof ApiError ? error.describe() : t("error.generic", { message: String(error) }),
  );
}

async function attempt(...jobs) {
  const results = await Promise.allSettled(jobs.map((job) => job(state)));
  for (const result of results) if (result.status === "rejected") complain(result.reason);
}

// -- session -----------------------------------------------------------------------------------

async function refreshSession() {
  const session = await get("api/session");
  setCsrf(session.csrf_token);
  state.session = session;
  if (session.authenticated) await showDashboard();
  else showLogin(session.totp_required);
}

function stopLive() {
  disconnect();
  while (timers.length) clearInterval(timers.pop());
}

function showLogin(totpRequired = false) {
  stopLive();
  $("dashboard").hidden = true;
  $("counters").hidden = true;
  $("live-status").hidden = true;
  $("logout").hidden = true;
  $("user-name").textContent = "";
  $("login-view").hidden = false;
  $("totp-row").hidden = !totpRequired;
  (totpRequired
    ? document.querySelector("[name=totp_code]")
    : document.querySelector("[name=username]")
  ).focus();
}

async function submitLogin(event) {
  event.preventDefault();
  const form = event.target;
  const fields = Object.fromEntries(new FormData(form).entries());
  const error = $("login-error");
  error.textContent = "";
  try {
    const waiting = state.session && state.session.totp_required && fields.totp_code;
    const session = waiting
      ? await post("api/login/totp", { totp_code: fields.totp_code })
      : await post("api/login", fields);
    setCsrf(session.csrf_token);
    state.session = session;
    if (session.authenticated) {
      form.reset();
      await showDashboard();
    } else if (session.totp_required) {
      showLogin(true);
      error.textContent = t("login.totp_needed");
    }
  } catch (failure) {
    // After a refused code, the next try sends password and code together.
    if (state.session) state.session.totp_required = false;
    error.textContent = failure instanceof ApiError ? failure.describe() : String(failure);
    if (failure instanceof ApiError && failure.code === "CSRF") await refreshSession();
  }
}

async function logout() {
  stopLive();
  try {
    await post("api/logout");
  } catch (error) {
    complain(error);
  }
  await refreshSession();
}

// -- the dashboard ------------------------------------------------------------------------------

async function showDashboard() {
  const user = state.session.user;
  $("login-view").hidden = true;
  $("dashboard").hidden = false;
  $("counters").hidden = false;
  $("logout").hidden = false;
  $("user-name").textContent = user ? user.display_name || user.username : "";
  await attempt(loadFields, loadSites, loadDevices, loadLatest, loadAlerts);
  renderDevices(state); // field names, now that the catalogue is in
  renderMap(state);
  if (!state.chart) {
    // something on the chart from the start: the first live value
    const first = state.readings.values().next().value;
    if (first)
      chartOf({ field: first.field, site: first.site, device: first.device, metric: first.metric });
  }
  live();
  stopTimers();
  timers.push(setInterval(() => attempt(loadDevices).then(() => renderMap(state)), 15000));
  timers.push(setInterval(() => attempt(loadFields), 60000));
  timers.push(setInterval(() => attempt(loadSites), 300000));
}

function stopTimers() {
  while (timers.length) clearInterval(timers.pop());
}

let liveShown = null;

function setLive(key, values, ok) {
  liveShown = { key, values, ok };
  const badge = $("live-status");
  badge.hidden = false;
  badge.textContent = t(key, values);
  badge.className = `live-status ${ok ? "ok" : "down"}`;
}

function scheduleDevices() {
  if (devicesReload) return;
  devicesReload = setTimeout(async () => {
    devicesReload = null;
    await attempt(loadDevices);
    renderMap(state);
  }, 2000);
}

function live() {
  connect(state, {
    hello(_, again) {
      setLive("app.live", {}, true);
      if (again) attempt(loadLatest, loadAlerts); // back after a break: catch up on what was missed
    },
    readings(readings) {
      if (applyReadings(state, readings)) {
        renderDevices(state);
        scheduleDevices();
      }
    },
    alert(event) {
      applyAlertEvent(state, event);
      renderMap(state);
    },
    resync(what) {
      attempt(what === "alerts" ? loadAlerts : loadLatest);
    },
    status(status) {
      if (status.ok) setLive("app.live", {}, true);
      else setLive("app.live_down", { source: status.source, message: status.message }, false);
    },
    end(reason) {
      setLive("app.session_ended", { reason }, false);
      refreshSession().catch(complain);
    },
    reconnecting() {
      setLive("app.reconnecting", {}, false);
    },
    closed() {
      refreshSession().catch(complain);
    },
  });
}

async function select(choice) {
  if ("field" in choice) state.field = choice.field;
  if ("site" in choice) state.site = choice.site;
  const what = [state.field, state.site].filter(Boolean).join(" / ");
  $("device-filter").textContent = what ? t("devices.filter", { what }) : "";
  $("clear-filter").hidden = !what;
  renderFields(state);
  renderMap(state);
  await attempt(loadDevices, loadLatest);
  live();
}

async function chartOf(choice) {
  state.chart = choice;
  await loadChart(state);
}

// -- start ------------------------------------------------------------------------------------

function setWall(on) {
  document.documentElement.classList.toggle("wall", on);
  localStorage.setItem(WALL_KEY, on ? "1" : "0");
  if (state.session && state.session.authenticated) {
    renderMap(state);
    if (state.chart) loadChart(state); // axis labels in the new type size
  }
}

async function start() {
  const wall = new URLSearchParams(location.search).get("wall");
  setWall(wall != null ? wall === "1" : localStorage.getItem(WALL_KEY) === "1");
  const language = initialLanguage();
  await setLanguage(language);
  $("language").value = language;
  $("language").addEventListener("change", (event) => setLanguage(event.target.value));
  onLanguageChange(() => {
    if (state.session && state.session.authenticated) {
      renderFields(state);
      renderDevices(state);
      renderAlerts(state);
      renderMap(state);
      if (liveShown) setLive(liveShown.key, liveShown.values, liveShown.ok);
      if (state.selectedAlert) loadHistory(state, state.selectedAlert);
    }
  });
  $("wall-toggle").addEventListener("click", () =>
    setWall(!document.documentElement.classList.contains("wall")),
  );
  $("logout").addEventListener("click", logout);
  $("login-form").addEventListener("submit", submitLogin);
  $("clear-filter").addEventListener("click", () => select({ field: "", site: "" }));
  $("chart-range").addEventListener("change", () => loadChart(state));
  $("chart-agg").addEventListener("change", () => loadChart(state));
  window.addEventListener("resize", () => {
    resizeChart();
    if (state.session && state.session.authenticated) renderMap(state);
  });
  onUnauthenticated(() => {
    if (state.session && state.session.authenticated) refreshSession().catch(complain);
  });
  await refreshSession();
}

start().catch(complain);
