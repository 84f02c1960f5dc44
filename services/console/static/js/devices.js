// Devices with their health, and the live value of each of their metrics with its quality.
// Live readings update their cell in place; a reading of a device not listed yet reloads
// the list.

import { get } from "./api.js";
import { el, number, time } from "./dom.js";
import { fieldName } from "./fields.js";
import { t } from "./i18n.js";

const cells = new Map();

function deviceKey(item) {
  return `${item.field}|${item.site}|${item.device}`;
}

function readingKey(item) {
  return `${deviceKey(item)}|${item.metric}`;
}

export async function loadDevices(state) {
  const answer = await get("api/devices", { field: state.field, site: state.site });
  state.devices = answer.devices;
  renderDevices(state);
}

export async function loadLatest(state) {
  const answer = await get("api/latest", { field: state.field, site: state.site });
  for (const reading of answer.readings) state.readings.set(readingKey(reading), reading);
  renderDevices(state);
}

function shown(reading) {
  if (!reading) return "—";
  if (reading.text != null && reading.value == null) return reading.text;
  return `${number(reading.value)} ${reading.unit}`.trim();
}

function fill(cell, reading) {
  const quality = reading ? reading.quality : "unspecified";
  cell.dataset.quality = quality;
  cell.dataset.value = reading && reading.value != null ? String(reading.value) : "";
  cell.querySelector(".reading").textContent = shown(reading);
  const why = reading && reading.reason ? ` — ${reading.reason}` : "";
  cell.title = reading ? `${t(`quality.${quality}`)}${why} · ${time(reading.time)}` : "";
}

function valueCell(state, device, metric) {
  const key = `${deviceKey(device)}|${metric}`;
  const cell = el(
    "button",
    {
      type: "button",
      class: "value",
      "data-testid": "device-value",
      "data-field": device.field,
      "data-site": device.site,
      "data-device": device.device,
      "data-metric": metric,
      onclick: () =>
        state.chartOf({ field: device.field, site: device.site, device: device.device, metric }),
    },
    el("span", { class: "metric", text: metric }),
    el("span", { class: "reading" }),
  );
  fill(cell, state.readings.get(key));
  cells.set(key, cell);
  return cell;
}

export function renderDevices(state) {
  const body = document.querySelector("#devices tbody");
  cells.clear();
  const rows = [];
  const devices = [...(state.devices || [])].sort((a, b) =>
    deviceKey(a).localeCompare(deviceKey(b)),
  );
  for (const device of devices) {
    const metrics = new Set(device.metrics);
    for (const reading of state.readings.values()) {
      if (deviceKey(reading) === deviceKey(device)) metrics.add(reading.metric);
    }
    const values = el("div", { class: "values" });
    for (const metric of [...metrics].sort()) values.append(valueCell(state, device, metric));
    const since = device.last_seen ? time(device.last_seen) : "";
    rows.push(
      el(
        "tr",
        { "data-testid": "device-row", "data-site": device.site, "data-device": device.device },
        el("td", { text: device.site }),
        el("td", { text: device.device, title: device.agent ? `agent ${device.agent}` : "" }),
        el("td", { text: fieldName(state, device.field) }),
        el(
          "td",
          {},
          el("span", {
            class: `state state-${device.state}`,
            "data-testid": "device-state",
            "data-state": device.state,
            title: [since, device.last_error].filter(Boolean).join(" · "),
            text: t(`state.${device.state}`),
          }),
        ),
        el("td", {}, values),
      ),
    );
  }
  if (!rows.length)
    rows.push(el("tr", {}, el("td", { colspan: 5, class: "hint", text: t("devices.empty") })));
  body.replaceChildren(...rows);
  updateCounters(state);
}

export function applyReadings(state, readings) {
  let unknown = false;
  for (const reading of readings) {
    const key = readingKey(reading);
    state.readings.set(key, reading);
    const cell = cells.get(key);
    if (!cell) {
      unknown = true;
      continue;
    }
    const before = cell.dataset.value;
    fill(cell, reading);
    if (before !== cell.dataset.value) {
      cell.classList.remove("changed");
      void cell.offsetWidth; // restart the highlight
      cell.classList.add("changed");
    }
  }
  return unknown;
}

export function updateCounters(state) {
  const devices = state.devices || [];
  document.getElementById("count-devices").textContent = String(devices.length);
  document.getElementById("count-online").textContent = String(
    devices.filter((d) => d.state === "online").length,
  );
}
