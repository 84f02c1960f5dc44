// Active alerts, most severe first, with acknowledge, assign and silence; the history of the
// selected alert. Buttons an operator may not use are disabled (the service decides anyway).

import { get, post } from "./api.js";
import { el, number, time, toast } from "./dom.js";
import { t } from "./i18n.js";

const SEVERITY = { critical: 3, warning: 2, info: 1 };
const OPERATING = new Set(["operator", "engineer"]);

export async function loadAlerts(state) {
  const answer = await get("api/alerts");
  state.alerts = new Map(answer.alerts.map((alert) => [alert.fingerprint, alert]));
  state.revision = Math.max(state.revision || 0, answer.revision || 0);
  renderAlerts(state);
}

export function applyAlertEvent(state, event) {
  const alert = event.alert;
  state.revision = Math.max(state.revision || 0, event.revision || 0);
  if (alert.state === "resolved") state.alerts.delete(alert.fingerprint);
  else state.alerts.set(alert.fingerprint, alert);
  renderAlerts(state);
  if (state.selectedAlert === alert.fingerprint) loadHistory(state, alert.fingerprint);
}

function who(state, name) {
  // The services record the principal id; the logged-in user at least is shown by name.
  const user = state.session && state.session.user;
  return user && name === user.id ? user.display_name || user.username : name;
}

function mayOperate(state, field) {
  const roles = state.session && state.session.user ? state.session.user.roles : null;
  if (roles == null) return true;
  return roles.some((binding) => {
    const [role, scope] = binding.split(":");
    return OPERATING.has(role) && (scope === "*" || scope === field);
  });
}

async function act(state, alert, path, body, done) {
  try {
    const answer = await post(`api/alerts/${encodeURIComponent(alert.fingerprint)}/${path}`, body);
    state.alerts.set(answer.alert.fingerprint, answer.alert);
    renderAlerts(state);
    if (done) done(answer.alert);
    if (state.selectedAlert === alert.fingerprint) loadHistory(state, alert.fingerprint);
  } catch (error) {
    toast(error.describe ? error.describe() : String(error));
  }
}

function inlineForm(input, submit) {
  const form = el("form", { class: "inline" }, input, el("button", { type: "submit", text: "OK" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(input.value);
  });
  return form;
}

function assignForm(state, alert, row) {
  const input = el("input", {
    name: "assignee",
    "data-testid": "alert-assignee",
    placeholder: t("alerts.assign_prompt"),
    maxlength: 128,
  });
  return inlineForm(input, (value) =>
    act(state, alert, "assign", { assignee: value.trim() }, () =>
      row.querySelector("form")?.remove(),
    ),
  );
}

function silenceForm(state, alert) {
  const minutes = el("select", {
    name: "minutes",
    "data-testid": "alert-silence-minutes",
    title: t("alerts.silence_prompt"),
  });
  for (const value of [30, 60, 120, 240, 480, 1440])
    minutes.append(el("option", { value, text: `${value} min` }));
  return inlineForm(minutes, async (value) => {
    const body = {
      field: alert.field,
      site: alert.site,
      device: alert.device,
      alertname: alert.labels.alertname || "",
      minutes: value,
    };
    try {
      const answer = await post("api/silences", body);
      toast(t("alerts.silenced_until", { time: time(answer.silence.ends) }), "info");
      await loadAlerts(state);
    } catch (error) {
      toast(error.describe ? error.describe() : String(error));
    }
  });
}

function row(state, alert) {
  const operable = mayOperate(state, alert.field);
  const acknowledged = Boolean(alert.acknowledged_by);
  const item = el("li", {
    class: `alert severity-${alert.severity}${state.selectedAlert === alert.fingerprint ? " selected" : ""}`,
    "data-testid": "alert-row",
    "data-fingerprint": alert.fingerprint,
    "data-state": alert.state,
    "data-severity": alert.severity,
    "data-acknowledged": String(acknowledged),
  });
  item.addEventListener("click", (event) => {
    if (event.target.closest("button, form")) return;
    state.selectedAlert = alert.fingerprint;
    renderAlerts(state);
    loadHistory(state, alert.fingerprint);
    if (alert.metric)
      state.chartOf({
        field: alert.field,
        site: alert.site,
        device: alert.device,
        metric: alert.metric,
      });
  });
  const where = [alert.site, alert.device, alert.metric].filter(Boolean).join(" / ");
  const badges = el("span", { class: "badges" });
  if (acknowledged)
    badges.append(
      el("span", {
        class: "badge acked",
        "data-testid": "alert-acked",
        text: t("alerts.acked_by", { who: who(state, alert.acknowledged_by) }),
      }),
    );
  if (alert.assignee)
    badges.append(
      el("span", {
        class: "badge",
        text: t("alerts.assigned_to", { who: who(state, alert.assignee) }),
      }),
    );
  if (alert.silenced) badges.append(el("span", { class: "badge", text: t("alerts.silenced") }));
  if (alert.inhibited) badges.append(el("span", { class: "badge", text: t("alerts.inhibited") }));
  item.append(
    el("div", { class: "title" }, `${alert.name} `, badges),
    el("div", {
      class: "meta",
      text: `${t(`severity.${alert.severity}`)} · ${t(`alertstate.${alert.state}`)} · ${where} · ${t("alerts.value", { value: number(alert.value) })} · ${time(alert.firing_since || alert.active_since)}`,
    }),
  );
  if (alert.summary) item.append(el("div", { class: "meta", text: alert.summary }));
  const actions = el("div", { class: "actions" });
  if (acknowledged) {
    actions.append(
      el("button", {
        type: "button",
        "data-testid": "alert-unack",
        disabled: !operable,
        text: t("alerts.unack"),
        onclick: () => act(state, alert, "unack", {}),
      }),
    );
  } else {
    actions.append(
      el("button", {
        type: "button",
        "data-testid": "alert-ack",
        disabled: !operable,
        text: t("alerts.ack"),
        onclick: () => act(state, alert, "ack", {}),
      }),
    );
  }
  actions.append(
    el("button", {
      type: "button",
      "data-testid": "alert-assign",
      disabled: !operable,
      text: t("alerts.assign"),
      onclick: () => {
        item.querySelector("form")?.remove();
        item.append(assignForm(state, alert, item));
      },
    }),
    el("button", {
      type: "button",
      "data-testid": "alert-silence",
      disabled: !operable,
      text: t("alerts.silence"),
      onclick: () => {
        item.querySelector("form")?.remove();
        item.append(silenceForm(state, alert));
      },
    }),
  );
  item.append(actions);
  return item;
}

export function renderAlerts(state) {
  const list = document.getElementById("alerts");
  const alerts = [...state.alerts.values()].sort(
    (a, b) =>
      (SEVERITY[b.severity] || 0) - (SEVERITY[a.severity] || 0) ||
      (b.firing_since || 0) - (a.firing_since || 0),
  );
  const items = alerts.map((alert) => row(state, alert));
  if (!items.length) items.push(el("li", { class: "hint", text: t("alerts.none") }));
  list.replaceChildren(...items);
  document.getElementById("count-alerts").textContent = String(alerts.length);
}

export async function loadHistory(state, fingerprint) {
  const detail = document.getElementById("alert-detail");
  const alert = state.alerts.get(fingerprint);
  document.getElementById("history-name").textContent = alert ? alert.name : fingerprint;
  detail.hidden = false;
  try {
    const answer = await get(`api/alerts/${encodeURIComponent(fingerprint)}/history`);
    const items = answer.events.map((event) =>
      el(
        "li",
        { "data-testid": "alert-history-item", "data-type": event.type },
        el("span", { class: "when", text: `${time(event.time)} ` }),
        t(`event.${event.type}`),
        event.actor ? ` · ${who(state, event.actor)}` : "",
        event.comment ? ` · “${event.comment}”` : "",
      ),
    );
    document.getElementById("alert-history").replaceChildren(...items);
  } catch (error) {
    toast(error.describe ? error.describe() : String(error));
  }
}
