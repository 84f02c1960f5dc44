// Small DOM helpers. Text from the services is only ever set as text, never parsed as HTML.

import { language } from "./i18n.js";

export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value == null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child == null) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function svg(tag, attributes = {}) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") element.textContent = value;
    else element.setAttribute(name, String(value));
  }
  return element;
}

function locale() {
  return language() === "vi" ? "vi-VN" : "en-GB";
}

export function number(value) {
  if (value == null || Number.isNaN(value)) return "—";
  const digits = Math.abs(value) >= 100 ? 1 : 3;
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(value);
}

export function time(millis) {
  if (!millis) return "";
  return new Intl.DateTimeFormat(locale(), {
    dateStyle: "short",
    timeStyle: "medium",
  }).format(new Date(millis));
}

let toastTimer = null;

export function toast(message, kind = "error") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = `toast ${kind}`;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
  }, 6000);
}
